"""Drawing for the notebooks: image grids with score captions, t-SNE scatters, score distributions,
similarity heatmaps, loss curves and value histograms (Figs. 3b, 4, 5, 6, 7 and the method tour).

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot, so nothing stays
open in pyplot's global list and tests need no display; save it with
:func:`coftad_lib.figures.save_figure` (PNG + PDF) and show it in a notebook by leaving it as a
cell's last expression. Colours follow the paper: normal = blue, anomalous = red (Figs. 6, 7).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

# figures.py picks the headless backend before anything imports pyplot (seaborn does, lazily below).
from . import figures as _figures  # noqa: F401
from .errors import COFTADInputError

NORMAL_COLOR = "tab:blue"
ANOMALY_COLOR = "tab:red"
GROUP_NAMES = ("Normals", "Anomalies")  # legend labels of the paper's Fig. 7


# ------------------------------------------------------------------ helpers

def to_display(image: Any, max_side: int | None = None) -> np.ndarray:
    """One image -> (H, W, 3) or (H, W) array ready for ``imshow``.

    Accepts a file path (read with :func:`coftad_lib.images.load_image`), a PIL image, an
    (H, W[, C]) uint8 / float array, or a (C, H, W) / (H, W, C) tensor in [0, 1]. A file or PIL
    image larger than ``max_side`` pixels is shrunk (aspect kept), so figures of photos stay small.
    """
    from PIL import Image

    if isinstance(image, (str, os.PathLike)):
        from .images import load_image

        image = load_image(Path(image))
    if isinstance(image, Image.Image):
        image = image.convert("RGB")
        if max_side is not None and max(image.size) > max_side:
            image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    elif not isinstance(image, np.ndarray) and hasattr(image, "detach"):  # a torch tensor (torch not imported here)
        image = image.detach().cpu().float().numpy()
        if image.ndim == 3 and image.shape[0] in (1, 3) and image.shape[-1] not in (1, 3):
            image = np.moveaxis(image, 0, -1)
    arr = np.array(image)  # a copy: memmaps and views of the caller's data stay untouched
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise COFTADInputError(f"image of shape {arr.shape}: expected (H, W), (H, W, 3) or (3, H, W)")
    if arr.dtype != np.uint8:
        arr = np.clip(arr.astype(np.float64), 0.0, 1.0)
    return arr


def _as_scores_labels(scores: Any, labels: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel().astype(np.int64)
    if s.shape != y.shape:
        raise COFTADInputError(f"{what}: {s.size} scores but {y.size} labels")
    if s.size == 0:
        raise COFTADInputError(f"{what}: no scores to draw")
    if not set(np.unique(y)) <= {0, 1}:
        raise COFTADInputError(f"{what}: labels must be 0 (normal) or 1 (anomaly), got {sorted(set(y.tolist()))}")
    return s, y


def _grid(n: int, ncols: int, panel: tuple[float, float]) -> tuple[Figure, list[Any]]:
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(panel[0] * ncols, panel[1] * nrows), layout="constrained")
    axes = [fig.add_subplot(nrows, ncols, i + 1) for i in range(n)]
    return fig, axes


# ------------------------------------------------------------------ image grids (Figs. 3b, 4, 5)

def image_grid(rows: Sequence[Sequence[Any]], *, row_titles: Sequence[str] | None = None,
               captions: Sequence[Sequence[str]] | None = None, col_titles: Sequence[str] | None = None,
               title: str | None = None, cell_size: float = 1.5, caption_fontsize: float = 6.0,
               cmap: str = "gray", max_side: int | None = 256) -> Figure:
    """Rows of images with an optional caption under each image and a title left of each row.

    Fig. 5 uses it with one caption line per method ("COFT-AD 93"); Figs. 3b and 4 without captions.

    Args:
        rows: R rows, each a sequence of images (see :func:`to_display`); rows may differ in length.
        row_titles: R strings shown left of each row.
        captions: R sequences of strings, one per image (newlines allowed).
        col_titles: strings shown above the first row's images.
        title: figure title.
        cell_size: inches per image.
        max_side: files and PIL images are shrunk to at most this many pixels (None: as they are).
    """
    rows = [list(r) for r in rows]
    if not rows or not any(rows):
        raise COFTADInputError("image_grid: no images to draw")
    if row_titles is not None and len(row_titles) != len(rows):
        raise COFTADInputError(f"image_grid: {len(row_titles)} row_titles for {len(rows)} rows")
    if captions is not None:
        if len(captions) != len(rows) or any(len(c) != len(r) for c, r in zip(captions, rows, strict=True)):
            raise COFTADInputError("image_grid: captions must have the shape of rows (one string per image)")
    ncols = max(len(r) for r in rows)
    if col_titles is not None and len(col_titles) > ncols:
        raise COFTADInputError(f"image_grid: {len(col_titles)} col_titles for {ncols} columns")
    lines = max((str(c).count("\n") + 1 for row in (captions or []) for c in row), default=0)
    cap_h = lines * caption_fontsize / 72 * 1.3
    fig = Figure(figsize=(cell_size * ncols + (0.4 if row_titles else 0), (cell_size + cap_h) * len(rows) + (0.3 if title else 0)),
                 layout="constrained")
    grid = fig.add_gridspec(len(rows), ncols)
    for i, row in enumerate(rows):
        for j in range(ncols):
            ax = fig.add_subplot(grid[i, j])
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if j < len(row):
                img = to_display(row[j], max_side)
                ax.imshow(img, cmap=cmap if img.ndim == 2 else None)
                if captions is not None:
                    ax.set_xlabel(str(captions[i][j]), fontsize=caption_fontsize, linespacing=1.1)
            if j == 0 and row_titles is not None:
                ax.set_ylabel(row_titles[i], fontsize=7, rotation=90)
            if i == 0 and col_titles is not None and j < len(col_titles):
                ax.set_title(col_titles[j], fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def score_caption(scores: Mapping[str, float], fmt: str = "{:.0f}") -> str:
    """One caption line per method: ``"COFT-AD (w/ np) 93"`` (Fig. 5's normalised scores)."""
    return "\n".join(f"{name} {fmt.format(v)}" for name, v in scores.items())


# ------------------------------------------------------------------ features (Fig. 6, method tour)

def tsne_scatter(panels: Mapping[str, tuple[Any, Any]], *, ncols: int = 2, point_size: float = 6.0,
                 title: str | None = None, panel_size: tuple[float, float] = (3.2, 3.0)) -> Figure:
    """Fig. 6: one scatter per model of 2-D embeddings, normal points blue, anomalies red.

    Args:
        panels: panel title -> (coords (N, 2), labels (N,) with 1 = anomaly).
    """
    if not panels:
        raise COFTADInputError("tsne_scatter: no panels to draw")
    fig, axes = _grid(len(panels), ncols, panel_size)
    for ax, (name, (coords, labels)) in zip(axes, panels.items(), strict=True):
        xy = np.asarray(coords, dtype=np.float64)
        if xy.ndim != 2 or xy.shape[1] != 2:
            raise COFTADInputError(f"tsne_scatter[{name!r}]: coords of shape {xy.shape}; expected (N, 2)")
        _, y = _as_scores_labels(np.zeros(len(xy)), labels, f"tsne_scatter[{name!r}]")
        for lab, color, group in ((0, NORMAL_COLOR, GROUP_NAMES[0]), (1, ANOMALY_COLOR, GROUP_NAMES[1])):
            m = y == lab
            ax.scatter(xy[m, 0], xy[m, 1], s=point_size, c=color, alpha=0.6, linewidths=0, label=f"{group} ({m.sum()})")
        ax.set_title(name, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(fontsize=6, loc="best", markerscale=2)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def similarity_heatmaps(mats: Mapping[str, Any], *, vmin: float = -1.0, vmax: float = 1.0,
                        title: str | None = None, cmap: str = "viridis", annotate: bool = True) -> Figure:
    """Cosine-similarity matrices side by side (method tour: shot features before / after each loss).

    Args:
        mats: panel title -> (k, k) matrix.
        annotate: write each value in its cell (readable for k <= 10).
    """
    if not mats:
        raise COFTADInputError("similarity_heatmaps: no matrices to draw")
    fig, axes = _grid(len(mats), len(mats), (2.4, 2.4))
    im = None
    for ax, (name, m) in zip(axes, mats.items(), strict=True):
        a = np.asarray(m, dtype=np.float64)
        if a.ndim != 2 or a.shape[0] != a.shape[1]:
            raise COFTADInputError(f"similarity_heatmaps[{name!r}]: shape {a.shape}; expected a square matrix")
        im = ax.imshow(a, vmin=vmin, vmax=vmax, cmap=cmap)
        if annotate and len(a) <= 10:
            for (i, j), v in np.ndenumerate(a):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=5,
                        color="white" if v < (vmin + vmax) / 2 else "black")
        ax.set_title(name, fontsize=7)
        ax.set_xticks(range(len(a)))
        ax.set_yticks(range(len(a)))
        ax.tick_params(labelsize=5)
    fig.colorbar(im, ax=axes, shrink=0.8, label="cosine similarity")
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


# ------------------------------------------------------------------ scores (Fig. 7)

def score_distributions(panels: Mapping[str, tuple[Any, Any]], *, ncols: int = 2, bins: int = 20,
                        kde: bool = True, title: str | None = None, xlabel: str = "Anomaly Score",
                        panel_size: tuple[float, float] = (3.4, 2.6)) -> Figure:
    """Fig. 7: histograms (+ KDE) of anomaly scores, normals blue and anomalies red, one panel per model.

    Each panel has its own x range (the models' scores live on different scales, as in the paper).

    Args:
        panels: panel title -> (scores (M,), labels (M,) with 1 = anomaly).
        kde: overlay a kernel density estimate per group (needs at least 2 distinct values per group).
    """
    import pandas as pd
    import seaborn as sns

    if not panels:
        raise COFTADInputError("score_distributions: no panels to draw")
    fig, axes = _grid(len(panels), ncols, panel_size)
    palette = {GROUP_NAMES[0]: NORMAL_COLOR, GROUP_NAMES[1]: ANOMALY_COLOR}
    for ax, (name, (scores, labels)) in zip(axes, panels.items(), strict=True):
        s, y = _as_scores_labels(scores, labels, f"score_distributions[{name!r}]")
        df = pd.DataFrame({"score": s, "group": np.where(y == 1, GROUP_NAMES[1], GROUP_NAMES[0])})
        edges = np.histogram_bin_edges(s, bins=bins)
        can_kde = kde and all(np.unique(s[y == lab]).size > 1 for lab in (0, 1))
        sns.histplot(data=df, x="score", hue="group", hue_order=list(GROUP_NAMES), palette=palette, bins=edges,
                     kde=can_kde, element="bars", alpha=0.45, ax=ax)
        ax.set_title(name, fontsize=8)
        ax.set_xlabel(xlabel, fontsize=7)
        ax.set_ylabel("Frequency", fontsize=7)
        ax.tick_params(labelsize=6)
        leg = ax.get_legend()
        if leg is not None:
            leg.set_title(None)
            for text in leg.get_texts():
                text.set_fontsize(6)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def value_histogram(values: Any, labels: Any | None = None, *, threshold: float | None = None,
                    xlabel: str = "value", label_names: tuple[str, str] = ("normal", "defect"),
                    bins: int = 30, title: str | None = None, log_y: bool = False) -> Figure:
    """Histogram of one value per item, split by label, with an optional threshold line.

    Used for the SemiCon void-to-solder ratio of every slice, with the labelling threshold.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise COFTADInputError("value_histogram: no values")
    y = np.zeros(v.size, dtype=np.int64) if labels is None else _as_scores_labels(v, labels, "value_histogram")[1]
    fig = Figure(figsize=(5.5, 3.0), layout="constrained")
    ax = fig.add_subplot()
    edges = np.histogram_bin_edges(v, bins=bins)
    for lab, color in ((0, NORMAL_COLOR), (1, ANOMALY_COLOR)):
        m = y == lab
        if m.any():
            ax.hist(v[m], bins=edges, color=color, alpha=0.6, label=f"{label_names[lab]} ({m.sum()})")
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel("count", fontsize=8)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    return fig


# ------------------------------------------------------------------ training (method tour)

def loss_curves(history: Sequence[Mapping[str, float]], *, title: str | None = None,
                window: int = 1) -> Figure:
    """Training curves from ``COFTAD.history``: the total loss of Eq. 6 and each weighted term.

    Args:
        history: one dict per step with ``step``, ``loss`` and any of ``con`` (Eq. 1),
            ``pp`` (lambda_PP * Eq. 4), ``np`` (lambda_NP * Eq. 5).
        window: moving-average window in steps (1 = raw values).
    """
    if not history:
        raise COFTADInputError("loss_curves: the history is empty (was the detector fine-tuned? steps > 0)")
    names = {"loss": "L_all (Eq. 6)", "con": "L_Con (Eq. 1)", "pp": "0.8 L_PP (Eq. 4)", "np": "0.6 L_NP (Eq. 5)"}
    steps = np.array([h.get("step", i) for i, h in enumerate(history)], dtype=np.float64)
    fig = Figure(figsize=(4.8, 3.0), layout="constrained")
    ax = fig.add_subplot()
    for key in [k for k in names if k in history[0]] + [k for k in history[0] if k not in names and k != "step"]:
        vals = np.array([h[key] for h in history], dtype=np.float64)
        if window > 1 and len(vals) >= window:
            vals = np.convolve(vals, np.ones(window) / window, mode="valid")
        ax.plot(steps[len(steps) - len(vals):], vals, label=names.get(key, key),
                linewidth=2 if key == "loss" else 1)
    ax.axhline(0, color="grey", linewidth=0.5)
    ax.set_xlabel("step", fontsize=8)
    ax.set_ylabel("loss (cosine units)", fontsize=8)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def metric_bars(values: Mapping[str, float], *, ylabel: str = "AUROC (%)", title: str | None = None,
                reference: float | None = None) -> Figure:
    """One bar per model (e.g. AUROC of the pretrained features and of each fine-tuned variant)."""
    if not values:
        raise COFTADInputError("metric_bars: no values")
    fig = Figure(figsize=(1.1 * len(values) + 1.5, 2.8), layout="constrained")
    ax = fig.add_subplot()
    names = list(values)
    heights = [float(values[n]) for n in names]
    bars = ax.bar(range(len(names)), heights, color=NORMAL_COLOR)
    ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_ylim(min(0.0, *heights), max(0.0, *heights) * 1.12 or 1.0)  # room for the labels
    if reference is not None:
        ax.axhline(reference, color="grey", linestyle="--", linewidth=1)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, fontsize=7, rotation=20, ha="right")
    ax.set_ylabel(ylabel, fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def tsne_2d(features: Any, seed: int = 0, *, perplexity: float = 30.0, normalize: bool = True,
            n_jobs: int = 1) -> np.ndarray:
    """(N, D) features -> (N, 2) openTSNE embedding (Fig. 6).

    ``normalize`` L2-normalises the features first: the Gaussian of Eqs. 7-8 sees them that way
    and the training losses are cosine similarities, so the t-SNE shows the geometry that is
    scored. The paper does not say; set False for raw features. Perplexity is lowered to
    (N - 1) / 3 for small N, openTSNE's requirement.
    """
    from openTSNE import TSNE

    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or len(x) < 4:
        raise COFTADInputError(f"tsne_2d: features of shape {x.shape}; expected (N, D) with N >= 4")
    if not np.isfinite(x).all():
        raise COFTADInputError("tsne_2d: features contain NaN or infinity")
    if normalize:
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    perp = float(min(perplexity, (len(x) - 1) / 3))
    emb = TSNE(n_components=2, perplexity=perp, random_state=seed, n_jobs=n_jobs, verbose=False).fit(x)
    return np.asarray(emb, dtype=np.float64)
