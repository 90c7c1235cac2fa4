"""Record schema 1 -> 2, once: keys from the code a cell runs and the data it read; exact AUROCs.

Schema 1 keyed a cell by its work plus one hash of every result-deciding file
(:meth:`~coftad_lib.engine.cells.Cell.fingerprint_key`); schema 2 by its work, the id of its data
and the digest of its own code closure (:meth:`~coftad_lib.engine.cells.Cell.key`). A record moves
only when its schema-1 key is today's schema-1 key of its work (same code as today), so nothing
stale passes for current. Nothing is refitted:

- ``data``: the id of the data the record was computed on, given by ``data_id_of(record)``; for a
  dataset replaced since, a label naming the old copy (``--data cifar10c=...``), so its records
  stay readable under their own keys and the new data's cells are computed anew;
- ``auroc``: recomputed from the record's stored scores, which schema 1 rounded to 8 significant
  digits; where that moved it (ties created by the rounding), the full-precision AUROC stays
  beside it as ``auroc_unrounded`` (``--verify`` compares a recomputation with that one).

Usage (the committed cache was moved with)::

    python -m coftad_lib.engine.rekey results/cache --data-root ../shared/data --prep-dir prepared_data \\
        --data "cifar10c=jpeg-q75 copy, shots from test/ (replaced 2026-12-07)"
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .cache import atomic_write_json
from .cells import RECORD_SCHEMA, cell_path
from .compute import auroc
from .migrate import record_cell
from .testset_files import join_test_set, split_test_set

#: ``<cache>/rekeyed.json``: schema-1 key -> schema-2 key of every moved record
MAP_FILE = "rekeyed.json"


def rekey_record(rec: Mapping[str, Any], data_id: str) -> dict[str, Any]:
    """The schema-2 form of a joined schema-1 record (same numbers, new key, data id, exact AUROC)."""
    cell = dataclasses.replace(record_cell(rec), data=data_id)
    new = dict(rec, key=cell.key(), data=data_id, schema=RECORD_SCHEMA)
    exact = auroc(np.asarray(rec["scores"], dtype=np.float64), np.asarray(rec["labels"]))
    if exact != rec["auroc"]:
        new["auroc_unrounded"], new["auroc"] = rec["auroc"], exact
    if rec.get("features"):
        new["features"] = f"{new['key']}.npz"
    return new


def rekey_cache(cache_dir: str | os.PathLike, data_id_of: Callable[[Mapping[str, Any]], str],
                fingerprint: str | None = None) -> dict[str, str]:
    """Move every current schema-1 ``"ok"`` record of ``cache_dir`` to schema 2; returns old -> new keys
    (also merged into ``<cache>/rekeyed.json``). Records whose schema-1 key (under ``fingerprint``,
    the code fingerprint they were computed with; default today's) is stale are left alone."""
    root = Path(cache_dir)
    moved: dict[str, str] = {}
    for path in sorted((root / "cells").glob("*.json")):
        rec = json.loads(path.read_text())
        if rec.get("schema", 1) != 1 or rec.get("status") != "ok" or record_cell(rec).fingerprint_key(fingerprint) != path.stem:
            continue
        new = rekey_record(join_test_set(rec, root), data_id_of(rec))
        target = cell_path(root, new["key"])
        if path.with_suffix(".npz").is_file():  # features of an embed cell (not committed: recomputed)
            os.replace(path.with_suffix(".npz"), target.with_suffix(".npz"))
        atomic_write_json(target, split_test_set(new, root))
        path.unlink()
        moved[path.stem] = new["key"]
    known = json.loads((root / MAP_FILE).read_text()) if (root / MAP_FILE).is_file() else {}
    atomic_write_json(root / MAP_FILE, dict(sorted({**known, **moved}.items())))
    return moved


def data_ids_for(data_root: Any, cache_dir: str | os.PathLike, fixed: Mapping[str, str]) -> Callable[[Mapping[str, Any]], str]:
    """``data_id_of(record)``: ``fixed[dataset]`` where given, else the id of the data here
    (:class:`~coftad_lib.engine.data_identity.DataIds`)."""
    from .data_identity import DataIds

    ids = DataIds(data_root, cache_dir)
    return lambda rec: fixed.get(rec["dataset"]) or ids(rec["dataset"], rec["task_args"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m coftad_lib.engine.rekey", description=__doc__.split("\n")[0])
    p.add_argument("cache", help="a cache folder (holding cells/)")
    p.add_argument("--data-root", required=True, help="the data the records were computed on")
    p.add_argument("--prep-dir", default=None, help="the prepared data (CIFAR-C corruptions, crops, slices)")
    p.add_argument("--fingerprint", default=None,
                   help="the schema-1 code fingerprint the records were computed with (default: today's)")
    p.add_argument("--data", action="append", default=[], metavar="DATASET=LABEL",
                   help="a dataset replaced since its records were computed: the label its records keep")
    args = p.parse_args(argv)
    fixed = dict(item.split("=", 1) for item in args.data)
    roots = [args.data_root] + ([args.prep_dir] if args.prep_dir else [])
    moved = rekey_cache(args.cache, data_ids_for(roots, args.cache, fixed), args.fingerprint)
    print(f"{len(moved)} records moved to schema {RECORD_SCHEMA} keys in {args.cache}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
