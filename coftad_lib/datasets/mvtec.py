"""MVTec AD (Bergmann et al. 2019) in its official folder layout: the paper's Sec. IV-A and Table IV.

Protocol (Sec. IV-A, following the few-shot settings of TDG [4]): the k = 2 / 5 / 10 normal shots
are drawn at random from ``<category>/train/good``; the test set is the whole official
``<category>/test`` folder, ``good`` -> 0 and every defect type -> 1.

This module also holds the file checks that the other folder-layout loaders (Magnetic Tile,
AITEX / SemiCon crops) share: listing a folder's images, catching truncated files cheaply and
comparing a mask's size with its image's.
"""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ..errors import COFTADInputError, DatasetNotFoundError, ImageReadError
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

#: file endings the folder loaders accept as images
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

# PNG ends with the IEND chunk and JPEG with the EOI marker; a file cut short lacks them. Looking at
# the tail (1 KiB, which allows for padding some writers append) costs one seek per file instead of
# a full decode, so whole datasets can be checked when a task is built.
_TRAILERS = {".png": b"IEND\xaeB`\x82", ".jpg": b"\xff\xd9", ".jpeg": b"\xff\xd9"}
_TAIL_BYTES = 1024


def list_images(folder: str | os.PathLike, what: str, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> list[Path]:
    """The image files directly in ``folder``, sorted by name (hidden files left out).

    Raises:
        DatasetNotFoundError: ``folder`` does not exist.
        COFTADInputError: ``folder`` holds no file ending in one of ``suffixes``; ``what`` says
            which part of which dataset was expected there.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetNotFoundError(f"{folder}: folder not found; expected {what} there")
    # hidden files are skipped: macOS archives carry "._name.png" resource forks that are no images
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith(".")
    )
    if not files:
        raise COFTADInputError(
            f"{folder}: no images ({', '.join(suffixes)}) in this folder; expected {what} there"
        )
    return files


def check_image_file(path: str | os.PathLike) -> tuple[int, int]:
    """Check that ``path`` is a readable, complete image without decoding its pixels.

    Returns:
        (width, height) from the file's header.

    Raises:
        ImageReadError: missing, empty, not an image, or truncated (PNG/JPEG end marker absent).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot read this image file ({exc})") from exc
    if size == 0:
        raise ImageReadError(f"{path}: the file is empty (0 bytes); expected a complete image")
    trailer = _TRAILERS.get(path.suffix.lower())
    if trailer is not None:
        with open(path, "rb") as fh:
            fh.seek(max(0, size - _TAIL_BYTES))
            if trailer not in fh.read():
                raise ImageReadError(
                    f"{path}: the image is truncated (its {path.suffix.lower()} end marker is "
                    f"missing); re-extract or re-download this file"
                )
    try:
        with Image.open(path) as img:
            return img.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"{path}: not a readable image ({exc})") from exc


def check_mask(mask: str | os.PathLike, image: str | os.PathLike, image_size: tuple[int, int]) -> None:
    """Check that the ground-truth ``mask`` is a complete image of the same size as ``image``.

    Raises:
        ImageReadError: the mask file is unreadable or truncated.
        COFTADInputError: the sizes differ.
    """
    mask_size = check_image_file(mask)
    if mask_size != tuple(image_size):
        raise COFTADInputError(
            f"{mask}: mask is {mask_size[0]}x{mask_size[1]} (WxH) but its image {image} is "
            f"{image_size[0]}x{image_size[1]}; a mask must have its image's size"
        )


def mask_for(image: str | os.PathLike) -> Path | None:
    """The official ground-truth mask of an MVTec test image, or None (good images, no masks shipped).

    ``<cat>/test/<type>/<stem>.png`` -> ``<cat>/ground_truth/<type>/<stem>_mask.png``.
    """
    image = Path(image)
    mask = image.parents[2] / "ground_truth" / image.parent.name / f"{image.stem}_mask.png"
    return mask if mask.is_file() else None


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _category_dir(root: Path, task: str) -> tuple[Path, Path]:
    """(folder ids are relative to, category folder); ``root`` may also be the category itself."""
    if not root.is_dir():
        raise DatasetNotFoundError(f"{root}: MVTec AD folder not found.\n{HOW_TO_GET}")
    if (root / task).is_dir():
        return root, root / task
    if root.name == task and (root / "train").is_dir():
        return root.parent, root
    found = sorted(p.name for p in root.iterdir() if (p / "train").is_dir())
    raise DatasetNotFoundError(
        f"{root / task}: MVTec AD category {task!r} not found "
        f"(categories present under {root}: {', '.join(found) or 'none'}).\n{HOW_TO_GET}"
    )


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
    test_dir = cat / "test"
    if not test_dir.is_dir():
        raise DatasetNotFoundError(f"{test_dir}: test folder not found.\n{HOW_TO_GET}")
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
    labels = [0 if k == "good" else 1 for k in test_kinds]

    if check_files:
        for path in train_pool:
            check_image_file(path)
        for path, kind in zip(test, test_kinds, strict=True):
            size = check_image_file(path)
            mask = mask_for(path) if kind != "good" else None
            if mask is not None:
                check_mask(mask, path, size)

    train, _ = choose(train_pool, shots, rng_for(seed, "mvtec", task), f"{cat / 'train' / 'good'} (shots)")
    return FewShotTask(
        dataset="mvtec",
        name=task,
        train=[str(p) for p in train],
        test=[str(p) for p in test],
        test_labels=labels,
        test_kinds=test_kinds,
        train_ids=[_rel(p, base) for p in train],
        test_ids=[_rel(p, base) for p in test],
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
