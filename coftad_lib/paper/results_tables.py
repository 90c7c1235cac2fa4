"""Our results beside the paper's: per-seed CSV, per-cell summary CSV and a Markdown table.

For table ``T`` (``"I"`` .. ``"X"``), :func:`write_table` writes into ``out_dir``:

- ``table_T.csv``: one row per setting x method x task x seed, with status, AUROC in %, the
  paper's value, profile, backbone and the software versions of that run;
- ``table_T_summary.csv``: one row per setting x method x task (plus ``avg``): seeds run, mean and
  std over seeds, paper value, difference and whether it exceeds our spread (see :func:`differs`);
- ``table_T.md``: the table laid out like the paper, each cell ``mean ± std (paper P, ours - P)``.

All values are AUROC in %; means, stds and differences use fixed decimals and rows keep the
paper's order, so two runs can be diffed line by line.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..engine.cache import atomic_write_text
from ..errors import COFTADInputError
from ..versions import VERSION_KEYS
from .paper_values import TABLE_TITLES, TABLES, display_name, is_quoted, paper_table
from .setting import SETTING_MARK, is_paper_compute, table_setting_lines  # noqa: F401  (re-exported)

#: columns a results frame must have (``run_cells`` gives them)
REQUIRED_COLUMNS: tuple[str, ...] = ("setting", "method", "task", "seed", "auroc", "status")
#: minimum difference (points of AUROC %) flagged when our spread is smaller
MIN_FLAG_POINTS = 1.0
AXES = ("setting", "task")




def differs(diff: float, std: float, min_points: float = MIN_FLAG_POINTS) -> bool:
    """Rule for "ours differs from the paper": ``|diff| > max(2 * std, min_points)``.

    ``std`` is the sample std of our per-seed values (0 with a single seed, where our spread is
    unknown and only ``min_points`` applies). The paper reports no spread, so only ours is used.
    """
    if diff is None or math.isnan(diff):
        return False
    s = 0.0 if std is None or math.isnan(std) else std
    return abs(diff) > max(2.0 * s, min_points)


def _order(values: Sequence[str], preferred: Sequence[str]) -> list[str]:
    """``values`` sorted by position in ``preferred``; others after, in first-appearance order."""
    seen = list(dict.fromkeys(values))
    rank = {v: i for i, v in enumerate(dict.fromkeys(preferred))}
    return sorted(seen, key=lambda v: (rank.get(v, len(rank)), seen.index(v)))


def _fmt(x: float, decimals: int) -> str:
    return f"{x:.{decimals}f}"


def _stats(values: pd.Series) -> tuple[int, float, float]:
    """(n, mean, sample std with ddof=1; 0.0 for one value) of the non-NaN values."""
    v = values.dropna().to_numpy(dtype=np.float64)
    if v.size == 0:
        return 0, math.nan, math.nan
    return int(v.size), float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def summarize(df: pd.DataFrame, table: str, setting_map: Mapping[str, str] | None = None,
              average: bool = True) -> pd.DataFrame:
    """Per-cell summary (see module docstring) of a results frame; AUROC in %.

    ``setting_map`` maps our setting labels to the paper's (e.g. ``{"efficientnet_lite0":
    "ResNet18"}`` when the smoke profile stands in for a column). With ``average``, an ``avg``
    task is added per setting x method: per seed the mean over our tasks (only when every task
    has a value for that seed), then mean and std over seeds. Its paper value is the paper's
    average when we ran all of the paper's tasks, else the mean of the paper's values for the
    same tasks (``paper_basis`` says which).
    """
    smap = dict(setting_map or {})
    paper = paper_table(table) if table in TABLES else pd.DataFrame(columns=["setting", "method", "task", "value"])
    pval = {(r.setting, r.method, r.task): r.value for r in paper.itertuples()}
    d = df.copy()
    d["pct"] = np.where(d["status"] == "ok", 100.0 * d["auroc"].astype(float), np.nan)
    rows = []
    for (setting, method, task), g in d.groupby(["setting", "method", "task"], sort=False):
        n, mean, std = _stats(g["pct"])
        p = pval.get((smap.get(setting, setting), method, task), math.nan)
        rows.append({"setting": setting, "method": method, "task": task, "n_ok": n,
                     "n_seeds": int(g["seed"].nunique()), "n_failed": int((g["status"] == "failed").sum()),
                     "n_pending": int((g["status"] == "pending").sum()),
                     "mean": mean, "std": std, "paper": p,
                     "paper_basis": "reported" if not math.isnan(p) else ""})
    out = pd.DataFrame(rows)
    if average and not d.empty and "avg" not in set(d["task"]):
        out = pd.concat([out, _averages(d, paper, pval, smap)], ignore_index=True)
    if out.empty:
        return out
    out["diff"] = out["mean"] - out["paper"]
    out["threshold"] = [max(2.0 * (0.0 if math.isnan(s) else s), MIN_FLAG_POINTS) for s in out["std"]]
    out["differs"] = [differs(a, s) for a, s in zip(out["diff"], out["std"], strict=True)]
    out.insert(0, "table", table)
    out.insert(2, "paper_setting", [smap.get(s, s) for s in out["setting"]])
    return out


def _paper_avg(paper: pd.DataFrame, pval: Mapping, psetting: str, method: str,
               tasks: Sequence[str]) -> tuple[float, str]:
    """The paper's average to compare with ours over ``tasks``, and its basis.

    The reported average when ``tasks`` are all of the paper's tasks of that setting, else the
    mean of the paper's values for ``tasks`` (NaN when one of them has no value).
    """
    paper_tasks = set(paper.loc[(paper["setting"] == psetting) & (paper["task"] != "avg"), "task"])
    reported = pval.get((psetting, method, "avg"), math.nan)
    if paper_tasks and set(tasks) == paper_tasks and not math.isnan(reported):
        return reported, "reported"
    vals = [pval.get((psetting, method, t), math.nan) for t in tasks]
    if vals and not any(math.isnan(v) for v in vals):
        return float(np.mean(vals)), f"mean of the paper's {len(tasks)} matching tasks"
    return math.nan, ""


def _averages(d: pd.DataFrame, paper: pd.DataFrame, pval: dict, smap: Mapping[str, str]) -> pd.DataFrame:
    rows = []
    # The avg spans every task of the setting (as the table's columns do): a method lacking one
    # of them gets no average rather than an average over fewer tasks.
    setting_tasks = {s: list(dict.fromkeys(g["task"])) for s, g in d.groupby("setting", sort=False)}
    for (setting, method), g in d.groupby(["setting", "method"], sort=False):
        tasks = setting_tasks[setting]
        wide = g.pivot_table(index="seed", columns="task", values="pct", aggfunc="mean", dropna=False)
        wide = wide.reindex(columns=tasks)
        per_seed = wide.dropna(how="any").mean(axis=1)
        n, mean, std = _stats(per_seed)
        p, basis = _paper_avg(paper, pval, smap.get(setting, setting), method, tasks)
        rows.append({"setting": setting, "method": method, "task": "avg", "n_ok": n,
                     "n_seeds": int(g["seed"].nunique()), "n_failed": int((g["status"] == "failed").sum()),
                     "n_pending": int((g["status"] == "pending").sum()),
                     "mean": mean, "std": std, "paper": p,
                     "paper_basis": basis})
    return pd.DataFrame(rows)


def _cell_text(r: pd.Series | None, paper: float, decimals: int, quoted: bool) -> str:
    ptxt = "n/a" if math.isnan(paper) else f"{paper:.2f}"
    if quoted:
        return f"quoted from [4], not run (paper {ptxt})" if not math.isnan(paper) else ""
    if r is None:
        return "" if math.isnan(paper) else f"not run (paper {ptxt})"
    n_failed = int(r.get("n_failed", 0) or 0)
    n_pending = int(r.get("n_pending", 0) or 0)
    if r["n_ok"] == 0:
        what = ("incomplete" if r["task"] == "avg" else "failed" if n_failed
                else "not computed yet" if n_pending else "missing data")
        return f"{what} (paper {ptxt})"
    body = _fmt(r["mean"], decimals) + (f" ± {_fmt(r['std'], decimals)}" if r["n_ok"] > 1 else "")
    if r["task"] != "avg" and r["n_ok"] < r["n_seeds"]:
        notes = [f"{n_failed} failed"] * bool(n_failed) + [f"{n_pending} pending"] * bool(n_pending)
        body += f" [{r['n_ok']}/{r['n_seeds']} seeds" + "".join(f", {t}" for t in notes) + "]"
    if math.isnan(paper):
        return f"{body} (paper n/a)"
    sign = "+" if r["diff"] >= 0 else "-"
    return f"{body} (paper {ptxt}, {sign}{_fmt(abs(r['diff']), decimals)})"


def _markdown(summary: pd.DataFrame, df: pd.DataFrame, table: str, columns: Sequence[str],
              decimals: int, setting_map: Mapping[str, str], cells_dir: Path | None = None) -> str:
    paper = paper_table(table) if table in TABLES else pd.DataFrame(columns=["setting", "method", "task", "value", "note"])
    smap = dict(setting_map)
    inv = {v: k for k, v in smap.items()}
    our_settings = list(dict.fromkeys(summary["setting"]))
    # paper-only rows are shown in our settings (mapped), so the comparison sits in one place
    settings = _order(our_settings, [inv.get(s, s) for s in paper["setting"]])
    settings.sort(key=is_paper_compute)  # the profile's own settings first, then the paper-compute runs
    all_methods = list(dict.fromkeys(list(summary["method"]) + list(paper["method"])))
    tasks = _order(list(dict.fromkeys(summary["task"])), list(paper["task"]) + ["avg"])
    computed_avg = "avg" not in set(df["task"])
    our_tasks = {st: [t for t in dict.fromkeys(g["task"]) if t != "avg"] for st, g in summary.groupby("setting")}
    idx = {(r.setting, r.method, r.task): r for _, r in summary.iterrows()}
    pval = {(r.setting, r.method, r.task): r.value for r in paper.itertuples()}
    sections = [a for a in AXES if a not in columns]
    axis_values = {"setting": settings, "task": tasks}
    lines = [f"# Table {table}: {TABLE_TITLES.get(table, '')}".rstrip(": "), ""]
    lines += _header(df, decimals, smap, cells_dir)
    sec_combos = _product([axis_values[a] for a in sections])
    for combo in sec_combos:
        fixed = dict(zip(sections, combo, strict=True))
        col_combos = _product([axis_values[a] for a in columns])
        if sections:
            lines += [f"## {' / '.join(str(v) for v in combo)}", ""]
        heads = [" ".join(str(v) for v in c) for c in col_combos]
        lines.append("| method | " + " | ".join(heads) + " |")
        lines.append("|---|" + "---|" * len(heads))
        # rows in the paper's order for this setting (Table IV's blocks differ), then the rest
        psec = smap.get(fixed["setting"], fixed["setting"]) if "setting" in fixed else None
        preferred = list(paper.loc[paper["setting"] == psec, "method"]) + list(paper["method"])
        for m in _order(all_methods, preferred):
            quoted = table in TABLES and is_quoted(table, m)
            cells = []
            for c in col_combos:
                key = {**fixed, **dict(zip(columns, c, strict=True))}
                s, t = key["setting"], key["task"]
                r = idx.get((s, m, t))
                if r is None and is_paper_compute(s):  # those runs have a few rows only: no "not run" noise
                    cells.append("")
                    continue
                if quoted:
                    p = pval.get((smap.get(s, s), m, t), math.nan)
                elif r is not None and not math.isnan(r["paper"]):
                    p = float(r["paper"])
                elif r is not None:
                    p = math.nan
                elif t == "avg" and computed_avg:
                    p = _paper_avg(paper, pval, smap.get(s, s), m, our_tasks.get(s, []))[0]
                else:
                    p = pval.get((smap.get(s, s), m, t), math.nan)
                cells.append(_cell_text(r, p, decimals, quoted))
            if any(cells):
                lines.append(f"| {display_name(m)} | " + " | ".join(cells) + " |")
        lines.append("")
    shown = {smap.get(st, st) for st in settings}
    lines += _footnotes(paper[paper["setting"].isin(shown) & paper["task"].isin(tasks)], summary)
    return "\n".join(lines).rstrip() + "\n"


def _product(lists: Sequence[Sequence[str]]) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = [()]
    for values in lists:
        out = [o + (v,) for o in out for v in values]
    return out


def _header(df: pd.DataFrame, decimals: int, smap: Mapping[str, str], cells_dir: Path | None = None) -> list[str]:
    # the setting on top, read from the table's cell records (imported here: setting imports this module)

    def uniq(col: str) -> str:
        if col not in df:
            return "?"
        vals = sorted({str(v) for v in df[col].dropna()})
        return ", ".join(vals) if vals else "?"

    lines = [*table_setting_lines(df, cells_dir),
             f"Profile: {uniq('profile')}; backbone: {uniq('backbone')}; seeds: {uniq('seed')}."]
    if any(k in df for k in VERSION_KEYS):
        lines.append("Versions: " + "; ".join(f"{k} {uniq(k)}" for k in VERSION_KEYS if k in df) + ".")
    lines += ["", f"AUROC in %: ours as mean ± sample std (ddof=1) over seeds with {decimals} decimal(s), "
              "then (paper value, ours minus paper). `missing data`: the dataset or weights were not "
              "found; `failed`: the cell raised (its error is listed below the table and in the run "
              "summary); `not run`: a row of the paper this run did not include.", ""]
    if smap:
        lines += ["Settings compared with another column of the paper: "
                  + ", ".join(f"ours `{k}` vs paper `{v}`" for k, v in smap.items()) + ".", ""]
    return lines


def _footnotes(paper: pd.DataFrame, summary: pd.DataFrame) -> list[str]:
    lines = []
    avg = summary[(summary["task"] == "avg") & (summary["paper_basis"] != "reported") & (summary["paper_basis"] != "")]
    if not avg.empty:
        lines.append("- avg: ours is the mean of our per-task values; where we ran a subset of the paper's "
                     "tasks it is compared with the mean of the paper's values for the same tasks.")
    # a note may hold several statements joined by " | "; each is printed once with its rows
    about: dict[str, list[str]] = {}
    for method, setting, note in zip(paper.get("method", []), paper.get("setting", []), paper.get("note", []),
                                     strict=True):
        for part in (p.strip() for p in str(note).split(" | ")):
            if part:
                about.setdefault(part, [])
                label = f"{display_name(method)} {setting}"
                if label not in about[part]:
                    about[part].append(label)
    for part, where in about.items():
        lines.append(f"- Paper ({', '.join(where)}): {part}.")
    return (["Notes:", ""] + lines + [""]) if lines else []


def write_table(df: pd.DataFrame, table: str = "II", out_dir: str | os.PathLike = "results/tables", *,
                index: str = "method", columns: Sequence[str] = ("task",),
                setting_map: Mapping[str, str] | None = None, average: bool | None = None,
                decimals: int = 1) -> dict[str, Path]:
    """Write ``table_<T>.csv``, ``table_<T>_summary.csv`` and ``table_<T>.md`` for a results frame.

    Args:
        df: :func:`coftad_lib.engine.executors.run_cells` output (several concatenated is fine); needs
            :data:`REQUIRED_COLUMNS`, ``auroc`` in [0, 1].
        table: roman numeral of the paper's table (or another name, then without paper values).
        out_dir: output folder.
        index: row field; only ``"method"`` is supported (rows are methods as in the paper).
        columns: which of ``"setting"``, ``"task"`` form the Markdown columns; the other one splits
            the Markdown into sections. Tables I-IV: ``("task",)``; V: ``("task", "setting")``;
            VI, VIII, IX, X: ``("setting",)``.
        setting_map: our setting label -> the paper's, for comparison (noted in the table).
        average: add the ``avg`` column (default: when ``columns`` is ``("task",)``).
        decimals: decimals of our values and differences.

    Returns:
        ``{"csv": path, "summary": path, "md": path}``.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in df]
    if missing:
        raise COFTADInputError(f"write_table({table!r}): results frame lacks columns {missing}; pass run_cells() output")
    if index != "method":
        raise COFTADInputError(f"write_table: index={index!r}; only 'method' rows are supported")
    columns = tuple(columns)
    if not columns or any(c not in AXES for c in columns) or len(set(columns)) != len(columns):
        raise COFTADInputError(f"write_table: columns={columns!r}; expected a non-empty subset of {AXES}")
    average = (columns == ("task",)) if average is None else average
    smap = dict(setting_map or {})
    out = Path(out_dir)
    summary = summarize(df, table, smap, average=average)
    per_seed = _per_seed(df, table, smap)
    paths = {"csv": out / f"table_{table}.csv", "summary": out / f"table_{table}_summary.csv",
             "md": out / f"table_{table}.md"}
    atomic_write_text(paths["csv"], per_seed.to_csv(index=False, float_format="%.4f", lineterminator="\n"))
    ordered = _sort(summary, table, smap)
    atomic_write_text(paths["summary"], ordered.to_csv(index=False, float_format="%.4f", lineterminator="\n"))
    # a notebook's cache is <out_dir>/cache beside <out_dir>/tables (RunContext.cache_dir)
    cells_dir = out.parent / "cache" / "cells"
    atomic_write_text(paths["md"], _markdown(ordered, df, table, columns, decimals, smap, cells_dir))
    return paths


def _sort(frame: pd.DataFrame, table: str, smap: Mapping[str, str]) -> pd.DataFrame:
    """Stable order: settings, methods and tasks in the paper's order, then ours; seeds ascending."""
    if frame.empty:
        return frame
    paper = paper_table(table) if table in TABLES else pd.DataFrame(columns=["setting", "method", "task"])
    inv = {v: k for k, v in smap.items()}
    keys = {
        "setting": _order(list(frame["setting"]), [inv.get(s, s) for s in paper["setting"]]),
        "method": _order(list(frame["method"]), list(paper["method"])),
        "task": _order(list(frame["task"]), list(paper["task"]) + ["avg"]),
    }
    f = frame.copy()
    sort_cols = []
    for col, order in keys.items():
        f[f"_{col}"] = f[col].map({v: i for i, v in enumerate(order)})
        sort_cols.append(f"_{col}")
    if "seed" in f:
        sort_cols.append("seed")
    f = f.sort_values(sort_cols, kind="stable").drop(columns=[c for c in sort_cols if c.startswith("_")])
    return f.reset_index(drop=True)


def _per_seed(df: pd.DataFrame, table: str, smap: Mapping[str, str]) -> pd.DataFrame:
    paper = paper_table(table) if table in TABLES else pd.DataFrame(columns=["setting", "method", "task", "value"])
    pval = {(r.setting, r.method, r.task): r.value for r in paper.itertuples()}
    f = df.copy()
    f["table"] = table
    f["auroc_pct"] = np.where(f["status"] == "ok", 100.0 * f["auroc"].astype(float), np.nan)
    f["paper"] = [pval.get((smap.get(s, s), m, t), math.nan)
                  for s, m, t in zip(f["setting"], f["method"], f["task"], strict=True)]
    cols = ["table", "setting", "method", "task", "seed", "status", "auroc_pct", "paper"]
    extra = [c for c in ("dataset", "shots", "detector", "profile", "backbone", "message", *VERSION_KEYS) if c in f]
    return _sort(f[cols + extra], table, smap)
