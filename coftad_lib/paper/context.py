"""One run's context, built once and passed down: profile and overrides, seeds, folders, executor.

The runner builds a :class:`RunContext` from its command line and hands each notebook
:meth:`RunContext.notebook_params` (flat literals); the notebook's first code cell rebuilds the
same context with :func:`run_context`. Nothing travels through environment variables, overrides
travel as data (``OVERRIDES = {"steps": 5}``), and the profile's name only labels records (cell
keys depend on what a cell computes).

In a table notebook::

    run = run_context(PROFILE, SEEDS, DATA_ROOT, PREP_DIR, OUT_DIR, NOTEBOOK, OVERRIDES, EXECUTOR, EXECUTOR_OPTIONS)
    df = run.table("II")            # the spec's cells, computed or read from the cache
    run.show(run.write("II", df))   # CSV + Markdown beside the paper's values
    run.record_status(df, tables=["II"])
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..engine.data_identity import DataIds
from ..engine.data_paths import data_roots
from ..engine.executors import EXECUTORS, get_executor
from ..engine.status import record_status, relative_to_roots
from ..errors import COFTADInputError
from .profiles import check_overrides, derive, table_limits
from .specs import Spec, get_spec

#: what ``EXECUTOR_OPTIONS`` may hold: pack (all executors), workers (pool), address / gpus_per_cell (ray)
EXECUTOR_OPTION_KEYS: tuple[str, ...] = ("pack", "workers", "address", "gpus_per_cell")


@dataclass(frozen=True)
class RunContext:
    """Everything one run decides once. Build with :func:`run_context` (checks and converts)."""

    profile: str
    seeds: tuple[int, ...]
    data_root: str
    prep_dir: str
    out_dir: str
    notebook: str = ""
    overrides: Mapping[str, Any] = field(default_factory=dict)
    executor: str = "local"
    executor_options: Mapping[str, Any] = field(default_factory=dict)

    @functools.cached_property
    def settings(self) -> dict[str, Any]:
        """The profile with its overrides applied (:func:`~coftad_lib.paper.profiles.derive`), and the
        run's data ids (``"data_ids"``: :class:`~coftad_lib.engine.data_identity.DataIds`), which
        every cell's key holds."""
        return {**derive(self.profile, self.overrides), "data_ids": DataIds(self.data_roots, self.cache_dir)}

    @property
    def name(self) -> str:
        """The label of this run's records: ``"paper"`` or ``"paper+steps=5"``."""
        return str(self.settings["name"])

    @property
    def data_roots(self) -> list[str]:
        """Where cells look for data: DATA_ROOT, then PREP_DIR (what the data_prep notebooks wrote)."""
        return data_roots(self.data_root, self.prep_dir)

    @property
    def cache_dir(self) -> Path:
        """The cell cache: ``<out_dir>/cache``."""
        return Path(self.out_dir) / "cache"

    def limits(self, spec_id: str) -> dict[str, Any]:
        """The profile's limits of a table or figure (tasks, shots, test cap, ...)."""
        return table_limits(self.settings, spec_id)

    def tasks(self, spec_id: str) -> list[str]:
        """The tasks (classes, categories, pairs, datasets) a table runs under this profile."""
        from .tables import table_tasks

        return table_tasks(spec_id, get_spec(spec_id).dataset, self.settings)

    def make_executor(self) -> Any:
        """The executor this run's cells go to."""
        return get_executor(self.executor, **dict(self.executor_options))

    def spec(self, spec_id: str) -> Spec:
        """The spec of a table or figure (:mod:`coftad_lib.paper.specs`)."""
        return get_spec(spec_id)

    def cells(self, spec_id: str) -> list:
        """The cells a table or figure needs in this run."""
        return get_spec(spec_id).cells(self.settings, self.seeds)

    def run_cells(self, cells: Sequence[Any], desc: str | None = None) -> pd.DataFrame:
        """Compute (or read back) ``cells``; one row per cell."""
        from ..engine.executors import run_cells

        return run_cells(cells, self.data_roots, self.cache_dir, self.name, desc=desc, executor=self.make_executor())

    def table(self, spec_id: str) -> pd.DataFrame:
        """Compute (or read back) a table's cells; the frame :meth:`write` renders."""
        return get_spec(spec_id).run(self.settings, self.seeds, self.data_roots, self.cache_dir,
                                     executor=self.make_executor())

    def with_paper_compute(self, spec_id: str, df: pd.DataFrame) -> pd.DataFrame:
        """``df`` plus the committed paper-compute runs of Tables I / VI as their own columns
        (:mod:`coftad_lib.paper.paper_compute_rows`; the headline profile only)."""
        from .paper_compute_rows import with_paper_compute

        return with_paper_compute(df, spec_id, self.name)

    def figure_records(self, spec_id: str) -> tuple[list, list[dict[str, Any]], pd.DataFrame]:
        """(cells, records with per-item scores, frame) of a figure's cells."""
        from .figure_runs import run_figure_cells

        cells = self.cells(spec_id)
        records, df = run_figure_cells(cells, self.data_roots, self.cache_dir, self.name,
                                       executor=self.make_executor())
        return cells, records, df

    def write(self, spec_id: str, df: pd.DataFrame) -> Path:
        """A table's CSVs and Markdown under ``<out_dir>/tables``; returns the Markdown path.

        Messages (a missing dataset's, a failed cell's) name folders relative to DATA_ROOT and
        PREP_DIR: committed tables must not show the folders of the machine that ran them.
        """
        return get_spec(spec_id).write(self.without_machine_paths(df), self.out_dir)

    def without_machine_paths(self, df: pd.DataFrame) -> pd.DataFrame:
        """``df`` with DATA_ROOT / PREP_DIR (as given and resolved) taken out of its ``message`` column."""
        if "message" not in df or df.empty:
            return df
        out = df.copy()
        for resolve in (True, False):
            roots = {name: str(Path(folder).resolve() if resolve else Path(folder))
                     for name, folder in (("DATA_ROOT", self.data_root), ("PREP_DIR", self.prep_dir)) if folder}
            out["message"] = [relative_to_roots(str(m), roots) if isinstance(m, str) else m for m in out["message"]]
        return out

    @staticmethod
    def show(md_path: str | os.PathLike) -> Any:
        """Display a written table in the notebook."""
        from .table_output import show

        return show(md_path)

    def record_status(self, results: Any = None, **kwargs: Any) -> Path:
        """This notebook's status file (:func:`coftad_lib.engine.status.record_status`)."""
        kwargs.setdefault("profile", self.name)
        kwargs.setdefault("roots", {name: str(Path(folder).resolve()) for name, folder in
                                    (("DATA_ROOT", self.data_root), ("PREP_DIR", self.prep_dir)) if folder})
        return record_status(self.out_dir, results, notebook=self.notebook, **kwargs)

    def save_figure(self, fig: Any, name: str) -> list[Path]:
        """PNG + PDF under ``<out_dir>/figures``, labelled with this run's profile and notebook."""
        from ..figures import save_figure

        return save_figure(fig, name, Path(self.out_dir) / "figures", profile=self.name, notebook=self.notebook)

    def notebook_params(self) -> dict[str, Any]:
        """The parameters a notebook of this run gets (flat literals; see :func:`run_context`)."""
        return {"PROFILE": self.profile, "SEEDS": list(self.seeds), "DATA_ROOT": self.data_root,
                "PREP_DIR": self.prep_dir, "OUT_DIR": self.out_dir, "NOTEBOOK": self.notebook,
                "OVERRIDES": dict(self.overrides), "EXECUTOR": self.executor,
                "EXECUTOR_OPTIONS": dict(self.executor_options)}


def run_context(profile: str, seeds: Sequence[int] | None, data_root: str | os.PathLike,
                prep_dir: str | os.PathLike, out_dir: str | os.PathLike, notebook: str = "",
                overrides: Mapping[str, Any] | None = None, executor: str = "local",
                executor_options: Mapping[str, Any] | None = None) -> RunContext:
    """A checked :class:`RunContext` (the notebook parameters, in their order).

    ``seeds`` None: the profile's. ``overrides``: profile fields to replace
    (:data:`~coftad_lib.paper.profiles.OVERRIDE_KEYS`). ``executor_options``: keys of
    :data:`EXECUTOR_OPTION_KEYS`.
    """
    over = check_overrides(overrides or {})
    if executor not in EXECUTORS:
        raise COFTADInputError(f"executor={executor!r}: expected one of {', '.join(EXECUTORS)}")
    opts = dict(executor_options or {})
    bad = sorted(set(opts) - set(EXECUTOR_OPTION_KEYS))
    if bad:
        raise COFTADInputError(f"executor options {bad}: expected keys among {', '.join(EXECUTOR_OPTION_KEYS)}")
    seed_list = derive(profile, over)["seeds"] if seeds is None else seeds
    return RunContext(profile=str(profile), seeds=tuple(int(s) for s in seed_list), data_root=str(data_root),
                      prep_dir=str(prep_dir), out_dir=str(out_dir), notebook=str(notebook), overrides=over,
                      executor=executor, executor_options={k: opts[k] for k in sorted(opts) if opts[k] is not None})
