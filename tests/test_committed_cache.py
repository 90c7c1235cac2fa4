"""The committed cache belongs to the committed code: each record sits under today's key of its work.

A record's key hashes the code fingerprint (:mod:`coftad_lib.engine.fingerprint`), so a change to a
hashed file (say a new top-level module that only reads results, not listed as reporting) moves
every key: ``make reproduce PROFILE=protocol-cpu`` would then find none of the committed cells and
render every table as *not computed yet*. This test catches that before it lands.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coftad_lib.engine.migrate import record_cell

CELLS = Path(__file__).resolve().parents[1] / "results" / "cache" / "cells"


def test_every_committed_record_is_found_under_todays_key():
    paths = sorted(CELLS.glob("*.json"))
    if not paths:
        pytest.skip("no committed cell records")
    stale = []
    for path in paths:
        if record_cell(json.loads(path.read_text())).key() != path.stem:
            stale.append(path.name)
    assert not stale, (
        f"{len(stale)} of {len(paths)} committed records are not under today's key (first: {stale[0]}): code "
        "that decides results changed. Recompute them (python -m coftad_lib.reproduce --profile protocol-cpu "
        "--cells-only), or, if the changed module cannot move a result, list it in "
        "coftad_lib/engine/fingerprint.py's REPORTING_MODULES")
