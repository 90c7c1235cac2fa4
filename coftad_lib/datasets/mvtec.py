"""MVTec AD (Bergmann et al. 2019) in its official folder layout: the paper's Sec. IV-A and Table IV.

Protocol (Sec. IV-A, following the few-shot settings of TDG [4]): the k = 2 / 5 / 10 normal shots
are drawn at random from ``<category>/train/good``; the test set is the whole official
``<category>/test`` folder, ``good`` -> 0 and every defect type -> 1.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import COFTADInputError, DatasetNotFoundError
from .files import check_images, list_images, require_dir, task_from_files
from .sampling import choose, rng_for
from .task import FewShotTask

#: the 15 categories in the column order of the paper's Table IV (10 objects, then 5 textures)
TASKS: list[str] = [
    "bottle", "cable", "capsule", "hazelnut", "metal_nut", "pill", "screw", "toothbrush",
    "transistor", "zipper", "carpet", "grid", "leather", "tile", "wood",
]  # fmt: skip

HOW_TO_GET = """\
MVTec AD cannot be downloaded automatically: its licence (CC BY-NC-SA 4.0, non-commercial) has to be
accepted first. Get `mvtec_anomaly_detection.tar.xz` from
    https://www.mvtec.com/company/research/datasets/mvtec-ad
(fill in the form, accept the licence, use the emailed link), then extract it:
    mkdir -p data/mvtec_ad && tar -xJf mvtec_anomaly_detection.tar.xz -C data/mvtec_ad
so that data/mvtec_ad/<category>/train/good/*.png, data/mvtec_ad/<category>/test/<type>/*.png and
data/mvtec_ad/<category>/ground_truth/<type>/*_mask.png exist; pass root="data/mvtec_ad"."""

def mask_for(image: str | os.PathLike) -> Path | None:
    """The official ground-truth mask of an MVTec test image, or None (good images, no masks shipped).

    ``<cat>/test/<type>/<stem>.png`` -> ``<cat>/ground_truth/<type>/<stem>_mask.png``.
    """
    image = Path(image)
    mask = image.parents[2] / "ground_truth" / image.parent.name / f"{image.stem}_mask.png"
    return mask if mask.is_file() else None


def _category_dir(root: Path, task: str) -> tuple[Path, Path]:
    """(folder ids are relative to, category folder); ``root`` may also be the category itself."""
    require_dir(root, "MVTec AD folder", HOW_TO_GET)
    if (root / task).is_dir():
        return root, root / task
    if root.name == task and (root / "train").is_dir():
        return root.parent, root
    found = sorted(p.name for p in root.iterdir() if (p / "train").is_dir())
    raise DatasetNotFoundError(
        f"{root / task}: MVTec AD category {task!r} not found "
        f"(categories present under {root}: {', '.join(found) or 'none'}).\n{HOW_TO_GET}"
    )


def _test_images(cat: Path, task: str) -> tuple[list[Path], list[str]]:
    """(paths, type folder names) of all of ``<cat>/test``, ``good`` first, then the defects."""
    test_dir = require_dir(cat / "test", "test folder", HOW_TO_GET)
    kinds = sorted(p.name for p in test_dir.iterdir() if p.is_dir())
    if "good" not in kinds:
        raise COFTADInputError(f"{test_dir / 'good'}: missing; expected the normal test images of MVTec {task}")
    if len(kinds) < 2:
        raise COFTADInputError(f"{test_dir}: only test/good is there; expected defect type folders too")
    kinds = ["good"] + [k for k in kinds if k != "good"]

    test: list[Path] = []
    test_kinds: list[str] = []
    for kind in kinds:
        files = list_images(test_dir / kind, f"the {kind!r} test images of MVTec {task}")
        test += files
        test_kinds += [kind] * len(files)
    return test, test_kinds


def load(
    root: str | os.PathLike, shots: int, seed: int = 0, *, task: str = "bottle", check_files: bool = True
) -> FewShotTask:
    """Few-shot MVTec AD task for one category (paper Sec. IV-A, Table IV).

    Args:
        root: folder holding the category folders (``<root>/<task>/train/good`` ...), or the
            category folder itself.
        shots: normal training images k (the paper uses 2, 5 and 10).
        seed: sampling seed; the shots depend only on (seed, task), not on other categories.
        task: the category, one of :data:`TASKS`.
        check_files: check every file's header and end marker and every mask's size now, so that a
            broken file is reported before any training starts.

    Returns:
        FewShotTask with ``train`` = k paths from train/good and ``test`` = all of test/, in
        folder order (``test_kinds`` = the defect type folder name, ``good`` for normals).
    """
    root = Path(root)
    base, cat = _category_dir(root, task)
    train_pool = list_images(cat / "train" / "good", f"the normal training images of MVTec {task}")
    test, test_kinds = _test_images(cat, task)
    labels = [0 if k == "good" else 1 for k in test_kinds]

    if check_files:
        check_images(train_pool)
        # a test image's kind is its folder's name; good images have no masks
        check_images(test, lambda path: mask_for(path) if path.parent.name != "good" else None)

    train, _ = choose(train_pool, shots, rng_for(seed, "mvtec", task), f"{cat / 'train' / 'good'} (shots)")
    return task_from_files(
        "mvtec",
        task,
        train,
        test,
        labels,
        test_kinds,
        base,
        info={
            "shots": shots,
            "seed": seed,
            "category": task,
            "train_pool": len(train_pool),
            "test_normal": labels.count(0),
            "test_anomalous": labels.count(1),
            "protocol": "shots from train/good; test = all of test/ (good=0, defects=1)",
        },
    )


def data_sources(root: Path, task_args: dict) -> list[Path]:
    """The folder a task reads, for its cells' data id (:mod:`coftad_lib.engine.data_identity`):
    only its category, so that adding a category leaves the others' keys alone."""
    root = Path(root)
    category = task_args.get("task", "bottle")
    return [root if (root / "train").is_dir() else root / category]
