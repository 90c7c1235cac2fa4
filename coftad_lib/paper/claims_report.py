"""The claims register as Markdown for REPORT.md: grouped by table, the paper's numbers, each run's verdict.

:func:`register_section` opens the report: per table of the paper, one row per claim of
:data:`coftad_lib.paper.claims.CLAIMS` with the paper's wording and number
(:func:`coftad_lib.paper.claims_paper.paper_number`) and, for every run that has the table's rows
(the profile's own, each paper-compute run), our mean paired difference [95 % CI] and the verdict
(:mod:`coftad_lib.paper.claim_stats`). :func:`paper_compute_section` lists the claims each
paper-compute run could judge, long form.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from .claim_stats import NOT_RUN, RULE, STATUSES
from .claims import CLAIMS, Claim, RunTables, Verdict, judge_all, paper_compute_verdicts, runs
from .claims_paper import paper_number
from .paper_values import TABLE_TITLES, TABLES
from .replaced_data_rows import REPLACED
from .results_tables import SETTING_MARK

SYNTHETIC = "SemiCon: synthetic stand-in"


def _cell(v: Verdict) -> str:
    """One run's verdict of one claim: verdict, mean [95 % CI], against which row."""
    if v.verdict in STATUSES:  # no pair to show
        return f"*{v.verdict}*"
    if v.per_task:  # a count claim: how many tasks each way
        won, lost = (sum(x == w for x in v.per_task.values()) for w in ("holds", "does not hold"))
        return f"**{v.verdict}** (won {won}, lost {lost} of {len(v.per_task)} here)"
    if v.interval is None:
        return f"**{v.verdict}**"
    several = v.claim.worse.method == "*" or v.claim.worse.setting == "*"
    against = f" vs {v.rival}" if several else ""
    # the pairs' tasks x seeds: a claim the paper makes over 15 categories may rest on one here
    return f"**{v.verdict}** {v.interval.text()}{against}, n = {v.interval.n} ({v.n_tasks} x {v.n_seeds})"


def _claim_text(c: Claim) -> str:
    marks = [f"*{SYNTHETIC}*"] if c.on_semicon else []
    if c.note:
        marks.append(c.note)
    return c.text + (f" ({'; '.join(marks)})" if marks else "")


def _paper_text(c: Claim) -> str:
    quote = f"“{c.quote}” " if c.quote else ""
    return f"{quote}({c.source})".replace("|", "/")


def _legend(tables_dir: str | os.PathLike, found: list[tuple[str, str | None]]) -> list[str]:
    """Which runs the columns are, and which tables each paper-compute run has a column in."""
    tables = RunTables(tables_dir)
    lines = [f"- **{found[0][0]}**: the profile's own rows, the committed tables under `tables/`."]
    replaced = {label for _, label in REPLACED.values()}
    for label, s in found[1:]:
        where = ", ".join(t for t in TABLES if tables.frame(t, s) is not None)
        if label in replaced:  # the profile's own cells on a dataset copy replaced since (replaced_data_rows.py)
            lines.append(f"- **{label}**: this profile's cells computed on a dataset copy replaced since, every row "
                         f"they have, kept under their own data id: column `{s}` of Table(s) {where}.")
            continue
        lines.append(f"- **{label}**: a paper-compute run (issue 19, `benchmarks/results/paper_compute/{label}/`), "
                     f"COFT-AD and its pretrained start only: column `{s}` of Table(s) {where}.")
    return lines


def register_section(tables_dir: str | os.PathLike, profile: str = "") -> list[str]:
    """Markdown lines of the register (module docstring); empty when no table is in ``tables_dir``."""
    found = runs(tables_dir)
    if not found:
        return []
    verdicts = judge_all(tables_dir)
    by_claim: dict[int, dict[str, Verdict]] = {}
    for v in verdicts:
        by_claim.setdefault(id(v.claim), {})[v.run] = v
    head = f" (profile `{profile}`)" if profile else ""
    how = Path(os.path.relpath(Path(__file__).resolve().parent, Path(tables_dir).resolve().parent)).as_posix()
    counts = Counter(v.verdict for v in verdicts if v.run == found[0][0])
    lines = [f"## Does it reproduce? The paper's claims{head}", "", RULE + " Each cell: verdict, mean difference "
             "[95 % CI], the row it is against where there are several, n = pairs (tasks x seeds).", "",
             f"The register is data: [claims_register.py]({how}/claims_register.py); the rule: "
             f"[claim_stats.py]({how}/claim_stats.py). Runs (columns):", "", *_legend(tables_dir, found), "",
             f"{len(CLAIMS)} claims; on {found[0][0]}: "
             + ", ".join(f"{n} {v}" for v, n in sorted(counts.items(), key=lambda x: -x[1])) + ".", ""]
    for table in TABLES:
        claims = [c for c in CLAIMS if c.group == table]
        cols = [label for label, _ in found
                if label == found[0][0] or any(by_claim[id(c)][label].verdict != NOT_RUN for c in claims)]
        lines += [f"### Table {table}: {TABLE_TITLES.get(table, '')}", "",
                  "| claim | the paper says | paper's number | " + " | ".join(cols) + " |",
                  "|---|---|---|" + "---|" * len(cols)]
        for c in claims:
            cells = " | ".join(_cell(by_claim[id(c)][label]) for label in cols)
            lines.append(f"| {_claim_text(c)} | {_paper_text(c)} | {paper_number(c)} | {cells} |")
        lines.append("")
    return lines


def paper_compute_section(tables_dir: str | os.PathLike) -> list[str]:
    """Markdown lines: every claim each paper-compute run could judge, with its numbers in words."""
    rows = paper_compute_verdicts(tables_dir)
    if not rows:
        return []
    own_label = runs(tables_dir)[0][0]
    own = {id(v.claim): v.verdict for v in judge_all(tables_dir, tuple(dict.fromkeys(v.claim for _, v in rows)))
           if v.run == own_label}
    lines = ["### The same claims at the paper's batch and steps (issue 19's runs)", "",
             "The claims of the register that each paper-compute run has the rows for (COFT-AD scored with its EMA "
             f"target, the library's default, and its own pretrained start), by the same rule, beside {own_label}'s "
             "verdict.", "",
             f"| run | claim | verdict | numbers (AUROC %) | on {own_label} |", "|---|---|---|---|---|"]
    for setting, v in rows:
        lines.append(f"| {setting.split(SETTING_MARK)[-1]} | {v.claim.text} | **{v.verdict}** | {v.detail} "
                     f"| {own.get(id(v.claim), '')} |")
    return lines + [""]
