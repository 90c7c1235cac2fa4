"""Image files are decoded once per process (coftad_lib.image_cache) and scores do not change."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from coftad_lib import COFTAD, PretrainedDetector, image_cache, images
from coftad_lib.errors import COFTADInputError

TINY = dict(backbone="efficientnet_lite0", pretrained=False, image_size=32, batch_size=4, n_aug=2,
            proj_hidden=32, progress=False, device="cpu", preset="industrial")


@pytest.fixture(autouse=True)
def fresh_cache():
    """Each test starts with an empty process cache and leaves a default one behind."""
    image_cache.set_budget(image_cache.DEFAULT_BUDGET_BYTES)
    yield
    image_cache.set_budget(image_cache.budget_from_env())


@pytest.fixture
def jpeg_task(tmp_path, texture_task):
    """The texture task written as JPEG files: (train paths, test paths)."""
    train, test, _ = texture_task
    def write(arrs, name):
        paths = []
        for i, a in enumerate(arrs):
            p = tmp_path / f"{name}_{i}.jpg"
            Image.fromarray(a).save(p, quality=90)
            paths.append(str(p))
        return paths
    return write(train, "train"), write(test[:12], "test")


@pytest.fixture
def decode_counter(monkeypatch):
    """Counts calls of images.load_image (the only place a file is decoded), per path."""
    counts: dict[str, int] = {}
    real = images.load_image
    def counting(path):
        counts[str(path)] = counts.get(str(path), 0) + 1
        return real(path)
    monkeypatch.setattr(images, "load_image", counting)
    return counts


def test_each_file_decoded_once_across_two_detectors(jpeg_task, decode_counter):
    train, test = jpeg_task
    for det in (PretrainedDetector(seed=0, **TINY), COFTAD(seed=1, steps=1, **TINY)):
        det.fit(train)
        det.score_samples(test)
        det.embed(train)
    assert set(decode_counter) == set(train) | set(test)
    assert set(decode_counter.values()) == {1}
    assert image_cache.get_cache().hits > 0


def test_scores_identical_with_cache_on_and_off(jpeg_task, decode_counter):
    train, test = jpeg_task
    on = COFTAD(seed=2, steps=2, **TINY).fit(train).score_samples(test)
    image_cache.set_budget(0)
    off = COFTAD(seed=2, steps=2, **TINY).fit(train).score_samples(test)
    np.testing.assert_allclose(on, off, rtol=1e-9, atol=0)  # same seed: equal up to multi-threaded CPU float rounding; a wrong seed or weight differs by far more
    assert max(decode_counter.values()) == 2  # once with the cache, once more without it
    assert len(image_cache.get_cache()) == 0


def test_cached_batch_equals_decoded_batch(jpeg_task):
    train, _ = jpeg_task
    first = images.images_to_tensor(train, 40)
    again = images.images_to_tensor(train, 40)  # from the cache
    image_cache.set_budget(0)
    plain = images.images_to_tensor(train, 40)
    assert torch.equal(first, again) and torch.equal(first, plain)
    assert first.dtype == torch.float32


def test_size_and_mtime_are_part_of_the_key(tmp_path, decode_counter):
    p = tmp_path / "a.png"
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(p)
    images.images_to_tensor([p], 32)
    images.images_to_tensor([p], 48)  # another size: another entry
    assert decode_counter[str(p)] == 2
    Image.fromarray(np.full((20, 20, 3), 255, np.uint8)).save(p)
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a rewritten file has a new mtime
    assert images.images_to_tensor([p], 32).min() == 1.0  # the new content, not the cached one
    assert decode_counter[str(p)] == 3


def test_lru_eviction_keeps_within_budget():
    one = torch.zeros(3, 8, 8, dtype=torch.uint8)  # 192 bytes
    cache = image_cache.ImageCache(budget_bytes=2 * one.numel())
    for i in range(3):
        cache.put(("f", 0, i, 8), one.clone())
    assert len(cache) == 2 and cache.nbytes <= cache.budget_bytes
    assert cache.get(("f", 0, 0, 8)) is None  # the oldest went first
    assert cache.get(("f", 0, 2, 8)) is not None
    cache.put(("big", 0, 0, 64), torch.zeros(3, 64, 64, dtype=torch.uint8))  # over budget: not kept
    assert cache.get(("big", 0, 0, 64)) is None and len(cache) == 2


def test_budget_from_env(monkeypatch):
    monkeypatch.setenv(image_cache.ENV_VAR, "0")
    assert image_cache.budget_from_env() == 0
    monkeypatch.setenv(image_cache.ENV_VAR, "12345")
    assert image_cache.budget_from_env() == 12345
    monkeypatch.delenv(image_cache.ENV_VAR)
    assert image_cache.budget_from_env() == image_cache.DEFAULT_BUDGET_BYTES
    monkeypatch.setenv(image_cache.ENV_VAR, "2GB")
    with pytest.raises(COFTADInputError, match=image_cache.ENV_VAR):
        image_cache.budget_from_env()


def test_missing_file_still_names_the_file(tmp_path):
    with pytest.raises(COFTADInputError, match="no such image file"):
        images.images_to_tensor([tmp_path / "nope.jpg"], 32)
