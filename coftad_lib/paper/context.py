"""One run's context, built once and passed down: profile and overrides, seeds, folders, executor.

The runner builds a :class:`RunContext` from its command line and hands each notebook
:meth:`RunContext.notebook_params` (flat literals); the notebook's first code cell rebuilds the
same context with :func:`run_context`. Nothing travels through environment variables, overrides
travel as data (``OVERRIDES = {"steps": 5}``), and the profile's name only labels records (cell
keys depend on what a cell computes).

In a table notebook (the parameters cell holds PROFILE, SEEDS, DATA_ROOT, ... as flat literals)::

    run = RunContext.from_params(globals())   # the same as run_context(PROFILE, SEEDS, ...)
    one = run.example("II")         # the table's own cell for its first task and seed (paper/lesson.py)
    df = run.table("II")            # the spec's cells, computed or read from the cache
    run.show_table("II", df)        # CSV + Markdown beside the paper's values; recorded
    run.claims("II")                # the register's claims about Table II, judged on this run
    run.finish()                    # the notebook's status: what it showed, what was missing

The context keeps the books: :meth:`show_table`, :meth:`figure` and :meth:`figure_records` record
what the notebook wrote and the cells behind it, and :meth:`finish` writes the status file from
them, so a notebook holds no bookkeeping of its own.
"""

from __future__ import annotations

import functools
import json
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
#: notebook parameter -> :func:`run_context` argument (the parameters cell's names; EXECUTOR* optional)
PARAMETERS: dict[str, str] = {"PROFILE": "profile", "SEEDS": "seeds", "DATA_ROOT": "data_root",
                              "PREP_DIR": "prep_dir", "OUT_DIR": "out_dir", "NOTEBOOK": "notebook",
                              "OVERRIDES": "overrides", "EXECUTOR": "executor",
                              "EXECUTOR_OPTIONS": "executor_options"}


@dataclass
class Books:
    """What one notebook has shown: the cell frames behind it, its tables and figures (in order).

    Keyed by what was shown, so running a notebook cell twice records it once.
    """

    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    tables: dict[str, None] = field(default_factory=dict)
    figures: dict[str, None] = field(default_factory=dict)


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
    #: the notebook's books (:class:`Books`): not a setting, so neither compared nor copied by ``replace``
    books: Books = field(default_factory=Books, init=False, compare=False, repr=False)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> RunContext:
        """The context of a notebook's parameters (``globals()`` after its parameters cell):
        :func:`run_context` of PROFILE, SEEDS, DATA_ROOT, PREP_DIR, OUT_DIR, NOTEBOOK, OVERRIDES and,
        where the notebook has them, EXECUTOR and EXECUTOR_OPTIONS."""
        missing = [name for name in list(PARAMETERS)[:7] if name not in params]
        if missing:
            raise COFTADInputError(f"notebook parameters lack {', '.join(missing)} (the parameters cell assigns them)")
        return run_context(**{arg: params[name] for name, arg in PARAMETERS.items() if name in params})

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
        self.books.frames[spec_id] = df  # the figure's cells decide the notebook's status
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

    def example(self, spec_id: str) -> Any:
        """One fit of the table's main row: its own cell for the first task with data and the first
        seed, computed or read back like the table's cells (:func:`coftad_lib.paper.lesson.pick_example`)."""
        from .lesson import pick_example

        return pick_example(self, spec_id)

    def show_table(self, spec_id: str, df: pd.DataFrame) -> Any:
        """Write a table (:meth:`write`, with the committed paper-compute columns where the profile
        shows them), record it and its cells for :meth:`finish`, and return it for display."""
        path = self.write(spec_id, self.with_paper_compute(spec_id, df))
        self.books.frames[spec_id] = df
        self.books.tables[spec_id] = None
        return self.show(path)

    def figure(self, fig: Any, name: str) -> Any:
        """Save a figure (:meth:`save_figure`: PNG + PDF), record it for :meth:`finish`, return it for display."""
        self.save_figure(fig, name)
        self.books.figures[name] = None
        return fig

    def claims(self, spec_id: str) -> Any:
        """The register's claims about a table (a figure: the table it shows), judged on this run's
        tables (``<out_dir>/tables``), as Markdown (:func:`coftad_lib.paper.lesson.claims_markdown`)."""
        from .lesson import CLAIM_TABLES, _note, claims_markdown

        return _note(claims_markdown(Path(self.out_dir) / "tables", CLAIM_TABLES.get(spec_id, (spec_id,))))

    def detector_settings(self) -> dict[str, Any]:
        """The profile's detector sizes (backbone, image_size, steps, batch_size, device), overrides applied."""
        return {k: self.settings[k] for k in ("backbone", "image_size", "steps", "batch_size", "device")}

    def finish(self, results: pd.DataFrame | None = None, note: str = "") -> None:
        """Write the notebook's status (:meth:`record_status`) from what it showed: the cells behind its
        tables and figures (plus ``results``), their names, ``note``; print it in one line."""
        frames = [*self.books.frames.values(), *([] if results is None else [results])]
        path = self.record_status(frames, tables=list(self.books.tables), figures=list(self.books.figures), note=note)
        st = json.loads(Path(path).read_text())
        wrote = ", ".join([*(f"Table {t}" for t in st["tables"]), *st["figures"]])
        parts = [f"{st['n_ok']} of {st['n_cells']} cells ok" if st["n_cells"] else "",
                 f"wrote {wrote}" if wrote else "",
                 f"missing: {', '.join(m['dataset'] for m in st['missing'])}" if st["missing"] else ""]
        print(f"{self.notebook}: {st['status']}" + "".join(f"; {p}" for p in parts if p))

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
