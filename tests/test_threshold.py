"""fit_threshold / predict: the realised false-positive rate on fresh normal data is near the
requested one when the threshold comes from leave-one-out scores, and every registry method
supports it. Toy features and 32-64 px generated textures keep it fast."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from coftad_lib.datasets.synthetic import make_texture_arrays
from coftad_lib.density import GaussianDensity
from coftad_lib.detector import Detector
from coftad_lib.errors import COFTADInputError
from coftad_lib.images import images_to_tensor
from coftad_lib.methods import METHODS, make_detector
from coftad_lib.threshold import conformal_threshold, fit_threshold


class PixelGaussian(Detector):
    """Gaussian-scored toy detector: feature = 2 x 2 average-pooled 8 px image (12-d), Eqs. 7-8."""

    def __init__(self, n_aug: int = 5, seed: int = 0) -> None:
        self.image_size, self.device, self.seed, self.n_aug = 8, torch.device("cpu"), seed, n_aug
        self.density = GaussianDensity(l2_normalize=False, eps=1e-7)
        self.augment = SimpleNamespace(positive=lambda x: x + 1e-3 * torch.randn_like(x))

    def embed(self, images) -> np.ndarray:
        return F.avg_pool2d(images_to_tensor(images, 8), 4).flatten(1).numpy()

    def fit(self, images) -> PixelGaussian:
        x = images_to_tensor(images, 8)
        self.density.fit(torch.from_numpy(self.embed(torch.cat([self.augment.positive(x) for _ in range(self.n_aug)]))))
        return self

    def score_samples(self, images) -> np.ndarray:
        return self.density.score(torch.from_numpy(self.embed(images))).numpy()


def _normals(n: int, rng: np.random.Generator) -> torch.Tensor:
    return torch.from_numpy(0.5 + 0.05 * rng.standard_normal((n, 3, 8, 8))).float()


def test_conformal_rule_and_resolution_limit():
    rng = np.random.default_rng(0)
    thr, limited = conformal_threshold(rng.standard_normal(999), 0.05)
    assert not limited and abs(float((rng.standard_normal(200_000) > thr).mean()) - 0.05) < 0.015
    assert conformal_threshold(np.arange(5.0), 0.05) == (4.0, True)  # 5 scores cannot resolve 5 %
    assert conformal_threshold(np.arange(19.0), 0.05) == (18.0, False)  # r = ceil(20 * 0.95) = 19


def test_loo_threshold_gives_the_requested_false_positive_rate():
    """Realised FPR over 6 draws of 40 shots: near 0.1 with LOO, far above it from in-sample scores."""
    rng = np.random.default_rng(1)
    loo, in_sample = [], []
    for seed in range(6):
        shots, fresh = _normals(40, rng), _normals(3000, rng)
        det = PixelGaussian(seed=seed)
        torch.manual_seed(seed)
        det.fit(shots)
        fit_threshold(det, shots, fpr=0.1)
        assert det.threshold_info["mode"] == "loo" and det.threshold_info["n_scores"] == 40 * 6
        loo.append(det.predict(fresh).mean())
        in_sample.append((det.score_samples(fresh) > np.quantile(det.score_samples(shots), 0.9)).mean())
    assert abs(np.mean(loo) - 0.1) < 0.05, loo  # the max score (FPR ~ 1/241) or a quantile of 0.8 fail
    assert np.mean(in_sample) > 0.25, in_sample  # what a threshold from the shots' own scores gives


def test_patchcore_loo_threshold_on_textures():
    """PatchCore gives a shot distance 0 to itself; LOO over 10 texture shots flags ~1/11 of fresh normals."""
    rates = []
    for seed in range(2):
        train, fresh, _ = make_texture_arrays(n_train=10, n_normal=120, n_anom=0, size=48, seed=seed)
        det = make_detector("patchcore", image_size=48, device="cpu", progress=False, seed=seed).fit(train)
        # The shots lie in their own bank: in-sample scores are far below fresh normal ones.
        assert det.score_samples(train).max() < np.quantile(det.score_samples(fresh), 0.1)
        fit_threshold(det, train, fpr=0.1)
        assert det.threshold_info == dict(fpr=0.1, mode="loo", n_scores=10, n_copies=0, resolution_limited=False)
        rates.append(det.predict(fresh).mean())
    assert 0.01 <= np.mean(rates) <= 0.3, rates


def test_predict_without_threshold_and_bad_arguments():
    det = PixelGaussian().fit(_normals(10, np.random.default_rng(0)))
    with pytest.raises(RuntimeError, match="fit_threshold"):
        det.predict(_normals(2, np.random.default_rng(1)))
    for bad in (dict(fpr=0), dict(fpr=1.5), dict(mode="median"), dict(n_copies=-1)):
        with pytest.raises(COFTADInputError):
            fit_threshold(det, _normals(10, np.random.default_rng(0)), **{"fpr": 0.1} | bad)


TINY = dict(backbone="efficientnet_lite0", image_size=32, steps=1, batch_size=4, seed=0, device="cpu",
            progress=False, preset="industrial", eval_batch_size=32)
LOO = {"coftad", "coftad_np", "pretrained", "random", "cutpaste", "patchcore"}


@pytest.mark.parametrize("name", list(METHODS))
def test_every_registry_method_thresholds_and_predicts(name):
    pytest.importorskip(METHODS[name].module)
    kw = dict(TINY, n_aug=2) if name in ("coftad", "coftad_np", "pretrained", "random", "cutpaste") else TINY
    train, test, labels = make_texture_arrays(n_train=3, n_normal=2, n_anom=2, size=32, seed=0)
    det = make_detector(name, **kw).fit(train)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # resolution / in-sample warnings at 3 shots
        thr = fit_threshold(det, train, fpr=0.2, n_copies=2)
    assert np.isfinite(thr) and det.threshold == thr
    assert det.threshold_info["mode"] == ("loo" if name in LOO else "augmented")
    pred = det.predict(test)
    assert pred.shape == (len(test),) and set(np.unique(pred)) <= {0, 1}
    np.testing.assert_array_equal(pred, (det.score_samples(test) > thr).astype(int))


def test_refit_and_holdout_modes():
    rng = np.random.default_rng(2)
    shots, other = _normals(12, rng), _normals(30, rng)
    det = PixelGaussian().fit(shots)
    fit_threshold(det, shots, fpr=0.2, mode="refit", n_copies=1)
    assert det.threshold_info["mode"] == "refit" and det.threshold_info["n_scores"] == 24
    thr = fit_threshold(det, other, fpr=0.2, mode="holdout")
    assert det.threshold_info["n_scores"] == 30 and thr == np.sort(det.score_samples(other))[24]  # ceil(31 * 0.8) = 25th
