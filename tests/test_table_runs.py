"""Table runners of coftad_lib.paper.tables, with a fake detector and a fake load_task;
plus the rules every table notebook (04-13) must follow."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from coftad_lib.datasets.task import FewShotTask
from coftad_lib.engine import cells as cells_mod
from coftad_lib.errors import COFTADInputError, DatasetNotFoundError
from coftad_lib.paper import get_profile, record_status, run_cell, run_cells
from coftad_lib.paper import rescored_runs as rr
from coftad_lib.paper import tables as tr
from coftad_lib.paper.paper_values import ABLATION_ROWS, paper_value

REPO = Path(__file__).resolve().parents[1]


class FakeDetector:
    """Score = |image brightness - training mean| (a real, imperfect detector); counts fits."""

    fits = 0

    def __init__(self, seed: int, **kw):
        self.seed, self.kw = seed, kw
        self.n_aug = kw.get("n_aug", 10)

    def fit(self, images):
        FakeDetector.fits += 1
        self.mu = float(np.asarray(images, dtype=np.float64).mean())
        return self

    def score_samples(self, images):
        x = np.asarray(images, dtype=np.float64).reshape(len(images), -1)
        return np.abs(x.mean(axis=1) - self.mu) + 0.001 * np.arange(len(images))


def fake_load_task(dataset, root, shots, seed, **task_args):
    """Brightness 100 + N(0, 8) for normals, 100 +- U(4, 20) for anomalies: 0.5 < AUROC < 1.

    The task is named as real loaders name it: the ``task`` argument, else the dataset.
    """
    if "absent" in str(root) or dataset == "magnetic_tile":
        raise DatasetNotFoundError(f"{root}: not here; see HOW_TO_GET")
    rng = np.random.default_rng([seed, len(dataset)])
    n_norm, n_anom = 30, 20
    train = (100 + rng.normal(0, 8, size=(shots, 1, 1, 1)) + np.zeros((shots, 4, 4, 3))).astype(np.uint8)
    normal = 100 + rng.normal(0, 8, size=(n_norm, 1, 1, 1)) + np.zeros((n_norm, 4, 4, 3))
    sign = rng.choice([-1, 1], size=(n_anom, 1, 1, 1))
    anom = 100 + sign * rng.uniform(4, 20, size=(n_anom, 1, 1, 1)) + np.zeros((n_anom, 4, 4, 3))
    test = np.concatenate([normal, anom]).clip(0, 255).astype(np.uint8)
    labels = np.r_[np.zeros(n_norm), np.ones(n_anom)].astype(np.int64)
    return FewShotTask(dataset=dataset, name=task_args.get("task", dataset), train=train, test=test,
                       test_labels=labels, test_kinds=["good"] * n_norm + ["bad"] * n_anom,
                       train_ids=[f"tr{i}" for i in range(shots)],
                       test_ids=[f"te{i}" for i in range(n_norm + n_anom)], info={"shots": shots})


@pytest.fixture
def fakes(monkeypatch):
    FakeDetector.fits = 0
    monkeypatch.setattr(cells_mod, "_load_task", fake_load_task)
    monkeypatch.setattr(cells_mod, "make_detector", lambda method, **kw: FakeDetector(**kw))
    return FakeDetector


def _profile(**limits):
    """The smoke profile with some tables' limits replaced (a dict profile keeps the name 'smoke')."""
    prof = get_profile("smoke")
    for table, lim in limits.items():
        prof["limits"][table].update(lim)
    return prof


# ------------------------------------------------------------------ which cells
def test_table_cells_follow_the_papers_rows_per_setting():
    prof = _profile(IV={"tasks": ["bottle"], "shots": [2, 5]})
    cells = tr.table_cells("IV", "mvtec", ["ae", "csi", "cflow", "patchcore"], prof, [0, 1])
    by_setting = {}
    for c in cells:
        by_setting.setdefault(c.row_setting, set()).add(c.method)
    # the paper's 2-shot block has no CSI / CFLOW-AD row; PatchCore is ours, so it runs everywhere
    assert by_setting == {"2-shot": {"ae", "patchcore"}, "5-shot": {"ae", "csi", "cflow", "patchcore"}}
    assert len(cells) == (2 + 4) * 2
    # a setting the paper's table lacks (Table IX's columns are anomaly counts) restricts nothing
    assert {c.method for c in tr.table_cells("IX", "semicon", ["ae", "vae", "coftad"], "smoke", [0])} == {"ae", "vae", "coftad"}
    everything = tr.table_cells("IV", "mvtec", ["csi"], prof, [0], follow_paper=False)
    assert {c.shots for c in everything} == {2, 5}
    c = cells[0]
    assert c.task_args == {"task": "bottle", "max_test_per_class": 20} and c.method_kwargs["preset"] == "industrial"


def test_table_cells_apply_the_profiles_method_overrides():
    prof = _profile()
    prof["method_overrides"] = {"csi": {"batch_size": 4, "steps": 3}}
    cells = {c.method: c for c in tr.table_cells("I", "flowers17", ["csi", "coftad"], prof, [0], tasks=["Daffodil/Tulip"])}
    assert (cells["csi"].method_kwargs["batch_size"], cells["csi"].method_kwargs["steps"]) == (4, 3)
    assert cells["coftad"].method_kwargs["batch_size"] == prof["batch_size"]
    mine = tr.table_cells("I", "flowers17", ["csi"], prof, [0], tasks=["Daffodil/Tulip"], batch_size=2)
    assert mine[0].method_kwargs["batch_size"] == 2 and mine[0].method_kwargs["steps"] == 3
    assert get_profile("paper")["method_overrides"] == {}


def test_table_cells_with_datasets_as_tasks_and_bad_input():
    cells = tr.table_cells("V", None, ["coftad"], "smoke", [0], shots=[10])
    assert [(c.dataset, c.task) for c in cells] == [("semicon", "semicon"), ("aitex", "aitex"),
                                                     ("magnetic_tile", "magnetic_tile")]
    semicon = cells[0]
    assert "task" not in semicon.task_args and semicon.task_args["max_test_per_class"] == 40
    extra = tr.table_cells("V", None, ["coftad"], "smoke", [0], shots=[10], tasks=["semicon"],
                           task_args={"n_test_normal": 100})
    assert extra[0].task_args == {"max_test_per_class": 40, "n_test_normal": 100}
    assert extra[0].key() != semicon.key()
    with pytest.raises(COFTADInputError, match="non-empty"):
        tr.table_cells("V", None, [], "smoke", [0])
    with pytest.raises(COFTADInputError, match="methods"):
        tr.table_cells("V", None, [3], "smoke", [0])


def test_ablation_rows_match_the_paper_and_share_work_with_table_II():
    assert list(tr.ABLATION) == list(ABLATION_ROWS)
    cells = tr.ablation_cells("smoke", [0])
    prof = get_profile("smoke")
    lim = prof["limits"]["VI"]
    assert len(cells) == len(ABLATION_ROWS) * len(lim["tasks"]) * len(lim["backbones"])
    by_label = {c.row_method: c for c in cells if c.task == "airplane"}
    assert by_label["ablation:random_init"].method == "random"
    assert by_label["ablation:pretrained_only"].method == "pretrained"
    assert by_label["ablation:contrastive"].method_kwargs["positive_pair"] == "none"
    assert by_label["ablation:contrastive+fc"].method_kwargs["positive_pair"] == "fixed_center"
    assert by_label["ablation:contrastive+cipp+np-l2"].method_kwargs["l2_normalize"] is False
    # the full-method rows are Table II's COFT-AD cells: one computation for both tables
    t2 = {c.method: c for c in tr.table_cells("II", "cifar10c", ["coftad", "coftad_np"], "smoke", [0], tasks=["airplane"])}
    assert by_label["ablation:contrastive+cipp"].key() == t2["coftad"].key()
    assert by_label["ablation:contrastive+cipp+np"].key() == t2["coftad_np"].key()
    assert by_label["ablation:contrastive"].key() != t2["coftad"].key()
    r50 = tr.ablation_cells("smoke", [0], rows=["pretrained_only"], backbones=["resnet50"])
    assert {c.row_setting for c in r50} == {"ResNet50"} and {c.method_kwargs["backbone"] for c in r50} == {"resnet50"}
    with pytest.raises(COFTADInputError, match="unknown row"):
        tr.ablation_cells("smoke", [0], rows=["no_such_row"])


def test_smoke_semicon_cells_are_shared_by_tables_V_VII_and_IX():
    key = {t: {c.method: c.key() for c in tr.table_cells(t, None, ["coftad", "ae", "coftad_np"], "smoke", [0],
                                                                 tasks=["semicon"], follow_paper=False)}
           for t in ("V", "VII", "IX")}
    assert key["V"] == key["VII"] == key["IX"]


# ------------------------------------------------------------------ Table IX
def test_run_imbalanced_equals_imbalanced_cells_with_one_fit(tmp_path, fakes):
    prof = _profile(IX={"n_normal": 25})
    cells = tr.table_cells("IX", "semicon", ["coftad", "ae"], prof, [0, 3])
    counts = [2, 5, 20]
    df = rr.run_imbalanced(cells, tmp_path / "data", tmp_path / "cache", prof, counts, 25)
    assert fakes.fits == len(cells)  # fitted once per cell, not once per anomaly count
    assert list(df["setting"].unique()) == ["2 anomalies", "5 anomalies", "20 anomalies"]
    assert len(df) == len(cells) * len(counts) and (df["status"] == "ok").all()
    for cell in cells:
        for n in counts:
            ref = replace(cell, task_args={**cell.task_args, "imbalanced": {"n_normal": 25, "n_anomalies": n}})
            want = run_cell(ref, tmp_path / "data", tmp_path / "cache2", prof)["auroc"]
            got = df[(df["detector"] == cell.method) & (df["seed"] == cell.seed) & (df["setting"] == f"{n} anomalies")]
            assert got["auroc"].item() == pytest.approx(want, abs=1e-12)
    with pytest.raises(COFTADInputError, match="imbalanced"):
        rr.run_imbalanced([ref], tmp_path / "data", tmp_path / "cache", prof, counts, 25)


def test_run_imbalanced_reports_missing_data(tmp_path, fakes):
    cells = tr.table_cells("IX", "semicon", ["coftad"], "smoke", [0], follow_paper=False)
    df = rr.run_imbalanced(cells, tmp_path / "absent", tmp_path / "cache", "smoke", [5, 10], 10)
    assert list(df["status"]) == ["missing", "missing"] and df["auroc"].isna().all()
    assert "not here" in df["message"].iloc[0]


# ------------------------------------------------------------------ Tables VIII and X
def test_run_scorer_table_fits_once_scores_all_and_caches(tmp_path, fakes, monkeypatch):
    calls = []

    def fake_score_with(det, scorers, train, test, scorer_kwargs=None):
        calls.append(list(scorers))
        s = det.score_samples(test)
        return {"knn": -s, "iforest": s + 0.0}  # knn ranks the opposite way: AUROC 1 - a

    monkeypatch.setattr(rr, "_score_with", fake_score_with)
    scorers = ["gaussian", "knn", "iforest"]
    df = rr.run_scorer_table("VIII", "flowers17", ["pretrained", "coftad"], scorers, "smoke", [0, 1],
                             tmp_path / "data", tmp_path / "cache")
    assert fakes.fits == 4 and calls == [["knn", "iforest"]] * 4
    assert len(df) == 2 * 2 * 3 and list(df["setting"].unique()) == scorers
    for (method, seed), g in df.groupby(["method", "seed"]):
        a = g.set_index("setting")["auroc"]
        assert 0.5 < a["gaussian"] < 1
        assert a["knn"] == pytest.approx(1 - a["gaussian"]) and a["iforest"] == pytest.approx(a["gaussian"])
        # the Gaussian column is the detector's own score: Table I's cell gives the same AUROC
        cell = tr.table_cells("VIII", "flowers17", [method], "smoke", [seed], follow_paper=False)[0]
        assert run_cell(cell, tmp_path / "data", tmp_path / "cells", "smoke")["auroc"] == pytest.approx(a["gaussian"])
    fits = fakes.fits
    again = rr.run_scorer_table("VIII", "flowers17", ["pretrained", "coftad"], scorers, "smoke", [0, 1],
                                tmp_path / "data", tmp_path / "cache")
    assert fakes.fits == fits and len(calls) == 4  # from the cache
    pd.testing.assert_series_equal(again["auroc"], df["auroc"])
    cached_files = sorted((tmp_path / "cache" / "misc").iterdir())
    missing = rr.run_scorer_table("VIII", "flowers17", ["coftad"], scorers, "smoke", [7], tmp_path / "absent",
                                  tmp_path / "cache")
    assert (missing["status"] == "missing").all() and len(missing) == 3
    assert sorted((tmp_path / "cache" / "misc").iterdir()) == cached_files  # missing data is not cached
    with pytest.raises(COFTADInputError, match="empty"):
        rr.run_scorer_table("VIII", "flowers17", ["coftad"], [], "smoke", [0], tmp_path, tmp_path / "c")


def test_run_n_aug_table_sets_n_aug_for_each_column(tmp_path, fakes, monkeypatch):
    seen = []

    def fake_score_with(det, scorers, train, test, scorer_kwargs=None):
        assert scorers == ["gaussian"] and scorer_kwargs == {"gaussian": {"l2_normalize": True}}
        seen.append(det.n_aug)
        s = det.score_samples(test)
        return {"gaussian": -s if det.n_aug == 1 else s}

    monkeypatch.setattr(rr, "_score_with", fake_score_with)
    df = rr.run_n_aug_table("X", "flowers17", ["coftad", "coftad_np"], [1, 5, 20], "smoke", [0],
                            tmp_path / "data", tmp_path / "cache")
    assert fakes.fits == 2 and seen == [1, 5, 20, 1, 5, 20]
    for _, g in df.groupby("method"):
        a = g.set_index("setting")["auroc"]
        assert list(a.index) == ["N_A=1", "N_A=5", "N_A=20"]
        assert a["N_A=1"] == pytest.approx(1 - a["N_A=5"]) and a["N_A=5"] == a["N_A=20"]
    with pytest.raises(COFTADInputError, match="n_aug"):
        rr.run_n_aug_table("X", "flowers17", ["coftad"], [0], "smoke", [0], tmp_path, tmp_path / "c")


def test_run_rescored_rejects_bad_score_fns_without_caching(tmp_path, fakes):
    cells = tr.table_cells("X", "flowers17", ["coftad"], "smoke", [0], follow_paper=False)
    df = rr.run_rescored(cells, ["a", "b"], lambda det, task: {"a": det.score_samples(task.test)},
                         tmp_path / "data", tmp_path / "cache", "smoke", name="partial")
    assert set(df["status"]) == {"failed"} and df["message"].str.contains("no scores").all()
    df = rr.run_rescored(cells, ["a"], lambda det, task: {"a": det.score_samples(task.test)[:3]},
                         tmp_path / "data", tmp_path / "cache", "smoke", name="short")
    assert list(df["status"]) == ["failed"] and "test items" in df["message"].iloc[0]
    assert df["auroc"].isna().all()
    with pytest.raises(COFTADInputError, match="test items"):  # strict: the error itself
        rr.run_rescored(cells, ["a"], lambda det, task: {"a": det.score_samples(task.test)[:3]},
                        tmp_path / "data", tmp_path / "cache", "smoke", name="short", strict=True)
    assert not (tmp_path / "cache" / "misc").exists()  # nothing cached from a failed scoring


class SavableFake(FakeDetector):
    """FakeDetector with COFTAD-style save(path) / load(path, device)."""

    def save(self, path):
        Path(path).mkdir(parents=True)
        (Path(path) / "config.json").write_text(json.dumps({"mu": self.mu, "seed": self.seed}))
        return Path(path)

    @classmethod
    def load(cls, path, device="auto"):
        cfg = json.loads((Path(path) / "config.json").read_text())
        det = cls(seed=cfg["seed"])
        det.mu = cfg["mu"]
        return det


def test_tables_VIII_and_X_share_one_fit_of_a_savable_detector(tmp_path, fakes, monkeypatch):
    monkeypatch.setattr(cells_mod, "make_detector", lambda method, **kw: SavableFake(**kw))
    monkeypatch.setattr(rr, "_score_with", lambda det, scorers, train, test, scorer_kwargs=None:
                        {s: det.score_samples(test) for s in scorers})
    df8 = rr.run_scorer_table("VIII", "flowers17", ["coftad"], ["gaussian", "knn"], "smoke", [0],
                              tmp_path / "data", tmp_path / "cache")
    assert fakes.fits == 1
    cell = tr.table_cells("X", "flowers17", ["coftad"], "smoke", [0], follow_paper=False)[0]
    assert (rr.model_dir(tmp_path / "cache", cell) / "config.json").is_file()
    assert not list((tmp_path / "cache" / "models").glob(".*.tmp"))
    df10 = rr.run_n_aug_table("X", "flowers17", ["coftad"], [1, 5], "smoke", [0], tmp_path / "data", tmp_path / "cache")
    assert fakes.fits == 1  # Table X loaded Table VIII's fitted model
    assert df10["auroc"].tolist() == pytest.approx([df8["auroc"].iloc[0]] * 2)


def test_fitted_detector_saves_and_reloads_a_real_pretrained_detector(tmp_path):
    from coftad_lib.methods.scorers import score_with

    prof = _profile()
    prof["image_size"], prof["n_aug"] = 32, 2
    cell = tr.table_cells("VIII", "flowers17", ["pretrained"], prof, [0], follow_paper=False)[0]
    rng = np.random.default_rng(0)
    task = FewShotTask(dataset="flowers17", name="t", train=rng.integers(0, 255, (3, 32, 32, 3), dtype=np.uint8),
                       test=rng.integers(0, 255, (4, 32, 32, 3), dtype=np.uint8), test_labels=[0, 0, 1, 1],
                       test_kinds=["n", "n", "a", "a"], train_ids=["a", "b", "c"], test_ids=["1", "2", "3", "4"])
    first = rr.fitted_detector(cell, task, tmp_path)
    again = rr.fitted_detector(cell, task, tmp_path)
    assert type(again) is type(first) and again is not first
    np.testing.assert_allclose(again.score_samples(task.test), first.score_samples(task.test), rtol=1e-5)
    knn = score_with(again, ["knn"], task.train, task.test)["knn"]
    assert knn.shape == (4,) and np.isfinite(knn).all()


# ------------------------------------------------------------------ writing
def test_with_task_average_and_table_VI_compares_averages_with_the_paper(tmp_path, fakes):
    prof = _profile(VI={"tasks": ["airplane", "cat"]})
    cells = tr.ablation_cells(prof, [0], rows=["pretrained_only", "contrastive+cipp+np"])
    df = run_cells(cells, tmp_path / "data", tmp_path / "cache", prof, progress=False)
    df.loc[(df["task"] == "cat") & (df["method"] == "ablation:pretrained_only"), ["status", "auroc"]] = ["missing", math.nan]
    table = tr.with_task_average(df)
    avg = table[table["task"] == "avg"].set_index("method")
    full = df[df["method"] == "ablation:contrastive+cipp+np"]["auroc"].mean()
    assert avg.loc["ablation:contrastive+cipp+np", "auroc"] == pytest.approx(full)
    assert avg.loc["ablation:pretrained_only", "status"] == "missing" and math.isnan(avg.loc["ablation:pretrained_only", "auroc"])
    md = tr.write_results(table, "VI", tmp_path / "out", columns=("setting",),
                          setting_map={"efficientnet_lite0": "ResNet18"}).read_text()
    ours = 100 * full
    p = paper_value("VI", "ResNet18", "ablation:contrastive+cipp+np", "avg")
    assert f"{ours:.1f} (paper {p:.2f}, {'+' if ours >= p else '-'}{abs(ours - p):.1f})" in md


def test_write_results_names_missing_datasets_and_quoted_rows(tmp_path, fakes):
    df = run_cells(tr.table_cells("V", None, ["coftad"], "smoke", [0], shots=[5]), tmp_path / "data",
                   tmp_path / "cache", "smoke", progress=False)
    assert set(df.loc[df["status"] == "missing", "dataset"]) == {"magnetic_tile"}
    md = tr.write_results(df, "V", tmp_path / "out", columns=("task", "setting")).read_text()
    from coftad_lib.datasets import magnetic_tile
    assert "## Missing datasets" in md and "**magnetic_tile**" in md
    assert magnetic_tile.HOW_TO_GET.splitlines()[0].strip() in md
    status = json.loads(record_status(tmp_path / "out", df, notebook="t", tables=["V"]).read_text())
    assert status["status"] == "missing" and [m["dataset"] for m in status["missing"]] == ["magnetic_tile"]

    df4, md4 = tr.run_table("IV", "mvtec", ["coftad", "patchcore"], "smoke", [0], tmp_path / "data",
                            tmp_path / "out4", progress=False)
    text = md4.read_text()
    assert "TDG*" in text and "quoted from [4], not run (paper 77.90)" in text and "PatchCore" in text
    assert "## Missing datasets" not in text and (df4["status"] == "ok").all()
    assert (tmp_path / "out4" / "tables" / "table_IV_summary.csv").exists()


def test_failed_cells_show_in_the_table_and_in_rescored_and_imbalanced_runs(tmp_path, fakes, monkeypatch):
    real = fakes.score_samples

    def flaky(self, images):
        if self.seed == 1:
            raise RuntimeError("out of memory in the bank")
        return real(self, images)

    monkeypatch.setattr(fakes, "score_samples", flaky)
    df = run_cells(tr.table_cells("I", "flowers17", ["coftad"], "smoke", [0, 1]), tmp_path / "data",
                   tmp_path / "cache", "smoke", progress=False)
    assert sorted(df["status"]) == ["failed", "failed", "ok", "ok"]
    md = tr.write_results(df, "I", tmp_path / "out", columns=("task",)).read_text()
    assert "[1/2 seeds, 1 failed]" in md and "## Failed cells" in md and "out of memory in the bank" in md
    one = df[df["seed"] == 1]
    assert "failed (paper" in tr.write_results(one, "I", tmp_path / "out1", columns=("task",)).read_text()
    ix = rr.run_imbalanced(tr.table_cells("IX", "semicon", ["coftad"], "smoke", [1]), tmp_path / "data",
                           tmp_path / "cache", "smoke", [5, 10], 30)
    assert list(ix["status"]) == ["failed", "failed"] and ix["auroc"].isna().all()
