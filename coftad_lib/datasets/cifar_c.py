"""CIFAR-10-C / CIFAR-100-C as one-class anomaly detection (paper Sec. IV-A-1, Tables II, III, VI).

Protocol: each class (CIFAR-10) or super-class (CIFAR-100, 20 coarse labels) in turn is normal;
``shots`` (paper: 10) clean images of it train; the test set is the class's clean test images
(label 0) plus their corrupted versions at severity 4 for 9 corruption types (label 1).

Data read: ``root``: the official ``<corruption>.npy`` (uint8, (5 * N, 32, 32, 3): severities 1..5
stacked, rows in the official test order) and ``labels.npy``, or files of ``python -m
data_prep.cifar_c`` under the same names with a ``coftad_generated.json`` sidecar (stacked
severities, each row's clean source). ``clean_root``: the official python batches or a folder per
class (``<clean_root>/[test/]<class>/*.png|jpg``), optionally with a sibling ``train/<class>/``.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..errors import COFTADInputError, DatasetNotFoundError
from .cifar_classes import (  # noqa: F401  (re-exported: the dataset's public names stay here)
    _VARIANTS,
    CIFAR10_CLASSES,
    CIFAR100_COARSE_OF_FINE,
    CIFAR100_FINE_CLASSES,
    CIFAR100_SUPERCLASSES,
    DEFAULT_CORRUPTIONS,
    DEFAULT_SEVERITY,
    GENERATED_META,
    HOW_TO_GET,
    TASKS,
    TASKS_BY_VARIANT,
    _check_variant,
    class_names,
    task_labels,
)
from .cifar_clean import CleanSet, has_clean, infer_variant, read_clean  # noqa: F401  (re-exported)
from .sampling import choose, rng_for
from .task import FewShotTask

# ----------------------------------------------------------------------------- corrupted files


def _read_meta(root: Path) -> dict[str, Any] | None:
    p = root / GENERATED_META
    if not p.is_file():
        return None
    try:
        meta = json.loads(p.read_text())
        meta["severities"] = [int(s) for s in meta["severities"]]
        meta["source_ids"] = list(meta["source_ids"])
    except (ValueError, KeyError, TypeError) as exc:
        raise COFTADInputError(
            f"{p}: unreadable generator sidecar ({exc}); regenerate with data_prep.cifar_c"
        ) from exc
    return meta


def _load_npy(path: Path, mmap: bool) -> np.ndarray:
    if not path.is_file():
        raise DatasetNotFoundError(f"{path}: file missing\n{HOW_TO_GET}")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise COFTADInputError(
            f"{path}: cannot read this .npy file ({exc}); it may be truncated"
        ) from exc


def _find_clean_root(
    root: Path, clean_root: str | os.PathLike | None, variant: str, meta: dict | None
) -> Path:
    if clean_root is not None:
        d = Path(clean_root)
        if not d.exists():
            raise DatasetNotFoundError(f"clean_root={d}: folder not found\n{HOW_TO_GET}")
        return d
    cands = [root, root.parent, root.parent / ("cifar10" if variant == "cifar10c" else "cifar100")]  # the last: where datasets.download puts it
    if meta and meta.get("clean_source"):
        cands.append(Path(meta["clean_source"]))
    for d in cands:
        if d.exists() and has_clean(d, variant, "test"):
            return d
    raise DatasetNotFoundError(
        f"no clean CIFAR test images found in {', '.join(str(c) for c in cands)}; "
        f"pass clean_root=<folder>\n{HOW_TO_GET}"
    )


class _Key(NamedTuple):
    """The task's identity: where its files are and the keys of its random draws."""

    root: Path
    variant: str
    name: str  # canonical task name
    class_ids: list[int]
    seed: int


class _Rows(NamedTuple):
    """This task's rows of the corrupted files, at one severity."""

    n_total: int  # rows in each file: all stacked severities
    start: int  # first row of the severity's block
    labels: np.ndarray  # (N,) class ids of the block's rows
    row_ids: list[str]  # N ids of the clean image behind each row of a block
    class_rows: np.ndarray  # (R,) rows of the task's classes within the block


class _Pool(NamedTuple):
    """Test candidates: the class's clean test images and corrupted rows (less any test shots)."""

    clean: np.ndarray  # (P,) positions in the clean test set
    rows: np.ndarray  # (R',) rows within the severity block
    aligned: bool  # rows[i] is the corrupted version of clean[i]


class _Test(NamedTuple):
    """The test set: normals first, then each corruption's anomalies."""

    images: np.ndarray  # (M, 32, 32, 3) uint8
    labels: np.ndarray  # (M,) int64, 0 = normal, 1 = anomaly
    kinds: list[str]
    ids: list[str]
    n_normal: int
    n_per_corruption: dict[str, int]


def _check_options(shots_from: str, max_normal: int | None, max_per_corruption: int | None) -> None:
    """Validate :func:`load`'s ``shots_from`` and test-subsample options."""
    if shots_from not in ("auto", "train", "test"):
        raise COFTADInputError(f"shots_from={shots_from!r}: expected 'auto', 'train' or 'test'")
    for name, val in (
        ("max_test_normal", max_normal),
        ("max_test_per_corruption", max_per_corruption),
    ):
        if val is not None and val < 1:
            raise COFTADInputError(f"{name}={val}: must be >= 1 or None")


def _task_rows(key: _Key, meta: dict[str, Any] | None, severity: int) -> _Rows:
    """Which rows of the corrupted files are this task's, at this severity."""
    root, variant = key.root, key.variant
    if meta is not None and meta.get("variant") not in (None, variant):
        raise COFTADInputError(
            f"{root}: generated for {meta['variant']}, but variant={variant!r} was asked"
        )
    severities = meta["severities"] if meta else [1, 2, 3, 4, 5]
    if severity not in severities:
        raise COFTADInputError(
            f"{root}: severity {severity} is not in these files (they hold {severities}); "
            f"regenerate with --severity {severity}"
        )
    labels_all = _load_npy(root / "labels.npy", mmap=False).astype(np.int64).ravel()
    if len(labels_all) % len(severities):
        raise COFTADInputError(
            f"{root / 'labels.npy'}: {len(labels_all)} rows is not a multiple of the "
            f"{len(severities)} stacked severities"
        )
    n_per = len(labels_all) // len(severities)
    block = severities.index(severity)
    labels = labels_all[block * n_per : (block + 1) * n_per]
    if variant == "cifar10c" and labels.max(initial=0) > 9:
        raise COFTADInputError(
            f"{root / 'labels.npy'}: labels up to {labels.max()} look like CIFAR-100-C, not CIFAR-10-C"
        )
    row_ids = meta["source_ids"] if meta else [f"test/{r}" for r in range(n_per)]
    if len(row_ids) != n_per:
        raise COFTADInputError(
            f"{root / GENERATED_META}: lists {len(row_ids)} source ids for {n_per} rows per severity"
        )
    class_rows = np.flatnonzero(np.isin(labels, key.class_ids))
    if len(class_rows) == 0:
        raise COFTADInputError(
            f"{root / 'labels.npy'}: no rows of task {key.name} (class ids {key.class_ids})"
        )
    return _Rows(len(labels_all), block * n_per, labels, row_ids, class_rows)


def _match_clean(key: _Key, clean: CleanSet, rows: _Rows) -> _Pool:
    """Match the class's clean test images to its corrupted rows when possible."""
    root, task_name = key.root, key.name
    row_ids, class_rows = rows.row_ids, rows.class_rows
    id_to_clean = {cid: i for i, cid in enumerate(clean.ids)}
    matched = [row_ids[r] in id_to_clean for r in class_rows]
    aligned = all(matched)
    if any(matched) and not aligned:
        raise COFTADInputError(
            f"{root}: only {sum(matched)} of the {len(class_rows)} corrupted rows of {task_name} have "
            f"their clean image in {clean.source}; the corrupted files come from another copy of CIFAR"
        )
    if aligned:
        pool_clean = np.array([id_to_clean[row_ids[r]] for r in class_rows], dtype=np.int64)
        if not np.array_equal(clean.labels[pool_clean], rows.labels[class_rows]):
            raise COFTADInputError(
                f"{root / 'labels.npy'} disagrees with the labels of the clean images in {clean.source}; "
                "the clean images are not the ones the corrupted files were made from"
            )
    else:
        # Official CIFAR-C rows follow the official test order; a class-folder copy has no such
        # order, so normals and anomalies are drawn from the class independently.
        pool_clean = np.arange(len(clean.ids))
    return _Pool(pool_clean, class_rows, aligned)


def _draw_shots(
    key: _Key, croot: Path, clean: CleanSet, pool: _Pool, shots_from: str, shots: int
) -> tuple[str, np.ndarray, list[str], _Pool]:
    """Shot source (train/test), shots ((shots, 32, 32, 3) uint8), their ids, the pool left."""
    root, variant, task_name = key.root, key.variant, key.name
    has_train = has_clean(croot, variant, "train")
    source = ("train" if has_train else "test") if shots_from == "auto" else shots_from
    if source == "train" and not has_train:
        raise DatasetNotFoundError(
            f"{croot}: shots_from='train' but no clean train split is there\n{HOW_TO_GET}"
        )
    shot_rng = rng_for(key.seed, variant, task_name, "shots")
    if source == "train":
        train_set = read_clean(croot, variant, "train", labels=key.class_ids)
        chosen, _ = choose(
            list(range(len(train_set.ids))),
            shots,
            shot_rng,
            f"{croot} (clean train images of {task_name})",
        )
        train = train_set.images[chosen]
        train_ids = [train_set.ids[i] for i in chosen]
    else:
        positions = list(range(len(pool.clean)))
        chosen, rest = choose(
            positions, shots, shot_rng, f"{clean.source} (clean test images of {task_name})"
        )
        train = clean.images[pool.clean[chosen]]
        train_ids = [clean.ids[i] for i in pool.clean[chosen]]
        pool = _Pool(pool.clean[rest], pool.rows[rest] if pool.aligned else pool.rows, pool.aligned)
        if not pool.aligned:
            warnings.warn(
                f"{root}: shots come from the clean test images but the corrupted files cannot be matched "
                f"to them ({clean.source} is not the official test batch), so corrupted versions of the "
                "shots may be among the anomalies; give clean_root the official python batches",
                stacklevel=3,  # the caller of load()
            )
    if len(pool.clean) == 0:
        raise COFTADInputError(
            f"{clean.source}: no clean test images of {task_name} are left for testing after drawing "
            f"{shots} shots from them; use a clean train split (shots_from='train') or more images"
        )
    return source, train, train_ids, pool


def _build_test(
    key: _Key,
    clean: CleanSet,
    rows: _Rows,
    pool: _Pool,
    corruptions: list[str],
    severity: int,
    max_test_normal: int | None,
    max_test_per_corruption: int | None,
) -> _Test:
    """Test set: the pool's normals, then each corruption's anomalies at ``severity``."""
    root, variant, task_name, seed = key.root, key.variant, key.name, key.seed
    normal_pos = _subsample(
        len(pool.clean), max_test_normal, rng_for(seed, variant, task_name, "test", "clean")
    )
    normals = clean.images[pool.clean[normal_pos]]
    test_parts = [normals]
    test_ids = [clean.ids[i] for i in pool.clean[normal_pos]]
    test_kinds = ["clean"] * len(normals)
    n_per_corruption: dict[str, int] = {}
    for name in corruptions:
        arr = _load_npy(root / f"{name}.npy", mmap=True)
        if arr.shape[1:] != (32, 32, 3) or arr.dtype != np.uint8 or len(arr) != rows.n_total:
            raise COFTADInputError(
                f"{root / (name + '.npy')}: expected uint8 ({rows.n_total}, 32, 32, 3) to match labels.npy, "
                f"got {arr.dtype} {arr.shape}"
            )
        pos = _subsample(
            len(pool.rows), max_test_per_corruption, rng_for(seed, variant, task_name, "test", name)
        )
        picked = pool.rows[pos]
        test_parts.append(np.asarray(arr[rows.start + picked]))
        test_ids += [f"{name}/{severity}/{rows.row_ids[r]}" for r in picked]
        test_kinds += [name] * len(picked)
        n_per_corruption[name] = len(picked)
    test = np.concatenate(test_parts)
    test_labels = np.r_[
        np.zeros(len(normals), np.int64), np.ones(len(test) - len(normals), np.int64)
    ]
    return _Test(test, test_labels, test_kinds, test_ids, int(len(normals)), n_per_corruption)


def load(
    root: str | os.PathLike,
    shots: int = 10,
    seed: int = 0,
    *,
    variant: str = "cifar10c",
    task: str = "airplane",
    severity: int = DEFAULT_SEVERITY,
    corruptions: list[str] | None = None,
    clean_root: str | os.PathLike | None = None,
    max_test_normal: int | None = None,
    max_test_per_corruption: int | None = None,
    shots_from: str = "auto",
) -> FewShotTask:
    """Build the CIFAR-C one-class task for ``task`` (Sec. IV-A-1).

    Args:
        root: folder with ``<corruption>.npy`` and ``labels.npy`` (official or generated).
        shots: number of clean normal training images (paper: 10).
        variant: ``"cifar10c"`` or ``"cifar100c"``.
        task: CIFAR-10 class name, or ``"superclass_<k>"`` for CIFAR-100.
        severity: corruption level 1..5 (paper: 4).
        corruptions: corruption file names; default :data:`DEFAULT_CORRUPTIONS`.
        clean_root: clean images (official python batches or class folders); default: ``root``,
            its parent, or the source recorded by the generator.
        max_test_normal / max_test_per_corruption: deterministic subsample (None = all), for
            quick runs.
        shots_from: ``"train"``: draw shots from the clean train split; ``"test"``: from the
            class's clean test images, which then leave the test set together with their
            corrupted versions; ``"auto"`` (default): train when available, else test. The paper
            does not say; the train split keeps all test images, so it is preferred.

    Returns:
        FewShotTask with ``train`` (shots, 32, 32, 3) uint8 and ``test`` (M, 32, 32, 3) uint8,
        normals first then each corruption's anomalies; ``test_kinds`` is ``"clean"`` or the
        corruption name.
    """
    variant = _check_variant(variant)
    root = Path(root)
    if not root.is_dir():
        raise DatasetNotFoundError(
            f"{root}: CIFAR-C folder not found; expected <root>/labels.npy\n{HOW_TO_GET}"
        )
    task_name, class_ids = task_labels(variant, task)
    corruptions = list(DEFAULT_CORRUPTIONS if corruptions is None else corruptions)
    if not corruptions:
        raise COFTADInputError("corruptions: the list is empty; at least one corruption is needed")
    _check_options(shots_from, max_test_normal, max_test_per_corruption)
    key = _Key(root, variant, task_name, class_ids, seed)
    meta = _read_meta(root)
    rows = _task_rows(key, meta, severity)
    croot = _find_clean_root(root, clean_root, variant, meta)
    clean = read_clean(croot, variant, "test", labels=class_ids)
    pool = _match_clean(key, clean, rows)
    source, train, train_ids, pool = _draw_shots(key, croot, clean, pool, shots_from, shots)
    test = _build_test(
        key, clean, rows, pool, corruptions, severity, max_test_normal, max_test_per_corruption
    )
    info = {
        "protocol": "CIFAR-C one-class (Sec. IV-A-1)",
        "variant": variant,
        "task_class_ids": list(class_ids),
        "severity": severity,
        "corruptions": corruptions,
        "shots": shots,
        "seed": seed,
        "shots_from": source,
        "n_test_normal": test.n_normal,
        "n_test_per_corruption": test.n_per_corruption,
        "corrupted_source": "generated by data_prep.cifar_c" if meta else "official CIFAR-C files",
        "clean_source": clean.source,
        "aligned_with_clean": pool.aligned,
        "max_test_normal": max_test_normal,
        "max_test_per_corruption": max_test_per_corruption,
        # The paper says "5000 clean testing samples from each class"; CIFAR-10 has 1000 test
        # images per class and CIFAR-100 500 per super-class, so all of them are used.
        "note": "normals = all clean test images of the class (paper's '5000 per class' does not match CIFAR's test split)",
    }
    return FewShotTask(
        dataset=variant,
        name=task_name,
        train=train,
        test=test.images,
        test_labels=test.labels,
        test_kinds=test.kinds,
        train_ids=train_ids,
        test_ids=test.ids,
        info=info,
    )


def _subsample(n: int, k: int | None, rng: np.random.Generator) -> np.ndarray:
    """Sorted positions of a deterministic subset of size min(k, n) (all when k is None)."""
    if k is None or k >= n:
        return np.arange(n)
    return np.sort(rng.choice(n, size=k, replace=False))


def data_sources(root: Path, task_args: dict) -> list[Path]:
    """What a task reads, for its data id (engine/data_identity.py): corruptions + clean images (both splits)."""
    root = Path(root)
    variant = task_args.get("variant") or task_args.get("dataset", "cifar10c")
    clean = _find_clean_root(root, task_args.get("clean_root"), variant, _read_meta(root) if root.is_dir() else None)
    return [root, clean.parent if clean.name == "test" else clean]
