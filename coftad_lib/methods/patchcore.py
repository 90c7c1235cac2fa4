"""PatchCore [8] in the few-shot setting: a memory bank of pretrained patch features, no training.

Not one of the paper's competitors in Tables I-V; Sec. V-D uses it as a scoring function and every
industrial benchmark reports it, so the tables carry it as an extra row.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import COFTADInputError
from ..images import Images
from .base import BaseDetector
from .patch_bank import PatchCoreScorer, patch_features


class PatchCoreDetector(BaseDetector):
    """PatchCore [8]: nearest-neighbour distance of test patches to the shots' patch bank.

    Patch features are :func:`~coftad_lib.methods.patch_bank.patch_features` of the frozen pretrained
    backbone (two mid-level maps, 3x3 local averaging, upsampled and concatenated). The image score
    is the largest distance of any test patch to its nearest bank patch (Eq. 6 of [8], without the
    re-weighting). ``steps``, ``batch_size`` and ``lr`` are accepted for a common interface and
    ignored: nothing is trained.

    Method-specific args:
        coreset_ratio: greedy coreset fraction ([8] Alg. 1). Default 1.0 keeps every patch: a
            few-shot bank is small (k x (S/8)^2 patches, e.g. 7,840 for 10 shots at 224 px), and
            subsampling it only removes normal variation. Lower it for 50-shot runs if memory matters.
        coreset_proj_dim: random projection used during coreset selection ([8]: 128).
        proj_dim: optional Gaussian random projection of the patch features themselves to fewer
            dimensions (our addition, off by default) to shrink the bank.
        pool: local neighbourhood size p ([8]: 3).
        count_include_pad: border neighbourhoods average over the zero padding too (True, as [8]
            and anomalib; see :func:`~coftad_lib.methods.patch_bank.patch_features` for why it matters).
        n_aug: positively augmented copies of the shots added to the bank. [8] uses none (0,
            default); > 0 is a few-shot variant that fills the bank with plausible normal shifts.
        chunk_elems: bound on distances computed at once (memory cap).
    """

    def __init__(self, *, coreset_ratio: float = 1.0, coreset_proj_dim: int | None = 128,
                 proj_dim: int | None = None, pool: int = 3, count_include_pad: bool = True,
                 n_aug: int = 0, chunk_elems: int = 2**26, **common: Any) -> None:
        super().__init__(**common)
        if proj_dim is not None and proj_dim < 1:
            raise COFTADInputError(f"PatchCore: proj_dim={proj_dim}; must be >= 1 or None")
        if n_aug < 0:
            raise COFTADInputError(f"PatchCore: n_aug={n_aug}; must be >= 0")
        self.coreset_ratio, self.coreset_proj_dim = coreset_ratio, coreset_proj_dim
        self.proj_dim, self.pool, self.n_aug, self.chunk_elems = proj_dim, pool, n_aug, chunk_elems
        self.count_include_pad = count_include_pad
        self.scorer = PatchCoreScorer(coreset_ratio=coreset_ratio, coreset_proj_dim=coreset_proj_dim,
                                      chunk_elems=chunk_elems, device=self.device, seed=self.seed)
        self.scoring_net = None
        self.projection: torch.Tensor | None = None  # (C, proj_dim)
        self.n_shots = 0

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) -> (N, P, C') patch features (projected when ``proj_dim`` is set)."""
        if self.scoring_net is None:
            raise RuntimeError("PatchCoreDetector: call fit() before scoring")
        feats = patch_features(self.scoring_net, x, pool=self.pool, batch_size=self.eval_batch_size,
                               count_include_pad=self.count_include_pad)
        if self.projection is None:
            return feats
        with torch.autocast(self.device.type, enabled=False):  # bank distances need fp32
            return feats @ self.projection

    def fit(self, images: Images) -> PatchCoreDetector:
        """Build the memory bank from the k shots (and ``n_aug`` augmented copies)."""
        shots = self.to_batch(images)
        with self.seeded(), torch.no_grad():
            self.scoring_net = self.new_backbone().eval().requires_grad_(False)
            channels = sum(self.scoring_net.map_channels)
            self.projection = None
            if self.proj_dim is not None and self.proj_dim < channels:
                self.projection = torch.randn(channels, self.proj_dim, device=self.device) / self.proj_dim**0.5
            bank_images = torch.cat([shots] + [self.augment.positive(shots) for _ in range(self.n_aug)])
            owners = torch.arange(len(shots)).repeat(1 + self.n_aug)  # copies belong to their shot
            self.scorer.fit(self.patches(bank_images), owners)
        self.n_shots = len(shots)
        return self

    def _grid(self, d: torch.Tensor) -> torch.Tensor:
        """(B, P) patch distances -> (B, 1, h, w) on the stride-8 grid of the square input."""
        side = math.isqrt(d.shape[1])  # images are resized to square inputs: square patch grids
        return d.view(len(d), 1, side, side)

    def patch_maps(self, images: Images) -> np.ndarray:
        """(M, S/8, S/8) float64 nearest-neighbour distance of each patch ([8] Sec. 3.3); max = score."""
        self._check_fitted("patch_maps")
        return self.batched(images, lambda x: self._grid(self.scorer.patch_distances(self.patches(x)))[:, 0],
                            "PatchCore")

    def anomaly_maps(self, images: Images, size: tuple[int, int] | None = None) -> np.ndarray:
        """(M, H, W) float64 anomaly maps: :meth:`patch_maps` bilinearly upsampled ([8] Sec. 3.3).

        Args:
            images: M images.
            size: (H, W) of the maps; default (S, S), the model input. Give an original image's
                (height, width) to overlay its map on it (the input was resized, not cropped, so
                the map stretches back the same way).
        """
        self._check_fitted("anomaly_maps")
        out = (self.image_size, self.image_size) if size is None else tuple(int(v) for v in size)
        if len(out) != 2 or min(out) < 1:
            raise COFTADInputError(f"PatchCore.anomaly_maps: size={size!r}; expected (height, width) >= 1 or None")

        def maps(x: torch.Tensor) -> torch.Tensor:
            grid = self._grid(self.scorer.patch_distances(self.patches(x)))
            return F.interpolate(grid, size=out, mode="bilinear", align_corners=False)[:, 0]

        return self.batched(images, maps, "PatchCore")

    def leave_one_out_scores(self, images: Images, n_copies: int = 0) -> np.ndarray:
        """Scores of the k shots (and ``n_copies`` augmented copies of each), each shot scored
        against the bank without its own patches (nor those of its augmented copies in the bank).

        ``images`` must be the shots given to :meth:`fit`, in the same order. Returns
        (k * (1 + n_copies),) float64, shot-major. Used by :func:`coftad_lib.threshold.fit_threshold`.
        With a coreset the bank is the coreset minus shot i's patches (not a new coreset of the rest).
        """
        self._check_fitted("leave_one_out_scores")
        shots = self.to_batch(images)
        if len(shots) != self.n_shots:
            raise COFTADInputError(f"PatchCore.leave_one_out_scores: got {len(shots)} images; pass the shots given to fit()")
        out = []
        with self.seeded(), torch.no_grad():
            for i in range(len(shots)):
                x = shots[i : i + 1]
                x = torch.cat([x] + [self.augment.positive(x) for _ in range(n_copies)])
                out.append(self.scorer.patch_distances(self.patches(x), exclude=i).amax(1).double().cpu())
        return torch.cat(out).numpy()

    def _check_fitted(self, what: str) -> None:
        if self.scorer.bank is None:
            raise RuntimeError(f"PatchCoreDetector: call fit() before {what}()")

    def score_samples(self, images: Images) -> np.ndarray:
        """(M,) float64: the largest patch distance of each image, higher = more anomalous."""
        self._check_fitted("score_samples")
        return self.batched(images, lambda x: self.scorer.patch_distances(self.patches(x)).amax(1), "PatchCore")
