"""CutPaste, CFLOW-AD and PatchCore fit and score a generated defect task; score_with on a fitted
extractor. Sizes are tiny (48 px, a few steps) so the file runs in about a minute on 2 cores.
"""

from __future__ import annotations

import numpy as np
import pytest

from coftad_lib.coftad import PretrainedDetector
from coftad_lib.errors import COFTADInputError
from coftad_lib.methods import SCORERS, make_detector, score_with
from coftad_lib.metrics import auroc

SIZE = 48
COMMON = dict(backbone="efficientnet_lite0", image_size=SIZE, batch_size=4, seed=0, device="cpu",
              progress=False, preset="industrial", eval_batch_size=64)
CUTPASTE = dict(COMMON, steps=5, n_aug=4)
CFLOW = dict(COMMON, steps=15, lr=2e-3, coupling_blocks=2, condition_dim=32, fiber_batch=512)
PATCHCORE = dict(COMMON, coreset_ratio=0.5)


def make_defect_task(n_train: int = 4, n_each: int = 12, size: int = SIZE, seed: int = 0):
    """Smooth woven textures with small random phase/noise; anomalies add a bright square
    (even indices) or a bright diagonal scratch (odd indices).

    Returns train (n, S, S, 3) uint8, test (2 * n_each, S, S, 3) uint8, labels (M,), masks (M, S, S) bool.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size

    def textures(n: int) -> np.ndarray:
        ph = rng.uniform(0, 0.3, (n, 3, 1, 1))
        base = (0.45 + 0.15 * np.sin(2 * np.pi * (4 * xx + ph[:, 0])) * np.cos(2 * np.pi * (3 * yy + ph[:, 1]))
                + 0.05 * np.sin(2 * np.pi * (9 * (xx + yy) + ph[:, 2])))
        rgb = base[..., None] * np.array([0.9, 0.7, 0.5]) + rng.normal(0, 0.02, (n, size, size, 3))
        return rgb

    train, normal, anom = textures(n_train), textures(n_each), textures(n_each)
    masks = np.zeros((2 * n_each, size, size), bool)
    s = size // 6
    for i, img in enumerate(anom):
        m = masks[n_each + i]
        y0, x0 = rng.integers(s, size - 2 * s, 2)
        if i % 2 == 0:
            m[y0 : y0 + s, x0 : x0 + s] = True
        else:
            t = np.arange(size // 2)
            ys, xs = np.clip(y0 + t // 2, 0, size - 2), np.clip(x0 // 2 + t, 0, size - 1)
            m[ys, xs] = m[ys + 1, xs] = True
        img[m] = [1.0, 1.0, 0.9]
    u8 = lambda a: (np.clip(a, 0, 1) * 255).astype(np.uint8)  # noqa: E731
    labels = np.r_[np.zeros(n_each), np.ones(n_each)].astype(int)
    return u8(train), np.concatenate([u8(normal), u8(anom)]), labels, masks


@pytest.fixture(scope="module")
def task():
    return make_defect_task()


def _fit_twice(name: str, kw: dict, train, test):
    a = make_detector(name, **kw).fit(train)
    b = make_detector(name, **kw).fit(train)
    return a, a.score_samples(test), b.score_samples(test)


@pytest.mark.parametrize("name,kw", [("cutpaste", CUTPASTE), ("cflow", CFLOW), ("patchcore", PATCHCORE)])
def test_detects_defects_and_is_reproducible(task, name, kw):
    train, test, labels, _ = task
    det, s1, s2 = _fit_twice(name, kw, train, test)
    assert s1.shape == (len(test),) and s1.dtype == np.float64 and np.isfinite(s1).all()
    assert auroc(s1, labels) >= 0.7
    np.testing.assert_allclose(s1, s2, rtol=1e-9, atol=0)  # same seed: equal up to multi-threaded CPU float rounding; a wrong seed or weight differs by far more


@pytest.mark.parametrize("name,kw", [("cutpaste", CUTPASTE), ("cflow", CFLOW), ("patchcore", PATCHCORE)])
def test_empty_training_list_is_an_input_error(name, kw):
    with pytest.raises(COFTADInputError, match="empty"):
        make_detector(name, **kw).fit([])


def test_cutpaste_trains_three_way_head_and_embeds(task):
    train, test, _, _ = task
    det = make_detector("cutpaste", **dict(CUTPASTE, steps=3)).fit(train)
    assert len(det.history) == 3 and all(np.isfinite(h["loss"]) for h in det.history)
    emb = det.embed(test[:5])
    assert emb.shape == (5, det.scoring_net.feature_dim)
    # Training moved the backbone away from its ImageNet initialisation.
    init = make_detector("cutpaste", **dict(CUTPASTE, steps=0)).fit(train).embed(test[:5])
    assert not np.allclose(emb, init, atol=1e-4)


def test_cflow_seed_changes_flows_and_maps_localise(task):
    train, test, labels, masks = task
    kw = dict(CFLOW, steps=8)
    det = make_detector("cflow", **kw).fit(train)
    other = make_detector("cflow", **dict(kw, seed=1)).fit(train)
    assert not np.array_equal(det.score_samples(test[:4]), other.score_samples(test[:4]))
    maps = det.anomaly_maps(test)
    assert maps.shape == (len(test), SIZE, SIZE)
    np.testing.assert_allclose(maps.reshape(len(test), -1).max(1), det.score_samples(test), rtol=1e-12)
    anomalous = labels == 1
    inside = np.array([m[k].mean() for m, k in zip(maps[anomalous], masks[anomalous], strict=True)])
    outside = np.array([m[~k].mean() for m, k in zip(maps[anomalous], masks[anomalous], strict=True)])
    assert (inside > outside).mean() >= 0.8


def test_cflow_probability_score_mode(task):
    train, test, _, _ = task
    det = make_detector("cflow", **dict(CFLOW, steps=2, score_mode="cflow")).fit(train)
    # Map = #scales - sum of exp(log p - ref), ref the best log p among the shots' positions:
    # on the shots themselves every term lies in [0, 1), so scores lie in [0, 2).
    s = det.score_samples(train)
    assert np.isfinite(s).all() and (s >= 0).all() and (s < 2.0).all()
    assert np.isfinite(det.score_samples(test[:6])).all()
    with pytest.raises(COFTADInputError, match="score_mode"):
        make_detector("cflow", **dict(CFLOW, score_mode="probability"))


def test_patchcore_bank_maps_and_projection(task):
    train, test, labels, masks = task
    det = make_detector("patchcore", **COMMON).fit(train)
    side = SIZE // 8
    assert det.scorer.bank.shape == (len(train) * side * side, 40 + 112)  # efficientnet_lite0 maps
    half = make_detector("patchcore", **PATCHCORE).fit(train)
    assert len(half.scorer.bank) == len(det.scorer.bank) // 2
    maps = det.patch_maps(test)
    assert maps.shape == (len(test), side, side)
    np.testing.assert_allclose(maps.reshape(len(test), -1).max(1), det.score_samples(test), rtol=1e-6)
    # The patch at a square defect's centre is further from the bank than most patches of its image.
    for i in np.flatnonzero(labels == 1)[::2]:
        ys, xs = np.nonzero(masks[i])
        assert maps[i][int(ys.mean()) // 8, int(xs.mean()) // 8] > np.quantile(maps[i], 0.75)
    proj = make_detector("patchcore", **dict(COMMON, proj_dim=32)).fit(train)
    assert proj.scorer.bank.shape[1] == 32
    assert auroc(proj.score_samples(test), labels) >= 0.7


@pytest.fixture(scope="module")
def pretrained(task):
    train, _, _, _ = task
    return PretrainedDetector(**{k: v for k, v in COMMON.items() if k != "batch_size"}, n_aug=4).fit(train)


def test_score_with_runs_every_scorer_on_features_computed_once(task, pretrained):
    train, test, labels, _ = task
    calls = []
    original = pretrained.embed
    pretrained.embed = lambda images: calls.append(len(images)) or original(images)
    try:
        out = score_with(pretrained, list(SCORERS), train, test, scorer_kwargs={"dif": {"n_ensemble": 24}})
    finally:
        del pretrained.embed
    assert list(out) == list(SCORERS)
    assert calls == [len(train) * 4, len(test)]  # D_TA once, test once, for all pooled scorers
    for name, s in out.items():
        assert s.shape == (len(test),), name
        assert auroc(s, labels) >= 0.7, name
    # Pooled and patch scorers agree with running them one at a time.
    single = score_with(pretrained, "knn", train, test)
    np.testing.assert_allclose(single["knn"], out["knn"])


def test_score_with_accepts_a_cutpaste_extractor(task):
    train, test, labels, _ = task
    det = make_detector("cutpaste", **dict(CUTPASTE, steps=0)).fit(train)
    out = score_with(det, ["gaussian", "patchcore"], train, test)
    # Same model and scorer, other augmentation draws for D_TA: close, not identical.
    assert np.corrcoef(out["gaussian"], det.score_samples(test))[0, 1] > 0.9
    assert auroc(out["patchcore"], labels) >= 0.7


def test_score_with_input_errors(task, pretrained):
    train, test, _, _ = task
    with pytest.raises(COFTADInputError, match="empty"):
        score_with(pretrained, [], train, test)
    with pytest.raises(COFTADInputError, match="lof"):
        score_with(pretrained, ["lof"], train, test)
    with pytest.raises(COFTADInputError, match="scorer_kwargs"):
        score_with(pretrained, ["knn"], train, test, scorer_kwargs={"dif": {}})
    unfitted = PretrainedDetector(**{k: v for k, v in COMMON.items() if k != "batch_size"})
    with pytest.raises(COFTADInputError, match="fit"):
        score_with(unfitted, ["knn"], train, test)
