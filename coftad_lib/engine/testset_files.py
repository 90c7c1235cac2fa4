"""Test sets stored once per cache, not once per record.

Every record of a task carries the same per-item ``labels``, ``test_ids`` and ``test_kinds``: on
CIFAR-10-C that is 9,900 ids, kinds and labels, about 540 KB of a 716 KB record, repeated by the 21
cells (7 rows x 3 seeds) of a Table VI class. :func:`split_test_set` moves the three lists into
``<cache>/test_sets/<digest>.json`` (content-addressed: equal lists share one file; written once,
atomically) and leaves ``"test_set": <digest>`` in the record; :func:`join_test_set` puts them back
when a record is read, so every reader sees the record as it was computed. Records written before
(with the lists inline) read unchanged; :func:`compact_cache` rewrites them in the new layout.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import COFTADInputError
from .cache import atomic_write_json, digest

#: the per-test-item lists a test set file holds, each (M,) in the record's score order
FIELDS: tuple[str, ...] = ("labels", "test_ids", "test_kinds")


def testset_path(cache_dir: str | os.PathLike, name: str) -> Path:
    """Where the test set ``name`` (a digest) of a cache lives: ``<cache_dir>/test_sets/<name>.json``."""
    return Path(cache_dir) / "test_sets" / f"{name}.json"


def split_test_set(record: Mapping[str, Any], cache_dir: str | os.PathLike) -> dict[str, Any]:
    """``record`` without its :data:`FIELDS`, which go to a shared file; ``"test_set"`` names it.

    A record without all three lists (missing, failed, older layouts) is returned as it is.
    """
    if not all(isinstance(record.get(f), list) for f in FIELDS):
        return dict(record)
    lists = {f: record[f] for f in FIELDS}
    name = digest(lists, what=f"test set of record {record.get('key')}")
    path = testset_path(cache_dir, name)
    if not path.exists():  # content-addressed: an existing file already holds exactly these lists
        atomic_write_json(path, lists)
    return {**{k: v for k, v in record.items() if k not in FIELDS}, "test_set": name}


def join_test_set(record: dict[str, Any], cache_dir: str | os.PathLike) -> dict[str, Any]:
    """``record`` with the lists of its ``"test_set"`` file put back (a record without one as it is).

    Raises:
        COFTADInputError: the record names a test set file that is not in the cache (a cache copied
            without its ``test_sets/`` folder).
    """
    name = record.get("test_set")
    if not name:
        return record
    path = testset_path(cache_dir, name)
    try:
        lists = json.loads(path.read_text())
    except FileNotFoundError:
        raise COFTADInputError(
            f"cell record {record.get('key')} names test set {name}, but {path} is missing; copy the "
            "cache's test_sets/ folder together with its cells/ folder") from None
    out = {k: v for k, v in record.items() if k != "test_set"}
    out.update({f: lists[f] for f in FIELDS})
    return out


def read_record(path: str | os.PathLike, cache_dir: str | os.PathLike) -> dict[str, Any]:
    """A cell record file of ``cache_dir``, with its test set joined back (:func:`join_test_set`)."""
    return join_test_set(json.loads(Path(path).read_text()), cache_dir)


def compact_cache(cache_dir: str | os.PathLike) -> tuple[int, int]:
    """Rewrite every record of ``<cache_dir>/cells`` that holds its test set inline; ``(records, bytes saved)``.

    Atomic per record, and idempotent: a record already split is left alone.
    """
    moved, saved = 0, 0
    for path in sorted((Path(cache_dir) / "cells").glob("*.json")):
        rec = json.loads(path.read_text())
        if "test_set" in rec or not all(isinstance(rec.get(f), list) for f in FIELDS):
            continue
        before = path.stat().st_size
        atomic_write_json(path, split_test_set(rec, cache_dir))
        saved += before - path.stat().st_size
        moved += 1
    return moved, saved
