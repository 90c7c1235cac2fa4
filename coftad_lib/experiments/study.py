"""When does contrastive fine-tuning help? The study of issue 11 (beyond the paper).

The paper's gain (Table VI: 67.32 pretrained -> 74.56 with Eq. 6 on CIFAR-10-C, ResNet18) rests on
settings it does not state. This module holds the study over them: a one-factor-at-a-time grid
around the study's base configuration (:data:`GRID`), one protocol per dataset family sized for a
2-core CPU (:data:`FAMILIES`), the cached unit of work (:func:`run_unit`: fit, AUROC, feature drift,
loss curve), and the aggregation into a verdict table (:func:`verdict`, :func:`default_rule`).

Each configuration is compared with the detector that starts from the *same* features without
fine-tuning (:func:`baseline_of`): the pretrained Lite0 for most rows, the random-init backbone for
``random_init`` (Table VI row 1), the earlier block for ``feature_stage`` rows. That pairing tests
the paper's explanation that the gain is larger when the starting features are weaker.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import COFTADInputError

#: keys that decide the starting features; a configuration's baseline keeps them and sets steps=0
START_KEYS: tuple[str, ...] = ("pretrained", "feature_stage", "backbone")

#: The study's base configuration (COFTADConfig overrides). batch 8 and 20 steps instead of the
#: paper's batch 64 (Sec. IV-C) and our 100 steps: one step at 64 px costs ~2 s of one shared core at
#: batch 8, and the whole study has ~70 core-minutes; ``steps`` rows test the effect of more steps.
BASE: dict[str, Any] = {"steps": 20, "batch_size": 8}

#: name -> overrides of :data:`BASE`, one factor at a time; order = priority under a time budget.
#: Rows whose keys COFTADConfig does not (yet) have are skipped with a reason (:func:`available`).
GRID: dict[str, dict[str, Any]] = {
    "base": {},
    "np": {"use_negative": True},
    "ema0.9": {"ema_beta": 0.9},  # with 20 steps an EMA of 0.99 moves the target only ~18% of the way
    "online": {"score_with": "online"},
    "blr0.1": {"backbone_lr_scale": 0.1},
    "last2": {"train_stages": 2},
    "steps60": {"steps": 60},
    "bn_train": {"bn_mode": "train"},
    # Control for bn_train: BatchNorm running statistics re-estimated on the augmented shots while
    # the backbone's weights stay put (its lr x 0), so any gain is the statistics, not the learning.
    "bn_adapt": {"bn_mode": "train", "backbone_lr_scale": 0.0},
    "bn_train_np": {"bn_mode": "train", "use_negative": True},
    "bn_train_blr0.1": {"bn_mode": "train", "backbone_lr_scale": 0.1},
    "aug0.5": {"aug_strength": 0.5},
    "lpp0": {"lambda_pp": 0.0},
    "np_small": {"use_negative": True, "negative": "cutpaste_small"},
    "np_photometric": {"use_negative": True, "negative": "photometric"},
    "np_lnp0.2": {"use_negative": True, "lambda_np": 0.2},
    "stage4": {"feature_stage": 4},  # Lite0 stage 4 of 0..6 (112 channels, stride 16): weaker start
    "random_init": {"pretrained": False},  # Table VI row 1
    "blr0.01": {"backbone_lr_scale": 0.01},
    "lr1e-4": {"lr": 1e-4},
    "lpp1.6": {"lambda_pp": 1.6},
    "np_scar": {"use_negative": True, "cutpaste_mode": "scar"},
    "steps10": {"steps": 10},
}


@dataclass(frozen=True)
class Protocol:
    """One dataset family's study protocol; ``seconds_per_fit``: median wall time of one fine-tuning
    fit (w/o np) in round 2 of the committed study (1 thread, beside another job on 2 cores)."""

    family: str
    dataset: str
    tasks: tuple[str, ...]
    screen_tasks: tuple[str, ...]
    shots: tuple[int, ...]
    image_size: int
    max_test_per_class: int | None
    preset: str
    seconds_per_fit: float
    task_key: str | None = "task"  # the loader's argument selecting the task (None: it has none)


_CIFAR = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_FLOWERS = ("Crocus/Bluebell", "Bluebell/Crocus", "Daffodil/Tulip", "Tulip/Daffodil",
            "Pansy/Windflower", "Windflower/Pansy", "Buttercup/Cowslip", "Cowslip/Buttercup")

#: CIFAR-10-C: generated severity 4, 10 shots, 30 normal + 30 corrupted test images (capped) per
#: class. Flowers17: Table I's 5 shots, test capped at 30 + 10. MVTec bottle: 2/5/10 shots,
#: 20 good + 20 defective test images (the shared copy holds 20 good test images).
FAMILIES: dict[str, Protocol] = {
    "cifar": Protocol("cifar", "cifar10c", _CIFAR, ("airplane", "cat"), (10,), 64, 30, "cifar_c", 8.0),
    "flowers": Protocol("flowers", "flowers17", _FLOWERS, ("Daffodil/Tulip", "Tulip/Daffodil"), (5,), 128, 30,
                        "flowers", 20.0),
    "bottle": Protocol("bottle", "mvtec", ("bottle",), ("bottle",), (2, 5, 10), 128, 20, "industrial", 18.0),
}


def family(name: str) -> Protocol:
    """The protocol of family ``name`` ("cifar", "flowers", "bottle")."""
    if name not in FAMILIES:
        raise COFTADInputError(f"family={name!r}: choose one of {', '.join(FAMILIES)}")
    return FAMILIES[name]


def available(overrides: Mapping[str, Any]) -> str | None:
    """None when COFTADConfig has every key of ``overrides``, else why the row cannot run."""
    from ..coftad import COFTADConfig

    missing = sorted(set(overrides) - {f.name for f in dataclasses.fields(COFTADConfig)})
    return f"COFTADConfig has no {', '.join(missing)} yet" if missing else None


def config_of(name: str, grid: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """BASE updated by the grid row ``name`` ("pretrained" = BASE with steps=0)."""
    grid = GRID if grid is None else grid
    if name == "pretrained":
        return {**BASE, "steps": 0}
    if name not in grid:
        raise COFTADInputError(f"configuration {name!r} is not in the study grid; known: {', '.join(grid)}")
    return {**BASE, **grid[name]}


def baseline_of(config: Mapping[str, Any]) -> dict[str, Any]:
    """The no-fine-tuning detector with the same starting features as ``config``."""
    return {**BASE, **{k: v for k, v in config.items() if k in START_KEYS}, "steps": 0}


def with_starts(configs: Sequence[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """``configs`` with each one's start (:func:`baseline_of`) just before it, every config once."""
    plan: list[tuple[str, dict[str, Any]]] = []
    for name, cfg in configs:
        start = baseline_of(cfg)
        for item in ((baseline_name(start), start), (name, cfg)):
            if all(c != item[1] for _, c in plan):
                plan.append(item)
    return plan


def screen_plan(fam: str, grid: Mapping[str, Mapping[str, Any]] | None = None) -> list[tuple[str, dict[str, Any]]]:
    """(name, config) to screen, runnable rows only, each preceded by its baseline when new."""
    grid = GRID if grid is None else grid
    rows = [(name, config_of(name, grid)) for name in grid]
    return with_starts([(n, c) for n, c in rows if available(c) is None])


def baseline_name(base: Mapping[str, Any]) -> str:
    """Row name of a baseline: "pretrained", or "start:<key>=<value>,..." for other starts."""
    extra = {k: v for k, v in base.items() if k in START_KEYS}
    return "pretrained" if not extra else "start:" + ",".join(f"{k}={v}" for k, v in sorted(extra.items()))


# -- the unit of work --------------------------------------------------------------------------
def drift(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Feature drift: (M, D), (M, D) -> (M,) cosine between each image's features before and after."""
    before, after = np.asarray(before, dtype=np.float64), np.asarray(after, dtype=np.float64)
    if before.shape != after.shape or before.ndim != 2:
        raise COFTADInputError(f"drift: expected two (M, D) arrays of one shape, got {before.shape} and {after.shape}")
    num = (before * after).sum(1)
    den = np.linalg.norm(before, axis=1) * np.linalg.norm(after, axis=1)
    return num / np.maximum(den, 1e-12)


def unit_cell(fam: Protocol, task: str, shots: int, seed: int, config: Mapping[str, Any],
              device: str = "cpu"):
    """The :class:`~coftad_lib.engine.cells.Cell` naming one study unit (its key, its task protocol)."""
    from ..engine.cells import Cell

    kwargs = {"backbone": "efficientnet_lite0", "preset": fam.preset, "image_size": fam.image_size,
              "device": device, "progress": False, **config}
    args: dict[str, Any] = {fam.task_key: task} if fam.task_key else {}
    if fam.max_test_per_class is not None:
        args["max_test_per_class"] = fam.max_test_per_class
    return Cell(table="study", dataset=fam.dataset, task=task, shots=shots, method="coftad",
                method_kwargs=kwargs, seed=seed, task_args=args)


def _fit_and_measure(cell, data_root) -> dict[str, Any]:
    """Fit COFT-AD for ``cell``; AUROC, drift of the test features, loss curve, timings."""
    from ..coftad import COFTAD
    from ..engine.cells import load_cell_task
    from ..images import images_to_tensor
    from ..metrics import auroc
    from ..versions import versions

    task = load_cell_task(cell, data_root)
    det = COFTAD(seed=cell.seed, **cell.method_kwargs)
    t0 = time.perf_counter()
    det.fit(task.train)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    scores = det.score_samples(task.test)
    score_s = time.perf_counter() - t0
    x = images_to_tensor(task.test, det.image_size)
    # The untouched start is kept by COFTAD as _pretrained_net; its test features give the drift.
    cos = drift(det._features(x, net=det._pretrained_net).cpu().numpy(), det._features(x).cpu().numpy())
    labels = np.asarray(task.test_labels)
    return {"auroc": 100 * auroc(scores, labels), "drift_normal": float(cos[labels == 0].mean()),
            "drift_anomalous": float(cos[labels == 1].mean()), "n_test": int(labels.size),
            "history": [float(h["loss"]) for h in det.history], "fit_seconds": round(fit_s, 2),
            "score_seconds": round(score_s, 2), "threads": int(os.environ.get("OMP_NUM_THREADS", "0") or 0),
            "versions": versions(str(cell.method_kwargs.get("device", "cpu")))}


def _key_parts(cell) -> dict[str, Any]:
    # The code fingerprint, as in a table cell's key: a unit computed by older method code is not
    # read back as this code's result (round 1's units were, which mixed two codes in one table).
    from ..engine.fingerprint import code_fingerprint

    return {"cell": cell.work(), "schema": 1, "code": code_fingerprint()}


def is_cached(fam: Protocol, task: str, shots: int, seed: int, config: Mapping[str, Any], cache_dir,
              device: str = "cpu") -> bool:
    """Whether :func:`run_unit` would read this unit back instead of fitting (same file as ``cached``)."""
    from ..engine.cache import cached

    parts = _key_parts(unit_cell(fam, task, shots, seed, config, device))
    return cached("study", parts, lambda: None, cache_dir, compute=False) is not None


def run_unit(fam: Protocol, task: str, shots: int, seed: int, name: str, config: Mapping[str, Any],
             data_root, cache_dir, device: str = "cpu") -> dict[str, Any]:
    """One study row, computed once and cached (:func:`coftad_lib.engine.cache.cached`); a rerun resumes.

    Keys: family, task, shots, seed, config, start, protocol, overrides, auroc (%), drift_normal and
    drift_anomalous (mean cosine of the test features before/after fine-tuning), loss_first/last,
    timings, versions (library, packages, commit, device), and ``history`` (loss per step).
    """
    from ..engine.cache import cached

    cell = unit_cell(fam, task, shots, seed, config, device)
    rec = cached("study", _key_parts(cell), lambda: _fit_and_measure(cell, data_root), cache_dir)
    row = {"family": fam.family, "dataset": fam.dataset, "task": task, "shots": shots, "seed": seed, "config": name,
           "start": baseline_name(baseline_of(config)), "image_size": fam.image_size,
           "max_test_per_class": fam.max_test_per_class, "overrides": repr(dict(sorted(config.items())))}
    row.update({k: v for k, v in rec.items() if k not in ("versions", "history")})
    row["loss_first"] = rec["history"][0] if rec["history"] else math.nan
    row["loss_last"] = rec["history"][-1] if rec["history"] else math.nan
    row.update(rec["versions"])
    row["history"] = list(rec["history"])
    return row


def split_history(rows: Sequence[Mapping[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows of :func:`run_unit` -> (table without the loss curves, long table: one row per step)."""
    keys = ("family", "task", "shots", "seed", "config")
    table = pd.DataFrame([{k: v for k, v in r.items() if k != "history"} for r in rows])
    curves = pd.DataFrame([{**{k: r[k] for k in keys}, "step": i, "loss": v}
                           for r in rows for i, v in enumerate(r.get("history", []))],
                          columns=[*keys, "step", "loss"])
    return table, curves


# -- aggregation ---------------------------------------------------------------------------------
def gains(rows: pd.DataFrame) -> pd.DataFrame:
    """Each row's AUROC minus its baseline's (same family, task, shots, seed and start): ``gain``."""
    base = rows[rows["config"] == rows["start"]]
    base = base[["family", "task", "shots", "seed", "start", "auroc"]].rename(columns={"auroc": "auroc_start"})
    out = rows.merge(base.drop_duplicates(["family", "task", "shots", "seed", "start"]),
                     on=["family", "task", "shots", "seed", "start"], how="left")
    out["gain"] = out["auroc"] - out["auroc_start"]
    return out


VERDICT_COLUMNS = ["family", "config", "reference", "seeds", "auroc_mean", "auroc_std", "reference_mean",
                   "reference_std", "diff", "spread", "exceeds"]


def verdict(rows: pd.DataFrame, configs: Sequence[str], reference: str = "pretrained") -> pd.DataFrame:
    """Per family and configuration: family mean per seed, then mean +- std over seeds, against ``reference``.

    ``diff`` = mean over seeds of (config - reference), both averaged over the family's tasks and
    shots first; ``spread`` = the larger of the two stds over seeds (ddof=1; NaN with one seed);
    ``exceeds`` = |diff| > spread. Only seeds where both ran every task are counted.
    A configuration with its own start (``random_init``, ``stage4``: the rows' ``start`` column) is
    compared with that start when it ran, so the gain is the fine-tuning's, not the start's; the
    start rows themselves are compared with ``reference``.
    """
    out = []
    for fam, g in rows.groupby("family", sort=False):
        per_seed = g.pivot_table(index="seed", columns="config", values="auroc", aggfunc="mean")
        count = g.pivot_table(index="seed", columns="config", values="auroc", aggfunc="count")
        full = count.max().max()
        starts = g.groupby("config")["start"].first() if "start" in g else pd.Series(dtype=object)
        for name in configs:
            ref = starts.get(name, reference)
            ref = ref if ref != name and ref in per_seed else reference
            if name not in per_seed or ref not in per_seed:
                continue
            ok = (count[name] == full) & (count[ref] == full)
            a, r = per_seed.loc[ok, name], per_seed.loc[ok, ref]
            if a.empty:
                continue
            sd = float(max(a.std(ddof=1), r.std(ddof=1))) if len(a) > 1 else math.nan
            diff = float((a - r).mean())
            out.append({"family": fam, "config": name, "reference": ref, "seeds": len(a), "auroc_mean": float(a.mean()),
                        "auroc_std": float(a.std(ddof=1)) if len(a) > 1 else math.nan,
                        "reference_mean": float(r.mean()),
                        "reference_std": float(r.std(ddof=1)) if len(r) > 1 else math.nan, "diff": diff, "spread": sd,
                        "exceeds": bool(abs(diff) > sd) if not math.isnan(sd) else False})
    return pd.DataFrame(out, columns=VERDICT_COLUMNS)


def default_rule(table: pd.DataFrame, families: Sequence[str] = tuple(FAMILIES)) -> list[str]:
    """Issue 11's rule: configurations beating the reference by more than the spread on >= 2 of the
    3 families without losing more than 1 point on the remaining one (all 3 must have run)."""
    winners = []
    for name, g in table.groupby("config"):
        g = g.set_index("family")
        if not set(families) <= set(g.index):
            continue
        wins = [(g.loc[f, "diff"] > 0) and bool(g.loc[f, "exceeds"]) for f in families]
        if sum(wins) >= 2 and all(w or g.loc[f, "diff"] >= -1 for f, w in zip(families, wins, strict=True)):
            winners.append(str(name))
    return winners


def screen_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Screening table: per configuration, mean AUROC, mean gain over its start, drift, fit time."""
    g = gains(rows)
    agg = g.groupby("config", sort=False).agg(
        start=("start", "first"), auroc=("auroc", "mean"), gain=("gain", "mean"), gain_min=("gain", "min"),
        drift_normal=("drift_normal", "mean"), drift_anomalous=("drift_anomalous", "mean"),
        loss_first=("loss_first", "mean"), loss_last=("loss_last", "mean"), fit_seconds=("fit_seconds", "mean"),
        runs=("auroc", "count"))
    return agg.reset_index()


def pick_best(summary: pd.DataFrame, grid: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, str]:
    """Best screened pretrained-start configuration without and with negative pairs (highest mean gain
    among the rows that ran on every screening unit)."""
    grid = GRID if grid is None else grid
    s = summary[(summary["start"] == "pretrained") & summary["config"].isin(list(grid))]
    s = s[s["runs"] == s["runs"].max()]  # a row cut short by the time budget is not comparable
    is_np = s["config"].map(lambda n: bool(grid[n].get("use_negative", False)))
    best = {}
    for key, part in (("wo_np", s[~is_np]), ("w_np", s[is_np])):
        if not part.empty:
            best[key] = str(part.sort_values(["gain", "gain_min"], ascending=False)["config"].iloc[0])
    return best


# -- reading the committed results (notebook 18) -------------------------------------------------
def load_study(study_dir, fam: str) -> dict[str, pd.DataFrame | None]:
    """``{screen, screen_loss, confirm, confirm_loss}`` frames of family ``fam`` (None when absent)."""
    from pathlib import Path

    out = {}
    for stem in ("screen", "screen_loss", "confirm", "confirm_loss"):
        stage, _, loss = stem.partition("_")
        path = Path(study_dir) / f"{fam}_{stage}{'_loss' if loss else ''}.csv"
        out[stem] = pd.read_csv(path) if path.exists() else None
    return out


def confirm_configs(confirm: pd.DataFrame) -> list[str]:
    """The fine-tuned configurations of a confirm frame, in the order they first appear."""
    return [str(c) for c in confirm["config"].unique() if c != "pretrained"]


def live_demo(data_root, cache_dir, device: str = "cpu") -> pd.DataFrame:
    """The machinery on one tiny unit: CIFAR-10-C airplane at 32 px, 2 steps, 10 + 10 test images.

    Returns the rows (pretrained, COFT-AD w/o np) with their gain over the start; a missing dataset
    gives one row with ``status`` "missing" and the loader's message instead.
    """
    from ..errors import DatasetNotFoundError

    fam = dataclasses.replace(FAMILIES["cifar"], image_size=32, max_test_per_class=10)
    tiny = {"batch_size": 4, "n_aug": 2}
    try:
        rows = [run_unit(fam, "airplane", 10, 0, name, {**cfg, **tiny}, data_root, cache_dir, device)
                for name, cfg in (("pretrained", config_of("pretrained")), ("base", {**config_of("base"), "steps": 2}))]
    except DatasetNotFoundError as exc:
        return pd.DataFrame([{"dataset": fam.dataset, "status": "missing", "message": str(exc)}])
    table, _ = split_history(rows)
    table["status"] = "ok"
    return gains(table)


def drift_table(confirm: pd.DataFrame) -> pd.DataFrame:
    """Per configuration: mean AUROC, gain over pretrained, test-feature drift, first/last loss, fit time."""
    g = gains(confirm)
    return g.groupby("config", sort=False)[["auroc", "gain", "drift_normal", "drift_anomalous", "loss_first",
                                            "loss_last", "fit_seconds"]].mean().reset_index()


def verdict_display(table: pd.DataFrame) -> pd.DataFrame:
    """The verdict table with ``mean +- std`` strings, for notebooks and Markdown."""
    def pm(m, s):
        return f"{m:.2f} +- {s:.2f}" if not math.isnan(s) else f"{m:.2f}"
    return pd.DataFrame({"family": table["family"], "configuration": table["config"], "seeds": table["seeds"],
                         "COFT-AD AUROC": [pm(m, s) for m, s in zip(table["auroc_mean"], table["auroc_std"], strict=True)],
                         "compared with": table["reference"],
                         "its AUROC": [pm(m, s) for m, s in zip(table["reference_mean"], table["reference_std"], strict=True)],
                         "difference": table["diff"].round(2),
                         "spread": table["spread"].round(2), "exceeds spread": table["exceeds"]})
