"""The paper's claims judged on every run that has their cells: does COFT-AD reproduce?

The claims are the register (:data:`CLAIMS` = :data:`coftad_lib.paper.claims_register.REGISTER`); the
rule is :mod:`coftad_lib.paper.claim_stats` (paired mean difference with its 95 % t-interval, paired
by (task, seed)). The cells are read from the per-seed CSVs the table notebooks write
(``<out>/tables/table_<T>.csv``). A *run* is one set of rows of those CSVs: the profile's own rows
(protocol-cpu for the committed tables) or one paper-compute run (issue 19's columns, settings
``"<backbone> @ <label>"``, :mod:`coftad_lib.paper.paper_compute_rows`); each claim is judged on
each run apart, by the same rule, and a run that lacks the claim's rows says ``not run``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from . import claim_stats as cs
from .claim_stats import FAILS, HOLDS, NOT_RUN, UNDECIDED, Interval
from .claims_register import REGISTER, Claim, Side
from .paper_values import TABLES, display_name
from .results_tables import SETTING_MARK, is_paper_compute

__all__ = ["CLAIMS", "Claim", "Comparison", "RunTables", "Side", "Verdict", "compare", "judge",
           "judge_all", "paper_compute_verdicts", "register_frame", "runs",
           "verdict_frame"]

#: every claim of the register, in the report's order (grouped by table)
CLAIMS: tuple[Claim, ...] = REGISTER


@dataclass
class Comparison:
    """One "better above worse" comparison of a claim on one run: its verdict and the numbers."""

    verdict: str
    better: Side
    worse: Side
    interval: Interval | None = None
    mean_better: float = float("nan")
    mean_worse: float = float("nan")
    n_tasks: int = 0
    n_seeds: int = 0


@dataclass
class Verdict:
    """A claim's verdict on one run and the numbers behind it (AUROC %).

    ``interval`` is the deciding comparison's (module :mod:`~coftad_lib.paper.claim_stats`); for a
    count claim ``per_task`` holds each task's verdict instead.
    """

    claim: Claim
    verdict: str
    detail: str
    n_seeds: int = 0
    run: str = ""
    interval: Interval | None = None
    rival: str = ""
    per_task: dict[str, str] = field(default_factory=dict)
    n_tasks: int = 0


class RunTables:
    """The per-seed CSVs of one tables folder, read once, cut into runs."""

    _COLUMNS = ("setting", "method", "task", "seed", "status", "auroc_pct", "profile")

    def __init__(self, tables_dir: str | os.PathLike) -> None:
        self.dir = Path(tables_dir)
        self._raw: dict[str, pd.DataFrame | None] = {}
        self._runs: dict[tuple[str, str | None], pd.DataFrame | None] = {}

    def raw(self, table: str) -> pd.DataFrame | None:
        """``table``'s per-seed CSV, only the columns a claim reads (the rest is messages and versions)."""
        if table not in self._raw:
            path = self.dir / f"table_{table}.csv"
            df = pd.read_csv(path, usecols=lambda c: c in self._COLUMNS) if path.exists() else None
            if df is not None:
                df["task"] = df["task"].astype(str)
            self._raw[table] = df
        return self._raw[table]

    def frame(self, table: str, setting: str | None) -> pd.DataFrame | None:
        """``table``'s rows of one run: the profile's own (``setting`` None) or that paper-compute setting's."""
        if (table, setting) not in self._runs:
            df = self.raw(table)
            if df is not None and "setting" in df:
                own = df["setting"].astype(str).map(is_paper_compute)
                df = df[df["setting"] == setting] if setting else df[~own]
            self._runs[table, setting] = df if df is not None and len(df) else None
        return self._runs[table, setting]


def runs(tables_dir: str | os.PathLike) -> list[tuple[str, str | None]]:
    """(label, setting) of every run in the tables: the profile's own rows first (setting None), then
    each paper-compute run (its label, e.g. ``"h200-224px-b64-100steps"``, and its setting)."""
    tables = RunTables(tables_dir)
    own: dict[str, None] = {}
    extra: dict[str, str] = {}
    present = [df for t in TABLES if (df := tables.raw(t)) is not None]
    for df in present:
        settings = df["setting"].astype(str) if "setting" in df else pd.Series([""] * len(df), index=df.index)
        mine = df[~settings.map(is_paper_compute)]
        own.update(dict.fromkeys(str(p) for p in mine.get("profile", pd.Series(dtype=str)).dropna()))
        for s in dict.fromkeys(settings[settings.map(is_paper_compute)]):
            extra.setdefault(s.split(SETTING_MARK)[-1], s)
    head = [(", ".join(own) or "this run", None)] if present else []
    return head + list(extra.items())


def _label(side: Side) -> str:
    return display_name(side.method) + (f" ({side.setting})" if side.setting and side.setting[0].isalpha() else "")


def _in_setting(df: pd.DataFrame, setting: str | None) -> pd.DataFrame:
    return df if setting is None or setting == "*" else df[df["setting"] == setting]


def _tasks(df: pd.DataFrame, side: Side, with_missing: bool = False) -> list[str]:
    """The claim's tasks: ``side.tasks``, else the row's tasks that are not missing everywhere (MVTec:
    only bottle is here), or all of them ``with_missing`` (a count claim shows every task)."""
    if side.tasks is not None:
        return list(side.tasks)
    d = _in_setting(df, side.setting)
    tasks = [str(t) for t in dict.fromkeys(d["task"]) if str(t) != "avg"]
    if with_missing or "status" not in d:
        return tasks
    present = set(d.loc[d["status"] != "missing", "task"].astype(str))
    return [t for t in tasks if t in present] or tasks


def _pairs(claim: Claim, df_b: pd.DataFrame, df_w: pd.DataFrame) -> list[tuple[Side, Side]]:
    """The comparisons a claim is made of on one run: (better, worse) with concrete rows."""
    b, w = claim.better, claim.worse
    if b.setting == "*" and w.setting == "*":  # both rows under each setting in turn
        return [(replace(b, setting=s), replace(w, setting=s)) for s in dict.fromkeys(df_b["setting"].astype(str))]
    if w.setting == "*":  # every other setting of the row (Table VIII's scorers)
        others = [s for s in dict.fromkeys(df_w["setting"].astype(str)) if s != b.setting]
        return [(b, replace(w, setting=s)) for s in others]
    if w.method == "*":  # every rival row
        rivals = claim.rivals
        if rivals is None:
            rivals = tuple(m for m in dict.fromkeys(_in_setting(df_w, w.setting)["method"]) if m != b.method)
        return [(b, replace(w, method=m)) for m in rivals]
    return [(b, w)]


def _cells(df: pd.DataFrame, side: Side, tasks: list[str]) -> pd.DataFrame:
    d = df[(df["method"] == side.method) & df["task"].isin(tasks)]
    return _in_setting(d, side.setting)


def _values(cells: pd.DataFrame) -> pd.Series:
    """AUROC % of the ok cells, indexed by (task, seed)."""
    ok = cells[cells["status"] == "ok"] if "status" in cells else cells
    return ok.groupby(["task", "seed"])["auroc_pct"].mean().dropna()


def compare(df_b: pd.DataFrame, b: Side, df_w: pd.DataFrame, w: Side, tasks: list[str]) -> Comparison:
    """``b`` against ``w`` over ``tasks``, paired by (task, seed) (:func:`~coftad_lib.paper.claim_stats.t_interval`)."""
    cb, cw = _cells(df_b, b, tasks), _cells(df_w, w, tasks)
    if cb.empty or cw.empty:  # this run has no such row (a paper-compute run has COFT-AD's only)
        return Comparison(NOT_RUN, b, w)
    if any("status" in c and (c["status"] == "pending").any() for c in (cb, cw)):
        return Comparison(cs.PENDING, b, w)  # the claim waits for every one of its cells
    vb, vw = _values(cb), _values(cw)
    both = vb.index.intersection(vw.index)
    if both.empty:
        return Comparison(cs.NO_DATA, b, w)
    iv = cs.t_interval((vb[both] - vw[both]).to_numpy())
    return Comparison(iv.verdict, b, w, iv, float(vb[both].mean()), float(vw[both].mean()),
                      len(set(both.get_level_values(0))), len(set(both.get_level_values(1))))


def _deciding(comps: list[Comparison], verdict: str) -> Comparison | None:
    """The comparison that decides a verdict: the clearest loss, the narrowest win, the closest undecided one."""
    if verdict == HOLDS:
        return min(comps, key=lambda c: c.interval.lo if c.interval else float("inf"))
    pool = [c for c in comps if c.verdict == verdict and c.interval is not None]
    return min(pool, key=lambda c: c.interval.mean) if pool else None


def _detail(c: Comparison) -> str:
    iv = c.interval
    assert iv is not None
    return (f"{_label(c.better)} {c.mean_better:.1f} vs {_label(c.worse)} {c.mean_worse:.1f}: {iv.text()} points, "
            f"{iv.n} pair(s) ({c.n_tasks} task(s) x {c.n_seeds} seed(s))")


_WHY = {NOT_RUN: "this run has none of the claim's rows", cs.PENDING: "some of the claim's cells are not computed yet",
        cs.NO_DATA: "no (task, seed) has both sides (data missing)"}


def _judge_comparisons(claim: Claim, df_b: pd.DataFrame, df_w: pd.DataFrame, tasks: list[str]) -> Verdict:
    comps = [compare(df_b, b, df_w, w, tasks) for b, w in _pairs(claim, df_b, df_w)]
    verdict = cs.all_of([c.verdict for c in comps])
    dec = _deciding(comps, verdict) if verdict in (HOLDS, FAILS, UNDECIDED) else None
    if dec is None:
        return Verdict(claim, verdict, _WHY.get(verdict, ""))
    return Verdict(claim, verdict, _detail(dec), dec.n_seeds, interval=dec.interval, rival=_label(dec.worse),
                   n_tasks=dec.n_tasks)


def _judge_count(claim: Claim, df_b: pd.DataFrame, df_w: pd.DataFrame) -> Verdict:
    """A count claim: each task judged apart (the same rule), then :func:`~coftad_lib.paper.claim_stats.at_least`."""
    k, n = claim.count or (0, 0)
    per_task = {t: _judge_comparisons(claim, df_b, df_w, [t]).verdict for t in _tasks(df_b, claim.better, True)}
    verdicts = list(per_task.values())
    verdict = cs.at_least(verdicts, k, n)
    won, lost, open_ = verdicts.count(HOLDS), verdicts.count(FAILS), verdicts.count(UNDECIDED)
    detail = (f"won {won}, lost {lost}, undecided {open_}, without pairs {len(verdicts) - won - lost - open_} "
              f"of the {len(verdicts)} task(s); the claim needs {k} of {n}")
    return Verdict(claim, verdict, detail, per_task=per_task)


def _judge(claim: Claim, tables: RunTables, setting: str | None, run: str) -> Verdict:
    df_b, df_w = tables.frame(claim.better.table, setting), tables.frame(claim.worse.table, setting)
    if df_b is None or df_w is None:
        v = Verdict(claim, NOT_RUN, "its table is not in this run")
    elif claim.count is not None:
        v = _judge_count(claim, df_b, df_w)
    else:
        v = _judge_comparisons(claim, df_b, df_w, _tasks(df_b, claim.better))
    v.run = run
    return v


def _setting_of(tables_dir: str | os.PathLike, setting: str | None) -> str | None:
    """A paper-compute run's setting from its label or setting (None: the profile's own rows)."""
    if not setting or SETTING_MARK in setting:
        return setting
    return dict(runs(tables_dir)).get(setting, f"?{SETTING_MARK}{setting}")


def judge(claim: Claim, tables_dir: str | os.PathLike, setting: str | None = None) -> Verdict:
    """The verdict of ``claim`` from the per-seed CSVs in ``tables_dir``: on the profile's own rows,
    or with ``setting`` (a paper-compute run's label or setting) on that run's rows."""
    setting = _setting_of(tables_dir, setting)
    return _judge(claim, RunTables(tables_dir), setting, setting.split(SETTING_MARK)[-1] if setting else "")


def judge_all(tables_dir: str | os.PathLike, claims: tuple[Claim, ...] = CLAIMS) -> list[Verdict]:
    """Every claim on every run (:func:`runs`), claim by claim, runs in order."""
    tables = RunTables(tables_dir)
    found = runs(tables_dir)
    return [_judge(c, tables, s, label) for c in claims for label, s in found]


def register_frame(tables_dir: str | os.PathLike) -> pd.DataFrame:
    """The register judged on every run, one row per (claim, run): table, claim, source, the paper's
    number, run, verdict, mean difference and its 95 % interval, pairs and the numbers in words."""
    from .claims_paper import paper_number

    paper = {c: paper_number(c) for c in CLAIMS}
    rows = [{"table": v.claim.group, "claim": v.claim.text, "source": v.claim.source, "paper": paper[v.claim],
             "run": v.run, "verdict": v.verdict, "mean": v.interval.mean if v.interval else float("nan"),
             "lo": v.interval.lo if v.interval else float("nan"), "hi": v.interval.hi if v.interval else float("nan"),
             "n_pairs": v.interval.n if v.interval else 0, "rival": v.rival, "detail": v.detail}
            for v in judge_all(tables_dir)]
    return pd.DataFrame(rows, columns=["table", "claim", "source", "paper", "run", "verdict", "mean", "lo", "hi",
                                       "n_pairs", "rival", "detail"])


def verdict_frame(tables_dir: str | os.PathLike) -> pd.DataFrame:
    """The profile's own verdicts (claim, source, verdict, detail, n_seeds), e.g. for a notebook."""
    rows = [{"claim": v.claim.text, "source": v.claim.source, "verdict": v.verdict, "detail": v.detail,
             "n_seeds": v.n_seeds} for v in (judge(c, tables_dir) for c in CLAIMS)]
    return pd.DataFrame(rows, columns=["claim", "source", "verdict", "detail", "n_seeds"]).astype({"n_seeds": "int64"})


def paper_compute_verdicts(tables_dir: str | os.PathLike) -> list[tuple[str, Verdict]]:
    """(run setting, verdict) of every claim a paper-compute run could judge (its verdict is not ``not run``)."""
    tables = RunTables(tables_dir)
    return [(s, v) for label, s in runs(tables_dir) if s for c in CLAIMS
            if (v := _judge(c, tables, s, label)).verdict != NOT_RUN]
