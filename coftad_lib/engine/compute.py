"""The steps of a cell that decide its numbers: load the task under its protocol, fit, score, AUROC.

This module is a root of every cell's code closure (:mod:`coftad_lib.engine.code_closure`): an
edit here (a test cap, Table IX's subset, how scores are stored) moves every cell's key. It
therefore imports only what decides results (the loaders, the protocols, the registry, the metric);
recording, caching and labelling live in :mod:`coftad_lib.engine.cells`.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import COFTADInputError

#: ``task_args`` keys applied to the loaded task rather than passed to the loader
#: (both via :mod:`coftad_lib.datasets.protocols`, seeded with the cell's seed):
#: ``max_test_per_class``: int, keep at most this many normal and this many anomalous test items;
#: ``imbalanced``: ``{"n_normal": 500, "n_anomalies": 5}`` for Table IX.
TEST_PROTOCOL_KEYS: tuple[str, ...] = ("max_test_per_class", "imbalanced")


def loader_params(dataset: str) -> set[str] | None:
    """Argument names of the dataset module's ``load``; None when the module cannot be imported."""
    try:
        from ..datasets import dataset_module
        return set(inspect.signature(dataset_module(dataset).load).parameters)
    except (ImportError, COFTADInputError, AttributeError, ValueError, TypeError):
        return None


def load_protocol_task(dataset: str, root: Path, shots: int, seed: int, args: Mapping[str, Any],
                       loader: Callable[..., Any] | None = None):
    """The cell's FewShotTask: the loader with ``args``, then the test protocol of :data:`TEST_PROTOCOL_KEYS`.

    ``loader(dataset, root, shots, seed, **args)`` defaults to :func:`coftad_lib.datasets.load_task`.

    A ``max_test_per_class`` cap is also handed to loaders that can subsample while loading
    (CIFAR-C's ``max_test_normal`` / ``max_test_per_corruption``), so that they do not build the
    full test set first; the exact cap is then applied to the loaded task.
    """
    from ..datasets import load_task, protocols

    loader = loader or (lambda ds, r, k, s, **a: load_task(ds, r, shots=k, seed=s, **a))
    args = dict(args)
    cap = args.pop("max_test_per_class", None)
    imbalanced = args.pop("imbalanced", None)
    params = loader_params(dataset) or set()
    if cap is not None and {"max_test_normal", "max_test_per_corruption"} <= params:
        args.setdefault("max_test_normal", cap)
        args.setdefault("max_test_per_corruption", cap)
    task = loader(dataset, root, shots, seed, **args)
    if cap is not None:
        task = protocols.subsample_test(task, max_normal=cap, max_anomalies=cap, seed=seed)
    if imbalanced is not None:
        if not isinstance(imbalanced, Mapping) or set(imbalanced) - {"n_normal", "n_anomalies"}:
            raise COFTADInputError(f"task_args['imbalanced']={imbalanced!r}: expected {{'n_normal': int, 'n_anomalies': int}}")
        task = protocols.imbalanced(task, seed=seed, **imbalanced)
    return task


def make_detector(method: str, **kwargs: Any):
    """A registry detector (:func:`coftad_lib.methods.registry.make_detector`)."""
    from ..methods.registry import make_detector as build
    return build(method, **kwargs)


def stored_scores(scores: np.ndarray) -> list[float]:
    """(M,) scores as a record stores them: every float64 exactly (JSON writes the shortest repr that
    reads back to the same float), so a record's AUROC recomputes from its own scores bit for bit."""
    return [float(s) for s in np.asarray(scores, dtype=np.float64).ravel()]


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """AUROC of (M,) scores against (M,) 0/1 labels (:func:`coftad_lib.metrics.auroc`)."""
    from ..metrics import auroc as metric
    return metric(scores, labels)


def score_task(detector: Any, task: Any, *, embed: bool, what: str) -> tuple[dict[str, Any], dict[str, np.ndarray] | None]:
    """Score (and with ``embed`` embed) ``task.test`` with a fitted detector.

    Returns the record's result fields (auroc, scores, labels, test ids and kinds, counts,
    score_seconds) and, with ``embed``, ``{"train": (k, D), "test": (M, D), "labels": (M,)}``.
    ``what`` names the cell in errors.
    """
    t0 = time.perf_counter()
    scores = np.asarray(detector.score_samples(task.test), dtype=np.float64).ravel()
    score_s = time.perf_counter() - t0
    labels = np.asarray(task.test_labels, dtype=np.int64)
    if scores.shape != labels.shape:
        raise COFTADInputError(f"{what}: score_samples returned {scores.shape[0]} scores for {labels.shape[0]} test items")
    feats = None
    if embed:
        if not hasattr(detector, "embed"):
            raise COFTADInputError(f"{what}: Cell.kind='embed' but the detector has no embed()")
        feats = {"train": np.asarray(detector.embed(task.train)), "test": np.asarray(detector.embed(task.test)),
                 "labels": labels}
    stored = stored_scores(scores)
    fields = {"auroc": auroc(np.asarray(stored), labels), "scores": stored, "labels": labels.tolist(),
              "test_ids": [str(i) for i in task.test_ids], "test_kinds": [str(k) for k in task.test_kinds],
              "n_train": int(task.shots), "n_test": int(labels.size), "n_anomalous": int(labels.sum()),
              "score_seconds": round(score_s, 3)}
    return fields, feats
