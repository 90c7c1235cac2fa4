"""Where a cell's data lives: the sub-folder of each dataset under a data root, search lists of
roots (raw data, ``$COFTAD_DATA_ROOT``, prepared data), and the ``{DATA_ROOT}`` token of task args.

Re-exported by :mod:`coftad_lib.engine.cells`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import COFTADInputError

#: dataset name -> sub-folder of DATA_ROOT handed to its loader, following each module's HOW_TO_GET
#: (``data/mvtec_ad``, ``data/aitex_crops``, ...); a dataset module may override it with a module
#: attribute ``DEFAULT_DIR``, a caller with a ``{dataset: folder}`` mapping as ``data_root``.
DATASET_DIRS: dict[str, str] = {
    "flowers17": "flowers17",
    "cifar10c": "cifar10c",
    "cifar100c": "cifar100c",
    "mvtec": "mvtec_ad",
    "aitex": "aitex_crops",
    "magnetic_tile": "magnetic_tile",
    "semicon": "semicon_slices",
    "folder": ".",
}

#: placeholder in ``task_args`` string values replaced by the data root at run time, so a path
#: argument (e.g. CIFAR's ``clean_root``) does not put a machine's absolute path into the cache key
DATA_ROOT_TOKEN = "{DATA_ROOT}"

def dataset_root(data_root: str | os.PathLike | Mapping[str, Any], dataset: str) -> Path:
    """Folder handed to ``load_task`` for ``dataset``: ``data_root/<sub-folder>`` or ``data_root[dataset]``.

    ``data_root`` may also be a list of roots (e.g. the read-only raw data, then the folder that
    data_prep writes into): the first one holding the dataset's sub-folder wins, else the first.
    """
    if isinstance(data_root, (list, tuple)):
        if not data_root:
            raise COFTADInputError("data_root: an empty list of data folders")
        candidates = [dataset_root(r, dataset) for r in data_root]
        return next((c for c in candidates if c.exists()), candidates[0])
    if isinstance(data_root, Mapping):
        if dataset not in data_root:
            raise COFTADInputError(f"data_root mapping has no entry for dataset {dataset!r}; has {sorted(data_root)}")
        return Path(data_root[dataset])
    sub = DATASET_DIRS.get(dataset, dataset)
    try:
        from ..datasets import dataset_module
        sub = getattr(dataset_module(dataset), "DEFAULT_DIR", sub)
    except (ImportError, COFTADInputError):
        pass  # the loader reports an unknown or unimplemented dataset itself, with a clearer message
    return Path(data_root) / sub


def data_roots(data_root: str | os.PathLike, prep_dir: str | os.PathLike | None = None) -> list[str]:
    """A notebook's search list: ``data_root``, then ``$COFTAD_DATA_ROOT`` (when set), then ``prep_dir``.

    :func:`dataset_root` takes the first that holds a dataset, so a notebook opened by hand with
    the default ``DATA_ROOT = "../data"`` still finds data under ``$COFTAD_DATA_ROOT``.
    """
    roots = [str(data_root)]
    env = os.environ.get("COFTAD_DATA_ROOT")
    if env and env not in roots:
        roots.append(env)
    if prep_dir is not None:
        roots.append(str(prep_dir))
    return roots


def with_root_tokens(obj: Any, data_root: str | os.PathLike | Mapping[str, Any] | Sequence[Any]) -> Any:
    """``obj`` (JSON-like) with every data folder in its strings written as :data:`DATA_ROOT_TOKEN`.

    A record's ``task_info`` names where its data came from (CIFAR-10-C's ``clean_source``); a
    committed record must not name the folders of the machine that computed it. Each folder of
    ``data_root`` (a folder, a search list, or a dataset -> folder mapping), as given and resolved,
    longest first, becomes ``{DATA_ROOT}``, the token that ``task_args`` already use.
    """
    if isinstance(data_root, Mapping):
        folders = [str(v) for v in data_root.values()]
    elif isinstance(data_root, (list, tuple)):
        folders = [str(v) for v in data_root]
    else:
        folders = [str(data_root)]
    forms = {str(Path(f).resolve()) for f in folders} | {str(Path(f)) for f in folders}
    forms = sorted((f for f in forms if len(Path(f).parts) > 1), key=len, reverse=True)  # never "/" or "."

    def swap(value: Any) -> Any:
        if isinstance(value, str):
            for folder in forms:
                if value == folder or value.startswith(folder + os.sep):
                    return DATA_ROOT_TOKEN + value[len(folder):]
            return value
        if isinstance(value, Mapping):
            return {k: swap(v) for k, v in value.items()}
        if isinstance(value, list):
            return [swap(v) for v in value]
        return value

    return swap(obj)


def _resolve_root_token(value: Any, data_root: str | os.PathLike | Mapping[str, Any]) -> Any:
    if isinstance(value, str) and value.startswith(DATA_ROOT_TOKEN):
        if isinstance(data_root, (list, tuple)):
            data_root = data_root[0]
        if isinstance(data_root, Mapping):
            raise COFTADInputError(f"task_args value {value!r} uses {DATA_ROOT_TOKEN}, but data_root is a mapping")
        return str(Path(data_root) / value[len(DATA_ROOT_TOKEN):].lstrip("/"))
    return value


