"""The executed notebook series as a static, offline, searchable book (``make book``).

Sphinx + myst-nb + the Furo theme (docs/RUNNING.md, "The book", says why) turn the executed
notebooks into ``<results>/book/``: a first page with the paper's claims and verdicts (the claims
section of ``<results>/REPORT.md``, copied at build time, never retyped), one page per notebook in the
series' order with previous/next links, a client-side search index (``searchindex.js``, loaded by a
``<script>`` tag, so search works from ``file://``), and on each table/figure page a link to the
committed table or figure file. The Sphinx configuration is ``docs/book/conf.py``.

The input is the runner's published notebooks (``<results>/notebooks/``: cleaned, paths redacted,
images shrunk), else its raw ``<results>/executed/`` copies, published here into a temporary folder
the same way. Neither is committed (no notebook with outputs in git), so the built book is: it is
small (:data:`MAX_BOOK_BYTES`, no file over :data:`MAX_FILE_BYTES`) and a clone reads it without
running anything. Without executed notebooks :func:`main` leaves the committed book as it is.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import COFTADInputError
from .series import NOTEBOOK_PATTERN

#: the book's folder, relative to the results folder (REPORT.md sits in the results folder)
BOOK_DIR = "book"
#: the whole book, and any one file of it: what may be committed
MAX_BOOK_BYTES = 10 << 20
MAX_FILE_BYTES = 1 << 20
#: the Sphinx configuration folder, relative to the repository root
CONF_DIR = Path(__file__).resolve().parents[2] / "docs" / "book"
#: first line of the README the builder writes into the book: only a folder holding it is replaced
MARKER = "<!-- coftad book: written by `make book`; do not edit -->"
#: Sphinx output the book does without (build bookkeeping, an inventory nobody cross-references)
_DROP = (".buildinfo", ".buildinfo.bak", "objects.inv", "_sources", ".doctrees", "genindex.html")
#: the TOC's sections: a notebook goes to the first whose pattern its stem (sans number) matches
SECTIONS = (("Method tour", r"method_tour"), ("Data preparation", r"data_prep_"),
            ("The paper's tables", r"table_[IVX]+_"), ("The paper's figures", r"fig\d+_"),
            ("Beyond the paper", r""))
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")


@dataclass
class BookResult:
    """What :func:`build_book` wrote: the pages in TOC order, the folder's size, Sphinx's warnings."""

    out_dir: Path
    pages: list[str] = field(default_factory=list)
    total_bytes: int = 0
    warnings: list[str] = field(default_factory=list)


def book_links(results_dir: str | os.PathLike) -> dict[str, str]:
    """Notebook stem -> its book page, relative to ``results_dir`` (``"book/09_table_VI_ablation.html"``).

    For REPORT.md (which sits in ``results_dir``) to link every page; only pages that exist are
    listed, so a report written before the book was built links none. The first page, with the
    claims, is ``book/index.html``.
    """
    book = Path(results_dir) / BOOK_DIR
    if not book.is_dir():
        return {}
    stems = sorted(p.stem for p in book.glob("*.html") if NOTEBOOK_PATTERN.match(f"{p.stem}.ipynb"))
    return {stem: f"{BOOK_DIR}/{stem}.html" for stem in stems}


def find_notebooks(results_dir: str | os.PathLike) -> Path | None:
    """The folder of executed notebooks to build from: ``notebooks/`` (published), else ``executed/``."""
    for name in ("notebooks", "executed"):
        folder = Path(results_dir) / name
        if folder.is_dir() and any(NOTEBOOK_PATTERN.match(p.name) for p in folder.iterdir()):
            return folder
    return None


def claims_markdown(report: Path, book_dir: Path) -> str:
    """The claims section of REPORT.md (from its first ``## `` heading naming claims to the next ``## ``).

    Its relative links point from the results folder; they are rewritten as raw ``<a>`` tags
    relative to ``book_dir``, because MyST would otherwise try to resolve them as book pages.
    """
    if not report.is_file():
        return f"*No {report.name} next to the book: run `make reproduce` to write the claims.*\n"
    lines = report.read_text(encoding="utf-8").splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("## ") and "claim" in line.lower()), None)
    if start is None:
        return f"*{report.name} has no claims section.*\n"
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))

    def relink(m: re.Match[str]) -> str:
        text, target = m.group(1), m.group(2)
        if re.match(r"^[a-z]+:|^#", target):  # external or in-page: MyST handles those
            return m.group(0)
        href = os.path.relpath(report.parent / target, book_dir).replace(os.sep, "/")
        return f'<a href="{href}">{text}</a>'

    return "\n".join(_LINK.sub(relink, line) for line in lines[start:end]) + "\n"


def results_links(stem: str, results_dir: Path, book_dir: Path) -> list[tuple[str, str]]:
    """(label, href from the book) of the committed files a table or figure notebook writes.

    ``NN_table_VI_*`` -> ``tables/table_VI.{md,csv}`` and its summary; ``NN_fig5_*`` ->
    ``figures/fig5_*.{png,pdf}``. Only files that exist are linked.
    """
    name = stem[3:]
    if m := re.match(r"table_([IVX]+)_", name):
        tid = m.group(1)
        files = [results_dir / "tables" / f"table_{tid}{ext}" for ext in (".md", ".csv", "_summary.csv")]
    elif m := re.match(r"(fig\d+)_", name):
        files = sorted((results_dir / "figures").glob(f"{m.group(1)}_*.png"))
        files += sorted((results_dir / "figures").glob(f"{m.group(1)}_*.pdf"))
    else:
        return []
    return [(f"{f.parent.name}/{f.name}", os.path.relpath(f, book_dir).replace(os.sep, "/"))
            for f in files if f.is_file()]


def _stage_notebook(src: Path, dest: Path, links: list[tuple[str, str]], is_result: bool) -> None:
    """Copy ``src`` to ``dest`` arranged for reading, with a box linking the committed results.

    The series' notebooks open with code (papermill's ``parameters`` cell, the injected values,
    the imports) and only then their ``# Title`` cell; in the book the title comes first (it
    names the page in the TOC and starts what the reader sees), then the results box, then the
    code in its order. The ``parameters`` cell holds defaults the injected cell overrides, so its
    source is folded (myst-nb's ``hide-input``: a ``<details>``, no script needed). A progress
    bar's updates (one stderr output per refresh, each starting with ``\\r``) become its last
    state, as a terminal shows it (nbconvert's stream coalescing).
    """
    import nbformat
    from nbconvert.preprocessors.coalescestreams import CoalesceStreamsPreprocessor

    nb = nbformat.read(src, as_version=4)
    nb, _ = CoalesceStreamsPreprocessor().preprocess(nb, {})
    first_md = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"), None)
    if first_md is not None:
        nb.cells.insert(0, nb.cells.pop(first_md))
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "parameters" in tags and "hide-input" not in tags:
            cell.metadata["tags"] = [*tags, "hide-input"]
    if links:
        items = " · ".join(f'<a href="{href}">{label}</a>' for label, href in links)
        box = f'<div class="coftad-results"><b>Results of this page:</b> {items}</div>'
    elif is_result:
        box = '<div class="coftad-results">This run wrote no results file for this page.</div>'
    else:
        box = ""
    if box:
        nb.cells.insert(1 if first_md is not None else 0, nbformat.v4.new_markdown_cell(box))
    nbformat.write(nb, dest)


def _index_page(stems: Sequence[str], claims: str, report_href: str) -> str:
    """The first page: the claims, then one toctree per section (Furo's sidebar shows them grouped)."""
    parts = ["# COFT-AD: the executed notebook series\n",
             "Every notebook of the series, executed, in the order it runs: the method tour, data "
             "preparation, the paper's Tables I-X and Figs. 5-7, then two notebooks beyond the paper. "
             "Each table or figure page links the committed results file it wrote. First, what the "
             f'run says about the paper\'s claims (from <a href="{report_href}">REPORT.md</a>):\n', claims]
    for caption, members in toc_sections(stems):
        parts.append(f"```{{toctree}}\n:caption: {caption}\n:maxdepth: 1\n\n" + "\n".join(members) + "\n```\n")
    return "\n".join(parts)


def toc_sections(stems: Sequence[str]) -> list[tuple[str, list[str]]]:
    """``stems`` in number order, grouped under :data:`SECTIONS` (empty sections left out)."""
    groups: dict[str, list[str]] = {caption: [] for caption, _ in SECTIONS}
    for stem in sorted(stems):
        caption = next(c for c, pattern in SECTIONS if re.match(pattern, stem[3:]))
        groups[caption].append(stem)
    return [(caption, members) for caption, members in groups.items() if members]


def _sphinx(src: Path, out: Path, doctrees: Path, conf_dir: Path) -> list[str]:
    """Run ``sphinx-build`` in a child process (Sphinx keeps global state; a child keeps it out of
    the caller). Returns its warnings; raises with its output when it fails."""
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-E", "-j", "1",
           "-c", str(conf_dir), "-d", str(doctrees), str(src), str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise COFTADInputError(f"sphinx-build failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return [line for line in proc.stderr.splitlines() if "WARNING" in line or "ERROR" in line]


def _trim(built: Path) -> None:
    """Drop :data:`_DROP` from Sphinx's output and add the README that marks the folder as ours."""
    for name in _DROP:
        path = built / name
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    for source_map in built.rglob("*.map"):  # the theme's source maps: for its developers only
        source_map.unlink()
    (built / "README.md").write_text(
        f"{MARKER}\n# The book\n\nThe executed notebook series as a static site: open `index.html` in a "
        "browser (works from files, offline). Rebuilt by `make book` (docs/RUNNING.md, \"The book\").\n",
        encoding="utf-8")


def _install(built: Path, out_dir: Path) -> None:
    """Replace ``out_dir`` by ``built``; refuses to remove a folder the builder did not write."""
    if out_dir.exists():
        readme = out_dir / "README.md"
        ours = readme.is_file() and readme.read_text(encoding="utf-8").startswith(MARKER)
        if any(out_dir.iterdir()) and not ours:
            raise COFTADInputError(f"{out_dir} exists and was not written by `make book`; pass another --out")
        shutil.rmtree(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(built, out_dir)


def check_size(out_dir: Path, max_total: int = MAX_BOOK_BYTES, max_file: int = MAX_FILE_BYTES) -> int:
    """The book's size in bytes; raises if it or one of its files is over what may be committed."""
    files = [p for p in out_dir.rglob("*") if p.is_file()]
    big = [f"{p.relative_to(out_dir)} ({p.stat().st_size} B)" for p in files if p.stat().st_size > max_file]
    total = sum(p.stat().st_size for p in files)
    if big or total > max_total:
        raise COFTADInputError(f"{out_dir}: {total} bytes in all (limit {max_total}); files over {max_file} B: "
                               f"{', '.join(big) or 'none'}")
    return total


def build_book(notebooks_dir: str | os.PathLike, results_dir: str | os.PathLike,
               out_dir: str | os.PathLike | None = None, *, conf_dir: str | os.PathLike = CONF_DIR,
               max_total: int = MAX_BOOK_BYTES, max_file: int = MAX_FILE_BYTES) -> BookResult:
    """Build the book from the executed notebooks in ``notebooks_dir`` into ``out_dir``.

    Args:
        notebooks_dir: executed ``NN_*.ipynb`` (published copies: they are what gets committed).
        results_dir: where REPORT.md (the claims) and ``tables/``, ``figures/`` (linked) are.
        out_dir: the book; default ``<results_dir>/book``. Replaced whole, and only if the
            builder wrote it (or it is empty), after the new book built and fit the size limits.
        conf_dir: the Sphinx configuration folder (``docs/book``).

    Raises:
        COFTADInputError: no notebook, Sphinx failed, the book is over the size limits, or
            ``out_dir`` holds something else.
    """
    nb_dir, res = Path(notebooks_dir), Path(results_dir)
    out = Path(out_dir) if out_dir is not None else res / BOOK_DIR
    stems = sorted(p.stem for p in nb_dir.glob("*.ipynb") if NOTEBOOK_PATTERN.match(p.name))
    if not stems:
        raise COFTADInputError(f"{nb_dir}: no executed NN_*.ipynb to build the book from")
    if not (Path(conf_dir) / "conf.py").is_file():  # a non-editable install has no docs/
        raise COFTADInputError(f"no Sphinx configuration {Path(conf_dir) / 'conf.py'}; build from a checkout")
    with tempfile.TemporaryDirectory(prefix="coftad-book-") as tmp:
        src, built = Path(tmp) / "src", Path(tmp) / "html"
        src.mkdir()
        for stem in stems:
            links = results_links(stem, res, out)
            is_result = re.match(r"table_|fig\d", stem[3:]) is not None
            _stage_notebook(nb_dir / f"{stem}.ipynb", src / f"{stem}.ipynb", links, is_result)
        report = res / "REPORT.md"
        report_href = os.path.relpath(report, out).replace(os.sep, "/")
        (src / "index.md").write_text(_index_page(stems, claims_markdown(report, out), report_href),
                                      encoding="utf-8")
        warnings = _sphinx(src, built, Path(tmp) / "doctrees", Path(conf_dir))
        _trim(built)
        total = check_size(built, max_total, max_file)
        _install(built, out)
    order = [stem for _, members in toc_sections(stems) for stem in members]
    return BookResult(out_dir=out, pages=order, total_bytes=total, warnings=warnings)


def _published(executed: Path, tmp: Path) -> Path:
    """``executed/`` copies cleaned as the runner publishes them, into ``tmp``.

    The runner redacts the folders it was given; here they are read back from each notebook's
    injected parameters (``DATA_ROOT``, ``PREP_DIR``, ``OUT_DIR``), so that no machine path of
    the run reaches a page that may be committed.
    """
    import nbformat

    from ..notebook_publish import publish_executed

    redact = {str(CONF_DIR.parents[1]): ".", str(Path.home()): "~"}
    names = {"DATA_ROOT": "<DATA_ROOT>", "PREP_DIR": "<PREP_DIR>", "OUT_DIR": "<OUT_DIR>"}
    assign = re.compile(r'^(DATA_ROOT|PREP_DIR|OUT_DIR) = "(/[^"]+)"$', re.M)
    for path in executed.glob("*.ipynb"):
        cells = nbformat.read(path, as_version=4).cells
        for cell in (c for c in cells if "injected-parameters" in c.metadata.get("tags", [])):
            for name, value in assign.findall(cell.source):
                redact.setdefault(value, names[name])
    redact = {k: v for k, v in redact.items() if len(Path(k).parts) > 1}  # never "/" itself
    publish_executed(executed, tmp, redact=redact)
    return tmp


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m coftad_lib.reproduce.book [--results DIR] [--notebooks DIR] [--out DIR]``."""
    ap = argparse.ArgumentParser(prog="python -m coftad_lib.reproduce.book", description=__doc__.split("\n")[0])
    ap.add_argument("--results", default="results", help="results folder: REPORT.md, tables/, figures/ (default: results)")
    ap.add_argument("--notebooks", help="executed NN_*.ipynb (default: <results>/notebooks, else <results>/executed)")
    ap.add_argument("--out", help="the book's folder (default: <results>/book)")
    args = ap.parse_args(argv)
    res = Path(args.results)
    nb_dir = Path(args.notebooks) if args.notebooks else find_notebooks(res)
    if nb_dir is None:
        book = Path(args.out) if args.out else res / BOOK_DIR
        state = f"the committed book {book / 'index.html'} stays as it is" if (book / "index.html").is_file() \
            else "there is no book yet"
        print(f"[book] no executed notebooks in {res}/notebooks or {res}/executed: {state}. `make reproduce "
              "PROFILE=protocol-cpu` writes them (it renders from the committed cell cache, computing nothing).")
        return 0
    try:
        with tempfile.TemporaryDirectory(prefix="coftad-published-") as tmp:
            src = _published(nb_dir, Path(tmp)) if nb_dir.name == "executed" else nb_dir
            result = build_book(src, res, args.out)
    except COFTADInputError as exc:
        print(f"[book] {exc}", file=sys.stderr)
        return 2
    for line in result.warnings:
        print(f"[book] sphinx: {line}", file=sys.stderr)
    print(f"[book] {len(result.pages)} pages from {nb_dir} -> {result.out_dir / 'index.html'} "
          f"({result.total_bytes / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
