"""CIFAR-C corruption generator: official constants, strength, layout and loader round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from coftad_lib.datasets import cifar_c
from coftad_lib.datasets.corruptions import CIFAR_C_SEVERITY_CONSTANTS, CORRUPTIONS, corrupt
from coftad_lib.errors import COFTADInputError
from data_prep.cifar_c import generate, main

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def test_constants_are_the_cifar_ones_not_imagenet():
    # Values read from hendrycks/robustness ImageNet-C/create_c/make_cifar_c.py (severity 4 = index 3).
    c = CIFAR_C_SEVERITY_CONSTANTS
    assert c["gaussian_noise"] == [0.04, 0.06, 0.08, 0.09, 0.10]  # ImageNet-C: .08 .. .38
    assert c["shot_noise"][3] == 75
    assert c["impulse_noise"][3] == 0.05
    assert c["defocus_blur"][3] == (1, 0.2)
    assert c["contrast"][3] == 0.3
    assert c["brightness"][3] == 0.2
    assert c["pixelate"][3] == 0.75
    assert c["jpeg_compression"][3] == 50
    assert c["elastic_transform"][3] == pytest.approx((3.2, 1.28, 1.6))
    assert len(cifar_c.DEFAULT_CORRUPTIONS) == 9
    assert set(cifar_c.DEFAULT_CORRUPTIONS) <= set(CORRUPTIONS)


def _grey(n=64, v=128):
    return np.full((n, 32, 32, 3), v, dtype=np.uint8)


def _natural(n=32, seed=0):
    """Smooth random colour images with edges, so blur and pixelation have something to act on."""
    rng = np.random.default_rng(seed)
    x = ndimage.gaussian_filter(rng.uniform(0, 255, (n, 32, 32, 3)), (0, 1.5, 1.5, 0))
    x = (x - x.mean(axis=(1, 2, 3), keepdims=True)) * 3 + 128
    x[:, 8:20, 8:20] += 60
    return np.clip(x, 0, 255).astype(np.uint8)


def test_noise_strength_matches_constants():
    rng = np.random.default_rng(0)
    g = corrupt(_grey(), "gaussian_noise", 4, rng).astype(float)
    assert g.std() == pytest.approx(0.09 * 255, rel=0.05)
    s = corrupt(_grey(), "shot_noise", 4, rng).astype(float)
    # Var(Poisson(x c) / c) = x / c for x = 128/255, c = 75
    assert s.std() == pytest.approx(np.sqrt((128 / 255) / 75) * 255, rel=0.05)
    imp = corrupt(_grey(), "impulse_noise", 4, rng)
    assert (imp != 128).mean() == pytest.approx(0.05, abs=0.005)
    assert set(np.unique(imp)) == {0, 128, 255}


def test_deterministic_corruptions_do_what_the_constants_say():
    x = _natural()
    rng = np.random.default_rng(0)
    con = corrupt(x, "contrast", 4, rng).astype(float)
    ratio = con.std(axis=(1, 2)) / x.astype(float).std(axis=(1, 2))
    assert np.allclose(ratio, 0.3, atol=0.02)
    # contrast shrinks towards each channel's own mean, so a colour cast survives
    tinted = np.clip(x.astype(int) * [0.5, 1.0, 0.3] + [100, 0, 20], 0, 255).astype(np.uint8)
    out = corrupt(tinted, "contrast", 4, rng).astype(float)
    assert np.allclose(out.mean(axis=(1, 2)), tinted.mean(axis=(1, 2)), atol=1.0)
    dark = _grey(4, 100)
    b = corrupt(dark, "brightness", 4, rng)
    assert np.all(b == int((100 / 255 + 0.2) * 255))  # V + 0.2 on a grey pixel, truncated
    p = corrupt(x, "pixelate", 4, rng)
    assert not np.array_equal(p, x) and p.shape == x.shape
    d = corrupt(x, "defocus_blur", 4, rng).astype(float)
    assert np.abs(np.diff(d, axis=2)).mean() < np.abs(np.diff(x.astype(float), axis=2)).mean()


@pytest.mark.parametrize("name", [n for n in CORRUPTIONS if n != "elastic_transform"])
def test_severity_increases_distortion(name):
    # elastic_transform is left out: its official constants trade affine jitter (largest at
    # severity 1) for local warping, so pixel change is not monotone in severity.
    x = _natural()
    err = [
        np.abs(corrupt(x, name, s, np.random.default_rng(s)).astype(float) - x).mean()
        for s in range(1, 6)
    ]
    steps = list(zip(err, err[1:], strict=False))
    if name == "pixelate":
        # int(32 * c) gives 30, 28, 27, 24, 20 px: the 28 -> 27 step is too small to order
        # every image set, so only require no clear decrease there.
        assert all(b > 0.9 * a for a, b in steps) and err[4] > err[3] > err[1] > err[0], err
    else:
        assert all(b > a for a, b in steps), err
    assert err[0] > 0


def test_elastic_moves_pixels_and_is_seeded():
    x = _natural(8)
    a = corrupt(x, "elastic_transform", 4, np.random.default_rng(3))
    b = corrupt(x, "elastic_transform", 4, np.random.default_rng(3))
    assert np.array_equal(a, b)
    assert 1 < np.abs(a.astype(float) - x).mean() < 40


def test_bad_inputs():
    with pytest.raises(COFTADInputError, match="uint8"):
        corrupt(np.zeros((1, 32, 32, 3), np.float32), "contrast", 4, np.random.default_rng())
    with pytest.raises(COFTADInputError, match="severity"):
        corrupt(_grey(1), "contrast", 6, np.random.default_rng())
    with pytest.raises(COFTADInputError, match="frost"):
        corrupt(_grey(1), "frost", 4, np.random.default_rng())


def _clean_folder(root: Path, n_per_class: int = 3) -> dict[str, np.ndarray]:
    """CIFAR-10 test images as <root>/<class>/NNNN.png (the shared-data layout, lossless)."""
    imgs = {}
    x = _natural(10 * n_per_class, seed=1)
    for c, cls in enumerate(cifar_c.CIFAR10_CLASSES):
        (root / cls).mkdir(parents=True)
        for i in range(n_per_class):
            img = x[c * n_per_class + i]
            Image.fromarray(img).save(root / cls / f"{i:04d}.png")
            imgs[f"{cls}/{i:04d}.png"] = img
    return imgs


def test_generate_layout_and_loader_round_trip(tmp_path):
    clean = tmp_path / "cifar10" / "test"
    imgs = _clean_folder(clean)
    out = tmp_path / "c"
    generate(clean, out, severities=[4], limit_per_class=2, seed=0, progress=False)
    meta = json.loads((out / cifar_c.GENERATED_META).read_text())
    assert meta["severities"] == [4] and meta["variant"] == "cifar10c"
    labels = np.load(out / "labels.npy")
    assert labels.shape == (20,) and labels.dtype == np.uint8
    for name in cifar_c.DEFAULT_CORRUPTIONS:
        arr = np.load(out / f"{name}.npy")
        assert arr.shape == (20, 32, 32, 3) and arr.dtype == np.uint8
    # rows line up with labels and source ids
    for r, sid in enumerate(meta["source_ids"]):
        assert cifar_c.CIFAR10_CLASSES[labels[r]] == sid.split("/")[0]

    task = cifar_c.load(out, shots=1, seed=0, task="frog", clean_root=clean)
    assert task.info["aligned_with_clean"] and task.info["shots_from"] == "test"
    assert (task.test_labels == 0).sum() == 1 and (task.test_labels == 1).sum() == 9
    shot = task.train_ids[0]
    assert shot.startswith("frog/") and np.array_equal(task.train[0], imgs[shot])
    for img, kind, tid in zip(task.test, task.test_kinds, task.test_ids, strict=True):
        src = tid if kind == "clean" else tid.split("/", 2)[2]
        assert src != shot and src.startswith("frog/")
        if kind == "clean":
            assert np.array_equal(img, imgs[src])
        elif kind in ("contrast", "pixelate", "jpeg_compression", "defocus_blur", "brightness"):
            # deterministic corruptions: the anomaly is exactly its clean image corrupted at level 4
            expect = corrupt(imgs[src][None], kind, 4, np.random.default_rng())[0]
            assert np.array_equal(img, expect), kind
    # clean_root defaults to the source recorded by the generator
    assert cifar_c.load(out, shots=1, seed=0, task="frog").test_ids == task.test_ids


def test_generate_several_severities_and_missing_one(tmp_path):
    clean = tmp_path / "test"
    imgs = _clean_folder(clean, 1)
    out = tmp_path / "c"
    generate(clean, out, severities=[4, 2], corruptions=["contrast"], progress=False)
    assert np.load(out / "contrast.npy").shape == (20, 32, 32, 3)
    # one image per class: a shot drawn from the test images would leave no test set
    with pytest.raises(COFTADInputError, match="no clean test images"):
        cifar_c.load(out, shots=1, seed=0, task="cat", corruptions=["contrast"], shots_from="test")
    # so take the shot from a clean train folder instead
    _clean_folder(tmp_path / "train", 2)
    for sev in (2, 4):
        task = cifar_c.load(
            out,
            shots=1,
            seed=0,
            task="cat",
            severity=sev,
            corruptions=["contrast"],
            clean_root=clean,
        )
        assert task.info["shots_from"] == "train"
        anomaly = task.test[task.test_labels == 1][0]
        expect = corrupt(imgs["cat/0000.png"][None], "contrast", sev, np.random.default_rng())[0]
        assert np.array_equal(anomaly, expect)
    with pytest.raises(COFTADInputError, match="severity 3"):
        cifar_c.load(
            out, shots=1, seed=0, task="cat", severity=3, corruptions=["contrast"], clean_root=clean
        )


def test_cli_and_overwrite_guard(tmp_path, capsys):
    clean = tmp_path / "test"
    _clean_folder(clean, 2)
    out = tmp_path / "c"
    args = [
        "--clean",
        str(clean),
        "--out",
        str(out),
        "--corruptions",
        "gaussian_noise",
        "fog",
        "--limit-per-class",
        "1",
    ]
    assert main(args) == 0
    assert (out / "fog.npy").is_file() and np.load(out / "fog.npy").shape == (10, 32, 32, 3)
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err
    assert main([*args, "--overwrite", "--seed", "1"]) == 0
    assert main(["--clean", str(clean), "--out", str(out), "--corruptions", "snow"]) == 2


def test_generate_on_real_cifar10_folder(tmp_path):
    clean = SHARED_DATA / "cifar10" / "test"
    if not clean.is_dir():
        pytest.skip("../shared/data/cifar10 not present")
    out = tmp_path / "c"
    generate(
        clean, out, corruptions=["contrast", "gaussian_noise"], limit_per_class=3, progress=False
    )
    task = cifar_c.load(
        out,
        shots=1,
        seed=0,
        task="airplane",
        corruptions=["contrast", "gaussian_noise"],
        clean_root=clean,
        shots_from="test",
    )
    # a shot drawn from the test split leaves it with its corrupted copies: 2 clean + 2 x 2
    assert task.test.shape == (6, 32, 32, 3) and task.train.shape == (1, 32, 32, 3)
    assert task.info["shots_from"] == "test"
    clean_imgs = {
        t: img
        for t, img, k in zip(task.test_ids, task.test, task.test_kinds, strict=True)
        if k == "clean"
    }
    for img, kind, tid in zip(task.test, task.test_kinds, task.test_ids, strict=True):
        if kind == "contrast":
            src = tid.split("/", 2)[2]
            expect = corrupt(clean_imgs[src][None], "contrast", 4, np.random.default_rng())[0]
            assert np.array_equal(img, expect)


def test_real_cifar10_shots_from_the_train_split(tmp_path):
    """The lossless copy has ``train/`` beside ``test/``: shots come from it, every test image stays."""
    clean = SHARED_DATA / "cifar10" / "test"
    if not (SHARED_DATA / "cifar10" / "train").is_dir():
        pytest.skip("../shared/data/cifar10/train not present")
    out = tmp_path / "c"
    generate(clean, out, corruptions=["contrast"], limit_per_class=3, progress=False)
    task = cifar_c.load(out, shots=2, seed=0, task="cat", corruptions=["contrast"], clean_root=clean)
    assert task.info["shots_from"] == "train"
    assert task.test.shape == (6, 32, 32, 3) and task.train.shape == (2, 32, 32, 3)
    assert all((SHARED_DATA / "cifar10" / "train" / i).is_file() for i in task.train_ids), task.train_ids
    assert not set(task.train_ids) & set(task.test_ids)
