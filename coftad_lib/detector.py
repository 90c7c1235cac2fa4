"""The interface every detector shares, and the feature + Gaussian detector it builds on.

``fit(images)`` takes the k normal shots, ``score_samples(images)`` returns one anomaly score per
image (higher = more anomalous). Images are whatever :func:`coftad_lib.images.images_to_tensor`
accepts: file paths, PIL images, arrays or tensors.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from .augment import make_augmentations
from .backbones import Backbone
from .density import GaussianDensity
from .device import autocast, memory_format, resolve_device
from .errors import COFTADInputError
from .images import Images, images_to_tensor


class Detector(ABC):
    """A few-shot anomaly detector: fit on normal shots, score test images."""

    @abstractmethod
    def fit(self, images: Images) -> Detector:
        """Train on the k normal shots; returns self."""

    @abstractmethod
    def score_samples(self, images: Images) -> np.ndarray:
        """(M,) float64 anomaly scores, higher = more anomalous."""

    #: decision threshold on :meth:`score_samples`, set by :func:`coftad_lib.threshold.fit_threshold`
    threshold: float | None = None
    #: how it was estimated: fpr, mode, n_scores, n_copies, resolution_limited
    threshold_info: dict | None = None

    def predict(self, images: Images) -> np.ndarray:
        """(M,) int64: 1 where the score is above ``self.threshold`` (anomalous), else 0."""
        if self.threshold is None:
            raise RuntimeError(f"{type(self).__name__}.predict: no threshold; call "
                               "coftad_lib.threshold.fit_threshold(detector, shots, fpr=0.05) after fit()")
        return (np.asarray(self.score_samples(images)) > self.threshold).astype(np.int64)


@contextlib.contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Run a block with torch's global RNG seeded, restoring the caller's RNG state afterwards."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type="cuda" if devices else "cpu"):
        torch.manual_seed(seed)
        yield


class FeatureDetector(Detector):
    """Backbone features + Gaussian / Mahalanobis score (Eqs. 7-8); the base of COFT-AD.

    Subclasses decide how the scoring backbone is obtained (:meth:`_train`); this class fits the
    Gaussian on N_A positively augmented copies of the shots and scores test images.
    """

    def __init__(self, *, image_size: int, preset: str, n_aug: int, l2_normalize: bool,
                 eps: float, seed: int, device: str | torch.device, eval_batch_size: int,
                 cutpaste_mode: str = "union", progress: bool = True, aug_strength: float = 1.0,
                 negative: str | None = None) -> None:
        if image_size < 32:
            raise COFTADInputError(f"image_size={image_size}: must be at least 32 pixels")
        if n_aug < 1:
            raise COFTADInputError(f"n_aug={n_aug}: the number of augmented copies N_A must be >= 1")
        self.image_size = image_size
        self.n_aug = n_aug
        self.seed = seed
        self.device = resolve_device(device)
        self.eval_batch_size = eval_batch_size
        self.progress = progress
        self.augment = make_augmentations(preset, image_size, cutpaste_mode, strength=aug_strength, negative=negative)
        self.density = GaussianDensity(l2_normalize=l2_normalize, eps=eps)
        self.scoring_net: Backbone | None = None
        # One stream per fit for augmentation and batch sampling, reset by fit() (same seed, same fit).
        self.generator = torch.Generator(self.device).manual_seed(seed)

    # -- subclasses -------------------------------------------------------------------------
    @abstractmethod
    def _train(self, shots: torch.Tensor) -> Backbone:
        """(k, 3, S, S) shots on the device -> the backbone whose features are scored."""

    # -- shared -----------------------------------------------------------------------------
    def _to_device_batch(self, images: Images) -> torch.Tensor:
        return images_to_tensor(images, self.image_size).to(self.device, memory_format=memory_format(self.device))

    @torch.no_grad()
    def _features(self, x: torch.Tensor, net: Backbone | None = None) -> torch.Tensor:
        """(N, 3, S, S) on any device -> (N, D) float32 features of ``net`` (default: scoring net), batched."""
        net = net or self.scoring_net
        if net is None:
            raise RuntimeError(f"{type(self).__name__}: call fit() before scoring")
        net.eval()
        out = []
        batches = range(0, len(x), self.eval_batch_size)
        for i in tqdm(batches, desc="features", disable=not self.progress or len(batches) < 8, leave=False):
            xb = x[i : i + self.eval_batch_size].to(self.device, memory_format=memory_format(self.device))
            with autocast(self.device):
                out.append(net(xb).float())
        return torch.cat(out)

    @torch.no_grad()
    def _fit_density(self, shots: torch.Tensor, generator: torch.Generator | None = None) -> None:
        """Eq. 7 on D_TA: N_A positively augmented copies of the k shots (one batched augmentation).

        ``generator``: the fit's random stream (None: torch's global RNG).
        """
        if len(shots) * self.n_aug < 2:
            raise COFTADInputError(
                f"{len(shots)} shot(s) x n_aug={self.n_aug} gives fewer than 2 feature vectors; "
                "the covariance needs at least 2 (use n_aug >= 2 with a single shot)"
            )
        copies = self.augment.positive(shots.repeat(self.n_aug, 1, 1, 1), generator=generator)
        self.density.fit(self._features(copies))

    def fit(self, images: Images) -> FeatureDetector:
        """Train the scoring backbone on the shots (subclass-specific) and fit the Gaussian (Eq. 7)."""
        shots = self._to_device_batch(images)
        self.generator = torch.Generator(self.device).manual_seed(self.seed)
        with seeded(self.seed, self.device):
            self.scoring_net = self._train(shots)
            self._fit_density(shots, generator=self.generator)
        return self

    def embed(self, images: Images) -> np.ndarray:
        """(M,) images -> (M, D) float32 features of the scoring backbone (before L2 normalisation)."""
        return self._features(images_to_tensor(images, self.image_size)).cpu().numpy()

    def score_samples(self, images: Images) -> np.ndarray:
        """Eq. 8 Mahalanobis distance of each image's feature: (M,) float64, higher = more anomalous."""
        if self.density.mean is None:
            raise RuntimeError(f"{type(self).__name__}: call fit() before score_samples()")
        feats = self._features(images_to_tensor(images, self.image_size))
        return self.density.score(feats).cpu().numpy()
