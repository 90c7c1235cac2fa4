"""The claims register judged from per-seed table CSVs: the t-interval rule, both COFT-AD rows, counts, runs."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from coftad_lib.paper import claim_stats as cs
from coftad_lib.paper.claims import (
    CLAIMS,
    Claim,
    Side,
    judge,
    judge_all,
    runs,
    verdict_frame,
)
from coftad_lib.paper.claims_paper import paper_number
from coftad_lib.paper.claims_report import register_section
from coftad_lib.paper.paper_values import TABLES

T2, T5 = 4.302652729911275, 2.5705818366147395  # t(0.975) with 2 and 5 degrees of freedom


def _write(tables, table, rows):
    df = pd.DataFrame(rows, columns=["table", "setting", "method", "task", "seed", "status", "auroc_pct", "profile"])
    df.to_csv(tables / f"table_{table}.csv", index=False)


def _rows(table, setting, method, values, tasks=("a", "b"), status="ok", profile="protocol-cpu"):
    """One row per (seed, task): ``values[seed] + task index``."""
    return [[table, setting, method, t, s, status, v + i, profile] for s, v in enumerate(values) for i, t in enumerate(tasks)]


# ------------------------------------------------------------------ the rule
def test_the_t_interval_matches_known_values():
    iv = cs.t_interval([1.0, 2.0, 3.0])  # mean 2, sd 1, n 3
    assert (iv.mean, iv.n) == (2.0, 3)
    assert iv.lo == pytest.approx(2 - T2 / math.sqrt(3)) and iv.hi == pytest.approx(2 + T2 / math.sqrt(3))
    assert iv.lo == pytest.approx(-0.4841377, abs=1e-6) and iv.verdict == cs.UNDECIDED
    assert cs.t_interval([2.0, 3.0, 4.0]).verdict == cs.HOLDS  # [0.516, 5.484]
    assert cs.t_interval([-2.0, -3.0, -4.0]).verdict == cs.FAILS
    one = cs.t_interval([5.0])  # one pair: no spread, no interval
    assert one.verdict == cs.UNDECIDED and one.text() == "+5.0 [n = 1]"
    flat = cs.t_interval([-4.0, -4.0, -4.0])  # no spread at all: the interval is the point
    assert (flat.lo, flat.hi, flat.verdict) == (-4.0, -4.0, cs.FAILS)
    assert cs.t_interval([1.0, 2.0, 3.0]).text() == "+2.0 [-0.5, +4.5]"


def test_several_comparisons_and_counts_combine_by_the_same_rule():
    assert cs.all_of([cs.HOLDS, cs.HOLDS]) == cs.HOLDS
    assert cs.all_of([cs.HOLDS, cs.UNDECIDED]) == cs.UNDECIDED
    assert cs.all_of([cs.UNDECIDED, cs.FAILS, cs.NOT_RUN]) == cs.FAILS  # one decided loss is enough
    assert cs.all_of([cs.HOLDS, cs.PENDING]) == cs.PENDING  # a claim waits for all of its parts
    assert cs.at_least([cs.HOLDS] * 5 + [cs.UNDECIDED] * 3, 5, 8) == cs.HOLDS
    assert cs.at_least([cs.FAILS] * 4 + [cs.HOLDS] * 4, 5, 8) == cs.FAILS  # 5 wins are out of reach
    assert cs.at_least([cs.FAILS] * 3 + [cs.HOLDS] * 4 + [cs.UNDECIDED], 5, 8) == cs.UNDECIDED
    assert cs.at_least([cs.NO_DATA] * 8, 5, 8) == cs.NO_DATA


# ------------------------------------------------------------------ judging from tables
def test_a_claim_pairs_by_task_and_seed_and_reports_the_interval(tmp_path):
    claim = Claim("A beats B", "Table I", Side("I", "A"), Side("I", "B"))
    # differences per (task, seed): seed s -> 10 + s on task a, 10 + s + 1 on task b: 10, 11, 11, 12, 12, 13
    _write(tmp_path, "I", _rows("I", "5-shot", "A", [80, 81, 82], ("a", "b")) +
           [["I", "5-shot", "B", t, s, "ok", 70, "protocol-cpu"] for s in range(3) for t in "ab"])
    v = judge(claim, tmp_path)
    d = [10, 11, 11, 12, 12, 13]
    sd = pd.Series(d).std()
    assert v.verdict == cs.HOLDS and v.interval.n == 6 and v.n_seeds == 3
    assert v.interval.mean == pytest.approx(11.5)
    assert v.interval.lo == pytest.approx(11.5 - T5 * sd / math.sqrt(6))
    assert "A 81.5 vs B 70.0: +11.5 [+10.4, +12.6] points, 6 pair(s) (2 task(s) x 3 seed(s))" in v.detail


def test_best_of_several_rivals_is_decided_by_each_rival(tmp_path):
    claim = Claim("A beats every rival", "Table I", Side("I", "A"), Side("I", "*"), rivals=("B", "C"))
    _write(tmp_path, "I", _rows("I", "5-shot", "A", [80, 82, 84]) + _rows("I", "5-shot", "B", [70, 71, 72])
           + _rows("I", "5-shot", "C", [60, 60, 60]) + _rows("I", "5-shot", "D", [99, 99, 99]))  # D: no rival
    v = judge(claim, tmp_path)
    assert v.verdict == cs.HOLDS and v.rival == "B"  # the narrowest win decides what is shown
    _write(tmp_path, "I", _rows("I", "5-shot", "A", [70, 75, 70]) + _rows("I", "5-shot", "B", [72, 71, 73])
           + _rows("I", "5-shot", "C", [60, 61, 62]))
    assert judge(claim, tmp_path).verdict == cs.UNDECIDED
    _write(tmp_path, "I", _rows("I", "5-shot", "A", [60, 61, 62]) + _rows("I", "5-shot", "B", [72, 71, 73])
           + _rows("I", "5-shot", "C", [50, 51, 52]))
    v = judge(claim, tmp_path)
    assert v.verdict == cs.FAILS and v.rival == "B"


def test_pending_missing_and_absent_rows_say_why(tmp_path):
    claim = Claim("A beats B", "Table I", Side("I", "A"), Side("I", "B"))
    rows = _rows("I", "5-shot", "A", [80, 82]) + _rows("I", "5-shot", "B", [70, 71])
    rows[-1][5] = "pending"
    _write(tmp_path, "I", rows)
    assert judge(claim, tmp_path).verdict == cs.PENDING
    _write(tmp_path, "I", _rows("I", "5-shot", "A", [0, 0], status="missing") + _rows("I", "5-shot", "B", [70, 71]))
    assert judge(claim, tmp_path).verdict == cs.NO_DATA
    _write(tmp_path, "I", _rows("I", "5-shot", "A", [80, 81]))
    assert judge(claim, tmp_path).verdict == cs.NOT_RUN
    assert judge(Claim("x", "Table II", Side("II", "A"), Side("II", "B")), tmp_path).verdict == cs.NOT_RUN


def test_tasks_whose_data_is_missing_everywhere_are_left_out(tmp_path):
    """MVTec with only bottle present: the claim is judged on bottle, not refused for the absent categories."""
    claim = Claim("A beats B", "Table IV", Side("IV", "A", "5-shot"), Side("IV", "B", "5-shot"))
    rows = (_rows("IV", "5-shot", "A", [90, 91, 92], ("bottle",)) + _rows("IV", "5-shot", "B", [80, 80, 81], ("bottle",))
            + _rows("IV", "5-shot", "A", [0, 0, 0], ("cable",), status="missing")
            + _rows("IV", "5-shot", "B", [0, 0, 0], ("cable",), status="missing"))
    _write(tmp_path, "IV", rows)
    v = judge(claim, tmp_path)
    assert v.verdict == cs.HOLDS and "(1 task(s) x 3 seed(s))" in v.detail


def test_a_scorer_claim_compares_the_other_settings_of_one_row(tmp_path):
    claim = Claim("gaussian is best", "Table VIII", Side("VIII", "m", "gaussian"), Side("VIII", "m", "*"))
    _write(tmp_path, "VIII", _rows("VIII", "gaussian", "m", [80, 81, 82], ("t",))
           + _rows("VIII", "knn", "m", [85, 86, 87], ("t",)) + _rows("VIII", "gaussian", "other", [99, 99, 99], ("t",)))
    v = judge(claim, tmp_path)
    assert v.verdict == cs.FAILS and "m (knn) 86.0" in v.detail


def test_every_scorer_compares_two_rows_setting_by_setting(tmp_path):
    claim = Claim("tuned beats start under every scorer", "Table VIII", Side("VIII", "tuned", "*"),
                  Side("VIII", "start", "*"))
    rows = []
    for scorer, (tuned, start) in {"gaussian": (80, 70), "knn": (75, 60), "patchcore": (64, 63)}.items():
        rows += _rows("VIII", scorer, "tuned", [tuned, tuned + 1, tuned + 3], ("t",))
        rows += _rows("VIII", scorer, "start", [start, start, start + 1], ("t",))
    _write(tmp_path, "VIII", rows)
    v = judge(claim, tmp_path)
    assert v.verdict == cs.UNDECIDED and "(patchcore)" in v.detail  # the one scorer not decided


def test_a_count_claim_is_judged_task_by_task(tmp_path):
    tasks = ("p", "q", "r")
    claim = Claim("A wins 2 of 3", "Table I", Side("I", "A"), Side("I", "*"), rivals=("B",), count=(2, 3))
    rows = []
    for task, gap in zip(tasks, (10, 8, -9), strict=True):  # won, won, lost
        rows += _rows("I", "5-shot", "A", [70 + gap, 71 + gap, 73 + gap], (task,))
        rows += _rows("I", "5-shot", "B", [70, 71, 72], (task,))
    _write(tmp_path, "I", rows)
    v = judge(claim, tmp_path)
    assert v.verdict == cs.HOLDS and v.per_task == {"p": cs.HOLDS, "q": cs.HOLDS, "r": cs.FAILS}
    assert "won 2, lost 1" in v.detail
    assert judge(Claim("A wins 3 of 3", "Table I", Side("I", "A"), Side("I", "*"), rivals=("B",), count=(3, 3)),
                 tmp_path).verdict == cs.FAILS


# ------------------------------------------------------------------ the register
def test_the_register_covers_every_table_and_the_paper_numbers_come_from_its_tables():
    assert {c.group for c in CLAIMS} == set(TABLES)
    assert len({(c.text, c.source) for c in CLAIMS}) == len(CLAIMS)  # no claim twice
    for c in CLAIMS:
        assert c.source.startswith("Table") and paper_number(c)
    by_text = {c.text: paper_number(c) for c in CLAIMS}
    assert by_text["Adding negative pairs improves on fine-tuning without them (CIFAR-10-C)"] == "+0.88 (74.56 vs 73.68)"
    assert by_text["COFT-AD (w/o np) beats every competing method on at least 5 of the 8 pairs"].startswith("won 5, lost 3")
    assert by_text["COFT-AD (w/ np) beats CutPaste at 5 shots (average over the categories)"] == "+0.43 (78.76 vs 78.33)"
    assert "garbled" in by_text["CutPaste scores above COFT-AD (w/ np) at 10 shots (average over the categories)"]
    assert all(c.on_semicon for c in CLAIMS if c.group == "IX")


@pytest.mark.parametrize("table", ["I", "II", "VIII", "X"])
def test_where_the_paper_says_coftad_both_rows_are_claims(table):
    rows = {c.better.method for c in CLAIMS if c.group == table} | {c.worse.method for c in CLAIMS if c.group == table}
    assert {"coftad", "coftad_np"} <= rows
    wo = [c.text for c in CLAIMS if c.group == table and c.better.method == "coftad"]
    np_ = [c.text for c in CLAIMS if c.group == table and c.better.method == "coftad_np"]
    assert {t.replace("w/o np", "ROW") for t in wo} & {t.replace("w/ np", "ROW") for t in np_}


def test_both_coftad_rows_are_judged_never_one_picked(tmp_path):
    """Table X's claim on a run where N_A = 10 helps w/o np and hurts w/ np: two verdicts, one each."""
    _write(tmp_path, "I", _rows("I", "5-shot", "coftad", [80, 81, 82], ("Daffodil/Tulip",))
           + _rows("I", "5-shot", "coftad_np", [70, 70, 71], ("Daffodil/Tulip",)))
    _write(tmp_path, "X", _rows("X", "N_A=1", "coftad", [70, 70, 71], ("Daffodil/Tulip",))
           + _rows("X", "N_A=1", "coftad_np", [80, 81, 82], ("Daffodil/Tulip",)))
    verdicts = {v.claim.text: v.verdict for v in judge_all(tmp_path) if v.claim.group == "X"}
    assert sorted(verdicts.values()) == [cs.FAILS, cs.HOLDS]
    assert verdicts["N_A = 10 augmented copies per shot score above N_A = 1 (COFT-AD (w/o np), Daffodil/Tulip)"] == cs.HOLDS


def test_every_run_is_judged_apart(tmp_path):
    run = "efficientnet_lite0 @ gpu-224px"
    rows = (_rows("VI", "efficientnet_lite0", "ablation:pretrained_only", [68, 68, 68])
            + _rows("VI", "efficientnet_lite0", "ablation:contrastive+cipp", [64, 64.5, 63])
            + _rows("VI", run, "ablation:pretrained_only", [70, 70.1, 70.2], profile="gpu-224px")
            + _rows("VI", run, "ablation:contrastive+cipp", [75, 75.5, 76.5], profile="gpu-224px"))
    _write(tmp_path, "VI", rows)
    assert runs(tmp_path) == [("protocol-cpu", None), ("gpu-224px", run)]
    claim = next(c for c in CLAIMS if c.text.startswith("Fine-tuning (contrastive + positive pairs)"))
    assert judge(claim, tmp_path).verdict == cs.FAILS
    assert judge(claim, tmp_path, "gpu-224px").verdict == cs.HOLDS == judge(claim, tmp_path, run).verdict
    by_run = {v.run: v.verdict for v in judge_all(tmp_path) if v.claim is claim}
    assert by_run == {"protocol-cpu": cs.FAILS, "gpu-224px": cs.HOLDS}


def test_the_report_section_lists_every_claim_grouped_by_table(tmp_path):
    tables = tmp_path / "tables"
    tables.mkdir()
    assert register_section(tables) == []  # nothing run: no section
    _write(tables, "I", _rows("I", "5-shot", "coftad_np", [80, 81, 82]) + _rows("I", "5-shot", "coftad", [60, 61, 60]))
    lines = register_section(tables, "protocol-cpu")
    assert lines[0] == "## Does it reproduce? The paper's claims (profile `protocol-cpu`)"
    assert [ln for ln in lines if ln.startswith("### Table ")] == [
        ln for ln in lines if ln.startswith("### ")] and sum(ln.startswith("### Table ") for ln in lines) == len(TABLES)
    rows = [ln for ln in lines if ln.startswith("| ") and not ln.startswith("| claim |")]
    assert len(rows) == len(CLAIMS)
    assert any("*SemiCon: synthetic stand-in*" in ln for ln in rows)
    frame = verdict_frame(tables)
    assert len(frame) == len(CLAIMS) and (frame["verdict"] == cs.NOT_RUN).sum() < len(CLAIMS)
