"""Figures for a user's own images (beyond the paper): ROC curves, ranked galleries, heat-map overlays.

Used by ``python -m coftad_lib evaluate`` / ``score --maps`` and notebook 17. Figures are built
without pyplot (see :mod:`coftad_lib.plots`); overlays are PIL images, written as PNG.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from . import plots
from .atomic_files import save_image_atomic
from .errors import COFTADInputError

#: colour map of the heat maps: dark = like the shots, bright = far from every shot patch
HEATMAP_CMAP = "inferno"


def roc_curves(curves: Mapping[str, tuple[Any, Any]], *, title: str | None = None) -> Figure:
    """One ROC curve per method, AUROC in the legend.

    Args:
        curves: method label -> (scores (M,), labels (M,) with 1 = anomaly).
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    if not curves:
        raise COFTADInputError("roc_curves: no methods to draw")
    fig = Figure(figsize=(4.2, 3.8), layout="constrained")
    ax = fig.add_subplot()
    for name, (scores, labels) in curves.items():
        s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=np.int64)
        fpr, tpr, _ = roc_curve(y, s)
        ax.plot(fpr, tpr, linewidth=1.5, label=f"{name} ({100 * roc_auc_score(y, s):.1f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("false-positive rate (normals flagged)", fontsize=8)
    ax.set_ylabel("true-positive rate (anomalies flagged)", fontsize=8)
    ax.legend(fontsize=7, title="method (AUROC %)", title_fontsize=7, loc="lower right")
    ax.set_title(title or "ROC", fontsize=9)
    return fig


def ranked_gallery(rows: Mapping[str, tuple[Sequence[Any], Sequence[float], Sequence[str]]], *,
                   title: str | None = None, cell_size: float = 1.4) -> Figure:
    """One row of images per method, in the given order, each captioned with its score and label.

    Args:
        rows: method label -> (images, scores, captions), e.g. the 8 most anomalous test images.
    """
    if not rows:
        raise COFTADInputError("ranked_gallery: no rows to draw")
    images = [list(r[0]) for r in rows.values()]
    captions = [[f"{s:.3g}\n{c}" for s, c in zip(r[1], r[2], strict=True)] for r in rows.values()]
    return plots.image_grid(images, row_titles=list(rows), captions=captions, title=title,
                            cell_size=cell_size, caption_fontsize=6)


def overlay(image: str | os.PathLike | Image.Image, amap: np.ndarray, vmin: float, vmax: float,
            alpha: float = 0.5) -> Image.Image:
    """``image`` with ``amap`` ((h, w), any size; stretched to the image) blended over it in colour.

    ``vmin`` / ``vmax`` fix the colour scale, so overlays of several images are comparable.
    """
    from matplotlib import colormaps

    from .images import load_image

    img = load_image(image) if isinstance(image, (str, os.PathLike)) else image.convert("RGB")
    a = np.asarray(amap, dtype=np.float64)
    if a.ndim != 2:
        raise COFTADInputError(f"overlay: map of shape {a.shape}; expected (H, W)")
    norm = np.clip((a - vmin) / (vmax - vmin), 0, 1) if vmax > vmin else np.zeros_like(a)
    rgb = (colormaps[HEATMAP_CMAP](norm)[..., :3] * 255).astype(np.uint8)
    heat = Image.fromarray(rgb).resize(img.size, Image.Resampling.BILINEAR)
    return Image.blend(img, heat, alpha)


def heatmap_gallery(images: Sequence[Any], maps: Sequence[np.ndarray], captions: Sequence[str], *,
                    title: str | None = None, max_side: int = 256) -> Figure:
    """Each image above its heat-map overlay (one shared colour scale), captioned."""
    if not len(images) or len(images) != len(maps) or len(images) != len(captions):
        raise COFTADInputError(f"heatmap_gallery: {len(images)} images, {len(maps)} maps, {len(captions)} captions")
    vmin = float(min(np.min(m) for m in maps))
    vmax = float(max(np.max(m) for m in maps))
    shown = [plots.to_display(im, max_side) for im in images]
    over = [np.asarray(overlay(Image.fromarray(_u8(s)), m, vmin, vmax)) for s, m in zip(shown, maps, strict=True)]
    return plots.image_grid([shown, over], row_titles=["image", "heat map"], captions=[list(captions), [""] * len(over)],
                            title=title, caption_fontsize=6)


def _u8(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        out = arr
    else:
        out = (np.clip(arr, 0, 1) * 255).astype(np.uint8)
    return np.stack([out] * 3, -1) if out.ndim == 2 else out[..., :3]


def write_overlays(paths: Sequence[str | os.PathLike], maps: Sequence[np.ndarray], out_dir: str | os.PathLike,
                   ids: Sequence[str] | None = None) -> list[Path]:
    """Write ``<out_dir>/<id>_map.png`` for each image: its map over it, one colour scale for all.

    ``ids`` (default: file stems, made unique) name the files; "/" becomes "__".
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vmin = float(min(np.min(m) for m in maps))
    vmax = float(max(np.max(m) for m in maps))
    names = list(ids) if ids is not None else _unique_stems(paths)
    written = []
    for path, amap, name in zip(paths, maps, names, strict=True):
        target = out / f"{name.replace('/', '__')}_map.png"
        save_image_atomic(overlay(path, amap, vmin, vmax), target)  # no truncated PNG on a full disk
        written.append(target)
    return written


def _unique_stems(paths: Sequence[str | os.PathLike]) -> list[str]:
    seen: dict[str, int] = {}
    names = []
    for p in paths:
        stem = Path(p).stem
        seen[stem] = seen.get(stem, 0) + 1
        names.append(stem if seen[stem] == 1 else f"{stem}_{seen[stem]}")
    return names
