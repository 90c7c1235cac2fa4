"""Issue 19's paper-compute runs as their own columns of Tables I and VI, judged apart from the profile."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from coftad_lib.paper import claims, claims_report
from coftad_lib.paper.paper_compute_rows import paper_compute_frame, with_paper_compute
from coftad_lib.paper.specs import get_spec
from coftad_lib.unit_records import read_units

CLASSES = ("airplane", "automobile")


def _units(root: Path, label: str = "gpu-224px") -> None:
    """Unit records as benchmarks/paper_compute.py writes them: start 70, w/o np lower, w/ np higher."""
    (root / label).mkdir(parents=True)
    for seed in (0, 1, 2):
        for i, task in enumerate(CLASSES):
            for config, tuned in (("wo_np", 65.0), ("w_np", 75.0)):
                rec = {"family": "cifar", "task": task, "shots": 10, "seed": seed, "config": config,
                       "dataset": "cifar10c", "profile": label, "auroc_pretrained": 70.0 + i + 0.1 * seed,
                       "auroc_online": tuned - 1.0 + i, "auroc_target": tuned + i + 0.2 * seed,
                       "device": "cuda (test)", "torch": "2.x", "threads": 2}
                (root / label / f"cifar__{task}__k10__s{seed}__{config}.json").write_text(json.dumps(rec))


def _own(seeds=(0, 1, 2)) -> pd.DataFrame:
    """The profile's own Table VI frame (pretrained 68, fine-tuned 64) as run.table would give it."""
    rows = [{"setting": "efficientnet_lite0", "method": f"ablation:{m}", "task": t, "seed": s,
             "auroc": v / 100, "status": "ok", "message": "", "key": "k", "cached": True, "profile": "protocol-cpu"}
            for s in seeds for t in CLASSES for m, v in (("pretrained_only", 68.0), ("contrastive+cipp", 64.0),
                                                          ("contrastive+cipp+np", 66.0))]
    from coftad_lib.paper.table_output import with_task_average

    return with_task_average(pd.DataFrame(rows))


def test_units_become_rows_with_their_label_and_start(tmp_path):
    _units(tmp_path)
    df = paper_compute_frame("VI", tmp_path)
    assert set(df["setting"]) == {"efficientnet_lite0 @ gpu-224px"} and set(df["profile"]) == {"gpu-224px"}
    # one start per (task, seed), from the w/o np fit; two scorings of each of the two fits
    assert len(df) == 2 * 3 * 5 and (df["status"] == "ok").all()
    start = df[(df["method"] == "ablation:pretrained_only") & (df["task"] == "automobile") & (df["seed"] == 1)]
    assert start["auroc"].item() == pytest.approx(0.711)
    assert paper_compute_frame("II", tmp_path).empty and paper_compute_frame("VI", tmp_path / "none").empty


def test_one_reader_for_both_the_tables_and_the_verdict_skips_writes_in_progress(tmp_path):
    _units(tmp_path)
    unit = tmp_path / "gpu-224px" / "cifar__airplane__k10__s0__wo_np.json"
    rec = json.loads(unit.read_text())
    unit.write_text(json.dumps({**rec, "history": {"loss": [1.0, 0.5]}}))
    (tmp_path / "gpu-224px" / ".cifar__x__k10__s0__wo_np.json.tmp.json").write_text("{half a wri")
    (tmp_path / "gpu-224px" / "summary.json").write_text(json.dumps({"units": 12}))  # not a unit
    units = read_units(tmp_path)
    assert len(units) == 12 and not any("history" in u for u in units)
    from coftad_lib.experiments.paper_compute import load_records

    assert len(load_records(tmp_path)) == 12 and len(paper_compute_frame("VI", tmp_path)) == 30
    # the reader itself needs no torch (the table notebooks read caches without fitting)
    code = "import sys, coftad_lib.unit_records; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_table_VI_gets_a_column_per_run_beside_the_profile_and_claims_stay_apart(tmp_path, monkeypatch):
    _units(tmp_path / "pc")
    import coftad_lib.paper.paper_compute_rows as pcr

    monkeypatch.setattr(pcr, "default_root", lambda: tmp_path / "pc")
    own = _own()
    assert with_paper_compute(own, "VI", "smoke") is own  # only the headline profile shows them
    shown = with_paper_compute(own, "VI", "protocol-cpu")
    md = get_spec("VI").write(shown, tmp_path / "out").read_text()
    avg = md[md.index("## avg"):md.index("## airplane")]
    assert "| method | efficientnet_lite0 | efficientnet_lite0 @ gpu-224px |" in avg  # own column first
    # both columns compared with the paper's ResNet18 value; online rows have no paper value
    assert "| pretrained_only | 68.0 ± 0.0 (paper 67.32, +0.7) | 70.6 ± 0.1 (paper 67.32, +3.3) |" in avg
    assert "| contrastive+cipp [online f] |  | 64.5 ± 0.0 (paper n/a) |" in avg
    assert "| contrastive | not run (paper 70.05) |  |" in avg  # a run's absent rows are blank, not "not run"
    # the profile's claims read the profile's rows only: fine-tuning 64 < pretrained 68 on every seed
    tables = tmp_path / "out" / "tables"
    own_verdicts = {v.claim.source + v.claim.text[:20]: v for v in (claims.judge(c, tables) for c in claims.CLAIMS)}
    ft = next(v for k, v in own_verdicts.items() if k.startswith("Table VI") and "Fine-tuning" in k)
    assert ft.verdict == "does not hold"
    assert "64.0 vs" in ft.detail and "68.0" in ft.detail
    # the run's own verdicts: its fine-tuning 65.5 + 0.2 s vs start 70.6: does not hold; np beats w/o np
    pc = claims.paper_compute_verdicts(tables)
    assert [(s, v.verdict) for s, v in pc] == [("efficientnet_lite0 @ gpu-224px", "does not hold"),
                                               ("efficientnet_lite0 @ gpu-224px", "holds")]
    section = "\n".join(claims_report.paper_compute_section(tables))
    assert "| gpu-224px | Fine-tuning" in section and "**holds**" in section


def test_the_report_names_the_runs_apart_from_the_profile(tmp_path, monkeypatch):
    _units(tmp_path / "pc")
    import coftad_lib.paper.paper_compute_rows as pcr
    from coftad_lib.paper.report import write_report

    monkeypatch.setattr(pcr, "default_root", lambda: tmp_path / "pc")
    get_spec("VI").write(with_paper_compute(_own(), "VI", "protocol-cpu"), tmp_path / "out")
    report = write_report(tmp_path / "out").read_text()
    assert "Profiles found: protocol-cpu." in report and "claims (profile `protocol-cpu`)" in report
    assert "| protocol-cpu (+ columns: gpu-224px) |" in report
    assert "| 27 / 0 / 0 / 0 |" in report  # (2 classes + avg) x 3 rows x 3 seeds: the runs' rows not counted
    assert "### The same claims at the paper's batch and steps" in report
