"""Registry of methods (names, display names, quoted rows) and the Table VIII scoring functions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from coftad_lib.errors import COFTADInputError
from coftad_lib.methods import METHODS, QUOTED, SCORERS, display_name, make_detector, make_scorer
from coftad_lib.methods.cflow import positional_encoding_2d
from coftad_lib.methods.patch_bank import greedy_coreset
from coftad_lib.metrics import auroc

COMMON = dict(backbone="efficientnet_lite0", image_size=48, steps=3, batch_size=4, lr=1e-3,
              preset="industrial", seed=7, device="cpu", progress=False, eval_batch_size=16)
OTHER_HELPER = {"ae", "vae", "deepsvdd", "rotnet", "csi"}


# -- registry ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(METHODS))
def test_every_name_builds_with_the_common_arguments(name):
    if name in OTHER_HELPER:
        pytest.importorskip(METHODS[name].module)
    det = make_detector(name, **COMMON)
    assert type(det).__name__ == METHODS[name].cls
    # The common arguments reach the instance, whichever constructor style the class uses.
    cfg = getattr(det, "config", det)
    assert cfg.image_size == 48 and cfg.seed == 7
    assert hasattr(det, "fit") and hasattr(det, "score_samples")


def test_names_fix_their_settings():
    assert make_detector("coftad", **COMMON).config.use_negative is False
    assert make_detector("coftad_np", **COMMON).config.use_negative is True
    assert make_detector("random", **COMMON).config.pretrained is False
    assert make_detector("pretrained", **COMMON).config.steps == 0
    with pytest.raises(COFTADInputError, match="use_negative"):
        make_detector("coftad", use_negative=True, **COMMON)


def test_display_names_follow_the_paper():
    assert display_name("coftad") == "COFT-AD (w/o np)"
    assert display_name("coftad_np") == "COFT-AD (w/ np)"
    assert display_name("pretrained") == "ImageNet Pretrained"
    assert display_name("cflow") == "CFLOW-AD"
    assert display_name("tdg") == "TDG*"
    with pytest.raises(COFTADInputError):
        display_name("nope")


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(COFTADInputError) as err:
        make_detector("padim")
    for name in ("coftad", "cutpaste", "cflow", "patchcore"):
        assert name in str(err.value)


@pytest.mark.parametrize("name", ["tdg", "differnet"])
def test_quoted_rows_are_numbers_not_detectors(name):
    with pytest.raises(COFTADInputError, match="quoted"):
        make_detector(name)
    assert set(QUOTED[name].mvtec_avg) == {5, 10}


def test_quoted_values_are_table_iv():
    assert QUOTED["tdg"].mvtec_avg == {5: 77.90, 10: 78.00}
    assert QUOTED["differnet"].mvtec_avg == {5: 72.10, 10: 73.60}


@pytest.mark.parametrize("name", ["cflow", "coftad"])
def test_unknown_argument_is_an_input_error(name):
    with pytest.raises(COFTADInputError, match="n_blocks"):
        make_detector(name, n_blocks=3, **COMMON)


# -- scorers -----------------------------------------------------------------------------------


def _clouds(seed: int = 0, d: int = 24, n_train: int = 60, n_test: int = 40):
    """Normal features around one direction, anomalies around another (as after L2 norm)."""
    rng = np.random.default_rng(seed)
    mu_n, mu_a = np.zeros(d), np.zeros(d)
    mu_n[0], mu_a[1] = 3.0, 3.0
    train = mu_n + rng.normal(0, 0.6, (n_train, d))
    test = np.concatenate([mu_n + rng.normal(0, 0.6, (n_test, d)), mu_a + rng.normal(0, 0.6, (n_test, d))])
    return train, test, np.r_[np.zeros(n_test), np.ones(n_test)]


@pytest.mark.parametrize("name", [n for n in SCORERS if n != "patchcore"])
def test_pooled_scorers_separate_two_clouds(name):
    train, test, labels = _clouds()
    kw = {"n_ensemble": 24} if name == "dif" else {}  # [54] uses 50; 24 keeps the test short
    scores = make_scorer(name, **kw).fit(train).score(test)
    assert scores.shape == (len(test),) and scores.dtype == np.float64
    assert auroc(scores, labels) >= 0.9


def test_patchcore_scorer_finds_one_anomalous_patch():
    rng = np.random.default_rng(1)
    d, p = 16, 20
    train = rng.normal(0, 0.5, (8, p, d)).astype(np.float32)
    test = rng.normal(0, 0.5, (20, p, d)).astype(np.float32)
    test[10:, 3] += 4.0  # one shifted patch per anomalous image
    labels = np.r_[np.zeros(10), np.ones(10)]
    scorer = make_scorer("patchcore").fit(train)
    assert auroc(scorer.score(test), labels) >= 0.9
    assert scorer.patch_distances(test).shape == (20, p)
    with pytest.raises(COFTADInputError, match="patch features"):
        scorer.score(test[:, 0])  # pooled features are not patch features


def test_knn_default_k_and_mean_distance():
    train = np.eye(4) * 10.0
    s = make_scorer("knn", l2_normalize=False).fit(train)
    assert s.k_ == 3  # min(5, N - 1)
    # Origin is 10 away from every training point.
    assert s.score(np.zeros((1, 4)))[0] == pytest.approx(10.0)


def test_dif_is_deterministic_and_leaves_global_rngs_alone():
    train, test, _ = _clouds(seed=3)
    np.random.seed(123)
    torch.manual_seed(123)
    np_state, torch_state = np.random.get_state()[1].copy(), torch.get_rng_state().clone()
    a = make_scorer("dif", n_ensemble=6, seed=0).fit(train).score(test)
    b = make_scorer("dif", n_ensemble=6, seed=0).fit(train).score(test)
    c = make_scorer("dif", n_ensemble=6, seed=1).fit(train).score(test)
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=0)  # same seed: equal up to multi-threaded CPU float rounding; a wrong seed or weight differs by far more
    assert not np.allclose(a, c)
    assert np.array_equal(np.random.get_state()[1], np_state)
    assert torch.equal(torch.get_rng_state(), torch_state)


def test_dif_scores_each_image_on_its_own():
    train, test, _ = _clouds(seed=5)
    s = make_scorer("dif", n_ensemble=4).fit(train)
    np.testing.assert_allclose(s.score(test[:5]), s.score(test)[:5], rtol=1e-6)  # float32 network, batch-size rounding
    # PyOD's own behaviour, kept as an option, standardises with the scored batch.
    b = make_scorer("dif", n_ensemble=4, standardize="batch").fit(train)
    assert not np.allclose(b.score(test[:5]), b.score(test)[:5])


def test_iforest_seed_matters_and_is_reproducible():
    train, test, _ = _clouds(seed=4)
    a = make_scorer("iforest", seed=0).fit(train).score(test)
    np.testing.assert_array_equal(a, make_scorer("iforest", seed=0).fit(train).score(test))
    assert not np.array_equal(a, make_scorer("iforest", seed=1).fit(train).score(test))


def test_scorer_input_errors():
    with pytest.raises(COFTADInputError, match="scorer"):
        make_scorer("lof")
    with pytest.raises(COFTADInputError, match="unknown argument"):
        make_scorer("knn", n_neighbours=3)
    with pytest.raises(COFTADInputError, match=r"\(N, D\)"):
        make_scorer("gaussian").fit(np.zeros((5, 2, 2)))
    with pytest.raises(COFTADInputError, match="NaN"):
        make_scorer("knn").fit(np.full((4, 3), np.nan))
    with pytest.raises(COFTADInputError, match="coreset_ratio"):
        make_scorer("patchcore", coreset_ratio=0.0)


def test_greedy_coreset_covers_every_cluster():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0, 0], [50, 0, 0], [0, 50, 0]])
    pts = torch.tensor(np.concatenate([c + rng.normal(0, 0.1, (30, 3)) for c in centres]), dtype=torch.float32)
    idx = greedy_coreset(pts, 3, proj_dim=None, seed=0)
    assert sorted((idx // 30).tolist()) == [0, 1, 2]
    assert len(greedy_coreset(pts, 200)) == len(pts)


def test_patchcore_scorer_coreset_shrinks_bank():
    feats = torch.randn(4, 25, 8)
    s = make_scorer("patchcore", coreset_ratio=0.25, seed=0).fit(feats)
    assert s.bank.shape == (25, 8)


def test_positional_encoding_distinguishes_positions():
    pe = positional_encoding_2d(16, 5, 7)
    assert pe.shape == (16, 5, 7)
    assert pe.abs().max() <= 1.0
    flat = pe.flatten(1).T  # (35 positions, 16)
    assert torch.cdist(flat, flat).fill_diagonal_(1.0).min() > 1e-3
    with pytest.raises(COFTADInputError):
        positional_encoding_2d(10, 4, 4)
