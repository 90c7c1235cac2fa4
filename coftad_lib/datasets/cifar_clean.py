"""Readers of the clean CIFAR images: torchvision's official python batches or a folder per class.

The layouts are described in :mod:`coftad_lib.datasets.cifar_c`; the official batch order is the
order the official CIFAR-C rows follow, which is what :class:`CleanSet` ids record.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import COFTADInputError, DatasetNotFoundError
from ..images import load_image
from .cifar_classes import (
    _VARIANTS,
    CIFAR10_CLASSES,
    CIFAR100_FINE_CLASSES,
    HOW_TO_GET,
    _check_variant,
    class_names,
)
from .files import USER_IMAGE_SUFFIXES, image_files


@dataclass
class CleanSet:
    """Clean CIFAR images of one split.

    Attributes:
        images: (N, 32, 32, 3) uint8.
        labels: (N,) int64 class ids (fine ids for CIFAR-100).
        ids: N stable ids: ``"test/<index>"`` / ``"train/<index>"`` for the official batches
            (index in the official order, which the official CIFAR-C rows follow), or
            ``"<class>/<file name>"`` for a class-folder copy.
        source: where the images were read from.
    """

    images: np.ndarray
    labels: np.ndarray
    ids: list[str]
    source: str


# ----------------------------------------------------------------------------- official batches


class _OfficialBatchUnpickler(pickle.Unpickler):
    """Unpickler for the official CIFAR python batches: only the numpy types they contain load."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: not part of the official CIFAR batch format"
            )
        return super().find_class(module, name)


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray, list[int] | None]:
    """One official batch -> ((N,32,32,3) uint8, (N,) labels (fine for CIFAR-100), coarse or None)."""
    try:
        with open(path, "rb") as f:
            d = _OfficialBatchUnpickler(f, encoding="bytes").load()
        data = np.asarray(d[b"data"], dtype=np.uint8)
        labels = d.get(b"labels", d.get(b"fine_labels"))
        if labels is None:
            raise KeyError("labels / fine_labels")
        images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    except (
        OSError,
        EOFError,
        pickle.UnpicklingError,
        KeyError,
        ValueError,
        TypeError,
        AttributeError,
    ) as exc:
        raise COFTADInputError(
            f"{path}: cannot read this CIFAR python batch ({type(exc).__name__}: {exc}); expected the "
            "official file from cifar-10-python.tar.gz / cifar-100-python.tar.gz"
        ) from exc
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) != len(images):
        raise COFTADInputError(f"{path}: {len(images)} images but {len(labels)} labels")
    return np.ascontiguousarray(images), labels, d.get(b"coarse_labels")


def _official_files(d: Path, variant: str) -> tuple[list[Path], list[Path]] | None:
    """(test files, train files) if ``d`` holds (or is) the official python batch folder."""
    if variant == "cifar10c":
        for base in (d / "cifar-10-batches-py", d):
            if (base / "test_batch").is_file():
                train = [base / f"data_batch_{i}" for i in range(1, 6)]
                return [base / "test_batch"], train if all(p.is_file() for p in train) else []
    else:
        for base in (d / "cifar-100-python", d):
            if (base / "test").is_file():
                return [base / "test"], [base / "train"] if (base / "train").is_file() else []
    return None


# ----------------------------------------------------------------------------- class folders


def _class_folder_root(d: Path, variant: str, split: str) -> Path | None:
    """The folder holding ``<class>/`` subfolders for ``split``, if ``d`` is such a copy."""
    names = set(class_names(variant))

    def has_classes(p: Path) -> bool:
        return p.is_dir() and any(c.is_dir() and c.name in names for c in p.iterdir())

    if split == "test":
        for cand in (d / "test", d):
            if has_classes(cand):
                return cand
    else:
        for cand in (d / "train", d.parent / "train" if d.name == "test" else None):
            if cand is not None and has_classes(cand):
                return cand
    return None


def _read_class_folder(
    folder: Path, variant: str, labels: list[int] | None, limit_per_class: int | None
) -> CleanSet:
    names = class_names(variant)
    wanted = range(len(names)) if labels is None else labels
    images, out_labels, ids = [], [], []
    for lab in wanted:
        cdir = folder / names[lab]
        if not cdir.is_dir():
            raise DatasetNotFoundError(
                f"{cdir}: class folder missing; expected one folder per class under {folder}\n{HOW_TO_GET}"
            )
        files = image_files(cdir, USER_IMAGE_SUFFIXES, hidden=True)
        if not files:
            raise COFTADInputError(
                f"{cdir}: class folder has no images; expected *.png / *.jpg files"
            )
        for p in files[:limit_per_class]:
            arr = np.asarray(load_image(p))
            if arr.shape != (32, 32, 3):
                raise COFTADInputError(
                    f"{p}: expected a 32x32 CIFAR image, got {arr.shape[1]}x{arr.shape[0]}"
                )
            images.append(arr)
            out_labels.append(lab)
            ids.append(f"{names[lab]}/{p.name}")
    return CleanSet(np.stack(images), np.asarray(out_labels, dtype=np.int64), ids, str(folder))


# ----------------------------------------------------------------------------- clean reader


def infer_variant(clean_root: str | os.PathLike) -> str:
    """Guess ``"cifar10c"`` / ``"cifar100c"`` from the clean images' layout."""
    d = Path(clean_root)
    for variant in _VARIANTS:
        if _official_files(d, variant) is not None:
            return variant
    for base in (d / "test", d):
        if base.is_dir():
            sub = {p.name for p in base.iterdir() if p.is_dir()}
            if sub and sub <= set(CIFAR10_CLASSES):
                return "cifar10c"
            if sub and sub <= set(CIFAR100_FINE_CLASSES):
                return "cifar100c"
    raise DatasetNotFoundError(f"{d}: no clean CIFAR-10/100 images found here\n{HOW_TO_GET}")


def has_clean(clean_root: str | os.PathLike, variant: str, split: str = "test") -> bool:
    """Whether ``clean_root`` holds clean images of ``split`` in a supported layout."""
    d = Path(clean_root)
    files = _official_files(d, variant)
    if files is not None:
        return bool(files[0] if split == "test" else files[1])
    return _class_folder_root(d, variant, split) is not None


def read_clean(
    clean_root: str | os.PathLike,
    variant: str,
    split: str = "test",
    labels: list[int] | None = None,
    limit_per_class: int | None = None,
) -> CleanSet:
    """Read clean CIFAR images of ``split`` ("test" or "train"), optionally only some classes.

    Args:
        labels: stored class ids to keep (fine ids for CIFAR-100); None keeps all.
        limit_per_class: keep the first N images of each class (in file / official order).

    Returns:
        :class:`CleanSet` with (N, 32, 32, 3) uint8 images.
    """
    _check_variant(variant)
    d = Path(clean_root)
    if split not in ("test", "train"):
        raise COFTADInputError(f"split={split!r}: expected 'test' or 'train'")
    if limit_per_class is not None and limit_per_class < 1:
        raise COFTADInputError(f"limit_per_class={limit_per_class}: must be >= 1")
    files = _official_files(d, variant)
    if files is not None:
        paths = files[0] if split == "test" else files[1]
        if not paths:
            raise DatasetNotFoundError(f"{d}: no official CIFAR {split} batches here\n{HOW_TO_GET}")
        parts = [_read_batch(p) for p in paths]
        images = np.concatenate([p[0] for p in parts])
        labs = np.concatenate([p[1] for p in parts])
        keep = np.ones(len(labs), bool) if labels is None else np.isin(labs, labels)
        if limit_per_class is not None:
            for lab in np.unique(labs):
                idx = np.flatnonzero(labs == lab)
                keep[idx[limit_per_class:]] = False
        idx = np.flatnonzero(keep)
        return CleanSet(images[idx], labs[idx], [f"{split}/{i}" for i in idx], str(paths[0].parent))
    folder = _class_folder_root(d, variant, split)
    if folder is None:
        raise DatasetNotFoundError(
            f"{d}: no clean CIFAR {split} images found; expected the official python batches "
            f"or {split}/<class>/ image folders\n{HOW_TO_GET}"
        )
    return _read_class_folder(folder, variant, labels, limit_per_class)
