"""Executors: where the cells of a table run, one after another here or as Ray tasks on a cluster.

Every executor has one job, ``run(cells, data_root, cache_dir, profile) -> records`` (in the
cells' order), and the same rules:

- cached cells are read on the driver; the others are computed by
  :func:`~coftad_lib.reproduce.cells.compute_record` (pure: reads data, writes nothing) and the
  driver writes each returned record atomically into the cache
  (:func:`~coftad_lib.reproduce.cells.store_record`), so workers need the data, not the results;
- the same work asked for twice in one call (two cells with one key) is computed once;
- a cell that raises becomes a ``"failed"`` record (the error's type and message, the traceback's
  tail) while the other cells finish; with ``strict`` the first missing or failed cell raises;
- tqdm counts cells as they finish;
- ``pack=N`` (default 1) fits up to N COFT-AD cells that can share a step in one batched step on
  one worker (:mod:`coftad_lib.reproduce.packing`); each still gets its own record.

``"local"`` (:class:`LocalExecutor`, the default) runs the cells in this process in order and needs
nothing beyond the package. ``"pool"`` (:class:`~coftad_lib.reproduce.pool.PoolExecutor`) runs them
in N spawned processes of this machine, sharing its GPU (no Ray needed). ``"ray"`` (:class:`RayExecutor`) submits each cell as a Ray task
(``pip install -e ".[cluster]"``): ``address=None`` starts a local Ray, ``"auto"`` joins a running
cluster; ``gpus_per_cell`` may be a fraction (0.25: four cells share a GPU). A worker that dies
mid-cell (out of memory, a segfault, a lost node) is retried once by Ray, then reported as failed.
Seeds travel with the cells, so both executors give the same records (timings aside).
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from tqdm import tqdm

from ..errors import COFTADInputError
from .cells import Cell, cached_record, failed_record, store_record
from .packing import ENV_PACK, check_pack, compute_pack, pack_groups

#: environment variables the runner sets so that a notebook's ``EXECUTOR = "ray"`` reaches the
#: cluster named on the command line (``--address``, ``--gpus-per-cell``)
ENV_RAY_ADDRESS = "COFTAD_RAY_ADDRESS"
ENV_GPUS_PER_CELL = "COFTAD_GPUS_PER_CELL"
EXECUTORS: tuple[str, ...] = ("local", "pool", "ray")
RAY_INSTALL = 'pip install -e ".[cluster]"  (or: pip install ray)'

Outcome = tuple[dict[str, Any], Any]
OnDone = Callable[[str, Any, "tuple[str, str] | None"], None]


class Executor(Protocol):
    """Runs cells; returns one record per cell, in order (see the module docstring)."""

    name: str

    def run(self, cells: Sequence[Cell], data_root: Any, cache_dir: str | os.PathLike,
            profile: str | Mapping[str, Any], *, strict: bool = False, progress: bool = True,
            desc: str | None = None) -> list[dict[str, Any]]: ...


class _Base:
    """Driver-side bookkeeping shared by the executors: cache reads, de-duplication, packing, cache writes.

    ``pack``: at most this many COFT-AD cells that can share a step are fitted in one batched step
    (:mod:`coftad_lib.reproduce.packing`); 1 (the default) fits every cell alone.
    ``concurrency``: how many calls run at once on this machine (1 here, a pool's workers), written
    into each computed record so that ``fit_seconds`` can be read as throughput (``--plan-timings
    <cache folder>``); None where unknown (a Ray cluster).
    """

    name = "base"
    concurrency: int | None = 1

    def __init__(self, pack: int = 1) -> None:
        self.pack = check_pack(pack)

    def run(self, cells: Sequence[Cell], data_root: Any, cache_dir: str | os.PathLike,
            profile: str | Mapping[str, Any], *, strict: bool = False, progress: bool = True,
            desc: str | None = None) -> list[dict[str, Any]]:
        cells = list(cells)
        prof = profile if isinstance(profile, str) else str(profile["name"])
        records: list[dict[str, Any] | None] = [cached_record(c, cache_dir, profile) for c in cells]
        todo: dict[str, list[int]] = {}
        for i, (cell, rec) in enumerate(zip(cells, records, strict=True)):
            if rec is None:
                todo.setdefault(cell.key(prof), []).append(i)
        bar = tqdm(total=len(cells), desc=desc or "cells", disable=not progress, unit="cell")
        bar.update(len(cells) - sum(len(v) for v in todo.values()))

        def done(key: str, outcome: Outcome) -> None:
            record, feats = outcome
            if self.concurrency is not None:
                record = {**record, "concurrency": self.concurrency}
            store_record(record, feats, cache_dir)
            for i in todo[key]:
                c = cells[i]
                records[i] = {**record, "table": c.table, "setting": c.row_setting, "label": c.row_method}
            bar.update(len(todo[key]))

        work = {k: cells[v[0]] for k, v in todo.items()}
        packs = {g[0]: g for g in pack_groups(work, self.pack)}  # a pack is named by its first key

        def finished(name: str, outcomes: Any, error: tuple[str, str] | None) -> None:
            for j, key in enumerate(packs[name]):
                done(key, outcomes[j] if error is None else (failed_record(work[key], profile, *error), None))

        try:
            calls = {name: (tuple(work[k] for k in keys), data_root, profile, strict) for name, keys in packs.items()}
            self.map(compute_pack, calls, finished)
        finally:
            bar.close()
        return [r for r in records if r is not None]

    def map(self, fn: Callable[..., Any], calls: Mapping[str, tuple], on_done: OnDone) -> None:
        """Call ``fn(*args)`` for every ``{id: args}``; ``on_done(id, result, None)`` as each finishes.

        An exception in ``fn`` propagates (the call is a cell's own error, raised with ``strict``);
        a call that could not finish for another reason (its worker died) gives
        ``on_done(id, None, (error, detail))``.
        """
        raise NotImplementedError


class LocalExecutor(_Base):
    """Today's serial loop: every cell in this process, in order."""

    name = "local"

    def map(self, fn, calls, on_done):
        for key, args in calls.items():
            on_done(key, fn(*args), None)


def require_ray() -> Any:
    """The ``ray`` module, or a :class:`COFTADInputError` that says how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise COFTADInputError(f"--executor ray needs Ray, which is not installed; run `{RAY_INSTALL}`") from exc
    return ray


class RayExecutor(_Base):
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


def _option_from_env(options: dict[str, Any], name: str, env: str) -> None:
    """``options[name]`` from the int in environment variable ``env`` unless given (the runner's flags)."""
    value = os.environ.get(env)
    if value:
        try:
            options.setdefault(name, int(value))
        except ValueError:
            raise COFTADInputError(f"{env}={value!r}: expected an int >= 1") from None


def get_executor(executor: str | Executor = "local", **options: Any) -> Executor:
    """An executor from a name (``"local"``, ``"pool"``, ``"ray"``) or the executor itself.

    ``"pool"`` takes ``workers`` from ``options``, else from ``COFTAD_WORKERS`` (``--workers``).
    ``"ray"`` takes ``address`` and ``gpus_per_cell`` from ``options``, else from
    :data:`ENV_RAY_ADDRESS` / :data:`ENV_GPUS_PER_CELL` (set by the runner's ``--address`` /
    ``--gpus-per-cell``); without Ray installed it fails at once naming the pip command. Both take
    ``pack`` from ``options``, else from :data:`~coftad_lib.reproduce.packing.ENV_PACK` (``--pack``).
    """
    if not isinstance(executor, str):
        if not callable(getattr(executor, "run", None)):
            raise COFTADInputError(f"executor={executor!r}: expected 'local', 'pool', 'ray' or an object with run()")
        return executor
    _option_from_env(options, "pack", ENV_PACK)
    if executor == "local":
        return LocalExecutor(**options)
    if executor == "pool":
        from .pool import ENV_WORKERS, PoolExecutor

        _option_from_env(options, "workers", ENV_WORKERS)
        return PoolExecutor(**options)
    if executor == "ray":
        options.setdefault("address", os.environ.get(ENV_RAY_ADDRESS) or None)
        gpus = os.environ.get(ENV_GPUS_PER_CELL)
        if gpus:
            options.setdefault("gpus_per_cell", float(gpus))
        return RayExecutor(**options)
    raise COFTADInputError(f"executor={executor!r}: expected one of {', '.join(EXECUTORS)}")


def check_executor(name: str) -> None:
    """Fail before any notebook runs when ``name`` is unknown or is ``"ray"`` without Ray installed."""
    if name not in EXECUTORS:
        raise COFTADInputError(f"--executor {name!r}: expected one of {', '.join(EXECUTORS)}")
    if name == "ray":
        require_ray()
