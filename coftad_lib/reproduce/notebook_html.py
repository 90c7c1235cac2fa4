"""Executed notebooks as small, self-contained HTML pages, so REPORT.md's links resolve on a clone.

House rule: no notebook with outputs is committed (``results/**/notebooks/`` is git-ignored).
What a reader opens from REPORT.md, on GitHub or in JupyterLab, is instead an HTML rendering of the
published copy (:mod:`coftad_lib.notebook_publish`: cleaned metadata, paths redacted, images
shrunk), written by nbconvert's ``basic`` template (the cells, no 300 KB of Jupyter CSS) inside a
page with a few lines of style. Budget: :data:`DEFAULT_BUDGET_BYTES` for all pages of a profile
together; a notebook that alone is over :data:`MAX_PAGE_BYTES` is rendered without its images
(the figure files are in ``results/figures/``).
"""

from __future__ import annotations

import html
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import COFTADInputError
from ..notebook_publish import notebook_stems

#: the committed folder, relative to the results folder (REPORT.md links ``html/<name>.html``)
HTML_DIR = "html"
#: all pages of one profile together
DEFAULT_BUDGET_BYTES = 6 << 20
#: one page above this is rendered again without images
MAX_PAGE_BYTES = 1 << 20

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
.jp-CodeCell .jp-InputArea, .jp-InputArea { background: #f6f8fa; border-radius: 4px; padding: 0.2em 0.6em; }
.jp-OutputArea { margin: 0.4em 0 1.2em 0; overflow-x: auto; }
pre { white-space: pre-wrap; font-size: 0.85em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
th { background: #eee; }
img { max-width: 100%; }
.coftad-banner { background: #fff8e1; border: 1px solid #e0c060; padding: 0.5em 1em; border-radius: 4px; }
"""


@dataclass
class HtmlResult:
    """What :func:`render_html` wrote: the pages, their total size, those rendered without images."""

    files: list[Path] = field(default_factory=list)
    total_bytes: int = 0
    text_only: list[str] = field(default_factory=list)


def _page(title: str, body: str, banner: str) -> str:
    """``body`` (nbconvert's basic fragment) inside a standalone page with its code highlighting."""
    from pygments.formatters import HtmlFormatter

    css = _STYLE + HtmlFormatter().get_style_defs(".highlight")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>\n"
            f"<style>{css}</style></head>\n<body>\n<p class=\"coftad-banner\">{banner}</p>\n{body}\n</body></html>\n")


def _render_one(src: Path, dest: Path, banner: str, images: bool) -> int:
    """Write ``dest`` from the notebook ``src`` (atomically); returns its size in bytes."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(src, as_version=4)
    if not images:
        for cell in nb.cells:
            for out in cell.get("outputs", []):
                data = out.get("data", {})
                for mime in [m for m in data if m.startswith("image/")]:
                    del data[mime]
                    data["text/plain"] = "[image left out of this page; see results/figures/]"
    # its log says "Alternative text is missing" for every figure: not the reader's concern
    quiet = logging.getLogger("coftad_lib.nbconvert")
    quiet.setLevel(logging.ERROR)
    exporter = HTMLExporter(template_name="basic", log=quiet)
    exporter.exclude_input_prompt = exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(nb)
    text = _page(src.stem, body, banner.replace("{name}", src.stem))
    tmp = dest.with_name(f".{dest.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, dest)  # a reader never sees a half-written page
    return dest.stat().st_size


def render_html(published_dir: str | os.PathLike, dest_dir: str | os.PathLike, *,
                names: Sequence[str] | None = None, banner: str = "",
                budget_bytes: int = DEFAULT_BUDGET_BYTES) -> HtmlResult:
    """Render published notebooks (``results/notebooks/*.ipynb``) to ``dest_dir/<name>.html``.

    Args:
        published_dir: the cleaned, redacted copies of :func:`~coftad_lib.notebook_publish.publish_executed`.
        dest_dir: the committed folder (``results/html``); created if needed. Pages of notebooks
            not in ``names`` are left as they are (another run's notebooks stay linked).
        names: notebook stems; None = every ``*.ipynb`` in ``published_dir``.
        banner: one line of HTML put on top of every page (which profile, how to regenerate);
            ``{name}`` in it becomes the notebook's stem.
        budget_bytes: the most all pages in ``dest_dir`` may take together.

    Raises:
        COFTADInputError: a named notebook is missing, or the pages exceed the budget even
            without images (the message says by how much).
    """
    src_dir, out_dir = Path(published_dir), Path(dest_dir)
    stems = notebook_stems(src_dir, names, "published")
    out_dir.mkdir(parents=True, exist_ok=True)
    result = HtmlResult()
    for stem in stems:
        src, dest = src_dir / f"{stem}.ipynb", out_dir / f"{stem}.html"
        if _render_one(src, dest, banner, images=True) > MAX_PAGE_BYTES:
            _render_one(src, dest, banner, images=False)
            result.text_only.append(stem)
        result.files.append(dest)
    result.total_bytes = sum(p.stat().st_size for p in out_dir.glob("*.html"))
    if result.total_bytes > budget_bytes:
        raise COFTADInputError(f"{out_dir}: the HTML pages take {result.total_bytes} bytes, over the budget of "
                               f"{budget_bytes}; raise budget_bytes or render fewer notebooks")
    return result
