"""Paper values (Tables I-X) and the results tables written beside them."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pandas as pd
import pytest

from coftad_lib.errors import COFTADInputError
from coftad_lib.paper.paper_values import (
    ABLATION_ROWS,
    DISPLAY_NAMES,
    TABLES,
    is_quoted,
    paper_table,
    paper_value,
    paper_values,
)
from coftad_lib.paper.results_tables import differs, write_table


# ------------------------------------------------------------------ paper values
def test_every_table_is_present_with_its_shape():
    df = paper_values()
    assert set(df["table"]) == set(TABLES)
    assert list(df.columns) == ["table", "setting", "method", "task", "value", "note"]
    assert len(paper_table("I")) == 8 * 8
    assert sorted(set(paper_table("III")["task"])) == sorted([f"superclass_{i}" for i in range(20)] + ["avg"])
    iv = paper_table("IV")
    assert set(iv["setting"]) == {"2-shot", "5-shot", "10-shot"}
    assert len(iv[(iv["setting"] == "5-shot") & (iv["method"] == "coftad")]) == 16
    vi = paper_table("VI")
    assert set(vi["method"]) == {f"ablation:{r}" for r in ABLATION_ROWS} and set(vi["setting"]) == {"ResNet18", "ResNet50"}
    assert set(df["method"]) <= set(DISPLAY_NAMES)
    assert not df.duplicated(["table", "setting", "method", "task"]).any()


@pytest.mark.parametrize(("table", "setting", "method", "task", "value"), [
    ("II", "10-shot", "coftad_np", "avg", 74.56),
    ("II", "10-shot", "cutpaste", "airplane", 58.62),
    ("VI", "ResNet18", "ablation:pretrained_only", "avg", 67.32),
    ("VI", "ResNet50", "ablation:contrastive+cipp+np", "avg", 76.69),
    ("I", "5-shot", "coftad_np", "Cowslip/Buttercup", 98.13),
    ("I", "5-shot", "cflow", "Crocus/Bluebell", 83.73),
    ("III", "10-shot", "coftad_np", "superclass_19", 78.13),
    ("IV", "2-shot", "coftad_np", "bottle", 90.95),
    ("IV", "10-shot", "cflow", "bottle", 99.50),
    ("IV", "5-shot", "tdg", "avg", 77.90),
    ("V", "50-shot", "deepsvdd", "aitex", 80.07),
    ("VII", "10-shot", "coftad_np", "semicon", 76.29),
    ("VIII", "knn", "coftad", "Daffodil/Tulip", 60.55),
    ("IX", "5 anomalies", "coftad", "semicon", 88.36),
    ("X", "N_A=50", "coftad_np", "Daffodil/Tulip", 77.70),
])
def test_spot_values(table, setting, method, task, value):
    assert paper_value(table, setting, method, task) == pytest.approx(value)


def test_garbled_cells_are_empty_with_a_note():
    iv = paper_table("IV")
    garbled = iv[(iv["setting"] == "10-shot") & iv["method"].isin(["cutpaste", "coftad_np"])]
    assert len(garbled) == 32 and garbled["value"].isna().all() and garbled["note"].str.contains("garbled").all()
    viii = paper_table("VIII")
    np_row = viii[viii["method"] == "coftad_np"]
    assert np_row["value"].isna().all() and np_row["note"].str.contains("garbled").all()
    ix = paper_table("IX")
    assert ix.loc[ix["method"].str.startswith("unlabeled"), "note"].str.contains("ambiguous").all()
    pansy = paper_table("I")
    assert pansy.loc[pansy["task"] == "Pansy/Windflower", "note"].str.contains("Windflower").all()
    assert is_quoted("IV", "differnet") and not is_quoted("IV", "coftad")


def test_averages_match_their_rows_unless_noted():
    """Catches transcription typos: each avg equals the mean of its row, or a note says it does not."""
    df = paper_values()
    checked = 0
    for (table, setting, method), g in df.groupby(["table", "setting", "method"]):
        vals = g[g["task"] != "avg"]["value"]
        avg = g[g["task"] == "avg"]
        if avg.empty or len(vals) < 2 or vals.isna().any():
            continue
        checked += 1
        mean = float(vals.mean())
        if "differs from the mean" in avg["note"].iloc[0]:
            assert abs(mean - avg["value"].iloc[0]) >= 0.015
        else:
            assert mean == pytest.approx(avg["value"].iloc[0], abs=0.015), (table, setting, method)
    assert checked >= 30


def test_unknown_table_is_refused():
    with pytest.raises(COFTADInputError, match="XI"):
        paper_table("XI")


# ------------------------------------------------------------------ write_table
def _frame(values: dict[tuple[str, str], list[float | None]], setting: str = "10-shot") -> pd.DataFrame:
    rows = []
    for (method, task), aurocs in values.items():
        for seed, a in enumerate(aurocs):
            rows.append({"table": "II", "setting": setting, "dataset": "cifar10c", "task": task, "shots": 10,
                         "method": method, "seed": seed, "auroc": np.nan if a is None else a,
                         "status": "missing" if a is None else "ok", "message": "" if a is not None else "get CIFAR",
                         "profile": "smoke", "backbone": "efficientnet_lite0", "torch": "2.x"})
    return pd.DataFrame(rows)


def test_markdown_cell_mean_std_and_difference(tmp_path):
    vals = {("coftad_np", "airplane"): [0.70, 0.72, 0.75], ("coftad_np", "cat"): [0.80, 0.81, 0.79],
            ("cutpaste", "airplane"): [None], ("pretrained", "airplane"): [0.6, 0.6, 0.6]}
    paths = write_table(_frame(vals), "II", out_dir=tmp_path)
    md = paths["md"].read_text()
    pct = [70.0, 72.0, 75.0]
    mean, std = statistics.mean(pct), statistics.stdev(pct)
    diff = mean - 72.23
    assert f"{mean:.1f} ± {std:.1f} (paper 72.23, {'+' if diff >= 0 else '-'}{abs(diff):.1f})" in md
    # avg column: per-seed mean over the two tasks, then mean/std over seeds; paper: mean of same tasks
    per_seed = [(a + c) / 2 for a, c in zip(pct, [80.0, 81.0, 79.0], strict=True)]
    amean, astd = statistics.mean(per_seed), statistics.stdev(per_seed)
    pavg = (72.23 + 77.45) / 2
    adiff = amean - pavg
    assert f"{amean:.1f} ± {astd:.1f} (paper {pavg:.2f}, {'+' if adiff >= 0 else '-'}{abs(adiff):.1f})" in md
    assert "missing data (paper 58.62)" in md and "not run (paper 75.57)" in md
    assert "| ImageNet Pretrained | 60.0 (paper n/a)" not in md  # 3 seeds: std shown
    assert "60.0 ± 0.0 (paper n/a)" in md
    # rows in the paper's order, our extra method last
    order = [md.index(f"| {n} |") for n in ("AE", "COFT-AD (w/o np)", "CutPaste", "COFT-AD (w/ np)", "ImageNet Pretrained")]
    assert order == sorted(order)

    summ = pd.read_csv(paths["summary"])
    row = summ[(summ["method"] == "coftad_np") & (summ["task"] == "airplane")].iloc[0]
    assert row["mean"] == pytest.approx(mean, abs=1e-4) and row["std"] == pytest.approx(std, abs=1e-4)
    assert bool(row["differs"]) == (abs(diff) > max(2 * std, 1.0))
    cat = summ[(summ["method"] == "coftad_np") & (summ["task"] == "cat")].iloc[0]
    assert bool(cat["differs"])  # 80.0 vs 77.45 with std 1.0: |2.55| > 2.0

    per_seed_csv = pd.read_csv(paths["csv"])
    assert len(per_seed_csv) == 10 and {"profile", "backbone", "torch", "seed", "paper"} <= set(per_seed_csv.columns)
    assert per_seed_csv["auroc_pct"].dropna().round(4).tolist()[:3] == [70.0, 72.0, 75.0]


def test_tables_are_byte_identical_on_rewrite(tmp_path):
    df = _frame({("coftad", "cat"): [0.7, 0.71], ("ae", "cat"): [0.55, 0.5]})
    a = {k: p.read_bytes() for k, p in write_table(df, "II", out_dir=tmp_path / "a").items()}
    b = {k: p.read_bytes() for k, p in write_table(df.sample(frac=1, random_state=1), "II", out_dir=tmp_path / "b").items()}
    assert a == b


def test_quoted_rows_and_setting_columns(tmp_path):
    df = _frame({("coftad", "bottle"): [0.9], ("coftad", "carpet"): [None]}, setting="5-shot")
    md = write_table(df, "IV", out_dir=tmp_path)["md"].read_text()
    assert "| TDG* |" in md and "quoted from [4], not run (paper 77.90)" in md
    assert "incomplete (paper" in md  # avg over bottle + carpet with carpet missing
    x = _frame({("coftad_np", "Daffodil/Tulip"): [0.75]}, setting="N_A=20")
    mdx = write_table(x, "X", out_dir=tmp_path, columns=("setting",))["md"].read_text()
    assert "| method | N_A=20 |" in mdx and "75.0 (paper 76.15, -1.2)" in mdx
    vi = _frame({("ablation:pretrained_only", "avg"): [0.70]}, setting="efficientnet_lite0")
    mdvi = write_table(vi, "VI", out_dir=tmp_path, columns=("setting",),
                       setting_map={"efficientnet_lite0": "ResNet18"})["md"].read_text()
    assert "70.0 (paper 67.32, +2.7)" in mdvi and "ours `efficientnet_lite0` vs paper `ResNet18`" in mdvi


def test_write_table_rejects_bad_input(tmp_path):
    with pytest.raises(COFTADInputError, match="auroc"):
        write_table(pd.DataFrame({"method": ["a"]}), "II", out_dir=tmp_path)
    with pytest.raises(COFTADInputError, match="columns"):
        write_table(_frame({("coftad", "cat"): [0.7]}), "II", out_dir=tmp_path, columns=("seed",))


def test_differs_rule():
    assert differs(1.5, 0.0) and not differs(0.9, 0.0)
    assert not differs(3.0, 2.0) and differs(4.1, 2.0)
    assert not differs(math.nan, 1.0)


def test_notes_are_shown_only_for_displayed_cells(tmp_path):
    pansy = _frame({("coftad", "Pansy/Windflower"): [0.8]}, setting="5-shot")
    assert "Pansy assumed" in write_table(pansy, "I", out_dir=tmp_path / "a")["md"].read_text()
    daffodil = _frame({("coftad", "Daffodil/Tulip"): [0.8]}, setting="5-shot")
    assert "Pansy assumed" not in write_table(daffodil, "I", out_dir=tmp_path / "b")["md"].read_text()


def test_written_tables_name_no_machine_folder(tmp_path):
    """A missing dataset's message names folders relative to DATA_ROOT / PREP_DIR in the committed files."""
    from coftad_lib.paper import run_context

    data, prep = tmp_path / "machine" / "data", tmp_path / "machine" / "prep"
    data.mkdir(parents=True)
    prep.mkdir()
    run = run_context("smoke", [0], str(data), str(prep), str(tmp_path / "out"), "t", {}, "local", {})
    df = pd.DataFrame([{"setting": "5-shot", "method": "coftad", "task": "bottle", "seed": 0, "auroc": math.nan,
                        "status": "missing", "dataset": "mvtec", "cached": False, "key": "",
                        "message": f"{data}/mvtec_ad/cable: MVTec AD category 'cable' not found under {data}/mvtec_ad"}])
    md = run.write("IV", df).read_text()
    csv = (tmp_path / "out" / "tables" / "table_IV.csv").read_text()
    assert str(tmp_path) not in md and str(tmp_path) not in csv
    assert "mvtec_ad/cable: MVTec AD category 'cable' not found under mvtec_ad" in md
    assert df["message"].iloc[0].startswith(str(data))  # the notebook's own frame is left as it was
