"""Bad input as a new user tries it (issue 10, item 5): NaN / inf and 0-255 float tensors, NaN
features, mixed image modes and sizes in one folder, EXIF orientation, a folder of one image."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from coftad_lib.density import GaussianDensity
from coftad_lib.errors import COFTADInputError
from coftad_lib.images import images_to_tensor, load_image
from coftad_lib.methods import make_detector
from coftad_lib.threshold import fit_threshold

TINY = dict(image_size=32, device="cpu", progress=False, seed=0, eval_batch_size=16)


def _u8(n: int = 3, size: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_all_nan_tensor_names_the_input_not_cholesky():
    det = make_detector("pretrained", n_aug=2, **TINY)
    with pytest.raises(COFTADInputError, match=r"images\[0\]: contains NaN"):
        det.fit(torch.full((3, 3, 32, 32), float("nan")))


@pytest.mark.parametrize("kind", ["tensor_list", "array_list", "numpy_batch", "tensor_batch"])
def test_nan_or_inf_anywhere_names_its_index(kind):
    x = torch.rand(4, 3, 32, 32)
    x[2, 1, 5, 7] = float("inf") if kind.startswith("numpy") else float("nan")
    images = {"tensor_list": list(x), "array_list": [a.permute(1, 2, 0).numpy() for a in x],
              "numpy_batch": x.permute(0, 2, 3, 1).numpy(), "tensor_batch": x}[kind]
    with pytest.raises(COFTADInputError, match=r"images\[2\]: contains NaN or infinite"):
        images_to_tensor(images, 32)


@pytest.mark.parametrize("batch", [True, False])
def test_float_0_255_and_normalised_tensors_are_rejected(batch):
    x = torch.from_numpy(_u8()).permute(0, 3, 1, 2).float()
    with pytest.raises(COFTADInputError, match=r"images\[0\].*0-255.*divide by 255"):
        images_to_tensor(x if batch else list(x), 32)
    normalised = (x / 255 - 0.45) / 0.22
    with pytest.raises(COFTADInputError, match="normalised"):
        images_to_tensor(normalised if batch else list(normalised), 32)


def test_good_float_and_uint8_input_are_unchanged():
    u8 = _u8()
    ref = images_to_tensor(u8, 32)
    for same in (torch.from_numpy(u8).permute(0, 3, 1, 2).float() / 255, u8.astype(np.float32) / 255,
                 list(u8), [torch.from_numpy(a).permute(2, 0, 1) for a in u8]):
        torch.testing.assert_close(images_to_tensor(same, 32), ref)
    u16 = u8.astype(np.uint16) * 257  # a 16-bit batch is scaled by 65535, as single 16-bit arrays are
    torch.testing.assert_close(images_to_tensor(u16, 32), ref)


def test_gaussian_density_nan_features_and_singular_covariance():
    feats = torch.randn(10, 4)
    feats[3, 1] = float("nan")
    with pytest.raises(COFTADInputError, match="feature vector 3"):
        GaussianDensity().fit(feats)
    with pytest.raises(COFTADInputError, match="not positive definite"):
        GaussianDensity(l2_normalize=False, eps=0.0).fit(torch.randn(3, 8))
    dens = GaussianDensity().fit(torch.randn(10, 4))
    with pytest.raises(COFTADInputError, match="NaN"):
        dens.score(torch.full((2, 4), float("nan")))


def test_one_folder_of_mixed_modes_and_sizes_loads(tmp_path):
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8))
    gray16 = Image.fromarray((rng.integers(0, 4096, (30, 30)) + 1000).astype(np.uint16))  # a 12-bit scan
    files = {
        "rgb.png": rgb, "gray.png": rgb.convert("L").resize((64, 48)), "rgba.png": rgb.convert("RGBA"),
        "palette.png": rgb.convert("P"), "bw.png": rgb.convert("1"), "la.png": rgb.convert("LA"),
        "cmyk.jpg": rgb.convert("CMYK"), "cmyk.tif": rgb.convert("CMYK").resize((20, 90)),
        "gray16.png": gray16, "float.tif": Image.fromarray(rng.random((33, 17)).astype(np.float32)),
    }
    for name, img in files.items():
        img.save(tmp_path / name)
    assert Image.open(tmp_path / "gray16.png").mode.startswith("I")
    paths = sorted(tmp_path.iterdir())
    x = images_to_tensor(paths, 32)
    assert x.shape == (len(files), 3, 32, 32) and torch.isfinite(x).all() and 0 <= x.min() and x.max() <= 1
    i16 = [p.name for p in paths].index("gray16.png")
    assert x[i16].std() > 0.1  # 12-bit data stretched to 8 bits, not crushed to black
    scores = make_detector("pretrained", n_aug=2, **TINY).fit(paths).score_samples(paths)
    assert np.isfinite(scores).all()


def test_exif_orientation_is_applied(tmp_path):
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = 255  # left half white as stored
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    img.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    img.save(tmp_path / "plain.jpg", quality=95)
    shown = np.asarray(load_image(tmp_path / "phone.jpg"))
    assert shown.shape == (40, 20, 3)  # portrait after the tag is applied
    assert shown[:15].mean() > 200 and shown[25:].mean() < 50  # stored left half is now on top
    assert np.asarray(load_image(tmp_path / "plain.jpg")).shape == (20, 40, 3)


def test_folder_with_one_image(tmp_path):
    """One normal image: Gaussian detectors fit on its N_A >= 2 augmented copies, PatchCore on its
    patches; the threshold falls back to (optimistic) augmented copies, with a warning."""
    Image.fromarray(_u8(1)[0]).save(tmp_path / "only.png")
    one = [tmp_path / "only.png"]
    with pytest.raises(COFTADInputError, match="n_aug >= 2"):
        make_detector("pretrained", n_aug=1, **TINY).fit(one)
    for name, kw in (("pretrained", dict(n_aug=4)), ("patchcore", {})):
        det = make_detector(name, **TINY, **kw).fit(one)
        with pytest.warns(UserWarning, match="augmented copies"):
            fit_threshold(det, one, fpr=0.3)
        assert det.threshold_info["mode"] == "augmented" and det.predict(one).shape == (1,)
        with pytest.raises(COFTADInputError, match="at least 2 shots"):
            fit_threshold(det, one, mode="loo")
