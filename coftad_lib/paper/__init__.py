"""The paper's content: profiles, one spec per table and figure, the runs behind them, their output.

- :mod:`~coftad_lib.paper.context`: :func:`run_context`, one run's frozen settings, what notebooks use.
- :mod:`~coftad_lib.paper.specs`: :data:`SPECS`, what each table and figure computes (read by the
  notebooks, ``--plan`` and ``--cells-only``).
- :mod:`~coftad_lib.paper.profiles`: how big a run is (smoke, paper, paper-dry) and the cell factory.
- :mod:`~coftad_lib.paper.tables`, :mod:`~coftad_lib.paper.rescored_runs`,
  :mod:`~coftad_lib.paper.figure_runs`: the cells of each kind of table and figure.
- :mod:`~coftad_lib.paper.results_tables`, :mod:`~coftad_lib.paper.table_output`,
  :mod:`~coftad_lib.paper.report`: tables beside the paper's values, the report.
- :mod:`~coftad_lib.paper.paper_values`: the paper's printed numbers.
- :mod:`~coftad_lib.paper.prep_runs`, :mod:`~coftad_lib.paper.method_tour`: notebooks 00-03.
- :mod:`~coftad_lib.paper.migration`: fitted models and rescorings of an older cache moved to today's keys.

It builds on :mod:`coftad_lib.engine` (cells, cache, executors) and is driven by
:mod:`coftad_lib.reproduce` (the runner); it imports neither the runner nor the study.
"""

from __future__ import annotations

from ..engine import (
    Cell,
    atomic_write_json,
    cache_dir,
    cached,
    data_roots,
    dataset_root,
    digest,
    load_cell_task,
    load_features,
    read_status,
    record_status,
    run_cell,
    run_cells,
)
from .context import RunContext, run_context
from .profiles import PROFILES, detector_kwargs, get_profile, make_cell, table_limits
from .specs import SPECS, Spec, get_spec

__all__ = [
    "PROFILES", "SPECS", "Cell", "RunContext", "Spec", "atomic_write_json", "cache_dir", "cached", "data_roots",
    "dataset_root", "detector_kwargs", "digest", "get_profile", "get_spec", "load_cell_task", "load_features",
    "make_cell", "read_status", "record_status", "run_cell", "run_cells", "run_context", "table_limits",
]
