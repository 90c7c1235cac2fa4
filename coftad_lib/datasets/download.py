"""Download the public datasets of the paper's Sec. IV-A, with checksums; the command line.

The library API lives in :mod:`coftad_lib.datasets.ensure` (:func:`ensure_datasets` for a run,
:func:`download` for one archive), the archive table in :mod:`coftad_lib.datasets.sources`, the
transport in :mod:`coftad_lib.datasets.fetch`; this module re-exports them under the names it has
always had.

MVTec AD and AITEX need a licence to be accepted by hand and SemiCon is private; for those the
command says where to get them and which folder to put them in.

CLI::

    python -m coftad_lib.datasets.download flowers17 cifar10c magnetic_tile --dest data
    python -m coftad_lib.datasets.download flowers17 --mirror /shared/archives   # or $COFTAD_DATA_MIRROR
    python -m coftad_lib.datasets.download mvtec aitex --no-download             # only say what is missing

Exit status 0 when every dataset named is there afterwards, 2 otherwise (each missing one gets a
line saying what to do).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import COFTADInputError
from .ensure import (
    ENV_MIRROR,
    ENV_NO_DOWNLOAD,
    DataReport,
    DatasetState,
    download,
    ensure_datasets,
    plan_datasets,
)
from .fetch import ChecksumMismatchError, DownloadError, file_digest, safe_extract
from .sources import MARKER, NEEDS, SOURCES, Source

#: datasets that cannot be fetched automatically
MANUAL_NAMES = tuple(n for n, need in NEEDS.items() if (need.manual or need.local) and n != "folder")

__all__ = ["ChecksumMismatchError", "DataReport", "DatasetState", "DownloadError", "ENV_MIRROR", "ENV_NO_DOWNLOAD", "MANUAL_NAMES",
           "MARKER", "SOURCES", "Source", "download", "ensure_datasets", "file_digest", "main", "plan_datasets",
           "safe_extract"]


def _parser() -> argparse.ArgumentParser:
    names = sorted(set(SOURCES) | set(NEEDS) - {"folder"})
    ap = argparse.ArgumentParser(
        prog="python -m coftad_lib.datasets.download",
        description="Fetch the public datasets that are absent from the data folder (checksums, resume, "
        "progress) and say how to get the others.",
        epilog=f"names: {', '.join(names)}. Loader names (cifar10c) fetch what the notebooks need (clean "
        f"CIFAR-10, from which notebook 01 makes the corruptions); archive names (cifar10) fetch that archive.",
    )
    ap.add_argument("names", nargs="+", metavar="NAME",
                    help="datasets; a last argument that is not a name is taken as the data folder (old form)")
    ap.add_argument("--dest", default=None, help="data folder; each dataset goes to <dest>/<name> (default: data)")
    ap.add_argument("--mirror", default=None,
                    help=f"URL or folder holding the same archive file names (default ${ENV_MIRROR})")
    ap.add_argument("--no-download", action="store_true",
                    help="fetch nothing; list what is missing and how to get it (also $COFTAD_NO_DOWNLOAD=1)")
    ap.add_argument("--no-verify", action="store_true", help="skip the checksum check (prints the SHA-256 obtained)")
    ap.add_argument("--quiet", action="store_true", help="no plan, no progress bar")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status (0: all there, 2: something missing)."""
    ap = _parser()
    args = ap.parse_args(argv)
    names, dest = list(args.names), args.dest
    known = set(SOURCES) | set(NEEDS)
    if dest is None and len(names) > 1 and names[-1] not in known:
        dest = names.pop()  # the old form: NAME DEST
    bad = [n for n in names if n not in known]
    if bad:
        ap.error(f"unknown dataset(s) {', '.join(bad)}; choose from {', '.join(sorted(known - {'folder'}))}")
    try:
        report = ensure_datasets(names, dest or "data", mirror=args.mirror, download=False if args.no_download else None,
                                 progress=not args.quiet, verify=not args.no_verify)
    except COFTADInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for state in report.items:
        if state.status in ("present", "fetched"):
            print(state.path)
    if args.quiet:  # otherwise ensure_datasets has listed them already, once
        for line in report.lines(("manual", "not_fetched", "failed")):
            print(f"missing: {line}", file=sys.stderr)
    else:
        print(f"Data: {len(report.fetched)} fetched, {len(report.present)} already there, "
              f"{len(report.unavailable)} not available", file=sys.stderr)
    return 0 if report.ok else 2


if __name__ == "__main__":
    raise SystemExit(main())
