"""RotNet competitor (Sec. IV-B, ref. [23]): anomaly detection by predicting geometric transformations.

Golan & El-Yaniv [23] train a classifier to recognise which transformation was applied to a normal
image and score a test image by how well the classifier recognises the transformations applied to
it. We use the rotation subset {0, 90, 180, 270} (the "RotNet" name of the paper; also the
rotation-only variant of Hendrycks et al. 2019) on an ImageNet backbone with a linear 4-way head:
    train:  CE(h(f(rot_r(t(x)))), r) over r = 0..3;
    score:  -(1/4) sum_r log softmax(h(f(rot_r(x))))_r      (higher = more anomalous).
Simplified from [23]: 4 rotations instead of 72 flips x translations x rotations, and the
mean log-probability of the correct transformation (their simplified score) instead of the
Dirichlet likelihood fitted on the training softmax outputs.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import trange

from ..device import autocast
from ..errors import COFTADInputError
from ..images import Images
from .base import BaseDetector

N_ROTATIONS = 4
BN_MODES = ("eval", "train")


def all_rotations(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C, S, S) -> the four rotations stacked rotation-major (4N, C, S, S) and labels (4N,) in 0..3."""
    rotated = torch.cat([torch.rot90(x, r, dims=(2, 3)) for r in range(N_ROTATIONS)])
    labels = torch.arange(N_ROTATIONS, device=x.device).repeat_interleave(len(x))
    return rotated, labels


class RotNetDetector(BaseDetector):
    """Rotation-prediction anomaly detector of [23] on an ImageNet backbone (RotNet in Tables I-V).

    ``batch_size`` counts images before rotation: each step forwards 4 x batch_size inputs.

    Method-specific args (source in brackets):
        bn_mode: "eval" keeps BatchNorm's ImageNet running statistics while fine-tuning (its affine
            weights still train), "train" uses batch statistics. Ours: "eval", as COFT-AD's default,
            because batches drawn from a handful of shots give unrepresentative statistics.
    Common args: steps 200, batch_size 64, lr 3e-4 (Adam), COFT-AD's settings (Sec. IV-C);
        [23] trains a WRN from scratch, which few shots cannot support.

    Shapes: images -> (N, 3, S, S); logits (4N, 4); scores (M,) float64.
    """

    def __init__(self, *, bn_mode: Literal["eval", "train"] = "eval", **common: Any) -> None:
        super().__init__(**common)
        if bn_mode not in BN_MODES:
            raise COFTADInputError(f"bn_mode={bn_mode!r}; choose one of {', '.join(BN_MODES)}")
        self.bn_mode = bn_mode
        self.net: torch.nn.Module | None = None
        self.head: nn.Linear | None = None
        self.history: list[dict[str, float]] = []

    def fit(self, images: Images) -> RotNetDetector:
        """Fine-tune backbone + linear head to classify the rotation of augmented (k, 3, S, S) shots."""
        shots = self.to_batch(images)
        with self.seeded():
            net = self.new_backbone()
            head = nn.Linear(net.feature_dim, N_ROTATIONS).to(self.device)
            opt = torch.optim.Adam(list(net.parameters()) + list(head.parameters()), lr=self.lr)
            net.train(self.bn_mode == "train")
            self.history = []
            for step in trange(self.steps, desc="RotNet training", disable=not self.progress, leave=False):
                x, y = all_rotations(self.augment.positive(self.sample_batch(shots)))
                with autocast(self.device):
                    logits = head(net(x)).float()
                loss = F.cross_entropy(logits, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                acc = (logits.argmax(1) == y).float().mean()
                self.history.append({"step": step, "loss": float(loss.detach()), "acc": float(acc)})
        self.net, self.head = net.eval().requires_grad_(False), head.eval().requires_grad_(False)
        return self

    def rotation_log_probs(self, images: Images) -> np.ndarray:
        """(M, 4) float64: log p(r | rot_r(x)) of the correct rotation r for each image."""
        net, head = self._fitted()

        def log_probs(x: torch.Tensor) -> torch.Tensor:
            xr, y = all_rotations(x)
            logp = F.log_softmax(head(net(xr)).float(), dim=1)
            return logp.gather(1, y[:, None]).view(N_ROTATIONS, len(x)).T

        return self.batched(images, log_probs, "RotNet scoring")

    def score_samples(self, images: Images) -> np.ndarray:
        """-(1/4) sum_r log p(r | rot_r(x)): (M,) float64, higher = more anomalous."""
        return -self.rotation_log_probs(images).mean(1)

    def _fitted(self) -> tuple[torch.nn.Module, nn.Linear]:
        if self.net is None or self.head is None:
            raise RuntimeError(f"{type(self).__name__}: call fit() before score_samples()")
        return self.net, self.head
