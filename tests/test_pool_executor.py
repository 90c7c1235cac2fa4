"""``--executor pool``: N spawned processes give the local executor's records, report a raising cell,
and replace a worker that dies (its cell retried once, then reported) while the other cells finish.

Real detectors (Lite0 at 32 px, 1 step) on a generated folder dataset, 2 workers of 1 thread.
"""

from __future__ import annotations

import pytest
from executor_cases import (
    install_dying_detector,
    local_reference,
    stable,
    texture_table,
    tiny_profile,
)

from coftad_lib.engine.executors import get_executor
from coftad_lib.engine.pool import PoolExecutor
from coftad_lib.errors import COFTADInputError
from coftad_lib.paper import make_cell

pytestmark = pytest.mark.timeout(600)


def _profile():
    return tiny_profile("pool-test")


def test_pool_gives_the_local_executors_records(folder_data, tmp_path, monkeypatch):
    prof = _profile()
    cells = texture_table(prof)
    local = local_reference(cells, folder_data, tmp_path / "local", prof)
    ex = get_executor("pool", workers=2, threads=1)
    assert isinstance(ex, PoolExecutor) and ex.workers == 2
    pooled = ex.run(cells, folder_data, tmp_path / "pool", prof, progress=False)
    assert [r["status"] for r in pooled] == ["ok"] * 4
    assert stable(pooled) == stable(local)
    assert len(list((tmp_path / "pool" / "cells").glob("*.json"))) == 4


def test_a_raising_and_a_dying_cell_are_reported_while_the_others_finish(folder_data, tmp_path):
    prof = _profile()
    marks = tmp_path / "marks"
    marks.mkdir()
    good = texture_table(prof, seeds=(0,))
    bad = make_cell("T", "folder", "textures", 4, "coftad", 0, prof, no_such_argument=1)
    dying = make_cell("T", "folder", "textures", 4, "die", 0, prof, marker_dir=str(marks))
    ex = PoolExecutor(workers=2, threads=1, max_retries=1, initializer=install_dying_detector)
    records = ex.run([good[0], dying, bad, good[1]], folder_data, tmp_path / "c", prof, progress=False)
    assert [r["status"] for r in records] == ["ok", "failed", "failed", "ok"]
    assert "worker died (1 retry used)" in records[1]["message"]
    assert len(list(marks.glob("attempt-*"))) == 2  # the first try and one retry, on a new worker
    assert "COFTADInputError" in records[2]["message"] and "no_such_argument" in records[2]["message"]
    with pytest.raises(COFTADInputError, match="no_such_argument"):  # strict: the call's own error
        PoolExecutor(workers=1, threads=1).run([bad], folder_data, tmp_path / "s", prof, progress=False,
                                               strict=True)


def test_bad_worker_counts_are_refused(monkeypatch):
    for bad in (0, -1, 1.5, True):
        with pytest.raises(COFTADInputError, match="--workers"):
            PoolExecutor(workers=bad)
    with pytest.raises(COFTADInputError, match="--workers"):
        get_executor("pool", workers="two")


def test_closures_travel_and_a_call_that_cannot_travel_fails_at_once():
    """Tables VIII and X map local score functions; a call pickle cannot send raises, never hangs."""
    import threading

    offset = 10

    def add(x):  # a closure: plain pickle cannot send it
        return x + offset

    got = {}
    ex = PoolExecutor(workers=1, threads=1)
    ex.map(add, {"a": (1,), "b": (2,)}, lambda k, r, e: got.__setitem__(k, (r, e)))
    assert got == {"a": (11, None), "b": (12, None)}
    with pytest.raises(COFTADInputError, match="cannot be sent to a worker"):
        ex.map(add, {"lock": (threading.Lock(),)}, lambda k, r, e: None)
