"""Packed cells (coftad_lib.engine.packing): an executor with ``pack=N`` gives each COFT-AD cell
the record of computing it alone (float64 networks, where packed and lone fits agree to 1e-9;
tests/test_packed.py says why float32 is compared only at step 0), groups only cells that can
share a step, and reports missing data and failures per cell.

Real detectors (Lite0 at 32 px, 2 steps) on a generated folder dataset.
"""

from __future__ import annotations

import numpy as np
import pytest

from coftad_lib.datasets.synthetic import write_texture_folder
from coftad_lib.engine import packing as packing_mod
from coftad_lib.engine.executors import LocalExecutor, get_executor
from coftad_lib.engine.packing import pack_groups
from coftad_lib.errors import COFTADInputError
from coftad_lib.paper import get_profile, make_cell
from coftad_lib.reproduce.__main__ import main as cli_main

RTOL_F64 = 1e-9


@pytest.fixture(scope="module")
def folder_data(tmp_path_factory):
    """A folder dataset (train/, test/good/, test/defect/) of 32 px stripe textures."""
    return write_texture_folder(tmp_path_factory.mktemp("textures"), n_train=6, n_normal=6, n_anom=6, size=32)


def _profile():
    prof = get_profile("smoke")
    prof.update(name="pack-test", image_size=32, steps=2, batch_size=4, device="cpu", n_aug=2)
    return prof


def _cells(prof, **kw):
    """COFT-AD w/o np on 3 seeds (4 shots), one 3-shot cell, and the pretrained features (not packable)."""
    cells = [make_cell("T", "folder", "textures", 4, "coftad", s, prof, **kw) for s in (0, 1, 2)]
    return cells + [make_cell("T", "folder", "textures", 3, "coftad", 0, prof, **kw),
                    make_cell("T", "folder", "textures", 4, "pretrained", 0, prof)]


def _work(cells, prof):
    return {c.key(): c for c in cells}


def test_groups_only_cells_that_can_share_a_step():
    prof = _profile()
    cells = _cells(prof)
    keys = list(_work(cells, prof))
    assert pack_groups(_work(cells, prof), 1) == [[k] for k in keys]
    assert pack_groups(_work(cells, prof), 3) == [keys[:3], [keys[3]], [keys[4]]]  # 3 + 1 coftad, pretrained alone
    assert pack_groups(_work(cells, prof), 8) == [keys[:4], [keys[4]]]
    mixed = cells[:2] + [make_cell("T", "folder", "textures", 4, "coftad", 0, prof, steps=3),
                         make_cell("T", "folder", "textures", 4, "coftad_np", 0, prof),
                         make_cell("T", "folder", "textures", 4, "coftad", 5, prof, bn_mode="train")]
    groups = pack_groups(_work(mixed, prof), 8)
    assert [len(g) for g in groups] == [2, 1, 1, 1]  # other steps, negatives on, train-mode BN: alone
    for bad in (0, -1, 2.5, True):
        with pytest.raises(COFTADInputError, match="pack="):
            pack_groups(_work(cells, prof), bad)


def test_packed_cells_get_their_lone_records_float64(float64, folder_data, tmp_path):
    prof = _profile()
    cells = _cells(prof)
    lone = LocalExecutor().run(cells, folder_data, tmp_path / "lone", prof, progress=False)
    packed = LocalExecutor(pack=8).run(cells, folder_data, tmp_path / "packed", prof, progress=False)
    assert [r["status"] for r in packed] == ["ok"] * 5
    assert [r.get("pack_size", 1) for r in packed] == [4, 4, 4, 4, 1]
    for a, p in zip(lone, packed, strict=True):
        assert p["key"] == a["key"] and p["test_ids"] == a["test_ids"] and p["n_train"] == a["n_train"]
        np.testing.assert_allclose(p["scores"], a["scores"], rtol=RTOL_F64)
        assert p["auroc"] == pytest.approx(a["auroc"], abs=1e-12)
    assert not np.allclose(packed[0]["scores"], packed[1]["scores"], rtol=1e-2)  # the seeds were not mixed up


def test_missing_data_and_a_failing_pack_are_reported_per_cell(folder_data, tmp_path, monkeypatch):
    prof = _profile()
    here = _cells(prof)[:2]
    gone = make_cell("T", "folder", "textures", 4, "coftad", 9, prof, task_args={"train_dir": "nowhere"})
    recs = LocalExecutor(pack=4).run([here[0], gone, here[1]], folder_data, tmp_path / "c1", prof, progress=False)
    assert [r["status"] for r in recs] == ["ok", "missing", "ok"]
    assert [r.get("pack_size") for r in recs] == [2, None, 2] and "nowhere" in recs[1]["message"]

    def explode(*_):
        raise RuntimeError("packed step exploded")

    monkeypatch.setattr("coftad_lib.packed.fit_packed", explode)
    recs = LocalExecutor(pack=4).run(here, folder_data, tmp_path / "c2", prof, progress=False)
    assert [r["status"] for r in recs] == ["failed", "failed"]
    assert all("RuntimeError: packed step exploded" in r["message"] for r in recs)
    with pytest.raises(RuntimeError, match="exploded"):
        LocalExecutor(pack=4).run(here, folder_data, tmp_path / "c3", prof, progress=False, strict=True)


def test_pack_reaches_the_executor_as_an_option_and_from_the_cli(monkeypatch, capsys):
    monkeypatch.setenv("COFTAD_PACK", "4")  # no setting travels through the environment any more
    assert get_executor("local").pack == 1
    assert get_executor("local", pack=2).pack == 2
    with pytest.raises(COFTADInputError, match="four"):
        get_executor("local", pack="four")
    assert cli_main(["--profile", "smoke", "--pack", "0", "--only", "01"]) == 2
    assert "--pack=0: expected an int >= 1" in capsys.readouterr().err
    assert packing_mod.pack_signature(make_cell("T", "folder", "textures", 4, "ae", 0, _profile())) is None
