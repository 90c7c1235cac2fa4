"""Test-set variants of a built task: imbalanced anomalies (Table IX) and quick-run subsets.

Both keep the training shots and pick a deterministic subset of the test items; they work on
tasks whose test set is a list of paths, an (M, H, W, C) array or an (M, C, H, W) tensor.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch

from ..errors import COFTADInputError
from .sampling import rng_for
from .task import FewShotTask


def _nested_subset(idx: np.ndarray, k: int | None, rng: np.random.Generator) -> np.ndarray:
    """Sorted subset of ``idx`` of size k (all when k is None).

    Taking the first k of one seeded permutation makes smaller subsets nested in larger ones
    (5 anomalies are among the 10), so a sweep over k changes one thing at a time.
    """
    if k is None or k >= len(idx):
        return idx
    return np.sort(idx[rng.permutation(len(idx))[:k]])


def _take(items, idx: np.ndarray):
    if isinstance(items, np.ndarray):
        return items[idx]
    if isinstance(items, torch.Tensor):
        return items[torch.as_tensor(idx, dtype=torch.long)]
    if isinstance(items, Sequence):
        return [items[i] for i in idx]
    raise COFTADInputError(
        f"task.test: expected a list, numpy array or tensor, got {type(items).__name__}"
    )


def _select(
    task: FewShotTask,
    n_normal: int | None,
    n_anomalies: int | None,
    seed: int,
    key: str,
    info: dict,
) -> FewShotTask:
    """``task`` with only ``n_normal`` normals and ``n_anomalies`` anomalies (None = all) tested.

    The subsets keep test order and are drawn from generators keyed on (seed, task, ``key``);
    ``info`` is merged into the task's.
    """
    normals, anomalies = _split(task)
    keys = (seed, task.dataset, task.name, key)
    normal_idx = _nested_subset(normals, n_normal, rng_for(*keys, "normal"))
    anomaly_idx = _nested_subset(anomalies, n_anomalies, rng_for(*keys, "anomaly"))
    keep = np.sort(np.concatenate([normal_idx, anomaly_idx]))
    return dataclasses.replace(
        task,
        test=_take(task.test, keep),
        test_labels=task.test_labels[keep],
        test_kinds=[task.test_kinds[i] for i in keep],
        test_ids=[task.test_ids[i] for i in keep],
        info={**task.info, **info},
    )


def _split(task: FewShotTask) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(task.test_labels)
    return np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)


def imbalanced(
    task: FewShotTask, n_normal: int = 500, n_anomalies: int = 10, seed: int = 0
) -> FewShotTask:
    """Fixed ``n_normal`` normals and ``n_anomalies`` subsampled anomalies (Sec. IV-F, Table IX).

    The paper fixes 500 SemiCon normals and draws 5, 10, 20 or 50 anomalies. The normals depend
    only on (seed, n_normal), so every anomaly count is scored against the same normals.

    Raises:
        COFTADInputError: the task has fewer normals or anomalies than asked for.
    """
    normals, anomalies = _split(task)
    for what, have, want in (
        ("normal", len(normals), n_normal),
        ("anomalous", len(anomalies), n_anomalies),
    ):
        if want < 1:
            raise COFTADInputError(f"imbalanced: asked for {want} {what} test items; must be >= 1")
        if have < want:
            raise COFTADInputError(
                f"imbalanced: {task.dataset}/{task.name} has {have} {what} test items, fewer than the {want} asked for"
            )
    params = {"n_normal": n_normal, "n_anomalies": n_anomalies, "seed": seed}
    return _select(task, n_normal, n_anomalies, seed, "imbalanced", {"imbalanced": params})


def subsample_test(
    task: FewShotTask,
    max_normal: int | None = None,
    max_anomalies: int | None = None,
    seed: int = 0,
) -> FewShotTask:
    """Keep at most ``max_normal`` normals and ``max_anomalies`` anomalies (None = all), for quick runs."""
    for name, val in (("max_normal", max_normal), ("max_anomalies", max_anomalies)):
        if val is not None and val < 1:
            raise COFTADInputError(f"subsample_test: {name}={val}; must be >= 1 or None")
    params = {"max_normal": max_normal, "max_anomalies": max_anomalies, "seed": seed}
    return _select(task, max_normal, max_anomalies, seed, "subsample", {"subsample_test": params})
