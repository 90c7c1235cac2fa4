"""What every scorer of :mod:`coftad_lib.methods.scorers` shares: the :class:`Scorer` contract and input checks."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator

import numpy as np
import torch

from ..errors import COFTADInputError

FeatureArray = np.ndarray | torch.Tensor


def _as_matrix(feats: FeatureArray, what: str, min_rows: int = 1) -> np.ndarray:
    """(N, D) array or tensor -> float64 numpy, with a clear error on a wrong shape or NaN."""
    x = feats.detach().cpu().double().numpy() if isinstance(feats, torch.Tensor) else np.asarray(feats, dtype=np.float64)
    if x.ndim != 2:
        raise COFTADInputError(f"{what}: expected an (N, D) feature matrix, got shape {x.shape}")
    if len(x) < min_rows:
        raise COFTADInputError(f"{what}: needs at least {min_rows} feature vector(s), got {len(x)}")
    if not np.isfinite(x).all():
        raise COFTADInputError(f"{what}: features contain NaN or infinity")
    return x


def _l2n(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@contextlib.contextmanager
def _numpy_seeded(seed: int) -> Iterator[None]:
    """Seed numpy's global RNG for a block and restore the caller's state afterwards.

    PyOD's DIF and FrEIA's coupling blocks draw from ``np.random`` directly; this keeps them
    reproducible without changing the RNG stream of the caller.
    """
    state = np.random.get_state()
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        np.random.set_state(state)


class Scorer(ABC):
    """Fit on normal features, score test features (higher = more anomalous)."""

    name: str = ""

    @abstractmethod
    def fit(self, train_feats: FeatureArray) -> Scorer:
        """Fit on (N, D) normal features (patch scorers: (N, P, C)); returns self."""

    @abstractmethod
    def score(self, test_feats: FeatureArray) -> np.ndarray:
        """(M, D) test features (patch scorers: (M, P, C)) -> (M,) float64 anomaly scores."""
