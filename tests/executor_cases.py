"""What the executor tests share: a detector that kills its worker, a tiny profile and table.

Imported by tests/test_executors.py (Ray) and tests/test_pool_executor.py (pool), and by their
worker processes (the hooks name :func:`install_dying_detector` by module), so it lives in a
module of its own on the tests' path rather than in a test file.
"""

from __future__ import annotations

import os
from pathlib import Path

from coftad_lib.engine import cells as cells_mod
from coftad_lib.paper import get_profile, make_cell

#: volatile record fields: wall-clock timings, how many ran at once, whether the cache answered
VOLATILE = ("fit_seconds", "score_seconds", "cached", "concurrency")


class DyingDetector:
    """Test-only detector: leaves a marker per attempt, then kills its process mid-fit."""

    def __init__(self, seed: int = 0, marker_dir: str = "", **_):
        self.marker_dir = Path(marker_dir)

    def fit(self, images):
        n = len(list(self.marker_dir.glob("attempt-*")))
        (self.marker_dir / f"attempt-{n}-{os.getpid()}").touch()
        os._exit(1)


def install_dying_detector() -> None:
    """Worker setup hook: method ``"die"`` builds a :class:`DyingDetector`, the rest the registry's."""
    real = cells_mod.make_detector

    def make(method, **kwargs):
        return DyingDetector(**kwargs) if method == "die" else real(method, **kwargs)

    cells_mod.make_detector = make


def tiny_profile(name: str) -> dict:
    """smoke at 32 px, 1 step, batch 4, on the CPU."""
    prof = get_profile("smoke")
    prof.update(name=name, image_size=32, steps=1, batch_size=4, device="cpu")
    return prof


def texture_table(prof, seeds=(0, 1)) -> list:
    """Pretrained features and COFT-AD (1 step) x ``seeds`` on the folder task ``textures``."""
    return [make_cell("T", "folder", "textures", 4, m, s, prof) for m in ("pretrained", "coftad") for s in seeds]


def local_reference(cells, data_root, cache, prof) -> list[dict]:
    """The local executor's records for ``cells``, computed with 1 torch thread as each worker runs
    (pool ``threads=1``, Ray ``num_cpus=1``), so the float summation order is the same."""
    import torch

    from coftad_lib.engine.executors import LocalExecutor

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return LocalExecutor().run(cells, data_root, cache, prof, progress=False)
    finally:
        torch.set_num_threads(threads)


def stable(records) -> list[dict]:
    """``records`` without their :data:`VOLATILE` fields."""
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in records]
