"""One spec per table and figure of the paper: what its notebook computes, read by the notebook,
by ``--plan`` and by ``--cells-only`` alike.

A :class:`Spec` names the notebook that renders it, the dataset, the rows (registry names or
:class:`~coftad_lib.paper.tables.Row`) and how its cells are turned into the table:

- ``"cells"``: one cell per task x shots x method x seed (Tables I-V, VII);
- ``"ablation"``: Table VI's rows x backbones (:data:`~coftad_lib.paper.tables.ABLATION`);
- ``"imbalanced"``: Table IX, each cell scored on nested imbalanced subsets;
- ``"scorers"`` / ``"n_aug"``: Tables VIII / X, each fitted detector rescored per column;
- ``"figure"``: Figs. 5-7 (the figure's own cells, :func:`~coftad_lib.paper.figure_runs.figure_cells`).

How big a run is (tasks, shots, test caps, scorers, N_A values) stays in the profile
(:mod:`~coftad_lib.paper.profiles`); what a table *is* lives here. To change a table's rows,
edit its spec: the notebook, the plan and the cell prefill all follow.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..engine.cache import cached
from ..engine.cells import Cell, cell_path
from ..errors import COFTADInputError
from . import figure_runs as fr
from . import rescored_runs as rr
from . import tables as tr
from .paper_compute_rows import setting_map_for
from .profiles import get_profile, table_limits
from .replaced_data_rows import replaced_data_frame
from .results_tables import is_paper_compute

KINDS: tuple[str, ...] = ("cells", "ablation", "imbalanced", "scorers", "n_aug", "figure")


@dataclass(frozen=True)
class Spec:
    """What one table or figure computes.

    Attributes:
        id: ``"I"`` .. ``"X"``, ``"fig5"`` .. ``"fig7"``: the key of the profile's limits and of
            :data:`coftad_lib.paper.paper_values.TABLES`.
        notebook: stem of the notebook that renders it (``"04_table_I_flowers17"``).
        kind: one of :data:`KINDS`.
        dataset: ``load_task`` name; None when each task is a dataset (Tables V, VII).
        methods: the rows (registry names or :class:`~coftad_lib.paper.tables.Row`).
        columns: table columns for :func:`~coftad_lib.paper.table_output.write_results`.
        average: add the task average (None: the table's default).
        setting_map: our setting label -> the paper's column it stands in for.
    """

    id: str
    notebook: str
    kind: str
    dataset: str | None = None
    methods: tuple[Any, ...] = ()
    columns: tuple[str, ...] = ("task",)
    average: bool | None = None
    setting_map: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise COFTADInputError(f"Spec {self.id}: kind={self.kind!r}; expected one of {', '.join(KINDS)}")

    def cells(self, profile: str | Mapping[str, Any], seeds: Sequence[int]) -> list[Cell]:
        """The cells (one per fit) this table or figure needs under ``profile`` and ``seeds``."""
        prof = get_profile(profile)
        if self.kind == "figure":
            return fr.figure_cells(self.id, prof, int(seeds[0]))
        if self.kind == "ablation":
            return tr.ablation_cells(prof, seeds, table=self.id, dataset=self.dataset or "cifar10c")
        if self.kind in ("scorers", "n_aug"):
            return rr.one_setting_cells(self.id, self.dataset, self.methods, prof, seeds, None, None)
        return tr.table_cells(self.id, self.dataset, self.methods, prof, seeds)

    def variants(self, profile: str | Mapping[str, Any]) -> tuple[list[str], Any]:
        """(columns, key extra) of a rescored table's cached scorings (Tables VIII and X)."""
        lim = table_limits(profile, self.id)
        if self.kind == "scorers":
            return [str(s) for s in lim["scorers"]], None
        if self.kind == "n_aug":
            values = [int(v) for v in lim["n_aug"]]
            return [rr.N_AUG_FORMAT.format(value=v) for v in values], {"n_aug": values}
        raise COFTADInputError(f"Spec {self.id}: only rescored tables have variants")

    def is_cached(self, cell: Cell, cache_dir: str | os.PathLike, profile: str | Mapping[str, Any]) -> bool:
        """Whether the work of ``cell`` in this table is cached (rescored tables cache their scorings)."""
        if self.kind in ("scorers", "n_aug"):
            variants, extra = self.variants(profile)
            return cached(self.cache_name, rr.rescored_parts(cell, variants, extra), lambda: None, cache_dir,
                          compute=False) is not None
        return cell_path(cache_dir, cell.key()).exists()

    @property
    def cache_name(self) -> str:
        """Name of a rescored table's cached scorings (:func:`~coftad_lib.paper.rescored_runs.run_rescored`)."""
        return {"scorers": "scorers", "n_aug": "n_aug_sweep"}.get(self.kind, "")

    @property
    def shares_cells(self) -> bool:
        """Whether a cell computed by an earlier notebook is this table's work too (not for rescorings)."""
        return self.kind not in ("scorers", "n_aug")

    def run(self, profile: str | Mapping[str, Any], seeds: Sequence[int], data_roots: Any,
            cache_dir: str | os.PathLike, *, executor: Any = "local") -> pd.DataFrame:
        """Compute (or read back) the table's cells; the frame :meth:`write` renders."""
        prof = get_profile(profile)
        if self.kind == "figure":
            raise COFTADInputError(f"Spec {self.id} is a figure: run its cells with figure_runs.run_figure_cells")
        if self.kind == "scorers":
            return rr.run_scorer_table(self.id, self.dataset, self.methods, self.variants(prof)[0], prof, seeds,
                                       data_roots, cache_dir, executor=executor)
        if self.kind == "n_aug":
            return rr.run_n_aug_table(self.id, self.dataset, self.methods, table_limits(prof, self.id)["n_aug"],
                                      prof, seeds, data_roots, cache_dir, executor=executor)
        cells = self.cells(prof, seeds)
        if self.kind == "imbalanced":
            lim = table_limits(prof, self.id)
            return rr.run_imbalanced(cells, data_roots, cache_dir, prof, lim["n_anomalies"], lim["n_normal"],
                                     executor=executor)
        df = tr.run_cells(cells, data_roots, cache_dir, prof["name"], desc=f"Table {self.id}", executor=executor)
        # records of a replaced dataset copy (JPEG-era CIFAR-10): a setting of their own, never the headline
        old = replaced_data_frame(cells, prof, data_roots, cache_dir)
        if not old.empty:
            old = tr.with_task_average(old) if self.kind == "ablation" else old
        df = tr.with_task_average(df) if self.kind == "ablation" else df
        return df if old.empty else pd.concat([df, old], ignore_index=True)

    def write(self, df: pd.DataFrame, out_dir: str | os.PathLike) -> Path:
        """The table's CSVs and Markdown under ``<out_dir>/tables``; returns the Markdown path."""
        smap = dict(self.setting_map)
        own = [str(x) for x in dict.fromkeys(df.get("setting", [])) if not is_paper_compute(x)]
        if own:  # paper-compute columns compare with the paper's column our own setting stands in for
            smap.update(setting_map_for(df, smap.get(own[0], own[0])))
        return tr.write_results(df, self.id, out_dir, columns=self.columns, setting_map=smap or None,
                                average=self.average)


#: every table and figure of the paper, in the series' order
SPECS: dict[str, Spec] = {s.id: s for s in (
    Spec("I", "04_table_I_flowers17", "cells", "flowers17",
         ("ae", "vae", "deepsvdd", "csi", "cflow", "coftad", "cutpaste", "coftad_np")),
    Spec("II", "05_table_II_cifar10c", "cells", "cifar10c",
         ("ae", "vae", "deepsvdd", "csi", "rotnet", "coftad", "cutpaste", "coftad_np")),
    Spec("III", "06_table_III_cifar100c", "cells", "cifar100c", ("ae", "vae", "deepsvdd", "cutpaste", "coftad_np")),
    # DifferNet* and TDG* are rows the paper quotes; PatchCore is ours
    Spec("IV", "07_table_IV_mvtec", "cells", "mvtec",
         ("ae", "vae", "deepsvdd", "csi", "cflow", "coftad", "cutpaste", "coftad_np", "patchcore")),
    Spec("V", "08_table_V_industrial", "cells", None,
         ("ae", "vae", "deepsvdd", "rotnet", "cutpaste", "coftad", "patchcore"), columns=("task", "setting")),
    Spec("VI", "09_table_VI_ablation", "ablation", "cifar10c", tuple(tr.ABLATION.values()), columns=("setting",),
         setting_map={"efficientnet_lite0": "ResNet18"}),
    Spec("VII", "10_table_VII_negative_pairs", "cells", None, ("coftad", "coftad_np"), average=False),
    Spec("VIII", "11_table_VIII_scorers", "scorers", "flowers17", ("pretrained", "coftad", "coftad_np"),
         columns=("setting",)),
    Spec("IX", "12_table_IX_imbalanced", "imbalanced", "semicon", ("deepsvdd", "vae", "ae", "coftad"),
         columns=("setting",)),
    Spec("X", "13_table_X_n_aug", "n_aug", "flowers17", ("coftad", "coftad_np"), columns=("setting",)),
    Spec("fig5", "14_fig5_qualitative", "figure", "flowers17"),
    Spec("fig6", "15_fig6_tsne", "figure", "cifar10c"),
    Spec("fig7", "16_fig7_score_distributions", "figure", "cifar10c"),
)}


def get_spec(spec_id: str) -> Spec:
    """The spec of table or figure ``spec_id`` (``"I"`` .. ``"X"``, ``"fig5"`` .. ``"fig7"``)."""
    if spec_id not in SPECS:
        raise COFTADInputError(f"no table or figure {spec_id!r}; known: {', '.join(SPECS)}")
    return SPECS[spec_id]


def spec_for_notebook(stem: str) -> Spec | None:
    """The spec a notebook (file stem) renders; None for notebooks without cells (tour, data prep)."""
    return next((s for s in SPECS.values() if s.notebook == stem), None)
