"""``--plan``: what a run would compute and for how long, without running anything.

For each notebook of the series: the cells (fits) it needs, how many are already cached, how many
an earlier notebook of the same run computes first (shared work), and the expected seconds of the
rest; then the total. Seconds per cell = fit + scoring, from a timings table:

- a benchmark file (``--plan-timings FILE``), JSON::

      {"device": "1x H200", "source": "benchmarks/results/bench_h200.txt",
       "fits": [{"family": "coftad", "backbone": "resnet18", "image_size": 224, "steps": 100,
                 "batch_size": 64, "seconds": 6.3, "images_per_second": 7900}, ...]}

  or CSV with the columns of one ``fits`` entry. ``family`` is a :data:`FAMILIES` value or
  ``"default"`` (used for families without a row); ``images_per_second`` is the scoring speed.
- else a short calibration on this machine (:func:`calibrate`): per method family, with the
  profile's backbone, small fits (:data:`CAL_SIZE` px, batch :data:`CAL_BATCH`) at two step counts
  and one scoring of 16 images.

A row may carry ``fixed_seconds``: the part of its fit that does not grow with steps (copying the
models, the Gaussian's pass over the N_A augmented shots). The rest is scaled to a cell linearly in
steps x batch size (trained families), and both parts in pixels (image_size squared); scoring by
the test set size of the dataset's protocol (:data:`TEST_SIZES`). These are estimates: the measured
seconds of a run are in ``runs/summary.md``.
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..engine.cells import Cell
from ..errors import COFTADInputError
from ..methods.traits import TRAITS
from ..paper.context import RunContext
from ..paper.profiles import get_profile
from ..paper.specs import spec_for_notebook

#: registry method -> cost family (methods of one family cost about the same per step; MethodTraits.family)
FAMILIES: dict[str, str] = {m: t.family for m, t in TRAITS.items()}
#: families whose fit does not train (a pass over the shots), so steps do not scale it
UNTRAINED: frozenset[str] = frozenset(t.family for t in TRAITS.values() if not t.trains)
#: test images per task of each dataset's full protocol (Sec. IV-A); MVTec, AITEX and Magnetic
#: Tile vary per category, the value is their mean; used when a table does not cap its test set
TEST_SIZES: dict[str, int] = {"flowers17": 80, "cifar10c": 10_000, "cifar100c": 5_000, "mvtec": 115,
                              "semicon": 610, "aitex": 300, "magnetic_tile": 400, "folder": 100}


def notebook_cells(nb_path: Path, profile: str | Mapping[str, Any], seeds: Sequence[int]) -> list[Cell] | None:
    """The cells notebook ``nb_path`` asks for (one per fit), from the spec it renders
    (:func:`~coftad_lib.paper.specs.spec_for_notebook`); None for notebooks without a spec (tour,
    data preparation, your own data, the study)."""
    spec = spec_for_notebook(Path(nb_path).stem)
    return None if spec is None else spec.cells(profile, seeds)


def timings_from_cache(cache: str | os.PathLike) -> dict[str, Any]:
    """Timing rows measured by an earlier run: the ``ok`` cell records of a cache folder.

    One row per (family, backbone, image size, steps, batch size): the median over its records of
    ``fit_seconds / concurrency`` (a pool of 4 workers finishes 4 fits in one fit's wall time, so
    a record's share of the machine is a quarter) and of the scoring speed ``n_test / score_seconds``.
    A planned cell of the same sizes takes the row as it is; other sizes scale it as any row.
    Families without a record get no row ("?" in the plan). ``device``: the devices the records name.
    """
    groups: dict[tuple, list[tuple[float, float]]] = {}
    devices: set[str] = set()
    for f in sorted((Path(cache) / "cells").glob("*.json")):
        rec = json.loads(f.read_text())
        kw, fam = rec.get("method_kwargs") or {}, FAMILIES.get(rec.get("method", ""))
        if rec.get("status") != "ok" or fam is None or not rec.get("score_seconds") or "fit_seconds" not in rec:
            continue
        share = float(rec["fit_seconds"]) / float(rec.get("concurrency") or 1)
        key = (fam, kw.get("backbone"), kw.get("image_size"), kw.get("steps"), kw.get("batch_size"))
        groups.setdefault(key, []).append((share, float(rec["n_test"]) / float(rec["score_seconds"])))
        devices.add(str((rec.get("versions") or {}).get("device", "?")))
    if not groups:
        raise COFTADInputError(f"--plan-timings {cache}: no ok cell records with timings in {Path(cache) / 'cells'}")
    fits = []
    for (fam, backbone, size, steps, batch), vals in sorted(groups.items(), key=str):
        fit = float(np.median([v[0] for v in vals]))
        fits.append({"family": fam, "backbone": backbone, "image_size": float(size or 1), "steps": float(steps or 1),
                     "batch_size": float(batch or 1), "seconds": fit, "fixed_seconds": 0.0,
                     "images_per_second": float(np.median([v[1] for v in vals])), "n_records": len(vals)})
    return {"device": "; ".join(sorted(devices)), "source": f"measured cells in {cache}", "fits": fits}


def load_timings(path: str | os.PathLike) -> dict[str, Any]:
    """A benchmark file (JSON or CSV, see the module docstring) as ``{"device", "source", "fits": [...]}``;
    a cache folder (one holding ``cells/``) gives :func:`timings_from_cache`."""
    p = Path(path)
    if (p / "cells").is_dir():
        return timings_from_cache(p)
    if not p.is_file():
        raise COFTADInputError(f"--plan-timings {p}: no such file")
    if p.suffix.lower() == ".csv":
        with p.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        data: dict[str, Any] = {"device": "", "source": str(p), "fits": rows}
    else:
        try:
            data = json.loads(p.read_text())
        except json.JSONDecodeError as exc:
            raise COFTADInputError(f"--plan-timings {p}: not valid JSON ({exc})") from exc
    fits = data.get("fits")
    need = {"family", "backbone", "image_size", "steps", "batch_size", "seconds", "images_per_second"}
    if not isinstance(fits, list) or not fits:
        raise COFTADInputError(f"--plan-timings {p}: expected a non-empty list 'fits'")
    for i, row in enumerate(fits):
        lack = need - set(row)
        if lack:
            raise COFTADInputError(f"--plan-timings {p}: fits[{i}] lacks {sorted(lack)}")
        for k in need - {"family", "backbone"}:
            row[k] = float(row[k])
        row["fixed_seconds"] = float(row.get("fixed_seconds") or 0.0)  # optional; CSV writes "" for none
        if not 0.0 <= row["fixed_seconds"] <= row["seconds"]:
            raise COFTADInputError(f"--plan-timings {p}: fits[{i}] fixed_seconds must lie in [0, seconds]")
    return data


#: calibration fits: image size, batch size and the two step counts whose difference is the step cost
CAL_SIZE, CAL_BATCH, CAL_STEPS = 64, 8, (1, 5)


def _timed_fit(method: str, kw: Mapping[str, Any], steps: int, shots: list[np.ndarray]) -> tuple[Any, float]:
    """(fitted detector, seconds of its fit)."""
    from ..methods import make_detector

    det = make_detector(method, seed=0, **{**kw, "steps": steps})
    t0 = time.perf_counter()
    det.fit(shots)
    return det, time.perf_counter() - t0


def calibrate(families: Sequence[str], profile: str | Mapping[str, Any]) -> dict[str, Any]:
    """Per family: a warm-up fit, fits at both :data:`CAL_STEPS` and one scoring of 16 images, here.

    Two step counts separate a fit's one-off cost (``fixed_seconds``) from its cost per step. A
    single small fit scaled to the paper's 100 steps x 64 images x 224 px multiplied its one-off
    cost (and the process's first-call costs) by ~20,000: it predicted 16 h for a ~40 min CPU fit.
    """
    prof = get_profile(profile)
    rng = np.random.default_rng(0)
    shots = list(rng.integers(0, 256, (5, CAL_SIZE, CAL_SIZE, 3), np.uint8))
    test = list(rng.integers(0, 256, (16, CAL_SIZE, CAL_SIZE, 3), np.uint8))
    lo, hi = CAL_STEPS
    rows = []
    for fam in families:
        method = next(m for m, f in FAMILIES.items() if f == fam)
        kw = {"backbone": prof["backbone"], "image_size": CAL_SIZE, "batch_size": CAL_BATCH,
              "device": prof["device"], "progress": False}
        try:  # the warm-up: first-call costs (allocations, lazy inits) land in neither timing
            _timed_fit(method, kw, lo, shots)
        except Exception:  # e.g. ResNet weights absent here: time the offline backbone instead
            kw["backbone"] = "efficientnet_lite0"
            _timed_fit(method, kw, lo, shots)
        t_lo = _timed_fit(method, kw, lo, shots)[1]
        det, t_hi = _timed_fit(method, kw, hi, shots)
        per_step = 0.0 if fam in UNTRAINED else max(t_hi - t_lo, 0.0) / (hi - lo)
        t0 = time.perf_counter()
        det.score_samples(test)
        rows.append({"family": fam, "backbone": kw["backbone"], "image_size": float(CAL_SIZE), "steps": float(hi),
                     "batch_size": float(CAL_BATCH), "seconds": t_hi,
                     "fixed_seconds": t_hi if fam in UNTRAINED else max(t_lo - lo * per_step, 0.0),
                     "images_per_second": len(test) / max(time.perf_counter() - t0, 1e-6)})
    return {"device": "this machine (calibrated)",
            "source": f"calibration: {CAL_SIZE} px fits at {lo} and {hi} steps per family", "fits": rows}


def cell_seconds(cell: Cell, timings: Mapping[str, Any]) -> float:
    """Expected seconds of one cell: the timing row of its family (and backbone) scaled to the cell."""
    fam = FAMILIES.get(cell.method, "default")
    kw = cell.method_kwargs
    rows = [r for r in timings["fits"] if r["family"] == fam] or [r for r in timings["fits"] if r["family"] == "default"]
    if not rows:
        return float("nan")
    sizes = [kw.get("backbone"), *(float(kw[k]) if k in kw else None for k in ("image_size", "steps", "batch_size"))]
    row = next((r for r in rows if [r["backbone"], r["image_size"], r["steps"], r["batch_size"]] == sizes),
               next((r for r in rows if r["backbone"] == kw.get("backbone")), rows[0]))
    pixels = (float(kw.get("image_size", row["image_size"])) / row["image_size"]) ** 2
    work = 1.0 if fam in UNTRAINED else (float(kw.get("steps", row["steps"])) / row["steps"]
                                         * float(kw.get("batch_size", row["batch_size"])) / row["batch_size"])
    cap = cell.task_args.get("max_test_per_class")
    n_test = TEST_SIZES.get(cell.dataset, 500) if cap is None else min(2 * int(cap), TEST_SIZES.get(cell.dataset, 500))
    fixed = float(row.get("fixed_seconds", 0.0))
    return (fixed + (row["seconds"] - fixed) * work) * pixels + n_test * pixels / row["images_per_second"]


def plan(profile: str | Mapping[str, Any], notebooks: Sequence[Path], seeds: Sequence[int],
         cache_dir: Path, timings: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """One row per notebook: cells, cached, shared (computed by an earlier notebook), to_run, seconds,
    and ``untimed``: cells to run whose family has no timing row (left out of ``seconds``)."""
    prof = get_profile(profile)
    per_nb = {nb: notebook_cells(nb, prof, seeds) for nb in notebooks}
    if timings is None:
        fams = sorted({FAMILIES.get(c.method, "default") for cs in per_nb.values() if cs for c in cs} - {"default"})
        timings = calibrate(fams, prof)
    seen: set[str] = set()
    rows = []
    for nb, cells in per_nb.items():
        if cells is None:
            rows.append({"notebook": nb.stem, "cells": 0, "cached": 0, "shared": 0, "to_run": 0, "seconds": 0.0,
                         "untimed": 0, "note": "no cells planned (not a table or figure notebook)"})
            continue
        spec = spec_for_notebook(nb.stem)
        cached_n = shared = untimed = 0
        secs = 0.0
        for cell in cells:
            key = cell.key()
            if spec.is_cached(cell, cache_dir, prof):
                cached_n += 1
            elif key in seen and spec.shares_cells:
                shared += 1
            else:
                t = cell_seconds(cell, timings)
                untimed += t != t  # NaN: no row for its family
                secs += 0.0 if t != t else t
            seen.add(key)
        rows.append({"notebook": nb.stem, "cells": len(cells), "cached": cached_n, "shared": shared,
                     "to_run": len(cells) - cached_n - shared, "seconds": secs, "untimed": untimed, "note": ""})
    return rows


def _hms(seconds: float, untimed: int = 0) -> str:
    h, rem = divmod(int(round(seconds)), 3600)
    return f"{h}:{rem // 60:02d}:{rem % 60:02d}" + (f" + {untimed} cells of untimed families" if untimed else "")


def format_plan(rows: Sequence[Mapping[str, Any]], timings: Mapping[str, Any], profile: str) -> str:
    """The plan as a Markdown table with the total and where the timings come from."""
    lines = [f"Plan for profile {profile}; timings: {timings.get('device', '')} ({timings.get('source', '')})", "",
             "| notebook | cells | cached | shared with an earlier notebook | to run | expected h:mm:ss |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['notebook']} | {r['cells']} | {r['cached']} | {r['shared']} | {r['to_run']} "
                     f"| {_hms(r['seconds'], r.get('untimed', 0))} |" + (f" {r['note']}" if r["note"] else ""))
    total, untimed = sum(r["seconds"] for r in rows), sum(r.get("untimed", 0) for r in rows)
    lines.append(f"| **total** | {sum(r['cells'] for r in rows)} | {sum(r['cached'] for r in rows)} "
                 f"| {sum(r['shared'] for r in rows)} | {sum(r['to_run'] for r in rows)} | **{_hms(total, untimed)}** |")
    return "\n".join(lines)


def print_plan(ctx: RunContext, *, only: Sequence[str] | None = None, notebooks_dir: str | os.PathLike = "notebooks",
               timings: str | os.PathLike | None = None) -> int:
    """CLI ``--plan``: print :func:`format_plan` for the selected notebooks of run ``ctx``; returns 0.

    A plan reads only the cache (``<out_dir>/cache``) and the specs of the notebooks.
    """
    from .series import discover, select

    prof = ctx.settings
    notebooks = select(discover(notebooks_dir), only)
    if timings:
        table = load_timings(timings)
    else:
        cells = [c for nb in notebooks for c in (notebook_cells(nb, prof, ctx.seeds) or [])]
        print(f"[plan] calibrating {len({FAMILIES.get(c.method) for c in cells} - {None})} method families ...",
              flush=True)
        table = calibrate(sorted({FAMILIES[c.method] for c in cells if c.method in FAMILIES}), prof)
    rows = plan(prof, notebooks, ctx.seeds, ctx.cache_dir, table)
    print(format_plan(rows, table, ctx.name))
    return 0
