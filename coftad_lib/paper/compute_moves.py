"""How much the compute moves the answer: protocol-cpu's cells minus each paper-compute run's, paired.

The committed profile (protocol-cpu: Lite0 at 128 px, CIFAR at 64 px, 32 steps, batch 16, CPU) and
the paper-compute runs (issue 19: the same Lite0 at the paper's batch 64 and 100 steps, other image
sizes and devices) share rows: Table VI's CIFAR-10-C start and both fine-tunings, Table I's
Flowers17 COFT-AD rows, and MVTec bottle (unit records only, no table column). Each row is paired
by (task, seed) and summarised by the register's rule (:func:`coftad_lib.paper.claim_stats.t_interval`):
the mean of protocol-cpu minus the run and its 95 % t-interval.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from . import paper_compute_rows as pcr
from .claims import RunTables, Side, compare, runs
from .paper_values import TABLE_TITLES, display_name

#: tables whose rows the runs share with the profile (paper_compute_rows.ROWS), with the dataset shown
SHARED: dict[str, str] = {"VI": "CIFAR-10-C", "I": "Flowers17"}
#: unit-record families that have no table column: family -> (table, setting format, dataset shown)
EXTRA_FAMILIES: dict[str, tuple[str, str, str]] = {"bottle": ("IV", "{shots}-shot", "MVTec AD bottle")}
_EXTRA_ROWS = {"wo_np": "coftad", "w_np": "coftad_np"}  # scored with the EMA target, as the table columns


def extra_frame(root: str | os.PathLike | None = None) -> pd.DataFrame:
    """The unit records of :data:`EXTRA_FAMILIES` as table rows (table, setting, method, task, seed, auroc_pct, run)."""
    from ..unit_records import read_units

    folder = pcr.default_root() if root is None else Path(root)
    rows = []
    for rec in read_units(folder) if folder.is_dir() else []:
        spec = EXTRA_FAMILIES.get(str(rec.get("family")))
        method = _EXTRA_ROWS.get(str(rec.get("config")))
        if spec is None or method is None or rec.get("auroc_target") is None:
            continue
        rows.append({"table": spec[0], "setting": spec[1].format(shots=rec.get("shots")), "method": method,
                     "task": str(rec["task"]), "seed": int(rec["seed"]), "status": "ok",
                     "auroc_pct": float(rec["auroc_target"]), "run": str(rec.get("profile", ""))})
    return pd.DataFrame(rows, columns=["table", "setting", "method", "task", "seed", "status", "auroc_pct", "run"])


def _row(table: str, dataset: str, method: str, label: str, own: pd.DataFrame, run: pd.DataFrame,
         setting: str | None = None) -> str | None:
    """One Markdown row: protocol-cpu vs the run on one table row, or None when they share no cell."""
    tasks = sorted(set(run.loc[run["method"] == method, "task"].astype(str)) - {"avg"})
    c = compare(own, Side(table, method, setting), run, Side(table, method, setting), tasks)
    if c.interval is None:
        return None
    return (f"| {dataset} (Table {table}) | {display_name(method)} | {label} | {c.mean_better:.1f} | {c.mean_worse:.1f} "
            f"| {c.interval.text()} | {c.interval.n} ({c.n_tasks} x {c.n_seeds}) |")


def _rows(tables_dir: str | os.PathLike, units_root: str | os.PathLike | None) -> list[str]:
    tables = RunTables(tables_dir)
    found = runs(tables_dir)
    out = []
    for table, dataset in SHARED.items():
        own = tables.frame(table, None)
        for label, setting in found[1:]:
            run = tables.frame(table, setting)
            if own is None or run is None:
                continue
            for method in dict.fromkeys(run["method"]):
                if " [" not in method and (row := _row(table, dataset, method, label, own, run)):
                    out.append(row)  # the online-network rows have no protocol-cpu counterpart
    extra = extra_frame(units_root)
    for (family_table, setting, label), run in extra.groupby(["table", "setting", "run"], sort=False):
        own = tables.frame(family_table, None)
        dataset = next(d for t, _, d in EXTRA_FAMILIES.values() if t == family_table)
        for method in dict.fromkeys(run["method"]) if own is not None else []:
            if row := _row(family_table, f"{dataset}, {setting}", method, label, own, run, setting):
                out.append(row)
    return out


def compute_section(tables_dir: str | os.PathLike, units_root: str | os.PathLike | None = None) -> list[str]:
    """Markdown lines of "How much the compute moves the answer" (module docstring); empty without runs."""
    rows = _rows(tables_dir, units_root)
    if not rows:
        return []
    own = runs(tables_dir)[0][0]
    return ["## How much the compute moves the answer", "",
            f"The same Lite0 rows on the same tasks and seeds, computed at {own}'s compute and at each paper-compute "
            "run's (the setting table above says what differs). The difference is "
            f"{own} minus the run, paired by (task, seed), with its 95 % t-interval over the pairs: a negative "
            f"number means the run (the paper's batch and steps, its image size and device) scores higher than {own}. "
            "COFT-AD rows are scored with the EMA "
            f"target in both. Tables: {', '.join(f'{t} ({TABLE_TITLES.get(t, t)})' for t in SHARED)}; MVTec bottle "
            "from the unit records only.", "",
            f"| dataset | row | run | {own} | run | {own} - run [95 % CI] | pairs (tasks x seeds) |",
            "|---|---|---|---:|---:|---|---|", *rows, ""]

