"""AITEX patch cutting meets the quirks of the official release (paper Sec. IV-A).

The generated folder (:mod:`aitex_fixture`) carries one file per quirk; the ``realdata`` test runs
on the official files when ``$COFTAD_AITEX_ROOT`` names them (they are too large for
../shared/data) and is skipped otherwise.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
from aitex_fixture import band_mask, gray_of, make_aitex_root, manifest_rows, scan, write_png
from PIL import Image

from coftad_lib.datasets import aitex, load_task
from data_prep.aitex_crops import prepare_crops


def test_aitex_crops_release_quirks(tmp_path: Path):
    """Each quirk of the official files is handled and written down (manifest note / left_out.csv)."""
    aitex_root = make_aitex_root(tmp_path / "aitex")
    out = prepare_crops(aitex_root, tmp_path / "crops", seed=0, verbose=False)
    rows = {r["source"]: r for r in manifest_rows(out) if r["label"] == "1"}
    notes = {r["source"]: r["note"] for r in manifest_rows(out)}
    # 1. no mask / all-black mask: left out, with the reason
    with open(out / "left_out.csv", newline="") as fh:
        left = {r["source"]: r["reason"] for r in csv.DictReader(fh)}
    assert set(left) == {"Defect_images/0100_025_08.png", "Defect_images/0106_010_03.png"}
    assert "no mask" in left["Defect_images/0100_025_08.png"]
    assert "empty mask" in left["Defect_images/0106_010_03.png"]
    # 2. two masks: their union
    assert "union of 0011_019_01_mask1.png + 0011_019_01_mask2.png" in notes["Defect_images/0011_019_01.png"]
    # 3. narrower scan: the window is clamped inside its own width
    narrow = rows["Defect_images/0094_027_05.png"]
    assert int(narrow["x"]) == 760 - 256 and "scan 760x256, not 4096x256" in narrow["note"]
    # 4. grey + alpha scan and mask: the grey channel, alpha dropped; the faint rim is below threshold
    assert int(narrow["defect_px_in_patch"]) == int(narrow["defect_px_total"]) == 40 * 10
    assert "scan mode LA" in narrow["note"] and "mask mode LA" in narrow["note"]
    patch = np.asarray(Image.open(out / narrow["file"]))
    assert patch.dtype == np.uint8 and patch.ndim == 2
    assert np.array_equal(patch, gray_of(aitex_root / narrow["source"])[:, 760 - 256 :])
    assert "scan mode LA" in notes["NODefect_images/2311517-195063u/0004_000_04.png"]
    assert "scan mode I;16" in notes["NODefect_images/2311517-195063u/0005_000_04.png"]
    plain = notes["NODefect_images/2306881-210020u/0001_000_00.png"]
    assert plain == "scan 1536x256, not 4096x256: patch kept inside it"
    # the loader hands all of it on in task.info
    task = aitex.load(out, shots=2, seed=0, n_test_normal=10)
    assert task.info["n_test_defect"] == 3 and len(task.info["left_out"]) == 2
    assert task.info["left_out"][0].startswith("Defect_images/0100_025_08.png: no mask")
    assert task.info["notes"]["Defect_images/0094_027_05.png"] == narrow["note"]


def test_aitex_crops_split_defect_falls_back_to_densest_window(tmp_path: Path):
    """Two defect parts far apart: the bbox-centred window would hold neither, so the densest one is taken."""
    root = tmp_path / "aitex"
    write_png(root / "NODefect_images" / "f" / "0001_000_00.png", scan(1280, 1))
    write_png(root / "Defect_images" / "0001_002_00.png", scan(1024, 2))
    write_png(root / "Mask_images" / "0001_002_00_mask1.png", band_mask(1024, 10, 20, 100, 110))  # 100 px
    write_png(root / "Mask_images" / "0001_002_00_mask2.png", band_mask(1024, 980, 1000, 100, 110))  # 200 px
    out = prepare_crops(root, tmp_path / "crops", seed=0, verbose=False)
    (row,) = [r for r in manifest_rows(out) if r["label"] == "1"]
    assert int(row["defect_px_in_patch"]) == 200 and int(row["defect_px_total"]) == 300
    assert int(row["x"]) == 1000 - 256  # first (leftmost) window holding all of the larger part
    assert "window with most defect pixels taken" in row["note"]


@pytest.mark.realdata
def test_aitex_crops_real_release(tmp_path: Path):
    """The official AITEX files, at ``$COFTAD_AITEX_ROOT`` (too large for ../shared/data)."""
    root = Path(os.environ.get("COFTAD_AITEX_ROOT", "/nonexistent"))
    if not (root / "Defect_images").is_dir():
        pytest.skip("set COFTAD_AITEX_ROOT to the official AITEX folder (Defect_images/, ...) to run this")
    out = prepare_crops(root, tmp_path / "crops", seed=0, verbose=False)
    rows = manifest_rows(out)
    normal = [r for r in rows if r["label"] == "0"]
    defect = {Path(r["source"]).stem: r for r in rows if r["label"] == "1"}
    with open(out / "left_out.csv", newline="") as fh:
        left = [Path(r["source"]).stem for r in csv.DictReader(fh)]
    assert left == ["0100_025_08", "0106_010_03"]  # no mask; all-black mask
    n_defect_scans = len(list((root / "Defect_images").glob("*.png")))
    assert len(defect) == n_defect_scans - 2 == 104  # the paper: 105
    assert len(normal) == 5 * len(list((root / "NODefect_images").rglob("*.png")))  # 705 from 141 scans
    assert all(int(r["defect_px_in_patch"]) > 0 for r in defect.values())
    for stem in ("0044_019_04", "0097_030_03"):
        assert f"union of {stem}_mask1.png + {stem}_mask2.png" in defect[stem]["note"]
    assert int(defect["0094_027_05"]["x"]) <= 3796 - 256 and "scan 3796x256" in defect["0094_027_05"]["note"]
    assert sum("scan mode LA" in r["note"] for r in rows) == 20 * 5 + 11
    for r in rows:
        with Image.open(out / r["file"]) as im:
            assert (im.size, im.mode) == ((256, 256), "L")
    task = load_task("aitex", out, shots=10, seed=0)
    assert int((task.test_labels == 0).sum()) == 600 and int(task.test_labels.sum()) == 104
    assert len(task.train) == 10 and set(task.train).isdisjoint(task.test)
    assert len(set(task.test_kinds) - {"normal"}) == 12 and len(task.info["left_out"]) == 2
