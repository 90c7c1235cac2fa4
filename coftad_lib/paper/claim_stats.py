"""The one rule every claim of the register is judged by: a paired mean difference and its 95 % t-interval.

A comparison "row A scores above row B" is judged on the cells both rows have, paired by
(task, seed): ``d = A - B`` (AUROC, % points) per pair, then the mean of ``d`` and its two-sided
95 % t-interval ``mean ± t(0.975, n - 1) * sd / sqrt(n)`` over the ``n`` pairs (over seeds for a
one-task claim, over tasks x seeds for a claim that averages tasks):

- ``holds``: the interval lies above 0;
- ``does not hold``: the interval lies below 0;
- ``undecided``: the interval contains 0 (always so with a single pair: no spread, no interval).

A claim made of several comparisons (best of several rivals, better under every scorer) holds when
every comparison holds and does not hold when one of them does not (:func:`all_of`). A count claim
("wins k of n tasks") judges each task apart by the same rule and holds when k tasks are won, fails
when more than n - k are lost (:func:`at_least`). Where no pair exists the verdict says why:
``not run`` (a row is absent from that run), ``not computed yet`` (cells pending), ``no data``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

HOLDS, FAILS, UNDECIDED = "holds", "does not hold", "undecided"
NOT_RUN, PENDING, NO_DATA = "not run", "not computed yet", "no data"
#: verdicts without an interval, most telling first: which one a claim shows when parts lack pairs
STATUSES: tuple[str, ...] = (NOT_RUN, PENDING, NO_DATA)
LEVEL = 0.95

#: the rule in one sentence, for the report
RULE = ("Each claim is the paper's statement that one row scores above another. Ours is the mean paired "
        "difference (AUROC % points), paired by (task, seed), with its 95 % t-interval over the pairs "
        "(over seeds for one task, over tasks x seeds where the claim averages tasks): *holds* / *does not "
        "hold* when the interval lies above / below 0, else *undecided* (one pair gives no interval). A claim "
        "against several rows (best of all, under every scorer) holds when every comparison holds and fails "
        "when one fails; a count claim (k of n tasks) judges each task by the same rule and holds with k "
        "decided wins, fails with more than n - k decided losses.")


@dataclass(frozen=True)
class Interval:
    """Mean paired difference over ``n`` pairs and its 95 % t-interval (``lo``/``hi`` infinite for n = 1)."""

    mean: float
    lo: float
    hi: float
    n: int

    @property
    def verdict(self) -> str:
        """holds / does not hold / undecided (module docstring)."""
        if self.lo > 0:
            return HOLDS
        if self.hi < 0:
            return FAILS
        return UNDECIDED

    def text(self, decimals: int = 1) -> str:
        """``"+1.2 [+0.3, +2.1]"``; a single pair shows ``"+1.2 [n = 1]"``."""
        if not math.isfinite(self.lo):
            return f"{self.mean:+.{decimals}f} [n = 1]"
        return f"{self.mean:+.{decimals}f} [{self.lo:+.{decimals}f}, {self.hi:+.{decimals}f}]"


def t_interval(diffs: Sequence[float] | np.ndarray, level: float = LEVEL) -> Interval:
    """The mean of ``diffs`` (paired differences) with its two-sided t-interval at ``level``.

    Raises:
        ValueError: no finite difference.
    """
    d = np.asarray(diffs, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size == 0:
        raise ValueError("t_interval: no finite difference")
    mean = float(d.mean())
    if d.size == 1:  # no spread to estimate: the interval is the whole line
        return Interval(mean, -math.inf, math.inf, 1)
    half = float(stats.t.ppf(0.5 + level / 2, d.size - 1) * d.std(ddof=1) / math.sqrt(d.size))
    return Interval(mean, mean - half, mean + half, int(d.size))


def _first_status(verdicts: Sequence[str]) -> str | None:
    """The most telling reason for missing pairs among ``verdicts`` (:data:`STATUSES` order), if any."""
    return next((s for s in STATUSES if s in verdicts), None)


def all_of(verdicts: Sequence[str]) -> str:
    """A claim made of several comparisons: fails when one fails, holds when all hold.

    Otherwise undecided, or, when a comparison has no pairs, that comparison's reason (the claim
    cannot hold before every part is judged).
    """
    if FAILS in verdicts:
        return FAILS
    if verdicts and all(v == HOLDS for v in verdicts):
        return HOLDS
    return _first_status(verdicts) or UNDECIDED


def at_least(per_task: Sequence[str], k: int, n: int) -> str:
    """A count claim "wins ``k`` of ``n`` tasks" from each task's verdict.

    Holds with ``k`` decided wins; fails with more than ``n - k`` decided losses (``k`` wins are then
    out of reach); otherwise undecided, or the tasks' reason when no task has pairs at all.
    """
    wins, losses = per_task.count(HOLDS), per_task.count(FAILS)
    if wins >= k:
        return HOLDS
    if losses > n - k:
        return FAILS
    if per_task and all(v in STATUSES for v in per_task):
        return _first_status(per_task) or NO_DATA
    return UNDECIDED
