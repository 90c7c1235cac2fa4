"""Records of a replaced dataset copy stay readable as a setting of their own (paper/replaced_data_rows.py)."""

from __future__ import annotations

import dataclasses

from coftad_lib.engine.cells import Cell, store_record
from coftad_lib.paper.replaced_data_rows import REPLACED, replaced_data_frame


def _ok_record(cell: Cell) -> dict:
    return {"key": cell.key(), "status": "ok", "dataset": cell.dataset, "task": cell.task, "shots": cell.shots,
            "method": cell.method, "kind": "score", "seed": cell.seed, "profile": "protocol-cpu", "backbone": None,
            "method_kwargs": {}, "task_args": dict(cell.task_args), "data": cell.data, "auroc": 0.75,
            "scores": [0.1, 0.9], "labels": [0, 1], "test_ids": ["a", "b"], "test_kinds": ["clean", "blur"],
            "versions": {}, "schema": 2}


def test_old_copy_records_become_their_own_setting_and_new_cells_stay_apart(tmp_path):
    new = Cell(table="II", dataset="cifar10c", task="cat", shots=10, method="coftad", task_args={"task": "cat"},
               data="sha256:lossless")
    old = dataclasses.replace(new, data=REPLACED["cifar10c"][0])
    assert old.key() != new.key()
    store_record(_ok_record(old), None, tmp_path)
    df = replaced_data_frame([new], {"name": "protocol-cpu"}, [str(tmp_path)], tmp_path)
    assert list(df["auroc"]) == [0.75]
    assert list(df["setting"]) == [f"backbone @ {REPLACED['cifar10c'][1]}"]  # no backbone in this record
    assert replaced_data_frame([new], {"name": "smoke"}, [str(tmp_path)], tmp_path).empty  # committed profile only
