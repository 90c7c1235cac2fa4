"""``--plan``: cells per notebook, cached and shared counts, time estimates from a timings file or a calibration."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from coftad_lib.engine.cells import cell_path
from coftad_lib.errors import COFTADInputError
from coftad_lib.paper import atomic_write_json, make_cell
from coftad_lib.paper.profiles import derive
from coftad_lib.reproduce import __main__ as cli
from coftad_lib.reproduce import plan as plan_mod

REPO = Path(__file__).resolve().parents[1]
NB = REPO / "notebooks"
ROW = {"family": "coftad", "backbone": "efficientnet_lite0", "image_size": 64, "steps": 10, "batch_size": 16,
       "seconds": 2.0, "images_per_second": 100.0}
TIMINGS = {"device": "test", "source": "test", "fits": [ROW, {**ROW, "family": "default", "seconds": 1.0}]}


def _nb(prefix: str) -> Path:
    return next(NB.glob(f"{prefix}_*.ipynb"))


def test_load_timings_json_csv_and_bad_files(tmp_path):
    js = tmp_path / "t.json"
    js.write_text(json.dumps(TIMINGS))
    assert plan_mod.load_timings(js)["fits"][0]["seconds"] == 2.0
    csv = tmp_path / "t.csv"
    csv.write_text(",".join(ROW) + "\n" + ",".join(str(v) for v in ROW.values()) + "\n")
    assert plan_mod.load_timings(csv)["fits"][0]["image_size"] == 64.0
    with pytest.raises(COFTADInputError, match="no such file"):
        plan_mod.load_timings(tmp_path / "absent.json")
    js.write_text(json.dumps({"fits": [{"family": "coftad"}]}))
    with pytest.raises(COFTADInputError, match="lacks"):
        plan_mod.load_timings(js)


def test_cell_seconds_scale_with_steps_pixels_and_test_size():
    cell = make_cell("I", "flowers17", "Daffodil/Tulip", 5, "coftad", 0, "smoke")  # 64 px, 15 steps, batch 16
    n_test = 2 * cell.task_args["max_test_per_class"]
    assert plan_mod.cell_seconds(cell, TIMINGS) == pytest.approx(2.0 * 15 / 10 + n_test / 100.0)
    big = replace(cell, method_kwargs={**cell.method_kwargs, "image_size": 128, "steps": 30})
    assert plan_mod.cell_seconds(big, TIMINGS) == pytest.approx(2.0 * 3 * 4 + n_test * 4 / 100.0)
    other = make_cell("I", "flowers17", "Daffodil/Tulip", 5, "ae", 0, "smoke")  # no ae row: the default row
    assert plan_mod.cell_seconds(other, TIMINGS) == pytest.approx(1.0 * 1.5 + n_test / 100.0)
    assert math.isnan(plan_mod.cell_seconds(other, {"fits": [ROW]}))


def test_plan_counts_cached_and_shared_cells(tmp_path):
    notebooks = [_nb("05"), _nb("09"), _nb("16"), _nb("01")]
    cells_05 = plan_mod.notebook_cells(notebooks[0], "smoke", [0])
    atomic_write_json(cell_path(tmp_path, cells_05[0].key()), {"status": "ok"})
    rows = {r["notebook"][:2]: r for r in plan_mod.plan("smoke", notebooks, [0], tmp_path, TIMINGS)}
    assert rows["05"]["cells"] == len(cells_05) and rows["05"]["cached"] == 1
    assert rows["05"]["to_run"] == len(cells_05) - 1 and rows["05"]["seconds"] > 0
    # Table VI's COFT-AD rows are Table II's cells; Fig. 7's four models are Table VI's rows
    assert rows["09"]["shared"] >= 2 and rows["16"]["shared"] == rows["16"]["cells"] == 4
    assert rows["16"]["to_run"] == 0 and rows["16"]["seconds"] == 0
    assert rows["01"]["cells"] == 0 and rows["01"]["note"]


def test_cli_plan_runs_nothing_and_prints_a_total(tmp_path, capsys):
    timings = tmp_path / "t.json"
    timings.write_text(json.dumps(TIMINGS))
    out = tmp_path / "out"
    code = cli.main(["--profile", "smoke", "--plan", "--plan-timings", str(timings), "--only", "04,13",
                     "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0 and "| **total** |" in text and "04_table_I_flowers17" in text and "13_table_X" in text
    assert not out.exists()  # nothing ran, nothing was written


def test_fixed_seconds_scale_with_pixels_only():
    cell = make_cell("I", "flowers17", "Daffodil/Tulip", 5, "coftad", 0, "smoke")  # 64 px, 15 steps, batch 16
    n_test = 2 * cell.task_args["max_test_per_class"]
    timings = {"fits": [{**ROW, "fixed_seconds": 0.5}]}
    # 0.5 s once + 1.5 s of 10 steps at batch 16 scaled to 15 steps
    assert plan_mod.cell_seconds(cell, timings) == pytest.approx(0.5 + 1.5 * 15 / 10 + n_test / 100.0)
    big = replace(cell, method_kwargs={**cell.method_kwargs, "image_size": 128, "steps": 30})
    assert plan_mod.cell_seconds(big, timings) == pytest.approx((0.5 + 1.5 * 3) * 4 + n_test * 4 / 100.0)


def test_load_timings_refuses_a_fixed_part_larger_than_the_fit(tmp_path):
    js = tmp_path / "t.json"
    js.write_text(json.dumps({"fits": [{**ROW, "fixed_seconds": 3.0}]}))
    with pytest.raises(COFTADInputError, match="fixed_seconds"):
        plan_mod.load_timings(js)


def test_calibration_separates_one_off_cost_from_steps(monkeypatch):
    """Fits faked at 2 s + 0.25 s per step: the row must say 2 s fixed, 0.25 s per step."""
    def fake_fit(method, kw, steps, shots):
        det = type("Det", (), {"score_samples": lambda self, xs: None})()
        return det, 2.0 + 0.25 * steps

    monkeypatch.setattr(plan_mod, "_timed_fit", fake_fit)
    (row,) = plan_mod.calibrate(["coftad"], "smoke")["fits"]
    lo, hi = plan_mod.CAL_STEPS
    assert row["steps"] == hi and row["seconds"] == pytest.approx(2.0 + 0.25 * hi)
    assert row["fixed_seconds"] == pytest.approx(2.0)


def test_calibration_times_small_fits_per_family():
    table = plan_mod.calibrate(["features"], "smoke")
    (row,) = table["fits"]
    assert row["family"] == "features" and row["seconds"] > 0 and row["images_per_second"] > 0
    assert row["fixed_seconds"] == row["seconds"]  # no training: nothing scales with steps


def test_timings_from_a_cache_are_measured_cells_per_family(tmp_path):
    cache = tmp_path / "cache"
    kw = {"backbone": "efficientnet_lite0", "image_size": 224, "steps": 100, "batch_size": 64}
    recs = [  # two COFT-AD cells fitted by a pool of 4 (8 s wall each = 2 s of the machine), one CSI alone
        {"status": "ok", "method": "coftad", "method_kwargs": kw, "fit_seconds": 8.0, "concurrency": 4,
         "score_seconds": 0.5, "n_test": 1000, "versions": {"device": "cuda (NVIDIA H200)"}},
        {"status": "ok", "method": "coftad_np", "method_kwargs": kw, "fit_seconds": 12.0, "concurrency": 4,
         "score_seconds": 0.5, "n_test": 1000, "versions": {"device": "cuda (NVIDIA H200)"}},
        {"status": "ok", "method": "csi", "method_kwargs": kw, "fit_seconds": 30.0, "score_seconds": 1.0,
         "n_test": 80, "versions": {"device": "cuda (NVIDIA H200)"}},
        {"status": "missing", "method": "ae", "method_kwargs": kw},
    ]
    for i, rec in enumerate(recs):
        atomic_write_json(cache / "cells" / f"{i}.json", rec)
    timings = plan_mod.load_timings(cache)  # a folder holding cells/ is read as measured timings
    rows = {r["family"]: r for r in timings["fits"]}
    assert set(rows) == {"coftad", "csi"} and timings["device"] == "cuda (NVIDIA H200)"
    assert rows["coftad"]["seconds"] == pytest.approx(2.5) and rows["coftad"]["n_records"] == 2
    assert rows["coftad"]["images_per_second"] == pytest.approx(2000.0)
    assert rows["csi"]["seconds"] == 30.0
    cell = make_cell("I", "flowers17", "Daffodil/Tulip", 5, "coftad", 0, derive("paper", {"backbone": "efficientnet_lite0"}))
    assert plan_mod.cell_seconds(cell, timings) == pytest.approx(2.5 + 80 / 2000.0)  # same sizes: as measured
    ae = make_cell("I", "flowers17", "Daffodil/Tulip", 5, "ae", 0, derive("paper", {"backbone": "efficientnet_lite0"}))
    assert math.isnan(plan_mod.cell_seconds(ae, timings))  # never measured: counted apart in the plan
    rows = plan_mod.plan(derive("paper", {"backbone": "efficientnet_lite0"}), [next(NB.glob("04_*.ipynb"))], [0],
                         tmp_path / "none", timings)
    (row,) = rows
    assert row["untimed"] == row["to_run"] - 24  # Table I's 8 tasks x (COFT-AD w/ and w/o np, CSI) timed
    assert row["seconds"] == pytest.approx(8 * (2 * (2.5 + 80 / 2000) + 30 + 80 / 80))
    text = plan_mod.format_plan(rows, timings, "p")
    assert f"+ {row['untimed']} cells of untimed families" in text
    with pytest.raises(COFTADInputError, match="no ok cell records"):
        plan_mod.timings_from_cache(tmp_path / "empty")


def test_one_spec_drives_the_notebook_the_plan_and_the_prefill(monkeypatch):
    """Changing nothing but Table VII's spec changes what its notebook, --plan and --cells-only compute."""
    from dataclasses import replace as dc_replace

    from coftad_lib.paper import run_context, specs
    from coftad_lib.reproduce.prefill import cells_by_notebook

    nb = _nb("10")
    ctx = run_context("smoke", [0], "/nowhere", "/nowhere", "/nowhere", nb.stem)
    before = plan_mod.notebook_cells(nb, "smoke", [0])
    assert {c.method for c in before} == {"coftad", "coftad_np"}
    monkeypatch.setitem(specs.SPECS, "VII", dc_replace(specs.SPECS["VII"], methods=("coftad",)))
    planned = plan_mod.notebook_cells(nb, "smoke", [0])
    assert {c.method for c in planned} == {"coftad"} and len(planned) == len(before) // 2
    def no_data(cells):  # the run's cells also name their data (here: absent), which a bare profile cannot
        return [dc_replace(c, data=None) for c in cells]

    assert no_data(cells_by_notebook([nb], ctx.settings, ctx.seeds)[0][1]) == planned  # --cells-only
    assert no_data(ctx.cells("VII")) == planned  # what the notebook's run.table("VII") computes
    source = "".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"])
    assert 'run.table("VII")' in source and "coftad_np" not in source  # the rows live only in the spec


def test_fitted_models_and_rescorings_move_to_the_new_keys(tmp_path):
    """Table VIII's fitted detectors and scorings were keyed with the profile name; a run renames them."""
    import numpy as np

    from coftad_lib.engine.cache import digest
    from coftad_lib.paper import rescored_runs as rr
    from coftad_lib.paper import run_context, specs
    from coftad_lib.paper.migration import migrate_run

    ctx = run_context("smoke", [0], tmp_path, tmp_path, tmp_path / "out", "11_table_VIII_scorers", {"steps": 2})
    spec = specs.SPECS["VIII"]
    cell = spec.cells(ctx.settings, ctx.seeds)[0]
    old = cell.legacy_key("smoke+steps=2")
    (ctx.cache_dir / "models" / old).mkdir(parents=True)
    variants, extra = spec.variants(ctx.settings)
    old_parts = {"cell": old, "variants": variants, "extra": extra}
    misc = ctx.cache_dir / "misc"
    misc.mkdir()
    np.savez(misc / f"scorers-{digest({'name': 'scorers', 'parts': old_parts})}.npz", gaussian=np.zeros(3))
    assert not spec.is_cached(cell, ctx.cache_dir, ctx.settings)
    assert migrate_run(ctx) == 2 and migrate_run(ctx) == 0
    assert (ctx.cache_dir / "models" / cell.key()).is_dir()
    assert spec.is_cached(cell, ctx.cache_dir, ctx.settings)
    assert rr.rescored_parts(cell, variants, extra)["cell"] == cell.key()
