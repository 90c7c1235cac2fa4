"""Magnetic Tile Defects (Huang et al. 2020) in the authors' layout: the paper's Sec. IV-A and Table V.

Protocol (Sec. IV-A): k = 5 / 10 / 50 normal shots are drawn from ``MT_Free``; the test set is the
rest of ``MT_Free`` (label 0) plus every image of the five defect folders (label 1, kind = the
defect type). Images are grayscale JPEGs of varying size, each with a same-name ``.png`` mask.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import DatasetNotFoundError
from .files import check_images, list_images, require_dir, task_from_files
from .sampling import choose, rng_for
from .task import FewShotTask

TASKS: list[str] = ["magnetic_tile"]

#: defect folder -> the kind recorded for its test images, in the paper's listing order
DEFECT_FOLDERS: dict[str, str] = {
    "MT_Blowhole": "Blowhole",
    "MT_Crack": "Crack",
    "MT_Fray": "Fray",
    "MT_Break": "Break",
    "MT_Uneven": "Uneven",
}
NORMAL_FOLDER = "MT_Free"

HOW_TO_GET = """\
Magnetic Tile Defects (Huang, Qiu & Yuan 2020) is public on GitHub:
    https://github.com/abin24/Magnetic-tile-defect-datasets.
Either run
    python -m coftad_lib.datasets.download magnetic_tile data
(which leaves data/magnetic_tile/MT_Blowhole ... MT_Free) or download the repository's zip and
extract it; pass root=<folder holding MT_Blowhole/, MT_Break/, MT_Crack/, MT_Fray/, MT_Uneven/,
MT_Free/>, each with Imgs/*.jpg images and same-name Imgs/*.png masks."""


def _find_root(root: Path) -> Path:
    """``root`` itself, or its single subfolder holding the MT_* folders (a freshly unzipped archive)."""
    require_dir(root, "Magnetic Tile folder", HOW_TO_GET)
    if (root / NORMAL_FOLDER).is_dir():
        return root
    nested = [p for p in root.iterdir() if (p / NORMAL_FOLDER).is_dir()]
    if len(nested) == 1:
        return nested[0]
    raise DatasetNotFoundError(f"{root / NORMAL_FOLDER}: not found; {root} is not a Magnetic Tile folder.\n{HOW_TO_GET}")


def _mask_of(image: Path) -> Path | None:
    """The same-name ``.png`` mask of an image, or None.

    Masks are not needed for image-level scores, so a missing one is allowed.
    """
    mask = image.with_suffix(".png")
    return mask if mask.is_file() else None


def _images(folder: Path, what: str, check_files: bool) -> list[Path]:
    files = list_images(folder / "Imgs", what, suffixes=(".jpg", ".jpeg"), how_to_get=HOW_TO_GET)
    if check_files:
        check_images(files, _mask_of)
    return files


def load(
    root: str | os.PathLike,
    shots: int,
    seed: int = 0,
    *,
    task: str = "magnetic_tile",
    check_files: bool = True,
) -> FewShotTask:
    """Few-shot Magnetic Tile task (paper Sec. IV-A).

    Args:
        root: folder holding the six ``MT_*`` folders (or an unzipped archive folder around them).
        shots: normal training images k (the paper uses 5, 10 and 50).
        seed: sampling seed.
        task: only ``"magnetic_tile"``.
        check_files: check each image's header and end marker and each mask's size now.

    Returns:
        FewShotTask with k MT_Free paths as ``train``; ``test`` = remaining MT_Free (kind
        ``Free``) followed by the defect images in :data:`DEFECT_FOLDERS` order.
    """
    base = _find_root(Path(root))
    normal = _images(base / NORMAL_FOLDER, "the defect-free (MT_Free) images", check_files)
    train, rest = choose(normal, shots, rng_for(seed, "magnetic_tile"), f"{base / NORMAL_FOLDER / 'Imgs'} (shots)")
    test: list[Path] = list(rest)
    kinds = ["Free"] * len(rest)
    for folder, kind in DEFECT_FOLDERS.items():
        files = _images(base / folder, f"the {kind} defect images ({folder})", check_files)
        test += files
        kinds += [kind] * len(files)
    labels = [0 if k == "Free" else 1 for k in kinds]
    return task_from_files(
        "magnetic_tile",
        task,
        train,
        test,
        labels,
        kinds,
        base,
        info={
            "shots": shots,
            "seed": seed,
            "normal_pool": len(normal),
            "test_normal": labels.count(0),
            "test_anomalous": labels.count(1),
            "protocol": "shots from MT_Free; test = rest of MT_Free + all defect images",
        },
    )
