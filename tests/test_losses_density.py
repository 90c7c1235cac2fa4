"""The loss terms, the EMA update and the Mahalanobis score against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import mahalanobis
from torch import nn

from coftad_lib.byol import ema_update
from coftad_lib.density import GaussianDensity
from coftad_lib.errors import COFTADInputError
from coftad_lib.losses import byol_loss, cross_instance_loss, fixed_center_loss, negative_pair_loss
from coftad_lib.metrics import auroc

# Two 2-d vectors at 0 and 90 degrees, and their rotations: cosines are known exactly.
E1, E2 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
D45 = torch.tensor([1.0, 1.0])  # cos with E1 or E2 = 1/sqrt(2)


def test_byol_loss_by_hand():
    p1 = torch.stack([E1, E2])
    p2 = torch.stack([E2, E2])
    t1 = torch.stack([E1, D45])
    t2 = torch.stack([D45, E1])
    # cos(p1, t2) = [1/sqrt2, 0]; cos(p2, t1) = [0, 1/sqrt2]
    expected = -0.5 * ((1 / math.sqrt(2) + 0) / 2 + (0 + 1 / math.sqrt(2)) / 2)
    assert byol_loss(p1, p2, t1, t2).item() == pytest.approx(expected, abs=1e-6)


def test_byol_loss_gradient_only_through_online():
    p = torch.randn(4, 3, requires_grad=True)
    t = torch.randn(4, 3, requires_grad=True)
    byol_loss(p, p, t, t).backward()
    assert p.grad is not None and t.grad is None


def test_cross_instance_loss_by_hand():
    online = torch.stack([E1, E2, D45])
    target = torch.stack([E2, D45, E1])
    perm = torch.tensor([1, 2, 0])
    # term a: cos(online[i], target[perm[i]]) = cos(E1,D45), cos(E2,E1), cos(D45,E2) = r, 0, r
    # term b: cos(online[perm[i]], target[i]) = cos(E2,E2), cos(D45,D45), cos(E1,E1) = 1, 1, 1
    r = 1 / math.sqrt(2)
    expected = -0.5 * ((r + 0 + r) / 3 + 1.0)
    assert cross_instance_loss(online, target, perm).item() == pytest.approx(expected, abs=1e-6)


def test_negative_pair_loss_by_hand():
    clean = torch.stack([E1, E2])
    neg = torch.stack([D45, -E2])
    assert negative_pair_loss(clean, neg).item() == pytest.approx((1 / math.sqrt(2) - 1) / 2, abs=1e-6)


def test_fixed_center_loss_by_hand():
    feats = torch.stack([E1, E2, -E1])
    assert fixed_center_loss(feats, E1).item() == pytest.approx(-(1 + 0 - 1) / 3, abs=1e-6)


def test_ema_update_params_and_buffers():
    online, target = nn.BatchNorm1d(3), nn.BatchNorm1d(3)
    with torch.no_grad():
        online.weight.fill_(1.0), target.weight.fill_(0.0)
        online.running_mean.fill_(2.0), target.running_mean.fill_(0.0)
        online.num_batches_tracked.fill_(7)
    ema_update(target, online, beta=0.9)
    assert torch.allclose(target.weight, torch.full((3,), 0.1))
    assert torch.allclose(target.running_mean, torch.full((3,), 0.2))
    assert int(target.num_batches_tracked) == 7


def test_mahalanobis_matches_scipy():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(40, 5)) @ rng.normal(size=(5, 5))
    test = rng.normal(size=(7, 5))
    eps = 1e-3
    dens = GaussianDensity(l2_normalize=False, eps=eps).fit(torch.tensor(train))
    mu = train.mean(0)
    cov = np.cov(train, rowvar=False, bias=True) + eps * np.eye(5)  # MLE covariance, Eq. 7
    vi = np.linalg.inv(cov)
    expected = [mahalanobis(x, mu, vi) for x in test]
    np.testing.assert_allclose(dens.score(torch.tensor(test)).numpy(), expected, rtol=1e-8)


def test_l2_normalisation_makes_score_scale_invariant():
    rng = np.random.default_rng(1)
    train, test = torch.tensor(rng.normal(size=(30, 4))), torch.tensor(rng.normal(size=(5, 4)))
    dens = GaussianDensity(l2_normalize=True).fit(train)
    np.testing.assert_allclose(dens.score(test).numpy(), dens.score(test * 10).numpy(), rtol=1e-10)
    raw = GaussianDensity(l2_normalize=False).fit(train)
    assert not np.allclose(raw.score(test).numpy(), raw.score(test * 10).numpy())


def test_density_needs_two_vectors():
    with pytest.raises(COFTADInputError, match="at least 2"):
        GaussianDensity().fit(torch.ones(1, 8))


def test_auroc_and_its_errors():
    assert auroc([0.1, 0.2, 0.9, 0.8], [0, 0, 1, 1]) == 1.0
    assert auroc([0.9, 0.8, 0.1, 0.2], [0, 0, 1, 1]) == 0.0
    with pytest.raises(COFTADInputError, match="both 0"):
        auroc([0.1, 0.2], [0, 0])
    with pytest.raises(COFTADInputError, match="NaN"):
        auroc([np.nan, 0.2], [0, 1])
