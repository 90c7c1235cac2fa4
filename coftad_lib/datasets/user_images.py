"""Your images as files: listing a folder (hidden files and junk folders left out), expanding a
command line's files and folders, and checking that every file decodes.

Shared by the one loader of labelled user data (:mod:`.labelled`, folders and CSVs) and the
``fit`` / ``score`` commands, so that a folder with unreadable images is reported in one message.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm.auto import tqdm

from ..errors import COFTADInputError, DatasetNotFoundError, ImageReadError
from .files import USER_IMAGE_SUFFIXES

#: folders archivers and notebooks leave behind, never images of the user's
_JUNK_DIRS = {"__MACOSX", ".ipynb_checkpoints"}
_MAX_LISTED = 20


class UnreadableImagesError(ImageReadError):
    """Some image files do not decode; ``paths`` lists them, the message names up to 20."""

    def __init__(self, message: str, paths: Sequence[Path]) -> None:
        super().__init__(message)
        self.paths = list(paths)


def find_user_images(root: Path, recursive: bool = True) -> list[Path]:
    """Image files under ``root`` (or directly in it), sorted; no hidden file or folder, no ``__MACOSX``.

    macOS archives carry "._name.png" resource forks and ``__MACOSX/`` copies that are no images.
    """
    entries = root.rglob("*") if recursive else root.iterdir()
    return sorted(
        p for p in entries
        if p.is_file() and p.suffix.lower() in USER_IMAGE_SUFFIXES
        and not any(part.startswith(".") or part in _JUNK_DIRS for part in p.relative_to(root).parts)
    )


def require_listable(root: Path, what: str = "folder") -> None:
    """Raise :class:`COFTADInputError` when ``root`` cannot be listed (a folder of mode 000 would
    otherwise look empty: "no images")."""
    try:
        os.scandir(root).close()
    except PermissionError as exc:
        raise COFTADInputError(f"{root}: cannot list this {what} (permission denied); make it readable "
                               f"(chmod u+rx) or copy the images elsewhere") from exc


def user_images(folder: str | os.PathLike, what: str = "folder") -> list[Path]:
    """Image files anywhere under ``folder``, sorted; hidden files/folders and ``__MACOSX`` left out.

    Raises:
        DatasetNotFoundError: ``folder`` is not a folder.
        COFTADInputError: it cannot be listed, or holds no image file.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DatasetNotFoundError(f"{root}: {what} not found")
    require_listable(root, what)
    files = find_user_images(root)
    if not files:
        raise COFTADInputError(f"{root}: no images in this {what}; expected {', '.join(USER_IMAGE_SUFFIXES)} files")
    return files


def expand_inputs(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """Image files named on a command line: files as given, folders expanded with :func:`user_images`."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out += user_images(p)
        elif p.is_file():
            out.append(p)
        else:
            raise DatasetNotFoundError(f"{p}: no such image file or folder")
    if not out:
        raise COFTADInputError("no images given")
    return out


def _check_one(path: Path) -> str | None:
    from ..images import load_image

    try:
        load_image(path)
    except ImageReadError as exc:
        return str(exc)
    return None


def check_readable(paths: Sequence[Path], *, skip_bad: bool = False, what: str = "images",
                   progress: bool = True) -> tuple[list[Path], list[Path]]:
    """Decode every file once; return (readable, unreadable) paths.

    Raises:
        UnreadableImagesError: some files do not decode and ``skip_bad`` is False; the message
            lists them (up to 20) with the reason and says how to skip them.
    """
    paths = list(paths)
    with ThreadPoolExecutor(4) as pool:
        errors = list(tqdm(pool.map(_check_one, paths), total=len(paths), desc=f"checking {what}",
                           disable=not progress or len(paths) < 50, leave=False))
    bad = [p for p, e in zip(paths, errors, strict=True) if e is not None]
    if bad and not skip_bad:
        shown = "\n  ".join([e for e in errors if e is not None][:_MAX_LISTED])
        more = f"\n  ... and {len(bad) - _MAX_LISTED} more" if len(bad) > _MAX_LISTED else ""
        raise UnreadableImagesError(
            f"{len(bad)} of {len(paths)} {what} cannot be read:\n  {shown}{more}\n"
            "Fix or remove them, or pass --skip-bad (skip_bad=True) to leave them out.", bad)
    return [p for p, e in zip(paths, errors, strict=True) if e is None], bad


__all__ = ["UnreadableImagesError", "check_readable", "expand_inputs", "find_user_images", "require_listable",
           "user_images"]
