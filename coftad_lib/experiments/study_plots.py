"""Figures of the fine-tuning study (issue 11, beyond the paper): one figure per dataset family.

Panels: (a) verdict: family-mean AUROC per seed of pretrained vs COFT-AD w/o np and w/ np;
(b) screening: AUROC gain over the same start against feature drift (cosine of the test features
before and after fine-tuning), one point per configuration; (c) loss curves (Eq. 6) of the
confirmed configurations, mean over units.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from .study import gains  # noqa: E402


def _verdict_panel(ax, confirm: pd.DataFrame) -> None:
    per_seed = confirm.pivot_table(index="seed", columns="config", values="auroc", aggfunc="mean")
    count = confirm.pivot_table(index="seed", columns="config", values="auroc", aggfunc="count")
    per_seed = per_seed.where(count == count.max().max())  # a seed cut short is not a family mean
    names = ["pretrained", *[c for c in per_seed.columns if c != "pretrained"]]
    for i, name in enumerate(n for n in names if n in per_seed):
        vals = per_seed[name].dropna()
        ax.bar(i, vals.mean(), yerr=vals.std(ddof=1) if len(vals) > 1 else 0, capsize=4,
               color="0.6" if name == "pretrained" else f"C{i}", alpha=0.8)
        ax.scatter([i] * len(vals), vals, color="k", s=10, zorder=3)
    ax.set_xticks(range(len(names)), names, rotation=20)
    lo = per_seed.min().min()
    ax.set_ylim(max(0, lo - 10), min(100, per_seed.max().max() + 5))
    ax.set_ylabel("family-mean AUROC % (dots: seeds)")
    ax.set_title("(a) verdict: mean +- std over complete seeds")


def _screen_panel(ax, screen: pd.DataFrame) -> None:
    g = gains(screen)
    g = g[g["config"] != g["start"]]
    s = g.groupby("config", sort=False).agg(gain=("gain", "mean"), drift=("drift_normal", "mean"))
    ax.axhline(0, color="0.5", lw=0.8)
    ax.scatter(s["drift"], s["gain"], s=18)
    for name, r in s.iterrows():
        ax.annotate(str(name), (r["drift"], r["gain"]), fontsize=7, xytext=(2, 2), textcoords="offset points")
    ax.set_xlabel("feature drift: cosine(pretrained, fine-tuned), normal test images")
    ax.set_ylabel("AUROC gain over its start (points)")
    ax.set_title("(b) screening, one seed")


def _loss_panel(ax, curves: pd.DataFrame) -> None:
    for name, g in curves.groupby("config", sort=False):
        if g.empty:
            continue
        m = g.groupby("step")["loss"].mean()
        ax.plot(m.index, m.values, label=str(name))
    ax.set_xlabel("step")
    ax.set_ylabel("L_all (Eq. 6), mean over units")
    ax.set_title("(c) loss curves")
    if len(curves):
        ax.legend(fontsize=7)


def study_figure(family: str, confirm: pd.DataFrame | None, screen: pd.DataFrame | None,
                 curves: pd.DataFrame | None) -> Figure:
    """The family's figure from its confirm rows, screen rows and loss curves (any may be None)."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, data, draw in ((axes[0], confirm, _verdict_panel), (axes[1], screen, _screen_panel),
                           (axes[2], curves, _loss_panel)):
        if data is None or data.empty:
            ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
        else:
            draw(ax, data)
    fig.suptitle(f"Fine-tuning study (beyond the paper): {family}")
    fig.tight_layout()
    return fig
