"""REPORT.md opens with the claims register, then the setting and how much the compute moves the answer;
every table's Markdown opens with the setting, read from the cell records."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from coftad_lib.paper.claims import CLAIMS
from coftad_lib.paper.compute_moves import compute_section
from coftad_lib.paper.paper_values import TABLES
from coftad_lib.paper.report import write_report
from coftad_lib.paper.results_tables import write_table

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "results" / "tables"


def _record(cells: Path, key: str, dataset: str, task: str, method: str, seed: int, batch: int, info: dict,
            n_test: int = 610, n_anomalous: int = 110) -> None:
    cells.mkdir(parents=True, exist_ok=True)
    rec = {"key": key, "status": "ok", "dataset": dataset, "task": task, "method": method, "seed": seed,
           "profile": "protocol-cpu", "n_test": n_test, "n_anomalous": n_anomalous, "task_info": info,
           "method_kwargs": {"backbone": "efficientnet_lite0", "image_size": 128, "steps": 32, "batch_size": batch,
                             "n_aug": 10}, "versions": {"device": "cpu (test)"}, "scores": [1.0, 2.0]}
    (cells / f"{key}.json").write_text(json.dumps(rec))


def test_a_table_markdown_opens_with_the_setting_read_from_its_records(tmp_path):
    out = tmp_path / "results"
    semicon = {"normal_available": 578, "defect_available": 430}
    rows = []
    for seed in (0, 1):
        for method, batch in (("coftad", 16), ("rotnet", 8)):
            key = f"k{seed}{method}"
            _record(out / "cache" / "cells", key, "semicon", "semicon", method, seed, batch, semicon)
            rows.append({"setting": "10-shot", "method": method, "task": "semicon", "seed": seed, "auroc": 0.7,
                         "status": "ok", "dataset": "semicon", "profile": "protocol-cpu",
                         "backbone": "efficientnet_lite0", "key": key})
    md = write_table(pd.DataFrame(rows), "VII", out / "tables")["md"].read_text()
    lines = md.splitlines()
    assert lines[0].startswith("# Table VII") and lines[2] == "**The setting: what ran here against what the paper ran**"
    assert "| batch | 64 (Sec. IV-C) | 16 (per method: RotNet 8) |" in md
    assert "| image size | not stated | 128 px |" in md and "| seeds | not stated (no spread reported) | 0, 1 |" in md
    assert "| semicon (synthetic stand-in) | 500 normal + 110 defect slices | 500 normal + 110 anomalous |" in md
    assert "**synthetic stand-in**" in md and "578 normal + 430 defect slices" in md  # read from the records
    assert md.index("**The setting") < md.index("| method |")  # on top
    # without records the profile says what ran
    bare = write_table(pd.DataFrame(rows).drop(columns="key"), "VII", tmp_path / "bare" / "tables")["md"].read_text()
    assert "| batch | 64 (Sec. IV-C) | 16 (per method: CSI 4, RotNet 8) |" in bare


def test_the_compute_section_pairs_protocol_cpu_with_each_run(tmp_path):
    tables = tmp_path / "tables"
    tables.mkdir()
    run = "efficientnet_lite0 @ gpu"
    rows = [("VI", s, m, t, seed, "ok", v + seed + i, p)
            for s, p, vals in (("efficientnet_lite0", "protocol-cpu", {"ablation:pretrained_only": 68.0}),
                               (run, "gpu", {"ablation:pretrained_only": 70.0, "ablation:pretrained_only [online f]": 1.0}))
            for m, v in vals.items() for seed in (0, 1, 2) for i, t in enumerate(("airplane", "automobile"))]
    pd.DataFrame(rows, columns=["table", "setting", "method", "task", "seed", "status", "auroc_pct", "profile"]).to_csv(
        tables / "table_VI.csv", index=False)
    lines = compute_section(tables, tmp_path / "no-units")
    assert lines[0] == "## How much the compute moves the answer"
    body = [ln for ln in lines if ln.startswith("| CIFAR")]
    assert body == ["| CIFAR-10-C (Table VI) | pretrained_only | gpu | 69.5 | 71.5 | -2.0 [-2.0, -2.0] | 6 (2 x 3) |"]


@pytest.mark.skipif(not (COMMITTED / "table_I.csv").exists(), reason="no committed tables")
def test_the_report_from_the_committed_tables_opens_with_the_register(tmp_path):
    results = tmp_path / "results"
    (results / "tables").mkdir(parents=True)
    for csv in COMMITTED.glob("*.csv"):
        shutil.copy(csv, results / "tables" / csv.name)
    text = write_report(results).read_text()
    heads = [ln for ln in text.splitlines() if ln.startswith("## ")]
    assert heads[0].startswith("## Does it reproduce? The paper's claims")
    assert heads[1] == "## The setting: what ran here against what the paper ran"
    assert heads.index("## Notebooks") > heads.index(heads[1])
    register = text[text.index(heads[0]):text.index(heads[1])]
    assert all(f"### Table {t}:" in register for t in TABLES)
    rows = [ln for ln in register.splitlines() if ln.startswith("| ") and not ln.startswith("| claim |")]
    assert len(rows) == len(CLAIMS)
    assert all("synthetic stand-in" in ln for ln in rows if "semicon" in ln.lower())
    settings = set(pd.read_csv(results / "tables" / "table_VI.csv")["setting"])
    labels = sorted(s.split(" @ ")[1] for s in settings if " @ " in s)
    table_vi = register[register.index("### Table VI:"):register.index("### Table VII:")]
    assert all(f" {label} |" in table_vi.splitlines()[2] for label in labels)  # a column per paper-compute run
    if labels:
        assert "## How much the compute moves the answer" in heads
    assert "EfficientNet-Lite0" in text and "ResNet18" in text and str(tmp_path) not in text


def test_kernel_section_sets_the_kernel_difference_beside_the_seed_std(tmp_path):
    from coftad_lib.paper.kernel_spread import KERNEL_CSV, kernel_section

    (tmp_path / KERNEL_CSV).parent.mkdir(parents=True)
    pd.DataFrame([{"what": "coftad flowers17/A/B 5-shot seed 1", "native": 0.5, "avx2": 0.51, "diff_pixels": 0.0,
                   "diff_pretrained": 0.0, "first_difference": "step1"}]).to_csv(tmp_path / KERNEL_CSV, index=False)
    tables = tmp_path / "results" / "tables"
    tables.mkdir(parents=True)
    pd.DataFrame([{"setting": "5-shot", "method": "coftad", "task": "A/B", "std": 4.5}]).to_csv(
        tables / "table_I_summary.csv", index=False)
    text = "\n".join(kernel_section(tables, tmp_path))
    assert "| coftad flowers17/A/B 5-shot seed 1 | 50.00 | 51.00 | +1.00 | 4.50 | step1 |" in text
    assert "bit-identical" in text
