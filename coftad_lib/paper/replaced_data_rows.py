"""Cells computed on a dataset copy that has since been replaced, shown as a setting of their own.

Until 2026-12-07 this project's CIFAR-10 was a JPEG-re-encoded copy (about quality 75; JPEG
compression is one of CIFAR-10-C's corruptions) and CIFAR-10-C shots came from the test split.
The lossless copy replaced it, with shots from ``train/``; a cell's key names its data
(:mod:`coftad_lib.engine.data_identity`), so the 394 records of the old copy kept their own keys
(:mod:`coftad_lib.engine.rekey`, data label :data:`REPLACED`). Here they become rows of Tables II
and VI under the setting ``"<setting> @ <label>"``: readable beside the lossless headline, never
mixed into it (the ``@`` marks a run apart, as the paper-compute runs are).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from .setting import SETTING_MARK

#: dataset -> (the data label its old records carry, the setting label its rows get)
REPLACED: dict[str, tuple[str, str]] = {
    "cifar10c": ("jpeg-q75 copy of CIFAR-10 (replaced 2026-12-07), shots from test/",
                 "JPEG copy of CIFAR-10, shots from test/ (before 2026-12-07)"),
}
#: profiles whose tables show them (the committed one)
SHOWN_WITH: frozenset[str] = frozenset({"protocol-cpu"})


def replaced_data_frame(cells: Sequence[Any], profile: Mapping[str, Any], data_roots: Any,
                        cache_dir: str | os.PathLike) -> pd.DataFrame:
    """The cached records of ``cells`` on the replaced copy of their dataset, as table rows (only
    those computed; nothing is computed here). Empty when no cell's dataset was replaced."""
    from ..engine.executors import run_cells

    old = [dataclasses.replace(c, data=REPLACED[c.dataset][0]) for c in cells if c.dataset in REPLACED]
    if not old or profile.get("name") not in SHOWN_WITH:
        return pd.DataFrame()
    df = run_cells(old, data_roots, cache_dir, profile["name"], executor="cache", progress=False)
    df = df[df["status"] == "ok"].copy()
    if df.empty:
        return df
    labels = {c.key(): REPLACED[c.dataset][1] for c in old}
    # "<backbone> @ <label>", as the paper-compute runs: one run label and one setting in every table
    df["setting"] = [f"{b}{SETTING_MARK}{labels.get(k, 'replaced data')}"
                     for b, k in zip(df["backbone"].fillna("backbone"), df["key"], strict=True)]
    return df
