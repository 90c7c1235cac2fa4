"""Transport for dataset archives: HTTP download with resume, checksums, safe unpacking.

Every failure a user can meet here (server or mirror unreachable, transfer cut short, wrong
checksum, disk full) raises :class:`DownloadError` with a one-line message that names the file and
says what to do. Used by :mod:`coftad_lib.datasets.download`; nothing here knows the datasets.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import shutil
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from ..errors import COFTADInputError, DatasetNotFoundError

_CHUNK = 1 << 20


class DownloadError(DatasetNotFoundError):
    """A dataset archive could not be fetched or stored; the one-line message says what to do."""


class ChecksumMismatchError(DownloadError):
    """A downloaded archive's digest differs from the recorded one; nothing was unpacked."""


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def human_bytes(n: float | None) -> str:
    """``170498071`` -> ``"163 MiB"``; ``None`` -> ``"unknown size"``."""
    if n is None:
        return "unknown size"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit in ("B", "KiB", "MiB") else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover (the loop always returns)


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` is an out-of-space error (ENOSPC, or EDQUOT: over a disk quota)."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1))


def disk_full_error(path: Path, what: str) -> DownloadError:
    """The one-line error for a full disk while ``what`` was being written to ``path``."""
    try:
        free = human_bytes(shutil.disk_usage(path.parent if not path.is_dir() else path).free)
    except OSError:
        free = "unknown"
    return DownloadError(
        f"{path}: no space left on the device while {what} ({free} free); free some space or point "
        f"the data folder elsewhere (COFTAD_DATA_ROOT), then run again (a partial download resumes)"
    )


def check_free_space(folder: Path, need: int | None, label: str) -> None:
    """Raise :class:`DownloadError` early when ``folder``'s disk has less than ``need`` bytes free."""
    if need is None:
        return
    free = shutil.disk_usage(folder).free
    if free < need:
        raise DownloadError(
            f"{folder}: {label} needs about {human_bytes(need)} free (archive + unpacked) but the disk "
            f"has {human_bytes(free)}; free some space or point the data folder elsewhere (COFTAD_DATA_ROOT)"
        )


def _open(url: str, have: int, timeout: float, part: Path, mirror_hint: str):
    """Open ``url`` asking for bytes from ``have`` on; None when the partial file is already whole."""
    headers = {"User-Agent": "coftad-lib-download"}
    if have:
        headers["Range"] = f"bytes={have}-"
    # A fresh opener reads the proxy settings of the environment at each call.
    opener = urllib.request.build_opener()
    try:
        return opener.open(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:
            return None  # nothing left to send: the partial file is already whole
        raise DownloadError(
            f"{url}: download failed (HTTP {exc.code} {exc.reason}); {mirror_hint or 'the server may have moved the file'}"
        ) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(
            f"{url}: cannot reach the server ({reason}); {mirror_hint or 'check the network or proxy'}, or "
            f"download the file by other means and put it at {part.with_suffix('')}, then run again"
        ) from exc


def _progress_bar(total: int | None, initial: int, desc: str, quiet: bool):
    """A tqdm bar, or None (tqdm is a dependency, but a progress bar must never stop a download)."""
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return None
    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=desc,
                disable=quiet, file=sys.stderr, mininterval=1.0)


def fetch(url: str, part: Path, *, timeout: float = 60.0, quiet: bool = False, mirror_hint: str = "") -> None:
    """Stream ``url`` into ``part``, continuing an existing partial file with an HTTP Range request.

    A server that ignores the Range header (answers 200) is handled by starting over. The partial
    file is kept on every failure, so the next call resumes where this one stopped.

    Args:
        mirror_hint: what to tell the user when the server cannot be reached (names the mirror).

    Raises:
        DownloadError: the server cannot be reached or answers with an error, the transfer ends
            early, or the disk is full.
    """
    have = part.stat().st_size if part.exists() else 0
    resp = _open(url, have, timeout, part, mirror_hint)
    if resp is None:
        return
    with resp:
        status = getattr(resp, "status", 200)
        if have and status == 206 and resp.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
            mode = "ab"
        else:
            mode, have = "wb", 0
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        got = have
        bar = _progress_bar(total, have, part.name.removesuffix(".part"), quiet)
        try:
            with open(part, mode) as fh:
                while chunk := resp.read(_CHUNK):
                    fh.write(chunk)
                    got += len(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
        except (OSError, http.client.HTTPException) as exc:
            if is_disk_full(exc):
                raise disk_full_error(part, f"downloading {url}") from exc
            raise DownloadError(
                f"{part.name}: transfer from {url} broke off after {human_bytes(got)} ({exc!r}); run again to resume"
            ) from exc
        finally:
            if bar is not None:
                bar.close()
    if total is not None and got != total:
        raise DownloadError(
            f"{part.name}: transfer from {url} ended after {got} of {total} bytes (truncated); run again to resume"
        )


def verify(path: Path, *, label: str, sha256: str | None, md5: str | None, size: int | None,
           origin: str, checksum_source: str = "", check: bool = True, quiet: bool = False,
           delete_bad: bool = True) -> str:
    """Check ``path`` against the recorded size and digest; returns its SHA-256.

    Args:
        label: dataset name for messages.
        origin: where the file came from (URL or mirror path), named in the error.
        check: False only prints the SHA-256 obtained (also printed when no digest is recorded).
        delete_bad: delete a file that fails (a download); False for a file in a mirror folder.

    Raises:
        ChecksumMismatchError: size or digest differ (the file is deleted when ``delete_bad``).
    """
    fate = "it was deleted; run again to download it anew" if delete_bad else "replace it with a good copy"
    got_size = path.stat().st_size
    if check and size is not None and got_size != size:
        if delete_bad:
            path.unlink()
        raise ChecksumMismatchError(
            f"{path.name}: {got_size} bytes, expected {size} (truncated or wrong file, from {origin}); {fate}"
        )
    sha = file_digest(path, "sha256")
    if check and sha256:
        expected, got, algo = sha256.lower(), sha, "SHA-256"
    elif check and md5:
        expected, got, algo = md5.lower(), file_digest(path, "md5"), "MD5"
    else:
        why = "checking was turned off" if not check else "no published checksum is known"
        print(f"{label}: {why}; SHA-256 of {path.name} is {sha}", file=sys.stderr)
        return sha
    if got != expected:
        if delete_bad:
            path.unlink()
        raise ChecksumMismatchError(
            f"{path.name}: {algo} is {got}, expected {expected} (from {origin}; recorded from "
            f"{checksum_source or 'unknown'}); nothing was unpacked and {fate}"
        )
    if not quiet:
        print(f"{label}: {algo} of {path.name} verified", file=sys.stderr)
    return sha


def safe_extract(archive: Path, into: Path) -> None:
    """Unpack a tar (any compression) or zip archive into ``into``, refusing paths that leave it.

    Raises:
        COFTADInputError: not an archive, or a member would land outside ``into``.
        DownloadError: the disk filled up while unpacking.
    """
    try:
        _extract(archive, into)
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full_error(into, f"unpacking {archive.name}") from exc
        raise


def _extract(archive: Path, into: Path) -> None:
    into_abs = into.resolve()

    def inside(member: str) -> bool:
        target = (into_abs / member).resolve()
        return target == into_abs or into_abs in target.parents

    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                if not inside(member):
                    raise COFTADInputError(f"{archive}: member {member!r} would be written outside {into}; refusing to unpack")
            zf.extractall(into)
        return
    try:
        with tarfile.open(archive) as tf:
            if hasattr(tarfile, "data_filter"):
                tf.extractall(into, filter="data")  # rejects absolute paths, '..', device files, bad links
            else:  # Python without PEP 706
                for member in tf.getmembers():
                    if not inside(member.name) or member.isdev() or ((member.issym() or member.islnk()) and not inside(member.linkname)):
                        raise COFTADInputError(f"{archive}: member {member.name!r} is unsafe; refusing to unpack")
                tf.extractall(into)
    except (tarfile.TarError, EOFError) as exc:
        raise COFTADInputError(f"{archive}: cannot unpack ({exc}); expected a whole tar or zip archive") from exc


def content_root(tmp: Path, strip_top: bool, archive: Path, marker: str) -> Path:
    """The folder that becomes the dataset: ``tmp``, or its single top-level folder when ``strip_top``."""
    if not strip_top:
        return tmp
    entries = [p for p in tmp.iterdir() if p.name != marker]
    if len(entries) != 1 or not entries[0].is_dir():
        raise COFTADInputError(f"{archive}: expected one top-level folder, found {sorted(p.name for p in entries)}")
    return entries[0]
