"""Reproduction infrastructure: profiles, cached units of work, the notebook runner, status files.

What notebooks use::

    from coftad_lib.reproduce import get_profile, table_limits, make_cell, run_cells, record_status
    cells = [make_cell("II", "cifar10c", t, 10, m, s, PROFILE) for t in ... for m in ... for s in SEEDS]
    df = run_cells(cells, DATA_ROOT, cache_dir(OUT_DIR), PROFILE)
    write_table(df, "II", out_dir=f"{OUT_DIR}/tables")       # coftad_lib.results_tables
    record_status(OUT_DIR, df, tables=["II"])

The runner (``python -m coftad_lib.reproduce``) is imported lazily: importing this package does
not import papermill.
"""

from __future__ import annotations

import os
from pathlib import Path

from .cache import atomic_write_json, cached, digest
from .cells import (
    Cell,
    data_roots,
    dataset_root,
    load_cell_task,
    load_features,
    make_cell,
    run_cell,
    run_cells,
)
from .profiles import PROFILES, detector_kwargs, get_profile, table_limits
from .status import read_status, record_status


def cache_dir(out_dir: str | os.PathLike) -> Path:
    """The cell cache inside a notebook's OUT_DIR: ``<out_dir>/cache``."""
    return Path(out_dir) / "cache"


__all__ = [
    "PROFILES", "Cell", "atomic_write_json", "cache_dir", "cached", "data_roots", "dataset_root", "detector_kwargs",
    "digest", "get_profile", "load_cell_task", "load_features", "make_cell", "read_status", "record_status", "run_cell",
    "run_cells", "table_limits",
]
