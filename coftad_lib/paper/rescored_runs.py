"""Tables VIII, IX and X: each detector fitted once, then scored or evaluated in several ways.

Table VIII scores one fitted extractor with several scoring functions, Table X with several N_A,
Table IX evaluates one scored test set on nested imbalanced subsets. The cells are those of
:func:`coftad_lib.paper.tables.table_cells`; fitted detectors are kept under
``<cache_dir>/models/`` (:func:`fitted_detector`) so that a new scoring does not refit.

    from coftad_lib.paper import rescored_runs as rr
    df = rr.run_scorer_table("VIII", "flowers17", EXTRACTORS, SCORERS, PROFILE, SEEDS, DATA_ROOTS, cache)
"""

from __future__ import annotations

import math
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..engine import cells as cells_mod
from ..engine.cache import cached
from ..engine.cells import Cell, record_row
from ..engine.executors import get_executor
from ..engine.packing import error_text
from ..errors import COFTADInputError, DatasetNotFoundError, WeightsUnavailableError
from ..versions import versions
from .profiles import profile_label, table_limits
from .tables import Row, table_cells, table_tasks

# -- Table IX ---------------------------------------------------------------------------------


def _missing_row(record: Mapping[str, Any], setting: str) -> dict[str, Any]:
    row = record_row(record)
    row.update(setting=setting, auroc=math.nan)
    return row


def imbalanced_auroc(record: Mapping[str, Any], n_normal: int, n_anomalies: int, task_name: str) -> float:
    """AUROC of a scored cell on the Table IX subset: ``n_normal`` normals, ``n_anomalies`` anomalies.

    The subset is :func:`coftad_lib.datasets.protocols.imbalanced` of the cell's test set with
    the cell's seed, so it is the test set a cell with ``task_args={"imbalanced": ...}`` would
    score (``task_name`` must be the loaded task's name, as that seeds the draw).
    """
    from ..datasets import protocols
    from ..datasets.task import FewShotTask
    from ..metrics import auroc

    labels = np.asarray(record["labels"], dtype=np.int64)
    scores = np.asarray(record["scores"], dtype=np.float64)
    index_task = FewShotTask(dataset=record["dataset"], name=task_name, train=[], test=list(range(len(labels))),
                             test_labels=labels, test_kinds=list(record["test_kinds"]), train_ids=[],
                             test_ids=list(record["test_ids"]))
    keep = np.asarray(protocols.imbalanced(index_task, n_normal=n_normal, n_anomalies=n_anomalies,
                                           seed=int(record["seed"])).test, dtype=np.int64)
    return auroc(scores[keep], labels[keep])


def run_imbalanced(cells: Iterable[Cell], data_roots: Any, cache_dir: str | os.PathLike,
                   profile: str | Mapping[str, Any], n_anomalies: Iterable[int], n_normal: int, *,
                   setting_format: str = "{n} anomalies", strict: bool = False,
                   executor: Any = "local") -> pd.DataFrame:
    """Table IX (Sec. V-F): each cell fitted once and scored on its full test set, then AUROC on
    ``n_normal`` normals + ``n`` anomalies for every ``n`` of ``n_anomalies``.

    The paper notes the normal/anomaly ratio does not affect training, so one fitted model per
    method and seed is evaluated on every subset (nested: the 5 anomalies are among the 10).
    Returns a :func:`run_cells`-style frame with one row per cell x ``n`` (setting
    ``"<n> anomalies"``); a cell with missing data gives ``missing`` rows.
    """
    counts = [int(n) for n in n_anomalies]
    if not counts:
        raise COFTADInputError("run_imbalanced: n_anomalies is empty")
    cells = list(cells)
    if any("imbalanced" in cell.task_args for cell in cells):
        raise COFTADInputError("run_imbalanced: give cells without task_args['imbalanced']; "
                               "the subsets are made here")
    records = get_executor(executor).run(cells, data_roots, cache_dir, profile_label(profile), strict=strict,
                                         desc="Table IX cells")
    rows = []
    for cell, rec in zip(cells, records, strict=True):
        for n in counts:
            setting = setting_format.format(n=n)
            if rec["status"] != "ok":
                rows.append(_missing_row(rec, setting))
                continue
            row = record_row(rec)
            row.update(setting=setting, auroc=imbalanced_auroc(rec, n_normal, n, cell.task))
            rows.append(row)
    return pd.DataFrame(rows, columns=list(cells_mod.ROW_COLUMNS))


# -- Tables VIII and X: one fit, several scorings -------------------------------------------------

#: Table X's column label of each N_A
N_AUG_FORMAT = "N_A={value}"
#: key of the test labels in a cached scorings dict
_LABELS = "__labels__"


def _score_with(detector: Any, scorers: Sequence[str], train: Any, test: Any,
                scorer_kwargs: dict[str, dict[str, Any]] | None = None) -> dict[str, np.ndarray]:
    from ..methods.scorers import score_with
    return score_with(detector, list(scorers), train, test, scorer_kwargs=scorer_kwargs)


ScoreFn = Callable[[Any, Any], Mapping[str, np.ndarray]]


def model_dir(cache_dir: str | os.PathLike, cell: Cell) -> Path:
    """Where :func:`fitted_detector` keeps the fitted detector of ``cell``: ``<cache_dir>/models/<key>``."""
    return Path(cache_dir) / "models" / cell.key()


def rescored_parts(cell: Cell, variants: Sequence[str], extra: Any = None) -> dict[str, Any]:
    """What keys one cell's cached rescorings (:func:`run_rescored`): its cell key, the variants, ``extra``."""
    return {"cell": cell.key(), "variants": [str(v) for v in variants], "extra": extra}


def fitted_detector(cell: Cell, task: Any, cache_dir: str | os.PathLike) -> Any:
    """``cell``'s detector fitted on ``task.train``, fitted once per cell key across tables.

    Detectors with ``save`` / ``load`` (the COFT-AD family: coftad, coftad_np, pretrained,
    random) are written to :func:`model_dir` after fitting and loaded from there afterwards, so
    Tables VIII and X, which score the same fitted COFT-AD in different ways, train it once.
    The folder appears atomically (written aside, then renamed). Other detectors are refitted.
    """
    det = cells_mod.make_detector(cell.method, seed=cell.seed, **cell.method_kwargs)
    folder = model_dir(cache_dir, cell)
    if not (callable(getattr(det, "save", None)) and callable(getattr(type(det), "load", None))):
        return det.fit(task.train)
    if (folder / "config.json").is_file():
        return type(det).load(folder, device=str(cell.method_kwargs.get("device", "auto")))
    det.fit(task.train)
    tmp = folder.parent / f".{folder.name}.{uuid.uuid4().hex}.tmp"
    det.save(tmp)
    try:
        os.replace(tmp, folder)
    except OSError:  # another process saved the same model first: keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
    return det


def _fit_and_score(cell: Cell, data_roots: Any, score_fn: ScoreFn, variants: Sequence[str],
                   cache_dir: str | os.PathLike) -> dict[str, np.ndarray]:
    """Fit ``cell``'s detector on its shots (or load it, :func:`fitted_detector`); ``score_fn(detector,
    task)`` scores the test set in several ways. Returns ``{variant: (M,) float64 scores,
    "__labels__": (M,) int64}``.

    Raises:
        COFTADInputError: ``score_fn`` left out a variant or returned a wrong number of scores
            (before anything is cached).
    """
    task = cells_mod.load_cell_task(cell, data_roots)
    det = fitted_detector(cell, task, cache_dir)
    out = {str(k): np.asarray(v, dtype=np.float64).ravel() for k, v in score_fn(det, task).items()}
    labels = np.asarray(task.test_labels, dtype=np.int64)
    lost = [v for v in variants if v not in out]
    if lost:
        raise COFTADInputError(f"{cell.method} on {cell.dataset}/{cell.task}: score_fn gave no scores for {lost}")
    bad = {v: out[v].shape for v in variants if out[v].shape != labels.shape}
    if bad:
        raise COFTADInputError(f"{cell.method} on {cell.dataset}/{cell.task}: {len(labels)} test items "
                               f"but scores of shapes {bad}")
    return {**{v: out[v] for v in variants}, _LABELS: labels}


def _rescored_outcome(cell: Cell, data_roots: Any, score_fn: ScoreFn, variants: Sequence[str],
                      cache_dir: str | os.PathLike, strict: bool) -> tuple[str, Any]:
    """:func:`_fit_and_score` as ``("ok", scores)``, ``("missing", message)`` or ``("failed", (error, detail))``."""
    try:
        return "ok", _fit_and_score(cell, data_roots, score_fn, variants, cache_dir)
    except (DatasetNotFoundError, WeightsUnavailableError) as exc:
        if strict:
            raise
        return "missing", str(exc)
    except Exception as exc:
        if strict:
            raise
        return "failed", error_text(exc)


def run_rescored(cells: Iterable[Cell], variants: Sequence[str], score_fn: ScoreFn, data_roots: Any,
                 cache_dir: str | os.PathLike, profile: str | Mapping[str, Any], *, name: str,
                 key_extra: Any = None, strict: bool = False, executor: Any = "local") -> pd.DataFrame:
    """Fit each cell's detector once and score its test set once per variant (a table column).

    ``score_fn(detector, task)`` returns ``{variant: (M,) scores}`` for every name in
    ``variants``. The scores are cached with :func:`cached` under ``name`` and the key
    ``(cell key, variants, key_extra)``, so ``key_extra`` must hold whatever else decides them;
    fitted COFT-AD-family detectors are kept too (:func:`fitted_detector`) and shared by every
    caller with the same cell (across machines only when they share ``cache_dir``).
    The fits run on ``executor`` (see :func:`run_cells`); the driver caches the scores.
    Returns a :func:`run_cells`-style frame, one row per cell x variant (``setting`` = variant);
    cells with missing data or weights give ``missing`` rows (not cached), cells that raised
    ``failed`` rows.
    """
    from ..metrics import auroc

    variant_list = [str(v) for v in variants]
    if not variant_list:
        raise COFTADInputError(f"run_rescored({name!r}): no variants")
    prof_name = profile_label(profile)
    cells = list(cells)
    parts = {c: rescored_parts(c, variant_list, key_extra) for c in cells}
    outcomes: dict[str, tuple[str, Any]] = {}
    todo = {}
    for c in cells:
        hit = cached(name, parts[c], lambda: None, cache_dir, compute=False)
        if hit is not None:
            outcomes[c.key()] = ("ok", hit)
        else:
            todo[c.key()] = (c, data_roots, score_fn, variant_list, cache_dir, strict)

    def finished(key: str, result: Any, error: tuple[str, str] | None) -> None:
        if error is not None:
            result = ("failed", error)
        elif result[0] == "ok":
            cell = todo[key][0]
            result = ("ok", cached(name, parts[cell], lambda: result[1], cache_dir))
        outcomes[key] = result

    ex = get_executor(executor)
    if ex.computes:
        ex.map(_rescored_outcome, todo, finished)
    else:  # a cache-only run: scorings not cached yet are pending, as its cells are
        outcomes.update({k: ("pending", "not computed yet: `--cells-only` computes it") for k in todo})
    rows = []
    for cell in cells:
        key = cell.key()
        base = {"key": key, "dataset": cell.dataset, "task": cell.task, "shots": cell.shots,
                "method": cell.method, "label": cell.row_method, "kind": name, "seed": cell.seed,
                "profile": prof_name, "backbone": cell.method_kwargs.get("backbone"), "table": cell.table,
                "versions": versions(str(cell.method_kwargs.get("device", "auto")))}
        status, value = outcomes[key]
        if status == "ok":
            rows += [record_row({**base, "setting": v, "status": "ok", "message": "",
                                 "auroc": auroc(value[v], value[_LABELS])}) for v in variant_list]
        else:
            message = value if status in ("missing", "pending") else value[0]
            rows += [record_row({**base, "setting": v, "status": status, "message": message, "auroc": None})
                     for v in variant_list]
    return pd.DataFrame(rows, columns=list(cells_mod.ROW_COLUMNS))


def one_setting_cells(table: str, dataset: str, methods: Iterable[str | Row], profile: str | Mapping[str, Any],
                       seeds: Iterable[int], task: str | None, shots: int | None) -> list[Cell]:
    lim = table_limits(profile, table)
    task = task if task is not None else table_tasks(table, dataset, profile)[0]
    shots = int(shots if shots is not None else lim["shots"][0])
    return table_cells(table, dataset, methods, profile, seeds, shots=[shots], tasks=[task], follow_paper=False)


def run_scorer_table(table: str, dataset: str, extractors: Iterable[str | Row], scorers: Iterable[str],
                     profile: str | Mapping[str, Any], seeds: Iterable[int], data_roots: Any,
                     cache_dir: str | os.PathLike, *, task: str | None = None, shots: int | None = None,
                     strict: bool = False, executor: Any = "local") -> pd.DataFrame:
    """Table VIII (Sec. V-D): each feature extractor fitted once per seed, scored by every scorer.

    Rows (``method``) are extractors (``pretrained``, ``coftad``, ``coftad_np``), columns
    (``setting``) scorer names of :data:`coftad_lib.methods.scorers.SCORERS`. ``"gaussian"`` is
    the detector's own Eq. 8 score (as in the paper, where that column equals Table I); the
    others come from :func:`coftad_lib.methods.scorers.score_with` on the same fitted network.
    Task and shots default to the profile's first task and shots of ``table``.
    """
    scorer_list = list(scorers)
    if not scorer_list:
        raise COFTADInputError(f"run_scorer_table({table!r}): scorers is empty")
    others = [s for s in scorer_list if s != "gaussian"]

    def score_fn(det: Any, task: Any) -> dict[str, np.ndarray]:
        out = {}
        if "gaussian" in scorer_list:
            out["gaussian"] = det.score_samples(task.test)
        if others:
            out.update(_score_with(det, others, task.train, task.test))
        return out

    cells = one_setting_cells(table, dataset, extractors, profile, seeds, task, shots)
    return run_rescored(cells, scorer_list, score_fn, data_roots, cache_dir, profile, name="scorers",
                        strict=strict, executor=executor)


def run_n_aug_table(table: str, dataset: str, methods: Iterable[str | Row], n_aug: Iterable[int],
                    profile: str | Mapping[str, Any], seeds: Iterable[int], data_roots: Any,
                    cache_dir: str | os.PathLike, *, task: str | None = None, shots: int | None = None,
                    setting_format: str = N_AUG_FORMAT, strict: bool = False,
                    executor: Any = "local") -> pd.DataFrame:
    """Table X (Sec. V-G): each method fitted once per seed, its Gaussian (Eq. 7) refitted on N_A
    augmented copies of the shots for every N_A of ``n_aug``, test set scored by Eq. 8.

    N_A enters only the density fit after training, so one trained network per method and seed
    serves every column, and the columns differ only in N_A. Each column uses
    :func:`~coftad_lib.methods.scorers.score_with`'s Gaussian with the detector's
    ``l2_normalize``; its augmentation draws differ from those inside ``fit``, so the column for
    the profile's own N_A can differ slightly from the same cell in Table I.
    """
    values = [int(v) for v in n_aug]
    if not values or min(values) < 1:
        raise COFTADInputError(f"run_n_aug_table({table!r}): n_aug={values}; give values >= 1")
    labels = [setting_format.format(value=v) for v in values]

    def score_fn(det: Any, task: Any) -> dict[str, np.ndarray]:
        out = {}
        l2 = bool(getattr(getattr(det, "density", None), "l2_normalize", True))
        for v, lab in zip(values, labels, strict=True):
            det.n_aug = v
            out[lab] = _score_with(det, ["gaussian"], task.train, task.test,
                                   {"gaussian": {"l2_normalize": l2}})["gaussian"]
        return out

    cells = one_setting_cells(table, dataset, methods, profile, seeds, task, shots)
    return run_rescored(cells, labels, score_fn, data_roots, cache_dir, profile, name="n_aug_sweep",
                        key_extra={"n_aug": values}, strict=strict, executor=executor)
