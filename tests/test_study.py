"""The fine-tuning study (issue 11): grid, aggregation into a verdict, drift, and a tiny end-to-end run."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from coftad_lib.datasets.synthetic import write_texture_folder
from coftad_lib.errors import COFTADInputError
from coftad_lib.experiments import study


# -- grid -----------------------------------------------------------------------------------------
def test_grid_rows_are_one_factor_from_base_and_runnable():
    for name, over in study.GRID.items():
        cfg = study.config_of(name)
        assert {k: v for k, v in cfg.items() if k not in over} == {k: v for k, v in study.BASE.items() if k not in over}
        assert study.available(cfg) is None, f"{name}: {study.available(cfg)}"
    assert study.config_of("pretrained")["steps"] == 0
    with pytest.raises(COFTADInputError, match="not in the study grid"):
        study.config_of("no_such_row")
    assert "no_such_knob" in study.available({"no_such_knob": 1})


def test_baseline_keeps_the_start_and_precedes_its_configs():
    assert study.baseline_of(study.config_of("np")) == study.config_of("pretrained")
    rand = study.baseline_of(study.config_of("random_init"))
    assert rand["pretrained"] is False and rand["steps"] == 0
    assert study.baseline_name(rand) == "start:pretrained=False"
    plan = study.screen_plan("cifar")
    names = [n for n, _ in plan]
    assert names[0] == "pretrained" and names.index("start:pretrained=False") < names.index("random_init")
    assert len(names) == len(set(names))


# -- aggregation ----------------------------------------------------------------------------------
def _frame(values: dict[str, dict[int, list[float]]], fam: str = "cifar") -> pd.DataFrame:
    """config -> seed -> AUROC per task."""
    rows = []
    for cfg, by_seed in values.items():
        for seed, aucs in by_seed.items():
            for i, a in enumerate(aucs):
                rows.append({"family": fam, "task": f"t{i}", "shots": 10, "seed": seed, "config": cfg,
                             "start": "pretrained", "auroc": a})
    return pd.DataFrame(rows)


def test_verdict_mean_std_difference_and_spread():
    df = _frame({"pretrained": {0: [60, 70], 1: [62, 72], 2: [58, 68]},   # family means 65, 67, 63
                 "good": {0: [70, 80], 1: [71, 81], 2: [69, 79]},         # 75, 76, 74
                 "same": {0: [61, 70], 1: [62, 71], 2: [58, 69]}})        # 65.5, 66.5, 63.5
    t = study.verdict(df, ["good", "same"]).set_index("config")
    assert t.loc["good", "auroc_mean"] == pytest.approx(75.0)
    assert t.loc["good", "auroc_std"] == pytest.approx(1.0)
    assert t.loc["good", "reference_mean"] == pytest.approx(65.0)
    assert t.loc["good", "diff"] == pytest.approx(10.0)
    assert t.loc["good", "spread"] == pytest.approx(2.0)  # the pretrained std is the larger
    assert t.loc["good", "exceeds"] and not t.loc["same", "exceeds"]
    assert t.loc["same", "diff"] == pytest.approx(1 / 6)  # (0.5 - 0.5 + 0.5) / 3


def test_verdict_counts_only_complete_seeds():
    df = _frame({"pretrained": {0: [60, 70], 1: [62, 72]}, "cut": {0: [70, 80], 1: [71]}})
    t = study.verdict(df, ["cut"])
    assert t["seeds"].tolist() == [1] and np.isnan(t["spread"].iloc[0]) and not t["exceeds"].iloc[0]


def test_default_rule_needs_two_wins_and_no_big_loss():
    def table(diffs):
        return pd.DataFrame([{"family": f, "config": "x", "diff": d, "exceeds": abs(d) > 1.0}
                             for f, d in zip(study.FAMILIES, diffs, strict=True)])
    assert study.default_rule(table([3, 2, -0.5])) == ["x"]
    assert study.default_rule(table([3, 2, -1.5])) == []
    assert study.default_rule(table([3, 0.5, 0.5])) == []
    assert study.default_rule(table([3, 2, 0]).iloc[:2]) == []  # a family that did not run: no verdict


def test_gains_and_pick_best():
    df = _frame({"pretrained": {0: [60, 70]}, "base": {0: [62, 71]}, "np": {0: [50, 60]},
                 "ema0.9": {0: [65, 75]}})
    for col in ("drift_normal", "drift_anomalous", "loss_first", "loss_last", "fit_seconds"):
        df[col] = 1.0
    s = study.screen_summary(df).set_index("config")
    assert s.loc["ema0.9", "gain"] == pytest.approx(5.0) and s.loc["np", "gain"] == pytest.approx(-10.0)
    assert study.pick_best(s.reset_index()) == {"wo_np": "ema0.9", "w_np": "np"}


# -- drift ----------------------------------------------------------------------------------------
def test_drift_on_known_vectors():
    a = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 1.0], [2.0, 0.0]])
    b = np.array([[3.0, 0.0], [0.0, 1.0], [-1.0, -1.0], [1.0, 1.0]])
    np.testing.assert_allclose(study.drift(a, b), [1.0, 0.0, -1.0, np.sqrt(0.5)], atol=1e-12)
    with pytest.raises(COFTADInputError, match="one shape"):
        study.drift(a, b[:2])


# -- end to end -----------------------------------------------------------------------------------
@pytest.fixture
def texture_folder(tmp_path):
    write_texture_folder(tmp_path, n_train=4, n_normal=6, n_anom=6, size=32)
    return tmp_path


def test_tiny_study_end_to_end_resumes_from_cache(texture_folder, tmp_path, monkeypatch):
    fam = study.Protocol("tiny", "folder", ("stripes",), ("stripes",), (4,), 32, None, "industrial", 1.0,
                         task_key=None)
    tiny = {"steps": 1, "batch_size": 2, "n_aug": 2, "pretrained": False, "proj_hidden": 32, "proj_dim": 16}
    configs = [("pretrained", {**study.config_of("pretrained"), **tiny, "steps": 0}),
               ("base", {**study.config_of("base"), **tiny}), ("np", {**study.config_of("np"), **tiny})]
    cache = tmp_path / "cache"
    rows = [study.run_unit(fam, "stripes", 4, 0, n, c, texture_folder, cache) for n, c in configs]
    table, curves = study.split_history(rows)
    assert table["auroc"].between(0, 100).all() and (table["n_test"] == 12).all()
    assert table.loc[0, "drift_normal"] == pytest.approx(1.0)
    assert {"git_commit", "device", "torch", "seed", "overrides"} <= set(table.columns)
    assert len(curves) == 2 and set(curves["config"]) == {"base", "np"}
    t = study.verdict(table.assign(start="pretrained"), ["base", "np"])
    assert set(t["config"]) == {"base", "np"} and (t["seeds"] == 1).all()
    # a rerun reads every unit back from the cache instead of fitting again
    monkeypatch.setattr(study, "_fit_and_measure", lambda *a: pytest.fail("recomputed a cached unit"))
    again = [study.run_unit(fam, "stripes", 4, 0, n, c, texture_folder, cache) for n, c in configs]
    assert [r["auroc"] for r in again] == table["auroc"].tolist()
    fam2 = dataclasses.replace(fam, image_size=40)
    assert study.is_cached(fam, "stripes", 4, 0, configs[1][1], cache)
    assert not study.is_cached(fam2, "stripes", 4, 0, configs[1][1], cache)
    with pytest.raises(pytest.fail.Exception):
        study.run_unit(fam2, "stripes", 4, 0, "base", configs[1][1], texture_folder, cache)


def test_verdict_compares_a_weaker_start_with_that_start():
    df = _frame({"pretrained": {0: [60, 70], 1: [62, 72]},                # 65, 67
                 "start:pretrained=False": {0: [40, 50], 1: [41, 51]},    # 45, 46
                 "random_init": {0: [50, 50], 1: [50, 52]}})              # 50, 51
    df.loc[df.config == "random_init", "start"] = "start:pretrained=False"
    df.loc[df.config == "start:pretrained=False", "start"] = "start:pretrained=False"
    t = study.verdict(df, ["random_init", "start:pretrained=False"]).set_index("config")
    assert t.loc["random_init", "reference"] == "start:pretrained=False"
    assert t.loc["random_init", "diff"] == pytest.approx(5.0)            # its gain over its own start
    assert t.loc["start:pretrained=False", "reference"] == "pretrained"
    assert t.loc["start:pretrained=False", "diff"] == pytest.approx(-20.5)
