"""The ``protocol-cpu`` profile (issue 20): its settings, one thread per CPU cell whatever the
executor, rendering from a cache that other runs fill, and ``--verify`` recomputing committed cells.

Real detectors (Lite0 at 32 px, 1 step) on a generated folder dataset.
"""

from __future__ import annotations

import json

import pytest
import torch
from executor_cases import stable, texture_table, tiny_profile

from coftad_lib.engine.cells import cell_path, run_cell
from coftad_lib.engine.executors import get_executor, run_cells
from coftad_lib.engine.threads import cell_thread_count
from coftad_lib.paper import get_profile, make_cell
from coftad_lib.paper.profiles import derive
from coftad_lib.paper.results_tables import write_table
from coftad_lib.reproduce.__main__ import main
from coftad_lib.reproduce.series import build_context
from coftad_lib.reproduce.verify import verify

pytestmark = pytest.mark.timeout(600)


def test_protocol_cpu_is_the_papers_protocol_at_cpu_compute():
    prof, paper = get_profile("protocol-cpu"), get_profile("paper")
    assert (prof["backbone"], prof["image_size"], prof["steps"], prof["batch_size"]) == ("efficientnet_lite0", 128, 32, 16)
    assert prof["seeds"] == [0, 1, 2] and prof["device"] == "cpu"
    for table, lim in paper["limits"].items():  # every task, full test sets, the paper's shots
        ours = prof["limits"][table]
        assert (ours["tasks"], ours["shots"], ours["max_test_per_class"]) == (lim["tasks"], lim["shots"], None)
    flowers = make_cell("I", "flowers17", "Daffodil/Tulip", 5, "coftad", 0, prof)
    cifar = make_cell("II", "cifar10c", "airplane", 10, "coftad", 0, prof)
    assert flowers.method_kwargs["image_size"] == 128 and cifar.method_kwargs["image_size"] == 64
    assert flowers.method_kwargs["device"] == "cpu"
    # one size asked for: every dataset gets it
    sized = derive("protocol-cpu", {"image_size": 96})
    assert make_cell("II", "cifar10c", "airplane", 10, "coftad", 0, sized).method_kwargs["image_size"] == 96


def test_each_profile_writes_into_its_own_folder_and_protocol_cpu_renders_from_its_cache(tmp_path):
    smoke, _ = build_context("smoke")
    proto, _ = build_context("protocol-cpu")
    derived, _ = build_context("protocol-cpu", params={"steps": 5})
    assert smoke.out_dir.endswith("results/smoke") and smoke.executor == "local"
    assert proto.out_dir.endswith("results") and proto.executor == "cache"
    assert derived.out_dir.endswith("results/protocol-cpu+steps=5")
    assert build_context("protocol-cpu", out_dir=tmp_path, executor="local")[0].out_dir == str(tmp_path.resolve())
    assert main(["--profile", "protocol-cpu", "--cells-only", "--executor", "cache", "--out", str(tmp_path)]) == 2


def test_a_cpu_cell_gives_one_number_whatever_the_executor_or_the_process_threads(folder_data, tmp_path):
    prof = tiny_profile("threads-test")
    cells = texture_table(prof, seeds=(0,))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        two = get_executor("local").run(cells, folder_data, tmp_path / "two", prof, progress=False)
        torch.set_num_threads(3)
        three = get_executor("local").run(cells, folder_data, tmp_path / "three", prof, progress=False)
        assert torch.get_num_threads() == 3  # restored after each cell
    finally:
        torch.set_num_threads(before)
    pooled = get_executor("pool", workers=1, threads=2).run(cells, folder_data, tmp_path / "pool", prof,
                                                           progress=False)
    assert [r["threads"] for r in two] == [1, 1]
    assert stable(two) == stable(three) == stable(pooled)


def test_the_thread_count_can_be_changed_and_is_recorded(folder_data, tmp_path, monkeypatch):
    prof = tiny_profile("threads-env")
    cell = texture_table(prof, seeds=(0,))[0]
    monkeypatch.setenv("COFTAD_CELL_THREADS", "2")
    assert run_cell(cell, folder_data, tmp_path, prof["name"])["threads"] == 2
    monkeypatch.setenv("COFTAD_CELL_THREADS", "two")
    with pytest.raises(Exception, match="COFTAD_CELL_THREADS"):
        run_cell(texture_table(prof, seeds=(1,))[0], folder_data, tmp_path, prof["name"])


def test_the_cache_executor_renders_computed_cells_and_marks_the_others_pending(folder_data, tmp_path):
    prof = tiny_profile("cache-test")
    cells = texture_table(prof)
    run_cell(cells[0], folder_data, tmp_path, prof["name"])  # one of four computed
    df = run_cells(cells, folder_data, tmp_path, prof["name"], progress=False, executor="cache")
    assert list(df["status"]) == ["ok", "pending", "pending", "pending"]
    assert "--cells-only" in df["message"].iloc[1]
    assert len(list((tmp_path / "cells").glob("*.json"))) == 1  # pending records are not cached
    md = write_table(df, "T", tmp_path / "tables")["md"].read_text()
    assert "[1/2 seeds, 1 pending]" in md and "not computed yet" in md
    # data that is not here cannot be computed here either: missing (with how to get it), not pending
    away = run_cells(cells, tmp_path / "nowhere", tmp_path, prof["name"], progress=False, executor="cache")
    assert list(away["status"]) == ["ok", "missing", "missing", "missing"]


def _computed(folder_data, cache):
    prof = tiny_profile("verify-test")
    cell = make_cell("T", "folder", "textures", 4, "coftad", 0, prof)
    return run_cell(cell, folder_data, cache, prof["name"])


def test_verify_recomputes_a_committed_cell_and_names_one_that_differs(folder_data, tmp_path, capsys):
    rec = _computed(folder_data, tmp_path)
    assert verify(tmp_path, folder_data, 1, seed=0) == 0
    assert "same: coftad on folder/textures" in capsys.readouterr().out
    path = cell_path(tmp_path, rec["key"])
    data = json.loads(path.read_text())
    data["auroc"] = data["auroc"] - 0.01  # a record that its code does not reproduce
    path.write_text(json.dumps(data))
    assert verify(tmp_path, folder_data, 1, seed=0) == 1
    out = capsys.readouterr().out
    assert "differs: coftad on folder/textures" in out and f"key {rec['key'][:12]}" in out
    data["method_kwargs"]["steps"] = 2  # the record's work no longer has its key
    path.write_text(json.dumps(data))
    assert verify(tmp_path, folder_data, 1, seed=0) == 1
    assert "stale" in capsys.readouterr().out


def test_verify_recomputes_with_the_records_thread_count(folder_data, tmp_path, monkeypatch):
    from coftad_lib.reproduce import verify as verify_mod

    rec = _computed(folder_data, tmp_path)
    path = cell_path(tmp_path, rec["key"])
    path.write_text(json.dumps({**json.loads(path.read_text()), "threads": 3}))  # as a 3-thread run wrote it
    monkeypatch.setenv("COFTAD_CELL_THREADS", "1")
    seen = []
    real = verify_mod.compute_record
    monkeypatch.setattr(verify_mod, "compute_record",
                        lambda *a, **kw: (seen.append(cell_thread_count()), real(*a, **kw))[1])
    verify(tmp_path, folder_data, 1, seed=0)
    assert seen == [3] and cell_thread_count() == 1  # the record's count while recomputing; restored after


def test_verify_from_the_cli_and_its_errors(folder_data, tmp_path, capsys):
    _computed(folder_data, tmp_path / "cache")
    argv = ["--profile", "smoke", "--out", str(tmp_path), "--data-root", str(folder_data)]
    assert main([*argv, "--verify", "1"]) == 0
    assert main([*argv, "--verify", "1", "--verify-key", "ffff"]) == 2
    assert "no such cell" in capsys.readouterr().err
    assert main(["--profile", "smoke", "--out", str(tmp_path / "empty"), "--verify", "2"]) == 2
