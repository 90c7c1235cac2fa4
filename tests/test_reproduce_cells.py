"""Cells, cache and profiles of coftad_lib.reproduce, run with a fake detector and a fake load_task."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from coftad_lib.datasets.task import FewShotTask
from coftad_lib.engine import cache as cache_mod
from coftad_lib.engine import cells as cells_mod
from coftad_lib.engine.executors import run_cells
from coftad_lib.errors import COFTADInputError, DatasetNotFoundError
from coftad_lib.paper import profiles as prof_mod
from coftad_lib.paper import record_status
from coftad_lib.versions import VERSION_KEYS, versions


class FakeDetector:
    """Scores = distance of each image's mean intensity to the training mean; counts fits."""

    fits = 0

    def __init__(self, seed: int, **kw):
        self.seed, self.kw = seed, kw

    def fit(self, images):
        FakeDetector.fits += 1
        self.mu = float(np.asarray(images, dtype=np.float64).mean())
        return self

    def score_samples(self, images):
        x = np.asarray(images, dtype=np.float64).reshape(len(images), -1)
        return np.abs(x.mean(axis=1) - self.mu) + 0.001 * np.arange(len(images))

    def embed(self, images):
        return np.asarray(images, dtype=np.float64).reshape(len(images), -1)[:, :4]


def fake_load_task(dataset, root, shots, seed, **task_args):
    """Per-image brightness: normals 100 + N(0, 8), anomalies 100 +- U(4, 20): overlapping, so 0.5 < AUROC < 1."""
    rng = np.random.default_rng(seed)
    n_norm, n_anom = 12, 8
    train = (100 + rng.normal(0, 8, size=(shots, 1, 1, 1)) + np.zeros((shots, 8, 8, 3))).astype(np.uint8)
    normal = 100 + rng.normal(0, 8, size=(n_norm, 1, 1, 1)) + np.zeros((n_norm, 8, 8, 3))
    anom = 100 + rng.choice([-1, 1], size=(n_anom, 1, 1, 1)) * rng.uniform(4, 20, size=(n_anom, 1, 1, 1)) + np.zeros((n_anom, 8, 8, 3))
    test = np.concatenate([normal, anom]).clip(0, 255).astype(np.uint8)
    labels = np.r_[np.zeros(n_norm), np.ones(n_anom)].astype(np.int64)
    return FewShotTask(dataset=dataset, name=task_args.get("task", "t"), train=train, test=test,
                       test_labels=labels, test_kinds=["good"] * n_norm + ["bad"] * n_anom,
                       train_ids=[f"tr{i}" for i in range(shots)], test_ids=[f"te{i}" for i in range(n_norm + n_anom)],
                       info={"root": Path(root), "shots": shots})


@pytest.fixture
def fakes(monkeypatch):
    FakeDetector.fits = 0
    monkeypatch.setattr(cells_mod, "_load_task", fake_load_task)
    monkeypatch.setattr(cells_mod, "make_detector", lambda method, **kw: FakeDetector(**kw))
    return FakeDetector


def _cell(**over):
    base = dict(table="II", dataset="cifar10c", task="airplane", shots=5, method="coftad",
                method_kwargs={"backbone": "efficientnet_lite0", "image_size": 32}, seed=0,
                task_args={"task": "airplane"})
    base.update(over)
    return cells_mod.Cell(**base)


# ------------------------------------------------------------------ keys
def test_key_is_stable_sha256_and_ignores_labels_and_dict_order():
    a = _cell(method_kwargs={"image_size": 32, "backbone": "efficientnet_lite0"})
    b = _cell(table="VII", setting="whatever", label="row")
    assert a.key() == b.key()
    assert len(a.key()) == 64 and int(a.key(), 16) >= 0
    assert a.key() == a.key()  # no profile name in a key: the same work under two profiles is one cell
    assert a.legacy_key("smoke") != a.legacy_key("paper") != a.key()
    assert a.key() != _cell(shots=10).key()
    assert a.key() != _cell(seed=1).key()
    assert a.key() != _cell(method_kwargs={"backbone": "resnet18", "image_size": 32}).key()


def test_key_names_the_data_and_the_code_the_cell_runs(monkeypatch):
    before = _cell().key()
    assert _cell(data="sha256:aaaa").key() not in (before, _cell(data="sha256:bbbb").key())
    monkeypatch.setattr(cells_mod, "library_version", lambda: "99.0")
    assert _cell().key() == before  # the version number is no code
    monkeypatch.setattr(cells_mod, "closure_digest", lambda roots: "other code")
    assert _cell().key() != before


def test_cell_copies_kwargs_and_rejects_bad_fields():
    kw = {"backbone": "x"}
    c = _cell(method_kwargs=kw)
    k = c.key()
    kw["backbone"] = "y"
    assert c.key() == k
    with pytest.raises(COFTADInputError, match="seed"):
        _cell(method_kwargs={"seed": 3})
    with pytest.raises(COFTADInputError, match="kind"):
        _cell(kind="bogus")
    with pytest.raises(COFTADInputError, match="shots"):
        _cell(shots="5")
    with pytest.raises(COFTADInputError, match="method_kwargs"):
        _cell(method_kwargs={"f": object()})
    assert len({_cell(), _cell()}) == 1  # hashable, equal cells collapse


# ------------------------------------------------------------------ run_cell
def test_run_cell_computes_auroc_and_caches(tmp_path, fakes):
    cell = _cell()
    rec = cells_mod.run_cell(cell, tmp_path / "data", tmp_path / "cache", "smoke")
    assert rec["status"] == "ok" and rec["cached"] is False and fakes.fits == 1
    assert rec["auroc"] == pytest.approx(roc_auc_score(rec["labels"], rec["scores"]))
    assert 0.5 < rec["auroc"] < 1.0
    assert rec["test_ids"][0] == "te0" and len(rec["scores"]) == rec["n_test"] == 20
    assert rec["profile"] == "smoke" and rec["backbone"] == "efficientnet_lite0" and rec["seed"] == 0
    assert set(VERSION_KEYS) <= set(rec["versions"]) and rec["fit_seconds"] >= 0
    path = cells_mod.cell_path(tmp_path / "cache", cell.key())
    assert json.loads(path.read_text())["auroc"] == rec["auroc"]

    again = cells_mod.run_cell(_cell(table="VII", label="x"), tmp_path / "data", tmp_path / "cache", "smoke")
    assert fakes.fits == 1 and again["cached"] is True and again["auroc"] == rec["auroc"]
    assert again["table"] == "VII" and again["label"] == "x"  # labels come from the asking cell
    cells_mod.run_cell(_cell(seed=1), tmp_path / "data", tmp_path / "cache", "smoke")
    assert fakes.fits == 2


def test_one_cell_under_two_profiles_is_computed_once(tmp_path, fakes):
    a = cells_mod.run_cell(_cell(), tmp_path / "data", tmp_path / "cache", "smoke")
    b = cells_mod.run_cell(_cell(), tmp_path / "data", tmp_path / "cache", "smoke+device=cpu")
    assert fakes.fits == 1 and b["cached"] and b["auroc"] == a["auroc"] and b["profile"] == "smoke+device=cpu"


def test_an_older_cache_moves_to_keys_without_the_profile_name(tmp_path, fakes):
    from coftad_lib.engine.migrate import MARKER, ensure_migrated

    cache = tmp_path / "cache"
    cell = _cell(kind="embed")
    rec = cells_mod.run_cell(cell, tmp_path / "data", cache, "paper")
    new, old = cell.key(), cell.legacy_key("paper")
    new_path = cells_mod.cell_path(cache, new)
    new_path.rename(cells_mod.cell_path(cache, old))  # as an older runner left it
    new_path.with_suffix(".npz").rename(cells_mod.cell_path(cache, old).with_suffix(".npz"))
    stale = cells_mod.cell_path(cache, _cell(seed=5).legacy_key("paper"))
    stale.write_text(cells_mod.cell_path(cache, old).read_text())  # content does not match its name: stays
    (cache / "models" / old).mkdir(parents=True)
    assert ensure_migrated(cache) == 1 and (cache / "cells" / MARKER).exists()
    assert ensure_migrated(cache) == 0  # once per cache
    assert new_path.exists() and not cells_mod.cell_path(cache, old).exists() and stale.exists()
    assert (cache / "models" / new).is_dir()
    again = cells_mod.run_cell(cell, tmp_path / "data", cache, "paper")
    assert again["cached"] and again["auroc"] == rec["auroc"] and fakes.fits == 1
    assert cells_mod.load_features(again, cache)["test"].shape[0] == rec["n_test"]


def test_run_cell_passes_seed_and_task_args(tmp_path, monkeypatch):
    seen = {}

    def load(dataset, root, shots, seed, **args):
        seen.update(dataset=dataset, root=root, shots=shots, seed=seed, args=args)
        return fake_load_task(dataset, root, shots, seed, **args)

    def make(method, **kw):
        seen.update(method=method, kw=kw)
        return FakeDetector(**kw)

    monkeypatch.setattr(cells_mod, "_load_task", load)
    monkeypatch.setattr(cells_mod, "make_detector", make)
    cells_mod.run_cell(_cell(dataset="mvtec", seed=7, task_args={"task": "bottle"}), tmp_path, tmp_path / "c", "smoke")
    assert seen["seed"] == 7 and seen["kw"]["seed"] == 7 and seen["args"] == {"task": "bottle"}
    assert seen["root"] == tmp_path / "mvtec_ad" and seen["method"] == "coftad"


def test_failed_cell_leaves_no_record(tmp_path, fakes, monkeypatch):
    def boom(self, images):
        raise RuntimeError("scoring exploded")

    monkeypatch.setattr(FakeDetector, "score_samples", boom)
    with pytest.raises(RuntimeError, match="exploded"):
        cells_mod.run_cell(_cell(), tmp_path, tmp_path / "cache", "smoke")
    assert not list((tmp_path / "cache").rglob("*.json"))


def test_missing_dataset_gives_record_not_cached_and_strict_raises(tmp_path, monkeypatch):
    def absent(*a, **k):
        raise DatasetNotFoundError("MVTec AD not found under /x; download it from https://www.mvtec.com")

    monkeypatch.setattr(cells_mod, "_load_task", absent)
    rec = cells_mod.run_cell(_cell(dataset="mvtec"), tmp_path, tmp_path / "cache", "smoke")
    assert rec["status"] == "missing" and "mvtec.com" in rec["message"] and rec["auroc"] is None
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").rglob("*.json"))
    with pytest.raises(DatasetNotFoundError):
        cells_mod.run_cell(_cell(dataset="mvtec"), tmp_path, tmp_path / "cache", "smoke", strict=True)


def test_run_cells_frame_and_record_status(tmp_path, fakes, monkeypatch):
    def load(dataset, root, shots, seed, **args):
        if dataset == "aitex":
            raise DatasetNotFoundError("AITEX missing: get it from aitex.es")
        return fake_load_task(dataset, root, shots, seed, **args)

    monkeypatch.setattr(cells_mod, "_load_task", load)
    cells = [_cell(seed=s) for s in (0, 1)] + [_cell(dataset="aitex", task="aitex")]
    df = run_cells(cells, tmp_path, tmp_path / "cache", "smoke", progress=False)
    assert list(df.columns) == list(cells_mod.ROW_COLUMNS)
    assert list(df["status"]) == ["ok", "ok", "missing"] and np.isnan(df["auroc"].iloc[2])
    assert df["torch"].iloc[0] == versions()["torch"] and df["setting"].iloc[0] == "5-shot"
    path = record_status(tmp_path, df, notebook="02_cifar10c")
    st = json.loads(path.read_text())
    assert st["status"] == "missing" and st["missing"][0]["dataset"] == "aitex"
    assert "aitex.es" in st["missing"][0]["message"] and st["n_cells"] == 3 and st["n_ok"] == 2
    assert st["profile"] == "smoke"
    ok = json.loads(record_status(tmp_path, df.iloc[:2], notebook="x").read_text())
    assert ok["status"] == "ok" and ok["missing"] == []


def test_record_status_needs_a_name(tmp_path, monkeypatch):
    monkeypatch.setenv("COFTAD_NOTEBOOK", "07_x")  # no longer read: the name is the NOTEBOOK parameter
    with pytest.raises(COFTADInputError, match="notebook"):
        record_status(tmp_path, notebook="")
    assert record_status(tmp_path, notebook="07_x").name == "07_x.json"


def test_embed_kind_saves_features(tmp_path, fakes):
    rec = cells_mod.run_cell(_cell(kind="embed"), tmp_path, tmp_path / "cache", "smoke")
    feats = cells_mod.load_features(rec, tmp_path / "cache")
    assert feats["train"].shape == (5, 4) and feats["test"].shape == (20, 4)
    assert feats["labels"].tolist() == rec["labels"]


# ------------------------------------------------------------------ cache helpers
def test_atomic_write_leaves_nothing_when_writer_raises(tmp_path):
    target = tmp_path / "sub" / "r.json"

    def half(fh):
        fh.write(b'{"partial": ')
        raise KeyboardInterrupt  # as if interrupted mid-write

    with pytest.raises(KeyboardInterrupt):
        cache_mod.atomic_write(target, half)
    assert not target.exists() and os.listdir(target.parent) == []
    cache_mod.atomic_write_json(target, {"a": 1})
    with pytest.raises(TypeError):
        cache_mod.atomic_write_json(target, {"a": object()})
    assert json.loads(target.read_text()) == {"a": 1} and os.listdir(target.parent) == ["r.json"]


def test_cached_computes_once_for_json_and_npz(tmp_path):
    calls = []

    def arrays():
        calls.append(1)
        return {"z": np.arange(6.0).reshape(2, 3)}

    a = cache_mod.cached("embed", {"task": "t", "seed": 0}, arrays, tmp_path)
    b = cache_mod.cached("embed", {"seed": 0, "task": "t"}, arrays, tmp_path)
    assert len(calls) == 1 and np.array_equal(a["z"], b["z"]) and b["z"].shape == (2, 3)
    cache_mod.cached("embed", {"task": "t", "seed": 1}, arrays, tmp_path)
    assert len(calls) == 2
    assert cache_mod.cached("auc", [1], lambda: {"auroc": 0.5}, tmp_path) == {"auroc": 0.5}
    assert cache_mod.cached("auc", [1], lambda: 1 / 0, tmp_path) == {"auroc": 0.5}

    def fails():
        raise ValueError("no")

    with pytest.raises(ValueError):
        cache_mod.cached("bad", [2], fails, tmp_path)
    assert not list((tmp_path / "misc").glob("bad-*"))
    with pytest.raises(COFTADInputError, match="key_parts"):
        cache_mod.cached("x", {"p": Path("a")}, lambda: 1, tmp_path)


# ------------------------------------------------------------------ profiles
def test_profiles_have_the_same_keys_and_documented_values():
    smoke, paper = prof_mod.get_profile("smoke"), prof_mod.get_profile("paper")
    assert set(smoke) == set(paper)
    assert set(smoke["limits"]) == set(paper["limits"]) >= {"I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X"}
    for t in smoke["limits"]:
        assert set(smoke["limits"][t]) == set(paper["limits"][t]), t
    assert (smoke["backbone"], smoke["image_size"], smoke["steps"], smoke["batch_size"]) == ("efficientnet_lite0", 64, 15, 16)
    assert (paper["backbone"], paper["image_size"], paper["steps"], paper["batch_size"]) == ("resnet18", 224, 100, 64)
    assert smoke["seeds"] == [0] and paper["seeds"] == [0, 1, 2] and smoke["n_aug"] == paper["n_aug"] == 10
    smoke["seeds"].append(5)
    assert prof_mod.get_profile("smoke")["seeds"] == [0]
    with pytest.raises(COFTADInputError, match="smoke"):
        prof_mod.get_profile("fast")
    with pytest.raises(COFTADInputError, match="fig9"):
        prof_mod.table_limits("smoke", "fig9")


def test_make_cell_fills_profile_kwargs_and_test_cap():
    c = prof_mod.make_cell("I", "flowers17", "Daffodil/Tulip", 5, "coftad_np", 0, "smoke", lambda_np=0.0)
    assert c.method_kwargs == {"backbone": "efficientnet_lite0", "image_size": 64, "steps": 15, "batch_size": 16,
                               "device": "auto", "progress": False, "n_aug": 10, "lambda_np": 0.0,
                               "preset": "flowers"}
    assert c.task_args == {"task": "Daffodil/Tulip", "max_test_per_class": 20}
    p = prof_mod.make_cell("I", "flowers17", "Daffodil/Tulip", 5, "ae", 0, "paper")
    assert "n_aug" not in p.method_kwargs and p.task_args == {"task": "Daffodil/Tulip"}
    assert prof_mod.make_cell("V", "aitex", "aitex", 5, "ae", 0, "smoke").method_kwargs["preset"] == "industrial"
    assert prof_mod.make_cell("II", "cifar10c", "cat", 10, "coftad", 0, "smoke", preset="flowers").method_kwargs["preset"] == "flowers"


def test_dataset_root_list_takes_the_first_root_holding_the_dataset(tmp_path):
    raw, prep = tmp_path / "raw", tmp_path / "prep"
    (prep / "semicon_slices").mkdir(parents=True)
    (raw / "flowers17").mkdir(parents=True)
    assert cells_mod.dataset_root([raw, prep], "semicon") == prep / "semicon_slices"
    assert cells_mod.dataset_root([raw, prep], "flowers17") == raw / "flowers17"
    assert cells_mod.dataset_root([raw, prep], "mvtec") == raw / "mvtec_ad"


def test_dataset_root_mapping_and_errors(tmp_path):
    assert cells_mod.dataset_root({"mvtec": tmp_path}, "mvtec") == tmp_path
    with pytest.raises(COFTADInputError, match="aitex"):
        cells_mod.dataset_root({"mvtec": tmp_path}, "aitex")


def test_test_protocol_keys_are_applied_after_loading(tmp_path, fakes, monkeypatch):
    seen = {}

    def load(dataset, root, shots, seed, **args):
        seen[dataset] = args
        return fake_load_task(dataset, root, shots, seed, **args)

    monkeypatch.setattr(cells_mod, "_load_task", load)
    rec = cells_mod.run_cell(_cell(dataset="cifar10c", task_args={"task": "cat", "max_test_per_class": 5,
                                                                  "clean_root": "{DATA_ROOT}/cifar10"}),
                             tmp_path / "data", tmp_path / "cache", "smoke")
    assert (rec["n_test"], rec["n_anomalous"]) == (10, 5)
    # CIFAR-C's loader can subsample while loading: the cap is handed to it too; the token is resolved
    assert seen["cifar10c"] == {"task": "cat", "max_test_normal": 5, "max_test_per_corruption": 5,
                                "clean_root": str(tmp_path / "data" / "cifar10")}
    rec = cells_mod.run_cell(_cell(dataset="semicon", task="semicon",
                                   task_args={"imbalanced": {"n_normal": 6, "n_anomalies": 3}}),
                             tmp_path / "data", tmp_path / "cache", "smoke")
    assert (rec["n_test"], rec["n_anomalous"]) == (9, 3) and seen["semicon"] == {}
    with pytest.raises(COFTADInputError, match="imbalanced"):
        cells_mod.run_cell(_cell(task_args={"imbalanced": {"n": 1}}), tmp_path, tmp_path / "cache", "smoke")


def test_make_cell_leaves_task_out_for_single_task_loaders():
    c = prof_mod.make_cell("V", "aitex", "aitex", 10, "coftad", 0, "smoke")
    assert c.task_args == {"max_test_per_class": 40}


def test_make_cell_applies_the_profiles_method_overrides():
    csi = prof_mod.make_cell("I", "flowers17", "Daffodil/Tulip", 5, "csi", 0, "smoke")
    assert csi.method_kwargs["batch_size"] == prof_mod.PROFILES["smoke"]["method_overrides"]["csi"]["batch_size"]
    assert prof_mod.make_cell("I", "flowers17", "Daffodil/Tulip", 5, "csi", 0, "smoke",
                               batch_size=2).method_kwargs["batch_size"] == 2  # the caller's wins
    assert prof_mod.make_cell("I", "flowers17", "Daffodil/Tulip", 5, "csi", 0, "paper").method_kwargs["batch_size"] == 64


def test_hashed_code_text_drops_only_documentation():
    from coftad_lib.engine.fingerprint import code_text

    src = 'def f(x):  # why\n    """Doc — long."""\n\n    s = "# not a comment"  # a comment\n    return x, s\n'
    # a literal expectation: the same bytes on every Python version (no ast.dump)
    assert code_text(src.encode()) == b'def f(x):\n    s = "# not a comment"\n    return x, s'
    assert code_text(b"def f(:\n") == b"def f(:\n"  # does not parse: hashed as it is


def test_copy_of_the_package_with_an_edited_method_has_another_fingerprint(tmp_path):
    import shutil

    from coftad_lib.engine import fingerprint

    pkg = tmp_path / "coftad_lib"
    shutil.copytree(fingerprint._PACKAGE, pkg, ignore=shutil.ignore_patterns("__pycache__", "data"))
    same = fingerprint.code_fingerprint(pkg)
    (pkg / "paper" / "report.py").write_text("# reporting only\n")
    assert fingerprint.code_fingerprint.__wrapped__(pkg) == same
    ae = pkg / "methods" / "ae.py"
    source = ae.read_text()
    assert '"""' in source and "):\n" in source
    # documentation only: a reworded docstring, comments, blank lines -> the same records
    edited = source.replace('"""', '"""Reworded. ', 1).replace("):\n", "):  # a comment\n\n    # and another\n", 1)
    ae.write_text(edited + "\n\n")
    assert fingerprint.code_fingerprint.__wrapped__(pkg) == same
    ae.write_text(source + "\nCHANGED = 1\n")  # a statement -> another fingerprint
    assert fingerprint.code_fingerprint.__wrapped__(pkg) != same


def test_failed_cells_give_a_failed_status_with_each_cell(tmp_path, fakes, monkeypatch):
    def boom(self, images):
        raise RuntimeError("scoring exploded")

    cells = [_cell(seed=0), _cell(seed=1, dataset="mvtec", task_args={"task": "bottle"})]
    monkeypatch.setattr(FakeDetector, "score_samples",
                        lambda self, x: boom(self, x) if self.seed == 1 else np.arange(len(x), dtype=float))
    df = run_cells(cells, tmp_path, tmp_path / "cache", "smoke", progress=False)
    assert list(df["status"]) == ["ok", "failed"] and "RuntimeError: scoring exploded" in df["message"].iloc[1]
    st = json.loads(record_status(tmp_path, df, notebook="05_x").read_text())
    assert st["status"] == "failed" and st["n_failed"] == 1 and st["n_ok"] == 1
    assert st["failed"][0]["dataset"] == "mvtec" and "exploded" in st["failed"][0]["message"]
    with pytest.raises(RuntimeError, match="exploded"):
        run_cells(cells, tmp_path, tmp_path / "cache", "smoke", progress=False, strict=True)


def test_data_roots_put_the_environment_root_after_the_given_one(monkeypatch):
    monkeypatch.delenv("COFTAD_DATA_ROOT", raising=False)
    assert cells_mod.data_roots("../data", "../prep") == ["../data", "../prep"]
    monkeypatch.setenv("COFTAD_DATA_ROOT", "/mnt/datasets")
    assert cells_mod.data_roots("../data", "../prep") == ["../data", "/mnt/datasets", "../prep"]


def test_paper_dry_keeps_the_paper_protocol_and_shrinks_compute():
    paper, dry = prof_mod.get_profile("paper"), prof_mod.get_profile("paper-dry")
    assert (dry["image_size"], dry["steps"], dry["seeds"], dry["backbone"]) == (32, 1, [0], "efficientnet_lite0")
    for table, lim in paper["limits"].items():
        for key in ("tasks", "shots", "max_test_per_class"):
            assert dry["limits"][table][key] == lim[key], (table, key)
    assert dry["limits"]["IX"]["n_normal"] == 500 and dry["batch_size"] == paper["batch_size"]


def test_versions_report_the_thread_count_of_each_call():
    import torch

    from coftad_lib.versions import versions

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = versions("cpu")["device"]
        torch.set_num_threads(2)
        assert versions("cpu")["device"] != one and one.endswith("1 threads)")  # not a value cached earlier
    finally:
        torch.set_num_threads(threads)
