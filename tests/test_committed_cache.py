"""The committed cache belongs to the committed code: each record sits under today's key of its work,
and its AUROC recomputes from its own stored scores.

A record's key hashes the code its cell runs (:mod:`coftad_lib.engine.code_closure`) and the data it
read, so a change to that code moves the method's keys: ``make reproduce PROFILE=protocol-cpu`` would
then render those cells as *not computed yet*. This test says so before it lands.
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
        "--cells-only) or restore the code")


def test_every_committed_auroc_recomputes_from_its_stored_scores():
    import numpy as np

    from coftad_lib.engine.testset_files import join_test_set
    from coftad_lib.metrics import auroc

    paths = sorted(CELLS.glob("*.json"))
    if not paths:
        pytest.skip("no committed cell records")
    off = []
    for path in paths:
        rec = join_test_set(json.loads(path.read_text()), CELLS.parent)
        if rec.get("status") == "ok" and auroc(np.asarray(rec["scores"]), np.asarray(rec["labels"])) != rec["auroc"]:
            off.append(path.name)
    assert not off, f"{len(off)} records' AUROC does not recompute from their scores (first: {off[0]})"
