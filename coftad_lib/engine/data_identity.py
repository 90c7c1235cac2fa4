"""Which data a cell reads, by content: a digest of the files of its task's folders, part of the cell's key.

A cell's key names its data (:attr:`coftad_lib.engine.cells.Cell.data`), so a replaced dataset (this
project's CIFAR-10 went from a JPEG-re-encoded copy to a lossless one on 2026-12-07) is never served
from records of the old one, and its old records stay readable under their own keys.

What is hashed: every file under the folders the dataset's loader reads for the task, by relative
path, size and SHA-256 of its bytes. By default that is the dataset's folder under the data root;
a dataset module narrows or widens it with ``data_sources(root, task_args) -> list[Path]`` (MVTec:
only the category's folder, so adding ``transistor`` leaves ``bottle``'s keys alone; CIFAR-C: the
corruption files and the clean images). Each folder is hashed once per process.

Without the data (a clone that only renders the committed results), the digest last computed for
the same folders is read from ``<cache>/data_ids.json``, which every run that hashed them updates;
so committed records are found where their data is absent, and recomputed nowhere.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .cache import atomic_write_json
from .data_paths import _resolve_root_token, dataset_root

#: file in a cache folder: data id of each (dataset, folders) seen with its data present
IDS_FILE = "data_ids.json"
#: the id of a cell whose data is neither here nor in the cache's ids file
ABSENT = "absent"


@functools.lru_cache(maxsize=256)
def folder_digest(path: str) -> str | None:
    """SHA-256 over the sorted (relative path, size, SHA-256) of every file under ``path`` (or of the
    file ``path``); None when it does not exist. Hidden files and ``__pycache__`` are left out."""
    root = Path(path)
    if root.is_file():
        files = [root]
    elif root.is_dir():
        files = sorted(p for p in root.rglob("*") if p.is_file() and not any(
            part.startswith(".") or part == "__pycache__" for part in p.relative_to(root).parts))
    else:
        return None
    h = hashlib.sha256()
    for p in files:
        content = hashlib.sha256(p.read_bytes()).hexdigest()
        h.update(f"{p.relative_to(root).as_posix() if p != root else p.name}\0{p.stat().st_size}\0{content}\n".encode())
    return h.hexdigest()


def data_folders(dataset: str, task_args: Mapping[str, Any], data_root: Any) -> list[Path]:
    """The folders (or files) a cell of ``dataset`` with ``task_args`` reads under ``data_root``."""
    root = dataset_root(data_root, dataset)
    args = {k: _resolve_root_token(v, data_root) for k, v in task_args.items()}
    try:
        from ..datasets import dataset_module
        hook = getattr(dataset_module(dataset), "data_sources", None)
    except Exception:  # an unknown dataset: its loader reports it; hash the folder it would read
        hook = None
    if hook is None:
        return [root]
    try:
        return [Path(p) for p in hook(root, {**args, "dataset": dataset})]
    except Exception:  # the data is not (all) here: the loader says what is missing when the cell runs
        return [root / ".absent"]


def _entry(dataset: str, folders: Sequence[Path], data_root: Any) -> str:
    """The ids file's entry name: dataset and folders relative to the data root (machine-free)."""
    # absolute, not resolved: a data root of symlinks to datasets names them as they are laid out
    roots = [Path(os.path.abspath(r)) for r in (data_root if isinstance(data_root, (list, tuple)) else [data_root])
             if isinstance(r, (str, os.PathLike))]
    names = []
    for f in folders:
        f = Path(os.path.abspath(f))
        rel = next((f.relative_to(r).as_posix() for r in roots if f == r or r in f.parents), f.name)
        names.append(rel)
    return f"{dataset}:{','.join(names)}"


class DataIds:
    """``ids(dataset, task_args) -> "sha256:<16 hex>"``: a run's data ids, hashed once per folder set.

    Args:
        data_root: the run's data root(s) (a folder, a search list, or a dataset -> folder mapping).
        cache_dir: the run's cache folder, whose ``data_ids.json`` remembers ids for absent data
            (None: no memory; absent data gets :data:`ABSENT`); written only once the folder exists.
    """

    def __init__(self, data_root: Any, cache_dir: str | os.PathLike | None = None) -> None:
        self.data_root = data_root
        self.path = Path(cache_dir) / IDS_FILE if cache_dir is not None else None
        self._known: dict[str, str] | None = None

    def __deepcopy__(self, memo: dict) -> DataIds:
        return self  # shared by every copy of a run's settings (profiles are deep-copied per cell)

    def _read(self) -> dict[str, str]:
        if self._known is None:
            self._known = json.loads(self.path.read_text()) if self.path is not None and self.path.is_file() else {}
        return self._known

    def __call__(self, dataset: str, task_args: Mapping[str, Any]) -> str:
        folders = data_folders(dataset, task_args, self.data_root)
        entry = _entry(dataset, folders, self.data_root)
        digests = [folder_digest(str(f)) for f in folders]
        if any(d is None for d in digests):
            return self._read().get(entry, ABSENT)
        ident = "sha256:" + hashlib.sha256("\n".join(digests).encode()).hexdigest()[:16]
        known = self._read()
        # remembered only in a cache that exists: a --plan of a new run writes nothing
        if self.path is not None and self.path.parent.is_dir() and known.get(entry) != ident:
            known[entry] = ident
            atomic_write_json(self.path, dict(sorted(known.items())))
        return ident
