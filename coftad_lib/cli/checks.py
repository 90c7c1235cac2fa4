"""Checks of the command line made before any work, and one-line descriptions of OS errors.

A bad ``--fpr``, seed or output path is refused before a model is fitted (a fit can take minutes),
and an output path that is one of the inputs is refused outright (``score M in/ --csv in/000.png``
once overwrote an input image).
"""

from __future__ import annotations

import argparse
import errno
import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import COFTADInputError

#: seeds are 32-bit: numpy and torch generators take 0 .. 2**32 - 1
SEED_MAX = 2**32 - 1


def check_options(args: argparse.Namespace) -> None:
    """``--seed``, ``--shots`` and (fit) ``--fpr`` in range; raises :class:`COFTADInputError`."""
    seed = getattr(args, "seed", None)
    if seed is not None and not 0 <= seed <= SEED_MAX:
        raise COFTADInputError(f"--seed {seed}: choose a whole number from 0 to {SEED_MAX}")
    shots = getattr(args, "shots", None)
    if shots is not None and shots < 1:
        raise COFTADInputError(f"--shots {shots}: need at least 1 normal image")
    fpr = getattr(args, "fpr", None)
    if fpr is not None and not 0 < fpr < 1:
        raise COFTADInputError(f"--fpr {fpr:g}: the false-positive rate must lie strictly between 0 and 1 "
                               "(e.g. 0.05 for 5%)")


def _is_same_or_inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_output_file(path: str | os.PathLike, option: str, inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """Refuse an output file that is a folder, one of ``inputs``, or cannot be created."""
    from ..model_folder import require_writable_parent

    out = Path(path)
    if out.is_dir():
        raise COFTADInputError(f"{option} {out}: is a folder; give a file name, e.g. {out / 'scores.csv'}")
    resolved = out.resolve()
    for item in inputs:
        if Path(item).resolve() == resolved:
            raise COFTADInputError(f"{option} {out}: is one of the inputs (an image or a model file); writing "
                                   "there would destroy it. Choose another file name")
    require_writable_parent(out, option)
    return out


def check_output_folder(path: str | os.PathLike, option: str, inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """Refuse an output folder that is a file, an input folder (or inside or around one), or cannot be created.

    Input files only conflict when they are the folder itself (then it is a file).
    """
    from ..model_folder import require_writable_parent

    out = Path(path)
    if out.exists() and not out.is_dir():
        raise COFTADInputError(f"{option} {out}: is a file, not a folder; choose a folder path")
    resolved = out.resolve()
    for item in inputs:
        src = Path(item).resolve()
        if src.is_dir() and (_is_same_or_inside(resolved, src) or _is_same_or_inside(src, resolved)):
            raise COFTADInputError(f"{option} {out}: lies in, or holds, the input {item}; its files would mix with "
                                   "the inputs. Choose a folder outside them")
    if out.is_dir():
        if not os.access(out, os.W_OK | os.X_OK):
            raise COFTADInputError(f"{option} {out}: cannot write in this folder (permission denied)")
    else:
        require_writable_parent(out, option)
    return out


_ADVICE = {
    errno.ENOSPC: "the disk is full: free some space or write elsewhere",
    errno.EDQUOT: "the disk quota is used up: free some space or write elsewhere",
    errno.EFBIG: "the file grew past the size this system allows: write elsewhere",
    errno.EACCES: "permission denied: check the path's permissions or choose another path",
    errno.EPERM: "operation not permitted: check the path's permissions or choose another path",
    errno.EROFS: "the file system is read-only: choose another path",
    errno.EISDIR: "a folder is in the way: give a file path",
    errno.ENOTDIR: "a file is in the way where a folder is needed: check the path",
}


def describe_os_error(exc: OSError) -> str:
    """``"<path>: <what happened>; <what to do>"`` for an OS error of a command."""
    if exc.strerror is None:  # raised with a message of its own (e.g. DatasetNotFoundError)
        return str(exc)
    where = exc.filename if exc.filename is not None else "(no path given)"
    what = exc.strerror or str(exc)
    advice = _ADVICE.get(exc.errno or -1)
    return f"{where}: {what}" + (f"; {advice}" if advice else "")


__all__ = ["SEED_MAX", "check_options", "check_output_file", "check_output_folder", "describe_os_error"]
