"""The paper-compute runs as their own columns of Tables I and VI: a GPU adds, never replaces.

Issue 19's units (:mod:`coftad_lib.experiments.paper_compute`, one JSON per fit under
``benchmarks/results/paper_compute/<label>/``) are not cells of a profile: each is one COFT-AD fit
at the paper's batch (64) and 100 steps on the full test set, scored with its pretrained start, the
online network and the EMA target. :func:`paper_compute_frame` turns them into rows of the same
frame the table notebooks write, one *setting* per run label (``"efficientnet_lite0 @
h200-224px-b64-100steps"``), so Table VI gets a column per compute beside the profile's own, and
Table I a section; each row keeps its run label as ``profile`` and its device and versions.

Which rows: Table VI's pretrained start (``pretrained_only``, from the w/o np fit), COFT-AD w/o np
(``contrastive+cipp``) and w/ np (``contrastive+cipp+np``), scored with the library's default
target network, plus the same two scored with the online network (rows ending ``[online f]``,
which the paper has no value for). Table I: ``pretrained``, ``coftad`` and ``coftad_np`` alike.
Only the headline profile shows them (:data:`SHOWN_WITH`): smoke tables stay smoke.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

from ..unit_records import read_units
from .results_tables import SETTING_MARK, is_paper_compute  # noqa: F401  (re-exported)

#: where issue 19's runs are committed, relative to the repository root
PAPER_COMPUTE_DIR = Path("benchmarks") / "results" / "paper_compute"
#: profiles whose tables show the paper-compute columns
SHOWN_WITH: frozenset[str] = frozenset({"protocol-cpu"})
#: table -> (family, config, scored with) -> our method name in that table
ROWS: dict[str, dict[tuple[str, str, str], str]] = {
    "VI": {("cifar", "wo_np", "pretrained"): "ablation:pretrained_only",
           ("cifar", "wo_np", "target"): "ablation:contrastive+cipp",
           ("cifar", "w_np", "target"): "ablation:contrastive+cipp+np",
           ("cifar", "wo_np", "online"): "ablation:contrastive+cipp [online f]",
           ("cifar", "w_np", "online"): "ablation:contrastive+cipp+np [online f]"},
    "I": {("flowers", "wo_np", "pretrained"): "pretrained",
          ("flowers", "wo_np", "target"): "coftad",
          ("flowers", "w_np", "target"): "coftad_np",
          ("flowers", "wo_np", "online"): "coftad [online f]",
          ("flowers", "w_np", "online"): "coftad_np [online f]"},
}
_BACKBONE = "efficientnet_lite0"  # the only backbone whose weights reach the device machines offline
_KEEP = ("python", "torch", "torchvision", "timm", "numpy", "git_commit", "device", "threads",
         "image_size", "steps", "batch_size", "ema_beta", "n_test")


def default_root() -> Path:
    """``benchmarks/results/paper_compute`` of the repository this package is checked out in."""
    return Path(__file__).resolve().parents[2] / PAPER_COMPUTE_DIR


def _records(root: Path) -> list[dict]:
    """Every unit record under ``root/<label>/*.json`` (the label is the record's ``profile``)."""
    return [r for r in read_units(root) if r.get("family") and r.get("config") and r.get("auroc_target") is not None]


def paper_compute_frame(table: str, root: str | os.PathLike | None = None) -> pd.DataFrame:
    """Table ``table``'s rows from the paper-compute runs: one per (run, method, task, seed).

    Columns: the results frame's (setting, method, task, seed, auroc in [0, 1], status "ok",
    message, key, cached) plus profile (the run label), backbone, dataset, shots and the record's
    versions and compute. Empty when the table has no such rows or no run is committed.
    """
    rows_of = ROWS.get(table, {})
    root = default_root() if root is None else Path(root)
    rows = []
    for rec in _records(root) if rows_of and root.is_dir() else []:
        for scoring in ("pretrained", "online", "target"):
            method = rows_of.get((rec["family"], rec["config"], scoring))
            value = rec.get(f"auroc_{scoring}")
            if method is None or value is None or not math.isfinite(float(value)):
                continue
            rows.append({"setting": f"{_BACKBONE}{SETTING_MARK}{rec['profile']}", "method": method,
                         "task": rec["task"], "seed": int(rec["seed"]), "auroc": float(value) / 100.0,
                         "status": "ok", "message": "", "key": "", "cached": True, "profile": rec["profile"],
                         "backbone": _BACKBONE, "dataset": rec.get("dataset", ""), "shots": rec.get("shots"),
                         **{k: rec.get(k) for k in _KEEP}})
    return pd.DataFrame(rows)


def setting_map_for(df: pd.DataFrame, paper_setting: str) -> dict[str, str]:
    """Map every paper-compute setting in ``df`` to the paper's column ``paper_setting``."""
    if df.empty or "setting" not in df:
        return {}
    return {s: paper_setting for s in dict.fromkeys(df["setting"].astype(str)) if is_paper_compute(s)}


def with_paper_compute(df: pd.DataFrame, table: str, profile: str,
                       root: str | os.PathLike | None = None) -> pd.DataFrame:
    """``df`` plus the paper-compute rows of ``table`` when ``profile`` is in :data:`SHOWN_WITH`.

    Table VI's rows also get their per-seed class average (as the profile's own rows do).
    """
    if profile not in SHOWN_WITH:
        return df
    extra = paper_compute_frame(table, root)
    if extra.empty:
        return df
    if table == "VI":
        from .table_output import with_task_average

        extra = with_task_average(extra)
    return pd.concat([df, extra], ignore_index=True)
