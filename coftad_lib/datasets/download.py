"""Download and unpack the public datasets of the paper's Sec. IV-A, with checksums.

``download(name, dest)`` streams the archive to ``<dest>/<file>.part`` (resuming a partial file with
an HTTP Range request), checks its SHA-256 (or the published MD5 where no SHA-256 is known),
unpacks it into a temporary folder inside ``dest``, writes a ``.complete`` marker there and only
then renames the folder to ``<dest>/<name>``. So ``<dest>/<name>`` exists only when complete, a
half-unpacked tree never looks complete, and a rerun after success does nothing.

MVTec AD and AITEX need a licence to be accepted by hand and SemiCon is private; ``download`` says
where to get them and where to put them instead.

CLI::

    python -m coftad_lib.datasets.download flowers17 data
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import COFTADInputError, DatasetNotFoundError

MARKER = ".complete"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Source:
    """Where a dataset archive lives and how to check it.

    Attributes:
        url: the archive's address.
        filename: name of the archive in ``dest``.
        sha256 / md5: expected digests; SHA-256 is checked when given, else MD5, else nothing
            (the SHA-256 obtained is printed so it can be recorded).
        size: expected bytes, or None.
        strip_top: the archive holds one top-level folder whose contents become ``<dest>/<name>``.
        layout: what ``<dest>/<name>`` holds afterwards and what to pass to the loader.
        checksum_source: where the digest comes from.
    """

    url: str
    filename: str
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None
    strip_top: bool = False
    layout: str = ""
    checksum_source: str = ""


#: public sources. Digests were looked up in public references (see ``checksum_source``).
SOURCES: dict[str, Source] = {
    "flowers17": Source(
        url="https://www.robots.ox.ac.uk/~vgg/data/flowers/17/17flowers.tgz",
        filename="17flowers.tgz",
        sha256="fe38a60f8b4a95e657551247d3e7d799a3fafcdbc595be504b12839967823d70",
        md5="b59a65d8d1a99cd66944d474e1289eab",
        layout="<dest>/flowers17/jpg/image_0001.jpg ... and jpg/files.txt; pass root=<dest>/flowers17",
        checksum_source="SHA-256 from intel/dffml examples/flower17/dataset.sh; MD5 as used by torchvision-style Flowers17 loaders",
    ),
    "cifar10": Source(
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        filename="cifar-10-python.tar.gz",
        sha256="6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
        md5="c58f30108f718f92721af3b95e74349a",
        size=170_498_071,
        layout="<dest>/cifar10/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}; pass clean_root=<dest>/cifar10",
        checksum_source="MD5 as torchvision's CIFAR10; SHA-256 as Keras' cifar10.load_data",
    ),
    "cifar100": Source(
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        filename="cifar-100-python.tar.gz",
        sha256="85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7",
        md5="eb9058c3a382ffc7106e4002c42a8d85",
        size=169_001_437,
        layout="<dest>/cifar100/cifar-100-python/{train,test,meta}; pass clean_root=<dest>/cifar100",
        checksum_source="MD5 as torchvision's CIFAR100; SHA-256 as Keras' cifar100.load_data",
    ),
    "cifar10c": Source(
        url="https://zenodo.org/records/2535967/files/CIFAR-10-C.tar",
        filename="CIFAR-10-C.tar",
        sha256="c72763e101c723b7c507b96205f7e938912a5d587376173b825850cf3cb876a7",
        md5="56bf5dcef84df0e2308c6dcbcbbd8499",
        size=2_918_471_680,
        strip_top=True,
        layout="<dest>/cifar10c/<corruption>.npy and labels.npy; pass root=<dest>/cifar10c",
        checksum_source="MD5 from Zenodo record 2535967; SHA-256 from TensorFlow Datasets' url_checksums",
    ),
    "cifar100c": Source(
        url="https://zenodo.org/records/3555552/files/CIFAR-100-C.tar",
        filename="CIFAR-100-C.tar",
        sha256="30ee6543a1bfd049fa33834b7c1ada301e7064b7fbe8fc38340eb8b62ced4b33",
        md5="11f0ed0f1191edbf9fa23466ae6021d3",
        size=2_918_473_216,
        strip_top=True,
        layout="<dest>/cifar100c/<corruption>.npy and labels.npy; pass root=<dest>/cifar100c",
        checksum_source="MD5 from Zenodo record 3555552; SHA-256 from TensorFlow Datasets' url_checksums",
    ),
    # Pinned to a commit so the content cannot change under us. GitHub does not promise
    # byte-identical archives over time; if the digest stops matching, check the content and use
    # verify=False (--no-verify), which prints the SHA-256 obtained.
    "magnetic_tile": Source(
        url="https://github.com/abin24/Magnetic-tile-defect-datasets./archive/cc4eb530b57b9cb7225bf76023873043ffd50655.zip",
        filename="Magnetic-tile-defect-datasets-cc4eb53.zip",
        sha256="592b050953d1de4ffa538b93b6b91aee7268d8e59b73d4d9c92cfce187d7ce66",
        strip_top=True,
        layout="<dest>/magnetic_tile/MT_Blowhole ... MT_Free (each Imgs/*.jpg + *.png); pass root=<dest>/magnetic_tile",
        checksum_source="SHA-256 of the commit archive as recorded by a public preparation script "
        "(NVIDIA AnomalyGen prepare_magnetic_tile_defect.py); not published by the dataset authors",
    ),
}


def _manual() -> dict[str, str]:
    from . import aitex, mvtec, semicon

    return {"mvtec": mvtec.HOW_TO_GET, "aitex": aitex.HOW_TO_GET, "semicon": semicon.HOW_TO_GET}


#: datasets that cannot be fetched automatically
MANUAL_NAMES = ("mvtec", "aitex", "semicon")


class ChecksumMismatchError(DatasetNotFoundError):
    """A downloaded archive's digest differs from the recorded one; nothing was unpacked."""


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(url: str, part: Path, *, timeout: float = 60.0, quiet: bool = False) -> None:
    """Stream ``url`` into ``part``, continuing an existing partial file with an HTTP Range request.

    A server that ignores the Range header (answers 200) is handled by starting over.

    Raises:
        DatasetNotFoundError: the server cannot be reached or answers with an error, or the
            transfer ends early (the partial file is kept for the next try).
    """
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "coftad-lib-download"}
    if have:
        headers["Range"] = f"bytes={have}-"
    # A fresh opener reads the proxy settings of the environment at each call.
    opener = urllib.request.build_opener()
    try:
        resp = opener.open(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:
            return  # nothing left to send: the partial file is already whole
        raise DatasetNotFoundError(f"{url}: download failed (HTTP {exc.code} {exc.reason})") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise DatasetNotFoundError(
            f"{url}: cannot reach the server ({exc}). Download it by other means and put it at "
            f"{part.with_suffix('')}, then run again to check and unpack it"
        ) from exc
    with resp:
        status = getattr(resp, "status", 200)
        if have and status == 206 and resp.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
            mode = "ab"
        else:
            mode, have = "wb", 0
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        got = have
        try:
            from tqdm import tqdm

            bar = tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=part.name, disable=quiet)
        except ImportError:  # tqdm is a dependency, but progress is optional
            bar = None
        with open(part, mode) as fh:
            while chunk := resp.read(_CHUNK):
                fh.write(chunk)
                got += len(chunk)
                if bar is not None:
                    bar.update(len(chunk))
        if bar is not None:
            bar.close()
    if total is not None and got != total:
        raise DatasetNotFoundError(f"{url}: transfer ended after {got} of {total} bytes; run again to resume")


def _verify(path: Path, src: Source, name: str, verify: bool, quiet: bool) -> None:
    """Check ``path`` against the recorded size and digest; on mismatch delete it and raise."""
    size = path.stat().st_size
    if verify and src.size is not None and size != src.size:
        path.unlink()
        raise ChecksumMismatchError(f"{src.url}: the download has {size} bytes, expected {src.size}; it was deleted. Run again to retry")
    sha = file_digest(path, "sha256")
    if src.sha256 and verify:
        expected, got, algo = src.sha256.lower(), sha, "SHA-256"
    elif src.md5 and verify:
        expected, got, algo = src.md5.lower(), file_digest(path, "md5"), "MD5"
    else:
        why = "checking was turned off" if not verify else "no published checksum is known"
        print(f"{name}: {why}; SHA-256 of {path.name} is {sha}", file=sys.stderr)
        return
    if got != expected:
        path.unlink()
        raise ChecksumMismatchError(
            f"{src.url}: {algo} of the download is {got}, expected {expected}; the file was deleted "
            f"and nothing was unpacked. Run again to retry; if it keeps failing the server's file "
            f"has changed (checksum recorded from: {src.checksum_source or 'unknown'})"
        )
    if not quiet:
        print(f"{name}: {algo} verified ({got})", file=sys.stderr)


def _safe_extract(archive: Path, into: Path) -> None:
    """Unpack a tar (any compression) or zip archive into ``into``, refusing paths that leave it."""
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
    except tarfile.TarError as exc:
        raise COFTADInputError(f"{archive}: cannot unpack ({exc}); expected a tar or zip archive") from exc


def _content_root(tmp: Path, strip_top: bool, archive: Path) -> Path:
    if not strip_top:
        return tmp
    entries = [p for p in tmp.iterdir() if p.name != MARKER]
    if len(entries) != 1 or not entries[0].is_dir():
        raise COFTADInputError(f"{archive}: expected one top-level folder, found {sorted(p.name for p in entries)}")
    return entries[0]


def download(
    name: str,
    dest: str | os.PathLike,
    *,
    sources: Mapping[str, Source] | None = None,
    verify: bool = True,
    keep_archive: bool = False,
    timeout: float = 60.0,
    quiet: bool = False,
) -> Path:
    """Fetch, check and unpack dataset ``name`` into ``<dest>/<name>``; returns that folder.

    Args:
        name: a key of :data:`SOURCES` (or of ``sources``).
        dest: parent folder; created if needed.
        sources: replaces :data:`SOURCES` (tests and mirrors).
        verify: check the recorded digest; False only prints the SHA-256 obtained.
        keep_archive: keep the archive after unpacking (it is deleted by default).

    Raises:
        DatasetNotFoundError: a dataset that must be fetched by hand (MVTec AD, AITEX, SemiCon; the
            message says where to get it and where to put it), or the download failed.
        ChecksumMismatchError: the archive's digest is wrong (it is deleted; nothing is unpacked).
        COFTADInputError: unknown name, or ``<dest>/<name>`` exists without a completion marker.
    """
    table = SOURCES if sources is None else sources
    if name not in table:
        if name in MANUAL_NAMES:
            where = "" if name == "semicon" else f"\nFor dest={dest}: put the extracted files under {Path(dest) / name}."
            raise DatasetNotFoundError(f"{name} cannot be downloaded automatically.\n{_manual()[name]}{where}")
        known = ", ".join(sorted(set(table) | set(MANUAL_NAMES)))
        raise COFTADInputError(f"dataset name {name!r} is not known; choose one of {known}")
    src = table[name]
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / name
    if (target / MARKER).is_file():
        if not quiet:
            print(f"{name}: already complete at {target}", file=sys.stderr)
        return target
    if target.exists():
        raise COFTADInputError(
            f"{target}: exists but has no {MARKER} marker, so this function did not make it; move it "
            f"away or delete it, then run again"
        )
    for stale in dest.glob(f".{name}-unpack-*"):  # left by an interrupted run; never complete
        shutil.rmtree(stale, ignore_errors=True)

    archive = dest / src.filename
    if not archive.is_file():
        part = archive.with_name(archive.name + ".part")
        fetch(src.url, part, timeout=timeout, quiet=quiet)
        os.replace(part, archive)
    _verify(archive, src, name, verify, quiet)

    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-unpack-", dir=dest))
    try:
        _safe_extract(archive, tmp)
        root = _content_root(tmp, src.strip_top, archive)
        (root / MARKER).write_text(
            json.dumps({"url": src.url, "sha256": file_digest(archive), "unpacked": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=1)
        )
        os.replace(root, target)  # the single step that makes the dataset visible, marker included
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not keep_archive:
        archive.unlink()
    if not quiet:
        print(f"{name}: ready at {target}" + (f" ({src.layout})" if src.layout else ""), file=sys.stderr)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    names = sorted(set(SOURCES) | set(MANUAL_NAMES))
    ap = argparse.ArgumentParser(prog="python -m coftad_lib.datasets.download", description=__doc__.split("\n\n")[0])
    ap.add_argument("name", choices=names)
    ap.add_argument("dest", help="parent folder; the dataset goes to <dest>/<name>")
    ap.add_argument("--no-verify", action="store_true", help="skip the checksum check (prints the SHA-256 obtained)")
    ap.add_argument("--keep-archive", action="store_true")
    args = ap.parse_args(argv)
    try:
        path = download(args.name, args.dest, verify=not args.no_verify, keep_archive=args.keep_archive)
    except (DatasetNotFoundError, COFTADInputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
