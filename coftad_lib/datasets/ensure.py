"""Fetch the public datasets a run needs and list, once, what must be fetched by hand.

``ensure_datasets(["flowers17", "mvtec"], "data")`` looks for each dataset under the data root(s),
downloads the public archives that are absent (SHA-256 checked, a partial download resumed, a
progress bar, from a mirror when one is named) and returns a :class:`DataReport`: what was
fetched, what was already there, and what cannot be fetched (licence, private, offline, failed)
with the exact command or folder for each.

An archive is unpacked into a temporary folder next to its destination and renamed into place
with a ``.complete`` marker inside, so ``<root>/<name>`` exists only when complete; a half-unpacked
tree never looks complete, and a temporary folder left by a killed run is removed by the next.

Mirror (``mirror=`` or ``$COFTAD_DATA_MIRROR``): a URL or a local folder holding the same archive
file names as :data:`~coftad_lib.datasets.sources.SOURCES` (``17flowers.tgz``, ...), for machines
without internet. A folder's archive is checked and unpacked in place, never copied nor deleted.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import COFTADInputError, DatasetNotFoundError
from .fetch import (
    DownloadError,
    check_free_space,
    content_root,
    disk_full_error,
    fetch,
    human_bytes,
    is_disk_full,
    safe_extract,
)
from .fetch import verify as verify_file
from .sources import MARKER, NEEDS, SOURCES, Need, Source, archive_present, need_for

#: environment variable naming a mirror when ``mirror`` is not given
ENV_MIRROR = "COFTAD_DATA_MIRROR"
#: environment variable that turns downloads off when ``download`` is not given (CI, offline tests)
ENV_NO_DOWNLOAD = "COFTAD_NO_DOWNLOAD"
#: what a dataset's state can be in a :class:`DataReport`
STATES = ("present", "fetched", "to_fetch", "manual", "local", "not_fetched", "failed")
_UNAVAILABLE = ("manual", "not_fetched", "failed")
_HEADROOM = 64 << 20  # bytes kept free beyond archive + unpacked copy


def resolve_mirror(mirror: str | os.PathLike | None) -> str | None:
    """``mirror``, else ``$COFTAD_DATA_MIRROR``, else None (an empty string also means none)."""
    value = os.fspath(mirror) if mirror is not None else os.environ.get(ENV_MIRROR, "")
    return value or None


def _mirror_folder(mirror: str) -> Path | None:
    """The local folder a mirror names (a path or a ``file://`` URL), or None for an HTTP(S) URL."""
    parsed = urllib.parse.urlparse(mirror)
    if parsed.scheme in ("http", "https"):
        return None
    if parsed.scheme == "file":
        return Path(urllib.parse.unquote(parsed.path))
    return Path(mirror)


def _mirror_hint(mirror: str | None, src: Source) -> str:
    if not mirror:
        return ""
    return (f"the mirror {mirror} is unreachable or lacks {src.filename}: fix --data-mirror / ${ENV_MIRROR}, "
            f"or unset it to download from {src.url}")


def _obtain_archive(name: str, src: Source, dest: Path, *, mirror: str | None, check: bool, timeout: float,
                    quiet: bool) -> tuple[Path, bool, str]:
    """(path of the verified archive, whether it is ours to delete after unpacking, its SHA-256)."""
    folder = _mirror_folder(mirror) if mirror else None
    if folder is not None:
        archive = folder / src.filename
        if not archive.is_file():
            raise DownloadError(
                f"{archive}: not in the mirror folder; copy {src.url} there, or fix --data-mirror / "
                f"${ENV_MIRROR} (unset it to download from the internet)"
            )
        sha = verify_file(archive, label=name, sha256=src.sha256, md5=src.md5, size=src.size, origin=str(archive),
               checksum_source=src.checksum_source, check=check, quiet=quiet, delete_bad=False)
        return archive, False, sha
    archive = dest / src.filename
    if not archive.is_file():
        part = archive.with_name(archive.name + ".part")
        if src.size is not None:
            have = part.stat().st_size if part.exists() else 0
            check_free_space(dest, 2 * src.size - have + _HEADROOM, f"{name} ({src.filename})")
        url = f"{mirror.rstrip('/')}/{urllib.parse.quote(src.filename)}" if mirror else src.url
        fetch(url, part, timeout=timeout, quiet=quiet, mirror_hint=_mirror_hint(mirror, src))
        os.replace(part, archive)
    sha = verify_file(archive, label=name, sha256=src.sha256, md5=src.md5, size=src.size, origin=mirror or src.url,
           checksum_source=src.checksum_source, check=check, quiet=quiet)
    return archive, True, sha


def _unpack(name: str, src: Source, archive: Path, target: Path, sha256: str) -> None:
    """Unpack into a temporary folder beside ``target``, write the marker, then rename into place."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-unpack-", dir=target.parent))
    try:
        safe_extract(archive, tmp)
        root = content_root(tmp, src.strip_top, archive, MARKER)
        # the SHA-256 of what was unpacked, also where none was recorded (to pin it after a first download)
        stamp = {"url": src.url, "archive": src.filename, "sha256": sha256, "unpacked": time.strftime("%Y-%m-%dT%H:%M:%S")}
        (root / MARKER).write_text(json.dumps(stamp, indent=1))
        os.replace(root, target)  # the single step that makes the dataset visible, marker included
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full_error(target, f"unpacking {archive.name}") from exc
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def download_archive(name: str, dest: str | os.PathLike, *, sources: Mapping[str, Source] | None = None,
             verify: bool = True, keep_archive: bool = False, timeout: float = 60.0, quiet: bool = False,
             mirror: str | os.PathLike | None = None) -> Path:
    """Fetch, check and unpack archive ``name`` into ``<dest>/<name>``; returns that folder.

    Args:
        name: a key of :data:`SOURCES` (or of ``sources``).
        dest: parent folder; created if needed.
        sources: replaces :data:`SOURCES` (tests).
        verify: check the recorded digest; False only prints the SHA-256 obtained.
        keep_archive: keep a downloaded archive after unpacking (deleted by default).
        mirror: URL or folder with the same archive names (default ``$COFTAD_DATA_MIRROR``).

    Raises:
        DatasetNotFoundError: a dataset that must be fetched by hand (MVTec AD, AITEX, SemiCon; the
            message says where to get it and where to put it).
        DownloadError: unreachable server or mirror, truncated transfer, full disk (one line each).
        ChecksumMismatchError: the archive's digest is wrong (a download is deleted; nothing unpacked).
        COFTADInputError: unknown name, or ``<dest>/<name>`` exists without a completion marker.
    """
    table = SOURCES if sources is None else sources
    dest = Path(dest)
    if name not in table:
        need = NEEDS.get(name)
        if need is not None and (need.manual or need.local):
            how = (need.manual or need.local).format(root=dest)
            raise DatasetNotFoundError(f"{name} cannot be downloaded automatically: {how}")
        known = ", ".join(sorted(set(table) | {n for n, k in NEEDS.items() if k.manual or k.local}))
        raise COFTADInputError(f"dataset name {name!r} is not known; choose one of {known}")
    src = table[name]
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / name
    if (target / MARKER).is_file():
        return target
    if target.exists():
        raise COFTADInputError(
            f"{target}: exists but has no {MARKER} marker, so this function did not make it; move it "
            f"away or delete it, then run again"
        )
    for stale in dest.glob(f".{name}-unpack-*"):  # left by a killed run; never complete
        shutil.rmtree(stale, ignore_errors=True)
    archive, ours, sha = _obtain_archive(name, src, dest, mirror=resolve_mirror(mirror), check=verify,
                                    timeout=timeout, quiet=quiet)
    _unpack(name, src, archive, target, sha)
    if ours and not keep_archive:
        archive.unlink()
    if not quiet:
        print(f"{name}: ready at {target}", file=sys.stderr)
    return target


#: the name :mod:`coftad_lib.datasets.download` has always exported
download = download_archive


@dataclass
class DatasetState:
    """One dataset's line in a :class:`DataReport`.

    Attributes:
        name: loader dataset name (or archive name).
        status: one of :data:`STATES`.
        path: the folder the loader reads (None when unavailable).
        message: one line: what happened, or the exact command / folder to make it available.
        download_bytes: bytes still to download (``to_fetch``), None when unknown.
    """

    name: str
    status: str
    path: Path | None = None
    message: str = ""
    download_bytes: int | None = None


@dataclass
class DataReport:
    """What :func:`ensure_datasets` found, fetched, and could not provide."""

    items: list[DatasetState] = field(default_factory=list)

    def names(self, *statuses: str) -> list[str]:
        """Names of the datasets in any of ``statuses``."""
        return [s.name for s in self.items if s.status in statuses]

    @property
    def fetched(self) -> list[str]:
        """Datasets downloaded by this call."""
        return self.names("fetched")

    @property
    def present(self) -> list[str]:
        """Datasets that were already there (or are made locally by a notebook)."""
        return self.names("present", "local")

    @property
    def unavailable(self) -> list[DatasetState]:
        """Datasets the run will lack: by hand (licence, private), offline, or failed."""
        return [s for s in self.items if s.status in _UNAVAILABLE]

    @property
    def ok(self) -> bool:
        """True when every dataset asked for is usable."""
        return not self.unavailable

    def lines(self, statuses: Sequence[str] = STATES) -> list[str]:
        """One line per dataset in ``statuses``: ``"name: status: message"``."""
        return [f"{s.name}: {s.status.replace('_', ' ')}: {s.message}" for s in self.items if s.status in statuses]

    def __str__(self) -> str:
        return "\n".join(self.lines())


def _roots(data_root: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    roots = [Path(data_root)] if isinstance(data_root, (str, os.PathLike)) else [Path(r) for r in data_root]
    if not roots:
        raise COFTADInputError("data_root: an empty list of data folders")
    return roots


def _missing_tasks(need: Need, root: Path, tasks: Sequence[str]) -> list[str]:
    if need.has_task is None:
        return []
    return [t for t in dict.fromkeys(tasks) if not need.has_task(root, t)]  # once each, in order


def _plan_one(need: Need, roots: list[Path], table: Mapping[str, Source], download: bool,
              tasks: Sequence[str] = ()) -> DatasetState:
    dest = roots[0]
    found = next((r for r in roots if need.present(r) and not _missing_tasks(need, r, tasks)), None)
    if need.local:
        return DatasetState(need.name, "local", need.path(found or dest), need.local.format(root=dest))
    if found is not None:
        return DatasetState(need.name, "present", need.path(found), f"already in {need.path(found)}")
    if need.manual:
        partial = next((r for r in roots if need.present(r)), None)
        lacking = f"{', '.join(_missing_tasks(need, partial, tasks))} missing under {need.path(partial)}; " if partial else ""
        return DatasetState(need.name, "manual", None, lacking + need.manual.format(root=dest))
    unknown = [a for a in need.archives if a not in table]
    if unknown:
        raise COFTADInputError(f"dataset name {need.name!r} is not known; choose one of {', '.join(sorted(set(NEEDS) | set(table)))}")
    todo = [a for a in need.archives if not any(archive_present(a, r) for r in roots)]
    files = ", ".join(table[a].filename for a in todo)
    sizes = [table[a].size for a in todo]
    total = None if None in sizes else sum(sizes)
    if not download:
        return DatasetState(need.name, "not_fetched", None,
                            f"downloads are off (--no-download): run `python -m coftad_lib.datasets.download {need.name} "
                            f"--dest {dest}`, or put {files} in a folder and name it with --data-mirror / ${ENV_MIRROR}", total)
    return DatasetState(need.name, "to_fetch", need.path(dest), f"{files} ({human_bytes(total)}) into {dest}", total)


def plan_datasets(names: Sequence[str], data_root: str | os.PathLike | Sequence[str | os.PathLike], *,
                  download: bool = True, sources: Mapping[str, Source] | None = None,
                  tasks: Mapping[str, Sequence[str]] | None = None) -> DataReport:
    """What :func:`ensure_datasets` would do, without touching the network or the disk.

    Args:
        names: loader dataset names (``"flowers17"``, ``"cifar10c"``, ``"mvtec"``, ...) or archive
            names (``"cifar10"``); repeats are ignored.
        data_root: the data folder, or a list of folders searched in order; downloads go to the first.
        download: False marks absent public datasets ``not_fetched`` (with the command to fetch them).
        tasks: per dataset, the tasks the run uses (``{"mvtec": ["bottle", "carpet"]}``); a dataset
            copied in parts (MVTec AD's categories) counts as there only when all of them are.
    """
    table = SOURCES if sources is None else sources
    roots = _roots(data_root)
    seen = list(dict.fromkeys(names))
    tasks = tasks or {}
    return DataReport([_plan_one(need_for(n), roots, table, download, tasks.get(n, ())) for n in seen])


def ensure_datasets(names: Sequence[str], data_root: str | os.PathLike | Sequence[str | os.PathLike], *,
                    mirror: str | os.PathLike | None = None, download: bool | None = None, progress: bool = True,
                    verify: bool = True, sources: Mapping[str, Source] | None = None, timeout: float = 60.0,
                    tasks: Mapping[str, Sequence[str]] | None = None,
                    log: Callable[[str], None] | None = None) -> DataReport:
    """Fetch the public datasets among ``names`` that are absent; report on all of them.

    Prints (through ``log``, default stderr) the plan once before anything is fetched: what will be
    downloaded and how much, then each dataset that cannot be provided with the exact command or
    folder. A failed download does not raise: it becomes a ``failed`` line with the reason and
    what to do, and the others are still fetched.

    Args:
        names / data_root / tasks: as :func:`plan_datasets`.
        download: False fetches nothing (absent public datasets are listed with the command to fetch
            them); None (default): True unless ``$COFTAD_NO_DOWNLOAD`` is set to a non-empty value
            other than ``0``.
        mirror: URL or local folder holding the same archive names (default ``$COFTAD_DATA_MIRROR``).
        progress: show the plan and a progress bar per download; False is silent.
        verify: check the recorded digests.

    Returns:
        :class:`DataReport`; ``report.ok`` is False when something asked for is not available.
    """
    table = SOURCES if sources is None else sources
    mirror = resolve_mirror(mirror)
    if download is None:
        download = os.environ.get(ENV_NO_DOWNLOAD, "") in ("", "0")
    say = log or (lambda line: print(line, file=sys.stderr, flush=True))
    report = plan_datasets(names, data_root, download=download, sources=table, tasks=tasks)
    roots = _roots(data_root)
    if progress:
        _announce(report, mirror, say)
    for state in report.items:
        if state.status != "to_fetch":
            continue
        try:
            for archive in need_for(state.name).archives:
                if not any(archive_present(archive, r) for r in roots):
                    download_archive(archive, roots[0], sources=table, verify=verify, timeout=timeout,
                                 quiet=not progress, mirror=mirror or "")
        except (DatasetNotFoundError, COFTADInputError) as exc:
            state.status, state.path, state.message = "failed", None, str(exc).splitlines()[0]
            say(f"{state.name}: {state.message}")
            continue
        state.status, state.message = "fetched", f"downloaded into {state.path}"
    return report


def _announce(report: DataReport, mirror: str | None, say: Callable[[str], None]) -> None:
    """The plan, printed once before any download."""
    todo = [s for s in report.items if s.status == "to_fetch"]
    if todo:
        sizes = [s.download_bytes for s in todo]
        total = human_bytes(None if None in sizes else sum(sizes))
        say(f"Data: downloading {len(todo)} public dataset(s), {total}, from {mirror or 'the official sites'}:")
        for line in report.lines(["to_fetch"]):
            say(f"  {line}")
    for line in report.lines(["local"]):
        say(f"Data: made locally: {line}")
    if report.unavailable:
        say("Data: not available to this run (the notebooks that need them record 'missing'):")
        for line in report.lines(_UNAVAILABLE):
            say(f"  {line}")
