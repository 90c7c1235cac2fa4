"""PatchCoreDetector against a minimal, independent PatchCore [8] written out below.

The reference takes only the Lite0 weights from the project; it picks its layers by measured
stride, normalises with the weights' own constants and decodes files with PIL, so a difference in
the project's input pipeline, normalisation, stage choice, pooling, upsampling, dtype or distance
shows up as a score difference. Generated 64 px textures always; MVTec bottle at 224 px when
../shared/data is on the machine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from coftad_lib.backbones import build_backbone
from coftad_lib.datasets.synthetic import make_texture_arrays
from coftad_lib.methods.patchcore import PatchCoreDetector

BOTTLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mvtec_ad" / "bottle"
COMMON = dict(backbone="efficientnet_lite0", device="cpu", progress=False, seed=0)


@torch.no_grad()
def reference_patchcore(net: torch.nn.Module, train: torch.Tensor, test: torch.Tensor) -> np.ndarray:
    """Minimal PatchCore on (N, 3, S, S) [0, 1] images: max over test patches of the L2 distance
    to the nearest patch of all training images; patches = 3x3-averaged stride-8 map concatenated
    with the 3x3-averaged, bilinearly upsampled stride-16 map; no coreset, float32."""
    def feats(x: torch.Tensor) -> torch.Tensor:
        h = net.stem((x - 0.5) / 0.5)  # EfficientNet-Lite weights expect inputs in [-1, 1]
        last_at = {}
        for stage in net.stages:
            h = stage(h)
            last_at[x.shape[-1] // h.shape[-1]] = h  # the deepest stage output at each stride
        a, b = (F.avg_pool2d(last_at[s], 3, stride=1, padding=1) for s in (8, 16))
        b = F.interpolate(b, size=a.shape[-2:], mode="bilinear", align_corners=False)
        return torch.cat([a, b], 1).flatten(2).transpose(1, 2)  # (N, P, C)

    net.eval()
    bank = feats(train).flatten(0, 1)
    return np.array([torch.cdist(p, bank).min(1).values.max().item() for p in feats(test)])


def _u8_to_tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).permute(0, 3, 1, 2).float() / 255.0


@pytest.fixture(scope="module")
def textures():
    train, test, labels = make_texture_arrays(n_train=4, n_normal=6, n_anom=6, size=64, seed=3)
    return train, test, labels


@pytest.fixture(scope="module")
def lite0():
    return build_backbone("efficientnet_lite0")


def test_matches_reference_on_generated_textures(textures, lite0):
    train, test, _ = textures
    ref = reference_patchcore(lite0, _u8_to_tensor(train), _u8_to_tensor(test))
    det = PatchCoreDetector(image_size=64, **COMMON).fit(train)
    np.testing.assert_allclose(det.score_samples(test), ref, rtol=1e-4)
    # The earlier default (border means over pixels inside the map only) is caught by this test.
    old = PatchCoreDetector(image_size=64, count_include_pad=False, **COMMON).fit(train)
    assert not np.allclose(old.score_samples(test), ref, rtol=1e-2)


def test_map_stages_have_strides_8_and_16(lite0):
    maps = lite0.feature_maps(torch.rand(1, 3, 64, 64))
    assert [m.shape[-1] for m in maps] == [8, 4] and [m.shape[1] for m in maps] == list(lite0.map_channels)


def test_anomaly_maps_upsample_patch_maps(textures):
    train, test, labels = textures
    det = PatchCoreDetector(image_size=64, **COMMON).fit(train)
    grid = det.patch_maps(test)
    assert grid.shape == (len(test), 8, 8)
    np.testing.assert_allclose(grid.reshape(len(test), -1).max(1), det.score_samples(test), rtol=1e-6)
    maps = det.anomaly_maps(test)
    assert maps.shape == (len(test), 64, 64) and maps.dtype == np.float64
    want = F.interpolate(torch.from_numpy(grid)[:, None], size=(64, 64), mode="bilinear", align_corners=False)
    np.testing.assert_allclose(maps, want[:, 0].numpy(), rtol=1e-5)
    assert det.anomaly_maps(test[:2], size=(30, 50)).shape == (2, 30, 50)
    # Each anomalous image's map peaks inside its red square: red pixels there.
    for m, img in zip(maps[labels == 1], test[labels == 1], strict=True):
        y, x = np.unravel_index(m.argmax(), m.shape)
        ys, xs = np.nonzero((img[..., 0] > 240) & (img[..., 1] < 60))
        assert ys.min() - 8 <= y <= ys.max() + 8 and xs.min() - 8 <= x <= xs.max() + 8


@pytest.mark.skipif(not (BOTTLE / "train" / "good").is_dir(), reason="../shared/data/mvtec_ad/bottle absent")
def test_matches_reference_on_mvtec_bottle_files(lite0):
    """Real 900 px PNGs through the project's file pipeline vs PIL bilinear resizing in the reference."""
    train = sorted((BOTTLE / "train" / "good").glob("*.png"))[:2]
    test = sorted((BOTTLE / "test" / "good").glob("*.png"))[:3] + sorted((BOTTLE / "test" / "broken_small").glob("*.png"))[:3]

    def load(paths: list[Path]) -> torch.Tensor:
        arrs = [np.asarray(Image.open(p).convert("RGB").resize((224, 224), Image.Resampling.BILINEAR)) for p in paths]
        return _u8_to_tensor(np.stack(arrs))

    ref = reference_patchcore(lite0, load(train), load(test))
    det = PatchCoreDetector(image_size=224, **COMMON).fit(train)
    got = det.score_samples(test)
    np.testing.assert_allclose(got, ref, rtol=2e-2)
    assert (np.argsort(got) == np.argsort(ref)).all()
