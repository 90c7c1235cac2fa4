"""Outputs that are complete or absent: atomic file writes, atomic folder replacement, a writer lock.

Every file a command writes (CSV, heat map, report, figure, model file) goes to a hidden temporary
name in its own folder and is renamed into place, so a kill, Ctrl-C or a full disk never leaves half
a file under the real name; a failed write removes its temporary. A folder (a saved model) is built
under a hidden temporary name next to its final place and renamed into place, replacing an older one
only once it is complete. Files get the mode the user's umask gives (``0o666 & ~umask``), whatever the
library that wrote them chose, so a shared model folder reads for whoever may read the folder.

:func:`exclusive_lock` serialises writers of one output: the second one fails at once naming the
process that holds the lock; a lock left by a killed process is free again (an ``flock``, which
the kernel releases when its process ends).

Only the standard library: :mod:`data_prep` uses it too (:mod:`data_prep.atomic_io`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import os
import re
import shutil
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .errors import COFTADInputError

_UMASK_LOCK = threading.Lock()
#: errors of a file system that has no flock
_NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


class OutputLockedError(COFTADInputError):
    """Another running process writes the same output; the message names it and the lock file."""


def current_umask() -> int:
    """The process umask (read by setting it and putting it back: Python has no plain getter)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _file_mode() -> int:
    return 0o666 & ~current_umask()


def temporary_sibling(path: str | os.PathLike, suffix: str = "tmp") -> Path:
    """A unique hidden name next to ``path`` (``.<name>.<pid>-<random>.<suffix>``); loaders skip hidden files."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.{suffix}")


def _fsync(path: Path) -> None:
    # The data must be on disk before the rename publishes it; a full disk may only show here.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, keep_ending: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s content to; renamed to ``path`` when the block ends.

    For writers that open the file themselves (``savefig``, ``safetensors``, ``PIL``, ``np.save``);
    ``keep_ending`` ends the temporary name with ``path``'s endings too (``.tmp.nii.gz``), for
    writers that pick the format from the name. When the block raises (or is interrupted) the
    temporary is removed and ``path`` is left as it was.
    """
    path = Path(path)
    tmp = temporary_sibling(path)
    if keep_ending:
        tmp = tmp.with_name(tmp.name + "".join(path.suffixes))
    try:
        yield tmp
        if not tmp.is_file():
            raise FileNotFoundError(errno.ENOENT, "the writer created no file", str(tmp))
        os.chmod(tmp, _file_mode())
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename in (None, str(tmp)):
            # a write() error names no file, and the temporary's name means nothing to the user
            raise type(exc)(exc.errno, exc.strerror, str(path)) from exc
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """``open(path, mode)`` for writing, atomically: the content appears under ``path`` only when complete.

    ``mode`` is "w" or "wb"; ``kwargs`` go to :func:`open` (``newline``, ``encoding``).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open: mode {mode!r}; use 'w' or 'wb'")
    with atomic_path(path) as tmp:
        if "b" not in mode:
            kwargs.setdefault("encoding", "utf-8")
        with open(tmp, mode, **kwargs) as fh:
            yield fh


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path``."""
    with atomic_open(path, "w") as fh:
        fh.write(text)
    return Path(path)


def save_image_atomic(img: Any, path: str | os.PathLike, format: str | None = None) -> Path:
    """``img.save(path)`` for a PIL image, atomically; the format follows ``path``'s suffix by default."""
    path = Path(path)
    fmt = format or {".jpg": "JPEG", ".jpeg": "JPEG"}.get(path.suffix.lower(), "PNG")
    with atomic_path(path) as tmp:
        img.save(tmp, format=fmt)
    return path


def save_figure_atomic(fig: Any, path: str | os.PathLike, **kwargs: Any) -> Path:
    """``fig.savefig(path, **kwargs)`` for a matplotlib figure, atomically (format from ``path``'s suffix)."""
    path = Path(path)
    kwargs.setdefault("format", path.suffix.lstrip(".").lower() or "png")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, **kwargs)
    return path


def replace_folder(staged: str | os.PathLike, final: str | os.PathLike) -> Path:
    """Move the complete folder ``staged`` to ``final``, replacing a folder there.

    The old folder is renamed aside before the new one is renamed in and only then removed: at any
    moment ``final`` is the old folder, absent, or the new one, never a mix.
    """
    staged, final = Path(staged), Path(final)
    aside = None
    if final.exists() or final.is_symlink():
        aside = temporary_sibling(final, "old")
        os.replace(final, aside)
    try:
        os.replace(staged, final)
    except BaseException:
        if aside is not None:  # put the old one back rather than leave nothing
            with contextlib.suppress(OSError):
                os.replace(aside, final)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
    return final


@contextlib.contextmanager
def staged_folder(final: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty hidden folder next to ``final`` to fill; it replaces ``final`` when the block ends.

    When the block raises (or is interrupted) the staged folder is removed and ``final`` is untouched.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staged = temporary_sibling(final)
    os.mkdir(staged, 0o777)  # the umask applies, as for any folder the user makes
    try:
        yield staged
        replace_folder(staged, final)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise


def remove_leftovers(final: str | os.PathLike) -> list[Path]:
    """Remove temporaries a killed writer left next to ``final`` (``.<name>.*.tmp`` / ``.old``).

    Call it only while holding :func:`exclusive_lock` for ``final``: no other writer is then busy.
    """
    final = Path(final)
    # exactly the names temporary_sibling() gives, so "m.v2-x"'s temporaries are not taken for "m"'s
    ours = re.compile(rf"\.{re.escape(final.name)}\.\d+-[0-9a-f]{{8}}\.(tmp|old)")
    gone = []
    if final.parent.is_dir():
        for p in final.parent.glob(f".{glob.escape(final.name)}.*"):
            if ours.fullmatch(p.name):
                (shutil.rmtree if p.is_dir() and not p.is_symlink() else os.unlink)(p)
                gone.append(p)
    return gone


def lock_path(target: str | os.PathLike) -> Path:
    """The lock file of an output file or folder: ``.<name>.lock`` beside it (the folder may be replaced)."""
    target = Path(target)
    return target.with_name(f".{target.name}.lock")


def _holder(lock: Path) -> tuple[int | None, str]:
    """(pid, host) written in a lock file; (None, "") when unreadable or not written yet."""
    try:
        pid, host = (lock.read_text().split() + ["", ""])[:2]
        return int(pid), host
    except (OSError, ValueError):
        return None, ""


def _acquire(lock: Path) -> int | None:
    """An open descriptor of ``lock`` holding its exclusive ``flock``, or None when another holds it.

    The kernel drops an ``flock`` when its process dies, so a killed writer's lock file is free
    again without anyone guessing from pids; the file is checked to be the one at ``lock`` after
    locking (a releasing holder unlinks it), so two writers never both hold it.
    """
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except OSError as exc:
            if exc.errno not in _NO_FLOCK:
                os.close(fd)
                raise
            # a file system without flock (some FUSE mounts): writes stay atomic, only unserialised
        try:
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
            return fd
        os.close(fd)  # unlinked by its releasing holder meanwhile: lock the new file


@contextlib.contextmanager
def exclusive_lock(target: str | os.PathLike, what: str = "output") -> Iterator[Path]:
    """Hold the lock of ``target`` (:func:`lock_path`, an ``flock`` on a file holding our pid) for the block.

    A killed writer's lock is free at once (the kernel releases it); a lock this process holds
    already is reentered (and released by the outer block).

    Raises:
        OutputLockedError: another running process holds it; the message names its pid and the lock file.
    """
    target = Path(target)
    lock = lock_path(target)
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = _acquire(lock)
    if fd is None:
        pid, host = _holder(lock)
        if pid == os.getpid() and host == socket.gethostname():  # nested: the outer block releases it
            yield lock
            return
        who = f"pid {pid}" + ("" if host in ("", socket.gethostname()) else f" on {host}") if pid else "a process"
        raise OutputLockedError(f"{target}: another process ({who}) is writing this {what} right now; wait for it "
                                f"to finish or choose another path (lock file {lock})")
    try:
        yield lock
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()  # before the unlock: a writer waiting on this file then retries on a new one
        os.close(fd)


__all__ = ["OutputLockedError", "atomic_open", "atomic_path", "current_umask", "exclusive_lock", "lock_path",
           "remove_leftovers", "replace_folder", "save_figure_atomic", "save_image_atomic", "staged_folder",
           "temporary_sibling", "write_bytes_atomic", "write_text_atomic"]
