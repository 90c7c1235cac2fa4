"""What the notebooks show around their tables (coftad_lib/paper/lesson.py) and the books the run
context keeps for them (RunContext.from_params / example / show_table / figure / claims / finish)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from coftad_lib.errors import COFTADInputError
from coftad_lib.paper import lesson
from coftad_lib.paper.context import RunContext, run_context

PARAMS = {"PROFILE": "smoke", "SEEDS": [0], "DATA_ROOT": "data", "PREP_DIR": "prep", "OUT_DIR": "out",
          "NOTEBOOK": "04_table_I_flowers17", "OVERRIDES": {}}


def _text(shown) -> str:
    return getattr(shown, "data", shown)


def _run(tmp_path: Path, **params) -> RunContext:
    return RunContext.from_params({**PARAMS, "DATA_ROOT": str(tmp_path / "data"), "PREP_DIR": str(tmp_path / "prep"),
                                   "OUT_DIR": str(tmp_path / "out"), **params})


# ------------------------------------------------------------------ the context from the parameters

def test_from_params_is_run_context_of_the_parameters_cell():
    ns = {**PARAMS, "EXECUTOR": "cache", "EXECUTOR_OPTIONS": {"pack": 2}, "display": print, "__name__": "x"}
    run = RunContext.from_params(ns)
    assert run == run_context("smoke", [0], "data", "prep", "out", "04_table_I_flowers17", {}, "cache", {"pack": 2})
    assert RunContext.from_params(PARAMS).executor == "local"  # a notebook without EXECUTOR runs here
    with pytest.raises(COFTADInputError, match="OUT_DIR"):
        RunContext.from_params({k: v for k, v in PARAMS.items() if k != "OUT_DIR"})


def test_the_books_are_the_notebooks_own():
    import dataclasses

    run = RunContext.from_params(PARAMS)
    run.books.tables["I"] = None
    assert not dataclasses.replace(run, notebook="05").books.tables  # the runner's copy per notebook starts empty
    assert dataclasses.replace(run) == run  # the books are not a setting


# ------------------------------------------------------------------ the books: tables, figures, status

def _frame(status: str = "ok") -> pd.DataFrame:
    return pd.DataFrame([{"table": "I", "setting": "5-shot", "dataset": "flowers17", "task": "Daffodil/Tulip",
                          "shots": 5, "method": m, "detector": m, "kind": "score", "seed": 0,
                          "auroc": 0.8 if status == "ok" else np.nan, "status": status,
                          "message": "" if status == "ok" else "/abs/data/flowers17: not found", "profile": "smoke",
                          "backbone": "efficientnet_lite0", "fit_seconds": 1.0, "score_seconds": 0.1,
                          "cached": False, "key": f"k{m}"} for m in ("coftad", "coftad_np")])


def test_show_table_figure_and_finish_write_and_record(tmp_path, capsys):
    run = _run(tmp_path)
    shown = run.show_table("I", _frame())
    assert "COFT-AD" in _text(shown) and (tmp_path / "out" / "tables" / "table_I.md").is_file()
    fig = Figure()
    fig.add_subplot().plot([0, 1])
    assert run.figure(fig, "fig_x") is fig
    assert (tmp_path / "out" / "figures" / "fig_x.png").is_file() and (tmp_path / "out" / "figures" / "fig_x.pdf").is_file()
    run.show_table("I", _frame())  # a cell run twice is recorded once
    run.finish(note="hello")
    st = json.loads((tmp_path / "out" / "status" / "04_table_I_flowers17.json").read_text())
    assert (st["status"], st["tables"], st["figures"], st["n_cells"], st["note"]) == ("ok", ["I"], ["fig_x"], 2, "hello")
    assert "04_table_I_flowers17: ok; 2 of 2 cells ok; wrote Table I, fig_x" in capsys.readouterr().out


def test_finish_names_missing_data_and_takes_extra_results(tmp_path, capsys):
    run = _run(tmp_path, NOTEBOOK="18_study")
    run.finish(_frame("missing"))
    st = json.loads((tmp_path / "out" / "status" / "18_study.json").read_text())
    assert st["status"] == "missing" and st["missing"][0]["dataset"] == "flowers17" and st["tables"] == []
    assert "missing: flowers17" in capsys.readouterr().out
    _run(tmp_path, NOTEBOOK="17_own").finish()  # nothing shown: still a status
    assert capsys.readouterr().out == "17_own: ok\n"
    assert json.loads((tmp_path / "out" / "status" / "17_own.json").read_text())["status"] == "ok"


def test_detector_settings_follow_the_profile_and_its_overrides(tmp_path):
    run = _run(tmp_path, OVERRIDES={"steps": 3})
    assert run.detector_settings() == {"backbone": "efficientnet_lite0", "image_size": 64, "steps": 3,
                                       "batch_size": 16, "device": "auto"}


# ------------------------------------------------------------------ the one fit

@pytest.fixture()
def flowers_data(tmp_path, flowers_root) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    (data / "flowers17").symlink_to(flowers_root, target_is_directory=True)
    return data


def test_example_is_the_tables_own_cell_and_costs_no_fit_from_the_cache(tmp_path, flowers_data):
    run = _run(tmp_path, EXECUTOR="cache")  # computes nothing: an uncached cell is pending
    one = run.example("I")
    assert one.cell in run.cells("I") and one.cell.method == "coftad" and one.cell.seed == 0
    assert one.cell.task == run.tasks("I")[0] and one.record["status"] == "pending" and not one.ok
    assert "pending" in _text(one.fit_summary()) and "not computed yet" in _text(one.fit_figure())
    fig = one.data_figure()  # the data is here: shots and test images of the whole test set
    title = fig.texts[0].get_text()
    assert "Tulip" in title and "test set: 70 normal" in title and "at most 20 of each" in title
    assert len(one.task.test) == 30 and one.task.train_ids == one._load(capped=False).train_ids  # the fit's: capped
    assert not (tmp_path / "out" / "cache" / "cells").exists()  # nothing computed, nothing written


def test_example_without_data_says_so_without_machine_folders(tmp_path):
    one = _run(tmp_path).example("I")  # local executor, no Flowers17: missing, no fit tried
    assert one.record["status"] == "missing" and one.cell.task == "Daffodil/Tulip"
    note = _text(one.data_figure())
    assert "No data to show: flowers17 is not here" in note and str(tmp_path) not in note
    assert str(tmp_path) not in _text(one.fit_summary())


def _ok_example() -> lesson.Example:
    labels = [0] * 6 + [1] * 6
    kinds = ["clean"] * 6 + ["noise"] * 3 + ["blur"] * 3
    scores = [0.1, 0.2, 0.3, 0.2, 0.1, 0.4, 0.9, 0.8, 0.7, 0.35, 0.15, 0.5]
    from coftad_lib.metrics import auroc

    record = {"status": "ok", "scores": scores, "labels": labels, "test_kinds": kinds, "cached": True,
              "test_ids": [str(i) for i in range(12)], "auroc": auroc(scores, labels)}
    return lesson.Example("II", None, record, [])


def test_fit_summary_gives_auroc_overall_and_per_kind():
    one = _ok_example()
    per = one.per_kind().set_index("anomalies")
    assert per.loc["noise", "AUROC (%)"] == 100.0 and per.loc["blur", "test images"] == 3
    text = _text(one.fit_summary())
    assert f"AUROC {per.loc['all', 'AUROC (%)']:.1f} % over 6 normal and 6 anomalous" in text and "| blur | 3 |" in text
    fig = one.fit_figure()
    assert isinstance(fig, Figure) and "AUROC" in fig.axes[0].get_title()


# ------------------------------------------------------------------ the data view's picks

def test_cifar_c_shows_one_image_under_every_corruption_clean_first():
    ids = ["airplane/a.png", "airplane/b.png"] + [f"{k}/4/airplane/{s}.png" for k in ("noise", "blur") for s in "ab"]
    labels = np.array([0, 0, 1, 1, 1, 1])
    kinds = ["clean", "clean", "noise", "noise", "blur", "blur"]
    picks, same = lesson.anomaly_picks(labels, kinds, ids)
    assert same and [ids[i] for i in picks] == ["airplane/a.png", "noise/4/airplane/a.png", "blur/4/airplane/a.png"]


def test_other_anomalies_take_turns_by_kind():
    kinds = ["good"] * 2 + ["crack"] * 5 + ["hole"] * 2
    labels = np.array([0, 0] + [1] * 7)
    ids = [f"{k}/{i}.png" for i, k in enumerate(kinds)]
    picks, same = lesson.anomaly_picks(labels, kinds, ids, n=4)
    assert not same and [kinds[i] for i in picks] == ["crack", "hole", "crack", "hole"]
    assert lesson.spread(range(10), 3) == [0, 4, 9] and lesson.spread([], 3) == []
    assert lesson.source_id("noise/4/x/y.png", "noise") == "x/y.png" and lesson.source_id("a/b.png", "c") == "a/b.png"


# ------------------------------------------------------------------ what to look at

def _table_i_csv(folder: Path, gain: float) -> None:
    rows = [{"setting": "5-shot", "method": m, "task": t, "seed": s, "status": "ok", "profile": "smoke",
             "auroc_pct": 70 + (gain if m == "coftad_np" else 0) + s + (1 if t == "B/C" else 0)}
            for m in ("coftad", "coftad_np") for t in ("A/B", "B/C") for s in (0, 1, 2)]
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(folder / "table_I.csv", index=False)


def test_claims_are_judged_on_this_runs_tables(tmp_path):
    assert "No table of this run" in lesson.claims_markdown(tmp_path / "none", ("I",))
    _table_i_csv(tmp_path / "tables", gain=5.0)
    text = lesson.claims_markdown(tmp_path / "tables", ("I",))
    line = next(x for x in text.splitlines() if x.startswith("| Negative pairs improve COFT-AD on Flowers17"))
    assert "+2.15 (80.05 vs 77.90)" in line and "**holds**: COFT-AD (w/ np) 76.5 vs COFT-AD (w/o np) 71.5" in line
    assert "*not run*" in text  # rivals this run has no rows for
    assert "holds no claim" in lesson.claims_markdown(tmp_path / "tables", ("fig9",))
    assert _text(_run(tmp_path, OUT_DIR=str(tmp_path)).claims("fig5")) == text  # Fig. 5 reads Table I's claims


def test_ranking_and_aurocs_read_the_numbers():
    table = pd.DataFrame({"all": [90.0, 95.0], "crack": [80.0, 99.0], "hole": [99.0, 91.0]},
                         index=pd.Index(["AE", "COFT-AD (w/o np)"], name="method"))
    text = _text(lesson.ranking_markdown(table))
    assert text.splitlines() == ["- **COFT-AD (w/o np)**: 95.0 % over all anomalies; hardest kind: hole (91.0 %)",
                                 "- **AE**: 90.0 % over all anomalies; hardest kind: crack (80.0 %)"]
    shown = lesson.aurocs(_frame())
    assert list(shown["row"]) == ["COFT-AD (w/o np)", "COFT-AD (w/ np)"] and list(shown["AUROC (%)"]) == [80.0, 80.0]


def test_own_data_without_images_uses_the_generated_demo(tmp_path):
    run = _run(tmp_path)
    source, task = lesson.own_data(run, "", "", 3)
    assert Path(source).is_dir() and task.shots == 3 and task.test_labels.sum() > 0
    assert isinstance(lesson.task_figure(task, n=3), Figure)
