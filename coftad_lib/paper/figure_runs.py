"""What the figure notebooks (Figs. 5, 6, 7) compute: their cells, normalised scores, chosen cases.

- Fig. 5 (Sec. V-A): Flowers17 Tulip (normal) / Daffodil (abnormal), 5 shots; test images captioned
  with each method's score as a percentile among all test samples. The cells are Table I's, so
  the cache is shared with notebook 04.
- Fig. 6 (Sec. V-B): t-SNE of CIFAR10-C test features of four ablated models.
- Fig. 7 (Sec. V-E): score distributions of the same four models; its cells are Table VI's rows
  with the same names and settings, so the cache is shared with the Table VI notebook.

The four ablated models of Figs. 6-7 (:data:`ABLATION_PANELS`): (a) ImageNet features only,
(b) + contrastive fine-tuning (Eq. 1), (c) + cross-instance positive pairs (Eq. 4) = COFT-AD
(w/o np), (d) + negative pairs (Eq. 5) = COFT-AD (w/ np).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..engine.cache import cached
from ..engine.cells import Cell, load_features, record_row
from ..errors import COFTADInputError
from ..plots import tsne_2d
from .paper_values import display_name
from .profiles import base_name, get_profile, make_cell, profile_label, table_limits
from .tables import ABLATION


@dataclass(frozen=True)
class AblationModel:
    """One ablated model of Figs. 6-7 / a row of Table VI.

    Attributes:
        row: Table VI row id (:data:`coftad_lib.paper.paper_values.ABLATION_ROWS`); the cell label is
            ``"ablation:<row>"``, as Table VI's notebook names it.
        method: registry name for :func:`coftad_lib.methods.make_detector`.
        overrides: detector kwargs on top of the profile's.
        title: panel title, as in the paper's Figs. 6-7.
    """

    row: str
    method: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    title: str = ""

    @property
    def label(self) -> str:
        """Row label of the cell (``"ablation:<row>"``)."""
        return f"ablation:{self.row}"


#: Figs. 6-7 panels (a)-(d) in the paper's order: Table VI rows (:data:`~coftad_lib.paper.tables.ABLATION`,
#: where each row's method and settings are defined once) with the paper's panel titles
ABLATION_PANELS: dict[str, AblationModel] = {
    pid: AblationModel(row, ABLATION[row].method, dict(ABLATION[row].kwargs), title)
    for pid, row, title in (("a", "pretrained_only", "(a) w/o contrastive fine-tuning"),
                            ("b", "contrastive", "(b) w/ contrastive fine-tuning"),
                            ("c", "contrastive+cipp", "(c) w/ pp loss"),
                            ("d", "contrastive+cipp+np", "(d) w/ np loss"))
}

#: Table I's rows in the paper's order (Fig. 5 shows "different competing methods")
TABLE_I_METHODS: tuple[str, ...] = ("ae", "vae", "deepsvdd", "csi", "cflow", "coftad", "cutpaste", "coftad_np")

#: Fig. 5 methods per profile. Smoke keeps the rows that train in seconds on a CPU at 64 px
#: (measured on 2 cores: the Gaussian-scored COFT-AD variants, DeepSVDD, AE and CutPaste); CSI and
#: CFLOW-AD cost minutes there. The paper profile runs every Table I row.
FIG5_METHODS: dict[str, tuple[str, ...]] = {
    "smoke": ("ae", "deepsvdd", "coftad", "cutpaste", "coftad_np"),
    "paper": TABLE_I_METHODS,
}

#: the method whose scores order the Fig. 5 rows (the paper's text discusses COFT-AD's scores)
FIG5_REFERENCE = "coftad_np"


# ------------------------------------------------------------------ cells

def ablation_cells(table: str, dataset: str, task: str, shots: int, seed: int,
                   profile: str | Mapping[str, Any], *, kind: str = "score",
                   panels: Sequence[str] = tuple(ABLATION_PANELS)) -> list[Cell]:
    """One cell per ablated model (panels ``a``-``d``), labelled like Table VI's rows.

    ``table`` only labels the cells and picks the test cap of the profile's limits, so
    ``ablation_cells("fig7", ...)`` is the same work as Table VI's cells when both caps agree.
    """
    unknown = [p for p in panels if p not in ABLATION_PANELS]
    if unknown:
        raise COFTADInputError(f"panels={list(panels)}: unknown {unknown}; choose from {', '.join(ABLATION_PANELS)}")
    return [make_cell(table, dataset, task, shots, m.method, seed, profile, label=m.label, kind=kind, **m.overrides)
            for m in (ABLATION_PANELS[p] for p in panels)]


def figure_cells(figure: str, profile: str | Mapping[str, Any], seed: int) -> list[Cell]:
    """The cells of Fig. 5 (``"fig5"``), 6 (``"fig6"``, with features) or 7 (``"fig7"``) for one seed.

    Tasks and shots come from the profile's limits of that figure; a figure draws its first task
    and shot setting.
    """
    if figure not in ("fig5", "fig6", "fig7"):
        raise COFTADInputError(f"figure={figure!r}: expected 'fig5', 'fig6' or 'fig7'")
    lim = table_limits(profile, figure)
    prof = get_profile(profile)
    tasks = lim["tasks"] or (["Tulip/Daffodil"] if figure == "fig5" else ["airplane"])
    task, shots = tasks[0], lim["shots"][0]
    if figure == "fig5":
        methods = FIG5_METHODS.get(base_name(prof), TABLE_I_METHODS)
        # The same work as Table I's cells (make_cell applies the profile's per-method settings), so
        # the cache is shared with notebook 04.
        return [make_cell("fig5", "flowers17", task, shots, m, seed, prof) for m in methods]
    return ablation_cells(figure, "cifar10c", task, shots, seed, prof, kind="embed" if figure == "fig6" else "score")


def run_figure_cells(cells: Sequence[Cell], data_roots: Any, cache_dir: str | os.PathLike,
                     profile: str | Mapping[str, Any], *, strict: bool = False,
                     executor: Any = "local") -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """Run (or read from the cache) each cell on ``executor``; returns the full records and the
    run_cells-style frame.

    Figures need the per-item scores, labels and ids, which :func:`run_cells`' frame leaves out.
    """
    from ..engine.executors import get_executor

    records = get_executor(executor).run(list(cells), data_roots, cache_dir, profile_label(profile), strict=strict,
                                         desc="figure cells")
    return records, pd.DataFrame([record_row(r) for r in records])


def ok_records(records: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The records whose cell ran (status ``"ok"``); missing data or weights are left out."""
    return [r for r in records if r.get("status") == "ok"]


# ------------------------------------------------------------------ scores

def percentile_scores(scores: Any) -> np.ndarray:
    """Fig. 5's normalised anomaly score: each score's percentile among all test scores.

    (M,) scores -> (M,) float64 in [0, 100]: 0 for the lowest, 100 for the highest, ties share
    their mean rank. Computed as ``100 * (rank - 1) / (M - 1)`` with average ranks; one score gives 50.
    The paper says "the percentile among all testing samples" without the exact convention.
    """
    from scipy.stats import rankdata

    s = np.asarray(scores, dtype=np.float64).ravel()
    if s.size == 0:
        raise COFTADInputError("percentile_scores: no scores")
    if not np.isfinite(s).all():
        raise COFTADInputError("percentile_scores: scores contain NaN or infinity")
    if s.size == 1:
        return np.array([50.0])
    return 100.0 * (rankdata(s, method="average") - 1.0) / (s.size - 1.0)


def qualitative_cases(scores: Any, labels: Any, n: int) -> dict[str, np.ndarray]:
    """Fig. 5's three test rows, as indices into the test set, chosen by one method's scores.

    Returns:
        ``"normal_low"``: the n normals with the lowest scores, lowest first (confident normals);
        ``"normal_high"``: the n normals with the highest scores, highest first (false alarms);
        ``"abnormal"``: n anomalies in increasing score, so missed anomalies come first, as in
        the paper's last row. Each holds fewer when the test set has fewer; the two normal rows may
        overlap when there are fewer than 2n normals.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if s.shape != y.shape:
        raise COFTADInputError(f"qualitative_cases: {s.size} scores but {y.size} labels")
    if n < 1:
        raise COFTADInputError(f"qualitative_cases: n={n}; expected at least 1")
    normals, anomalies = np.flatnonzero(y == 0), np.flatnonzero(y == 1)
    by_score = normals[np.argsort(s[normals], kind="stable")]
    anom = anomalies[np.argsort(s[anomalies], kind="stable")]
    if len(anom) > n:
        # spread over the whole range (lowest and highest included) rather than only the lowest n
        anom = anom[np.unique(np.round(np.linspace(0, len(anom) - 1, n)).astype(int))]
    return {"normal_low": by_score[:n], "normal_high": by_score[::-1][:n], "abnormal": anom}


def qualitative_grid(task: Any, records: Sequence[Mapping[str, Any]], n: int = 7,
                     reference: str = FIG5_REFERENCE) -> dict[str, Any]:
    """Everything :func:`coftad_lib.plots.image_grid` needs for Fig. 5.

    Args:
        task: the cells' FewShotTask (:func:`load_cell_task` of any of them: all share the task).
        records: ok records of the methods, in caption order; their test ids must match ``task``.
        n: images per row (paper: 7).
        reference: method whose scores choose and order the test rows (falls back to the last record).

    Returns:
        dict with ``rows`` (image lists), ``row_titles``, ``captions`` (one line per method:
        its percentile score) and ``percentiles`` (DataFrame test id x method).
    """
    if not records:
        raise COFTADInputError("qualitative_grid: no records with scores")
    ids = [str(i) for i in task.test_ids]
    pct = {}
    for r in records:
        if [str(i) for i in r["test_ids"]] != ids:
            raise COFTADInputError(f"qualitative_grid: record {r['key'][:12]} ({r['method']}) scored another test set than the task")
        pct[display_name(r["label"])] = percentile_scores(r["scores"])
    table = pd.DataFrame(pct, index=ids)
    ref = next((r for r in records if r["method"] == reference), records[-1])
    cases = qualitative_cases(ref["scores"], task.test_labels, n)
    normal, abnormal = (task.info.get("normal", "normal"), task.info.get("abnormal", "abnormal"))

    def caption(i: int) -> str:
        return "\n".join(f"{name}: {table.iloc[i][name]:.0f}" for name in table.columns)

    rows = [list(task.train[:n])]
    captions = [[f"shot {j + 1}" for j in range(len(rows[0]))]]
    titles = [f"TRAIN - {normal} ({task.shots} shots)"]
    for key, title in (("normal_low", f"TEST - {normal} (normal)\nlowest scores"),
                       ("normal_high", f"TEST - {normal} (normal)\nhighest scores"),
                       ("abnormal", f"TEST - {abnormal} (abnormal)")):
        idx = cases[key]
        rows.append([task.test[i] for i in idx])
        captions.append([caption(i) for i in idx])
        titles.append(title)
    return {"rows": rows, "row_titles": titles, "captions": captions, "percentiles": table,
            "reference": display_name(ref["label"])}


# ------------------------------------------------------------------ t-SNE (Fig. 6)

def tsne_points(labels: Any, n_points: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a seeded random subset of ``n_points`` test items (all when None or more).

    The paper "randomly select[s] 1,500 testing samples"; the same subset is used for every model.
    """
    y = np.asarray(labels).ravel()
    if n_points is None or n_points >= y.size:
        return np.arange(y.size)
    if n_points < 2:
        raise COFTADInputError(f"n_points={n_points}: t-SNE needs at least 2 points")
    rng = np.random.default_rng([seed, 6])
    return np.sort(rng.choice(y.size, size=n_points, replace=False))


def tsne_parts(cell_key: str, n_points: int | None, seed: int, perplexity: float = 30.0) -> dict[str, Any]:
    """What keys a cached Fig. 6 map (:func:`tsne_panels`): the cell, the subset, the t-SNE settings."""
    return {"cell": cell_key, "n_points": n_points, "seed": seed, "perplexity": perplexity, "normalize": True}


def tsne_panels(records: Mapping[str, Mapping[str, Any]], cache_dir: str | os.PathLike, n_points: int | None,
                seed: int, *, perplexity: float = 30.0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Fig. 6 panels: title (with AUROC) -> (coords (n, 2), labels (n,)), t-SNE cached per model.

    Args:
        records: panel id (``"a"``..``"d"``) -> ok record of an ``"embed"`` cell.
        n_points: test items shown (same random subset in every panel).
    """
    out = {}
    for pid, rec in records.items():
        # the record's labels are its features' (same test order): the features, 50 MB for a
        # CIFAR-10-C cell and not committed, are read only when the map is not cached yet
        labels = np.asarray(rec["labels"], dtype=np.int64)
        idx = tsne_points(labels, n_points, seed)
        coords = cached("tsne", tsne_parts(rec["key"], n_points, seed, perplexity),
                        lambda r=rec, i=idx: {"coords": tsne_2d(load_features(r, cache_dir)["test"][i], seed,
                                                                perplexity=perplexity)},
                        cache_dir)["coords"]
        out[panel_title(pid, rec)] = (coords, labels[idx])
    return out


# ------------------------------------------------------------------ score distributions (Fig. 7)

def panel_title(panel: str, record: Mapping[str, Any]) -> str:
    """``"(c) w/ pp loss - AUROC 73.7"``: the paper's panel title plus our AUROC."""
    title = ABLATION_PANELS[panel].title if panel in ABLATION_PANELS else panel
    auc = record.get("auroc")
    return title if auc is None else f"{title} - AUROC {100 * float(auc):.1f}"


def panel_records(cells: Sequence[Cell], records: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """Panel id -> ok record for ablation cells (matched by label); missing cells are left out."""
    by_label = {m.label: pid for pid, m in ABLATION_PANELS.items()}
    out = {}
    for cell, rec in zip(cells, records, strict=True):
        if rec.get("status") == "ok" and cell.label in by_label:
            out[by_label[cell.label]] = rec
    return dict(sorted(out.items()))


def score_panels(records: Mapping[str, Mapping[str, Any]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Fig. 7 panels: title (with AUROC) -> (scores (M,), labels (M,))."""
    return {panel_title(pid, r): (np.asarray(r["scores"], dtype=np.float64), np.asarray(r["labels"], dtype=np.int64))
            for pid, r in records.items()}


def separation_table(records: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Per panel: AUROC (%), mean normal / anomalous score and their gap in normal-score std units.

    Fig. 7's observation is the gap between the two distributions; this puts it in numbers.
    """
    rows = []
    for pid, r in records.items():
        s, y = np.asarray(r["scores"], dtype=np.float64), np.asarray(r["labels"])
        n, a = s[y == 0], s[y == 1]
        sd = float(n.std()) if n.size > 1 and n.std() > 0 else float("nan")
        rows.append({"panel": ABLATION_PANELS[pid].title if pid in ABLATION_PANELS else pid,
                     "auroc": 100 * float(r["auroc"]), "mean_normal": float(n.mean()), "mean_anomalous": float(a.mean()),
                     "gap_in_normal_std": (float(a.mean()) - float(n.mean())) / sd})
    return pd.DataFrame(rows)
