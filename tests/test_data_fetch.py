"""The runner's fetch step: which datasets the chosen notebooks need, and that nothing is fetched when told not to."""

from __future__ import annotations

from pathlib import Path

from coftad_lib.reproduce.data_fetch import datasets_needed, fetch_data
from coftad_lib.reproduce.series import build_context, discover, select

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def test_datasets_come_from_the_specs_and_the_prep_notebooks(tmp_path):
    ctx, _ = build_context("smoke", data_root=tmp_path, out_dir=tmp_path / "out")
    names, tasks = datasets_needed(ctx, select(discover(NOTEBOOKS), ["01", "04", "07"]))
    assert names == ["cifar10c", "flowers17", "mvtec"]
    assert "Daffodil/Tulip" in tasks["flowers17"] and "bottle" in tasks["mvtec"]


def test_no_download_lists_what_is_missing_and_fetches_nothing(tmp_path, capsys):
    ctx, _ = build_context("smoke", data_root=tmp_path, out_dir=tmp_path / "out")
    report = fetch_data(ctx, select(discover(NOTEBOOKS), ["04"]), download=False)
    assert not report.ok and report.unavailable[0].name == "flowers17"
    assert list(tmp_path.iterdir()) == []  # nothing written into the data root
    assert "[data]" in capsys.readouterr().out
