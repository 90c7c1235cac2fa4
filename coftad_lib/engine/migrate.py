"""Moving an older cache to today's cell keys, so records that cost hours stay usable.

Until the run context redesign a cell's key held the profile's name (``"paper"``,
``"paper+steps=5"``); now it holds only what the cell computes. :func:`migrate_cache` renames the
records whose old key still matches their content.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import COFTADInputError
from .cache import atomic_write_json
from .cells import Cell, cell_path

#: written into ``<cache>/cells`` once its records carry today's keys
MARKER = ".keys-without-profile"


def ensure_migrated(cache_dir: str | os.PathLike) -> int:
    """:func:`migrate_cache` once per cache folder (a marker file records it); returns how many moved."""
    cells = Path(cache_dir) / "cells"
    if not cells.is_dir() or (cells / MARKER).exists():
        return 0
    moved = migrate_cache(cache_dir)
    (cells / MARKER).write_text("cell keys hold no profile name (coftad_lib/engine/migrate.py)\n")
    return moved


def record_cell(rec: Mapping[str, Any], table: str = "migrate") -> Cell:
    """The :class:`Cell` whose work a cell record holds (its key is today's key of that work).

    Raises KeyError when the record lacks a work field, COFTADInputError when one is invalid."""
    return Cell(table=table, dataset=rec["dataset"], task=rec["task"], shots=rec["shots"], method=rec["method"],
                method_kwargs=rec["method_kwargs"], seed=rec["seed"], task_args=rec["task_args"],
                kind=rec.get("kind", "score"), data=rec.get("data"))


def migrate_cache(cache_dir: str | os.PathLike) -> int:
    """Rename the cell records (and their features and fitted models) of an older cache whose keys
    held the profile name (:meth:`Cell.legacy_key`) to today's keys; returns how many moved.

    Only records whose legacy key still matches (same work, library version and code) move, so a
    stale record never passes for a current one. Cached rescorings and t-SNE maps are keyed by the
    cell key too; they are recomputed (from the migrated fitted models where there are any).
    """
    moved = 0
    root = Path(cache_dir)
    for path in sorted((root / "cells").glob("*.json")):
        rec = json.loads(path.read_text())
        try:
            cell = record_cell(rec)
        except (KeyError, COFTADInputError):
            continue
        if rec.get("profile") is None or cell.legacy_key(rec["profile"]) != path.stem:
            continue
        new = cell.key()
        if rec.get("features"):
            os.replace(path.with_suffix(".npz"), cell_path(root, new).with_suffix(".npz"))
            rec["features"] = f"{new}.npz"
        old_model = root / "models" / path.stem
        if old_model.is_dir():
            os.replace(old_model, root / "models" / new)
        atomic_write_json(cell_path(root, new), {**rec, "key": new})
        path.unlink()
        moved += 1
    return moved
