"""CIFAR-10-C / CIFAR-100-C as one-class anomaly detection (paper Sec. IV-A-1, Tables II, III, VI).

Protocol: each class (CIFAR-10) or super-class (CIFAR-100, 20 coarse labels) in turn is normal.
``shots`` (10 in the paper) clean images of that class are the training set; the test set is the
class's clean CIFAR test images (normal, label 0) plus their corrupted versions at severity 4
for 9 corruption types (anomalies, label 1).

Data layouts read:

* corrupted images, ``root``: the official CIFAR-10-C / CIFAR-100-C files, ``<corruption>.npy``
  (uint8, (5 * N, 32, 32, 3): severities 1..5 stacked, N = 10,000 rows each, in the order of the
  official clean test batch) and ``labels.npy`` ((5 * N,) class ids; fine ids for CIFAR-100-C).
  Files written by ``python -m data_prep.cifar_c`` use the same names plus a sidecar
  ``coftad_generated.json`` that lists which severities are stacked (often only 4) and which clean
  image each row came from.
* clean images, ``clean_root``: torchvision's official python batches
  (``cifar-10-batches-py/{test_batch,data_batch_1..5}``, ``cifar-100-python/{test,train}``), or a
  folder per class (``<clean_root>/[test/]<class>/*.png|jpg``; fine class names for CIFAR-100),
  optionally with a sibling ``train/<class>/`` folder.
"""

from __future__ import annotations

import json
import os
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import COFTADInputError, DatasetNotFoundError
from ..images import load_image
from .files import USER_IMAGE_SUFFIXES, image_files
from .sampling import choose, rng_for
from .task import FewShotTask

CIFAR10_CLASSES: list[str] = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip

#: CIFAR-100 fine class names, index = fine label (alphabetical, as in the official ``meta`` file)
CIFAR100_FINE_CLASSES: list[str] = [
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup",
    "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house",
    "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man",
    "maple_tree", "motorcycle", "mountain", "mouse", "mushroom", "oak_tree", "orange", "orchid",
    "otter", "palm_tree", "pear", "pickup_truck", "pine_tree", "plain", "plate", "poppy",
    "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal",
    "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar",
    "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor",
    "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
]  # fmt: skip

#: The 20 CIFAR-100 super-classes (coarse labels, index = coarse id) and their 5 fine classes.
CIFAR100_SUPERCLASSES: dict[str, list[str]] = {
    "aquatic_mammals": ["beaver", "dolphin", "otter", "seal", "whale"],
    "fish": ["aquarium_fish", "flatfish", "ray", "shark", "trout"],
    "flowers": ["orchid", "poppy", "rose", "sunflower", "tulip"],
    "food_containers": ["bottle", "bowl", "can", "cup", "plate"],
    "fruit_and_vegetables": ["apple", "mushroom", "orange", "pear", "sweet_pepper"],
    "household_electrical_devices": ["clock", "keyboard", "lamp", "telephone", "television"],
    "household_furniture": ["bed", "chair", "couch", "table", "wardrobe"],
    "insects": ["bee", "beetle", "butterfly", "caterpillar", "cockroach"],
    "large_carnivores": ["bear", "leopard", "lion", "tiger", "wolf"],
    "large_man-made_outdoor_things": ["bridge", "castle", "house", "road", "skyscraper"],
    "large_natural_outdoor_scenes": ["cloud", "forest", "mountain", "plain", "sea"],
    "large_omnivores_and_herbivores": ["camel", "cattle", "chimpanzee", "elephant", "kangaroo"],
    "medium_mammals": ["fox", "porcupine", "possum", "raccoon", "skunk"],
    "non-insect_invertebrates": ["crab", "lobster", "snail", "spider", "worm"],
    "people": ["baby", "boy", "girl", "man", "woman"],
    "reptiles": ["crocodile", "dinosaur", "lizard", "snake", "turtle"],
    "small_mammals": ["hamster", "mouse", "rabbit", "shrew", "squirrel"],
    "trees": ["maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"],
    "vehicles_1": ["bicycle", "bus", "motorcycle", "pickup_truck", "train"],
    "vehicles_2": ["lawn_mower", "rocket", "streetcar", "tank", "tractor"],
}

#: (100,) coarse label of each fine label, derived from :data:`CIFAR100_SUPERCLASSES`.
CIFAR100_COARSE_OF_FINE: np.ndarray = np.empty(100, dtype=np.int64)
for _coarse, _members in enumerate(CIFAR100_SUPERCLASSES.values()):
    for _fine in _members:
        CIFAR100_COARSE_OF_FINE[CIFAR100_FINE_CLASSES.index(_fine)] = _coarse

TASKS_BY_VARIANT: dict[str, list[str]] = {
    "cifar10c": list(CIFAR10_CLASSES),
    # Table III heads its columns "Sup.Cls. 0" .. "Sup.Cls. 19" (coarse label ids).
    "cifar100c": [f"superclass_{k}" for k in range(20)],
}
#: task names of the default variant (CIFAR-10-C, Table II); see TASKS_BY_VARIANT for CIFAR-100-C
TASKS: list[str] = TASKS_BY_VARIANT["cifar10c"]

#: The 9 corruptions used at severity 4. The paper (Sec. IV-A, Fig. 4) chooses "9 types of
#: level 4 corruptions" without listing them. We take every official type that can be
#: regenerated with numpy/scipy/PIL alone, so official files and our generated ones hold the same
#: types: all 3 noises, defocus blur, brightness, and the 4 digital ones (contrast, elastic,
#: pixelate, JPEG). Left out: glass/motion/zoom blur, snow, frost, fog (ImageMagick, frost photos,
#: or slow per-pixel loops in the official generator).
DEFAULT_CORRUPTIONS: list[str] = [
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "brightness",
    "contrast", "elastic_transform", "pixelate", "jpeg_compression",
]  # fmt: skip

#: the paper's severity level for the anomalies
DEFAULT_SEVERITY = 4

#: sidecar written by ``python -m data_prep.cifar_c`` next to generated ``<corruption>.npy``
GENERATED_META = "coftad_generated.json"

HOW_TO_GET = """\
CIFAR-10-C / CIFAR-100-C (Hendrycks & Dietterich 2019):
  corrupted files: https://zenodo.org/record/2535967 (CIFAR-10-C.tar) and
  https://zenodo.org/record/3555552 (CIFAR-100-C.tar); extract so that <root>/gaussian_noise.npy
  and <root>/labels.npy exist.
  clean images: torchvision.datasets.CIFAR10(<clean_root>, download=True) (resp. CIFAR100), which
  creates <clean_root>/cifar-10-batches-py/ (resp. cifar-100-python/); or a folder per class
  <clean_root>/test/<class>/*.png (optionally <clean_root>/train/<class>/).
  Without the official corrupted files, generate level-4 corruptions from the clean test images:
  python -m data_prep.cifar_c --clean <clean_root> --out <root> --severity 4"""

_VARIANTS = ("cifar10c", "cifar100c")


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


def _check_variant(variant: str) -> str:
    if variant not in _VARIANTS:
        raise COFTADInputError(f"variant={variant!r}: expected one of {', '.join(_VARIANTS)}")
    return variant


def class_names(variant: str) -> list[str]:
    """Class names indexed by the labels stored in the files (fine names for CIFAR-100)."""
    return CIFAR10_CLASSES if _check_variant(variant) == "cifar10c" else CIFAR100_FINE_CLASSES


def task_labels(variant: str, task: str) -> tuple[str, list[int]]:
    """Canonical task name and the stored class ids that are normal for it.

    CIFAR-10 tasks are class names (``"airplane"``); CIFAR-100 tasks are ``"superclass_<k>"``
    (k = coarse label 0..19) or the super-class name (``"flowers"``).
    """
    _check_variant(variant)
    name = str(task).strip().lower()
    if variant == "cifar10c":
        if name not in CIFAR10_CLASSES:
            raise COFTADInputError(
                f"task={task!r} is not a CIFAR-10 class; choose one of {', '.join(CIFAR10_CLASSES)}"
            )
        return name, [CIFAR10_CLASSES.index(name)]
    supers = list(CIFAR100_SUPERCLASSES)
    if name in supers:
        k = supers.index(name)
    elif name.startswith("superclass_") and name[len("superclass_") :].isdigit():
        k = int(name[len("superclass_") :])
        if not 0 <= k < 20:
            raise COFTADInputError(f"task={task!r}: CIFAR-100 super-classes are numbered 0..19")
    else:
        raise COFTADInputError(
            f"task={task!r}: expected 'superclass_0'..'superclass_19' or a super-class name "
            f"({', '.join(supers)})"
        )
    return f"superclass_{k}", np.flatnonzero(CIFAR100_COARSE_OF_FINE == k).tolist()


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
    cands = [root, root.parent]
    if meta and meta.get("clean_source"):
        cands.append(Path(meta["clean_source"]))
    for d in cands:
        if d.exists() and has_clean(d, variant, "test"):
            return d
    raise DatasetNotFoundError(
        f"no clean CIFAR test images found in {', '.join(str(c) for c in cands)}; "
        f"pass clean_root=<folder>\n{HOW_TO_GET}"
    )


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
    if shots_from not in ("auto", "train", "test"):
        raise COFTADInputError(f"shots_from={shots_from!r}: expected 'auto', 'train' or 'test'")
    for name, val in (
        ("max_test_normal", max_test_normal),
        ("max_test_per_corruption", max_test_per_corruption),
    ):
        if val is not None and val < 1:
            raise COFTADInputError(f"{name}={val}: must be >= 1 or None")

    # --- which rows of the corrupted files are this task's, at this severity
    meta = _read_meta(root)
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
    class_rows = np.flatnonzero(np.isin(labels, class_ids))
    if len(class_rows) == 0:
        raise COFTADInputError(
            f"{root / 'labels.npy'}: no rows of task {task_name} (class ids {class_ids})"
        )

    # --- clean test images of the class, matched to the corrupted rows when possible
    croot = _find_clean_root(root, clean_root, variant, meta)
    clean = read_clean(croot, variant, "test", labels=class_ids)
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
        if not np.array_equal(clean.labels[pool_clean], labels[class_rows]):
            raise COFTADInputError(
                f"{root / 'labels.npy'} disagrees with the labels of the clean images in {clean.source}; "
                "the clean images are not the ones the corrupted files were made from"
            )
        pool_rows = class_rows
    else:
        # Official CIFAR-C rows follow the official test order; a class-folder copy has no such
        # order, so normals and anomalies are drawn from the class independently.
        pool_clean = np.arange(len(clean.ids))
        pool_rows = class_rows

    # --- training shots
    has_train = has_clean(croot, variant, "train")
    source = ("train" if has_train else "test") if shots_from == "auto" else shots_from
    if source == "train" and not has_train:
        raise DatasetNotFoundError(
            f"{croot}: shots_from='train' but no clean train split is there\n{HOW_TO_GET}"
        )
    shot_rng = rng_for(seed, variant, task_name, "shots")
    if source == "train":
        train_set = read_clean(croot, variant, "train", labels=class_ids)
        chosen, _ = choose(
            list(range(len(train_set.ids))),
            shots,
            shot_rng,
            f"{croot} (clean train images of {task_name})",
        )
        train = train_set.images[chosen]
        train_ids = [train_set.ids[i] for i in chosen]
    else:
        positions = list(range(len(pool_clean)))
        chosen, rest = choose(
            positions, shots, shot_rng, f"{clean.source} (clean test images of {task_name})"
        )
        train = clean.images[pool_clean[chosen]]
        train_ids = [clean.ids[i] for i in pool_clean[chosen]]
        pool_clean = pool_clean[rest]
        if aligned:
            pool_rows = pool_rows[rest]
        else:
            warnings.warn(
                f"{root}: shots come from the clean test images but the corrupted files cannot be matched "
                f"to them ({clean.source} is not the official test batch), so corrupted versions of the "
                "shots may be among the anomalies; give clean_root the official python batches",
                stacklevel=2,
            )

    if len(pool_clean) == 0:
        raise COFTADInputError(
            f"{clean.source}: no clean test images of {task_name} are left for testing after drawing "
            f"{shots} shots from them; use a clean train split (shots_from='train') or more images"
        )

    # --- test set: normals then each corruption's anomalies
    normal_pos = _subsample(
        len(pool_clean), max_test_normal, rng_for(seed, variant, task_name, "test", "clean")
    )
    normals = clean.images[pool_clean[normal_pos]]
    test_parts = [normals]
    test_ids = [clean.ids[i] for i in pool_clean[normal_pos]]
    test_kinds = ["clean"] * len(normals)
    n_per_corruption: dict[str, int] = {}
    for name in corruptions:
        arr = _load_npy(root / f"{name}.npy", mmap=True)
        if arr.shape[1:] != (32, 32, 3) or arr.dtype != np.uint8 or len(arr) != len(labels_all):
            raise COFTADInputError(
                f"{root / (name + '.npy')}: expected uint8 ({len(labels_all)}, 32, 32, 3) to match labels.npy, "
                f"got {arr.dtype} {arr.shape}"
            )
        pos = _subsample(
            len(pool_rows), max_test_per_corruption, rng_for(seed, variant, task_name, "test", name)
        )
        rows = pool_rows[pos]
        test_parts.append(np.asarray(arr[block * n_per + rows]))
        test_ids += [f"{name}/{severity}/{row_ids[r]}" for r in rows]
        test_kinds += [name] * len(rows)
        n_per_corruption[name] = len(rows)
    test = np.concatenate(test_parts)
    test_labels = np.r_[
        np.zeros(len(normals), np.int64), np.ones(len(test) - len(normals), np.int64)
    ]

    info = {
        "protocol": "CIFAR-C one-class (Sec. IV-A-1)",
        "variant": variant,
        "task_class_ids": list(class_ids),
        "severity": severity,
        "corruptions": corruptions,
        "shots": shots,
        "seed": seed,
        "shots_from": source,
        "n_test_normal": int(len(normals)),
        "n_test_per_corruption": n_per_corruption,
        "corrupted_source": "generated by data_prep.cifar_c" if meta else "official CIFAR-C files",
        "clean_source": clean.source,
        "aligned_with_clean": aligned,
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
        test=test,
        test_labels=test_labels,
        test_kinds=test_kinds,
        train_ids=train_ids,
        test_ids=test_ids,
        info=info,
    )


def _subsample(n: int, k: int | None, rng: np.random.Generator) -> np.ndarray:
    """Sorted positions of a deterministic subset of size min(k, n) (all when k is None)."""
    if k is None or k >= n:
        return np.arange(n)
    return np.sort(rng.choice(n, size=k, replace=False))
