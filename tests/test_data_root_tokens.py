"""Committed cell records name no machine folder: task_info's data paths become {DATA_ROOT}."""

from __future__ import annotations

import json
from pathlib import Path

from test_reproduce_cells import _cell, fakes  # noqa: F401  (fixture)

from coftad_lib.engine import cells as cells_mod
from coftad_lib.engine.data_paths import DATA_ROOT_TOKEN, with_root_tokens


def test_data_folders_become_the_token_in_any_form_the_root_was_given(tmp_path, monkeypatch):
    root = tmp_path / "machine" / "data"
    info = {"clean_source": f"{root}/cifar10/test", "nested": [str(root)], "n": 3, "other": "/elsewhere/x",
            "prefix_only": f"{root}-old/x"}
    out = with_root_tokens(info, [str(root), str(tmp_path / "prep")])
    assert out == {"clean_source": f"{DATA_ROOT_TOKEN}/cifar10/test", "nested": [DATA_ROOT_TOKEN], "n": 3,
                   "other": "/elsewhere/x", "prefix_only": f"{root}-old/x"}
    monkeypatch.chdir(tmp_path)  # a relative root matches the absolute paths a loader reports
    assert with_root_tokens(info, "machine/data")["clean_source"] == f"{DATA_ROOT_TOKEN}/cifar10/test"
    assert with_root_tokens(info, {"cifar10c": str(root)})["nested"] == [DATA_ROOT_TOKEN]


def test_a_cell_record_stores_task_info_without_the_data_folder(tmp_path, fakes):  # noqa: F811
    data = tmp_path / "data"
    rec = cells_mod.run_cell(_cell(), data, tmp_path / "cache", "smoke")
    assert rec["task_info"]["root"] == f"{DATA_ROOT_TOKEN}/cifar10c"  # fake_load_task reports its folder
    stored = cells_mod.cell_path(tmp_path / "cache", rec["key"]).read_text()
    assert str(data) not in stored and str(Path(data).resolve()) not in json.loads(stored)["task_info"]["root"]
