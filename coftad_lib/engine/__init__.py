"""The cell engine: cached, independent units of work and where they run. Knows nothing of the paper.

- :mod:`~coftad_lib.engine.cells`: a :class:`Cell` (one detector on one few-shot task with one
  seed), its key (what it computes + library version + code fingerprint), its record, the cache.
- :mod:`~coftad_lib.engine.cache`: atomic writers, canonical JSON, :func:`cached` for other work.
- :mod:`~coftad_lib.engine.fingerprint`: the hash of the source files that decide a result.
- :mod:`~coftad_lib.engine.driver`, :mod:`~coftad_lib.engine.executors`, :mod:`~coftad_lib.engine.pool`,
  :mod:`~coftad_lib.engine.packing`: run cells here, in a process pool, on Ray, packed on a GPU.
- :mod:`~coftad_lib.engine.status`: the per-notebook status files a runner reads.
- :mod:`~coftad_lib.engine.data_paths`: where each dataset lives under a data root.
- :mod:`~coftad_lib.engine.migrate`: older caches (keys with the profile name) moved to today's keys.

Imports go one way: ``cache``/``fingerprint``/``data_paths`` <- ``cells`` <- ``packing`` <- ``driver``
<- ``pool`` / ``executors``. The paper's content (:mod:`coftad_lib.paper`) builds cells; this
package only computes them.
"""

from __future__ import annotations

from .cache import atomic_write_json, cache_dir, cached, digest
from .cells import Cell, cell_path, load_cell_task, load_features, run_cell
from .data_paths import data_roots, dataset_root
from .executors import get_executor, run_cells
from .migrate import ensure_migrated, migrate_cache
from .status import read_status, record_status

__all__ = ["Cell", "atomic_write_json", "cache_dir", "cached", "cell_path", "data_roots", "dataset_root", "digest",
           "ensure_migrated", "get_executor", "load_cell_task", "load_features", "migrate_cache", "read_status", "record_status",
           "run_cell", "run_cells"]
