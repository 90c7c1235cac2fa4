"""Units of work ("cells") behind every number of the paper's tables, run once and cached.

A :class:`Cell` is one detector on one few-shot task with one seed: load the task, build the
detector, fit it on the k normal shots, score the test set, compute AUROC (Sec. IV-C). The result
record is written atomically as JSON under ``<cache_dir>/cells/<key>.json``; a rerun with the same
cell (its work: dataset, task, method and kwargs, seed), library version and code fingerprint
returns it without recomputing, whichever profile or table asked for it first.

Independence: :func:`compute_record` reads only its arguments and the data folder; it builds its
own detector, passes the cell's seed to it, shares no state with other cells and writes nothing.
:func:`store_record` then writes the record into the cache. :func:`run_cell` does both in this
process; the executors of :mod:`coftad_lib.engine.executors` compute on workers (other
processes or machines, which need the data but not the results folder) and store on the driver.
Two processes racing on one cell at worst do the same work twice, and the atomic ``os.replace``
keeps one complete record.

Kinds of work (``Cell.kind``):
- ``"score"`` (default): ``fit(task.train)`` then ``score_samples(task.test)``.
- ``"embed"``: as ``"score"`` when the detector can score, plus ``embed(task.train)`` and
  ``embed(task.test)`` saved to ``<cache_dir>/cells/<key>.npz`` (read with :func:`load_features`);
  for Table VIII (other scorers on one feature extractor) and Fig. 6 (t-SNE).
Anything else (e.g. a figure's own computation) goes through :func:`coftad_lib.engine.cache.cached`.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import COFTADInputError, DatasetNotFoundError, WeightsUnavailableError
from ..versions import VERSION_KEYS, library_version, versions
from . import compute, data_paths
from .cache import atomic_save_npz, atomic_write_json, canonical_json, digest, load_npz
from .code_closure import closure_digest
from .compute import TEST_PROTOCOL_KEYS, loader_params, stored_scores  # noqa: F401  (re-exported)
from .data_paths import DATA_ROOT_TOKEN, DATASET_DIRS, _resolve_root_token, data_roots, dataset_root  # noqa: F401  (re-exported)
from .fingerprint import code_fingerprint
from .kernels import kernel_info
from .testset_files import read_record, split_test_set
from .threads import CPU_CELL_THREADS, cell_thread_count, cell_threads  # noqa: F401  (re-exported)

KINDS: tuple[str, ...] = ("score", "embed")

#: bump when the record layout changes, so old cache entries are not read as new ones
#: (2: keys from the code closure and the data id; exact scores; kernels recorded)
RECORD_SCHEMA = 2

#: modules of the engine whose code decides every cell's numbers (roots of each cell's code closure)
ENGINE_ROOTS: tuple[str, ...] = ("coftad_lib.engine.compute", "coftad_lib.engine.threads")


def table_entries(method: str, dataset: str) -> dict[str, Any]:
    """A cell's entries in the name tables its closure leaves out: the method's module, class and
    fixed arguments (:mod:`coftad_lib.methods.registry`), the dataset's module."""
    from ..datasets import DATASETS
    from ..methods.registry import FIXED_KWARGS, METHODS

    spec = METHODS.get(method)
    return {"method": [spec.module, spec.cls] if spec else None, "fixed": FIXED_KWARGS.get(method, {}),
            "dataset": DATASETS.get(dataset)}


def code_roots(method: str, dataset: str) -> tuple[str, ...]:
    """Modules whose import closure is the code a cell of ``method`` on ``dataset`` runs:
    the method's module (from the registry), the dataset's loader, and :data:`ENGINE_ROOTS`."""
    from ..datasets import DATASETS
    from ..methods.registry import METHODS

    roots = list(ENGINE_ROOTS)
    if method in METHODS:
        roots.append(METHODS[method].module)
    if dataset in DATASETS:
        roots.append(f"coftad_lib.datasets.{DATASETS[dataset]}")
    return tuple(roots)


@dataclass(frozen=True)
class Cell:
    """One unit of work: ``method`` on task ``task`` of ``dataset`` with ``shots`` shots and ``seed``.

    Attributes:
        table: the table or figure the cell belongs to (``"II"``, ``"fig7"``); a label.
        dataset: name for :func:`coftad_lib.datasets.load_task` (``"cifar10c"``, ``"mvtec"``).
        task: the table column (``"airplane"``, ``"bottle"``, ``"Daffodil/Tulip"``).
        shots: k normal training images.
        method: registry name for :func:`coftad_lib.methods.make_detector` (``"coftad_np"``).
        method_kwargs: keyword arguments of ``make_detector`` except ``seed`` (JSON-able).
        seed: seed of the task's sampling and of the detector.
        task_args: protocol arguments of ``load_task`` (select the task, e.g. ``{"task": "bottle"}``),
            plus the test-set keys of :data:`TEST_PROTOCOL_KEYS`; string values starting with
            ``"{DATA_ROOT}"`` are resolved against the data root at run time.
        setting: table setting label (default ``"<shots>-shot"``), e.g. ``"ResNet50"``, ``"N_A=5"``.
        label: table row name when it is not ``method`` (e.g. ``"ablation:contrastive"``).
        kind: ``"score"`` or ``"embed"`` (see module docstring).
        data: the id of the data the cell reads (:class:`coftad_lib.engine.data_identity.DataIds`,
            ``"sha256:..."``); None: not named (the key then holds no data).

    ``table``, ``setting`` and ``label`` are labels, not part of :meth:`key`: the same work asked
    for by two tables (Table VII's 10-shot COFT-AD is Table V's) runs once.
    """

    table: str
    dataset: str
    task: str
    shots: int
    method: str
    method_kwargs: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    task_args: Mapping[str, Any] = field(default_factory=dict)
    setting: str | None = None
    label: str | None = None
    kind: str = "score"
    data: str | None = None

    def __post_init__(self) -> None:
        for name in ("table", "dataset", "task", "method"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise COFTADInputError(f"Cell.{name}={getattr(self, name)!r}: expected a non-empty string")
        if isinstance(self.shots, bool) or not isinstance(self.shots, int) or self.shots < 0:
            raise COFTADInputError(f"Cell.shots={self.shots!r}: expected an int >= 0")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise COFTADInputError(f"Cell.seed={self.seed!r}: expected an int")
        if self.kind not in KINDS:
            raise COFTADInputError(f"Cell.kind={self.kind!r}: expected one of {', '.join(KINDS)}")
        if "seed" in self.method_kwargs:
            raise COFTADInputError("Cell.method_kwargs has 'seed': put the seed in Cell.seed (run_cell passes it)")
        # Own copies, so that mutating the caller's dicts cannot change a cell's key afterwards.
        object.__setattr__(self, "method_kwargs", json.loads(canonical_json(dict(self.method_kwargs), "Cell.method_kwargs")))
        object.__setattr__(self, "task_args", json.loads(canonical_json(dict(self.task_args), "Cell.task_args")))

    def __hash__(self) -> int:
        return hash(canonical_json(asdict(self)))

    @property
    def row_setting(self) -> str:
        """Setting label used in tables: ``setting`` or ``"<shots>-shot"``."""
        return self.setting if self.setting is not None else f"{self.shots}-shot"

    @property
    def row_method(self) -> str:
        """Row name used in tables: ``label`` or ``method``."""
        return self.label if self.label is not None else self.method

    def work(self) -> dict[str, Any]:
        """The fields that decide the result (everything except the labels table/setting/label)."""
        work = {"dataset": self.dataset, "task": self.task, "shots": self.shots, "method": self.method,
                "method_kwargs": dict(self.method_kwargs), "seed": self.seed,
                "task_args": dict(self.task_args), "kind": self.kind}
        if self.data is not None:
            work["data"] = self.data
        return work

    def code(self) -> str:
        """Digest of the code this cell runs (:func:`~coftad_lib.engine.code_closure.closure_digest`
        of :func:`code_roots`) and of its entries in the method and dataset name tables: another
        method's or dataset's code never enters it."""
        return digest({"closure": closure_digest(code_roots(self.method, self.dataset)),
                       "entries": table_entries(self.method, self.dataset)})

    def key(self) -> str:
        """SHA-256 of the cell's work (canonical JSON, its data id included) + record schema + :meth:`code`.

        No run label (profile name) and no library version enter: the same work under two profiles
        is one cell, and only a change to the code the cell runs moves its key.
        """
        return digest({"cell": self.work(), "schema": RECORD_SCHEMA, "code": self.code()})

    def fingerprint_key(self, fingerprint: str | None = None) -> str:
        """The key this cell had under schema 1, when one hash of every result-deciding file
        (``fingerprint``, default today's :func:`code_fingerprint`) was in every key
        (:func:`~coftad_lib.engine.rekey.rekey_cache` moves those records)."""
        work = {k: v for k, v in self.work().items() if k != "data"}
        return digest({"cell": work, "coftad_lib": library_version(), "schema": 1,
                       "code": fingerprint or code_fingerprint()})

    def legacy_key(self, profile: str) -> str:
        """The key this cell had before keys left the profile name out (:func:`~coftad_lib.engine.migrate.migrate_cache`)."""
        work = {k: v for k, v in self.work().items() if k != "data"}
        return digest({"cell": work, "profile": profile, "coftad_lib": library_version(),
                       "schema": 1, "code": code_fingerprint()})


def cell_path(cache_dir: str | os.PathLike, key: str) -> Path:
    """Where the record of cell ``key`` lives: ``<cache_dir>/cells/<key>.json``."""
    return Path(cache_dir) / "cells" / f"{key}.json"


def _load_task(dataset: str, root: Path, shots: int, seed: int, **task_args: Any):
    from ..datasets import load_task
    return load_task(dataset, root, shots=shots, seed=seed, **task_args)


def load_cell_task(cell: Cell, data_root: str | os.PathLike | Mapping[str, Any]):
    """The cell's FewShotTask: loader arguments from ``task_args`` (``{DATA_ROOT}`` resolved), then
    the test protocol (:func:`coftad_lib.engine.compute.load_protocol_task`)."""
    args = {k: _resolve_root_token(v, data_root) for k, v in cell.task_args.items()}
    return compute.load_protocol_task(cell.dataset, dataset_root(data_root, cell.dataset), cell.shots, cell.seed,
                                      args, loader=_load_task)


def make_detector(method: str, **kwargs: Any):
    """A registry detector (:func:`coftad_lib.engine.compute.make_detector`)."""
    return compute.make_detector(method, **kwargs)


def _how_to_get(dataset: str) -> str:
    try:
        from ..datasets import dataset_module
        return str(getattr(dataset_module(dataset), "HOW_TO_GET", ""))
    except Exception:  # a hint only; the exception message already says what is missing
        return ""


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def _labelled(record: dict[str, Any], cell: Cell, cached: bool, profile: str | None = None) -> dict[str, Any]:
    """The record with this cell's labels (a cached record may come from another table or run)."""
    out = dict(record)
    out.update(table=cell.table, setting=cell.row_setting, label=cell.row_method, cached=cached)
    if profile is not None:
        out["profile"] = profile
    return out


def run_label(profile: str | Mapping[str, Any]) -> str:
    """The label of a run's records: a string as it is, a mapping's ``"name"``."""
    return str(profile["name"]) if isinstance(profile, Mapping) else str(profile)


def base_record(cell: Cell, profile: str) -> dict[str, Any]:
    """The fields every record has, whatever became of the cell; ``profile`` labels the run."""
    prof = run_label(profile)
    backbone = cell.method_kwargs.get("backbone")
    return {"key": cell.key(), "dataset": cell.dataset, "task": cell.task, "shots": cell.shots,
            "method": cell.method, "kind": cell.kind, "seed": cell.seed, "profile": prof,
            "backbone": backbone, "method_kwargs": dict(cell.method_kwargs),
            "task_args": dict(cell.task_args), "data": cell.data,
            "versions": versions(str(cell.method_kwargs.get("device", "auto"))), "schema": RECORD_SCHEMA}


def cached_record(cell: Cell, cache_dir: str | os.PathLike, profile: str) -> dict[str, Any] | None:
    """The cell's cached record with this cell's labels and run label, or None when it has not run."""
    path = cell_path(cache_dir, cell.key())
    return _labelled(read_record(path, cache_dir), cell, True, run_label(profile)) if path.exists() else None


def compute_record(cell: Cell, data_root: str | os.PathLike | Mapping[str, Any], profile: str,
                   *, strict: bool = False) -> tuple[dict[str, Any], dict[str, np.ndarray] | None]:
    """Run one cell without touching the cache: ``(record, features)``; pure apart from reading data.

    ``features`` is ``{"train": (k, D), "test": (M, D), "labels": (M,)}`` for ``"embed"`` cells,
    else None. Executors call this on a worker and hand the result to :func:`store_record` on the
    driver, so workers need the data but not the results folder. Missing data or weights give a
    ``"missing"`` record (raised with ``strict``); any other error propagates.
    """
    with cell_threads(str(cell.method_kwargs.get("device", "auto"))) as threads:
        base = {**base_record(cell, profile), "threads": threads, **kernel_info()}
        try:
            task = load_cell_task(cell, data_root)
            detector = make_detector(cell.method, seed=cell.seed, **cell.method_kwargs)
            t0 = time.perf_counter()
            detector.fit(task.train)
            return finish_record(cell, base, task, detector, time.perf_counter() - t0, data_root)
        except (DatasetNotFoundError, WeightsUnavailableError) as exc:
            if strict:
                raise
            return missing_record(cell, base, exc), None


def missing_record(cell: Cell, base: Mapping[str, Any], exc: Exception) -> dict[str, Any]:
    """Record of a cell whose dataset or weights are not here: status ``"missing"``, how to get them."""
    return _labelled({**base, "status": "missing", "message": str(exc), "how_to_get": _how_to_get(cell.dataset),
                      "auroc": None}, cell, False)


def pending_record(cell: Cell, profile: str) -> dict[str, Any]:
    """Record of a cell that is not in the cache and was not computed (the ``"cache"`` executor).

    Status ``"pending"``: a table shows "not computed yet" where its number will be, so a profile
    whose cells take many sessions (``protocol-cpu``) renders from whatever has finished.
    """
    how = f"python -m coftad_lib.reproduce --profile {run_label(profile).split('+')[0]} --cells-only"
    return _labelled({**base_record(cell, profile), "status": "pending", "how_to_get": how, "auroc": None,
                      "message": f"not computed yet: `{how}` computes the missing cells (resumable)"}, cell, False)


def finish_record(cell: Cell, base: Mapping[str, Any], task: Any, detector: Any, fit_s: float,
                  data_root: Any = ()) -> tuple[dict[str, Any], dict[str, np.ndarray] | None]:
    """Score (and embed) with a fitted ``detector`` (:func:`coftad_lib.engine.compute.score_task`): the
    ``"ok"`` record and the features, as :func:`compute_record`; ``task_info`` names ``data_root``'s
    folders ``{DATA_ROOT}`` (:func:`.data_paths.with_root_tokens`)."""
    fields, feats = compute.score_task(detector, task, embed=cell.kind == "embed",
                                       what=f"{cell.method} on {cell.dataset}/{cell.task}")
    record = {**base, "status": "ok", "message": "", "how_to_get": "", **fields,
              "fit_seconds": round(fit_s, 3),
              "task_info": data_paths.with_root_tokens(_jsonable(task.info), data_root), "features": None}
    if feats is not None:
        record["features"] = f"{record['key']}.npz"
    return _labelled(record, cell, False), feats


def failed_record(cell: Cell, profile: str, error: str, detail: str = "") -> dict[str, Any]:
    """Record of a cell that raised (or whose worker died): status ``"failed"``, never cached.

    ``error`` is one line (``"RuntimeError: scoring exploded"``); ``detail`` the traceback's tail.
    """
    return _labelled({**base_record(cell, profile), "status": "failed", "message": error, "traceback": detail,
                      "how_to_get": "", "auroc": None}, cell, False)


#: record fields that only the cache file holds; dropped from what :func:`store_record` writes
_LABEL_FIELDS = ("table", "setting", "label", "cached")


def store_record(record: Mapping[str, Any], features: Mapping[str, np.ndarray] | None,
                 cache_dir: str | os.PathLike) -> bool:
    """Write an ``"ok"`` record (and its features) atomically into the cache; False for other statuses.

    Missing and failed records are not cached, so those cells run again once data or code is fixed.
    """
    if record.get("status") != "ok":
        return False
    path = cell_path(cache_dir, record["key"])
    if features is not None:
        atomic_save_npz(path.with_suffix(".npz"), dict(features))
    # the per-item labels / ids / kinds go to a test set file the task's other records share
    atomic_write_json(path, split_test_set({k: v for k, v in record.items() if k not in _LABEL_FIELDS}, cache_dir))
    return True


def run_cell(cell: Cell, data_root: str | os.PathLike | Mapping[str, Any], cache_dir: str | os.PathLike,
             profile: str, *, strict: bool = False) -> dict[str, Any]:
    """Run (or fetch from the cache) one cell in this process; returns its record.

    Record keys: key, status (``"ok"`` / ``"missing"``), message, how_to_get, dataset, task, shots,
    method, label, setting, table, kind, seed, profile, backbone, method_kwargs, task_args, auroc
    (in [0, 1]), scores / labels / test_ids / test_kinds (per test item), n_train, n_test,
    n_anomalous, fit_seconds, score_seconds, task_info, features (npz name or None), versions, cached.

    A missing dataset (:class:`DatasetNotFoundError`) or missing weights
    (:class:`WeightsUnavailableError`) gives a record with status ``"missing"`` and the loader's
    message (how to get it); it is not cached, so the cell runs once the data is there. With
    ``strict=True`` the exception propagates instead. Any other error propagates (the executors
    of :func:`run_cells` turn it into a ``"failed"`` record instead).
    """
    hit = cached_record(cell, cache_dir, profile)
    if hit is not None:
        return hit
    record, feats = compute_record(cell, data_root, profile, strict=strict)
    store_record(record, feats, cache_dir)
    return record


def load_features(record: Mapping[str, Any], cache_dir: str | os.PathLike) -> dict[str, np.ndarray]:
    """Embeddings of an ``"embed"`` cell: ``train`` (k, D), ``test`` (M, D), ``labels`` (M,)."""
    if not record.get("features"):
        raise COFTADInputError(f"record {record.get('key')} has no features; build the cell with kind='embed'")
    return load_npz(Path(cache_dir) / "cells" / record["features"])


#: columns of :func:`run_cells`' DataFrame, in order
ROW_COLUMNS: tuple[str, ...] = ("table", "setting", "dataset", "task", "shots", "method", "detector",
                                "kind", "seed", "auroc", "status", "message", "profile", "backbone",
                                "fit_seconds", "score_seconds", "cached", "key", *VERSION_KEYS)


def record_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """One DataFrame row (:data:`ROW_COLUMNS`) from a :func:`run_cell` record."""
    auc = record.get("auroc")
    row = {"table": record["table"], "setting": record["setting"], "dataset": record["dataset"],
           "task": record["task"], "shots": record["shots"], "method": record["label"],
           "detector": record["method"], "kind": record["kind"], "seed": record["seed"],
           "auroc": math.nan if auc is None else float(auc), "status": record["status"],
           "message": record.get("message", ""), "profile": record["profile"],
           "backbone": record.get("backbone"), "fit_seconds": record.get("fit_seconds", math.nan),
           "score_seconds": record.get("score_seconds", math.nan), "cached": record.get("cached", False),
           "key": record["key"]}
    row.update({k: record.get("versions", {}).get(k, "") for k in VERSION_KEYS})
    return row
