"""``python -m coftad_lib``: fit, score and evaluate end to end on a generated folder; exit codes; bad input."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import FAST, fit_patchcore, run_cli, save_png, write_parts
from PIL import Image

from coftad_lib.cli import EXIT_BAD_INPUT, EXIT_MISSING, EXIT_OK

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """train/ (5 normal), test/good/ (4), test/red_square/ (4): stripe textures, 40 px; plus a hidden file."""
    root = write_parts(tmp_path_factory.mktemp("cli") / "parts")
    (root / "train" / "._n0.png").write_bytes(b"macOS resource fork, not an image")  # hidden: ignored
    return root


@pytest.fixture(scope="module")
def model(data, tmp_path_factory) -> Path:
    """A PatchCore model fitted on ``data`` through the CLI."""
    return fit_patchcore(data, tmp_path_factory.mktemp("model") / "pc")


def test_fit_saves_model_and_threshold(model):
    assert (model / "config.json").is_file() and (model / "weights.safetensors").is_file()
    from coftad_lib.persistence import read_config

    meta = read_config(model)
    assert meta["method"] == "patchcore" and meta["threshold"] is not None
    assert meta["threshold_info"]["fpr"] == 0.05 and len(meta["extra"]["train_images"]) == 5


def test_score_ranks_flags_and_writes_csv_and_maps(model, data, tmp_path, capsys):
    code, out, _ = run_cli(["score", model, data / "test", "--csv", tmp_path / "s.csv", "--maps", tmp_path / "maps",
                            "--top", "0", "--quiet", "--device", "cpu"], capsys)
    assert code == EXIT_OK
    rows = list(csv.DictReader(open(tmp_path / "s.csv")))
    assert len(rows) == 8 and {"path", "score", "flag"} <= set(rows[0])
    thr = float(rows[0]["threshold"])
    assert all(int(r["flag"]) == (float(r["score"]) > thr) for r in rows)
    shown = [float(line.split()[1]) for line in out.splitlines()[1:9]]
    assert shown == sorted(shown, reverse=True) and len(shown) == 8  # most anomalous first
    assert len(list((tmp_path / "maps").glob("*_map.png"))) == 8


def test_evaluate_folder_writes_report(data, tmp_path, capsys):
    code, out, _ = run_cli(["evaluate", data, "--out", tmp_path / "rep", "--methods", "pretrained,patchcore", *FAST], capsys)
    assert code == EXIT_OK, out
    rep = tmp_path / "rep"
    for name in ("report.md", "scores.csv", "roc.png", "score_distributions.png", "most_anomalous.png",
                 "least_anomalous.png"):
        assert (rep / name).is_file(), name
    text = (rep / "report.md").read_text()
    assert "| method | all | red_square |" in text
    assert "| PatchCore |" in text and "| ImageNet Pretrained |" in text
    rows = list(csv.DictReader(open(rep / "scores.csv")))
    assert len(rows) == 8 and {"pretrained", "patchcore", "label", "kind"} <= set(rows[0])
    # paths relative to the data folder: the CSV does not carry this machine's folders
    assert all(not Path(r["path"]).is_absolute() and (Path(data) / r["path"]).is_file() for r in rows)
    assert str(tmp_path) not in (rep / "scores.csv").read_text()


def test_evaluate_csv_relative_to_csv(data, tmp_path, capsys):
    lines = ["path,label,kind"] + [f"{p.relative_to(data)},{int(p.parent.name != 'good')},{p.parent.name}"
                                   for p in sorted((data / "test").rglob("*.png"))]
    lines += [f"{p.relative_to(data)},0,good" for p in sorted((data / "train").glob("n*.png"))]
    (data / "labels.csv").write_text("\n".join(lines) + "\n")
    code, out, err = run_cli(["evaluate", data / "labels.csv", "--shots", "3", "--out", tmp_path / "r",
                              "--methods", "patchcore", *FAST], capsys)
    (data / "labels.csv").unlink()
    assert code == EXIT_OK, err
    assert "3 shots" in out and "| PatchCore |" in (tmp_path / "r" / "report.md").read_text()


@pytest.mark.parametrize("rows, message", [
    (["test/good/t0.png,0", "test/good/missing.png,1"], "line 3: image .*missing.png not found"),
    (["test/good/t0.png,0", "test/red_square/t4.png,2"], "line 3: label '2'"),
    (["test/good/t0.png,normal"], "line 2: label 'normal'"),
])
def test_bad_csv_rows_named(data, tmp_path, capsys, rows, message):
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("\n".join(["path,label", *[f"{data}/{r}" for r in rows]]) + "\n")
    code, _, err = run_cli(["evaluate", csv_path, "--out", tmp_path / "r", *FAST], capsys)
    assert code == EXIT_BAD_INPUT
    assert pytest.importorskip("re").search(message, err), err


def test_unreadable_images_listed_or_skipped(data, tmp_path, capsys):
    normal = tmp_path / "normal"
    for p in (data / "train").glob("n*.png"):
        (normal / p.name).parent.mkdir(exist_ok=True)
        (normal / p.name).write_bytes(p.read_bytes())
    (normal / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    code, _, err = run_cli(["fit", normal, "--out", tmp_path / "m", "--method", "patchcore", *FAST], capsys)
    assert code == EXIT_BAD_INPUT and "broken.png" in err and "--skip-bad" in err
    code, _, err = run_cli(["fit", normal, "--out", tmp_path / "m", "--method", "patchcore", "--skip-bad", *FAST], capsys)
    assert code == EXIT_OK and "skipped 1 unreadable" in err


def test_empty_test_folder_is_named(data, tmp_path, capsys):
    root = tmp_path / "d"
    for p in (data / "train").glob("n*.png"):
        save_png(__import__("numpy").asarray(Image.open(p)), root / "train" / p.name)
    (root / "test").mkdir()
    code, _, err = run_cli(["evaluate", root, "--out", tmp_path / "r", *FAST], capsys)
    assert code == EXIT_BAD_INPUT and "test folder is empty" in err


def test_missing_inputs_exit_3(model, tmp_path, capsys):
    code, _, err = run_cli(["evaluate", tmp_path / "nowhere", *FAST], capsys)
    assert code == EXIT_MISSING and "nowhere" in err
    code, _, err = run_cli(["score", tmp_path / "no_model", tmp_path, "--quiet"], capsys)
    assert code == EXIT_MISSING and "no_model" in err


def test_corrupt_model_file_exit_2(model, data, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_bytes((model / "config.json").read_bytes())
    (bad / "weights.safetensors").write_bytes(b"garbage")
    code, _, err = run_cli(["score", bad, data / "test", "--quiet"], capsys)
    assert code == EXIT_BAD_INPUT and "weights.safetensors: corrupt" in err


def test_maps_need_a_map_method(data, tmp_path, capsys):
    out = tmp_path / "pre"
    assert run_cli(["fit", data / "train", "--out", out, "--method", "pretrained", *FAST], capsys)[0] == EXIT_OK
    code, _, err = run_cli(["score", out, data / "test", "--maps", tmp_path / "m", "--quiet"], capsys)
    assert code == EXIT_BAD_INPUT and "no anomaly maps" in err and "patchcore" in err


def test_bad_options_exit_2(data, tmp_path, capsys):
    assert run_cli(["fit", data / "train", "--out", tmp_path / "m", "--method", "gan"], capsys)[0] == EXIT_BAD_INPUT
    code, _, err = run_cli(["evaluate", data, "--methods", "coftad,tdg", *FAST], capsys)
    assert code == EXIT_BAD_INPUT and "quoted" in err  # before any fit
    assert run_cli([], capsys)[0] == EXIT_BAD_INPUT


def test_help_documents_exit_codes():
    proc = subprocess.run([sys.executable, "-m", "coftad_lib", "fit", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0
    assert "exit codes" in proc.stdout and re.search(r"\b3 +missing", proc.stdout)
    assert re.search(r"\b130 +interrupted", proc.stdout)


def test_make_lab_installs_the_extra_and_opens_notebooks():
    """``make -n lab`` (prints, runs nothing): the lab extra into .venv, JupyterLab on notebooks/ from .venv."""
    import shutil

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run(["make", "-n", "lab"], cwd=repo, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert 'pip install -e ".[test,lab]"' in proc.stdout
    assert ".venv/bin/python -m jupyterlab" in proc.stdout and "default_url=/lab/tree/notebooks" in proc.stdout


def test_fit_on_a_folder_with_one_image(data, tmp_path, capsys):
    one = tmp_path / "one"
    one.mkdir()
    (one / "n0.png").write_bytes((data / "train" / "n0.png").read_bytes())
    code, _, err = run_cli(["fit", one, "--out", tmp_path / "m", "--method", "pretrained", *FAST], capsys)
    assert code == EXIT_OK and "one normal image" in err


def test_every_registry_method_through_evaluate(data, tmp_path, capsys):
    from coftad_lib.methods.registry import METHODS

    code, _, err = run_cli(["evaluate", data, "--methods", "all", "--out", tmp_path / "r", *FAST], capsys)
    assert code == EXIT_OK, err
    rows = list(csv.DictReader(open(tmp_path / "r" / "scores.csv")))
    assert set(METHODS) <= set(rows[0])


def test_fit_and_score_a_method_without_leave_one_out(data, tmp_path, capsys):
    """The AE has no cheap leave-one-out: its threshold comes from augmented copies (said in a note)."""
    code, out, err = run_cli(["fit", data / "train", "--out", tmp_path / "ae", "--method", "ae", *FAST], capsys)
    assert code == EXIT_OK and "augmented" in out + err
    assert run_cli(["score", tmp_path / "ae", data / "test", "--quiet", "--device", "cpu"], capsys)[0] == EXIT_OK


# ----------------------------------------------------------------- labelled data as users arrange it

def test_labels_csv_split_column_and_junk_folders(data, tmp_path):
    from coftad_lib.datasets.labelled import find_user_images, load_labelled

    junk = data / "train" / "__MACOSX" / "n9.png"
    junk.parent.mkdir(exist_ok=True)
    junk.write_bytes((data / "train" / "n1.png").read_bytes())
    assert junk not in find_user_images(data / "train")
    junk.unlink()
    junk.parent.rmdir()
    rows = ["path,label,kind,split"] + [f"{data}/train/n{i}.png,0,good,train" for i in range(3)]
    rows += [f"{p},{int(p.parent.name != 'good')},{p.parent.name},test" for p in sorted((data / "test").rglob("*.png"))]
    (tmp_path / "parts.csv").write_text("\n".join(rows) + "\n")
    task = load_labelled(tmp_path / "parts.csv", progress=False)
    assert task.shots == 3 and len(task.test) == 8 and task.name == "parts"
    (tmp_path / "parts.csv").write_text("\n".join([rows[0], rows[1].replace(",0,good,", ",1,good,")]) + "\n")
    with pytest.raises(Exception, match="line 2: a train row must be normal"):
        load_labelled(tmp_path / "parts.csv", progress=False)


def test_demo_user_data_generated_when_no_bottle(tmp_path):
    from coftad_lib.datasets.labelled import demo_user_data, load_labelled

    folder = demo_user_data(tmp_path / "no_data_here", tmp_path / "demo", n_train=3, max_normal=4, max_per_kind=2)
    task = load_labelled(folder, shots=2, progress=False)
    assert task.shots == 2 and sorted(set(task.test_kinds)) == ["good", "red_square"]


def test_demo_user_data_arranges_bottle_as_a_csv(tmp_path):
    from coftad_lib.datasets.labelled import demo_user_data, load_labelled

    if not (SHARED_DATA / "mvtec_ad" / "bottle").is_dir():
        pytest.skip("../shared/data/mvtec_ad/bottle is absent")
    csv_path = demo_user_data(SHARED_DATA, tmp_path, n_train=4, max_normal=3, max_per_kind=2)
    assert csv_path.suffix == ".csv" and not any(tmp_path.rglob("*.png"))  # images stay where they are
    task = load_labelled(csv_path, shots=4, progress=False)
    assert task.shots == 4 and (task.test_labels == 0).sum() == 3 and (task.test_labels == 1).sum() == 6


def test_report_names_data_inside_its_folder_relative_to_it(tmp_path):
    from coftad_lib.user_report import shown_path

    inside = tmp_path / "rep" / "demo_data" / "bottle.csv"
    assert shown_path(str(inside), tmp_path / "rep") == "demo_data/bottle.csv"  # no machine folder
    outside = tmp_path / "photos"
    assert shown_path(str(outside), tmp_path / "rep") == str(outside)  # the user's own path, as given


def test_evaluate_csv_listing_files_outside_its_folder_keeps_them_relative(data, tmp_path, capsys):
    lists = tmp_path / "lists"
    lists.mkdir()
    rel = [(os.path.relpath(p, lists), int(p.parent.name != "good"), p.parent.name)
           for p in sorted((data / "test").rglob("*.png"))]
    rel += [(os.path.relpath(p, lists), 0, "good") for p in sorted((data / "train").glob("n*.png"))]
    (lists / "labels.csv").write_text("path,label,kind\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rel))
    code, _, err = run_cli(["evaluate", lists / "labels.csv", "--shots", "3", "--out", tmp_path / "r",
                            "--methods", "patchcore", *FAST], capsys)
    assert code == EXIT_OK, err
    rows = list(csv.DictReader(open(tmp_path / "r" / "scores.csv")))
    assert rows and all(r["path"].startswith("../") for r in rows)  # as listed, readable from the CSV's folder
    assert all((lists / r["path"]).is_file() for r in rows)
    assert str(data) not in (tmp_path / "r" / "scores.csv").read_text()
