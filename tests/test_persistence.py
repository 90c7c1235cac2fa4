"""Saving and loading every registry method: scores after load equal scores before; bad files named."""

from __future__ import annotations

import json

import numpy as np
import pytest

from coftad_lib import COFTAD
from coftad_lib.errors import COFTADInputError
from coftad_lib.methods.registry import METHODS, make_detector
from coftad_lib.persistence import (
    FORMAT_VERSION,
    ModelFileError,
    ModelNotFoundError,
    load_detector,
    read_config,
    save_detector,
)

TINY = dict(image_size=32, steps=1, batch_size=2, progress=False, device="cpu")


@pytest.fixture(scope="module")
def images(texture_task):
    train, test, _ = texture_task
    return train[:3], test[::5]


def assert_same_scores(actual: np.ndarray, desired: np.ndarray) -> None:
    """Equal up to float64 rounding: with 2 BLAS threads (CI) the same weights, restored into freshly
    allocated tensors, gave scores differing in the last bit (1e-16 relative); a wrong restore
    differs by far more than 1e-12."""
    np.testing.assert_allclose(actual, desired, rtol=1e-12, atol=0)


@pytest.fixture(scope="module")
def saved_patchcore(images, tmp_path_factory):
    train, test = images
    det = make_detector("patchcore", **TINY).fit(train)
    path = save_detector(det, tmp_path_factory.mktemp("pc") / "model", method="patchcore", kwargs=TINY,
                         threshold=1.5, threshold_info={"fpr": 0.05, "how": "leave-one-out"})
    return path, det.score_samples(test)


@pytest.mark.parametrize("method", list(METHODS))
def test_roundtrip_scores_equal(method, images, tmp_path):
    train, test = images
    det = make_detector(method, **TINY).fit(train)
    before = det.score_samples(test)
    save_detector(det, tmp_path / method, method=method, kwargs=TINY)
    loaded = load_detector(tmp_path / method, device="cpu")
    assert type(loaded) is type(det)
    assert_same_scores(loaded.score_samples(test), before)
    assert loaded.method == method and loaded.threshold is None


def test_threshold_and_settings_travel(saved_patchcore, images):
    path, before = saved_patchcore
    det = load_detector(path, device="cpu")
    assert det.threshold == 1.5 and det.threshold_info["how"] == "leave-one-out"
    assert det.image_size == 32 and det.pretrained is True  # saved settings, not the rebuild's
    assert_same_scores(det.score_samples(images[1]), before)


def test_loaded_detector_refuses_refit(saved_patchcore, images):
    det = load_detector(saved_patchcore[0], device="cpu")
    with pytest.raises(COFTADInputError, match="cannot be refit"):
        det.fit(images[0])


def test_coftad_save_format_still_loads(images, tmp_path):
    train, test = images
    det = COFTAD(**TINY).fit(train)
    det.save(tmp_path / "legacy")
    loaded = load_detector(tmp_path / "legacy", device="cpu")
    assert_same_scores(loaded.score_samples(test), det.score_samples(test))


def test_unfitted_detector_is_refused(tmp_path):
    with pytest.raises(RuntimeError, match="fit"):
        save_detector(make_detector("patchcore", **TINY), tmp_path / "x", method="patchcore", kwargs=TINY)


def test_corrupt_weights_named(saved_patchcore, tmp_path):
    path = _copy(saved_patchcore[0], tmp_path)
    (path / "weights.safetensors").write_bytes(b"\x00\x01 not a safetensors file")
    with pytest.raises(ModelFileError, match="weights.safetensors: corrupt"):
        load_detector(path, device="cpu")


def test_truncated_weights_named(saved_patchcore, tmp_path):
    path = _copy(saved_patchcore[0], tmp_path)
    w = path / "weights.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    with pytest.raises(ModelFileError, match="weights.safetensors"):
        load_detector(path, device="cpu")


def test_corrupt_config_named(saved_patchcore, tmp_path):
    path = _copy(saved_patchcore[0], tmp_path)
    (path / "config.json").write_text('{"format_version": 2, "method": ')
    with pytest.raises(ModelFileError, match="config.json: corrupt, not valid JSON"):
        load_detector(path, device="cpu")


@pytest.mark.parametrize("edit, message", [
    ({"method": "transformer_ad"}, "method 'transformer_ad' is not known"),
    ({"format_version": FORMAT_VERSION + 1}, "newer coftad_lib"),
    ({"format_version": "two"}, "not a saved detector"),
])
def test_bad_config_content_named(saved_patchcore, tmp_path, edit, message):
    path = _copy(saved_patchcore[0], tmp_path)
    meta = json.loads((path / "config.json").read_text()) | edit
    (path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match=message):
        read_config(path)


def test_weights_of_another_method_named(saved_patchcore, images, tmp_path):
    path = _copy(saved_patchcore[0], tmp_path)
    other = tmp_path / "ae"
    save_detector(make_detector("ae", **TINY).fit(images[0]), other, method="ae", kwargs=TINY)
    (path / "weights.safetensors").write_bytes((other / "weights.safetensors").read_bytes())
    with pytest.raises(ModelFileError, match="weights.safetensors"):
        load_detector(path, device="cpu")


def test_missing_files_named(saved_patchcore, tmp_path):
    with pytest.raises(ModelNotFoundError, match="no such model folder"):
        load_detector(tmp_path / "nowhere")
    path = _copy(saved_patchcore[0], tmp_path)
    (path / "weights.safetensors").unlink()
    with pytest.raises(ModelNotFoundError, match="weights.safetensors: missing"):
        load_detector(path, device="cpu")
    (path / "config.json").unlink()
    with pytest.raises(ModelNotFoundError, match="config.json: missing"):
        load_detector(path, device="cpu")


def _copy(src, tmp_path):
    dst = tmp_path / "copy"
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_generator_state_travels(images, tmp_path):
    """COFT-AD keeps its fit generator; augmented draws after loading continue as they would have."""
    import torch

    train, _ = images
    det = make_detector("coftad", **TINY).fit(train)
    save_detector(det, tmp_path / "g", method="coftad", kwargs=TINY)
    loaded = load_detector(tmp_path / "g", device="cpu")
    assert torch.equal(loaded.generator.get_state(), det.generator.get_state())
