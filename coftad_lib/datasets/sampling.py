"""Seeded, order-independent sampling used by every protocol."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TypeVar

import numpy as np

from ..errors import COFTADInputError

T = TypeVar("T")


def rng_for(seed: int, *keys: object) -> np.random.Generator:
    """A generator determined by ``seed`` and the task's keys (dataset, class, ...).

    Hashing the keys in keeps tasks independent: adding a class to a table does not
    change the shots drawn for another class.
    """
    digest = hashlib.sha256(repr((int(seed),) + tuple(str(k) for k in keys)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def choose(items: Sequence[T], k: int, rng: np.random.Generator, what: str) -> tuple[list[T], list[T]]:
    """Draw ``k`` items without replacement; return (chosen, rest), both in the original order.

    Raises:
        COFTADInputError: fewer than ``k`` items; ``what`` names where they came from.
    """
    n = len(items)
    if k < 0:
        raise COFTADInputError(f"{what}: asked for {k} items; the count must be >= 0")
    if n < k:
        raise COFTADInputError(f"{what}: asked for {k} items but only {n} are there")
    idx = set(rng.choice(n, size=k, replace=False).tolist())
    chosen = [items[i] for i in range(n) if i in idx]
    rest = [items[i] for i in range(n) if i not in idx]
    return chosen, rest
