"""Does fine-tuning help at the paper's compute? COFT-AD against its own start (issue 19; beyond the paper).

Table VI's claim is that contrastive fine-tuning beats the pretrained features (67.32 -> 74.56 on
CIFAR-10-C with ResNet18). An earlier study here said "no" at 20 steps of batch 8 on small test
sets; this module asks again at the paper's batch (64, Sec. IV-C) and our paper-profile steps
(100), on full test sets.

One *unit* is one COFT-AD fit scored three ways on the whole test set of its task: with the
pretrained start f_0, with the online network f (the Theta of Eqs. 7-8, Sec. III-A) and with the
EMA target f^ (the library's default, ``score_with="target"``). The three Gaussians (Eq. 7) are
fitted on the *same* N_A augmented copies of the shots, drawn after training from the fit's own
random stream, so each fine-tuned AUROC is paired with its own start. The target scoring is
exactly ``COFTAD(score_with="target").fit(shots).score_samples(test)`` (tests/test_paper_compute.py).

Units are written one JSON file each, atomically, so a run cut short by a time limit keeps every
finished unit and a rerun computes only what is missing; several processes share one queue of
task groups through claim files (a GPU that one small fit leaves idle runs several at once).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..atomic_files import write_text_atomic
from ..coftad import COFTAD
from ..density import GaussianDensity
from ..detector import seeded
from ..device import autocast, memory_format, place
from ..engine.data_identity import DataIds
from ..engine.kernels import kernel_info
from ..errors import COFTADInputError
from ..images import images_to_tensor
from ..metrics import auroc
from ..training import fine_tune
from ..unit_records import read_units
from ..versions import versions


@dataclass(frozen=True)
class Family:
    """One dataset family's protocol: the paper's tasks and shots, full test sets."""

    name: str
    dataset: str
    tasks: tuple[str, ...]
    shots: tuple[int, ...]
    preset: str


_CIFAR = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_FLOWERS = ("Crocus/Bluebell", "Bluebell/Crocus", "Daffodil/Tulip", "Tulip/Daffodil",
            "Pansy/Windflower", "Windflower/Pansy", "Buttercup/Cowslip", "Cowslip/Buttercup")

#: Table VI / II (CIFAR-10-C, 10 shots, 1,000 clean + 9,000 level-4 corrupted test images per
#: class less the shots), Table I (Flowers17, 5 shots, 70 + 10), Table IV (MVTec bottle 2/5/10 shots).
FAMILIES: dict[str, Family] = {
    "cifar": Family("cifar", "cifar10c", _CIFAR, (10,), "cifar_c"),
    "flowers": Family("flowers", "flowers17", _FLOWERS, (5,), "flowers"),
    "bottle": Family("bottle", "mvtec", ("bottle",), (2, 5, 10), "industrial"),
}

#: configuration name -> COFTADConfig overrides; "w_np" is COFT-AD (w/ np), the rest w/o np
CONFIGS: dict[str, dict[str, Any]] = {
    "wo_np": {},
    "w_np": {"use_negative": True},
    "ema0.996": {"ema_beta": 0.996},  # BYOL's own rate: the target moves 1 - 0.996^100 = 33 % of the way
    "steps300": {"steps": 300},
}
SCORINGS: tuple[str, ...] = ("pretrained", "online", "target")


@dataclass(frozen=True)
class Compute:
    """The compute of a run. Defaults: the paper's batch 64 and the paper profile's 100 steps."""

    image_size: int = 224
    steps: int = 100
    batch_size: int = 64
    device: str = "cuda"
    eval_batch_size: int = 256
    label: str = "paper"  # names the run's folder and every record (e.g. "h200-224px", "cpu-64px")


@dataclass(frozen=True)
class Unit:
    """One fit: family, task, shots, seed and configuration name."""

    family: str
    task: str
    shots: int
    seed: int
    config: str

    @property
    def file_name(self) -> str:
        return f"{self.family}__{self.task.replace('/', '-')}__k{self.shots}__s{self.seed}__{self.config}.json"


def plan(families: Sequence[str], configs: Sequence[str], seeds: Sequence[int],
         tasks: Sequence[str] = ()) -> list[list[Unit]]:
    """Groups of units that share one task (loaded once), seed-major so a cut-short run holds whole seeds.

    ``tasks``: only these of the families' tasks (e.g. two CIFAR-10-C classes at a costlier compute).
    """
    known = {t for f in families if f in FAMILIES for t in FAMILIES[f].tasks}
    for name in tasks:
        if name not in known:
            raise COFTADInputError(f"task={name!r}: not a task of {', '.join(families)}; choose from {', '.join(sorted(known))}")
    for name in families:
        if name not in FAMILIES:
            raise COFTADInputError(f"family={name!r}: choose from {', '.join(FAMILIES)}")
    for name in configs:
        if name not in CONFIGS:
            raise COFTADInputError(f"config={name!r}: choose from {', '.join(CONFIGS)}")
    return [[Unit(f, t, k, s, c) for c in configs]
            for f in families for s in seeds for t in FAMILIES[f].tasks for k in FAMILIES[f].shots
            if not tasks or t in tasks]


def detector_kwargs(unit: Unit, compute: Compute) -> dict[str, Any]:
    """COFTAD keyword arguments of a unit (Lite0: the only ImageNet weights that install offline)."""
    fam = FAMILIES[unit.family]
    return {"backbone": "efficientnet_lite0", "preset": fam.preset, "image_size": compute.image_size,
            "steps": compute.steps, "batch_size": compute.batch_size, "device": compute.device,
            "eval_batch_size": compute.eval_batch_size, "progress": False, "seed": unit.seed,
            **CONFIGS[unit.config]}


# -- features of a whole test set ---------------------------------------------------------------
def test_input(test: Any) -> torch.Tensor:
    """A task's test items as a CPU tensor: uint8 (M, 3, h, w) at their own size for arrays
    (resized batch by batch on the device, :func:`features`), float (M, 3, S, S) later for files."""
    if isinstance(test, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(test)).permute(0, 3, 1, 2)
    return torch.as_tensor(np.empty(0))  # files: decoded at the fit's size by :func:`prepare_test`


def prepare_test(test: Any, image_size: int) -> torch.Tensor:
    """(M, 3, h, w) uint8 for an array test set, else the library's (M, 3, S, S) float decode of the files."""
    return test_input(test) if isinstance(test, np.ndarray) else images_to_tensor(test, image_size)


@torch.no_grad()
def features(net: torch.nn.Module, x: torch.Tensor, image_size: int, device: torch.device,
             batch: int) -> torch.Tensor:
    """(M, 3, h, w) uint8 or (M, 3, S, S) float -> (M, D) float32 features of ``net``.

    uint8 input is resized on the device with the operation of ``images_to_tensor`` (bilinear,
    antialias, half-pixel centres, clamped to [0, 1]), so 9,900 CIFAR images are not held at 224 px.
    """
    net.eval()
    out = []
    for i in range(0, len(x), batch):
        xb = x[i : i + batch].to(device, non_blocking=True)
        if xb.dtype == torch.uint8:
            xb = xb.float() / 255.0
            if xb.shape[-1] != image_size or xb.shape[-2] != image_size:
                xb = F.interpolate(xb, size=(image_size, image_size), mode="bilinear", antialias=True,
                                   align_corners=False).clamp_(0, 1)
        with autocast(device):
            out.append(net(xb.contiguous(memory_format=memory_format(device))).float())
    return torch.cat(out)


def _cosine(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """(M, D), (M, D) -> (M,) cosine between each image's features before and after fine-tuning."""
    return F.cosine_similarity(a.double(), b.double(), dim=1).cpu().numpy()


# -- one unit ------------------------------------------------------------------------------------
def fit_unit(unit: Unit, train: Any, compute: Compute) -> tuple[dict[str, torch.nn.Module], torch.Tensor,
                                                                COFTAD, list[dict[str, float]], float]:
    """Fine-tune once; return the three networks, the N_A copies of the shots, the detector, history, seconds.

    The order of random draws is ``COFTAD.fit``'s: one generator seeded with the unit's seed feeds
    the training batches, then the copies of Eq. 7.
    """
    det = COFTAD(**detector_kwargs(unit, compute))
    shots = det._to_device_batch(train)
    det.generator = torch.Generator(det.device).manual_seed(unit.seed)
    t0 = time.perf_counter()
    with seeded(unit.seed, det.device):
        modules, history = fine_tune(det.config, det._pretrained_net, shots, det.augment, det.generator,
                                     progress=False)
        copies = det.augment.positive(shots.repeat(det.n_aug, 1, 1, 1), generator=det.generator)
    if det.device.type == "cuda":
        torch.cuda.synchronize(det.device)
    nets = {"pretrained": place(copy.deepcopy(det._pretrained_net), det.device),
            "online": modules.online, "target": modules.target}
    return nets, copies, det, history, time.perf_counter() - t0


def score_unit(nets: Mapping[str, torch.nn.Module], copies: torch.Tensor, det: COFTAD, test_x: torch.Tensor,
               labels: np.ndarray) -> dict[str, Any]:
    """AUROC (%) of each network's Gaussian (Eqs. 7-8) and the test features' drift from the start."""
    c = det.config
    out: dict[str, Any] = {}
    feats = {}
    for name, net in nets.items():
        density = GaussianDensity(l2_normalize=c.l2_normalize, eps=c.eps)
        density.fit(features(net, copies, c.image_size, det.device, c.eval_batch_size))
        feats[name] = features(net, test_x, c.image_size, det.device, c.eval_batch_size)
        # stored as float32 (a third of the text of float64) and the AUROC computed from exactly
        # what is stored, so that every unit's AUROC recomputes from its own record
        scores = density.score(feats[name]).cpu().numpy().astype(np.float32).astype(np.float64)
        out[f"scores_{name}"] = scores.tolist()
        out[f"auroc_{name}"] = 100 * auroc(scores, labels)
    for name in ("online", "target"):
        cos = _cosine(feats["pretrained"], feats[name])
        out[f"drift_{name}_normal"] = float(cos[labels == 0].mean())
        out[f"drift_{name}_anomalous"] = float(cos[labels == 1].mean())
    return out


def run_unit(unit: Unit, task: Any, test_x: torch.Tensor, compute: Compute) -> dict[str, Any]:
    """One unit's record: AUROCs, drift, loss curve, timings, and what it ran with."""
    nets, copies, det, history, fit_s = fit_unit(unit, task.train, compute)
    labels = np.asarray(task.test_labels)
    t0 = time.perf_counter()
    rec: dict[str, Any] = {**asdict(unit), "dataset": FAMILIES[unit.family].dataset,
                           "profile": compute.label, "image_size": compute.image_size,
                           "steps": det.config.steps, "batch_size": compute.batch_size,
                           "ema_beta": det.config.ema_beta, "use_negative": det.config.use_negative,
                           "n_test": int(labels.size), "n_anomalous": int(labels.sum())}
    rec.update(score_unit(nets, copies, det, test_x, labels))
    rec["labels"] = labels.astype(int).tolist()
    rec["test_ids_digest"] = hashlib.sha256("\n".join(str(i) for i in task.test_ids).encode()).hexdigest()[:16]
    rec.update(kernel_info())
    rec["loss_first"] = history[0]["loss"] if history else math.nan
    rec["loss_last"] = history[-1]["loss"] if history else math.nan
    rec.update({"fit_seconds": round(fit_s, 2), "score_seconds": round(time.perf_counter() - t0, 2),
                "threads": torch.get_num_threads(), **versions(str(det.device))})
    rec["history"] = [round(h["loss"], 6) for h in history]
    return rec


def write_json(path: Path, record: Mapping[str, Any]) -> None:
    """Write ``record`` to ``path`` atomically (a temporary name in the same folder, then rename)."""
    write_text_atomic(path, json.dumps(record, indent=1, default=float))


def _claim(out: Path, group: Sequence[Unit]) -> bool:
    """Whether this process takes ``group`` (an exclusive claim file; a finished group is never claimed)."""
    if all((out / u.file_name).exists() for u in group):
        return False
    try:
        fd = os.open(out / f".claim-{group[0].file_name[:-5]}", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return True


def clear_claims(out: str | os.PathLike) -> None:
    """Remove the claim files of an earlier run (one cut short leaves claims of unfinished groups)."""
    for p in Path(out).glob(".claim-*"):
        p.unlink(missing_ok=True)


def load_group(group: Sequence[Unit], roots: Mapping[str, str | os.PathLike], compute: Compute):
    """The group's task (via :func:`coftad_lib.datasets.load_task`) and its test input for :func:`features`."""
    from ..datasets import load_task

    u = group[0]
    fam = FAMILIES[u.family]
    if fam.dataset not in roots:
        raise COFTADInputError(f"no data root for {fam.dataset}; pass --root {fam.dataset}=<folder>")
    task = load_task(fam.dataset, roots[fam.dataset], shots=u.shots, seed=u.seed, task=u.task)
    return task, prepare_test(task.test, compute.image_size)


def run_groups(groups: Iterable[Sequence[Unit]], roots: Mapping[str, str | os.PathLike], compute: Compute,
               out: str | os.PathLike, log=print) -> int:
    """Compute every unit of the groups this process claims into ``out``; returns how many it computed."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    done = 0
    for group in groups:
        if not _claim(out, group):
            continue
        try:
            task, test_x = load_group(group, roots, compute)
        except (COFTADInputError, FileNotFoundError) as exc:  # data absent or incomplete here: the other groups still run
            log(f"{group[0].file_name}: skipped, {str(exc).splitlines()[0]}")
            continue
        for unit in group:
            path = out / unit.file_name
            if path.exists():
                continue
            rec = run_unit(unit, task, test_x, compute)
            dataset = FAMILIES[unit.family].dataset
            rec["data"] = DataIds(dict(roots))(dataset, {"task": unit.task}) if dataset in roots else None
            write_json(path, rec)
            done += 1
            log(f"{unit.file_name}: pretrained {rec['auroc_pretrained']:.2f} online {rec['auroc_online']:.2f} "
                f"target {rec['auroc_target']:.2f} (fit {rec['fit_seconds']} s, score {rec['score_seconds']} s)")
    return done


# -- reading and judging -------------------------------------------------------------------------
def load_records(folder: str | os.PathLike) -> pd.DataFrame:
    """Every unit record under ``folder`` (recursively), one row each, without the loss curves."""
    return pd.DataFrame(read_units(folder))


VERDICT_COLUMNS = ["profile", "family", "config", "scoring", "tasks", "seeds", "auroc_mean", "auroc_std",
                   "start_mean", "start_std", "diff", "spread", "exceeds", "units", "drift", "fit_s", "score_s"]


def verdict(frame: pd.DataFrame) -> pd.DataFrame:
    """Per profile, family, configuration and scored network: mean +- std over seeds against the start.

    Each seed's value is the mean over the family's tasks and shots (only seeds where every task
    ran count; ``tasks`` says how many of the family's tasks that is); ``diff`` = mean over seeds of (fine-tuned - pretrained start); ``spread`` = the
    larger of the two stds over seeds (ddof=1); ``exceeds`` = |diff| > spread (the rule of the
    earlier study, so both verdicts read alike). ``drift``: mean cosine of the scored network's
    normal test features to the start's (1 = unchanged); ``fit_s`` / ``score_s``: mean seconds of
    one unit's fit and its three scorings on the run's device (NaN where the records lack them).
    """
    out = []
    keys = ["profile", "family", "config"]
    for (prof, fam, cfg), g in frame.groupby(keys, sort=False):
        n_tasks = g.groupby("seed")["task"].count()
        full = n_tasks[n_tasks == n_tasks.max()].index
        g = g[g["seed"].isin(full)]
        per_seed = g.groupby("seed")[[f"auroc_{s}" for s in SCORINGS]].mean()
        start = per_seed["auroc_pretrained"]
        for scoring in ("online", "target"):
            a = per_seed[f"auroc_{scoring}"]
            sd = lambda s: float(s.std(ddof=1)) if len(s) > 1 else math.nan  # noqa: E731
            spread = max(sd(a), sd(start)) if len(a) > 1 else math.nan
            diff = float((a - start).mean())
            tasks = f"{g['task'].nunique()}/{len(FAMILIES[fam].tasks)}" if fam in FAMILIES else str(g["task"].nunique())
            out.append({"profile": prof, "family": fam, "config": cfg, "scoring": scoring, "tasks": tasks,
                        "seeds": len(a),
                        "auroc_mean": float(a.mean()), "auroc_std": sd(a), "start_mean": float(start.mean()),
                        "start_std": sd(start), "diff": diff, "spread": spread,
                        "exceeds": bool(abs(diff) > spread) if not math.isnan(spread) else False,
                        "units": len(g), "drift": _mean(g, f"drift_{scoring}_normal"),
                        "fit_s": _mean(g, "fit_seconds"), "score_s": _mean(g, "score_seconds")})
    return pd.DataFrame(out, columns=VERDICT_COLUMNS)


def _mean(g: pd.DataFrame, col: str) -> float:
    return float(g[col].mean()) if col in g else math.nan


def per_task(frame: pd.DataFrame) -> pd.DataFrame:
    """Per profile, family, configuration and task: mean over seeds of start, online, target AUROC
    and of the test features' drift (cosine to the start; 1 = unchanged)."""
    cols = [f"auroc_{s}" for s in SCORINGS] + ["drift_online_normal", "drift_target_normal", "fit_seconds"]
    g = frame.groupby(["profile", "family", "config", "task", "shots"], sort=False)
    table = g[cols].mean()
    table["seeds"] = g["seed"].count()
    table["gain_online"] = table["auroc_online"] - table["auroc_pretrained"]
    table["gain_target"] = table["auroc_target"] - table["auroc_pretrained"]
    return table.reset_index()


def verdict_markdown(table: pd.DataFrame) -> str:
    """The verdict table as Markdown: ``mean +- std`` over seeds, the difference and whether it exceeds the spread."""
    def pm(m: float, s: float) -> str:
        return f"{m:.2f} +- {s:.2f}" if not math.isnan(s) else f"{m:.2f}"

    def num(x: float, fmt: str) -> str:
        return "" if math.isnan(x) else format(x, fmt)

    lines = ["| profile | family | configuration | scored | tasks | seeds | fine-tuned | pretrained start "
             "| difference | spread | beyond spread | drift | fit s / unit | score s / unit |",
             "|---|---|---|---|---|---:|---|---|---:|---:|---|---:|---:|---:|"]
    for r in table.itertuples():
        lines.append(f"| {r.profile} | {r.family} | {r.config} | {r.scoring} | {r.tasks} | {r.seeds} | "
                     f"{pm(r.auroc_mean, r.auroc_std)} | {pm(r.start_mean, r.start_std)} | {r.diff:+.2f} | "
                     f"{r.spread:.2f} | {'yes' if r.exceeds else 'no'} | {num(r.drift, '.3f')} | "
                     f"{num(r.fit_s, '.0f')} | {num(r.score_s, '.0f')} |")
    return "\n".join(lines) + "\n"
