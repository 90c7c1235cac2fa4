"""Shared fixtures: a generated texture task and the location of the optional real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def make_texture_task(n_train: int = 6, n_normal: int = 20, n_anom: int = 20, size: int = 64, seed: int = 0):
    """Stripe textures with random phase and noise; anomalies carry a bright square defect.

    Returns (train (n_train, size, size, 3) uint8, test uint8, labels (M,) int).
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]

    def texture(n: int) -> np.ndarray:
        phase = rng.uniform(0, 2 * np.pi, size=(n, 1, 1))
        freq = rng.uniform(0.45, 0.55, size=(n, 1, 1))
        base = 0.5 + 0.25 * np.sin(freq * xx[None] + phase) + rng.normal(0, 0.03, size=(n, size, size))
        rgb = np.stack([base, base * 0.9, base * 0.6], axis=-1)
        return rgb

    train = texture(n_train)
    normal = texture(n_normal)
    anom = texture(n_anom)
    s = size // 4
    for img in anom:
        y, x = rng.integers(0, size - s, size=2)
        img[y : y + s, x : x + s] = [1.0, 0.1, 0.1]
    to_u8 = lambda a: (np.clip(a, 0, 1) * 255).astype(np.uint8)  # noqa: E731
    test = np.concatenate([to_u8(normal), to_u8(anom)])
    labels = np.array([0] * n_normal + [1] * n_anom)
    return to_u8(train), test, labels


@pytest.fixture(scope="session")
def texture_task():
    return make_texture_task()
