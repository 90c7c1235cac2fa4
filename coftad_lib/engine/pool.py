"""``--executor pool``: cells in N worker processes of this machine, sharing its cores and GPU(s).

For one machine without Ray, above all one GPU that a single small fit leaves mostly idle (issue 9,
item 2a): ``workers`` processes each take one cell (or one pack, with ``--pack``) at a time, so N
fits run at once on the same device. The driver keeps the bookkeeping of every executor (cache
reads, de-duplication, records written as they arrive, :class:`~coftad_lib.engine.driver.Driver`).

Workers are spawned, not forked (CUDA cannot be used in a forked child), and hold their own image
cache. Each gets ``threads`` torch threads (default: this machine's cores / workers, so N workers
do not oversubscribe the CPU); with several GPUs, worker i uses GPU ``i % device_count``. A worker
that dies mid-cell (out of memory, a segfault) is replaced; its cell is retried ``max_retries``
times on the new worker, then reported ``"failed"`` ("worker died") while the others finish. An
exception raised by the call itself (a missing dataset with ``strict``) is raised by the driver.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import queue
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from ..errors import COFTADInputError
from .driver import Driver, OnDone


def check_workers(workers: Any) -> int:
    """``workers`` as an int >= 1, else a :class:`COFTADInputError` naming ``--workers``."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise COFTADInputError(f"--workers {workers!r}: expected an int >= 1")
    return workers


def _dumps(obj: Any) -> bytes:
    """``obj`` as bytes with cloudpickle when installed (the closures that Tables VIII and X map
    over travel too, as with Ray), else with pickle.

    Serialised here rather than by the queue's feeder thread, whose errors are only printed: a call
    that cannot travel would leave the driver waiting for a result that never comes.
    """
    try:
        import cloudpickle
    except ImportError:
        return pickle.dumps(obj)
    return cloudpickle.dumps(obj)


def _picklable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling (to travel back to the driver), else a RuntimeError naming it."""
    try:
        pickle.dumps(exc)
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def _worker(index: int, threads: int, inbox: Any, outbox: Any, initializer: Callable[[], None] | None,
            parent: int) -> None:
    """A worker's loop: ``(key, fn, args)`` from ``inbox`` -> ``(index, key, ok, result)`` on ``outbox``.

    Ends on ``None``, or once the driver (pid ``parent``) is gone: a driver killed by a time limit
    must not leave workers holding the GPU.
    """
    import torch

    torch.set_num_threads(threads)
    if torch.cuda.is_available() and torch.cuda.device_count() > 1:
        torch.cuda.set_device(index % torch.cuda.device_count())
    if initializer is not None:
        initializer()
    while True:
        try:
            item = inbox.get(timeout=2.0)
        except queue.Empty:
            if os.getppid() != parent:
                return
            continue
        if item is None:
            return
        key, fn, args = pickle.loads(item)
        try:
            result = fn(*args)
        except Exception as exc:  # the call's own error: the driver raises it
            outbox.put(_dumps((index, key, False, _picklable(exc))))
            continue
        try:
            outbox.put(_dumps((index, key, True, result)))
        except Exception as exc:
            outbox.put(_dumps((index, key, False, RuntimeError(f"the result of {key} cannot be sent back: {exc}"))))


class PoolExecutor(Driver):
    """Cells in ``workers`` spawned processes of this machine.

    Args:
        workers: processes running cells at once (>= 1).
        threads: torch threads per worker; default ``os.cpu_count() // workers`` (at least 1).
        max_retries: new tries of a cell whose worker died.
        initializer: called once in each new worker before its first cell (picklable by reference).
        pack: COFT-AD cells fitted per batched step (see :mod:`coftad_lib.engine.packing`).
    """

    name = "pool"

    def __init__(self, workers: int = 2, threads: int | None = None, max_retries: int = 1,
                 initializer: Callable[[], None] | None = None, pack: int = 1) -> None:
        super().__init__(pack)
        self.workers = self.concurrency = check_workers(workers)
        self.threads = int(threads) if threads else max(1, (os.cpu_count() or 1) // workers)
        self.max_retries, self.initializer = int(max_retries), initializer

    def map(self, fn, calls, on_done: OnDone) -> None:
        if calls:
            _Pool(self, fn, calls, on_done).run()


class _Pool:
    """One :meth:`PoolExecutor.map`: the worker processes, what each one is running, and retries."""

    def __init__(self, ex: PoolExecutor, fn: Callable[..., Any], calls: dict, on_done: OnDone) -> None:
        self.ex, self.fn, self.calls, self.on_done = ex, fn, calls, on_done
        self.ctx = mp.get_context("spawn")
        self.outbox = self.ctx.Queue()
        self.todo: deque[str] = deque(calls)
        self.tries: Counter[str] = Counter()
        self.procs: dict[int, tuple[Any, Any]] = {}
        self.current: dict[int, str | None] = {}

    def start(self, i: int) -> None:
        inbox = self.ctx.Queue()
        proc = self.ctx.Process(target=_worker, args=(i, self.ex.threads, inbox, self.outbox, self.ex.initializer,
                                                        os.getpid()),
                                daemon=True)
        proc.start()
        self.procs[i] = (proc, inbox)
        self.dispatch(i)

    def dispatch(self, i: int) -> None:
        key = self.todo.popleft() if self.todo else None
        self.current[i] = key
        if key is not None:
            try:
                payload = _dumps((key, self.fn, self.calls[key]))
            except Exception as exc:
                raise COFTADInputError(f"--executor pool: call {key!r} cannot be sent to a worker process "
                                       f"({type(exc).__name__}: {exc})") from exc
            self.procs[i][1].put(payload)

    def check_alive(self) -> None:
        """Replace each dead worker; retry its cell or report it."""
        for i, (proc, _) in list(self.procs.items()):
            key = self.current[i]
            if key is None or proc.is_alive():
                continue
            self.tries[key] += 1
            if self.tries[key] > self.ex.max_retries:
                n = self.ex.max_retries
                self.on_done(key, None, (f"worker died ({n} retr{'y' if n == 1 else 'ies'} used): exit code "
                                         f"{proc.exitcode}", ""))
            else:
                self.todo.appendleft(key)
            self.current[i] = None
            self.start(i)

    def run(self) -> None:
        try:
            for i in range(min(self.ex.workers, len(self.calls))):
                self.start(i)
            while any(k is not None for k in self.current.values()):
                try:
                    i, key, ok, result = pickle.loads(self.outbox.get(timeout=0.5))
                except queue.Empty:
                    self.check_alive()
                    continue
                if self.current.get(i) != key:  # from a worker that died after sending: its cell was re-queued
                    continue
                if not ok:
                    raise result
                self.current[i] = None
                self.on_done(key, result, None)
                self.dispatch(i)
                self.check_alive()
        finally:
            self.close()

    def close(self) -> None:
        for proc, inbox in self.procs.values():
            if proc.is_alive():
                inbox.put(None)
        for proc, _ in self.procs.values():
            proc.join(timeout=5)
            if proc.is_alive():  # still busy (the driver is raising): stop it
                proc.terminate()
                proc.join(timeout=5)
