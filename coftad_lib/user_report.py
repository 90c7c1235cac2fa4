"""Which method to trust on your own images: fit several methods on the shots, score a labelled
test set, and write a report folder (beyond the paper).

``python -m coftad_lib evaluate`` and notebook 17 call this module::

    task = load_labelled("my_parts/")                        # coftad_lib.datasets.labelled
    ev = evaluate(task, ["coftad", "pretrained", "patchcore"], image_size=64, steps=2)
    ev.auroc_table()                                          # AUROC % per method and defect kind
    write_report(ev, "report/")                               # report.md, scores.csv, figures

The report folder holds ``report.md`` (AUROC per method and per defect kind, settings, counts),
``scores.csv`` (one row per test image, one score column per method) and PNG figures: ``roc.png``,
``score_distributions.png``, ``most_anomalous.png``, ``least_anomalous.png``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from tqdm.auto import tqdm

from . import plots, user_figures
from .atomic_files import save_figure_atomic, write_text_atomic
from .datasets.task import FewShotTask
from .detector import Detector
from .errors import COFTADInputError
from .methods.traits import methods_with
from .metrics import auroc
from .plots import tsne_2d
from .training import SETTINGS

#: what `evaluate` fits when no --methods are given: the paper's method, its start, and PatchCore
DEFAULT_METHODS: tuple[str, ...] = ("coftad", "pretrained", "patchcore")
#: the methods whose size comes from COFTAD's own ``settings="auto"`` when none is given
_COFTAD_FAMILY = {"coftad", "coftad_np", "pretrained", "random"}
#: image side and batch for the other methods on a CPU when none is given: COFTAD's "cpu" settings
#: (a few-shot fit of about a minute on 2 cores); each method keeps its own number of steps.
CPU_SIZE: dict[str, int] = {k: SETTINGS["cpu"][k] for k in ("image_size", "batch_size")}


def method_kwargs(method: str, *, image_size: int | None = None, steps: int | None = None,
                  batch_size: int | None = None, backbone: str = "efficientnet_lite0",
                  preset: str = "industrial", seed: int = 0, device: str = "auto",
                  progress: bool = False, **extra: Any) -> dict[str, Any]:
    """``make_detector`` kwargs for ``method`` on a user's images; None = the method's default.

    On a CPU the non-COFT-AD methods get :data:`CPU_SIZE` unless sizes are given; the COFT-AD
    family picks its own (``settings="auto"``). ``preset`` defaults to "industrial" (inspection
    images; use "flowers" for natural photos, Sec. IV-C).
    """
    from .device import resolve_device

    kw: dict[str, Any] = {"backbone": backbone, "preset": preset, "seed": seed, "device": device,
                          "progress": progress, **extra}
    given = {"image_size": image_size, "steps": steps, "batch_size": batch_size}
    if method not in _COFTAD_FAMILY and resolve_device(device).type == "cpu":
        given = {k: CPU_SIZE.get(k) if v is None else v for k, v in given.items()}
    kw.update({k: v for k, v in given.items() if v is not None})
    return kw


def build(method: str, kwargs: dict[str, Any]) -> tuple[Detector, dict[str, Any]]:
    """The detector and its kwargs with the sizes it resolved (image_size, steps, batch_size) filled in,
    so that a saved model rebuilds the same on another machine."""
    from .methods.registry import make_detector

    det = make_detector(method, **kwargs)
    src = getattr(det, "config", det)
    resolved = dict(kwargs)
    for key in ("image_size", "steps", "batch_size"):
        value = getattr(src, key, None)
        if value is not None:
            resolved[key] = value
    return det, resolved


@dataclass
class MethodRun:
    """One method fitted on the shots and scored on the test images."""

    method: str
    display: str
    scores: np.ndarray  # (M,) float64, higher = more anomalous
    kwargs: dict[str, Any]
    fit_seconds: float
    score_seconds: float
    detector: Detector | None = None


@dataclass
class Evaluation:
    """Every method's scores on one labelled task."""

    task: FewShotTask
    runs: dict[str, MethodRun] = field(default_factory=dict)
    source: str = ""

    @property
    def labels(self) -> np.ndarray:
        return self.task.test_labels

    def anomaly_kinds(self) -> list[str]:
        """Kinds of the anomalous test images, sorted."""
        return sorted({k for k, y in zip(self.task.test_kinds, self.labels, strict=True) if y == 1})

    def auroc_table(self) -> pd.DataFrame:
        """AUROC % per method (rows) over all test images and per defect kind (normals vs that kind)."""
        kinds = np.asarray(self.task.test_kinds)
        rows = []
        for run in self.runs.values():
            row = {"method": run.display, "all": 100 * auroc(run.scores, self.labels)}
            for kind in self.anomaly_kinds():
                m = (self.labels == 0) | (kinds == kind)
                row[kind] = 100 * auroc(run.scores[m], self.labels[m])
            rows.append(row)
        return pd.DataFrame(rows).set_index("method")

    def counts(self) -> dict[str, int]:
        """Test images per column of :meth:`auroc_table`: normals, all anomalies, each kind."""
        kinds = list(self.task.test_kinds)
        out = {"normal": int((self.labels == 0).sum()), "all": int(self.labels.sum())}
        out.update({k: sum(1 for kk, y in zip(kinds, self.labels, strict=True) if kk == k and y == 1)
                    for k in self.anomaly_kinds()})
        return out

    def scores_frame(self) -> pd.DataFrame:
        """One row per test image: id, path, label, kind and one score column per method.

        ``path`` is relative to :attr:`source` when that is the folder the images are in, so the
        CSV reads the same on every machine (and does not show the home folder of the one that ran it).
        """
        base = None
        if self.source:  # a CSV list: paths are read relative to its folder
            base = (Path(self.source).parent if Path(self.source).is_file() else Path(self.source)).absolute()
        df = pd.DataFrame({"id": self.task.test_ids, "path": [shown_path(p, base) for p in self.task.test],
                           "label": self.labels, "kind": self.task.test_kinds})
        for name, run in self.runs.items():
            df[name] = run.scores
        return df

    def ranked(self, method: str, n: int, most: bool = True) -> list[int]:
        """Indices of the ``n`` most (or least) anomalous test images by ``method``'s score."""
        order = np.argsort(-self.runs[method].scores if most else self.runs[method].scores, kind="stable")
        return order[:n].tolist()


def evaluate(task: FewShotTask, methods: Sequence[str] = DEFAULT_METHODS, *, keep_detectors: bool = False,
             progress: bool = True, source: str = "", **kwargs: Any) -> Evaluation:
    """Fit every method on ``task.train`` and score ``task.test``.

    Args:
        methods: registry names (``coftad_lib.methods.METHODS``).
        keep_detectors: keep each fitted detector in ``run.detector`` (heat maps, features).
        kwargs: passed to :func:`method_kwargs` (image_size, steps, backbone, preset, seed, device).
    """
    from .methods.registry import METHODS, display_name, method_class

    if not methods:
        raise COFTADInputError("evaluate: no methods given")
    for m in methods:
        if m not in METHODS:
            method_class(m)  # unknown or quoted-only names fail before any fit
    ev = Evaluation(task, source=source)
    for method in tqdm(list(methods), desc="methods", disable=not progress):
        det, resolved = build(method, method_kwargs(method, **kwargs))
        t0 = time.perf_counter()
        det.fit(task.train)
        t1 = time.perf_counter()
        scores = np.asarray(det.score_samples(task.test), dtype=np.float64)
        t2 = time.perf_counter()
        if not np.isfinite(scores).all():
            raise COFTADInputError(f"{method}: {int((~np.isfinite(scores)).sum())} test scores are NaN or infinite")
        ev.runs[method] = MethodRun(method, display_name(method), scores, resolved, round(t1 - t0, 2),
                                    round(t2 - t1, 2), det if keep_detectors else None)
    return ev


# ------------------------------------------------------------------ figures and report

def report_figures(ev: Evaluation, n_gallery: int = 8) -> dict[str, Figure]:
    """The report's figures: roc, score_distributions, most_anomalous, least_anomalous."""
    name = ev.task.name
    curves = {run.display: (run.scores, ev.labels) for run in ev.runs.values()}
    captions = [f"{'ANOM' if y else 'ok'} {k}" for y, k in zip(ev.labels, ev.task.test_kinds, strict=True)]

    def gallery(most: bool) -> Figure:
        rows = {}
        for key, run in ev.runs.items():
            idx = ev.ranked(key, n_gallery, most)
            rows[run.display] = ([ev.task.test[i] for i in idx], [run.scores[i] for i in idx], [captions[i] for i in idx])
        which = "most" if most else "least"
        return user_figures.ranked_gallery(rows, title=f"{name}: the {which} anomalous test images per method "
                                                         f"({which} first; caption: score, true label)")

    return {
        "roc": user_figures.roc_curves(curves, title=f"{name}: ROC"),
        "score_distributions": plots.score_distributions(curves, title=f"{name}: anomaly scores"),
        "most_anomalous": gallery(True),
        "least_anomalous": gallery(False),
    }


def heatmap_figure(ev: Evaluation, method: str = "patchcore", n: int = 6) -> Figure:
    """The ``n`` test images ``method`` finds most anomalous, each with its heat map (PatchCore [8]
    Sec. 3.3: distance of every patch to the nearest shot patch). Needs ``keep_detectors=True``."""
    run = ev.runs.get(method)
    if run is None or run.detector is None or not hasattr(run.detector, "anomaly_maps"):
        raise COFTADInputError(f"heatmap_figure: no fitted {method!r} with anomaly maps; "
                               "evaluate(..., keep_detectors=True) with a map method (patchcore, cflow)")
    idx = ev.ranked(method, n)
    images = [ev.task.test[i] for i in idx]
    maps = run.detector.anomaly_maps(images)
    captions = [f"{run.scores[i]:.3g} {ev.task.test_kinds[i]}" for i in idx]
    return user_figures.heatmap_gallery(images, list(maps), captions,
                                        title=f"{ev.task.name}: {run.display} heat maps of its top {len(idx)} images")


def feature_map_figure(ev: Evaluation, methods: Sequence[str] = ("pretrained", "coftad"), seed: int = 0) -> Figure:
    """openTSNE map of the features of each method with ``embed`` (test images; shots marked normal),
    normal blue and anomalous red, as in Fig. 6. Needs ``keep_detectors=True``."""
    panels = {}
    for m in methods:
        run = ev.runs.get(m)
        if run is None or run.detector is None or not hasattr(run.detector, "embed"):
            continue
        feats = np.concatenate([run.detector.embed(ev.task.train), run.detector.embed(ev.task.test)])
        labels = np.concatenate([np.zeros(ev.task.shots, dtype=np.int64), ev.labels])
        panels[f"{run.display}: shots + test"] = (tsne_2d(feats, seed), labels)
    if not panels:
        raise COFTADInputError(f"feature_map_figure: none of {list(methods)} was fitted with features "
                               "(keep_detectors=True; methods with embed(): coftad, pretrained, ...)")
    return plots.tsne_scatter(panels, ncols=len(panels), title=f"{ev.task.name}: t-SNE of the features")


def _markdown_table(df: pd.DataFrame, index: bool = True) -> str:
    """A GitHub Markdown table; floats with one decimal."""
    df = df.reset_index() if index else df
    fmt = [lambda v: f"{v:.1f}" if isinstance(v, float) else str(v)] * len(df.columns)
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(f(v) for f, v in zip(fmt, row, strict=True)) + " |")
    return "\n".join(lines)


#: methods that train nothing (PatchCore's memory bank, the pretrained features): no steps to report
NO_TRAINING = methods_with(trains=False)


def _settings_row(run: MethodRun) -> dict[str, Any]:
    from .methods.registry import method_class

    uses_backbone = getattr(method_class(run.method), "uses_backbone", True)
    return {"method": run.display, "image size": run.kwargs.get("image_size", "default"),
            "steps": "-" if run.method in NO_TRAINING else run.kwargs.get("steps", "default"),
            "backbone": run.kwargs.get("backbone", "") if uses_backbone else "- (own network)",
            "fit s": run.fit_seconds, "score s": run.score_seconds}


def shown_path(item: Any, base: str | os.PathLike | None) -> str:
    """``item`` relative to the folder ``base`` when it lies below it or was listed relative to it
    (a CSV entry ``../other/x.png`` stays that), else as given.

    Why: committed reports and CSVs (notebook 17's demo) must not print the machine's folders."""
    if base is None or not isinstance(item, (str, os.PathLike)) or not str(item):
        return str(item)
    base = Path(base).absolute()
    try:
        return Path(item).resolve().relative_to(base.resolve()).as_posix()
    except (ValueError, OSError):
        pass
    try:  # lexically: an entry joined onto the CSV's folder keeps its "../" form
        return Path(item).relative_to(base).as_posix()
    except ValueError:
        return str(item)


def report_markdown(ev: Evaluation, figures: Sequence[str], out: str | os.PathLike | None = None) -> str:
    """Text of ``report.md`` (written into ``out``): data, AUROC table, settings, figures, limits."""
    t = ev.task
    counts = ev.counts()
    skipped = t.info.get("skipped_unreadable", [])
    settings = pd.DataFrame([_settings_row(r) for r in ev.runs.values()])
    lines = [
        f"# Evaluation on {t.name} (your own data; beyond the paper)", "",
        f"Data: `{shown_path(ev.source, out) or t.name}`; {t.shots} normal training shots (seed {t.info.get('seed', 0)}); "
        f"{counts['normal']} normal and {counts['all']} anomalous test images"
        + (f"; {len(skipped)} unreadable images skipped" if skipped else "") + ".", "",
        "## AUROC (%)", "",
        "`all`: every test image; each other column: the normal test images against one defect kind "
        f"(anomalies per kind: {', '.join(f'{k} {v}' for k, v in counts.items() if k not in ('normal', 'all'))}).", "",
        _markdown_table(ev.auroc_table()), "",
        "## Settings", "", _markdown_table(settings, index=False), "",
        "## Figures", "",
        *[f"![{f}]({f}.png)" for f in figures], "",
        "## How far this goes", "",
        f"- AUROC 50 is chance. With {t.shots} shots and {len(t.test_labels)} test images, one seed: a "
        "difference of a few points between methods can come from the draw of the shots; rerun with "
        "other `--seed` values before trusting it.",
        "- `scores.csv` holds every score; scores of different methods live on different scales.",
    ]
    return "\n".join(lines) + "\n"


def write_report(ev: Evaluation, out_dir: str | os.PathLike, *, n_gallery: int = 8,
                 figures: dict[str, Figure] | None = None) -> dict[str, Path]:
    """Write report.md, scores.csv and the figures (PNG; default :func:`report_figures`) into
    ``out_dir``; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    figures = report_figures(ev, n_gallery) if figures is None else figures
    # Each file complete or absent (a kill or a full disk leaves no truncated PNG or CSV); the
    # report, which links the others, is written last.
    for name, fig in figures.items():
        paths[name] = save_figure_atomic(fig, out / f"{name}.png", dpi=120)
    paths["scores"] = write_text_atomic(out / "scores.csv", ev.scores_frame().to_csv(index=False))
    paths["report"] = write_text_atomic(out / "report.md", report_markdown(ev, list(figures), out))
    return paths


__all__ = ["CPU_SIZE", "DEFAULT_METHODS", "NO_TRAINING", "Evaluation", "MethodRun", "build", "evaluate", "feature_map_figure",
           "heatmap_figure", "method_kwargs", "report_figures", "report_markdown", "write_report"]
