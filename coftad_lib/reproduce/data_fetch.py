"""Before the first notebook: fetch the public datasets the chosen notebooks need (issue 21).

The datasets come from the same specs the notebooks render (:func:`~coftad_lib.reproduce.plan.notebook_cells`),
plus the data the tour and data-preparation notebooks read. What is absent and public is fetched
into the run's data root by :func:`coftad_lib.datasets.ensure.ensure_datasets` (checksums, resume,
a progress bar, ``--data-mirror``); what cannot be fetched is listed once, up front, with the exact
command or folder. A failed fetch never stops the run: the notebooks that need it report "missing".
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..datasets.ensure import DataReport, ensure_datasets
from ..paper.context import RunContext
from .plan import notebook_cells

#: notebooks without a spec and the dataset each reads (the tour, the three data preparations)
NOTEBOOK_DATA: dict[str, str] = {"00": "flowers17", "01": "cifar10c", "02": "aitex", "03": "semicon"}


def datasets_needed(ctx: RunContext, notebooks: Sequence[Path]) -> tuple[list[str], dict[str, list[str]]]:
    """(dataset names in first-use order, the tasks the run uses per dataset) of ``notebooks``."""
    names: list[str] = []
    tasks: dict[str, list[str]] = {}
    for nb in notebooks:
        cells = notebook_cells(nb, ctx.settings, ctx.seeds) or []
        extra = NOTEBOOK_DATA.get(nb.name[:2])
        for dataset, task in [(c.dataset, c.task) for c in cells] + ([(extra, None)] if extra else []):
            if dataset not in names:
                names.append(dataset)
            if task is not None and task not in tasks.setdefault(dataset, []):
                tasks[dataset].append(task)
    return names, tasks


def fetch_data(ctx: RunContext, notebooks: Sequence[Path], *, download: bool | None = None,
               mirror: str | None = None) -> DataReport:
    """Fetch what ``notebooks`` need into ``ctx.data_root``; returns the report (also printed).

    ``download``: False fetches nothing, None follows ``$COFTAD_NO_DOWNLOAD`` (fetch unless set);
    ``mirror``: a URL or folder of the same archive names (default ``$COFTAD_DATA_MIRROR``).
    """
    names, tasks = datasets_needed(ctx, notebooks)
    return ensure_datasets(names, ctx.data_root, mirror=mirror, download=download, tasks=tasks,
                           log=lambda line: print(f"[data] {line}", flush=True))
