"""Moving a run's fitted models and cached rescorings to cell keys without the profile name.

:func:`coftad_lib.engine.migrate.migrate_cache` renames cell records by their content; what is
keyed by a cell's key but does not hold the cell (Tables VIII and X's fitted detectors under
``models/`` and their scorings, Fig. 6's t-SNE maps under ``misc/``) is found here from the specs:
every cell a run's profile asks for, with its old key (:meth:`~coftad_lib.engine.cells.Cell.legacy_key`
of the run's label) and its new one. Those cost GPU fits; nothing is recomputed that was cached.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..engine.cache import digest
from . import figure_runs as fr
from . import rescored_runs as rr
from .specs import SPECS


def _move(old: Path, new: Path) -> int:
    if not old.exists() or new.exists():
        return 0
    new.parent.mkdir(parents=True, exist_ok=True)
    os.replace(old, new)
    return 1


def _misc(cache: Path, name: str, old_parts: Any, new_parts: Any) -> int:
    moved = 0
    for suffix in (".npz", ".json"):
        old = cache / "misc" / f"{name}-{digest({'name': name, 'parts': old_parts})}{suffix}"
        new = cache / "misc" / f"{name}-{digest({'name': name, 'parts': new_parts})}{suffix}"
        moved += _move(old, new)
    return moved


def migrate_run(ctx: Any, old_key: Callable[[Any], str] | None = None) -> int:
    """Rename the fitted models, rescorings and t-SNE maps of ``ctx``'s cells (a
    :class:`~coftad_lib.paper.context.RunContext`) from their old keys; returns how many moved.

    ``old_key(cell)``: the key to move from (default: the key with the profile name,
    :meth:`~coftad_lib.engine.cells.Cell.legacy_key`); :mod:`coftad_lib.engine.rekey`'s schema-1
    move passes :meth:`~coftad_lib.engine.cells.Cell.fingerprint_key`.
    """
    cache, moved = Path(ctx.cache_dir), 0
    if not cache.is_dir():
        return 0
    old_key = old_key or (lambda cell: cell.legacy_key(ctx.name))
    for spec in SPECS.values():
        for cell in spec.cells(ctx.settings, ctx.seeds):
            old, new = old_key(cell), cell.key()
            moved += _move(cache / "models" / old, cache / "models" / new)
            if spec.cache_name:
                variants, extra = spec.variants(ctx.settings)
                moved += _misc(cache, spec.cache_name, {"cell": old, "variants": variants, "extra": extra},
                               rr.rescored_parts(cell, variants, extra))
            if spec.id == "fig6":
                n_points, seed = ctx.limits("fig6")["n_points"], int(ctx.seeds[0])
                moved += _misc(cache, "tsne", fr.tsne_parts(old, n_points, seed), fr.tsne_parts(new, n_points, seed))
    return moved
