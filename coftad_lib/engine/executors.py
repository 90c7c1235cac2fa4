"""Executors: where cells run, one after another here, in a process pool, or as Ray tasks on a cluster.

Every executor has one job, ``run(cells, data_root, cache_dir, profile) -> records`` (in the
cells' order), and the same rules:

- cached cells are read on the driver; the others are computed by
  :func:`~coftad_lib.engine.cells.compute_record` (pure: reads data, writes nothing) and the
  driver writes each returned record atomically into the cache
  (:func:`~coftad_lib.engine.cells.store_record`), so workers need the data, not the results;
- the same work asked for twice in one call (two cells with one key) is computed once;
- a cell that raises becomes a ``"failed"`` record (the error's type and message, the traceback's
  tail) while the other cells finish; with ``strict`` the first missing or failed cell raises;
- tqdm counts cells as they finish;
- ``pack=N`` (default 1) fits up to N COFT-AD cells that can share a step in one batched step on
  one worker (:mod:`coftad_lib.engine.packing`); each still gets its own record.

``"cache"`` (:class:`~coftad_lib.engine.driver.CacheOnlyExecutor`) computes nothing: cells not in
the cache come back ``"pending"`` (rendering a profile whose cells other runs compute).
``"local"`` (:class:`LocalExecutor`, the default) runs the cells in this process in order and needs
nothing beyond the package. ``"pool"`` (:class:`~coftad_lib.engine.pool.PoolExecutor`) runs them
in N spawned processes of this machine, sharing its GPU (no Ray needed). ``"ray"`` (:class:`RayExecutor`) submits each cell as a Ray task
(``pip install -e ".[cluster]"``): ``address=None`` starts a local Ray, ``"auto"`` joins a running
cluster; ``gpus_per_cell`` may be a fraction (0.25: four cells share a GPU). A worker that dies
mid-cell (out of memory, a segfault, a lost node) is retried once by Ray, then reported as failed.
Seeds travel with the cells, so all executors give the same records (timings aside). The driver-side
bookkeeping they share (cache reads, de-duplication, packing, cache writes) is
:class:`~coftad_lib.engine.driver.Driver`; :func:`run_cells` runs a list of cells into a table frame.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from ..errors import COFTADInputError
from .cells import ROW_COLUMNS, Cell, record_row
from .driver import CacheOnlyExecutor, Driver, Executor, LocalExecutor, OnDone, Outcome  # noqa: F401  (re-exported)

EXECUTORS: tuple[str, ...] = ("local", "pool", "ray", "cache")
RAY_INSTALL = 'pip install -e ".[cluster]"  (or: pip install ray)'



def require_ray() -> Any:
    """The ``ray`` module, or a :class:`COFTADInputError` that says how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise COFTADInputError(f"--executor ray needs Ray, which is not installed; run `{RAY_INSTALL}`") from exc
    return ray


class RayExecutor(Driver):
    """Each cell a Ray task with ``num_cpus=cpus_per_cell`` and ``num_gpus=gpus_per_cell``.

    Args:
        address: ``None`` starts a local Ray (``init_kwargs`` such as ``num_cpus`` go to ``ray.init``);
            ``"auto"`` or ``"ray://host:10001"`` joins a cluster. A Ray already initialised in
            this process is used as it is.
        gpus_per_cell: GPU share of one cell (0 = CPU only; 0.25 = four cells per GPU).
        cpus_per_cell: CPU cores reserved per cell.
        max_retries: Ray retries of a cell whose worker died (exceptions are never retried: a
            raising cell would raise again).
    """

    name = "ray"
    concurrency = None  # tasks spread over a cluster: not one machine's share

    def __init__(self, address: str | None = None, gpus_per_cell: float = 0.0, cpus_per_cell: float = 1.0,
                 max_retries: int = 1, init_kwargs: Mapping[str, Any] | None = None, pack: int = 1) -> None:
        super().__init__(pack)
        if gpus_per_cell < 0 or cpus_per_cell <= 0:
            raise COFTADInputError(f"RayExecutor: gpus_per_cell={gpus_per_cell}, cpus_per_cell={cpus_per_cell}; "
                                   "expected gpus >= 0 and cpus > 0")
        self.ray = require_ray()
        self.address, self.gpus_per_cell, self.cpus_per_cell = address, float(gpus_per_cell), float(cpus_per_cell)
        self.max_retries, self.init_kwargs = int(max_retries), dict(init_kwargs or {})

    def _ensure_started(self) -> None:
        if not self.ray.is_initialized():
            kw = {"include_dashboard": False, "log_to_driver": False, **self.init_kwargs}
            self.ray.init(address=self.address, **kw)
            # shut down the Ray we started before the interpreter exits (else its workers log SIGTERMs)
            atexit.register(self.ray.shutdown)
        gpus = self.ray.cluster_resources().get("GPU", 0)
        if self.gpus_per_cell > 0 and gpus < self.gpus_per_cell:
            # Ray would queue the tasks forever instead of failing
            raise COFTADInputError(f"--gpus-per-cell {self.gpus_per_cell:g}, but the Ray cluster has {gpus:g} GPUs; "
                                   "use --gpus-per-cell 0 on CPU nodes")

    def map(self, fn, calls, on_done):
        if not calls:
            return
        self._ensure_started()
        ray = self.ray
        remote = ray.remote(fn).options(num_cpus=self.cpus_per_cell, num_gpus=self.gpus_per_cell,
                                        max_retries=self.max_retries, retry_exceptions=False)
        # one copy of each shared argument (data roots, profile) in the object store
        shared: dict[int, Any] = {}
        pending = {}
        for key, args in calls.items():
            refs = [shared.setdefault(id(a), ray.put(a)) if isinstance(a, (dict, list)) else a for a in args]
            pending[remote.remote(*refs)] = key
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            key = pending.pop(ready[0])
            try:
                result = ray.get(ready[0])
            except ray.exceptions.RayTaskError as exc:  # the call's own exception (strict)
                for ref in pending:
                    ray.cancel(ref)
                raise exc.as_instanceof_cause() from None
            except ray.exceptions.RayError as exc:  # the worker died, also on its retries
                tries = f"{self.max_retries} retr{'y' if self.max_retries == 1 else 'ies'}"
                on_done(key, None, (f"worker died ({tries} used): {type(exc).__name__}", str(exc)[-2000:]))
                continue
            on_done(key, result, None)


def get_executor(executor: str | Executor = "local", **options: Any) -> Executor:
    """An executor from a name (``"local"``, ``"pool"``, ``"ray"``) or the executor itself.

    ``options`` are the executor's own: ``pack`` (all), ``workers`` (pool), ``address`` and
    ``gpus_per_cell`` (ray); None values are left to the executor's defaults. Without Ray
    installed ``"ray"`` fails at once naming the pip command.
    """
    if not isinstance(executor, str):
        if not callable(getattr(executor, "run", None)):
            raise COFTADInputError(f"executor={executor!r}: expected 'local', 'pool', 'ray' or an object with run()")
        return executor
    options = {k: v for k, v in options.items() if v is not None}
    if executor == "cache":
        return CacheOnlyExecutor()
    if executor == "local":
        options.pop("workers", None)
        options.pop("address", None)
        options.pop("gpus_per_cell", None)
        return LocalExecutor(**options)
    if executor == "pool":
        from .pool import PoolExecutor

        options.pop("address", None)
        options.pop("gpus_per_cell", None)
        return PoolExecutor(**options)
    if executor == "ray":
        options.pop("workers", None)
        return RayExecutor(**options)
    raise COFTADInputError(f"executor={executor!r}: expected one of {', '.join(EXECUTORS)}")


def check_executor(name: str) -> None:
    """Fail before any notebook runs when ``name`` is unknown or is ``"ray"`` without Ray installed."""
    if name not in EXECUTORS:
        raise COFTADInputError(f"--executor {name!r}: expected one of {', '.join(EXECUTORS)}")
    if name == "ray":
        require_ray()


def run_cells(cells: Iterable[Cell], data_root: Any, cache_dir: str | os.PathLike, profile: str, *,
              strict: bool = False, progress: bool = True, desc: str | None = None,
              executor: Any = "local") -> pd.DataFrame:
    """Run every cell (cached ones are read back) with a tqdm bar; one row per cell (:data:`ROW_COLUMNS`).

    ``auroc`` is in [0, 1] (NaN for missing or failed cells). ``executor``: a name for
    :func:`get_executor` or an :class:`Executor`. ``profile`` labels the rows (the run's profile).
    A cell that raises gives a ``"failed"`` row while the others finish (``strict``: it raises).
    """
    records = get_executor(executor).run(list(cells), data_root, cache_dir, profile, strict=strict,
                                         progress=progress, desc=desc)
    return pd.DataFrame([record_row(r) for r in records], columns=list(ROW_COLUMNS))
