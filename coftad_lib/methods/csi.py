"""CSI competitor (Sec. IV-B, ref. [37]): contrastive learning on distributionally shifted instances.

Tack et al. [37] treat rotations S = {0, 90, 180, 270} as *shifting* transformations: a rotated
image is a different instance, not a positive view. Training (their Eq. 5-7):
    L_CSI = L_con-SI + lambda * L_cls-SI,
with L_con-SI the NT-Xent (SimCLR) loss over 2 augmented views of every (image, rotation) pair,
all other pairs (other rotations of the same image included) being negatives, and L_cls-SI the
cross-entropy of a linear head predicting the rotation. Score (their Sec. 2.3, "CSI score"):
    s(x) = sum_s [ w_s^con * max_m <z(T_s x), z(T_s x_m)> / ||z(T_s x_m)||  +  w_s^cls * W_s f(T_s x) ],
with z = g(f(.)) the projection-head output, x_m the normal training images, and the balancing
weights w_s^con = 1 / mean_m ||z(T_s x_m)||, w_s^cls = 1 / mean_m W_s f(T_s x_m) computed on them.
s is higher for normal images; we return -s.

Simplified from [37]: the training images x_m of the score are the k clean shots (no
augmented copies), and the score uses one view of the test image instead of CSI's ensemble over
10 random augmentations. The backbone starts from ImageNet weights (Sec. IV-C) instead of random.
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
from .rotnet import BN_MODES, N_ROTATIONS, all_rotations


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's NT-Xent loss: (n, P) views 1 and 2 of n instances -> scalar, computed in fp32.

    Row i of z1 is the positive of row i of z2; the other 2n - 2 rows are its negatives.
    """
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    n = len(z1)
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, targets)


class CSIDetector(BaseDetector):
    """CSI of [37] fine-tuned from ImageNet weights (CSI in Tables I-V).

    ``batch_size`` counts images before shifting: each step forwards 2 views x 4 rotations x
    batch_size inputs.

    Method-specific args (source in brackets):
        temperature: NT-Xent temperature tau ([37]: 0.5).
        lambda_shift: weight lambda of L_cls-SI ([37]: 1).
        proj_dim: output size of the projection head g, Linear(D, D) -> ReLU -> Linear(D, proj_dim)
            ([37]'s code and SimCLR: 128).
        bn_mode: "eval" or "train" BatchNorm while fine-tuning (ours: "eval", as COFT-AD, because
            batches drawn from a handful of shots give unrepresentative statistics).
    Common args with CSI-specific defaults:
        batch_size: 32 ([37]'s per-GPU batch of 32 images, i.e. 256 shifted views per step).
        steps: 200, lr: 3e-4 (Adam): COFT-AD's settings; [37] trains from scratch with LARS.

    Shapes: images -> (N, 3, S, S); features (4N, D); projections (4N, proj_dim); scores (M,) float64.
    """

    def __init__(self, *, temperature: float = 0.5, lambda_shift: float = 1.0, proj_dim: int = 128,
                 bn_mode: Literal["eval", "train"] = "eval", batch_size: int = 32, **common: Any) -> None:
        super().__init__(batch_size=batch_size, **common)
        if temperature <= 0:
            raise COFTADInputError(f"temperature={temperature}: must be > 0")
        if lambda_shift < 0:
            raise COFTADInputError(f"lambda_shift={lambda_shift}: must be >= 0")
        if proj_dim < 1:
            raise COFTADInputError(f"proj_dim={proj_dim}: must be >= 1")
        if bn_mode not in BN_MODES:
            raise COFTADInputError(f"bn_mode={bn_mode!r}; choose one of {', '.join(BN_MODES)}")
        self.temperature, self.lambda_shift, self.proj_dim, self.bn_mode = temperature, lambda_shift, proj_dim, bn_mode
        self.net: torch.nn.Module | None = None
        self.proj: nn.Module | None = None
        self.shift_head: nn.Linear | None = None
        self.train_axes: torch.Tensor | None = None  # (4, k, P) unit projections of the rotated shots
        self.weight_con: torch.Tensor | None = None  # (4,)
        self.weight_cls: torch.Tensor | None = None  # (4,)
        self.history: list[dict[str, float]] = []

    def _heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, S, S) -> rotation-major projections z (4, N, P) and correct-shift logits (4, N), fp32."""
        xr, y = all_rotations(x)
        f = self.net(xr)
        z = self.proj(f).float().view(N_ROTATIONS, len(x), -1)
        logit = self.shift_head(f).float().gather(1, y[:, None]).view(N_ROTATIONS, len(x))
        return z, logit

    def fit(self, images: Images) -> CSIDetector:
        """Minimise L_CSI on augmented (k, 3, S, S) shots, then store the shots' projections and weights."""
        shots = self.to_batch(images)
        with self.seeded():
            net = self.new_backbone()
            dim = net.feature_dim
            proj = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, self.proj_dim)).to(self.device)
            shift_head = nn.Linear(dim, N_ROTATIONS).to(self.device)
            params = [*net.parameters(), *proj.parameters(), *shift_head.parameters()]
            opt = torch.optim.Adam(params, lr=self.lr)
            net.train(self.bn_mode == "train")
            self.history = []
            for step in trange(self.steps, desc="CSI training", disable=not self.progress, leave=False):
                # As in [37]'s code: shift first, then draw the two augmented views of each shifted image.
                xr, y = all_rotations(self.sample_batch(shots))
                n = len(xr)
                views = torch.cat([self.augment.positive(xr), self.augment.positive(xr)])
                with autocast(self.device):
                    f = net(views)
                    z = proj(f)
                    logits = shift_head(f).float()
                con = nt_xent(z[:n], z[n:], self.temperature)
                cls = F.cross_entropy(logits, torch.cat([y, y]))
                loss = con + self.lambda_shift * cls
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                self.history.append({"step": step, "loss": float(loss.detach()), "con": float(con.detach()),
                                     "cls": float(cls.detach())})
        self.net = net.eval().requires_grad_(False)
        self.proj, self.shift_head = proj.eval().requires_grad_(False), shift_head.eval().requires_grad_(False)
        self._fit_score(shots)
        return self

    @torch.no_grad()
    def _fit_score(self, shots: torch.Tensor) -> None:
        """Training axes and balancing weights of the CSI score from the clean shots."""
        zs, logits = [], []
        for i in range(0, len(shots), self.eval_batch_size):
            with autocast(self.device):
                z, logit = self._heads(shots[i : i + self.eval_batch_size])
            zs.append(z)
            logits.append(logit)
        z, logit = torch.cat(zs, 1), torch.cat(logits, 1)
        self.train_axes = F.normalize(z, dim=2)
        self.weight_con = 1.0 / z.norm(dim=2).mean(1).clamp_min(1e-6)
        # [37] divides by the mean correct-shift logit, which is positive once the head has trained;
        # the absolute value keeps an untrained head (steps=0) from flipping the term's sign.
        self.weight_cls = 1.0 / logit.mean(1).abs().clamp_min(1e-6)

    def score_samples(self, images: Images) -> np.ndarray:
        """Negative CSI score per image: (M,) float64, higher = more anomalous."""
        if self.net is None or self.train_axes is None:
            raise RuntimeError(f"{type(self).__name__}: call fit() before score_samples()")
        axes, w_con, w_cls = self.train_axes, self.weight_con, self.weight_cls

        def score(x: torch.Tensor) -> torch.Tensor:
            z, logit = self._heads(x)
            # <z, axis_m> = ||z|| * cos(z, z_m); max over the k shots of the same shift.
            con = torch.einsum("snp,skp->snk", z, axes).amax(2)
            return -(w_con[:, None] * con + w_cls[:, None] * logit).sum(0)

        return self.batched(images, score, "CSI scoring")
