"""Per-notebook status files that the runner's summary and the report read.

Each notebook ends with :func:`record_status`, which writes ``<OUT_DIR>/status/<notebook>.json``:
whether every cell ran (``"ok"``), some lacked data or weights (``"missing"``, with the loader's
message on how to get them) or raised (``"failed"``, each failed cell with its error), which
profile produced it, and which tables and figures it wrote.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import COFTADInputError
from .cache import atomic_write_json


def status_path(out_dir: str | os.PathLike, notebook: str) -> Path:
    """``<out_dir>/status/<notebook>.json``."""
    return Path(out_dir) / "status" / f"{notebook}.json"


def missing_from_frame(df: pd.DataFrame | None) -> list[dict[str, str]]:
    """One ``{"dataset", "message"}`` per dataset with missing cells in a :func:`run_cells` frame."""
    if df is None or df.empty or "status" not in df:
        return []
    miss = df[df["status"] == "missing"]
    out = []
    for dataset, group in miss.groupby("dataset", sort=True):
        out.append({"dataset": str(dataset), "message": str(group["message"].iloc[0])})
    return out


def failed_from_frame(df: pd.DataFrame | None) -> list[dict[str, Any]]:
    """One entry per failed cell (status ``"failed"``) of a :func:`run_cells` frame: where and why."""
    if df is None or df.empty or "status" not in df:
        return []
    cols = [c for c in ("table", "dataset", "task", "method", "seed", "message") if c in df]
    seen, out = set(), []
    for row in df.loc[df["status"] == "failed", cols].to_dict("records"):
        entry = {k: (int(v) if k == "seed" else str(v)) for k, v in row.items()}
        key = tuple(entry.values())
        if key not in seen:  # Tables VIII-X repeat a failed fit once per column
            seen.add(key)
            out.append(entry)
    return out


def record_status(out_dir: str | os.PathLike, results: pd.DataFrame | Iterable[pd.DataFrame] | None = None, *,
                  notebook: str, profile: str | None = None,
                  missing: Sequence[Mapping[str, str]] = (), tables: Sequence[str] = (),
                  figures: Sequence[str] = (), note: str = "", roots: Mapping[str, str] | None = None) -> Path:
    """Write this notebook's status JSON and return its path.

    Args:
        out_dir: the notebook's ``OUT_DIR`` parameter (``results``).
        results: the :func:`run_cells` frame(s) of the notebook; missing datasets and cell counts
            are read from them.
        notebook: notebook name (stem), the notebook's ``NOTEBOOK`` parameter.
        profile: profile name; default: the frames' ``profile`` column.
        missing: extra ``{"dataset", "message"}`` entries (work done outside :func:`run_cells`).
        tables / figures: names of what the notebook wrote (e.g. ``["II"]``, ``["fig7_scores"]``).
        note: free text shown in the summary.
        roots: ``{"DATA_ROOT": folder, ...}``: messages name paths relative to these folders
            (:func:`relative_to_roots`), so a committed status file shows no machine's folders.

    Status is ``"failed"`` when a cell raised (listed under ``"failed"``), else ``"missing"`` when
    data or weights were missing, else ``"ok"``.
    """
    if not notebook:
        raise COFTADInputError("record_status: give notebook= (the notebook's NOTEBOOK parameter)")
    frames = [] if results is None else [results] if isinstance(results, pd.DataFrame) else list(results)
    df = pd.concat(frames, ignore_index=True) if frames else None
    entries = {m["dataset"]: m for m in missing_from_frame(df)}
    for m in missing:
        if "dataset" not in m or "message" not in m:
            raise COFTADInputError(f"record_status: missing entry {dict(m)!r} needs 'dataset' and 'message'")
        entries.setdefault(str(m["dataset"]), {"dataset": str(m["dataset"]), "message": str(m["message"])})
    if profile is None and df is not None and "profile" in df and df["profile"].notna().any():
        profile = str(df["profile"].dropna().iloc[0])
    n = 0 if df is None else len(df)
    n_missing = 0 if df is None else int((df["status"] == "missing").sum())
    failed = failed_from_frame(df)
    n_failed = 0 if df is None else int((df["status"] == "failed").sum())
    n_pending = 0 if df is None else int((df["status"] == "pending").sum())
    payload: dict[str, Any] = {
        "notebook": notebook,
        "status": "failed" if failed else "missing" if entries else "ok",
        "profile": profile or "",
        "missing": [{**entries[k], "message": relative_to_roots(entries[k]["message"], roots or {})}
                    for k in sorted(entries)],
        "n_cells": n, "n_ok": n - n_missing - n_failed - n_pending, "n_missing": n_missing, "n_failed": n_failed,
        "n_pending": n_pending,
        "failed": [{**f, "message": relative_to_roots(f.get("message", ""), roots or {})} for f in failed],
        "tables": list(tables), "figures": list(figures), "note": note,
    }
    return atomic_write_json(status_path(out_dir, notebook), payload)


def relative_to_roots(text: str, roots: Mapping[str, str | os.PathLike]) -> str:
    """``text`` with absolute root folders taken out: ``<root>/mvtec_ad/carpet`` -> ``mvtec_ad/carpet``,
    a bare ``<root>`` -> its name (``roots`` maps a name such as ``"DATA_ROOT"`` to the folder).

    A report must not show the folders of the machine that ran it; the run summary names the
    roots once, relative to the working folder.
    """
    for name, root in sorted(((n, str(Path(r))) for n, r in roots.items() if r), key=lambda x: -len(x[1])):
        text = text.replace(root + os.sep, "").replace(root, name)
    return text


def summary_roots(meta: Mapping[str, Any]) -> dict[str, str]:
    """The folders that messages are printed relative to: ``{"DATA_ROOT": ..., "PREP_DIR": ..., "OUT_DIR": ...}``.

    Absolute (a summary.json shows them relative to the folder the run started in, which is where
    the report is written from): a relative root such as ``results`` would also match plain words.
    """
    return {name: str(Path(meta[key]).resolve()) for name, key in (("DATA_ROOT", "data_root"), ("PREP_DIR", "prep_dir"),
                                                   ("OUT_DIR", "out_dir")) if meta.get(key)}


def display_path(path: str | os.PathLike, start: str | os.PathLike | None = None) -> str:
    """``path`` relative to ``start`` (default: the working folder) when that is shorter, else as given."""
    rel = os.path.relpath(path, start or os.getcwd())
    return rel if len(rel) < len(str(path)) else str(path)


def read_status(out_dir: str | os.PathLike, notebook: str) -> dict[str, Any] | None:
    """The status a notebook wrote, or None if it wrote none."""
    path = status_path(out_dir, notebook)
    return json.loads(path.read_text()) if path.exists() else None
