"""How a table notebook's results become files: the task average, the Markdown with the paper's
values beside ours, and sections naming failed cells and missing datasets.

Re-exported by :mod:`coftad_lib.paper.tables` (notebooks call ``tr.write_results``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..engine.cache import atomic_write_text
from ..errors import COFTADInputError


def with_task_average(df: pd.DataFrame, task: str = "avg") -> pd.DataFrame:
    """``df`` plus one row per (setting, method, seed) with the mean AUROC over its tasks.

    For tables whose paper values are averages only (Table VI): the average row is then compared
    with the paper's. A seed's average is NaN unless every task of its setting is ok; its status is
    then ``pending`` when the others are only not computed yet, else ``missing``.
    """
    if df.empty:
        return df.copy()
    rows = []
    for (setting, _method, _seed), g in df.groupby(["setting", "method", "seed"], sort=False):
        tasks = set(df.loc[df["setting"] == setting, "task"])
        ok = g[g["status"] == "ok"]
        complete = set(ok["task"]) == tasks
        row = g.iloc[0].to_dict()
        # incomplete: "pending" while its cells are only not computed yet, else "missing"
        pending_only = set(g.loc[g["status"] != "ok", "status"]) <= {"pending"} and set(g["task"]) == tasks
        row.update(task=task, auroc=float(ok["auroc"].mean()) if complete else math.nan,
                   status="ok" if complete else "pending" if pending_only else "missing",
                   message="" if complete else "; ".join(sorted(set(g.loc[g["status"] != "ok", "message"]))),
                   key="", cached=bool(g["cached"].all()))
        rows.append(row)
    return pd.concat([df, pd.DataFrame(rows, columns=df.columns)], ignore_index=True)


def missing_section(df: pd.DataFrame) -> str:
    """Markdown listing each dataset with missing cells, the loader's message and how to get it."""
    if df.empty or "status" not in df:
        return ""
    miss = df[df["status"] == "missing"]
    if miss.empty:
        return ""
    lines = ["## Missing datasets", ""]
    for dataset, g in miss.groupby("dataset", sort=True):
        msg = str(g["message"].iloc[0]).strip()
        how = ""
        try:
            from ..datasets import dataset_module
            how = str(getattr(dataset_module(str(dataset)), "HOW_TO_GET", "")).strip()
        except (ImportError, COFTADInputError):
            pass
        rows_of = ", ".join(sorted(set(g["task"].astype(str))))
        first, *rest = msg.splitlines() or ["not found"]
        lines.append(f"- **{dataset}** (tasks {rows_of}) is missing: {first}")
        # the dataset's own instructions, else whatever else the loader said
        detail = how.splitlines() if how else [ln for ln in rest if ln.strip()]
        if detail:
            lines += ["", "  How to get it:", "", *[f"      {ln}" for ln in detail]]
        lines.append("")
    return "\n".join(lines)


def failed_section(df: pd.DataFrame) -> str:
    """Markdown listing every failed cell (status ``"failed"``) with its error, once per cell."""
    if df.empty or "status" not in df:
        return ""
    fail = df[df["status"] == "failed"].drop_duplicates(subset=["dataset", "task", "method", "seed", "message"])
    if fail.empty:
        return ""
    lines = ["## Failed cells", "", "| dataset | task | method | seed | error |", "|---|---|---|---:|---|"]
    for r in fail.itertuples():
        lines.append(f"| {r.dataset} | {r.task} | {r.method} | {r.seed} | {str(r.message).replace('|', '/')[:300]} |")
    return "\n".join(lines) + "\n"


def write_results(df: pd.DataFrame, table: str, out_dir: str | os.PathLike, *,
                  columns: Sequence[str] = ("task",), setting_map: Mapping[str, str] | None = None,
                  average: bool | None = None) -> Path:
    """:func:`coftad_lib.paper.results_tables.write_table` into ``<out_dir>/tables``, plus sections listing
    every failed cell with its error and every missing dataset with how to get it; returns the
    Markdown path."""
    from .results_tables import write_table

    paths = write_table(df, table, out_dir=Path(out_dir) / "tables", columns=columns,
                        setting_map=setting_map, average=average)
    extra = "\n".join(part for part in (failed_section(df), missing_section(df)) if part)
    if extra:
        text = paths["md"].read_text(encoding="utf-8").rstrip() + "\n\n" + extra.rstrip() + "\n"
        atomic_write_text(paths["md"], text)
    return paths["md"]


def show(md_path: str | os.PathLike) -> Any:
    """The Markdown file as an IPython ``Markdown`` object (rendered in a notebook), else its text."""
    text = Path(md_path).read_text(encoding="utf-8")
    try:
        from IPython.display import Markdown
    except ImportError:
        return text
    return Markdown(text)


