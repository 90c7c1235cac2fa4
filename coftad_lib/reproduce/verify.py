"""``--verify N``: recompute N committed cells and compare each with its record.

Anyone can repeat any number: ``python -m coftad_lib.reproduce --profile protocol-cpu --verify 2``
draws two cells at random from the run's cache (``results/cache/cells`` for ``protocol-cpu``),
rebuilds each from its record (dataset, task, shots, method and kwargs, seed, protocol), computes
it again in this process, with the record's thread count, and compares the AUROCs. A cell
recomputes to the same number only when its code and its inputs are the same: a record whose key
no longer matches the code (the method changed since it was computed) is reported as stale, not
silently recomputed under a new key.

Exit codes: 0 every drawn cell agrees within ``tolerance``; 1 one differs (named, with both
AUROCs), is stale, or failed; 3 a drawn cell's data or weights are not on this machine.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..engine.cells import Cell, compute_record
from ..engine.data_identity import DataIds
from ..engine.kernels import kernel_info
from ..engine.migrate import record_cell
from ..engine.testset_files import join_test_set
from ..errors import COFTADInputError, DatasetNotFoundError, WeightsUnavailableError

#: largest AUROC difference (on the [0, 1] scale) that still counts as the same number
TOLERANCE = 1e-6


def committed_records(cache_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The ``"ok"`` records of ``<cache_dir>/cells``, sorted by key (the order draws are made from)."""
    folder = Path(cache_dir) / "cells"
    out = []
    for path in sorted(folder.glob("*.json")):
        rec = json.loads(path.read_text())
        if rec.get("status") == "ok" and rec.get("kind", "score") == "score":
            out.append(join_test_set(rec, cache_dir))
    return out


def cell_of(record: Mapping[str, Any]) -> Cell:
    """The :class:`Cell` whose work produced ``record`` (labels are not part of the work)."""
    return record_cell(record, table="verify")


def kernel_mismatch(record: Mapping[str, Any], here: Mapping[str, str]) -> str:
    """Why this process cannot repeat ``record`` bit for bit ("" when it can): the record was computed
    on native kernels of another CPU capability, or with the AVX2 pin this process lacks (or the reverse)."""
    kernels, cap = record.get("kernels"), record.get("cpu_capability")
    if kernels is None:
        return ""  # recorded before kernels were: try, and say so if it differs
    if kernels != here["kernels"]:
        return (f"the record was computed with {kernels} kernels, this process runs {here['kernels']} "
                f"(run through `python -m coftad_lib.reproduce`, which pins AVX2; $COFTAD_KERNELS)")
    if kernels == "native" and cap != here["cpu_capability"]:
        return f"the record needs native {cap} kernels; this machine runs {here['cpu_capability']}"
    return ""


@contextmanager
def _threads_of(record: Mapping[str, Any]):
    """``$COFTAD_CELL_THREADS`` set to the record's thread count while it is recomputed."""
    threads = record.get("threads")
    before = os.environ.get("COFTAD_CELL_THREADS")
    if threads:
        os.environ["COFTAD_CELL_THREADS"] = str(int(threads))
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("COFTAD_CELL_THREADS", None)
        else:
            os.environ["COFTAD_CELL_THREADS"] = before


def verify_record(record: Mapping[str, Any], data_root: Any, tolerance: float = TOLERANCE,
                  data_ids: Any = None) -> dict[str, Any]:
    """Recompute one record's cell: ``{"key", "what", "status", "recorded", "recomputed", "diff", "message"}``.

    ``status`` is ``"same"``, ``"differs"``, ``"stale"`` (the code changed: the cell's key today is
    not the record's), ``"other data"`` (``data_ids``, a :class:`~coftad_lib.engine.data_identity.DataIds`,
    finds another data id here), ``"needs other kernels"`` (:func:`kernel_mismatch`), ``"missing"``
    (data or weights absent) or ``"failed"``.
    """
    cell = cell_of(record)
    what = (f"{record['method']} on {record['dataset']}/{record['task']}, {record['shots']} shots, "
            f"seed {record['seed']} (key {str(record['key'])[:12]})")
    out: dict[str, Any] = {"key": record["key"], "what": what, "recorded": float(record["auroc"]),
                           "recomputed": None, "diff": None, "message": ""}
    if cell.key() != record["key"]:
        return {**out, "status": "stale",
                "message": "the code this cell runs changed since this record was computed (key today: "
                           f"{cell.key()[:12]}); it cannot be recomputed as it was"}
    if data_ids is not None and cell.data is not None:
        here = data_ids(cell.dataset, cell.task_args)
        if here != cell.data:
            return {**out, "status": "other data",
                    "message": f"the record read data {cell.data}; the data here is {here}"}
    mismatch = kernel_mismatch(record, kernel_info())
    if mismatch:
        return {**out, "status": "needs other kernels", "message": mismatch}
    try:
        with _threads_of(record):
            fresh, _ = compute_record(cell, data_root, str(record.get("profile", "")), strict=True)
    except (DatasetNotFoundError, WeightsUnavailableError) as exc:
        return {**out, "status": "missing", "message": str(exc).splitlines()[0]}
    except Exception as exc:  # noqa: BLE001  (a verification reports, it does not crash)
        return {**out, "status": "failed", "message": f"{type(exc).__name__}: {exc}"}
    # a schema-1 record's AUROC came from unrounded scores; its stored scores were rounded (engine/rekey.py)
    recorded = float(record.get("auroc_unrounded", record["auroc"]))
    diff = abs(float(fresh["auroc"]) - recorded)
    note = "" if record.get("kernels") else "computed before records named their kernels (2026-12-07)"
    return {**out, "recorded": recorded, "recomputed": float(fresh["auroc"]), "diff": diff,
            "status": "same" if diff <= tolerance else "differs", "message": note if diff > tolerance else ""}


def verify(cache_dir: str | os.PathLike, data_root: Any, n: int, *, seed: int | None = None,
           tolerance: float = TOLERANCE, keys: Sequence[str] = ()) -> int:
    """CLI ``--verify N``: recompute ``n`` random committed cells (or those of ``keys``); print one line
    each; return the exit code (module docstring)."""
    if n < 1 and not keys:
        raise COFTADInputError(f"--verify {n}: expected a number of cells >= 1")
    records = committed_records(cache_dir)
    if not records:
        raise COFTADInputError(f"--verify: no computed cells in {Path(cache_dir) / 'cells'}")
    if keys:
        chosen = [r for r in records if any(str(r["key"]).startswith(k) for k in keys)]
        if not chosen:
            raise COFTADInputError(f"--verify-key {', '.join(keys)}: no such cell in {cache_dir}")
    else:
        chosen = random.Random(seed).sample(records, min(n, len(records)))
    here = kernel_info()
    print(f"[verify] recomputing {len(chosen)} of {len(records)} committed cells (tolerance {tolerance:g} AUROC) "
          f"on {here['kernels']} kernels, CPU capability {here['cpu_capability']}", flush=True)
    results, ids = [], DataIds(data_root)
    for rec in chosen:
        res = verify_record(rec, data_root, tolerance, data_ids=ids)
        results.append(res)
        nums = (f"recorded {res['recorded']:.6f}, recomputed {res['recomputed']:.6f}, diff {res['diff']:.2g}"
                + (f" ({res['message']})" if res["message"] else "")
                if res["recomputed"] is not None else res["message"])
        print(f"[verify] {res['status']}: {res['what']}: {nums}", flush=True)
    statuses = {r["status"] for r in results}
    if statuses & {"differs", "stale", "failed", "other data", "needs other kernels"}:
        return 1
    return 3 if "missing" in statuses else 0
