"""``--executor pool``: N spawned processes give the local executor's records, report a raising cell,
and replace a worker that dies (its cell retried once, then reported) while the other cells finish.

Real detectors (Lite0 at 32 px, 1 step) on a generated folder dataset, 2 workers of 1 thread.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from coftad_lib.datasets.synthetic import write_texture_folder
from coftad_lib.errors import COFTADInputError
from coftad_lib.reproduce import cells as cells_mod
from coftad_lib.reproduce import get_profile, make_cell
from coftad_lib.reproduce.executors import LocalExecutor, get_executor
from coftad_lib.reproduce.pool import PoolExecutor

pytestmark = pytest.mark.timeout(600)
#: volatile record fields: wall-clock timings, how many ran at once, whether the cache answered
VOLATILE = ("fit_seconds", "score_seconds", "cached", "concurrency")


class DyingDetector:
    """Test-only detector: leaves a marker per attempt, then kills its process mid-fit."""

    def __init__(self, seed: int = 0, marker_dir: str = "", **_):
        self.marker_dir = Path(marker_dir)

    def fit(self, images):
        n = len(list(self.marker_dir.glob("attempt-*")))
        (self.marker_dir / f"attempt-{n}-{os.getpid()}").touch()
        os._exit(1)


def install_dying_detector() -> None:
    """Worker initializer: method ``"die"`` builds a :class:`DyingDetector`, the rest the registry's."""
    real = cells_mod._make_detector

    def make(method, **kwargs):
        return DyingDetector(**kwargs) if method == "die" else real(method, **kwargs)

    cells_mod._make_detector = make


@pytest.fixture(scope="module")
def folder_data(tmp_path_factory):
    return write_texture_folder(tmp_path_factory.mktemp("textures"), n_train=4, n_normal=8, n_anom=8, size=32)


def _profile():
    prof = get_profile("smoke")
    prof.update(name="pool-test", image_size=32, steps=1, batch_size=4, device="cpu")
    return prof


def _table(prof, seeds=(0, 1)):
    return [make_cell("T", "folder", "textures", 4, m, s, prof) for m in ("pretrained", "coftad") for s in seeds]


def _stable(records):
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in records]


def test_pool_gives_the_local_executors_records(folder_data, tmp_path, monkeypatch):
    import torch

    prof = _profile()
    cells = _table(prof)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each worker (threads=1): same float summation order
    try:
        local = LocalExecutor().run(cells, folder_data, tmp_path / "local", prof, progress=False)
    finally:
        torch.set_num_threads(threads)
    monkeypatch.setenv("COFTAD_WORKERS", "2")
    ex = get_executor("pool", threads=1)
    assert isinstance(ex, PoolExecutor) and ex.workers == 2
    pooled = ex.run(cells, folder_data, tmp_path / "pool", prof, progress=False)
    assert [r["status"] for r in pooled] == ["ok"] * 4
    assert _stable(pooled) == _stable(local)
    assert len(list((tmp_path / "pool" / "cells").glob("*.json"))) == 4


def test_a_raising_and_a_dying_cell_are_reported_while_the_others_finish(folder_data, tmp_path):
    prof = _profile()
    marks = tmp_path / "marks"
    marks.mkdir()
    good = _table(prof, seeds=(0,))
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
    monkeypatch.setenv("COFTAD_WORKERS", "two")
    with pytest.raises(COFTADInputError, match="COFTAD_WORKERS"):
        get_executor("pool")


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
