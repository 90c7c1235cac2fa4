"""Every dataset of the paper behind one entry point, :func:`load_task`.

Each dataset module exposes ``load(root, shots, seed, **protocol_args) -> FewShotTask`` and
``TASKS`` (the task names a table iterates over). Modules are imported lazily so that a
user who needs one dataset does not import them all.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from ..errors import COFTADInputError
from .task import FewShotTask

#: a name table for cell keys (coftad_lib/engine/code_closure.py): adding a dataset here moves no
#: other dataset's key; each cell's key holds its own DATASETS entry
__key_table__ = True

#: dataset name -> module in this package implementing it
DATASETS: dict[str, str] = {
    "flowers17": "flowers17",
    "cifar10c": "cifar_c",
    "cifar100c": "cifar_c",
    "mvtec": "mvtec",
    "aitex": "aitex",
    "magnetic_tile": "magnetic_tile",
    "semicon": "semicon",
    "folder": "folder",
}


def dataset_module(dataset: str):
    """Import the module implementing ``dataset``."""
    if dataset not in DATASETS:
        raise COFTADInputError(f"dataset={dataset!r} is not known; choose one of {', '.join(DATASETS)}")
    return importlib.import_module(f"{__name__}.{DATASETS[dataset]}")


def tasks_for(dataset: str) -> list[str]:
    """The task names a table iterates over for ``dataset`` (classes, categories, pairs)."""
    mod = dataset_module(dataset)
    by_variant = getattr(mod, "TASKS_BY_VARIANT", None)
    return list(by_variant[dataset] if by_variant else mod.TASKS)


def load_task(
    dataset: str, root: str | os.PathLike, shots: int, seed: int = 0, **protocol_args: Any
) -> FewShotTask:
    """Build the paper's few-shot protocol for ``dataset`` from the data under ``root``.

    Sampling of shots and test subsets is deterministic given ``seed``.

    Example:
        >>> load_task("magnetic_tile", root="data/Magnetic-tile-defect-datasets.", shots=10, seed=0)
    """
    mod = dataset_module(dataset)
    if dataset in ("cifar10c", "cifar100c"):
        protocol_args.setdefault("variant", dataset)
    return mod.load(root, shots=shots, seed=seed, **protocol_args)


__all__ = ["FewShotTask", "load_task", "tasks_for", "dataset_module", "DATASETS"]
