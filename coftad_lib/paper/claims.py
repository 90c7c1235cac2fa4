"""The paper's claims, each with its verdict from a run's tables: does COFT-AD reproduce?

A claim compares two sides, each one row of a table (a method in a setting, averaged over some
of the table's tasks): "COFT-AD (w/ np) is best on Flowers17" is COFT-AD (w/ np)'s Table I
average against the strongest other row's. The verdict is read from the per-seed CSV a table
notebook writes (``<out>/tables/table_<T>.csv``), paired by seed: for each seed both sides'
averages over the same tasks (a seed counts only when every task has a value on both sides),
their difference ``d_s``, then the mean and sample std of ``d_s`` over seeds:

- ``holds``: mean(d) > 0 beyond the spread (mean(d) > std(d)); with one seed, "holds (one seed)";
- ``does not hold``: mean(d) < 0 beyond the spread;
- ``within the seed spread``: |mean(d)| <= std(d);
- ``not computed yet`` / ``no data``: no seed has both sides (pending cells, missing datasets).

"Beyond the spread" is deliberately simple (one std of the paired differences, no test): with three
seeds a formal test says little, and the report shows the numbers next to each verdict.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .paper_values import display_name
from .results_tables import SETTING_MARK, is_paper_compute


@dataclass(frozen=True)
class Side:
    """One row of a table: ``method`` in ``setting`` (None: the table's only setting), averaged over
    ``tasks`` (None: every task of the row). On the second side of a claim, ``method="*"`` stands
    for the strongest other method of that setting, ``setting="*"`` for the strongest other
    setting of that method."""

    table: str
    method: str
    setting: str | None = None
    tasks: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Claim:
    """A claim of the paper: ``better`` scores above ``worse`` (AUROC, % points)."""

    text: str
    source: str
    better: Side
    worse: Side
    note: str = ""


_NP, _WO = "coftad_np", "coftad"
_VI = "ablation:"
#: the paper's headline claims (issue 20), in the order REPORT.md lists them
CLAIMS: tuple[Claim, ...] = (
    Claim("COFT-AD (w/ np) is the best method on Flowers17 (average over the pairs)", "Table I, Sec. V-A",
          Side("I", _NP), Side("I", "*")),
    Claim("COFT-AD (w/ np) is the best method on CIFAR-10-C (average over the classes)", "Table II, Sec. V-A",
          Side("II", _NP), Side("II", "*")),
    Claim("COFT-AD (w/ np) is the best method on MVTec AD, 5 shots (average over the categories)",
          "Table IV, Sec. V-B", Side("IV", _NP, "5-shot"), Side("IV", "*", "5-shot"),
          note="only the categories whose data was here; the paper averages 15"),
    Claim("Fine-tuning (contrastive + positive pairs) beats the pretrained features it starts from",
          "Table VI, Sec. V-D", Side("VI", _VI + "contrastive+cipp"), Side("VI", _VI + "pretrained_only")),
    Claim("Adding negative pairs improves on fine-tuning without them (CIFAR-10-C)", "Table VI, Sec. V-D",
          Side("VI", _VI + "contrastive+cipp+np"), Side("VI", _VI + "contrastive+cipp")),
    Claim("Negative pairs help where anomalies can be simulated (Magnetic Tile)", "Table VII, Sec. V-C",
          Side("VII", _NP, tasks=("magnetic_tile",)), Side("VII", _WO, tasks=("magnetic_tile",))),
    Claim("Negative pairs hurt where they cannot (SemiCon's voids)", "Table VII, Sec. V-C",
          Side("VII", _WO, tasks=("semicon",)), Side("VII", _NP, tasks=("semicon",)),
          note="SemiCon is private: ours is a synthetic stand-in of the same structure"),
    Claim("N_A = 10 augmented copies per shot score better than N_A = 1 (Daffodil/Tulip)", "Table X, Sec. V-G",
          Side("I", _NP, tasks=("Daffodil/Tulip",)), Side("X", _NP, "N_A=1", ("Daffodil/Tulip",)),
          note="N_A = 10 is Table I's COFT-AD (w/ np) cell, as in the paper"),
    Claim("The Gaussian scorer beats kNN, Isolation Forest and PatchCore on COFT-AD's features",
          "Table VIII, Sec. V-E", Side("VIII", _NP, "gaussian"), Side("VIII", _NP, "*")),
)


def _table(tables_dir: Path, table: str, setting: str | None = None) -> pd.DataFrame | None:
    """The per-seed CSV of ``table``: the profile's own rows, or with ``setting`` only that
    paper-compute run's rows (those columns are judged apart, :func:`paper_compute_verdicts`)."""
    path = tables_dir / f"table_{table}.csv"
    if not path.exists():
        return None
    df = pd.read_csv(path)
    if "setting" not in df:
        return df
    return df[df["setting"] == setting] if setting else df[~df["setting"].astype(str).map(is_paper_compute)]


def _per_seed(df: pd.DataFrame, side: Side, tasks: list[str]) -> pd.Series:
    """AUROC % per seed of ``side`` averaged over ``tasks`` (seeds lacking a task dropped)."""
    d = df[(df["method"] == side.method) & df["task"].isin(tasks)]
    if side.setting is not None:
        d = d[d["setting"] == side.setting]
    d = d[d["status"] == "ok"]
    wide = d.pivot_table(index="seed", columns="task", values="auroc_pct", aggfunc="mean").reindex(columns=tasks)
    return wide.dropna(how="any").mean(axis=1)


def _tasks(df: pd.DataFrame, side: Side) -> list[str]:
    if side.tasks is not None:
        return list(side.tasks)
    d = df if side.setting is None else df[df["setting"] == side.setting]
    if "status" in d:  # a task whose data is missing everywhere is not part of the claim (MVTec: bottle only)
        d = d[d.groupby("task")["status"].transform(lambda st: (st != "missing").any())]
    return sorted(t for t in set(d["task"].astype(str)) if t != "avg")


def _rivals(df: pd.DataFrame, better: Side, worse: Side) -> list[Side]:
    """The rows ``worse`` stands for: itself, every other method (``method="*"``) or every other
    setting of its method (``setting="*"``, Table VIII's scorers)."""
    if worse.setting == "*":
        others = sorted(set(df["setting"].astype(str)) - {better.setting})
        return [Side(worse.table, worse.method, s, worse.tasks) for s in others]
    if worse.method != "*":
        return [worse]
    d = df if worse.setting is None else df[df["setting"] == worse.setting]
    return [Side(worse.table, m, worse.setting, worse.tasks) for m in sorted(set(d["method"])) if m != better.method]


@dataclass
class Verdict:
    """A claim's verdict and the numbers behind it (AUROC %)."""

    claim: Claim
    verdict: str
    detail: str
    n_seeds: int = 0


def _label(side: Side) -> str:
    return display_name(side.method) + (f" ({side.setting})" if side.setting and side.setting[0].isalpha() else "")


def judge(claim: Claim, tables_dir: str | os.PathLike, setting: str | None = None) -> Verdict:
    """The verdict of ``claim`` from the per-seed CSVs in ``tables_dir`` (module docstring); with
    ``setting``, from that paper-compute run's rows of the claim's tables."""
    tables_dir = Path(tables_dir)
    dfs = {t: _table(tables_dir, t, setting) for t in {claim.better.table, claim.worse.table}}
    if any(df is None for df in dfs.values()):
        return Verdict(claim, "not run", "its table is not in this run")
    better_df = dfs[claim.better.table]
    tasks = _tasks(better_df, claim.better)
    ours = _per_seed(better_df, claim.better, tasks)
    scored, unscored = [], []
    for rival in _rivals(dfs[claim.worse.table], claim.better, claim.worse):
        theirs = _per_seed(dfs[claim.worse.table], rival, tasks)
        if theirs.empty:
            unscored.append(_label(rival))
        else:
            scored.append((float(theirs.mean()), rival, theirs))
    if scored and unscored:  # "best of all" cannot be judged against some of them
        return Verdict(claim, "incomplete", f"rows without a value on every task yet: {', '.join(unscored)}")
    if ours.empty or not scored:
        pending = any((df["status"] == "pending").any() for df in dfs.values() if "status" in df)
        return Verdict(claim, "not computed yet" if pending else "no data",
                       "no seed has both sides (cells pending or data missing)")
    _, rival, theirs = max(scored, key=lambda x: x[0])  # the strongest rival
    d = (ours - theirs).dropna()
    if d.empty:
        return Verdict(claim, "no data", "the two sides share no seed")
    mean, std = float(d.mean()), float(d.std(ddof=1)) if len(d) > 1 else math.nan
    if len(d) == 1:
        verdict = "holds (one seed)" if mean > 0 else "does not hold (one seed)"
    elif abs(mean) <= std:
        verdict = "within the seed spread"
    else:
        verdict = "holds" if mean > 0 else "does not hold"
    spread = "" if math.isnan(std) else f" ± {std:.1f}"
    detail = (f"{_label(claim.better)} {float(ours[d.index].mean()):.1f} vs {_label(rival)} "
              f"{float(theirs[d.index].mean()):.1f}: {mean:+.1f}{spread} points over {len(d)} seed(s), "
              f"{len(tasks)} task(s)")
    return Verdict(claim, verdict, detail, len(d))


def claims_section(tables_dir: str | os.PathLike, profile: str = "") -> list[str]:
    """Markdown lines: one row per claim (:data:`CLAIMS`) with its verdict and numbers (for the
    REPORT.md beside ``tables_dir``)."""
    verdicts = [judge(c, tables_dir) for c in CLAIMS]
    if all(v.verdict == "not run" for v in verdicts):
        return []
    head = f" (profile `{profile}`)" if profile else ""
    how = Path(os.path.relpath(Path(__file__).resolve(), Path(tables_dir).resolve().parent)).as_posix()
    lines = [f"## Does it reproduce? The paper's claims{head}", "",
             "Each claim's verdict from this run's tables, paired by seed: *holds* / *does not hold* when the "
             "mean difference exceeds the std of the per-seed differences, else *within the seed spread* "
             f"([claims.py]({how}) says how).", "",
             "| claim | source | verdict | numbers (AUROC %) |", "|---|---|---|---|"]
    for v in verdicts:
        note = f" ({v.claim.note})" if v.claim.note else ""
        lines.append(f"| {v.claim.text} | {v.claim.source} | **{v.verdict}** | {v.detail}{note} |")
    return lines + [""]


#: the claims a paper-compute run can judge: Table VI's two (its rows are COFT-AD and its start only)
PAPER_COMPUTE_CLAIMS: tuple[Claim, ...] = tuple(c for c in CLAIMS if c.better.table == c.worse.table == "VI")


def paper_compute_verdicts(tables_dir: str | os.PathLike) -> list[tuple[str, Verdict]]:
    """(run setting, verdict) of :data:`PAPER_COMPUTE_CLAIMS` for every paper-compute run in Table VI's CSV."""
    path = Path(tables_dir) / "table_VI.csv"
    if not path.exists():
        return []
    settings = [s for s in dict.fromkeys(pd.read_csv(path)["setting"].astype(str)) if is_paper_compute(s)]
    return [(s, judge(c, tables_dir, s)) for s in settings for c in PAPER_COMPUTE_CLAIMS]


def paper_compute_claims_section(tables_dir: str | os.PathLike) -> list[str]:
    """Markdown lines: Table VI's claims judged on each paper-compute run (batch 64, 100 steps)."""
    rows = paper_compute_verdicts(tables_dir)
    if not rows:
        return []
    lines = ["### The same claims at the paper's batch and steps (issue 19's runs)", "",
             "Each fit scored with the EMA target (the library's default) against its own pretrained start; "
             "the runs are the extra columns of Table VI (`benchmarks/results/paper_compute/`).", "",
             "| run | claim | verdict | numbers (AUROC %) |", "|---|---|---|---|"]
    for setting, v in rows:
        lines.append(f"| {setting.split(SETTING_MARK)[-1]} | {v.claim.text} | **{v.verdict}** | {v.detail} |")
    return lines + [""]


def verdict_frame(tables_dir: str | os.PathLike) -> pd.DataFrame:
    """The verdicts as a frame (claim, source, verdict, detail, n_seeds), e.g. for a notebook."""
    rows = [{"claim": v.claim.text, "source": v.claim.source, "verdict": v.verdict, "detail": v.detail,
             "n_seeds": v.n_seeds} for v in (judge(c, tables_dir) for c in CLAIMS)]
    return pd.DataFrame(rows, columns=["claim", "source", "verdict", "detail", "n_seeds"]).astype({"n_seeds": np.int64})
