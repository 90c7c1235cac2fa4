"""What a notebook of the series shows around its table: one task's data, one fit, the claims.

The table and figure notebooks (04-16, and 17-18 beyond the paper) read as a chapter in d2l's
order: the question, the data of one task, one fit of the table's main method (a score histogram
and its AUROC), the table, then "what to look at", whose numbers come from the claims register
judged on this run's tables. The one fit costs nothing extra: :func:`pick_example` takes the
table's own cell for its first task and first seed (row :data:`MAIN_ROW`), computed or read from
the cache through the run's executor like the table's other cells. Rendering from a committed
cache reads it; a smoke run fits it once and the table then reads it back.

    one = run.example("I")       # an Example (RunContext.example)
    one.data_figure()            # the shots, a few normal and anomalous test images, kinds named
    display(one.fit_summary())   # AUROC of the fit, overall and per anomaly kind
    one.fit_figure()             # the fit's scores, normal vs anomalous
    run.claims("I")              # the register's claims about Table I, judged on this run's tables
"""

from __future__ import annotations

import functools
import math
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..engine.cells import Cell, load_cell_task
from ..engine.status import relative_to_roots
from ..errors import DatasetNotFoundError
from .paper_values import display_name

if TYPE_CHECKING:  # the context imports this module lazily; no import cycle at run time
    from matplotlib.figure import Figure

    from ..datasets.task import FewShotTask

#: the row whose fit a notebook shows: COFT-AD without negative pairs (the paper's method with no
#: knowledge of the anomalies) where the table has it; with them where the table is about them
#: (III has only that row, VII compares the two, Fig. 5 orders its rows by it)
MAIN_ROW: dict[str, str] = {
    "I": "coftad", "II": "coftad", "III": "coftad_np", "IV": "coftad", "V": "coftad",
    "VI": "ablation:contrastive+cipp", "VII": "coftad_np", "VIII": "coftad", "IX": "coftad", "X": "coftad",
    "fig5": "coftad_np", "fig6": "ablation:contrastive+cipp", "fig7": "ablation:contrastive+cipp",
}
#: the tables whose claims a figure notebook reads (Fig. 5 shows Table I's cells, Figs. 6-7 Table VI's)
CLAIM_TABLES: dict[str, tuple[str, ...]] = {"fig5": ("I",), "fig6": ("VI",), "fig7": ("VI",)}
#: test images per row of a data view; a row never holds more than MAX_ROW (one per CIFAR-C corruption + clean)
IMAGES_PER_ROW, MAX_ROW = 8, 10


def _task_name(dataset: str, task: str) -> str:
    """``"flowers17 Crocus/Bluebell"``; a dataset that is one task (SemiCon, AITEX) named once."""
    return dataset if task == dataset else f"{dataset} {task}"


def _note(text: str) -> Any:
    """``text`` as rendered Markdown in a notebook (plain text elsewhere)."""
    try:
        from IPython.display import Markdown
    except ImportError:
        return text
    return Markdown(text)


@dataclass
class Example:
    """One fit of a table's main row, the cell the table computes anyway.

    Attributes:
        spec_id: the table or figure (``"I"``, ``"fig7"``).
        cell: the table's own cell; None when the table has no cell of :data:`MAIN_ROW`.
        record: its record as the run's executor returned it: ``status`` (ok / missing / pending /
            failed), ``message``, and when ok ``auroc`` in [0, 1] and the per-item (M,) lists
            ``scores``, ``labels`` (1 = anomaly), ``test_ids``, ``test_kinds``.
        data_roots: where the cell's data is looked for (:attr:`RunContext.data_roots`).
        roots: ``{"DATA_ROOT": folder, ...}``: messages name folders relative to these.
    """

    spec_id: str
    cell: Cell | None
    record: Mapping[str, Any]
    data_roots: Any
    roots: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether the fit ran (scores to show)."""
        return self.record.get("status") == "ok"

    @property
    def name(self) -> str:
        """``"COFT-AD (w/o np) on flowers17 Crocus/Bluebell, 5 shots, seed 0"``."""
        c = self.cell
        if c is None:
            return f"{display_name(MAIN_ROW.get(self.spec_id, '?'))} (no cell in this run)"
        return f"{display_name(c.row_method)} on {_task_name(c.dataset, c.task)}, {c.shots} shots, seed {c.seed}"

    def why_not(self) -> str:
        """Why there is no fit to show, in one line, without this machine's folders."""
        status = self.record.get("status", "missing")
        first = str(self.record.get("message", "")).strip().splitlines()
        return f"{status}: {relative_to_roots(first[0], self.roots) if first else 'no message'}"

    @functools.cached_property
    def task(self) -> FewShotTask:
        """The task the fit saw (shots and test set, the table's test cap applied); raises
        :class:`~coftad_lib.errors.DatasetNotFoundError` when its data is not here."""
        return self._load(capped=True)

    def _load(self, capped: bool) -> FewShotTask:
        if self.cell is None:
            raise DatasetNotFoundError(f"Table {self.spec_id} has no {MAIN_ROW.get(self.spec_id)} cell in this run")
        if capped or "max_test_per_class" not in self.cell.task_args:
            return load_cell_task(self.cell, self.data_roots)
        args = {k: v for k, v in self.cell.task_args.items() if k != "max_test_per_class"}
        return load_cell_task(replace(self.cell, task_args=args), self.data_roots)

    def data_figure(self, n: int = IMAGES_PER_ROW) -> Figure | Any:
        """:func:`task_figure` of the task with its whole test set (a profile's cap draws from it; the
        same shots), or a note saying which data is missing. Only the shown images are decoded."""
        try:
            task = self._load(capped=False)
        except DatasetNotFoundError as exc:
            lines = str(exc).strip().splitlines() or ["not found"]
            where = self.cell.dataset if self.cell is not None else "this table"
            return _note(f"*No data to show: {where} is not here ({relative_to_roots(lines[0], self.roots)}). "
                         "The table below says how to get it.*")
        cap = self.cell.task_args.get("max_test_per_class") if self.cell is not None else None
        return task_figure(task, n, cap)

    def per_kind(self) -> pd.DataFrame:
        """The fit's AUROC (%) over all anomalies and against each anomaly kind alone (normals vs that kind)."""
        from ..metrics import auroc

        s, y = np.asarray(self.record["scores"], dtype=np.float64), np.asarray(self.record["labels"], dtype=np.int64)
        kinds = np.asarray(self.record["test_kinds"], dtype=object)
        rows = [{"anomalies": "all", "test images": int(y.sum()), "AUROC (%)": 100 * float(self.record["auroc"])}]
        for kind in dict.fromkeys(kinds[y == 1]):
            keep = (y == 0) | (kinds == kind)
            rows.append({"anomalies": str(kind), "test images": int(((kinds == kind) & (y == 1)).sum()),
                         "AUROC (%)": 100 * auroc(s[keep], y[keep])})
        return pd.DataFrame(rows).round(1)

    def fit_summary(self) -> Any:
        """The fit in words: AUROC over how many normal and anomalous images, whether it was computed
        now or read back, and per anomaly kind when there are several."""
        if not self.ok:
            return _note(f"*No fit to show for {self.name}: {self.why_not()}*")
        y = np.asarray(self.record["labels"], dtype=np.int64)
        how = ("read back from the cache" if self.record.get("cached")
               else f"fitted now in {float(self.record.get('fit_seconds', math.nan)):.0f} s")
        text = (f"**{self.name}**: AUROC {100 * float(self.record['auroc']):.1f} % over {int((y == 0).sum())} normal "
                f"and {int(y.sum())} anomalous test images ({how}).")
        kinds = self.per_kind()
        if len(kinds) > 2:  # one kind: its line repeats the overall number
            text += "\n\n" + _markdown(kinds)
        return _note(text)

    def fit_figure(self) -> Figure | Any:
        """The fit's score histogram (:func:`score_figure`), or a note saying why there is none."""
        if not self.ok:
            return _note(f"*No histogram: {self.why_not()}*")
        title = f"{self.name}: AUROC {100 * float(self.record['auroc']):.1f} %"
        return score_figure(self.record["scores"], self.record["labels"], title)


def example_cells(cells: Sequence[Cell], row: str, seed: int) -> list[Cell]:
    """``row``'s cells with ``seed``, one per task (its first shot setting), in the table's order."""
    out: dict[str, Cell] = {}
    for c in cells:
        if c.row_method == row and c.seed == seed:
            out.setdefault(c.task, c)
    return list(out.values())


def pick_example(run: Any, spec_id: str) -> Example:
    """The table's own cell of :data:`MAIN_ROW` for its first task whose data is here, first seed.

    Each candidate goes through the run's executor (computed, or read from the cache, or pending
    with the ``cache`` executor); a task whose data is missing costs no fit, and the next one is
    tried. With no task's data here, the first task's record (status ``missing``) is kept.
    """
    roots = {k: str(v) for k, v in (("DATA_ROOT", run.data_root), ("PREP_DIR", run.prep_dir)) if v}
    cells = example_cells(run.cells(spec_id), MAIN_ROW[spec_id], run.seeds[0])
    first: Example | None = None
    executor = run.make_executor()
    for cell in cells:
        record = executor.run([cell], run.data_roots, run.cache_dir, run.name, progress=False)[0]
        found = Example(spec_id, cell, record, run.data_roots, roots)
        if record.get("status") != "missing":
            return found
        first = first or found
    return first or Example(spec_id, None, {"status": "missing", "message": "no such cell in this run"},
                            run.data_roots, roots)


# ------------------------------------------------------------------ the data of one task

def spread(indices: Sequence[int] | np.ndarray, n: int) -> list[int]:
    """At most ``n`` of ``indices``, evenly spaced from the first to the last (all when fewer)."""
    idx = np.asarray(indices, dtype=np.int64)
    if idx.size == 0 or n < 1:
        return []
    picks = np.unique(np.linspace(0, idx.size - 1, min(n, idx.size)).round().astype(np.int64))
    return idx[picks].tolist()


def source_id(test_id: str, kind: str) -> str:
    """The image an anomalous test item was made from: ``"gaussian_noise/4/airplane/x.png"`` ->
    ``"airplane/x.png"`` (CIFAR-C: ``<corruption>/<severity>/<clean id>``); other ids unchanged."""
    parts = str(test_id).split("/")
    if parts and parts[0] == kind:
        parts = parts[1:]
    if parts and parts[0].isdigit():
        parts = parts[1:]
    return "/".join(parts)


def anomaly_picks(labels: np.ndarray, kinds: Sequence[str], ids: Sequence[str],
                  n: int = IMAGES_PER_ROW) -> tuple[list[int], bool]:
    """(indices of anomalous test items to show, whether they are one image under every kind).

    When one source image appears under every anomaly kind (CIFAR-C with its full test set), that
    image under each kind, its clean version first when it is a normal test item; otherwise a few
    items of each kind in turn (at least one per kind, at most :data:`MAX_ROW`).
    """
    by_kind: dict[str, list[int]] = {}
    for i in np.flatnonzero(np.asarray(labels) == 1):
        by_kind.setdefault(str(kinds[i]), []).append(int(i))
    if not by_kind:
        return [], False
    sources = {k: {source_id(ids[i], k): i for i in idx} for k, idx in by_kind.items()}
    best, hits = Counter(s for found in sources.values() for s in found).most_common(1)[0]
    if len(by_kind) > 1 and hits == len(by_kind):
        clean = [i for i, t in enumerate(ids) if str(t) == best and labels[i] == 0][:1]
        return (clean + [sources[k][best] for k in by_kind])[:MAX_ROW], True
    per = max(1, math.ceil(n / len(by_kind)))
    picked = [spread(idx, per) for idx in by_kind.values()]
    turns = [p[j] for j in range(per) for p in picked if j < len(p)]
    return turns[:min(MAX_ROW, max(n, len(by_kind)))], False


def task_figure(task: FewShotTask, n: int = IMAGES_PER_ROW, cap: int | None = None) -> Figure:
    """The shots, ``n`` normal test images and anomalous ones by kind (:func:`anomaly_picks`), each
    captioned with its kind; only the shown images are decoded. ``cap``: the profile's test cap per
    label, named in the title (the fits score at most that many of each)."""
    from .. import plots

    labels = np.asarray(task.test_labels, dtype=np.int64)
    kinds, ids = [str(k) for k in task.test_kinds], [str(i) for i in task.test_ids]
    normals = spread(np.flatnonzero(labels == 0), n)
    anomalies, same = anomaly_picks(labels, kinds, ids, n)
    shots = list(task.train[:MAX_ROW])
    rows = [(f"{task.shots} shots" + (f" (first {len(shots)})" if len(shots) < task.shots else ""),
             shots, [f"shot {j + 1}" for j in range(len(shots))]),
            ("normal test images", [task.test[i] for i in normals], [kinds[i] for i in normals]),
            ("one test image under\neach anomaly kind" if same else "anomalous test images",
             [task.test[i] for i in anomalies], [kinds[i] for i in anomalies])]
    rows = [r for r in rows if r[1]]
    anomaly_kinds = list(dict.fromkeys(kinds[i] for i in np.flatnonzero(labels == 1)))
    title = (f"{_task_name(task.dataset, task.name)}: {task.shots} shots; test set: {int((labels == 0).sum())} normal, "
             f"{int(labels.sum())} anomalous" + (f" (the fits score at most {cap} of each)" if cap else "")
             + f"\nanomaly kinds: {', '.join(anomaly_kinds)}")
    return plots.image_grid([r[1] for r in rows], row_titles=[r[0] for r in rows], captions=[r[2] for r in rows],
                            title=title, cell_size=1.2, caption_fontsize=6)


def score_figure(scores: Any, labels: Any, title: str) -> Figure:
    """One fit's (M,) scores as two histograms, normal (blue) and anomalous (red) test images."""
    from .. import plots

    return plots.score_distributions({title: (scores, labels)}, ncols=1, bins=20, panel_size=(6.0, 3.0))


# ------------------------------------------------------------------ what to look at

def _markdown(df: pd.DataFrame) -> str:
    """A GitHub Markdown table of ``df`` (no index)."""
    head = "| " + " | ".join(str(c) for c in df.columns) + " |"
    rows = ["| " + " | ".join(str(v).replace("|", "/") for v in r) + " |" for r in df.itertuples(index=False)]
    return "\n".join([head, "|" + "---|" * len(df.columns), *rows])


def _verdict_text(v: Any) -> str:
    """One run's verdict of one claim with the numbers it rests on (means, difference, interval, pairs)."""
    from .claim_stats import STATUSES

    if v.verdict in STATUSES:
        return f"*{v.verdict}*" + (f" ({v.detail})" if v.detail else "")
    return f"**{v.verdict}**: {v.detail}"


def claims_markdown(tables_dir: str | os.PathLike, tables: Sequence[str]) -> str:
    """The register's claims about ``tables`` judged on the per-seed CSVs in ``tables_dir``, one column
    per run (the profile's own rows, then each paper-compute run that has the claim's rows); each
    cell the verdict and its numbers (:mod:`~coftad_lib.paper.claims`), beside the paper's number."""
    from .claim_stats import NOT_RUN
    from .claims import CLAIMS, judge_all, runs
    from .claims_paper import paper_number

    claims = tuple(c for c in CLAIMS if c.group in tables)
    if not claims:
        return f"*The claims register holds no claim about Table(s) {', '.join(tables)}.*"
    found = runs(tables_dir)
    if not found:
        return f"*No table of this run is written yet, so no claim about Table(s) {', '.join(tables)} is judged.*"
    by = {(id(v.claim), v.run): v for v in judge_all(tables_dir, claims)}
    cols = [label for i, (label, _) in enumerate(found)
            if i == 0 or any(by[id(c), label].verdict != NOT_RUN for c in claims)]
    frame = pd.DataFrame([{"claim": c.text, "the paper's number": paper_number(c),
                           **{f"this run: {label}" if i == 0 else label: _verdict_text(by[id(c), label])
                              for i, label in enumerate(cols)}} for c in claims])
    return _markdown(frame)


def aurocs(df: pd.DataFrame) -> pd.DataFrame:
    """A figure's cell frame (:meth:`RunContext.figure_records`) as the reader wants it: each row's
    paper name, AUROC in %, status and whether it was read from the cache."""
    out = pd.DataFrame({"row": [display_name(str(m)) for m in df["method"]], "task": df["task"],
                        "AUROC (%)": (100 * df["auroc"].astype(float)).round(1), "status": df["status"],
                        "cached": df["cached"]})
    return out.reset_index(drop=True)


def ranking_markdown(table: pd.DataFrame) -> Any:
    """Bullets (rendered Markdown) from an AUROC table (methods x ``all`` + one column per anomaly
    kind, in %): the methods best first, each with its hardest anomaly kind."""
    lines = []
    for method, row in table.sort_values("all", ascending=False).iterrows():
        kinds = row.drop("all")
        hard = f"; hardest kind: {kinds.idxmin()} ({kinds.min():.1f} %)" if len(kinds) > 1 else ""
        lines.append(f"- **{method}**: {row['all']:.1f} % over all anomalies{hard}")
    return _note("\n".join(lines))


def own_data(run: Any, data_dir: str, labels_csv: str, shots: int) -> tuple[str, FewShotTask]:
    """(what was read, its task) for notebook 17: ``labels_csv`` or ``data_dir``, else the demo
    (MVTec AD bottle arranged as a user's, sized like the profile's Table IV test sets)."""
    from ..datasets.labelled import demo_user_data, load_labelled

    seed = run.seeds[0]
    cap = run.limits("IV")["max_test_per_class"]  # None: every test image
    source = labels_csv or data_dir or demo_user_data(run.data_root, os.path.join(run.out_dir, "your_own_data",
                                                      "demo_data"), n_train=shots or 5, seed=seed,
                                                      max_normal=cap, max_per_kind=cap)
    return str(source), load_labelled(source, shots=shots or None, seed=seed, progress=False)
