"""The driver side every executor shares: cache reads, de-duplication, packing, cache writes.

:class:`Driver` turns ``run(cells, ...)`` into ``map(fn, calls, on_done)`` calls; an executor
only says where a call runs (:class:`LocalExecutor` here, :class:`~coftad_lib.engine.pool.PoolExecutor`
in spawned processes, :class:`~coftad_lib.engine.executors.RayExecutor` on a cluster).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from tqdm import tqdm

from ..errors import DatasetNotFoundError, WeightsUnavailableError
from .cache import canonical_json
from .cells import (
    Cell,
    base_record,
    cached_record,
    failed_record,
    load_cell_task,
    missing_record,
    pending_record,
    store_record,
)
from .packing import check_pack, compute_pack, pack_groups

Outcome = tuple[dict[str, Any], Any]
OnDone = Callable[[str, Any, "tuple[str, str] | None"], None]


class Executor(Protocol):
    """Runs cells; returns one record per cell, in order (see the module docstring)."""

    name: str

    def run(self, cells: Sequence[Cell], data_root: Any, cache_dir: str | os.PathLike,
            profile: str, *, strict: bool = False, progress: bool = True,
            desc: str | None = None) -> list[dict[str, Any]]: ...


class Driver:
    """Driver-side bookkeeping shared by the executors: cache reads, de-duplication, packing, cache writes.

    ``pack``: at most this many COFT-AD cells that can share a step are fitted in one batched step
    (:mod:`coftad_lib.engine.packing`); 1 (the default) fits every cell alone.
    ``concurrency``: how many calls run at once on this machine (1 here, a pool's workers), written
    into each computed record so that ``fit_seconds`` can be read as throughput (``--plan-timings
    <cache folder>``); None where unknown (a Ray cluster).
    """

    name = "base"
    concurrency: int | None = 1
    #: False for an executor that only reads the cache (callers with their own work then skip it)
    computes: bool = True

    def __init__(self, pack: int = 1) -> None:
        self.pack = check_pack(pack)

    def run(self, cells: Sequence[Cell], data_root: Any, cache_dir: str | os.PathLike,
            profile: str, *, strict: bool = False, progress: bool = True,
            desc: str | None = None) -> list[dict[str, Any]]:
        cells = list(cells)
        records: list[dict[str, Any] | None] = [cached_record(c, cache_dir, profile) for c in cells]
        todo: dict[str, list[int]] = {}
        for i, (cell, rec) in enumerate(zip(cells, records, strict=True)):
            if rec is None:
                todo.setdefault(cell.key(), []).append(i)
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
            self.map(self.pack_function(), calls, finished)
        finally:
            bar.close()
        return [r for r in records if r is not None]

    def pack_function(self) -> Callable[..., list[Outcome]]:
        """What one call runs: ``fn(cells, data_root, profile, strict)`` -> one outcome per cell.

        :func:`~coftad_lib.engine.packing.compute_pack` (module level, so pool and Ray workers can
        unpickle it); the cache executor gives its own, which computes nothing.
        """
        return compute_pack

    def map(self, fn: Callable[..., Any], calls: Mapping[str, tuple], on_done: OnDone) -> None:
        """Call ``fn(*args)`` for every ``{id: args}``; ``on_done(id, result, None)`` as each finishes.

        An exception in ``fn`` propagates (the call is a cell's own error, raised with ``strict``);
        a call that could not finish for another reason (its worker died) gives
        ``on_done(id, None, (error, detail))``.
        """
        raise NotImplementedError


class LocalExecutor(Driver):
    """Today's serial loop: every cell in this process, in order."""

    name = "local"

    def map(self, fn, calls, on_done):
        for key, args in calls.items():
            on_done(key, fn(*args), None)


class CacheOnlyExecutor(LocalExecutor):
    """Reads the cache and computes nothing: a cell not in it gets a ``"pending"`` record.

    For rendering tables from a cache that other runs fill (``--cells-only``, a GPU session, the
    committed ``protocol-cpu`` cache): minutes instead of hours, and never a half-computed table
    that overwrites a finished one.
    """

    name = "cache"
    concurrency = None
    computes = False

    def __init__(self, pack: int = 1) -> None:
        super().__init__(pack)
        self._absent: dict[str, Exception | None] = {}

    def _missing(self, cell: Cell, data_root: Any) -> Exception | None:
        """The error loading ``cell``'s task raises here (its data is absent), else None; once per task.

        A cell whose data is not on this machine cannot be computed here either: it is reported
        ``"missing"`` with how to get the data, not ``"pending"``.
        """
        what = canonical_json({"dataset": cell.dataset, "task_args": dict(cell.task_args)})
        if what not in self._absent:
            try:
                load_cell_task(cell, data_root)
                self._absent[what] = None
            except (DatasetNotFoundError, WeightsUnavailableError) as exc:
                self._absent[what] = exc
        return self._absent[what]

    def pack_function(self) -> Callable[..., list[Outcome]]:
        return self._outcomes  # runs here (LocalExecutor.map): it reads this executor's memo of absent data

    def _outcomes(self, cells: Sequence[Cell], data_root: Any, profile: str, strict: bool) -> list[Outcome]:
        """``"pending"`` records, or ``"missing"`` ones where the data is absent (raised with ``strict``)."""
        outcomes: list[Outcome] = []
        for c in cells:
            exc = self._missing(c, data_root)
            if exc is not None and strict:
                raise exc
            outcomes.append((pending_record(c, profile) if exc is None
                             else missing_record(c, base_record(c, profile), exc), None))
        return outcomes
