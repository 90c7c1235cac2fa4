"""Atomic, content-keyed on-disk cache for units of work.

Every write goes to a temporary file in the target's folder and is moved into place with
``os.replace``, so a reader (or a rerun after a crash or Ctrl-C) sees either the complete
old file, the complete new file, or nothing, never a partial one. Keys are SHA-256 digests
of canonical JSON (sorted keys), so equal work gives equal keys on every machine.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..atomic_files import atomic_open
from ..errors import COFTADInputError


def canonical_json(obj: Any, what: str = "cache key") -> str:
    """JSON text of ``obj`` with sorted keys and no whitespace; the input of :func:`digest`.

    Raises:
        COFTADInputError: ``obj`` holds something JSON cannot represent (``what`` names it).
    """
    try:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise COFTADInputError(f"{what}: {exc}; use only str, int, float, bool, None, lists and dicts") from exc


def digest(obj: Any, what: str = "cache key") -> str:
    """SHA-256 hex digest (64 chars) of :func:`canonical_json` of ``obj``."""
    return hashlib.sha256(canonical_json(obj, what).encode()).hexdigest()


def atomic_write(path: str | os.PathLike, writer: Callable[[BinaryIO], None]) -> Path:
    """Create ``path`` from ``writer(file)`` atomically (:func:`coftad_lib.atomic_files.atomic_open`:
    temp file in the same folder, fsync, os.replace, the user's umask); parent folders are created.

    If ``writer`` raises, the temporary file is removed, ``path`` is left as it was, and the
    exception propagates.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as fh:
        writer(fh)
    return path


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON (sorted keys) to ``path`` atomically.

    Serialisation happens before the file is opened, so an unserialisable ``obj`` leaves no file.
    """
    text = json.dumps(obj, indent=1, sort_keys=True, allow_nan=True) + "\n"
    return atomic_write(path, lambda fh: fh.write(text.encode()))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write(path, lambda fh: fh.write(text.encode()))


def atomic_save_npz(path: str | os.PathLike, arrays: Mapping[str, np.ndarray]) -> Path:
    """Save named arrays as a compressed ``.npz`` at ``path`` atomically."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return atomic_write(path, lambda fh: fh.write(buf.getvalue()))


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Arrays of an ``.npz`` file as a plain dict (object arrays refused: no pickle)."""
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def cached(name: str, key_parts: Any, fn: Callable[[], Any], cache_dir: str | os.PathLike, *,
           compute: bool = True) -> Any:
    """Return ``fn()``, computed once per ``(name, key_parts)`` and kept under ``cache_dir/misc``.

    For work that is not "fit a detector and score a test set" (feature extraction for Table VIII
    and Fig. 6, anything a figure needs). ``key_parts`` must be JSON-able and must contain
    everything the result depends on (dataset, task, seed, profile, method kwargs, ...).
    ``fn`` must return either a JSON-able value or a dict of numpy arrays; the latter is stored
    as ``.npz``. The result is written atomically, so an interrupted ``fn`` leaves nothing behind.
    With ``compute=False`` nothing is computed: the cached value, or None when there is none.

    Example:
        >>> feats = cached("embed", {"task": "Daffodil/Tulip", "seed": 0}, lambda: {"z": z}, "results/cache")
    """
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise COFTADInputError(f"cached: name={name!r} must be a non-empty word (letters, digits, _ and -)")
    key = digest({"name": name, "parts": key_parts}, what=f"cached({name!r}) key_parts")
    folder = Path(cache_dir) / "misc"
    npz, js = folder / f"{name}-{key}.npz", folder / f"{name}-{key}.json"
    if npz.exists():
        return load_npz(npz)
    if js.exists():
        return json.loads(js.read_text())["value"]
    if not compute:
        return None
    value = fn()
    if isinstance(value, Mapping) and value and all(isinstance(v, np.ndarray) for v in value.values()):
        atomic_save_npz(npz, value)
        return load_npz(npz)
    canonical_json(value, what=f"cached({name!r}) result")
    atomic_write_json(js, {"name": name, "key_parts": key_parts, "value": value})
    return json.loads(js.read_text())["value"]



def cache_dir(out_dir: str | os.PathLike) -> Path:
    """The cell cache inside a run's output folder: ``<out_dir>/cache``."""
    return Path(out_dir) / "cache"
