"""Wall-clock timing shared by the benchmark scripts (imported as ``timing`` when a script runs).

Only measurement code lives here; speed is never asserted by a test.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def timed(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds of one ``fn()`` call, CUDA-synchronised before and after so queued kernels count."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0
