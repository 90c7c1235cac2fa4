"""save_figure (PNG + PDF, reproducible bytes) and the one-page report."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from PIL import Image

from coftad_lib.errors import COFTADInputError
from coftad_lib.figures import save_figure
from coftad_lib.paper import record_status
from coftad_lib.paper.report import write_report
from coftad_lib.paper.results_tables import write_table
from coftad_lib.versions import VERSION_KEYS, versions


def _figure(title: str = "scores") -> Figure:
    fig = Figure(figsize=(3, 2))
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)
    ax.hist(rng.normal(size=200), bins=20, alpha=0.5, label="normal")
    ax.set_title(title)
    ax.legend()
    return fig


def test_save_figure_png_pdf_reproducible(tmp_path, monkeypatch):
    monkeypatch.setenv("COFTAD_PROFILE", "paper")  # not read: the run context passes profile and notebook
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    paths = save_figure(_figure(), "fig7_scores", tmp_path / "a", profile="smoke", notebook="16_fig7")
    assert [p.name for p in paths] == ["fig7_scores.png", "fig7_scores.pdf"]
    with Image.open(paths[0]) as im:
        assert im.size == (450, 300)  # 3 x 2 inches at 150 dpi
        assert im.info["dpi"] == pytest.approx((150, 150), abs=0.1)
    pdf = paths[1].read_bytes()
    assert pdf.startswith(b"%PDF") and b"CreationDate" not in pdf and b"ModDate" not in pdf
    again = save_figure(_figure(), "fig7_scores", tmp_path / "b")
    assert [p.read_bytes() for p in paths] == [p.read_bytes() for p in again]
    assert "SOURCE_DATE_EPOCH" not in __import__("os").environ
    meta = json.loads((tmp_path / "a" / "fig7_scores.json").read_text())
    assert meta["profile"] == "smoke" and meta["notebook"] == "16_fig7" and meta["files"] == ["fig7_scores.png", "fig7_scores.pdf"]
    assert save_figure(_figure("other"), "fig7_scores", tmp_path / "c")[0].read_bytes() != paths[0].read_bytes()


def test_save_figure_rejects_bad_input(tmp_path):
    with pytest.raises(COFTADInputError, match="Figure"):
        save_figure("not a figure", "x", tmp_path)
    with pytest.raises(COFTADInputError, match="name"):
        save_figure(_figure(), "../escape", tmp_path)


def _results(values: dict[tuple[str, str], list[float]]) -> pd.DataFrame:
    v = versions()
    rows = []
    for (method, task), aurocs in values.items():
        for seed, a in enumerate(aurocs):
            rows.append({"setting": "5-shot", "method": method, "task": task, "seed": seed, "auroc": a,
                         "status": "ok", "profile": "smoke", "backbone": "efficientnet_lite0",
                         "dataset": "flowers17", **{k: v[k] for k in VERSION_KEYS}})
    return pd.DataFrame(rows)


def test_report_links_everything_and_lists_differences(tmp_path):
    out = tmp_path / "results"
    # Daffodil/Tulip: paper 74.13 for coftad_np; ours 74.5 +- ~0.4 -> within spread.
    # Tulip/Daffodil: paper 75.47; ours 60.0 +- 1.0 -> flagged.
    df = _results({("coftad_np", "Daffodil/Tulip"): [0.745, 0.740, 0.750],
                   ("coftad_np", "Tulip/Daffodil"): [0.59, 0.60, 0.61]})
    write_table(df, "I", out_dir=out / "tables")
    save_figure(_figure(), "fig5_qualitative", out / "figures", profile="smoke")
    record_status(out, df, notebook="01_flowers17", tables=["I"], figures=["fig5_qualitative"])
    record_status(out, notebook="05_industrial",
                  missing=[{"dataset": "aitex", "message": "AITEX: download from https://www.aitex.es"}])
    report = write_report(out).read_text()
    for link in ("tables/table_I.md", "tables/table_I.csv", "figures/fig5_qualitative.png",
                 "figures/fig5_qualitative.pdf"):
        assert f"]({link})" in report
    assert "| I |" in report and "smoke" in report and "efficientnet_lite0" in report
    assert "| I | 5-shot | COFT-AD (w/ np) | Tulip/Daffodil | 60.0 ± 1.0 | 75.47 | -15.5 |" in report
    assert "| I | 5-shot | COFT-AD (w/ np) | Daffodil/Tulip |" not in report
    assert "aitex" in report and "www.aitex.es" in report and "05_industrial" in report
    assert write_report(out).read_text() == report  # no timestamps: rewriting gives the same page


def test_report_on_empty_folder(tmp_path):
    text = write_report(tmp_path).read_text()
    assert "No tables found." in text and "No figures found." in text
