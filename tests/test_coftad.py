"""COFT-AD end to end on a generated task, determinism, persistence and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from coftad_lib import COFTAD, PretrainedDetector, auroc
from coftad_lib.errors import COFTADInputError

SMALL = dict(image_size=64, steps=12, batch_size=16, n_aug=4, progress=False, device="cpu",
             proj_hidden=256, preset="industrial")


@pytest.fixture(scope="module")
def fitted(texture_task):
    train, _, _ = texture_task
    return COFTAD(use_negative=True, seed=3, **SMALL).fit(train)


def test_coftad_detects_synthetic_defects(fitted, texture_task):
    _, test, labels = texture_task
    assert auroc(fitted.score_samples(test), labels) >= 0.8


def test_training_history_has_every_loss_term(fitted):
    assert len(fitted.history) == SMALL["steps"]
    assert {"con", "pp", "np"} <= set(fitted.history[-1])


def test_same_seed_same_scores_and_rng_restored(texture_task):
    train, test, _ = texture_task
    state = torch.random.get_rng_state()
    a = COFTAD(seed=1, **{**SMALL, "steps": 3}).fit(train).score_samples(test)
    assert torch.equal(state, torch.random.get_rng_state())  # the caller's RNG is left alone
    b = COFTAD(seed=1, **{**SMALL, "steps": 3}).fit(train).score_samples(test)
    c = COFTAD(seed=2, **{**SMALL, "steps": 3}).fit(train).score_samples(test)
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=0)  # same seed: equal up to multi-threaded CPU float rounding; a wrong seed or weight differs by far more
    assert not np.allclose(a, c, rtol=1e-9, atol=0)


def test_fine_tuning_changes_the_features(texture_task):
    train, test, _ = texture_task
    pre = PretrainedDetector(seed=0, **SMALL).fit(train)
    ft = COFTAD(seed=0, **{**SMALL, "steps": 3}).fit(train)
    assert not np.allclose(pre.embed(test[:4]), ft.embed(test[:4]))


@pytest.mark.parametrize("kw", [
    dict(contrastive=False, positive_pair="fixed_center"),
    dict(positive_pair="none"),
    dict(l2_normalize=False),
    dict(score_with="online", bn_mode="train"),
])
def test_ablation_switches_run(texture_task, kw):
    train, test, _ = texture_task
    s = COFTAD(seed=0, **{**SMALL, "steps": 2, **kw}).fit(train).score_samples(test[:6])
    assert s.shape == (6,) and np.isfinite(s).all()


def test_save_load_roundtrip(fitted, texture_task, tmp_path):
    _, test, _ = texture_task
    fitted.save(tmp_path / "det")
    loaded = COFTAD.load(tmp_path / "det", device="cpu")
    np.testing.assert_allclose(loaded.score_samples(test), fitted.score_samples(test), rtol=1e-6)
    names = __import__("safetensors.torch").torch.load_file(str(tmp_path / "det" / "weights.safetensors"))
    assert "scoring_net.stem.0.weight" in names  # the one format (save_detector): attributes by name


def test_pretrained_detector_roundtrip_keeps_class(texture_task, tmp_path):
    train, test, _ = texture_task
    det = PretrainedDetector(**SMALL).fit(train)
    det.save(tmp_path / "p")
    assert type(COFTAD.load(tmp_path / "p", device="cpu")) is PretrainedDetector


def test_single_shot_uses_augmented_copies(texture_task):
    train, test, _ = texture_task
    s = COFTAD(**{**SMALL, "steps": 2}).fit(train[:1]).score_samples(test[:3])
    assert np.isfinite(s).all()
    with pytest.raises(COFTADInputError, match="at least 2"):
        COFTAD(**{**SMALL, "steps": 0, "n_aug": 1}).fit(train[:1])


def test_bad_arguments_are_named():
    with pytest.raises(COFTADInputError, match="backbone='vgg'"):
        COFTAD(backbone="vgg")
    with pytest.raises(COFTADInputError, match="preset='faces'"):
        COFTAD(preset="faces", progress=False)
    with pytest.raises(COFTADInputError, match="unknown argument"):
        COFTAD(stepz=3)
    with pytest.raises(COFTADInputError, match="empty"):
        COFTAD(**SMALL).fit([])


def test_unreadable_file_is_named(tmp_path):
    bad = tmp_path / "truncated.png"
    from PIL import Image

    Image.new("RGB", (64, 64), "red").save(tmp_path / "ok.png")
    bad.write_bytes((tmp_path / "ok.png").read_bytes()[:40])
    with pytest.raises(COFTADInputError, match="truncated.png"):
        COFTAD(**SMALL).fit([tmp_path / "ok.png", bad])
