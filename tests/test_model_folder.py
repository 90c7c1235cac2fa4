"""Model folders that vouch for themselves (issue 22): written whole, checked on load, old formats read."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil

import numpy as np
import pytest
from lock_holder import lock_held_by_child
from safetensors.torch import save_file

from coftad_lib import COFTAD
from coftad_lib.atomic_files import OutputLockedError, lock_path
from coftad_lib.methods.registry import make_detector
from coftad_lib.model_folder import FORMAT_VERSION, sha256_of
from coftad_lib.persistence import ModelFileError, load_detector, read_config, save_detector

TINY = dict(image_size=32, steps=1, batch_size=2, progress=False, device="cpu")


def close(a, b) -> None:
    """Same scores up to float64 rounding of multi-threaded CPU BLAS (a wrong weight differs by far more)."""
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=0)


@pytest.fixture(scope="module")
def images(texture_task):
    train, test, _ = texture_task
    return train[:3], test[::5]


@pytest.fixture(scope="module")
def coftad_fit(images):
    det = COFTAD(**TINY, preset="industrial").fit(images[0])
    return det, det.score_samples(images[1])


@pytest.fixture
def saved(coftad_fit, tmp_path):
    return coftad_fit[0].save(tmp_path / "model")


def _edit_config(folder, **changes):
    meta = json.loads((folder / "config.json").read_text())
    for key, value in changes.items():
        *parents, last = key.split(".")
        node = meta
        for p in parents:
            node = node[p]
        node[last] = value
    (folder / "config.json").write_text(json.dumps(meta))


def test_coftad_save_is_the_one_format_with_checksum_and_tensor_list(saved, coftad_fit, images):
    meta = read_config(saved)
    assert meta["format_version"] == FORMAT_VERSION == 3 and meta["method"] == "coftad"
    w = meta["weights"]
    assert w["sha256"] == sha256_of((saved / "weights.safetensors").read_bytes())
    assert all(set(v) == {"dtype", "shape"} for v in w["tensors"].values()) and len(w["tensors"]) > 10
    close(COFTAD.load(saved, device="cpu").score_samples(images[1]), coftad_fit[1])


def _write_format1(det: COFTAD, path) -> None:
    """What COFTAD.save wrote before issue 22 (format 1)."""
    path.mkdir()
    tensors = {f"backbone.{k}": v.detach().cpu().contiguous() for k, v in det.scoring_net.state_dict().items()}
    tensors.update({f"density.{k}": v.cpu().contiguous() for k, v in det.density.state_dict().items()})
    save_file(tensors, str(path / "weights.safetensors"))
    meta = {"format_version": 1, "class": type(det).__name__, "config": dataclasses.asdict(det.config)}
    (path / "config.json").write_text(json.dumps(meta, indent=2))


def test_formats_1_and_2_still_load(coftad_fit, images, tmp_path):
    det, before = coftad_fit
    _write_format1(det, tmp_path / "f1")
    close(load_detector(tmp_path / "f1", device="cpu").score_samples(images[1]), before)
    f2 = det.save(tmp_path / "f2")
    meta = json.loads((f2 / "config.json").read_text())
    del meta["weights"]
    (f2 / "config.json").write_text(json.dumps(meta | {"format_version": 2}))
    close(load_detector(f2, device="cpu").score_samples(images[1]), before)


def test_weights_from_another_fit_are_refused(saved, images, tmp_path):
    """Item 1: COFT-AD weights copied into a pretrained model's folder no longer load silently."""
    other = make_detector("pretrained", **TINY).fit(images[0])
    pre = save_detector(other, tmp_path / "pre", method="pretrained", kwargs=TINY)
    shutil.copy(saved / "weights.safetensors", pre / "weights.safetensors")
    with pytest.raises(ModelFileError, match=r"weights.safetensors: does not belong to .*config.json.*weights.sha256"):
        load_detector(pre, device="cpu")


@pytest.mark.parametrize("key, value, message", [
    ("threshold", "high", r"key 'threshold' must be a number or null"),
    ("kwargs", [1], r"key 'kwargs' must be an object"),
    ("kwargs.image_size", "32", r"key 'kwargs.image_size' is \"32\", expected a whole number"),
    ("kwargs.l2_normalize", 1, r"key 'kwargs.l2_normalize' is 1, expected true or false"),
    ("weights.sha256", 5, r"key 'weights' must hold 'sha256'"),
])
def test_config_values_of_the_wrong_type_name_file_and_key(saved, key, value, message):
    _edit_config(saved, **{key: value})
    with pytest.raises(ModelFileError, match="config.json: " + message):
        load_detector(saved, device="cpu")


def test_interrupted_save_keeps_the_old_model(saved, coftad_fit, images, monkeypatch):
    """Items 1 and 5: a kill while the new fit is written leaves the old model whole, and no temporaries."""
    from coftad_lib import model_folder

    before = (saved / "config.json").read_bytes(), (saved / "weights.safetensors").read_bytes()
    real = model_folder.write_text_atomic

    def killed(path, text):
        real(path, text[: len(text) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(model_folder, "write_text_atomic", killed)
    with pytest.raises(KeyboardInterrupt):
        coftad_fit[0].save(saved)
    assert ((saved / "config.json").read_bytes(), (saved / "weights.safetensors").read_bytes()) == before
    assert sorted(p.name for p in saved.parent.iterdir()) == ["model"]


def test_model_files_follow_the_umask(coftad_fit, tmp_path):
    """Item 8: weights.safetensors was always 0600 while config.json followed the umask."""
    old = os.umask(0o022)
    try:
        folder = coftad_fit[0].save(tmp_path / "m")
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir()}
    assert modes == {"config.json": 0o644, "weights.safetensors": 0o644}
    assert folder.stat().st_mode & 0o777 == 0o755


def test_second_writer_fails_at_once_naming_the_first(coftad_fit, tmp_path):
    """Item 2: a save while another live process holds the folder's lock is refused, not interleaved."""
    target = tmp_path / "m"
    with lock_held_by_child(target) as holder:
        with pytest.raises(OutputLockedError, match=f"pid {holder.pid}"):
            coftad_fit[0].save(target)
    assert not target.exists()
    coftad_fit[0].save(target)  # the dead holder's lock is taken over
    assert not lock_path(target).exists() and (target / "config.json").is_file()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_weights_are_not_called_corrupt(saved):
    (saved / "weights.safetensors").chmod(0o000)
    with pytest.raises(ModelFileError, match="permission denied") as info:
        load_detector(saved, device="cpu")
    assert "corrupt" not in str(info.value)


@pytest.mark.parametrize("key, value, message", [
    ("state.config.__dataclass__.n_aug", "ten", r"key 'state.config.n_aug' is \"ten\", expected a whole number"),
    ("state.history", "long", r"key 'state.history' is \"long\", expected a list"),
])
def test_saved_state_of_the_wrong_type_names_file_and_key(saved, key, value, message):
    _edit_config(saved, **{key: value})
    with pytest.raises(ModelFileError, match="config.json: " + message):
        load_detector(saved, device="cpu")


def test_a_kwarg_typed_as_a_union_is_not_refused(coftad_fit, images, tmp_path):
    """``compile: bool | "auto"``: either saved value loads (only plain-typed keys are checked)."""
    folder = coftad_fit[0].save(tmp_path / "m")
    _edit_config(folder, **{"kwargs.compile": "auto"})
    meta = json.loads((folder / "config.json").read_text())
    assert meta["kwargs"]["compile"] == "auto"
    close(load_detector(folder, device="cpu").score_samples(images[1]), coftad_fit[1])
