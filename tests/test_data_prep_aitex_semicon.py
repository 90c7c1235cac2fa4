"""AITEX patch cutting and SemiCon volume synthesis / slicing (paper Sec. IV-A data preparation).

The AITEX fixture (:mod:`aitex_fixture`) has the official release's quirks; the tests of how each is
handled, and the test on the real files, are in ``test_data_prep_aitex_release.py``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
from aitex_fixture import (
    N_NORMAL_SCANS,
    band_mask,
    gray_of,
    make_aitex_root,
    manifest_rows,
    write_png,
)
from PIL import Image

from coftad_lib.datasets import aitex, semicon
from coftad_lib.errors import COFTADInputError, DatasetNotFoundError, ImageReadError
from data_prep import aitex_crops, semicon_slices, semicon_synth
from data_prep.aitex_crops import prepare_crops
from data_prep.semicon_slices import read_volume, slice_volumes
from data_prep.semicon_synth import make_synthetic_volumes

# ------------------------------------------------------------------ AITEX


@pytest.fixture
def aitex_root(tmp_path: Path) -> Path:
    return make_aitex_root(tmp_path / "aitex")


def test_aitex_crops_layout_and_defect_patches(aitex_root: Path, tmp_path: Path):
    out = prepare_crops(aitex_root, tmp_path / "crops", seed=0, verbose=False)
    rows = manifest_rows(out)
    normal = [r for r in rows if r["label"] == "0"]
    defect = {r["source"]: r for r in rows if r["label"] == "1"}
    assert len(normal) == N_NORMAL_SCANS * 5 and len(list((out / "normal").glob("*.png"))) == N_NORMAL_SCANS * 5
    assert set(defect) == {"Defect_images/0010_002_00.png", "Defect_images/0011_019_01.png",
                           "Defect_images/0094_027_05.png"}
    for r in rows:
        with Image.open(out / r["file"]) as im:
            assert im.size == (256, 256) and im.mode == "L"
    edge = defect["Defect_images/0010_002_00.png"]
    assert int(edge["x"]) == 1024 - 256 and int(edge["y"]) == 0  # clamped to the image
    assert int(edge["defect_px_in_patch"]) == int(edge["defect_px_total"]) == 60 * 40
    assert edge["kind"] == "defect_002"
    src = np.asarray(Image.open(aitex_root / edge["source"]))
    patch = np.asarray(Image.open(out / edge["file"]))
    assert np.array_equal(patch, src[:, 1024 - 256 :])
    split = defect["Defect_images/0011_019_01.png"]
    # bbox of both masks spans x 300..420, so the patch centred on it covers both parts
    assert int(split["x"]) == 360 - 128 and int(split["defect_px_in_patch"]) == 400 + 600
    for r in normal:  # every normal patch is the source's grey pixels at the recorded position
        src = gray_of(aitex_root / r["source"])
        x, y = int(r["x"]), int(r["y"])
        assert 0 <= x <= src.shape[1] - 256 and 0 <= y <= src.shape[0] - 256
        assert np.array_equal(np.asarray(Image.open(out / r["file"])), src[y : y + 256, x : x + 256])


def test_aitex_crops_deterministic_and_seeded(aitex_root: Path, tmp_path: Path):
    a = prepare_crops(aitex_root, tmp_path / "a", seed=3, verbose=False)
    b = prepare_crops(aitex_root, tmp_path / "b", seed=3, verbose=False)
    c = prepare_crops(aitex_root, tmp_path / "c", seed=4, verbose=False)
    assert (a / "manifest.csv").read_bytes() == (b / "manifest.csv").read_bytes()
    for r in manifest_rows(a):
        assert (a / r["file"]).read_bytes() == (b / r["file"]).read_bytes()
    xs = lambda out: [r["x"] for r in manifest_rows(out) if r["label"] == "0"]  # noqa: E731
    assert xs(a) != xs(c)


def test_aitex_crops_idempotent_resume_and_stale_files(aitex_root: Path, tmp_path: Path, monkeypatch):
    out = tmp_path / "crops"
    # an interrupted run leaves no manifest, so the loader refuses the folder
    calls = {"n": 0}
    real_save = aitex_crops.save_png_atomic

    def dying_save(img, path):
        calls["n"] += 1
        if calls["n"] > 4:
            raise KeyboardInterrupt
        real_save(img, path)

    monkeypatch.setattr(aitex_crops, "save_png_atomic", dying_save)
    with pytest.raises(KeyboardInterrupt):
        prepare_crops(aitex_root, out, seed=0, verbose=False)
    assert not (out / "manifest.csv").exists()
    with pytest.raises(DatasetNotFoundError, match="manifest.csv"):
        aitex.load(out, shots=2, seed=0, n_test_normal=5)
    monkeypatch.setattr(aitex_crops, "save_png_atomic", real_save)
    prepare_crops(aitex_root, out, seed=0, verbose=False)
    clean = prepare_crops(aitex_root, tmp_path / "clean", seed=0, verbose=False)
    assert (out / "manifest.csv").read_bytes() == (clean / "manifest.csv").read_bytes()

    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    manifest_stamp = (out / "manifest.csv").stat().st_mtime_ns
    prepare_crops(aitex_root, out, seed=0, verbose=False)  # finished: nothing is rewritten
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == stamps
    assert (out / "manifest.csv").stat().st_mtime_ns == manifest_stamp

    prepare_crops(aitex_root, out, seed=1, verbose=False)  # new settings: old patches go
    listed = {out / r["file"] for r in manifest_rows(out)}
    assert set(out.rglob("*.png")) == listed


def test_aitex_crops_errors(aitex_root: Path, tmp_path: Path, capsys):
    with pytest.raises(DatasetNotFoundError, match="Mask_images"):
        prepare_crops(tmp_path / "empty", tmp_path / "o1", verbose=False)
    with pytest.raises(COFTADInputError, match="0100_025_08.*without a mask.*--skip-unmasked"):
        prepare_crops(aitex_root, tmp_path / "o2", skip_unmasked=(), verbose=False)
    with pytest.raises(COFTADInputError, match=r"0106_010_03_mask.png: mask has no defect pixels.*skip_unmasked"):
        prepare_crops(aitex_root, tmp_path / "o2", skip_unmasked=("0100_025_08",), verbose=False)
    assert aitex_crops.main(["--root", str(aitex_root), "--out", str(tmp_path / "o5"),
                             "--skip-unmasked", "0100_025_08"]) == 2
    assert "0106_010_03_mask.png: mask has no defect pixels" in capsys.readouterr().err
    truncated = aitex_root / "Mask_images" / "0094_027_05_mask.png"
    good = truncated.read_bytes()
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(ImageReadError, match="0094_027_05_mask.png"):
        prepare_crops(aitex_root, tmp_path / "o6", verbose=False)
    truncated.write_bytes(good)
    bad = write_png(aitex_root / "Mask_images" / "0010_002_00_mask.png", band_mask(1000, 900, 950, 0, 10))
    with pytest.raises(COFTADInputError, match="1000x256.*1024x256") as info:
        prepare_crops(aitex_root, tmp_path / "o3", verbose=False)
    assert str(bad) in str(info.value)
    assert aitex_crops.main(["--root", str(aitex_root), "--out", str(tmp_path / "o4")]) == 2


def test_aitex_crops_feed_the_loader(aitex_root: Path, tmp_path: Path):
    assert aitex_crops.main(["--root", str(aitex_root), "--out", str(tmp_path / "crops"), "--seed", "0"]) == 0
    task = aitex.load(tmp_path / "crops", shots=5, seed=0, n_test_normal=10)
    assert task.test_labels.tolist() == [0] * 10 + [1] * 3
    assert set(task.train).isdisjoint(task.test)
    with pytest.raises(COFTADInputError, match="n_test_normal=600"):
        aitex.load(tmp_path / "crops", shots=5, seed=0)


# ------------------------------------------------------------------ SemiCon


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> tuple[Path, float]:
    """Six volumes of the brief's size, and how long making them took."""
    out = tmp_path_factory.mktemp("semicon") / "volumes"
    t0 = time.perf_counter()
    make_synthetic_volumes(out, n_volumes=6, seed=0, shape=(64, 128, 128), verbose=False)
    return out, time.perf_counter() - t0


def test_synthetic_volumes_structure_and_speed(synth):
    out, seconds = synth
    assert seconds < 15, f"6 volumes of 64x128x128 took {seconds:.1f} s"
    vol = tifffile.imread(out / "vol_000.tif")
    solder = tifffile.imread(out / "vol_000_solder.tif").astype(bool)
    assert vol.dtype == np.uint16 and vol.shape == (64, 128, 128)
    voids = [tifffile.imread(out / f"vol_{i:03d}_void.tif").astype(bool) for i in range(6)]
    assert sum(v.any() for v in voids) >= 3
    assert all(not (v & ~tifffile.imread(out / f"vol_{i:03d}_solder.tif").astype(bool)).any() for i, v in enumerate(voids))
    # solder is bright, voids are dark inside it, and the noise makes repeated values rare
    i = next(i for i, v in enumerate(voids) if v.sum() > 50)
    vol_i = tifffile.imread(out / f"vol_{i:03d}.tif").astype(float)
    sol_i = tifffile.imread(out / f"vol_{i:03d}_solder.tif").astype(bool)
    assert vol_i[sol_i & ~voids[i]].mean() > vol_i[voids[i]].mean() + 0.2 * 65535
    assert vol[solder].mean() > vol[~solder].mean() + 0.3 * 65535
    assert len(np.unique(vol)) > 1000


def test_synthetic_volumes_deterministic(tmp_path: Path):
    kw = dict(shape=(16, 48, 48), pitch=16, void_prob=0.8, verbose=False)
    a = make_synthetic_volumes(tmp_path / "a", 2, seed=5, fmt="npy", **kw)
    b = make_synthetic_volumes(tmp_path / "b", 2, seed=5, fmt="npy", **kw)
    c = make_synthetic_volumes(tmp_path / "c", 2, seed=6, fmt="npy", **kw)
    assert np.array_equal(np.load(a[1]), np.load(b[1]))
    assert not np.array_equal(np.load(a[1]), np.load(c[1]))
    more = make_synthetic_volumes(tmp_path / "d", 3, seed=5, fmt="npy", **kw)
    assert np.array_equal(np.load(more[1]), np.load(a[1]))  # adding volumes keeps the first ones
    nii = make_synthetic_volumes(tmp_path / "e", 1, seed=5, fmt="nii.gz", **kw)
    assert np.array_equal(read_volume(nii[0]), np.load(a[0]))
    assert semicon_synth.main(["--out", str(tmp_path / "f"), "--n-volumes", "1", "--shape", "8", "32", "32"]) == 0


def _handmade(vdir: Path, suffix: str = ".tif") -> None:
    """4 slices of a 20x20 scan with one 10x10 joint; voids of 0, 0, 5 and 1 px."""
    vol = np.zeros((4, 20, 20), np.uint16)
    solder = np.zeros((4, 20, 20), np.uint8)
    void = np.zeros((4, 20, 20), np.uint8)
    solder[:, 5:15, 5:15] = 1
    vol[:, 5:15, 5:15] = 50000
    void[2, 8, 8:13] = 1
    void[3, 9, 9] = 1
    vol[void > 0] = 1000
    vdir.mkdir(parents=True, exist_ok=True)
    for name, arr in (("scan", vol), ("scan_solder", solder), ("scan_void", void)):
        if suffix == ".tif":
            tifffile.imwrite(vdir / f"{name}.tif", arr, photometric="minisblack")
        else:
            np.save(vdir / f"{name}.npy", arr)


def test_slices_labels_from_masks(tmp_path: Path):
    _handmade(tmp_path / "v", ".npy")
    out = slice_volumes(tmp_path / "v", tmp_path / "s", threshold=0.02, verbose=False)
    rows = {int(r["slice_index"]): r for r in manifest_rows(out)}
    assert [rows[i]["label"] for i in range(4)] == ["0", "0", "1", "0"]
    assert float(rows[2]["ratio"]) == pytest.approx(0.05) and float(rows[3]["ratio"]) == pytest.approx(0.01)
    assert rows[2]["file"] == "defect/scan_ax0_0002.png" and rows[2]["volume"] == "scan"
    img = np.asarray(Image.open(out / rows[2]["file"]))
    assert img.shape == (20, 20) and img[8, 9] < img[6, 6]  # the void is dark in the slice
    lower = slice_volumes(tmp_path / "v", tmp_path / "s2", threshold=0.005, verbose=False)
    assert [r["label"] for r in manifest_rows(lower)] == ["0", "0", "1", "1"]
    bump = semicon_slices.slice_ratios(np.load(tmp_path / "v/scan_solder.npy"), np.load(tmp_path / "v/scan_void.npy"), 0, "bump")
    assert bump[2][2] == pytest.approx(0.05)


def test_slices_labels_from_csv(tmp_path: Path):
    _handmade(tmp_path / "v")
    for m in ("scan_solder.tif", "scan_void.tif"):
        (tmp_path / "v" / m).unlink()
    with pytest.raises(COFTADInputError, match="scan_solder.tif"):
        slice_volumes(tmp_path / "v", tmp_path / "s", verbose=False)
    labels = tmp_path / "labels.csv"
    labels.write_text("volume,slice,label\nscan,0,normal\nscan,3,defect\n")
    out = slice_volumes(tmp_path / "v", tmp_path / "s", labels_csv=labels, verbose=False)
    assert [(r["slice_index"], r["label"], r["ratio"]) for r in manifest_rows(out)] == [("0", "0", ""), ("3", "1", "")]
    labels.write_text("volume,slice,label\nscan,9,1\n")
    with pytest.raises(COFTADInputError, match=r"\[9\]"):
        slice_volumes(tmp_path / "v", tmp_path / "s3", labels_csv=labels, verbose=False)


def test_slices_input_errors(tmp_path: Path):
    _handmade(tmp_path / "v")
    tifffile.imwrite(tmp_path / "v" / "scan_void.tif", np.zeros((4, 20, 21), np.uint8), photometric="minisblack")
    with pytest.raises(COFTADInputError, match=r"scan_void.tif.*\(4, 20, 21\)"):
        slice_volumes(tmp_path / "v", tmp_path / "s", verbose=False)
    np.save(tmp_path / "flat.npy", np.zeros((5, 5)))
    with pytest.raises(COFTADInputError, match="flat.npy: expected a 3D volume"):
        read_volume(tmp_path / "flat.npy")
    data = (tmp_path / "v" / "scan.tif").read_bytes()
    (tmp_path / "v" / "scan.tif").write_bytes(data[: len(data) // 3])
    with pytest.raises(COFTADInputError, match="scan.tif: cannot read"):
        read_volume(tmp_path / "v" / "scan.tif")
    with pytest.raises(DatasetNotFoundError):
        slice_volumes(tmp_path / "nowhere", tmp_path / "s", verbose=False)
    assert semicon_slices.main(["--volumes", str(tmp_path / "v"), "--out", str(tmp_path / "s4")]) == 2


def test_slices_interrupted_then_resumed(tmp_path: Path, monkeypatch):
    make_synthetic_volumes(tmp_path / "v", 2, seed=1, shape=(24, 64, 64), pitch=16, void_prob=0.8, verbose=False)
    calls = {"n": 0}
    real_save = semicon_slices.save_png_atomic

    def dying_save(img, path):
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt
        real_save(img, path)

    monkeypatch.setattr(semicon_slices, "save_png_atomic", dying_save)
    with pytest.raises(KeyboardInterrupt):
        slice_volumes(tmp_path / "v", tmp_path / "s", verbose=False)
    with pytest.raises(DatasetNotFoundError, match="manifest.csv"):
        semicon.load(tmp_path / "s", 2, 0, n_test_normal=3, n_test_defect=1)
    monkeypatch.setattr(semicon_slices, "save_png_atomic", real_save)
    slice_volumes(tmp_path / "v", tmp_path / "s", verbose=False)
    clean = slice_volumes(tmp_path / "v", tmp_path / "clean", verbose=False)
    assert (tmp_path / "s" / "manifest.csv").read_bytes() == (clean / "manifest.csv").read_bytes()
    stamp = (clean / "manifest.csv").stat().st_mtime_ns
    slice_volumes(tmp_path / "v", clean, verbose=False)
    assert (clean / "manifest.csv").stat().st_mtime_ns == stamp


def test_synthetic_slices_feed_the_loader(synth, tmp_path: Path):
    vdir, _ = synth
    assert semicon_slices.main(["--volumes", str(vdir), "--out", str(tmp_path / "s")]) == 0
    rows = manifest_rows(tmp_path / "s")
    n_def = sum(r["label"] == "1" for r in rows)
    assert 0.1 * len(rows) < n_def < 0.7 * len(rows)  # both classes are well represented
    assert all((float(r["ratio"]) > semicon_slices.DEFAULT_THRESHOLD) == (r["label"] == "1") for r in rows)
    task = semicon.load(tmp_path / "s", shots=5, seed=0, n_test_normal=50, n_test_defect=20)
    assert task.test_labels.tolist() == [0] * 50 + [1] * 20
    assert set(task.test_kinds) == {"normal", "void"}
    with pytest.raises(COFTADInputError, match=r"n_test_normal=500.*smaller n_test_normal"):
        semicon.load(tmp_path / "s", shots=5, seed=0)
