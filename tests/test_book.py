"""The book of executed notebooks (coftad_lib/reproduce/book.py): built from two tiny executed
notebooks made here, it has the series' order, previous/next links, an offline search index, the
claims of REPORT.md, links to the results files, and no asset fetched over the network."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

pytest.importorskip("sphinx")
pytest.importorskip("myst_nb")
pytest.importorskip("furo")
nbformat = pytest.importorskip("nbformat")

from coftad_lib.errors import COFTADInputError  # noqa: E402
from coftad_lib.reproduce import book  # noqa: E402

# a 1x1 PNG: the figure notebook's output goes to _images/ as a file
_PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082")).decode()
_REPORT = """# COFT-AD reproduction report

Intro.

## Does it reproduce? The paper's claims (profile `protocol-cpu`)

Verdicts ([claims.py](../coftad_lib/paper/claims.py) says how).

| claim | verdict |
|---|---|
| Quokkaclaim beats everything | **does not hold** |

## Notebooks

Not part of the claims: wombatsection.
"""


def _notebook(path: Path, title: str, text: str, image: bool = False) -> None:
    """An executed notebook as the series has them: papermill's parameters cell before the title
    cell, then a code cell with a progress bar's refreshes on stderr, a printed line (and a PNG)."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("PROFILE = 'smoke'", metadata={"tags": ["parameters"]})
    code = nbformat.v4.new_code_cell("print('hi')", execution_count=1)
    code.outputs = [nbformat.v4.new_output("stream", name="stderr", text="\rbar:   0%|  | 0/2"),
                    nbformat.v4.new_output("stream", name="stderr", text="\rbar: 100%|##| 2/2\n"),
                    nbformat.v4.new_output("stream", name="stdout", text=text)]
    if image:
        code.outputs.append(nbformat.v4.new_output("display_data", data={"image/png": _PNG, "text/plain": "<Figure>"}))
    nb.cells = [params, nbformat.v4.new_markdown_cell(f"# {title}\n\nSome prose."), code]
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(results folder, BookResult) of one build shared by the tests (Sphinx takes seconds)."""
    root = tmp_path_factory.mktemp("book")
    res, nbs = root / "results", root / "results" / "notebooks"
    nbs.mkdir(parents=True)
    # written in reverse order: the book must sort by number, not by creation
    _notebook(nbs / "14_fig5_tiny.ipynb", "Fig. 5: tiny figure", "platypusoutput\n", image=True)
    _notebook(nbs / "04_table_I_tiny.ipynb", "Table I: tiny table", "echidnaoutput\n")
    (res / "REPORT.md").write_text(_REPORT, encoding="utf-8")
    (res / "tables").mkdir()
    (res / "tables" / "table_I.md").write_text("| a |\n|---|\n| 1 |\n", encoding="utf-8")
    (res / "figures").mkdir()
    (res / "figures" / "fig5_tiny.png").write_bytes(base64.b64decode(_PNG))
    return res, book.build_book(nbs, res)


def _read(res: Path, name: str) -> str:
    return (res / "book" / name).read_text(encoding="utf-8")


def test_toc_in_series_order_with_sections(built):
    res, result = built
    assert result.pages == ["04_table_I_tiny", "14_fig5_tiny"]
    index = _read(res, "index.html")
    assert index.index('href="04_table_I_tiny.html"') < index.index('href="14_fig5_tiny.html"')
    assert "The paper&#39;s tables" in index or "The paper's tables" in index
    assert book.toc_sections(["18_study", "00_method_tour", "05_table_II_x", "01_data_prep_a", "15_fig6_b"]) == [
        ("Method tour", ["00_method_tour"]), ("Data preparation", ["01_data_prep_a"]),
        ("The paper's tables", ["05_table_II_x"]), ("The paper's figures", ["15_fig6_b"]),
        ("Beyond the paper", ["18_study"])]


def test_previous_next_navigation(built):
    res, _ = built
    first, second = _read(res, "04_table_I_tiny.html"), _read(res, "14_fig5_tiny.html")
    assert re.search(r'<link rel="next"[^>]*href="14_fig5_tiny.html"', first)
    assert re.search(r'<link rel="prev"[^>]*href="index.html"', first)
    assert re.search(r'<link rel="prev"[^>]*href="04_table_I_tiny.html"', second)


def test_first_page_embeds_the_claims_section_only(built):
    res, _ = built
    index = _read(res, "index.html")
    assert "Quokkaclaim beats everything" in index and "does not hold" in index
    assert "wombatsection" not in index
    # the REPORT.md link, relative to results/, now relative to results/book/
    assert 'href="../../coftad_lib/paper/claims.py"' in index
    assert 'href="../REPORT.md"' in index


def test_pages_open_with_their_title_and_a_progress_bar_shows_its_end(built):
    res, _ = built
    page = _read(res, "04_table_I_tiny.html")
    assert page.index("<h1>Table I: tiny table") < page.index("PROFILE")
    assert "<details" in page  # the parameters cell's defaults are folded
    assert "bar: 100%" in page and "bar:   0%" not in page


def test_search_index_is_offline_and_has_the_pages_words(built):
    res, _ = built
    index_js = _read(res, "searchindex.js")
    for word in ("echidnaoutput", "platypusoutput", "quokkaclaim"):
        assert word in index_js.lower()
    search = _read(res, "search.html")
    assert 'src="searchindex.js"' in search or "searchindex.js" in search


def test_results_links_on_table_and_figure_pages(built):
    res, _ = built
    assert 'href="../tables/table_I.md"' in _read(res, "04_table_I_tiny.html")
    assert 'href="../figures/fig5_tiny.png"' in _read(res, "14_fig5_tiny.html")
    assert list((res / "book" / "_images").glob("*.png"))  # the output image is a file, not inline


def test_no_page_loads_anything_over_the_network(built):
    res, result = built
    asset = re.compile(r'<(?:script|img|iframe)[^>]+src="https?:|<link[^>]+href="https?:|url\(["\']?https?:', re.I)
    for path in (res / "book").rglob("*"):
        if path.suffix in (".html", ".css"):
            assert not asset.search(path.read_text(encoding="utf-8")), path
    assert not (res / "book" / "_sources").exists() and not (res / "book" / ".buildinfo").exists()
    assert result.total_bytes < book.MAX_BOOK_BYTES


def test_book_links_for_the_report(built):
    res, _ = built
    assert book.book_links(res) == {"04_table_I_tiny": "book/04_table_I_tiny.html",
                                    "14_fig5_tiny": "book/14_fig5_tiny.html"}
    assert book.book_links(res / "nowhere") == {}


def test_refuses_to_replace_a_folder_it_did_not_write(built, tmp_path):
    res, _ = built
    other = tmp_path / "mine"
    other.mkdir()
    (other / "keep.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(COFTADInputError, match="not written by"):
        book.build_book(res / "notebooks", res, other)
    assert (other / "keep.txt").is_file()


def test_main_without_notebooks_keeps_the_committed_book(tmp_path, capsys):
    assert book.main(["--results", str(tmp_path)]) == 0
    assert "no executed notebooks" in capsys.readouterr().out


def test_main_builds_from_raw_executed_copies_without_machine_paths(tmp_path, capsys):
    """Only ``executed/`` (no published copies): main publishes them first, so the run's folders,
    read from the injected parameters, do not reach the pages."""
    res = tmp_path / "results"
    (res / "executed").mkdir(parents=True)
    path = res / "executed" / "05_table_II_tiny.ipynb"
    _notebook(path, "Table II: tiny", "koalaoutput\n")
    nb = nbformat.read(path, as_version=4)
    injected = nbformat.v4.new_code_cell(f'# Parameters\nOUT_DIR = "{tmp_path}/secret_out"\n',
                                         metadata={"tags": ["injected-parameters"]})
    nb.cells.insert(1, injected)
    nbformat.write(nb, path)
    assert book.main(["--results", str(res)]) == 0
    assert "1 pages from" in capsys.readouterr().out
    page = (res / "book" / "05_table_II_tiny.html").read_text(encoding="utf-8")
    assert "koalaoutput" in page and "secret_out" not in page and "&lt;OUT_DIR&gt;" in page
    assert "This run wrote no results file" in page  # no tables/ here
