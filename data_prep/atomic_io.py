"""Atomic writes and resumable run bookkeeping for the prepared datasets (paper Sec. IV-A).

``data_prep.aitex_crops`` and ``data_prep.semicon_slices`` write a folder of ``normal/`` and
``defect/`` PNGs plus ``manifest.csv`` (the layout :mod:`coftad_lib.datasets.crops` reads);
``data_prep.semicon_synth`` writes volumes and a parameters file. Every file goes to a temporary
name first and is renamed into place (:mod:`coftad_lib.atomic_files`, the library's one atomic
writer), so a crash never leaves half a file under the real name. A
prepared folder records the parameters of the run writing it (:func:`start_run`): a rerun with the
same parameters resumes an interrupted run or, when the manifest (written last) is there, does
nothing; a run with other parameters starts afresh.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from coftad_lib.atomic_files import atomic_open, save_image_atomic, write_text_atomic
from coftad_lib.datasets.crops import MANIFEST

#: records the parameters of the run that is (or was) writing an output folder
PARAMS_FILE = ".params.json"


def save_png_atomic(img: Image.Image, path: Path) -> None:
    """Write ``img`` as PNG to ``path`` via a temporary file, so a crash never leaves half a PNG."""
    save_image_atomic(img, path, format="PNG")


def write_csv_atomic(path: Path, rows: Sequence[dict], fieldnames: Sequence[str]) -> None:
    """Write ``rows`` as CSV to ``path`` via a temporary file."""
    with atomic_open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(fieldnames))
        writer.writeheader()
        writer.writerows(rows)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON with sorted keys to ``path`` via a temporary file."""
    write_text_atomic(path, json.dumps(obj, indent=1, sort_keys=True))


def read_json(path: Path) -> Any | None:
    """The JSON stored at ``path``, or None when the file is missing or unreadable.

    A run records its parameters again then, so a damaged file only costs a rerun.
    """
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, json.JSONDecodeError):
        return None


def fingerprint(files: Iterable[Path], base: Path) -> str:
    """Short hash of the inputs' names, sizes and modification times: a changed input reruns the job."""
    h = hashlib.sha256()
    for p in sorted(files):
        st = p.stat()
        name = p.relative_to(base).as_posix() if p.is_relative_to(base) else p.as_posix()
        h.update(f"{name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def start_run(out: Path, params: dict, subdirs: Sequence[str] = ("normal", "defect")) -> bool:
    """Get ``out`` ready for a run with ``params``; True when a finished run with them is there.

    Same parameters as the recorded ones: files already written are kept (an interrupted run
    resumes). Different or no recorded parameters: the manifest and the PNGs of ``subdirs`` are
    removed first, because they may come from other settings.
    """
    out.mkdir(parents=True, exist_ok=True)
    for sub in subdirs:
        (out / sub).mkdir(exist_ok=True)
        for tmp in (out / sub).glob(".*.tmp"):
            tmp.unlink()
    params = json.loads(json.dumps(params))  # normalise tuples to lists, as the file stores them
    pfile = out / PARAMS_FILE
    manifest = out / MANIFEST
    if read_json(pfile) == params:
        if manifest.is_file():
            with open(manifest, newline="") as fh:
                if all((out / row["file"]).is_file() for row in csv.DictReader(fh)):
                    return True
        return False
    manifest.unlink(missing_ok=True)
    for sub in subdirs:
        for png in (out / sub).glob("*.png"):
            png.unlink()
    write_json_atomic(pfile, params)
    return False
