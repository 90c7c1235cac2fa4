"""Executors of coftad_lib.reproduce: a local Ray (2 CPUs) gives the local executor's records, reports a
raising cell and a worker that dies (retried once) while the other cells finish.

Real detectors (Lite0 at 32 px, 1 step) on a generated folder dataset; one Ray start for the module.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from executor_cases import (
    install_dying_detector,
    local_reference,
    stable,
    texture_table,
    tiny_profile,
)

from coftad_lib.engine import driver, executors, run_cells
from coftad_lib.engine.executors import LocalExecutor, RayExecutor, get_executor
from coftad_lib.errors import COFTADInputError
from coftad_lib.paper import make_cell

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.timeout(600)

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def local_ray():
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": "1"}
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=80 * 1024 * 1024, log_to_driver=False,
             runtime_env={"env_vars": env, "worker_process_setup_hook": install_dying_detector})
    yield ray
    ray.shutdown()


def _profile():
    return tiny_profile("exec-test")


def test_ray_gives_the_local_executors_records(local_ray, folder_data, tmp_path):
    prof = _profile()
    cells = texture_table(prof)
    local = local_reference(cells, folder_data, tmp_path / "local", prof)
    remote = RayExecutor().run(cells, folder_data, tmp_path / "ray", prof, progress=False)
    assert [r["status"] for r in remote] == ["ok"] * 4
    assert stable(remote) == stable(local)
    # the driver wrote every record into the cache; a rerun reads them back without computing
    assert len(list((tmp_path / "ray" / "cells").glob("*.json"))) == 4
    again = get_executor("ray").run(cells, folder_data, tmp_path / "ray", prof, progress=False)
    assert all(r["cached"] for r in again) and stable(again) == stable(remote)
    df = run_cells(cells, folder_data, tmp_path / "ray", prof, progress=False, executor="ray")
    assert list(df["auroc"]) == [r["auroc"] for r in local]


def test_a_raising_cell_is_reported_while_the_others_finish(local_ray, folder_data, tmp_path):
    prof = _profile()
    good = texture_table(prof, seeds=(0,))
    bad = make_cell("T", "folder", "textures", 4, "coftad", 0, prof, no_such_argument=1)
    records = RayExecutor().run([good[0], bad, good[1]], folder_data, tmp_path, prof, progress=False)
    assert [r["status"] for r in records] == ["ok", "failed", "ok"]
    assert "COFTADInputError" in records[1]["message"] and "no_such_argument" in records[1]["message"]
    assert records[1]["auroc"] is None and "COFTADInputError" in records[1]["traceback"]
    assert len(list((tmp_path / "cells").glob("*.json"))) == 2  # a failed cell is not cached
    with pytest.raises(COFTADInputError, match="no_such_argument"):
        RayExecutor().run([bad], folder_data, tmp_path, prof, progress=False, strict=True)


def test_a_dying_worker_is_retried_once_then_reported(local_ray, folder_data, tmp_path):
    prof = _profile()
    marks = tmp_path / "marks"
    marks.mkdir()
    dying = make_cell("T", "folder", "textures", 4, "die", 0, prof, marker_dir=str(marks))
    good = texture_table(prof, seeds=(0,))[0]
    records = RayExecutor(max_retries=1).run([dying, good], folder_data, tmp_path / "c", prof, progress=False)
    assert [r["status"] for r in records] == ["failed", "ok"]
    assert "worker died" in records[0]["message"] and "1 retry" in records[0]["message"]
    assert len(list(marks.glob("attempt-*"))) == 2  # the first try and one retry


def test_local_executor_reports_a_raising_cell_too(folder_data, tmp_path):
    prof = _profile()
    bad = make_cell("T", "folder", "textures", 4, "coftad", 0, prof, no_such_argument=1)
    (rec,) = LocalExecutor().run([bad], folder_data, tmp_path, prof, progress=False)
    assert rec["status"] == "failed" and "no_such_argument" in rec["message"]


def test_bad_executor_names_and_missing_ray(monkeypatch):
    with pytest.raises(COFTADInputError, match="local, pool, ray"):
        get_executor("dask")
    with pytest.raises(COFTADInputError, match="gpus"):
        RayExecutor(gpus_per_cell=-1)

    def no_ray():
        raise COFTADInputError(f"needs Ray; run `{executors.RAY_INSTALL}`")

    monkeypatch.setattr(executors, "require_ray", no_ray)
    with pytest.raises(COFTADInputError, match="pip install"):
        executors.check_executor("ray")
    executors.check_executor("local")  # needs nothing
    executors.check_executor("pool")


def test_same_key_in_two_tables_runs_once(folder_data, tmp_path, monkeypatch):
    prof = _profile()
    a = make_cell("I", "folder", "textures", 4, "pretrained", 0, prof)
    b = make_cell("fig5", "folder", "textures", 4, "pretrained", 0, prof, label="fig5-row")
    calls = []
    real = driver.compute_pack
    monkeypatch.setattr(driver, "compute_pack", lambda *a: calls.append(a) or real(*a))
    ra, rb = LocalExecutor().run([a, b], folder_data, tmp_path, prof, progress=False)
    assert len(calls) == 1 and ra["auroc"] == rb["auroc"] and (ra["table"], rb["table"]) == ("I", "fig5")
    assert rb["label"] == "fig5-row" and np.isfinite(ra["auroc"])
