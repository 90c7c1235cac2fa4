"""Published executed notebooks (cleaned, within a size budget) and the quiet papermill kernel."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from coftad_lib.errors import COFTADInputError
from coftad_lib.kernel_quiet import QUIET_KERNEL_ARGS, quiet_kernel_kwargs
from coftad_lib.notebook_publish import publish_executed
from coftad_lib.reproduce import notebook_html
from coftad_lib.reproduce.notebook_html import render_html


def _executed(path: Path, image_bytes: int, text: str = "hello") -> None:
    """An executed notebook as papermill leaves it: timestamps, absolute paths, an image output."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["papermill"] = {"start_time": "2026-12-04T10:00:00", "end_time": "x", "duration": 3.2,
                                "input_path": "/home/me/repo/notebooks/a.ipynb", "output_path": "/home/me/out.ipynb",
                                "parameters": {"PROFILE": "smoke"}, "version": "2.7.0"}
    injected = nbformat.v4.new_code_cell('PROFILE = "smoke"')  # papermill's, with a fresh random id
    injected.metadata["tags"] = ["injected-parameters"]
    cell = nbformat.v4.new_code_cell("plot()", id="plot-cell")  # ids of the source's cells are stable
    cell.metadata["papermill"] = {"start_time": "t0", "end_time": "t1", "duration": 1.0, "status": "completed"}
    cell.metadata["execution"] = {"iopub.execute_input": "t0"}
    png = base64.b64encode(bytes(image_bytes)).decode()
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text),
                    nbformat.v4.new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"})]
    nb.cells = [injected, cell]
    nbformat.write(nb, path)


def test_publish_cleans_metadata_keeps_outputs_and_is_stable(tmp_path: Path):
    ex, pub = tmp_path / "executed", tmp_path / "notebooks"
    ex.mkdir()
    _executed(ex / "04_table_I.ipynb", 2_000)
    res = publish_executed(ex, pub)
    assert res.files == [pub / "04_table_I.ipynb"] and res.images_left_out == 0 and not res.text_only
    nb = nbformat.read(pub / "04_table_I.ipynb", as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["papermill"] == {"parameters": {"PROFILE": "smoke"}, "version": "2.7.0"}
    assert "/home/me" not in (pub / "04_table_I.ipynb").read_text()
    assert nb.cells[1].metadata["papermill"] == {"status": "completed"} and "execution" not in nb.cells[1].metadata
    assert "image/png" in nb.cells[1].outputs[1]["data"] and nb.cells[1].outputs[0]["text"] == "hello"
    before = (pub / "04_table_I.ipynb").read_bytes()
    _executed(ex / "04_table_I.ipynb", 2_000)  # a rerun with new timestamps ...
    publish_executed(ex, pub)
    assert (pub / "04_table_I.ipynb").read_bytes() == before  # ... leaves no diff
    assert not list(pub.glob(".*"))


def test_big_images_and_the_budget(tmp_path: Path):
    ex, pub = tmp_path / "executed", tmp_path / "notebooks"
    ex.mkdir()
    _executed(ex / "a.ipynb", 300_000)
    _executed(ex / "b.ipynb", 20_000)
    _executed(ex / "c.ipynb", 10_000)
    res = publish_executed(ex, pub, max_image_bytes=200_000)
    assert res.images_left_out == 1
    note = nbformat.read(pub / "a.ipynb", as_version=4).cells[1].outputs[1]["data"]
    assert "image/png" not in note and "left out of the published copy" in note["text/plain"]
    # a budget that only fits if the largest remaining copy goes text-only
    res = publish_executed(ex, pub, names=["b", "c"], budget_bytes=25_000)
    assert res.text_only == ["b"] and res.total_bytes <= 25_000
    with pytest.raises(COFTADInputError, match="even without images"):
        publish_executed(ex, pub, names=["c"], budget_bytes=100)
    with pytest.raises(COFTADInputError, match="no executed notebook zz"):
        publish_executed(ex, pub, names=["zz"])


def test_html_pages_are_standalone_small_and_stable(tmp_path: Path):
    ex, pub, html = tmp_path / "executed", tmp_path / "notebooks", tmp_path / "html"
    ex.mkdir()
    _executed(ex / "04_table_I.ipynb", 2_000, text="AUROC <80.5>")
    publish_executed(ex, pub)
    res = render_html(pub, html, banner="profile <code>p</code>, page of {name}")
    page = (html / "04_table_I.html").read_text()
    assert res.files == [html / "04_table_I.html"] and res.total_bytes == len(page.encode()) and not res.text_only
    assert page.startswith("<!DOCTYPE html>") and "page of 04_table_I" in page
    assert "AUROC &lt;80.5&gt;" in page and "data:image/png;base64," in page  # outputs and the figure
    assert '<span class="n">plot</span>' in page and "<style>" in page and "<link" not in page  # no file beside it needed
    render_html(pub, html, banner="profile <code>p</code>, page of {name}")
    assert (html / "04_table_I.html").read_text() == page and not list(html.glob(".*"))


def test_html_big_pages_lose_images_and_the_budget_holds(tmp_path: Path, monkeypatch):
    ex, pub, html = tmp_path / "executed", tmp_path / "notebooks", tmp_path / "html"
    ex.mkdir()
    _executed(ex / "a.ipynb", 60_000)
    _executed(ex / "b.ipynb", 1_000)
    publish_executed(ex, pub)
    monkeypatch.setattr(notebook_html, "MAX_PAGE_BYTES", 50_000)
    res = render_html(pub, html)
    assert res.text_only == ["a"] and "image left out of this page" in (html / "a.html").read_text()
    assert "data:image/png" in (html / "b.html").read_text()
    with pytest.raises(COFTADInputError, match="over the budget of 100"):
        render_html(pub, html, names=["b"], budget_bytes=100)
    with pytest.raises(COFTADInputError, match="no published notebook zz"):
        render_html(pub, html, names=["zz"])


def test_quiet_kernel_kwargs_keep_other_arguments():
    assert quiet_kernel_kwargs() == {"extra_arguments": list(QUIET_KERNEL_ARGS)}
    kw = quiet_kernel_kwargs(["--HistoryManager.enabled=False", *QUIET_KERNEL_ARGS])
    assert kw["extra_arguments"] == ["--HistoryManager.enabled=False", *QUIET_KERNEL_ARGS]


_RUN = """
import sys, papermill as pm
from coftad_lib.kernel_quiet import quiet_kernel_kwargs
kw = quiet_kernel_kwargs() if sys.argv[1] == "quiet" else {}
pm.execute_notebook(sys.argv[2], sys.argv[3], kernel_name="python3", progress_bar=False, log_output=True, **kw)
"""


def test_papermill_kernel_transport_warning_is_silenced(tmp_path: Path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print(6 * 7)")]
    nbformat.write(nb, tmp_path / "t.ipynb")

    def run(mode: str) -> str:
        out = tmp_path / f"{mode}.ipynb"
        proc = subprocess.run([sys.executable, "-c", _RUN, mode, str(tmp_path / "t.ipynb"), str(out)],
                              capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert "42" in nbformat.read(out, as_version=4).cells[0].outputs[0]["text"]
        return proc.stdout + proc.stderr

    assert "without encryption" not in run("quiet")
    loud = run("plain")
    if "without encryption" not in loud:  # an ipykernel that does not warn: nothing to silence
        pytest.skip("this ipykernel does not print the TCP transport warning")


def test_big_png_becomes_a_jpeg_that_fits_and_paths_are_redacted(tmp_path: Path):
    import io

    import numpy as np
    from PIL import Image

    ex, pub = tmp_path / "executed", tmp_path / "notebooks"
    ex.mkdir()
    _executed(ex / "fig.ipynb", 10, text=f"saved {tmp_path}/repo/results/figures/x.png and {tmp_path}/repo/data/y\n")
    nb = nbformat.read(ex / "fig.ipynb", as_version=4)
    buf = io.BytesIO()  # noise compresses badly: a 600 x 600 PNG of ~1 MiB
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (600, 600, 3), dtype=np.uint8)).save(buf, "PNG")
    nb.cells[1].outputs[1]["data"]["image/png"] = base64.b64encode(buf.getvalue()).decode()
    nbformat.write(nb, ex / "fig.ipynb")
    res = publish_executed(ex, pub, max_image_bytes=100_000,
                           redact={f"{tmp_path}/repo": ".", f"{tmp_path}/repo/data": "<DATA_ROOT>"})
    assert res.images_left_out == 0
    data = nbformat.read(pub / "fig.ipynb", as_version=4).cells[1].outputs[1]["data"]
    assert "image/png" not in data and len(base64.b64decode(data["image/jpeg"])) <= 100_000
    Image.open(io.BytesIO(base64.b64decode(data["image/jpeg"]))).verify()
    text = (pub / "fig.ipynb").read_text()
    assert str(tmp_path) not in text and "saved ./results/figures/x.png and <DATA_ROOT>/y" in text
