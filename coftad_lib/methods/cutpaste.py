"""CutPaste [15] (Sec. IV-B): learn to tell normal images from CutPaste and scar copies, then
score with a Gaussian on the learned features, few-shot.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import trange

from ..augment import CutPaste
from ..backbones import Backbone
from ..density import GaussianDensity
from ..device import autocast
from ..errors import COFTADInputError
from ..images import Images
from .base import BaseDetector


class CutPasteDetector(BaseDetector):
    """CutPaste 3-way [15]: backbone + linear head classifying normal / CutPaste / scar.

    Each step draws ``batch_size`` shots with replacement, applies the preset's positive
    augmentation t(.) (the "basic augmentation" every class gets in [15]), and makes a CutPaste
    ("normal" mode) and a scar copy of every image; the network is trained with cross-entropy on
    the 3 * batch_size images. Scoring, as in [15]: a Gaussian density (GDE) fitted on the pooled
    backbone features of ``n_aug`` positively augmented copies of the shots; the score is the
    Mahalanobis distance (Eq. 8), so it matches COFT-AD's scorer and differs only in training.

    Method-specific args:
        n_aug: augmented copies of the shots for the Gaussian (10, COFT-AD's N_A, so both are
            scored alike).
        l2_normalize, eps: :class:`~coftad_lib.density.GaussianDensity` (as COFT-AD; [15] also
            L2-normalises before its GDE).
        mlp_head: put [15]'s MLP projection head (D -> 512 -> 128, ReLU) before the linear
            classifier. Off by default: the brief of this replication asks for a linear head, and
            with a few hundred steps the extra head adds parameters that the shots cannot fit.
        bn_mode: "eval" keeps BatchNorm running statistics frozen during training (affine weights
            still learn), "train" uses batch statistics. A batch here holds only k distinct
            images, so "eval", the same choice as COFT-AD (see COFTADConfig.bn_mode).

    The common arguments (backbone, steps, batch_size, lr, preset, seed, ...) are those of
    :class:`~coftad_lib.methods.base.BaseDetector`; Adam with the paper's lr for all methods
    (Sec. IV-C) replaces [15]'s SGD.
    """

    def __init__(self, *, n_aug: int = 10, l2_normalize: bool = True, eps: float = 1e-3,
                 mlp_head: bool = False, bn_mode: str = "eval", **common: Any) -> None:
        super().__init__(**common)
        if n_aug < 1:
            raise COFTADInputError(f"CutPaste: n_aug={n_aug}; the number of augmented copies must be >= 1")
        if bn_mode not in ("eval", "train"):
            raise COFTADInputError(f"CutPaste: bn_mode={bn_mode!r}; choose 'eval' or 'train'")
        self.n_aug, self.mlp_head, self.bn_mode = n_aug, mlp_head, bn_mode
        self.cutpaste = CutPaste("normal")
        self.scar = CutPaste("scar")
        self.density = GaussianDensity(l2_normalize=l2_normalize, eps=eps)
        self.scoring_net: Backbone | None = None
        self.history: list[dict[str, float]] = []

    def _head(self, dim: int) -> nn.Module:
        if self.mlp_head:
            return nn.Sequential(nn.Linear(dim, 512), nn.BatchNorm1d(512), nn.ReLU(inplace=True),
                                 nn.Linear(512, 128), nn.BatchNorm1d(128), nn.ReLU(inplace=True), nn.Linear(128, 3))
        return nn.Linear(dim, 3)

    def _train(self, shots: torch.Tensor) -> Backbone:
        """(k, 3, S, S) shots -> the trained backbone (3-way cross-entropy)."""
        net = self.new_backbone()
        head = self._head(net.feature_dim).to(self.device)
        opt = torch.optim.Adam(list(net.parameters()) + list(head.parameters()), lr=self.lr)
        n = self.batch_size
        labels = torch.arange(3, device=self.device).repeat_interleave(n)
        self.history = []
        for step in trange(self.steps, desc="CutPaste training", disable=not self.progress, leave=False):
            net.train(self.bn_mode == "train")
            head.train()
            x = self.augment.positive(self.sample_batch(shots))
            batch = torch.cat([x, self.cutpaste(x), self.scar(x)])
            with autocast(self.device):
                logits = head(net(batch))
                loss = F.cross_entropy(logits.float(), labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            acc = (logits.detach().argmax(1) == labels).float().mean()
            self.history.append({"step": step, "loss": float(loss.detach()), "acc": float(acc)})
        return net.eval()

    def fit(self, images: Images) -> CutPasteDetector:
        """Train on the shots, then fit the Gaussian on ``n_aug`` augmented copies (GDE of [15])."""
        shots = self.to_batch(images)
        if len(shots) * self.n_aug < 2:
            raise COFTADInputError(f"CutPaste: {len(shots)} shot(s) x n_aug={self.n_aug} < 2 feature vectors for the Gaussian")
        with self.seeded():
            self.scoring_net = self._train(shots)
            with torch.no_grad():
                copies = torch.cat([self.augment.positive(shots) for _ in range(self.n_aug)])
            self.density.fit(torch.from_numpy(self.embed(copies)))
        return self

    def embed(self, images: Images) -> np.ndarray:
        """(M,) images -> (M, D) float32 pooled features of the trained backbone (before L2 norm)."""
        if self.scoring_net is None:
            raise RuntimeError("CutPasteDetector: call fit() before embed()")
        net = self.scoring_net.eval()
        return self.batched(images, net, "CutPaste features").astype(np.float32)

    def score_samples(self, images: Images) -> np.ndarray:
        """(M,) float64 Mahalanobis distances (Eq. 8), higher = more anomalous."""
        if self.density.mean is None:
            raise RuntimeError("CutPasteDetector: call fit() before score_samples()")
        return self.density.score(torch.from_numpy(self.embed(images))).cpu().numpy()
