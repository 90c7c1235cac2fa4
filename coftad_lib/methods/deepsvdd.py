"""DeepSVDD competitor (Sec. IV-B, ref. [22]): one-class Deep SVDD of Ruff et al. 2018.

The ImageNet backbone phi is trained so that features of (positively augmented) normal shots
move towards a centre c fixed before training:
    min_W  1/n sum_i ||phi(x_i; W) - c||^2  (+ weight decay),      score(x) = ||phi(x; W) - c||^2.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from tqdm.auto import trange

from ..device import autocast
from ..errors import COFTADInputError
from ..images import Images
from .base import BaseDetector


class DeepSVDDDetector(BaseDetector):
    """One-class Deep SVDD on an ImageNet-initialised backbone (DeepSVDD in Tables I-V).

    Collapse: [22] (Prop. 2) shows that bias terms let the network map everything to c. Here the
    bias terms of the backbones are BatchNorm shifts (their convolutions have no bias), so with
    ``freeze_bias=True`` every 1-D parameter (BN scale and shift, any bias) is frozen and BatchNorm
    stays in eval mode with its ImageNet running statistics: only convolution weights train, which
    is [22]'s bias-free network. It does not stop the other collapse route of [22] (Prop. 3,
    bounded activations): pooled ReLU/ReLU6 features can switch off. Measured on the tests'
    synthetic task with efficientnet_lite0 (lr 1e-4): the first few steps kill features and AUROC
    dips, then recovers after ~15-25 steps at 48-64 px; at 32 px, where only ~90 of the 1280 pooled
    features are non-zero to begin with, it may not recover. Use image sizes near 224.

    Method-specific args (source in brackets):
        weight_decay: Adam weight decay, [22]'s lambda (1e-6).
        center_eps: centre coordinates with |c_j| < eps are set to +-eps, as in [22]'s code, so that
            a unit cannot reach its centre by dying (0.1). A unit that is already dead (zero on every
            shot) gets no gradient and stays at distance eps, a constant added to every score.
        freeze_bias: see above (True; ours, following [22]'s no-bias requirement).
    Common args with DeepSVDD-specific defaults:
        lr: 1e-4 ([22], Adam). steps: 200 (as COFT-AD; [22] trains 150 + 100 epochs from scratch).

    Shapes: images -> (N, 3, S, S); features (N, D); scores (M,) float64.
    """

    def __init__(self, *, weight_decay: float = 1e-6, center_eps: float = 0.1, freeze_bias: bool = True,
                 lr: float = 1e-4, **common: Any) -> None:
        super().__init__(lr=lr, **common)
        if weight_decay < 0 or center_eps < 0:
            raise COFTADInputError(f"weight_decay={weight_decay}, center_eps={center_eps}: must be >= 0")
        self.weight_decay, self.center_eps, self.freeze_bias = weight_decay, center_eps, freeze_bias
        self.net: torch.nn.Module | None = None
        self.center: torch.Tensor | None = None  # (D,) float32
        self.history: list[dict[str, float]] = []

    @torch.no_grad()
    def _init_center(self, net: torch.nn.Module, shots: torch.Tensor) -> torch.Tensor:
        """c = mean of the initial network's features of the clean (k, 3, S, S) shots, [22] Sec. 3.3."""
        feats = []
        for i in range(0, len(shots), self.eval_batch_size):
            with autocast(self.device):
                feats.append(net(shots[i : i + self.eval_batch_size]).float())
        c = torch.cat(feats).mean(0)
        small = c.abs() < self.center_eps
        c[small & (c < 0)] = -self.center_eps
        c[small & (c >= 0)] = self.center_eps
        return c

    def fit(self, images: Images) -> DeepSVDDDetector:
        """Fix c on the (k, 3, S, S) shots, then minimise the mean squared distance to c on augmented batches."""
        shots = self.to_batch(images)
        with self.seeded():
            net = self.new_backbone()
            # eval(): BatchNorm keeps its running statistics (see class docstring); no dropout.
            net.eval()
            center = self._init_center(net, shots)
            if self.freeze_bias:
                for p in net.parameters():
                    if p.ndim <= 1:
                        p.requires_grad_(False)
            params = [p for p in net.parameters() if p.requires_grad]
            opt = torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
            self.history = []
            for step in trange(self.steps, desc="DeepSVDD training", disable=not self.progress, leave=False):
                x = self.augment.positive(self.sample_batch(shots))
                with autocast(self.device):
                    z = net(x).float()
                loss = (z - center).pow(2).sum(1).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                self.history.append({"step": step, "loss": float(loss.detach())})
        self.net, self.center = net.requires_grad_(False), center
        return self

    def embed(self, images: Images) -> np.ndarray:
        """(M,) images -> (M, D) features phi(x) of the trained network (float64)."""
        net = self._fitted()
        return self.batched(images, lambda x: net(x).float(), "DeepSVDD features")

    def score_samples(self, images: Images) -> np.ndarray:
        """||phi(x) - c||^2 per image: (M,) float64, higher = more anomalous."""
        net, c = self._fitted(), self.center
        return self.batched(images, lambda x: (net(x).float() - c).pow(2).sum(1), "DeepSVDD scoring")

    def _fitted(self) -> torch.nn.Module:
        if self.net is None:
            raise RuntimeError(f"{type(self).__name__}: call fit() before score_samples()")
        return self.net
