"""What the runner prints while notebooks run: an estimate before, a heartbeat during.

Before the first notebook, :func:`preflight` prints one line: how many cells (fits) the selected
notebooks need, how many are cached, how many run, and, when an earlier run left measured cells in
the cache, the expected time (:func:`~coftad_lib.reproduce.plan.timings_from_cache`). It never
calibrates: ``--plan``'s calibration costs ~30 s, too much to add to every run.

While a notebook runs, a :class:`Heartbeat` thread prints a line whenever new cell records appear
in the cache (at most one per :attr:`Heartbeat.min_gap` seconds) and otherwise every
:attr:`Heartbeat.every` seconds, so the console is never silent for longer than that.

Why a thread that counts cache records rather than streaming the kernel's tqdm bars: papermill's
``log_output`` streams every output of every cell (tables, warnings) and tqdm's carriage-return
redraws arrive as fragments; tqdm also moves only when a cell finishes, so one long step (a
CIFAR-10-C generation, a t-SNE, a 5-minute fit) stayed silent for minutes. Every executor (local,
pool, Ray) stores each finished cell as ``<cache>/cells/<key>.json`` from the notebook's process,
so counting those files gives per-cell progress for any notebook and executor, and the elapsed
time covers the steps between cells; reading a folder cannot disturb the kernel.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import COFTADInputError
from ..paper.context import RunContext
from .plan import plan, timings_from_cache

#: seconds of silence after which the heartbeat prints a line even without a new cell
HEARTBEAT_EVERY = 25.0
#: fewest seconds between two lines announcing new cells (a fast table would print a line per cell)
HEARTBEAT_MIN_GAP = 5.0


def clock(seconds: float) -> str:
    """``h:mm:ss`` of a number of seconds."""
    h, rem = divmod(int(round(seconds)), 3600)
    return f"{h}:{rem // 60:02d}:{rem % 60:02d}"


def count_records(cells_dir: Path) -> int:
    """Cell records (``*.json``, not temporaries) in a cache's ``cells`` folder; 0 if it does not exist."""
    try:
        with os.scandir(cells_dir) as it:
            return sum(1 for e in it if e.name.endswith(".json") and not e.name.startswith("."))
    except FileNotFoundError:
        return 0


def _timings(cache_dir: Path) -> dict[str, Any] | None:
    """Timings measured by earlier runs in this cache, or None when it holds no timed ok cell."""
    if not (cache_dir / "cells").is_dir():
        return None
    try:
        return timings_from_cache(cache_dir)
    except COFTADInputError:
        return None


def estimate(ctx: RunContext, notebooks: Sequence[Path]) -> tuple[str, dict[str, int]]:
    """(the line to print before the run, cells to run per notebook stem of those that have cells).

    Uses only cheap information: the cells the notebooks' specs ask for, which are cached, and the
    timings of cells an earlier run measured in this cache (none: no time is given).
    """
    timings = _timings(ctx.cache_dir)
    rows = plan(ctx.settings, notebooks, ctx.seeds, ctx.cache_dir, timings or {"fits": []})
    cells, cached = sum(r["cells"] for r in rows), sum(r["cached"] for r in rows)
    to_run = {r["notebook"]: int(r["to_run"]) for r in rows if r["cells"]}  # not: tour, data preparation
    line = (f"{len(notebooks)} notebook(s); {cells} cells: {cached} cached, {sum(to_run.values())} to run, "
            f"{sum(r['shared'] for r in rows)} shared between notebooks")
    untimed = sum(r["untimed"] for r in rows)
    if ctx.executor == "cache":  # renders from the cache: the cells not in it stay "not computed yet"
        line = line.replace(" to run,", " not computed yet,")
        line += "; the cache executor computes none (`--cells-only` computes them)"
        return line, {}
    if timings is None:
        line += "; no time estimate (no measured cells in the cache yet; `--plan` calibrates one)"
    else:
        line += (f"; expected ~{clock(sum(r['seconds'] for r in rows))} for the cells"
                 + (f" + {untimed} cells of untimed families" if untimed else "")
                 + f" (timings: {timings['source']}, {timings['device']})")
    return line, to_run


def preflight(ctx: RunContext, notebooks: Sequence[Path], say: Callable[[str], None]) -> dict[str, int]:
    """Print :func:`estimate`'s line; return cells to run per notebook ({} if estimating failed).

    An estimate is a courtesy: a notebook whose spec cannot be read here (a bug, a missing
    optional package) gets a line saying so, and the run goes on.
    """
    try:
        line, to_run = estimate(ctx, notebooks)
    except Exception as exc:  # never stop a run for its estimate
        say(f"no estimate ({type(exc).__name__}: {exc})")
        return {}
    say(line)
    return to_run


class Heartbeat:
    """A thread that reports one notebook's progress: new cell records and elapsed time.

    Use as a context manager around the notebook's execution. :meth:`tick` decides what to print
    at a given time (the thread calls it every ``poll`` seconds; tests call it with a fake clock).
    """

    every = HEARTBEAT_EVERY
    min_gap = HEARTBEAT_MIN_GAP

    def __init__(self, name: str, cells_dir: Path, to_run: int | None, say: Callable[[str], None],
                 poll: float = 1.0, now: Callable[[], float] = time.monotonic) -> None:
        self.name, self.cells_dir, self.to_run, self.say, self.poll, self.now = name, cells_dir, to_run, say, poll, now
        self.start = self.last_line = now()
        self.base = self.seen = count_records(cells_dir)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self, now: float) -> str | None:
        """The line to print at ``now`` (and remember it), or None to stay quiet."""
        done = count_records(self.cells_dir) - self.base
        new = done != self.seen - self.base
        if not (new and now - self.last_line >= self.min_gap) and now - self.last_line < self.every:
            return None
        self.seen, self.last_line = self.base + done, now
        of = f" of ~{self.to_run}" if self.to_run else ""
        cells = f", {done}{of} cells computed" if done or self.to_run else ""
        return f"  {self.name}: {clock(now - self.start)} elapsed{cells}"

    def _loop(self) -> None:
        while not self._stop.wait(self.poll):
            line = self.tick(self.now())
            if line:
                self.say(line)

    def __enter__(self) -> Heartbeat:
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{self.name}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def say_reproduce(text: str) -> None:
    """Print one ``[reproduce]`` line at once (the runner's console voice)."""
    print(f"[reproduce] {text}", flush=True)


def notebook_line(i: int, n: int, name: str, run_start: float, now: float, what: str,
                  to_run: Mapping[str, int] | None = None) -> str:
    """``[i/n] name: what (...)`` with the cells it runs (when known) and the run's elapsed time."""
    cells = f"{to_run[name]} cells to run; " if to_run and name in to_run else ""
    return f"[{i}/{n}] {name}: {what} ({cells}run elapsed {clock(now - run_start)})"
