"""How many torch threads a cell runs on: one per CPU cell, so a number does not depend on the executor."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from ..errors import COFTADInputError

#: intra-op torch threads of a cell that runs on a CPU. A float sum's order depends on how many
#: threads split it, and a few ulps at step 1 of a fine-tuning become visible AUROC changes after
#: 32 steps (up to 0.5 AUROC points between the local and the Ray executor on one smoke cell,
#: issue 20). One thread per cell, parallelism across worker processes, makes a number independent
#: of the executor; ``$COFTAD_CELL_THREADS`` changes it (recorded in each record's ``threads``).
CPU_CELL_THREADS = 1


def cell_thread_count() -> int:
    """Intra-op threads of a CPU cell: ``$COFTAD_CELL_THREADS`` or :data:`CPU_CELL_THREADS`."""
    raw = os.environ.get("COFTAD_CELL_THREADS", "").strip()
    if not raw:
        return CPU_CELL_THREADS
    if not raw.isdigit() or int(raw) < 1:
        raise COFTADInputError(f"COFTAD_CELL_THREADS={raw!r}: expected an int >= 1")
    return int(raw)


@contextlib.contextmanager
def cell_threads(device: str = "auto") -> Iterator[int | None]:
    """Run the block with a CPU cell's torch threads (:func:`cell_thread_count`), restored after.

    ``device`` is the cell's ``method_kwargs["device"]``. Yields the thread count, or None for a
    cell on a GPU (whose kernels do not depend on it).
    """
    import torch

    on_gpu = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if on_gpu:
        yield None
        return
    before = torch.get_num_threads()
    torch.set_num_threads(cell_thread_count())
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
