"""A saved model's folder: what it holds, how it is written whole, and how it vouches for itself.

A model folder holds ``config.json`` and ``weights.safetensors``. Since format 3 the config records
the weights file's SHA-256 and its tensor names, dtypes and shapes, so weights of another fit (an
interrupted save, a copied file) never load beside a config they do not belong to. The folder is
written under a temporary name and renamed into place (:func:`write_model_folder`), replacing an
older model only by a complete one, under a lock that makes a second writer fail at once.

:mod:`coftad_lib.persistence` captures and rebuilds detectors; this module only handles files.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .atomic_files import (
    atomic_path,
    exclusive_lock,
    remove_leftovers,
    staged_folder,
    write_text_atomic,
)
from .errors import COFTADInputError

#: 1: COFTAD.save (backbone + density); 2: any registry method; 3: 2 + the weights' checksum and tensor list
FORMAT_VERSION = 3
CONFIG_FILE, WEIGHTS_FILE = "config.json", "weights.safetensors"
#: top-level config keys and the JSON types they must have (format 2 and 3)
_KEY_TYPES: dict[str, tuple[type, ...]] = {
    "method": (str,), "kwargs": (dict,), "state": (dict,), "threshold": (int, float, type(None)),
    "threshold_info": (dict,), "extra": (dict,), "weights": (dict,),
}
_KIND = {bool: "true or false", int: "a whole number", float: "a number", str: "a string", list: "a list",
         tuple: "a list", dict: "an object"}
_JSON_NAMES = {str: "a string", dict: "an object", int: "a number", float: "a number", type(None): "null"}


class ModelFileError(COFTADInputError):
    """A saved-model folder is corrupt, of an unknown method, or of a newer format; names the file."""


class ModelNotFoundError(ModelFileError, FileNotFoundError):
    """A saved-model folder or one of its files is missing."""


def sha256_of(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def tensor_list(tensors: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{name: {"dtype": "float32", "shape": [..]}}`` of a tensor dict, as ``config.json`` records it."""
    return {k: {"dtype": str(v.dtype).removeprefix("torch."), "shape": list(v.shape)}
            for k, v in sorted(tensors.items())}


def check_config_types(meta: Mapping[str, Any], cfg_file: Path) -> None:
    """Raise :class:`ModelFileError` naming the file and key when a top-level value has the wrong type."""
    for key, types in _KEY_TYPES.items():
        if key in meta and (not isinstance(meta[key], types) or isinstance(meta[key], bool)):
            wanted = " or ".join(dict.fromkeys(_JSON_NAMES[t] for t in types))
            raise ModelFileError(f"{cfg_file}: key {key!r} must be {wanted}, got {json.dumps(meta[key])[:60]}; "
                                 "was the file edited by hand? Fit the model again")


def check_weights(meta: Mapping[str, Any], data: bytes, tensors: Mapping[str, Any], w_file: Path,
                  cfg_file: Path) -> None:
    """Check the weights file against what ``config.json`` (format 3) records about it.

    Raises:
        ModelFileError: the checksum, a tensor name, dtype or shape differs; names both files and the key.
    """
    record = meta.get("weights")
    if record is None:  # formats 1 and 2 recorded nothing: only the rebuild's own checks apply
        return
    if not isinstance(record.get("sha256"), str) or not isinstance(record.get("tensors"), dict):
        raise ModelFileError(f"{cfg_file}: key 'weights' must hold 'sha256' (a string) and 'tensors' (an object)")
    if sha256_of(data) != record["sha256"]:
        raise ModelFileError(
            f"{w_file}: does not belong to {cfg_file} (its SHA-256 differs from key 'weights.sha256'): the "
            "two files come from different saves, e.g. an interrupted save or a file copied from another "
            "model; copy the whole model folder, or fit again")
    found = tensor_list(tensors)
    if found != record["tensors"]:
        bad = sorted(set(found) ^ set(record["tensors"])) or [k for k in found if found[k] != record["tensors"][k]]
        raise ModelFileError(f"{cfg_file}: key 'weights.tensors' does not describe {w_file} (e.g. tensor {bad[0]!r})")


def check_value_types(values: Mapping[str, Any], examples: Mapping[str, Any], cfg_file: Path, key: str = "kwargs",
                      loose_numbers: bool = False) -> None:
    """Raise :class:`ModelFileError` naming ``<key>.<name>`` when a saved value's type differs from its example's.

    Examples of None or of types JSON cannot tell apart are not checked; ints pass where floats are
    expected, and with ``loose_numbers`` floats where ints are (values a fit may store either way).
    """
    for name, value in values.items():
        example = examples.get(name)
        if example is None or value is None:
            continue
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if isinstance(example, bool):
            ok = isinstance(value, bool)
        elif isinstance(example, int):
            ok = number and (loose_numbers or isinstance(value, int))
        elif isinstance(example, float):
            ok = number
        elif isinstance(example, (str, list, tuple, dict)):
            ok = isinstance(value, list if isinstance(example, tuple) else type(example))
        else:
            continue
        if not ok:
            raise ModelFileError(f"{cfg_file}: key '{key}.{name}' is {json.dumps(value)[:60]}, expected "
                                 f"{_KIND.get(type(example), type(example).__name__)}; was the file edited by hand?")


def check_model_out(path: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """Refuse an unusable model folder path before any work: a file, under a file, not writable, an
    input (or a folder holding one), or an existing folder that holds other things than a model.

    Raises:
        COFTADInputError: with the path and what to do.
    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise COFTADInputError(f"{out}: is a file, not a model folder; choose a folder path for --out")
    resolved = out.resolve()
    for item in inputs:
        src = Path(item).resolve()
        if src == resolved or resolved in src.parents:
            raise COFTADInputError(f"{out}: is (or holds) the input {item}; saving there would replace it. "
                                   "Choose another --out")
    if out.is_dir():
        others = sorted(p.name for p in out.iterdir() if p.name not in (CONFIG_FILE, WEIGHTS_FILE) and not p.name.startswith("."))
        if others:
            raise COFTADInputError(f"{out}: exists and holds other files than a model (e.g. {others[0]}); saving "
                                   "replaces the whole folder, so choose a new or empty folder for --out")
    require_writable_parent(out, "--out")
    return out


def require_writable_parent(out: Path, option: str) -> None:
    """Raise :class:`COFTADInputError` when ``out`` cannot be created: its nearest existing ancestor is a
    file or not writable."""
    anc = out.absolute().parent
    while not anc.exists():
        anc = anc.parent
    if not anc.is_dir():
        raise COFTADInputError(f"{out}: {anc} is a file, so {option} cannot be created under it")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise COFTADInputError(f"{out}: cannot write in {anc} (permission denied); choose another {option}")


def write_model_folder(path: str | os.PathLike, tensors: Mapping[str, Any], meta: dict[str, Any]) -> Path:
    """Write ``weights.safetensors`` and ``config.json`` (``meta`` plus the weights record) as one folder.

    The folder is built aside and renamed into place under the lock of ``path``: ``path`` holds the
    old model or the new one, never a mix, and a second writer fails at once naming this one.
    """
    from safetensors.torch import save

    path = Path(path)
    data = save(dict(tensors))
    meta = dict(meta) | {"weights": {"file": WEIGHTS_FILE, "sha256": sha256_of(data),
                                     "tensors": tensor_list(tensors)}}
    with exclusive_lock(path, "model folder"):
        remove_leftovers(path)
        with staged_folder(path) as staged:
            with atomic_path(staged / WEIGHTS_FILE) as tmp:
                tmp.write_bytes(data)
            write_text_atomic(staged / CONFIG_FILE, json.dumps(meta, indent=2))
    return path


def read_weights(w_file: Path) -> bytes:
    """The bytes of ``weights.safetensors``; a file that cannot be read is named with the reason (not "corrupt")."""
    if not w_file.is_file():
        raise ModelNotFoundError(f"{w_file}: missing; the model folder needs {CONFIG_FILE} and {WEIGHTS_FILE}")
    try:
        return w_file.read_bytes()
    except PermissionError as exc:
        raise ModelFileError(f"{w_file}: cannot be read (permission denied); ask its owner to make it "
                             "readable (chmod a+r), or copy the model folder") from exc
    except OSError as exc:
        raise ModelFileError(f"{w_file}: cannot be read ({exc.strerror or exc})") from exc


__all__ = ["CONFIG_FILE", "FORMAT_VERSION", "WEIGHTS_FILE", "ModelFileError", "ModelNotFoundError",
           "check_config_types", "check_value_types", "check_model_out", "check_weights", "read_weights",
           "require_writable_parent", "sha256_of", "tensor_list", "write_model_folder"]
