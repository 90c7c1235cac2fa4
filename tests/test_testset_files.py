"""A task's per-item labels / ids / kinds are stored once per cache and joined back on read."""

from __future__ import annotations

import json

import pytest
from test_reproduce_cells import _cell, fakes  # noqa: F401  (fixture)

from coftad_lib.engine import cells as cells_mod
from coftad_lib.engine.testset_files import FIELDS, compact_cache, join_test_set, split_test_set
from coftad_lib.errors import COFTADInputError
from coftad_lib.reproduce.verify import committed_records


def test_records_of_one_task_share_one_test_set_file_and_read_back_whole(tmp_path, fakes):  # noqa: F811
    cache = tmp_path / "cache"
    a = cells_mod.run_cell(_cell(method="coftad"), tmp_path, cache, "smoke")
    b = cells_mod.run_cell(_cell(method="pretrained"), tmp_path, cache, "smoke")
    files = list((cache / "test_sets").glob("*.json"))
    assert len(files) == 1  # same task and seed: one test set
    stored = json.loads(cells_mod.cell_path(cache, a["key"]).read_text())
    assert not set(FIELDS) & set(stored) and stored["test_set"] == files[0].stem
    again = cells_mod.run_cell(_cell(method="coftad"), tmp_path, cache, "smoke")
    assert again["cached"] is True
    assert {f: again[f] for f in FIELDS} == {f: a[f] for f in FIELDS} == {f: b[f] for f in FIELDS}
    assert "test_set" not in again
    smaller = _cell(task_args={"task": "airplane", "max_test_per_class": 3})  # another test set: a second file
    assert cells_mod.run_cell(smaller, tmp_path, cache, "smoke")["n_test"] == 6
    assert len(list((cache / "test_sets").glob("*.json"))) == 2


def test_compact_cache_rewrites_inline_records_once_and_readers_see_no_change(tmp_path, fakes):  # noqa: F811
    cache = tmp_path / "cache"
    rec = cells_mod.run_cell(_cell(), tmp_path, cache, "smoke")
    path = cells_mod.cell_path(cache, rec["key"])
    inline = {k: v for k, v in rec.items() if k not in ("table", "setting", "label", "cached")}
    path.write_text(json.dumps(inline))  # as records were written before test set files
    for f in (cache / "test_sets").glob("*.json"):
        f.unlink()
    before = committed_records(cache)
    moved, saved = compact_cache(cache)
    assert moved == 1 and saved > 0 and len(list((cache / "test_sets").glob("*.json"))) == 1
    assert compact_cache(cache) == (0, 0)
    assert committed_records(cache) == before
    assert cells_mod.run_cell(_cell(), tmp_path, cache, "smoke")["test_ids"] == rec["test_ids"]


def test_a_record_whose_test_set_file_is_missing_names_it(tmp_path):
    split = split_test_set({"key": "k1", "labels": [0, 1], "test_ids": ["a", "b"], "test_kinds": ["g", "x"]}, tmp_path)
    assert join_test_set(dict(split), tmp_path)["test_ids"] == ["a", "b"]
    for f in (tmp_path / "test_sets").glob("*.json"):
        f.unlink()
    with pytest.raises(COFTADInputError, match=r"k1 .*test_sets/"):
        join_test_set(split, tmp_path)
    partial = {"key": "k2", "status": "missing"}
    assert split_test_set(partial, tmp_path) == partial  # nothing per item to move
