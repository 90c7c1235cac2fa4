"""The runner's console: the estimate before a run and the heartbeat while a notebook runs (no timed tests)."""

from __future__ import annotations

import json
from pathlib import Path

from coftad_lib.engine.cells import cell_path
from coftad_lib.reproduce import progress
from coftad_lib.reproduce.plan import notebook_cells
from coftad_lib.reproduce.series import build_context

REPO = Path(__file__).resolve().parents[1]
TABLE_I = REPO / "notebooks" / "04_table_I_flowers17.ipynb"


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _record(cells_dir: Path, name: str) -> None:
    cells_dir.mkdir(parents=True, exist_ok=True)
    (cells_dir / f"{name}.json").write_text("{}")


def test_heartbeat_reports_new_cells_at_most_every_min_gap_and_speaks_after_every(tmp_path):
    cells, clock, lines = tmp_path / "cache" / "cells", FakeClock(), []
    _record(cells, "old")  # cached before the notebook started: not counted
    hb = progress.Heartbeat("05_table_II", cells, 3, lines.append, now=clock)
    clock.t += 1
    assert hb.tick(clock.t) is None  # nothing new, not silent for long
    _record(cells, "a")
    (cells / ".a.json.tmp").write_text("")  # a record being written is not a record
    clock.t += 1
    assert hb.tick(clock.t) is None  # new cell, but a line came less than min_gap ago (the start)
    clock.t += progress.HEARTBEAT_MIN_GAP
    assert hb.tick(clock.t) == "  05_table_II: 0:00:07 elapsed, 1 of ~3 cells computed"
    clock.t += 1
    assert hb.tick(clock.t) is None
    clock.t += progress.HEARTBEAT_EVERY  # a long cell: no new record, but never silent
    assert hb.tick(clock.t) == "  05_table_II: 0:00:33 elapsed, 1 of ~3 cells computed"
    _record(cells, "b")
    clock.t += progress.HEARTBEAT_MIN_GAP
    assert hb.tick(clock.t).endswith("2 of ~3 cells computed")


def test_heartbeat_of_a_notebook_without_cells_gives_the_elapsed_time(tmp_path):
    clock = FakeClock()
    hb = progress.Heartbeat("01_data_prep", tmp_path / "no_cache", None, print, now=clock)
    clock.t += progress.HEARTBEAT_EVERY
    assert hb.tick(clock.t) == "  01_data_prep: 0:00:25 elapsed"
    with hb:  # the thread starts and stops cleanly
        pass


def test_notebook_line_and_clock():
    assert progress.clock(3725.4) == "1:02:05"
    assert (progress.notebook_line(2, 19, "04_x", 0.0, 61.0, "starting", {"04_x": 12})
            == "[2/19] 04_x: starting (12 cells to run; run elapsed 0:01:01)")
    assert progress.notebook_line(2, 19, "04_x", 0.0, 61.0, "ok in 3.0 s") == "[2/19] 04_x: ok in 3.0 s (run elapsed 0:01:01)"


def test_estimate_counts_cached_cells_and_uses_measured_timings_only(tmp_path):
    """No measured cells: counts, no time (and no calibration). One measured cell: a time from it."""
    ctx, _ = build_context("smoke", seeds=[0], data_root=tmp_path / "data", out_dir=tmp_path / "out")
    cells = notebook_cells(TABLE_I, ctx.settings, ctx.seeds)
    line, to_run = progress.estimate(ctx, [TABLE_I])
    assert to_run == {TABLE_I.stem: len(cells)}
    assert f"{len(cells)} cells: 0 cached, {len(cells)} to run" in line and "no time estimate" in line
    cell = next(c for c in cells if c.method == "coftad")
    rec = {"status": "ok", "method": cell.method, "method_kwargs": cell.method_kwargs, "fit_seconds": 2.0,
           "score_seconds": 1.0, "n_test": 10, "versions": {"device": "cpu (test)"}}
    path = cell_path(ctx.cache_dir, cell.key())
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(rec))
    line, to_run = progress.estimate(ctx, [TABLE_I])
    assert to_run == {TABLE_I.stem: len(cells) - 1}
    assert f"1 cached, {len(cells) - 1} to run" in line and "expected ~" in line and "cpu (test)" in line


def test_the_cache_executor_promises_no_computation(tmp_path):
    ctx, _ = build_context("smoke", seeds=[0], data_root=tmp_path / "data", out_dir=tmp_path / "out", executor="cache")
    n = len(notebook_cells(TABLE_I, ctx.settings, ctx.seeds))
    line, to_run = progress.estimate(ctx, [TABLE_I])
    assert to_run == {} and f"0 cached, {n} not computed yet" in line and "computes none" in line
    assert "expected" not in line


def test_preflight_never_stops_a_run(tmp_path, monkeypatch):
    ctx, _ = build_context("smoke", seeds=[0], data_root=tmp_path / "data", out_dir=tmp_path / "out")

    def broken(*a, **k):
        raise RuntimeError("spec bug")

    monkeypatch.setattr(progress, "plan", broken)
    lines: list[str] = []
    assert progress.preflight(ctx, [TABLE_I], lines.append) == {}
    assert lines == ["no estimate (RuntimeError: spec bug)"]
