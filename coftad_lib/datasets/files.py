"""File checks shared by the folder-layout loaders (paper Sec. IV-A datasets and your own folders).

MVTec AD, Magnetic Tile, the AITEX / SemiCon crops folders, :mod:`.folder` and the CIFAR
class-folder copies all read images straight from disk. This module holds what they share:
finding a dataset folder (with the dataset's download instructions when it is missing), listing a
folder's images, catching truncated files cheaply, comparing a mask's size with its image's, and
turning the chosen path lists into a :class:`~.task.FewShotTask`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from ..errors import COFTADInputError, DatasetNotFoundError, ImageReadError
from .task import FewShotTask

#: file endings the loaders of the official dataset layouts accept as images
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

#: file endings accepted in folders of the user's own images (:mod:`.folder`, CIFAR class
#: folders): WebP too, which the official releases never use
USER_IMAGE_SUFFIXES: tuple[str, ...] = (*IMAGE_SUFFIXES, ".webp")

# PNG ends with the IEND chunk and JPEG with the EOI marker; a file cut short lacks them. Looking at
# the tail (1 KiB, which allows for padding some writers append) costs one seek per file instead of
# a full decode, so whole datasets can be checked when a task is built.
_TRAILERS = {".png": b"IEND\xaeB`\x82", ".jpg": b"\xff\xd9", ".jpeg": b"\xff\xd9"}
_TAIL_BYTES = 1024


def require_dir(path: Path, what: str, how_to_get: str) -> Path:
    """``path`` if it is a folder.

    Raises:
        DatasetNotFoundError: it is not; the message names ``what`` was expected there and ends with
            the dataset's ``how_to_get`` instructions.
    """
    if not path.is_dir():
        raise DatasetNotFoundError(f"{path}: {what} not found.\n{how_to_get}")
    return path


def image_files(
    folder: Path,
    suffixes: Sequence[str] = IMAGE_SUFFIXES,
    *,
    recursive: bool = False,
    hidden: bool = False,
) -> list[Path]:
    """The files in ``folder`` (or anywhere below it when ``recursive``) ending in ``suffixes``.

    The ending is compared case-insensitively; the result is sorted by path. ``hidden`` files
    (name starting with ".") are left out unless ``hidden=True``: macOS archives carry
    "._name.png" resource forks that are no images.
    """
    entries = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(
        p
        for p in entries
        if p.is_file() and p.suffix.lower() in suffixes and (hidden or not p.name.startswith("."))
    )


def list_images(
    folder: str | os.PathLike,
    what: str,
    suffixes: tuple[str, ...] = IMAGE_SUFFIXES,
    how_to_get: str | None = None,
) -> list[Path]:
    """The image files directly in ``folder``, sorted by name (hidden files left out).

    Raises:
        DatasetNotFoundError: ``folder`` does not exist (``how_to_get``, when given, is appended).
        COFTADInputError: ``folder`` holds no file ending in one of ``suffixes``; ``what`` says
            which part of which dataset was expected there.
    """
    folder = Path(folder)
    if not folder.is_dir():
        hint = f".\n{how_to_get}" if how_to_get else ""
        raise DatasetNotFoundError(f"{folder}: folder not found; expected {what} there{hint}")
    files = image_files(folder, suffixes)
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


def check_mask(
    mask: str | os.PathLike, image: str | os.PathLike, image_size: tuple[int, int]
) -> None:
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


def check_images(
    images: Iterable[Path], mask_of: Callable[[Path], Path | None] | None = None
) -> None:
    """Check every image file and, where ``mask_of(image)`` names a mask, that mask's size.

    Runs :func:`check_image_file` and :func:`check_mask`, so a broken file is reported before any
    training starts.
    """
    for path in images:
        size = check_image_file(path)
        mask = mask_of(path) if mask_of is not None else None
        if mask is not None:
            check_mask(mask, path, size)


def relative_id(path: Path, base: Path) -> str:
    """``path`` relative to ``base`` in POSIX form, an id that is the same on every machine.

    A path outside ``base`` (e.g. an absolute path in a user's labels CSV) is returned whole.
    """
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.as_posix()


def task_from_files(
    dataset: str,
    name: str,
    train: Sequence[Path],
    test: Sequence[Path],
    test_labels: Sequence[int],
    test_kinds: list[str],
    base: Path,
    info: dict[str, Any],
) -> FewShotTask:
    """A task whose k shots and M test items are image files; ids are the paths relative to ``base``.

    Args:
        train: the k normal shots.
        test: the M test images, with (M,) ``test_labels`` (1 = anomaly) and ``test_kinds``.
        base: the dataset folder ids are relative to.
        info: the protocol's parameters and counts.
    """
    return FewShotTask(
        dataset=dataset,
        name=name,
        train=[str(p) for p in train],
        test=[str(p) for p in test],
        test_labels=test_labels,
        test_kinds=test_kinds,
        train_ids=[relative_id(p, base) for p in train],
        test_ids=[relative_id(p, base) for p in test],
        info=info,
    )
