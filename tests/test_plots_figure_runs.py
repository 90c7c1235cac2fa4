"""Plotting (coftad_lib.plots), the figure notebooks' logic (figure_runs), the method tour and data prep runs."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402

from coftad_lib import plots  # noqa: E402
from coftad_lib.datasets import synthetic  # noqa: E402
from coftad_lib.datasets.task import FewShotTask  # noqa: E402
from coftad_lib.engine.cache import atomic_save_npz  # noqa: E402
from coftad_lib.errors import COFTADInputError  # noqa: E402
from coftad_lib.figures import save_figure  # noqa: E402
from coftad_lib.paper import figure_runs as fr  # noqa: E402
from coftad_lib.paper import make_cell, prep_runs, table_limits  # noqa: E402


def _saved(fig: Figure, name: str, tmp_path) -> None:
    paths = save_figure(fig, name, tmp_path / "figures")
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    for p in paths:
        assert p.stat().st_size > 1000
    with Image.open(paths[0]) as im:
        assert im.size[0] > 100 and im.size[1] > 100


# ------------------------------------------------------------------ plots

def test_image_grid_mixed_inputs_and_captions(tmp_path):
    png = tmp_path / "a.png"
    Image.fromarray(np.full((20, 30, 3), 200, np.uint8)).save(png)
    rows = [[png, np.zeros((16, 16, 3), np.uint8), torch.rand(3, 16, 16)], [np.ones((16, 16))]]
    caps = [["x\ny", "b", "c"], ["gray"]]
    fig = plots.image_grid(rows, row_titles=["r1", "r2"], captions=caps, title="t")
    # one axis per grid position (2 rows x 3 columns), empty positions stay blank
    assert len(fig.axes) == 6
    assert sum(len(ax.images) for ax in fig.axes) == 4
    assert fig.axes[0].get_xlabel() == "x\ny" and fig.axes[0].get_ylabel() == "r1"
    _saved(fig, "grid", tmp_path)


def test_to_display_pil_memmap_and_shrinking(tmp_path):
    big = Image.fromarray(np.zeros((300, 150, 3), np.uint8))
    assert plots.to_display(big, max_side=64).shape == (64, 32, 3)
    assert plots.to_display(big).shape == (300, 150, 3)
    np.save(tmp_path / "a.npy", np.full((2, 8, 8, 3), 7, np.uint8))
    mm = np.load(tmp_path / "a.npy", mmap_mode="r")
    out = plots.to_display(mm[1])
    assert type(out) is np.ndarray and out.shape == (8, 8, 3) and out.max() == 7
    assert plots.to_display(torch.ones(3, 4, 5)).shape == (4, 5, 3)
    assert plots.to_display(np.full((4, 4), 300.0)).max() == 1.0  # floats are clipped to [0, 1]


def test_image_grid_rejects_bad_shapes(tmp_path):
    with pytest.raises(COFTADInputError, match="captions"):
        plots.image_grid([[np.zeros((8, 8, 3))]], captions=[["a", "b"]])
    with pytest.raises(COFTADInputError, match="row_titles"):
        plots.image_grid([[np.zeros((8, 8, 3))]], row_titles=["a", "b"])
    with pytest.raises(COFTADInputError, match="no images"):
        plots.image_grid([])
    with pytest.raises(COFTADInputError, match="shape"):
        plots.to_display(np.zeros((4, 4, 7)))
    with pytest.raises(Exception, match="no such image"):
        plots.to_display(tmp_path / "missing.png")


def test_score_caption_one_line_per_method():
    assert plots.score_caption({"AE": 12.4, "COFT-AD": 99.6}) == "AE 12\nCOFT-AD 100"


def test_tsne_scatter_colours_and_counts(tmp_path):
    rng = np.random.default_rng(0)
    panels = {"(a)": (rng.normal(size=(30, 2)), np.r_[np.zeros(20), np.ones(10)]),
              "(b)": (rng.normal(size=(30, 2)), np.r_[np.zeros(20), np.ones(10)])}
    fig = plots.tsne_scatter(panels, title="t")
    assert len(fig.axes) == 2
    coll = fig.axes[0].collections
    assert [c.get_offsets().shape[0] for c in coll] == [20, 10]
    assert np.allclose(coll[0].get_facecolor()[0][:3], matplotlib.colors.to_rgb(plots.NORMAL_COLOR))
    assert np.allclose(coll[1].get_facecolor()[0][:3], matplotlib.colors.to_rgb(plots.ANOMALY_COLOR))
    _saved(fig, "tsne", tmp_path)
    with pytest.raises(COFTADInputError, match=r"\(N, 2\)"):
        plots.tsne_scatter({"x": (np.zeros((5, 3)), np.zeros(5))})
    with pytest.raises(COFTADInputError, match="labels"):
        plots.tsne_scatter({"x": (np.zeros((5, 2)), np.zeros(4))})


def test_score_distributions_seaborn(tmp_path):
    rng = np.random.default_rng(1)
    s = np.r_[rng.normal(0, 1, 40), rng.normal(3, 1, 40)]
    y = np.r_[np.zeros(40), np.ones(40)]
    fig = plots.score_distributions({"(a)": (s, y), "(b)": (s * 2, y), "(c)": (s, y)}, bins=10)
    assert len(fig.axes) == 3
    ax = fig.axes[0]
    assert ax.get_xlabel() == "Anomaly Score" and ax.get_ylabel() == "Frequency"
    heights = sum(p.get_height() for p in ax.patches)
    assert heights == pytest.approx(80)  # every score counted once
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(plots.GROUP_NAMES)
    _saved(fig, "scores", tmp_path)
    # constant scores of one group: no KDE, still a histogram
    plots.score_distributions({"flat": (np.r_[np.ones(5), np.arange(5.0)], np.r_[np.zeros(5), np.ones(5)])})
    with pytest.raises(COFTADInputError, match="0 \\(normal\\) or 1"):
        plots.score_distributions({"x": (np.ones(3), np.array([0, 1, 2]))})


def test_heatmaps_losses_histogram_bars(tmp_path):
    fig = plots.similarity_heatmaps({"before": np.eye(3), "after": np.ones((3, 3))}, vmin=0, vmax=1)
    assert len(fig.axes) == 3  # two panels + colour bar
    _saved(fig, "heat", tmp_path)
    with pytest.raises(COFTADInputError, match="square"):
        plots.similarity_heatmaps({"x": np.ones((2, 3))})
    hist = [{"step": i, "loss": -i / 10, "con": -i / 20, "pp": -i / 30, "np": 0.1} for i in range(8)]
    fig = plots.loss_curves(hist, window=3)
    labels = [line.get_label() for line in fig.axes[0].get_lines() if not line.get_label().startswith("_")]
    assert labels == ["L_all (Eq. 6)", "L_Con (Eq. 1)", "0.8 L_PP (Eq. 4)", "0.6 L_NP (Eq. 5)"]
    assert len(fig.axes[0].get_lines()[0].get_xdata()) == 6  # moving average of 3 over 8 steps
    _saved(fig, "loss", tmp_path)
    with pytest.raises(COFTADInputError, match="empty"):
        plots.loss_curves([])
    fig = plots.value_histogram(np.linspace(0, 0.1, 50), np.r_[np.zeros(25), np.ones(25)], threshold=0.05, log_y=True)
    _saved(fig, "hist", tmp_path)
    fig = plots.metric_bars({"a": 60.0, "b": 70.0}, reference=60.0)
    assert [round(p.get_height()) for p in fig.axes[0].patches] == [60, 70]
    _saved(fig, "bars", tmp_path)


# ------------------------------------------------------------------ figure_runs: scores and cases

def test_percentile_scores():
    s = np.array([3.0, 1.0, 2.0, 10.0, -5.0])
    p = fr.percentile_scores(s)
    # order statistics by hand: -5 -> 0, 1 -> 25, 2 -> 50, 3 -> 75, 10 -> 100
    assert p.tolist() == [75.0, 25.0, 50.0, 100.0, 0.0]
    assert fr.percentile_scores([1.0, 1.0, 2.0]).tolist() == [25.0, 25.0, 100.0]
    assert fr.percentile_scores([7.0]).tolist() == [50.0]
    # invariant to a monotone change of scale (only ranks count)
    assert np.array_equal(fr.percentile_scores(np.exp(s)), p)
    with pytest.raises(COFTADInputError, match="NaN"):
        fr.percentile_scores([1.0, np.nan])
    with pytest.raises(COFTADInputError, match="no scores"):
        fr.percentile_scores([])


def test_qualitative_cases():
    scores = np.array([5, 1, 9, 3, 7, 2, 8, 0.5])
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    c = fr.qualitative_cases(scores, labels, 2)
    assert c["normal_low"].tolist() == [1, 3]  # scores 1, 3
    assert c["normal_high"].tolist() == [2, 0]  # scores 9, 5
    # anomalies by increasing score (0.5, 2, 7, 8), two spread over the range: lowest and highest
    assert c["abnormal"].tolist() == [7, 6]
    assert fr.qualitative_cases(scores, labels, 10)["abnormal"].tolist() == [7, 5, 4, 6]
    with pytest.raises(COFTADInputError, match="labels"):
        fr.qualitative_cases(scores, labels[:3], 2)


def _record(method, label, scores, labels, ids, key="k" * 64):
    return {"key": key, "status": "ok", "method": method, "label": label, "scores": list(scores),
            "labels": list(labels), "test_ids": ids, "auroc": 0.75}


def test_qualitative_grid_rows_and_captions():
    rng = np.random.default_rng(0)
    test = rng.integers(0, 255, (12, 8, 8, 3), dtype=np.uint8)
    labels = np.r_[np.zeros(8, int), np.ones(4, int)]
    ids = [f"t{i}" for i in range(12)]
    task = FewShotTask("flowers17", "Tulip/Daffodil", test[:3], test, labels, ["x"] * 12, ["a", "b", "c"], ids,
                       {"normal": "Tulip", "abnormal": "Daffodil"})
    ref = np.arange(12.0)[::-1]  # normal 0 has the highest score
    recs = [_record("ae", "ae", np.arange(12.0), labels, ids), _record("coftad_np", "coftad_np", ref, labels, ids)]
    g = fr.qualitative_grid(task, recs, n=3)
    assert [len(r) for r in g["rows"]] == [3, 3, 3, 3]
    assert g["reference"] == "COFT-AD (w/ np)"
    assert np.array_equal(g["rows"][1][0], test[7])  # lowest COFT-AD score among normals: item 7
    assert np.array_equal(g["rows"][2][0], test[0])
    assert g["captions"][1][0] == "AE: 64\nCOFT-AD (w/ np): 36"  # item 7: rank 8 of 12 / rank 5 of 12
    assert g["row_titles"][0].startswith("TRAIN - Tulip") and "Daffodil" in g["row_titles"][3]
    bad = [_record("ae", "ae", np.arange(12.0), labels, ids[::-1])]
    with pytest.raises(COFTADInputError, match="another test set"):
        fr.qualitative_grid(task, bad)


# ------------------------------------------------------------------ figure_runs: cells share the cache

def test_fig7_cells_are_table_vi_work_and_fig5_cells_table_i_work():
    cells = fr.figure_cells("fig7", "smoke", 0)
    assert [c.label for c in cells] == [f"ablation:{m.row}" for m in fr.ABLATION_PANELS.values()]
    assert [c.method for c in cells] == ["pretrained", "coftad", "coftad", "coftad_np"]
    assert cells[1].method_kwargs["positive_pair"] == "none" and "positive_pair" not in cells[2].method_kwargs
    lim = table_limits("smoke", "VI")
    vi = make_cell("VI", "cifar10c", lim["tasks"][0], lim["shots"][0], "coftad", 0, "smoke",
                   label="ablation:contrastive", setting="ResNet18", positive_pair="none")
    assert vi.key() == cells[1].key()
    fig5 = fr.figure_cells("fig5", "smoke", 0)
    assert [c.method for c in fig5] == list(fr.FIG5_METHODS["smoke"])
    t1 = make_cell("I", "flowers17", "Tulip/Daffodil", 5, "coftad_np", 0, "smoke")
    assert t1.key() in {c.key() for c in fig5}
    fig6 = fr.figure_cells("fig6", "smoke", 0)
    assert all(c.kind == "embed" for c in fig6)
    assert fig6[0].task_args["max_test_per_class"] == table_limits("smoke", "fig6")["max_test_per_class"]
    with pytest.raises(COFTADInputError, match="figure"):
        fr.figure_cells("fig9", "smoke", 0)
    with pytest.raises(COFTADInputError, match="panels"):
        fr.ablation_cells("fig7", "cifar10c", "airplane", 10, 0, "smoke", panels=["z"])


def test_figure_cells_match_the_table_notebooks_cells():
    """Figs. 5 and 7 reuse Tables I and VI's cached work only if the keys agree exactly."""
    tr = pytest.importorskip("coftad_lib.paper.tables")
    vi = {c.key() for c in tr.ablation_cells("smoke", [0])}
    assert {c.key() for c in fr.figure_cells("fig7", "smoke", 0)} <= vi
    t1 = {c.key() for c in tr.table_cells("I", "flowers17", list(fr.TABLE_I_METHODS), "smoke", [0],
                                                  follow_paper=False)}
    assert {c.key() for c in fr.figure_cells("fig5", "smoke", 0)} <= t1


def test_panel_records_score_panels_separation():
    cells = fr.figure_cells("fig7", "smoke", 0)
    y = [0, 0, 1, 1]
    recs = [_record(c.method, c.label, [0.0, 1.0, 2.0, 4.0], y, list("abcd")) for c in cells]
    recs[0] = {"status": "missing", "message": "no data"}
    panels = fr.panel_records(cells, recs)
    assert list(panels) == ["b", "c", "d"]
    sp = fr.score_panels(panels)
    assert list(sp)[0] == "(b) w/ contrastive fine-tuning - AUROC 75.0"
    table = fr.separation_table(panels)
    assert table["gap_in_normal_std"].tolist() == pytest.approx([5.0] * 3)  # (3 - 0.5) / 0.5


def test_tsne_points_and_tsne_2d():
    y = np.r_[np.zeros(50), np.ones(50)]
    idx = fr.tsne_points(y, 30, seed=0)
    assert len(idx) == 30 and np.all(np.diff(idx) > 0)
    assert np.array_equal(idx, fr.tsne_points(y, 30, seed=0))
    assert not np.array_equal(idx, fr.tsne_points(y, 30, seed=1))
    assert np.array_equal(fr.tsne_points(y, None, 0), np.arange(100))
    rng = np.random.default_rng(0)
    x = np.r_[rng.normal(0, 0.05, (20, 8)) + np.eye(8)[0], rng.normal(0, 0.05, (20, 8)) + np.eye(8)[1]]
    z = fr.tsne_2d(x, seed=0)
    assert z.shape == (40, 2) and np.isfinite(z).all()
    # two well separated input clusters stay separated: nearest neighbour of each point is in its cluster
    d = np.linalg.norm(z[:, None] - z[None], axis=-1) + np.eye(40) * 1e9
    lab = np.r_[np.zeros(20), np.ones(20)]
    assert (lab[d.argmin(1)] == lab).mean() == 1.0
    with pytest.raises(COFTADInputError, match="NaN"):
        fr.tsne_2d(np.full((5, 2), np.nan))


def test_tsne_panels_cached(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(15), np.ones(15)].astype(np.int64)
    atomic_save_npz(cache / "cells" / "x.npz", {"train": rng.normal(size=(3, 6)), "test": rng.normal(size=(30, 6)),
                                                "labels": labels})
    rec = _record("coftad", "ablation:contrastive+cipp", np.zeros(30), labels, [str(i) for i in range(30)])
    rec["features"] = "x.npz"
    out = fr.tsne_panels({"c": rec}, cache, n_points=20, seed=0)
    (title, (coords, lab)), = out.items()
    assert title.startswith("(c) w/ pp loss") and coords.shape == (20, 2) and lab.shape == (20,)
    assert len(list((cache / "misc").glob("tsne-*.npz"))) == 1
    monkeypatch.setattr(fr, "tsne_2d", lambda *a, **k: (_ for _ in ()).throw(AssertionError("recomputed")))
    again = fr.tsne_panels({"c": rec}, cache, n_points=20, seed=0)
    assert np.array_equal(list(again.values())[0][0], coords)


# ------------------------------------------------------------------ synthetic task and the method tour

def test_synthetic_task():
    t = synthetic.load(None, shots=3, seed=0, n_test_normal=4, n_test_abnormal=2, size=32)
    assert t.train.shape == (3, 32, 32, 3) and t.test.shape == (6, 32, 32, 3)
    assert t.test_labels.tolist() == [0, 0, 0, 0, 1, 1]
    assert np.array_equal(t.test, synthetic.load(None, shots=3, seed=0, n_test_normal=4, n_test_abnormal=2, size=32).test)
    # anomalies carry the red square: more strongly red pixels than any normal image
    red = ((t.test[..., 0] > 240) & (t.test[..., 1] < 60)).sum(axis=(1, 2))
    assert red[4:].min() > red[:4].max()
    with pytest.raises(COFTADInputError, match="task"):
        synthetic.load(None, task="nope")


@pytest.fixture
def one_thread():
    # Tiny batches gain nothing from a second thread, and on a shared 2-core machine OpenMP's
    # spinning made this test 3x slower with two.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_method_tour_on_synthetic(tmp_path, one_thread):
    from coftad_lib.paper import method_tour as mt

    task, what = mt.tour_task([tmp_path / "none"], shots=3, seed=0, max_test_per_class=4, image_size=32)
    assert "generated" in what and task.train.shape == (3, 32, 32, 3) and len(task.test) == 8
    views = mt.augmentation_examples(task.train, "industrial", 32, seed=0)
    assert list(views)[0] == "shots X" and all(v.shape == (3, 3, 32, 32) for v in views.values())
    assert not torch.equal(views["t_n(X), negative"], views["shots X"])
    models = mt.tour_models("smoke", "synthetic", 0, panels=["a", "d"], image_size=32, steps=2, batch_size=4, n_aug=2)
    eff = mt.fit_and_measure(models, task, seed=0)
    a, d = eff.values()
    assert a["history"] == [] and len(d["history"]) == 2 and {"con", "pp", "np"} <= set(d["history"][0])
    assert a["shot_cosine"].shape == (3, 3) and np.allclose(np.diag(a["shot_cosine"]), 1, atol=1e-5)
    assert 0 <= a["auroc"] <= 100 and -1 <= a["negative_cosine"] <= 1
    table = mt.effects_table(eff)
    assert list(table.index) == list(eff) and "normal_spread" in table
    # cached: a second run with the same models reads the measures back instead of training
    cached_once = mt.fit_and_measure(models, task, seed=0, cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache" / "misc").glob("tour-*.json"))) == 2
    for det in models.values():
        det.fit = lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained again"))
    again = mt.fit_and_measure(models, task, seed=0, cache_dir=tmp_path / "cache")
    for name in eff:
        assert np.allclose(again[name]["shot_cosine"], cached_once[name]["shot_cosine"])
        assert again[name]["history"] == cached_once[name]["history"]


# ------------------------------------------------------------------ data preparation runs

def test_profile_derived_prep_sizes():
    for prof in ("smoke", "paper"):
        caps = [table_limits(prof, t) for t in prep_runs.CIFAR10C_TABLES]
        want = None if any(c["max_test_per_class"] is None for c in caps) else max(
            max(c["shots"]) + c["max_test_per_class"] for c in caps)
        assert prep_runs.cifar_c_limit_per_class(prof) == want
        need = prep_runs.semicon_requirements(prof)
        assert need["defect"] == 110 and need["normal"] == 500 + max(
            max(table_limits(prof, t)["shots"]) for t in prep_runs.SEMICON_TABLES)


def test_ensure_cifar_c_builds_once_and_fig4(tmp_path):
    from coftad_lib.datasets.cifar_c import class_names

    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    for c in class_names("cifar10c"):
        (data / "cifar10" / "test" / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(data / "cifar10" / "test" / c / f"{i}.png")
    res = prep_runs.ensure_cifar_c(data, tmp_path / "prep", limit_per_class=2)
    assert res.status == "built" and res.details["n_per_severity"] == 20 and res.missing_entry() == []
    again = prep_runs.ensure_cifar_c(data, tmp_path / "prep", limit_per_class=2)
    assert again.status == "present"
    assert prep_runs.ensure_cifar_c(data, tmp_path / "prep", limit_per_class=3).status == "built"
    clean, corr = prep_runs.corruption_examples(res.path, index=0)
    meta = json.loads((res.path / "coftad_generated.json").read_text())
    src = meta["source_ids"][0]
    files = sorted((data / "cifar10" / "test").rglob("*.png"))
    expected = [np.asarray(Image.open(f)) for f in files if src.endswith(f"{f.parent.name}/{f.name}") or src.endswith(f.stem)]
    assert expected and np.array_equal(clean, expected[0])
    assert len(corr) == 9 and all(v.shape == (32, 32, 3) for v in corr.values())
    assert not np.array_equal(corr["gaussian_noise"], clean)
    missing = prep_runs.ensure_cifar_c(tmp_path / "nothing", tmp_path / "prep2", 2)
    assert missing.status == "missing" and "CIFAR" in missing.message and missing.missing_entry()[0]["dataset"] == "cifar10c"


def test_ensure_aitex_missing_says_how_to_get(tmp_path):
    from coftad_lib.datasets.aitex import HOW_TO_GET

    res = prep_runs.ensure_aitex(tmp_path, tmp_path / "prep")
    assert res.status == "missing" and HOW_TO_GET in res.message
    assert res.missing_entry() == [{"dataset": "aitex", "message": res.message}]


def test_ensure_semicon_synthetic_grows_until_enough(tmp_path):
    res = prep_runs.ensure_semicon(tmp_path / "data", tmp_path / "prep", {"normal": 30, "defect": 5}, n_volumes=1)
    assert res.status == "built" and res.details["synthetic"] and "SYNTHETIC" in res.message
    assert res.details["normal"] >= 30 and res.details["defect"] >= 5 and res.details["n_volumes"] > 1
    assert prep_runs.manifest_counts(res.path) == {"normal": res.details["normal"], "defect": res.details["defect"]}
    again = prep_runs.ensure_semicon(tmp_path / "data", tmp_path / "prep", {"normal": 30, "defect": 5},
                                     n_volumes=res.details["n_volumes"])
    assert again.status == "present"
    ratios, labels = prep_runs.slice_ratios(res.path)
    assert len(ratios) == res.details["normal"] + res.details["defect"]
    from data_prep.semicon_slices import DEFAULT_THRESHOLD
    assert np.array_equal(labels, (ratios > DEFAULT_THRESHOLD).astype(int))
    ex = prep_runs.example_images(res.path, 3)
    assert len(ex["normal"]) == 3 and all(p.is_file() and "/normal/" in p.as_posix() for p in ex["normal"])
