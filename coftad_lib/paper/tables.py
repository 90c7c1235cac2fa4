"""The cells of a "method x task x shots x seed" table (Tables I-VII) and how they become its layout.

A table's spec (:mod:`coftad_lib.paper.specs`) calls these; in code::

    cells = table_cells("II", "cifar10c", ["ae", "coftad"], profile, seeds)   # which work
    df = run_cells(cells, data_roots, cache_dir, profile["name"])              # coftad_lib.engine
    md = write_results(df, "II", out_dir)                                     # CSVs + Markdown

or ``df, md = run_table(...)`` for the three steps in one. Table VI's rows are :data:`ABLATION`
(:func:`ablation_cells`); Tables VIII, IX and X fit each detector once and score it in several
ways, in :mod:`coftad_lib.paper.rescored_runs`.

Which rows run: a table's methods are registry names (or :class:`Row` for relabelled variants).
By default a method the paper reports in this table only for some settings runs only there
(Table IV's 2-shot block has no CSI or CFLOW-AD row); a method the paper never reports in this
table (PatchCore on the industrial tables) is our addition and runs in every setting.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from ..engine.cells import Cell
from ..engine.executors import run_cells
from ..errors import COFTADInputError
from .paper_values import TABLES, paper_table
from .profiles import make_cell, profile_label, table_limits
from .table_output import failed_section, missing_section, show, with_task_average, write_results

#: paper column name of each backbone of Table VI
BACKBONE_COLUMNS: dict[str, str] = {"resnet18": "ResNet18", "resnet50": "ResNet50"}


@dataclass(frozen=True)
class Row:
    """One table row: its label, the registry method that computes it, and that method's overrides.

    Attributes:
        label: row name in the table and in :data:`coftad_lib.paper.paper_values.DISPLAY_NAMES`
            (e.g. ``"ablation:contrastive"``).
        method: registry name for :func:`coftad_lib.methods.make_detector`.
        kwargs: keyword arguments replacing the profile's (e.g. ``{"positive_pair": "none"}``).
    """

    label: str
    method: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)


#: Table VI rows (Sec. IV-F) as COFT-AD variants, keyed by :data:`coftad_lib.paper.paper_values.ABLATION_ROWS`.
#: "contrastive" keeps BYOL's L_Con (Eq. 1) and drops the pair losses; "+fc" pulls features to a
#: fixed Deep SVDD centre [22] instead of cross-instance pairs (Eq. 4); "-l2" drops the L2
#: normalisation before the Gaussian (Eqs. 7-8).
ABLATION: dict[str, Row] = {
    "random_init": Row("ablation:random_init", "random"),
    "pretrained_only": Row("ablation:pretrained_only", "pretrained"),
    "contrastive": Row("ablation:contrastive", "coftad", {"positive_pair": "none"}),
    "contrastive+fc": Row("ablation:contrastive+fc", "coftad", {"positive_pair": "fixed_center"}),
    "contrastive+cipp": Row("ablation:contrastive+cipp", "coftad"),
    "contrastive+cipp+np": Row("ablation:contrastive+cipp+np", "coftad_np"),
    "contrastive+cipp+np-l2": Row("ablation:contrastive+cipp+np-l2", "coftad_np", {"l2_normalize": False}),
}


def _as_row(method: str | Row) -> Row:
    if isinstance(method, Row):
        return method
    if not isinstance(method, str) or not method:
        raise COFTADInputError(f"methods: expected registry names or Row, got {method!r}")
    return Row(method, method)


def paper_methods(table: str, setting: str | None = None) -> list[str]:
    """Row names the paper reports in ``table`` (for ``setting`` only, if given), in its order."""
    if table not in TABLES:
        return []
    p = paper_table(table)
    if setting is not None:
        p = p[p["setting"] == setting]
    return list(dict.fromkeys(p["method"]))


def runs_in_setting(table: str, setting: str, label: str) -> bool:
    """Whether row ``label`` runs in ``setting``: the paper reports it there, or nowhere in ``table``.

    A setting the paper's table does not have (Table IX's cells are "10-shot", its columns anomaly
    counts) restricts nothing.
    """
    here = paper_methods(table, setting)
    if not here:
        return True
    return label in here or label not in paper_methods(table)


def table_tasks(table: str, dataset: str | None, profile: str | Mapping[str, Any]) -> list[str]:
    """The profile's task list for ``table``; ``None`` in the profile = every task of ``dataset``."""
    tasks = table_limits(profile, table)["tasks"]
    if tasks is not None:
        return list(tasks)
    if dataset is None:
        raise COFTADInputError(f"table {table!r}: the profile lists no tasks and no dataset was given")
    from ..datasets import tasks_for
    return tasks_for(dataset)


def table_cells(table: str, dataset: str | None, methods: Iterable[str | Row],
                profile: str | Mapping[str, Any], seeds: Iterable[int], *,
                shots: Iterable[int] | None = None, tasks: Iterable[str] | None = None,
                setting: str | None = None, kind: str = "score", task_args: Mapping[str, Any] | None = None,
                follow_paper: bool = True, **overrides: Any) -> list[Cell]:
    """Cells of a "method x task x shots x seed" table (Tables I-V, VII): one per combination.

    Args:
        table: ``"I"`` .. ``"X"``; picks the profile's limits (tasks, shots, test cap).
        dataset: ``load_task`` name; ``None`` when each task *is* a dataset (Tables V, VII, IX
            list ``semicon``, ``aitex``, ``magnetic_tile``).
        methods: registry names or :class:`Row`.
        profile, seeds: the run profile and seeds.
        shots / tasks: override the profile's lists.
        setting: table column label instead of ``"<shots>-shot"``.
        kind: ``"score"`` or ``"embed"``.
        task_args: extra loader arguments (merged over the task selection and test cap).
        follow_paper: skip a method in a setting where the paper has no such row although it has
            the row elsewhere in the table (see the module docstring).
        overrides: detector keyword arguments for every cell, over each Row's own, over the
            profile's ``method_overrides`` for that method (e.g. CSI's smaller batch in smoke).

    Order: task, shots, method, seed, so a table fills column by column.
    """
    lim = table_limits(profile, table)
    shot_list = [int(s) for s in (shots if shots is not None else lim["shots"])]
    task_list = list(tasks) if tasks is not None else table_tasks(table, dataset, profile)
    rows = [_as_row(m) for m in methods]
    seed_list = [int(s) for s in seeds]
    if not rows or not seed_list or not shot_list or not task_list:
        raise COFTADInputError(f"table_cells({table!r}): methods, seeds, shots and tasks must be non-empty")
    extra = dict(task_args or {})
    out = []
    for task in task_list:
        ds = dataset if dataset is not None else task
        for k in shot_list:
            label = setting if setting is not None else f"{k}-shot"
            for row in rows:
                if follow_paper and not runs_in_setting(table, label, row.label):
                    continue
                for seed in seed_list:
                    cell = make_cell(table, ds, task, k, row.method, seed, profile, setting=setting,
                                     label=None if row.label == row.method else row.label, kind=kind,
                                     **{**dict(row.kwargs), **overrides})
                    if extra:
                        # make_cell fills the task selection and test cap; loader args go on top.
                        cell = replace(cell, task_args={**cell.task_args, **extra})
                    out.append(cell)
    return out


def backbone_column(backbone: str) -> str:
    """Table VI column of a backbone: ``"resnet18"`` -> ``"ResNet18"``; other names unchanged."""
    return BACKBONE_COLUMNS.get(backbone, backbone)


def ablation_cells(profile: str | Mapping[str, Any], seeds: Iterable[int], *,
                   rows: Iterable[str] | None = None, backbones: Iterable[str] | None = None,
                   table: str = "VI", dataset: str = "cifar10c") -> list[Cell]:
    """Table VI (Sec. IV-F): every ablation row x backbone x CIFAR10-C task x seed, 10-shot.

    Columns (``setting``) are :func:`backbone_column` of each backbone of the profile's
    ``backbones`` list; row labels ``"ablation:<id>"`` (:data:`ABLATION`). With the profile's
    own backbone the cells equal Table II's COFT-AD cells and Fig. 7's, so they are computed once.
    """
    ids = list(rows) if rows is not None else list(ABLATION)
    unknown = [r for r in ids if r not in ABLATION]
    if unknown:
        raise COFTADInputError(f"ablation_cells: unknown row id(s) {unknown}; choose from {', '.join(ABLATION)}")
    bbs = list(backbones) if backbones is not None else list(table_limits(profile, table)["backbones"])
    out: list[Cell] = []
    for bb in bbs:
        out += table_cells(table, dataset, [ABLATION[r] for r in ids], profile, seeds,
                           setting=backbone_column(bb), follow_paper=False, backbone=bb)
    return out


def run_table(table: str, dataset: str | None, methods: Iterable[str | Row], profile: str | Mapping[str, Any],
              seeds: Iterable[int], data_roots: Any, out_dir: str | os.PathLike, *,
              columns: Sequence[str] = ("task",), setting_map: Mapping[str, str] | None = None,
              progress: bool = True, executor: Any = "local", **cell_kwargs: Any) -> tuple[pd.DataFrame, Path]:
    """:func:`table_cells` -> :func:`run_cells` (cache ``<out_dir>/cache``) -> :func:`write_results`.

    Returns the results frame and the Markdown path.
    """
    cells = table_cells(table, dataset, methods, profile, seeds, **cell_kwargs)
    df = run_cells(cells, data_roots, Path(out_dir) / "cache", profile_label(profile), progress=progress, desc=f"Table {table}",
                   executor=executor)
    return df, write_results(df, table, out_dir, columns=columns, setting_map=setting_map)


__all__ = ["ABLATION", "BACKBONE_COLUMNS", "Row", "ablation_cells", "backbone_column", "failed_section",
           "missing_section", "paper_methods", "run_table", "runs_in_setting", "show", "table_cells",
           "table_tasks", "with_task_average", "write_results"]
