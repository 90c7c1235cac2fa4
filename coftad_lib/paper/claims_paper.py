"""The paper's own number for each claim of the register, computed from its transcribed tables.

The same comparison as ours (:mod:`coftad_lib.paper.claims`), on the paper's values
(:func:`coftad_lib.paper.paper_values.paper_table`): a side is the paper's reported average when the
claim spans every task of the table (Tables II-IV, VI), else the mean of its per-task values (Table
I has no average column); a claim against several rows gives its smallest difference and the row
it is against; a count claim gives the paper's own count. Cells garbled in our copy of the paper
give ``n/a``; rows the paper does not have (our PatchCore, Deep Isolation Forest) are left out.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pandas as pd

from .claims_register import Claim, Side
from .paper_values import display_name, paper_table

#: the paper's column our rows stand for where a side names no setting (Lite0 stands for ResNet18 in Table VI)
PAPER_SETTING: dict[str, str] = {"I": "5-shot", "II": "10-shot", "III": "10-shot", "VI": "ResNet18",
                                 "VII": "10-shot"}


def _setting(side: Side) -> str:
    return side.setting if side.setting is not None else PAPER_SETTING.get(side.table, "")


def _tasks(table: pd.DataFrame, setting: str) -> list[str]:
    """The paper's tasks of ``setting`` (its columns), without the average."""
    return [t for t in dict.fromkeys(table.loc[table["setting"] == setting, "task"]) if t != "avg"]


def paper_mean(side: Side) -> float | None:
    """The paper's value of ``side`` in %: None where the paper has no such row, NaN where it is illegible."""
    table = paper_table(side.table)
    setting = _setting(side)
    rows = table[(table["setting"] == setting) & (table["method"] == side.method)]
    if rows.empty:
        return None
    values = dict(zip(rows["task"], rows["value"], strict=True))
    if side.tasks is None and not math.isnan(values.get("avg", math.nan)):
        return float(values["avg"])  # the paper's reported average over all its tasks
    tasks = list(side.tasks) if side.tasks is not None else _tasks(table, setting)
    vals = [values.get(t, math.nan) for t in tasks]
    return float(sum(vals) / len(vals)) if vals and not any(math.isnan(v) for v in vals) else math.nan


def paper_pairs(claim: Claim, tasks: tuple[str, ...] | None = None) -> list[tuple[Side, Side]]:
    """The comparisons of ``claim`` on the paper's side (its rivals and settings), over ``tasks``."""
    b, w = claim.better, claim.worse
    if tasks is not None:
        b, w = replace(b, tasks=tasks), replace(w, tasks=tasks)
    table = paper_table(w.table)
    if b.setting == "*" and w.setting == "*":
        return [(replace(b, setting=s), replace(w, setting=s)) for s in dict.fromkeys(table["setting"])]
    if w.setting == "*":
        return [(b, replace(w, setting=s)) for s in dict.fromkeys(table["setting"]) if s != b.setting]
    if w.method == "*":
        rivals = claim.paper_rivals or claim.rivals
        if rivals is None:
            names = table.loc[table["setting"] == _setting(w), "method"]
            rivals = tuple(m for m in dict.fromkeys(names) if m != b.method)
        return [(b, replace(w, method=m)) for m in rivals]
    return [(b, w)]


def _label(side: Side) -> str:
    return display_name(side.method) + (f" ({side.setting})" if side.setting and side.setting[0].isalpha() else "")


def _differences(claim: Claim, tasks: tuple[str, ...] | None = None) -> tuple[list[tuple[float, Side, float, float]], int]:
    """(difference, worse side, better value, worse value) of each comparison the paper has, and how
    many comparisons are illegible in our copy."""
    out, illegible = [], 0
    for b, w in paper_pairs(claim, tasks):
        mb, mw = paper_mean(b), paper_mean(w)
        if mb is None or mw is None:  # a row or column the paper does not have
            continue
        if math.isnan(mb) or math.isnan(mw):
            illegible += 1
            continue
        out.append((mb - mw, w, mb, mw))
    return out, illegible


def paper_number(claim: Claim) -> str:
    """The paper's number for ``claim``: its difference (``"+2.26 (vs CutPaste)"``), count or ``n/a``."""
    if claim.count is not None:
        return _paper_count(claim)
    diffs, illegible = _differences(claim)
    if not diffs:
        return "n/a (garbled in our copy)" if illegible else "n/a"
    diff, worse, mb, mw = min(diffs, key=lambda x: x[0])
    # several rows: say which one binds; one row: the two values
    where = f"(vs {_label(worse)})" if len(diffs) + illegible > 1 else f"({mb:.2f} vs {mw:.2f})"
    return f"{diff:+.2f} {where}" + (f" ({illegible} row(s) illegible)" if illegible else "")


def _paper_count(claim: Claim) -> str:
    """The paper's count of tasks won (every rival below) and lost (some rival above) for a count claim."""
    k, n = claim.count or (0, 0)
    table = paper_table(claim.better.table)
    won = lost = 0
    for task in _tasks(table, _setting(claim.better)):
        diffs, illegible = _differences(claim, (task,))
        if illegible or not diffs:
            continue
        won += all(d[0] > 0 for d in diffs)
        lost += any(d[0] < 0 for d in diffs)
    return f"won {won}, lost {lost} of {n} (claims {k})"
