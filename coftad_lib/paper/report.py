"""One-page report ``results/REPORT.md``: every table and figure found, who made it, and where we differ.

Reads what the notebooks and the runner wrote: ``tables/table_*.csv`` and ``*_summary.csv``
(:mod:`coftad_lib.paper.results_tables`), ``figures/*.json`` (:func:`coftad_lib.figures.save_figure`),
``status/*.json`` (:func:`coftad_lib.engine.status.record_status`) and ``runs/summary.json`` (runner).
Differences are listed by the rule of :func:`coftad_lib.paper.results_tables.differs`:
``|ours - paper| > max(2 * std over seeds, 1 point)``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd

from ..engine.cache import atomic_write_text
from ..engine.status import relative_to_roots, summary_roots
from . import paper_compute_rows as pcr
from .claims_report import paper_compute_section, register_section
from .compute_moves import compute_section
from .kernel_spread import kernel_section
from .paper_values import TABLE_TITLES, TABLES, display_name
from .results_tables import MIN_FLAG_POINTS, is_paper_compute
from .setting import report_setting_lines

#: how a table or row that shows SemiCon is marked (the data here is a synthetic stand-in)
SEMICON_MARK = "SemiCon: synthetic stand-in"

_TABLE_FILE = re.compile(r"^table_(.+)\.csv$")


def _table_key(name: str) -> tuple[int, str]:
    return (TABLES.index(name) if name in TABLES else len(TABLES), name)


def _uniq(df: pd.DataFrame, col: str) -> str:
    if col not in df:
        return "?"
    vals = sorted({str(v) for v in df[col].dropna() if str(v)})
    return ", ".join(vals) or "?"


def _tables_section(root: Path) -> tuple[list[str], list[pd.DataFrame], set[str]]:
    folder = root / "tables"
    found = sorted((m.group(1) for p in folder.glob("table_*.csv")
                    if (m := _TABLE_FILE.match(p.name)) and not p.name.endswith("_summary.csv")), key=_table_key)
    lines = ["## Tables", ""]
    summaries, profiles = [], set()
    if not found:
        return lines + ["No tables found.", ""], summaries, profiles
    lines += ["| table | what | profile | backbone | cells ok / not computed yet / missing data / failed | files |",
              "|---|---|---|---|---:|---|"]
    for name in found:
        df = pd.read_csv(folder / f"table_{name}.csv", keep_default_na=True)
        runs = df[df["setting"].astype(str).map(is_paper_compute)] if "setting" in df else df.iloc[0:0]
        df = df.drop(runs.index)  # the paper-compute columns (issue 19) are named apart, not counted as cells
        profiles.update(str(v) for v in df.get("profile", pd.Series(dtype=str)).dropna())
        n_ok, n_pend, n_miss, n_fail = (int((df["status"] == s).sum()) if "status" in df else 0
                                        for s in ("ok", "pending", "missing", "failed"))
        links = [f"[md](tables/table_{name}.md)", f"[csv](tables/table_{name}.csv)"]
        summ = folder / f"table_{name}_summary.csv"
        if summ.exists():
            links.append(f"[summary](tables/table_{name}_summary.csv)")
            s = pd.read_csv(summ)
            s = s[~s["setting"].astype(str).map(is_paper_compute)] if "setting" in s else s
            s["profile"] = _uniq(df, "profile")
            summaries.append(s)
        extra = f" (+ columns: {_uniq(runs, 'profile')})" if len(runs) else ""
        what = TABLE_TITLES.get(name, "") + (f" (*{SEMICON_MARK}*)" if "semicon" in set(df.get("dataset", [])) else "")
        lines.append(f"| {name} | {what} | {_uniq(df, 'profile')}{extra} | {_uniq(df, 'backbone')} "
                     f"| {n_ok} / {n_pend} / {n_miss} / {n_fail} | {' '.join(links)} |")
    return lines + [""], summaries, profiles


def _figures_section(root: Path) -> tuple[list[str], set[str]]:
    folder = root / "figures"
    metas = sorted(folder.glob("*.json")) if folder.is_dir() else []
    images = sorted(p for p in folder.glob("*") if p.suffix in (".png", ".pdf")) if folder.is_dir() else []
    lines = ["## Figures", ""]
    profiles: set[str] = set()
    described = {m.stem for m in metas}
    if not metas and not images:
        return lines + ["No figures found.", ""], profiles
    lines += ["| figure | profile | notebook | files |", "|---|---|---|---|"]
    for meta in metas:
        info = json.loads(meta.read_text())
        profiles.add(str(info.get("profile", "")))
        files = " ".join(f"[{f.rsplit('.', 1)[-1]}](figures/{f})" for f in info.get("files", []))
        lines.append(f"| {meta.stem} | {info.get('profile') or '?'} | {info.get('notebook') or '?'} | {files} |")
    for stem in sorted({p.stem for p in images} - described):
        files = " ".join(f"[{p.suffix[1:]}](figures/{p.name})" for p in images if p.stem == stem)
        lines.append(f"| {stem} | ? (no sidecar JSON) | ? | {files} |")
    return lines + [""], profiles


def _differences_section(summaries: list[pd.DataFrame], profiles: set[str]) -> list[str]:
    lines = ["## Where ours differs from the paper", "",
             f"Rule: |ours - paper| > max(2 x std of ours over seeds, {MIN_FLAG_POINTS:g} point) in AUROC %. "
             "The paper gives no spread; with one seed only the 1-point floor applies.", ""]
    if "smoke" in profiles:
        lines += ["Smoke-profile numbers use a small backbone, tiny images, few steps and capped test sets: "
                  "they check that the pipeline runs and are not expected to match the paper.", ""]
    if not summaries:
        return lines + ["No summaries found.", ""]
    s = pd.concat(summaries, ignore_index=True)
    flagged = s[s["differs"].astype(str).str.lower() == "true"] if "differs" in s else s.iloc[0:0]
    n_cmp = int((s["paper"].notna() & s["mean"].notna()).sum())
    lines.append(f"{len(flagged)} of {n_cmp} compared cells differ.")
    lines.append("")
    if flagged.empty:
        return lines
    lines += ["| table | setting | method | task | ours | paper | ours - paper | threshold | profile |",
              "|---|---|---|---|---:|---:|---:|---:|---|"]
    for r in flagged.itertuples():
        ours = f"{r.mean:.1f}" + (f" ± {r.std:.1f}" if r.n_ok > 1 else "")
        task = f"{r.task} (*{SEMICON_MARK}*)" if r.task == "semicon" else r.task
        lines.append(f"| {r.table} | {r.setting} | {display_name(r.method)} | {task} | {ours} | {r.paper:.2f} "
                     f"| {r.diff:+.1f} | {r.threshold:.1f} | {r.profile} |")
    return lines + [""]


def _failed_section(root: Path, roots: dict[str, str]) -> list[str]:
    """Every failed cell the notebooks recorded (``status/*.json``), with its error."""
    rows = []
    for p in sorted((root / "status").glob("*.json")):
        for c in json.loads(p.read_text()).get("failed", []):
            err = relative_to_roots(str(c.get("message", "")), roots).replace("|", "/")[:300]
            rows.append(f"| {p.stem} | {c.get('table', '')} | {c.get('dataset', '')} | {c.get('task', '')} "
                        f"| {display_name(str(c.get('method', '')))} | {c.get('seed', '')} | {err} |")
    if not rows:
        return []
    return ["## Failed cells", "", "| notebook | table | dataset | task | method | seed | error |",
            "|---|---|---|---|---|---:|---|", *rows, ""]


def _book_links(root: Path) -> dict[str, str]:
    """Notebook stem -> its page in the committed book (``book/<stem>.html``), for pages that exist."""
    return {p.stem: f"book/{p.name}" for p in sorted((root / "book").glob("[0-9][0-9]_*.html"))}


def _notebooks_section(root: Path) -> tuple[list[str], dict[str, str], set[str]]:
    """The last run's notebooks (status, seconds, missing data, a link to each executed notebook).

    The link goes to the committed HTML page ``html/<name>.html`` when it exists (it resolves on a
    clone; :func:`coftad_lib.reproduce.notebook_html.render_html`), beside the published copy
    ``notebooks/<name>.ipynb`` (git-ignored, house rule: no notebook with outputs in git), else to
    the run's own ``executed/<name>.ipynb`` (git-ignored).
    """
    lines = ["## Notebooks", ""]
    missing: dict[str, str] = {}
    statuses = {p.stem: json.loads(p.read_text()) for p in sorted((root / "status").glob("*.json"))}
    run_file = root / "runs" / "summary.json"
    run: dict[str, Any] = json.loads(run_file.read_text()) if run_file.exists() else {}
    profiles = {str(st.get("profile")) for st in statuses.values() if st.get("profile")}
    if run.get("meta", {}).get("profile"):
        profiles.add(str(run["meta"]["profile"]))
    for st in statuses.values():
        for m in st.get("missing", []):
            missing.setdefault(m["dataset"], m["message"])
    book = _book_links(root)
    if run:
        meta = run.get("meta", {})
        lines += [f"Last run: profile `{meta.get('profile')}`, seeds `{meta.get('seeds')}`, strict "
                  f"`{meta.get('strict')}` ([summary](runs/summary.md)).", "",
                  "| notebook | status | seconds | missing | executed |", "|---|---|---:|---|---|"]
        for nb in run.get("notebooks", []):
            miss = ", ".join(m["dataset"] for m in nb.get("missing", []))
            page, published = f"html/{nb['name']}.html", f"notebooks/{nb['name']}.ipynb"
            if (root / page).is_file():
                exe = f"[html]({page})" + (f" / [ipynb]({published})" if (root / published).is_file() else "")
            elif (root / published).is_file():
                exe = f"[ipynb]({published})"
            else:
                exe = f"[ipynb](executed/{Path(nb['executed']).name})" if nb.get("executed") else ""
            page = book.get(nb["name"])  # the book's page of it, when `make book` has built one
            exe += f" / [book]({page})" if page else ""
            lines.append(f"| {nb['name']} | {nb['status']} | {nb['seconds']:.1f} | {miss} | {exe} |")
    elif statuses:
        lines += ["| notebook | status | profile | missing |", "|---|---|---|---|"]
        for name, st in statuses.items():
            miss = ", ".join(m["dataset"] for m in st.get("missing", []))
            lines.append(f"| {name} | {st.get('status')} | {st.get('profile')} | {miss} |")
    else:
        lines.append("No notebook status found.")
    return lines + [""], missing, profiles


#: the fine-tuning study's written verdict (issue 11), relative to the repository root
STUDY_VERDICT = Path("benchmarks") / "results" / "study" / "VERDICT.md"


def _study_section(root: Path) -> list[str]:
    """The short answer of the fine-tuning study (beyond the paper), when its VERDICT.md exists.

    The study runs outside the notebook series (``benchmarks/study_fine_tuning.py``; rendered by
    notebook 18), so the report quotes its committed verdict rather than recomputing it.
    """
    verdict = root.resolve().parent / STUDY_VERDICT
    if not verdict.is_file():
        return []
    paras = [p.strip() for p in verdict.read_text().split("\n\n") if p.strip() and not p.startswith("#")]
    if not paras:
        return []
    return ["## Beyond the paper: when does fine-tuning help?", "",
            f"From `{STUDY_VERDICT.as_posix()}` (EfficientNet-Lite0; notebook 18):", "",
            " ".join(paras[0].split()), ""]


def _units() -> list[dict[str, Any]]:
    """The paper-compute runs' unit records (issue 19), for the setting section."""
    from ..unit_records import read_units

    root = pcr.default_root()
    return read_units(root) if root.is_dir() else []


def write_report(results_dir: str | os.PathLike = "results") -> Path:
    """Build ``<results_dir>/REPORT.md`` from the tables, figures and status files found there.

    It opens with the claims register judged on every run (:mod:`coftad_lib.paper.claims_report`),
    then the setting (what ran against what the paper ran, :mod:`coftad_lib.paper.setting`) and how
    much the compute moves the answer (:mod:`coftad_lib.paper.compute_moves`).
    """
    root = Path(results_dir)
    nb_lines, missing, nb_profiles = _notebooks_section(root)
    tab_lines, summaries, tab_profiles = _tables_section(root)
    fig_lines, fig_profiles = _figures_section(root)
    profiles = {p for p in tab_profiles | fig_profiles | nb_profiles if p}
    lines = ["# COFT-AD reproduction report", "",
             f"Profiles found: {', '.join(sorted(profiles)) or 'none'}. Tables are AUROC in %, ours beside the "
             "paper's value (see each table's notes for doubts about the paper's text).", ""]
    run_file = root / "runs" / "summary.json"
    roots = summary_roots(json.loads(run_file.read_text()).get("meta", {})) if run_file.exists() else {}
    others = sorted(d.name for d in root.iterdir() if d.is_dir() and (d / "REPORT.md").exists()) if root.is_dir() else []
    if others:  # results/ holds protocol-cpu; each other profile has its own folder and report
        lines += ["Other profiles: " + ", ".join(f"[{d}]({d}/REPORT.md)" for d in others) + ".", ""]
    lines += register_section(root / "tables", ", ".join(sorted(tab_profiles)))
    lines += report_setting_lines(root, _units())
    lines += compute_section(root / "tables")
    lines += kernel_section(root / "tables")
    lines += paper_compute_section(root / "tables")
    lines += nb_lines + tab_lines + fig_lines + _differences_section(summaries, profiles)
    lines += _failed_section(root, roots) + _study_section(root)
    if missing:
        lines += ["## Missing datasets", "", "Paths are relative to the data root (DATA_ROOT) or PREP_DIR.", ""]
        lines += [f"- **{d}**: {relative_to_roots(msg, roots)}" for d, msg in sorted(missing.items())] + [""]
    return atomic_write_text(root / "REPORT.md", "\n".join(lines).rstrip() + "\n")
