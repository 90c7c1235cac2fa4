"""Gaussian density on L2-normalised features and the Mahalanobis score (Eqs. 7-8)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import COFTADInputError


class GaussianDensity:
    """Multivariate Gaussian fitted by maximum likelihood; score = Mahalanobis distance.

    Args:
        l2_normalize: L2-normalise features before fitting and scoring (Sec. III-D). The
            ablation of Table VI's last row switches it off.
        eps: added to the diagonal of Sigma so it is invertible (Sec. III-D, "small epsilon").
            With k * N_A = 50 vectors in 512-1280 dimensions Sigma has rank <= 49, so eps sets
            the scale of the null space. 1e-3 is about the per-dimension variance of unit vectors
            in D ~ 1000. Measured on the pretrained Lite0 Gaussian at 128 px, 3 seeds
            (benchmarks/results/eps_check/): 1e-4..1e-1 moved the Flowers17 mean (8 pairs) by
            < 0.25 point, but single fits by up to 10 points at 1e-1 (up to 0.9 at 1e-4); on MVTec
            bottle (2/5/10 shots) the mean fell with larger eps (96.8, 96.5, 95.8, 94.6). 1e-3
            stays: within 0.4 of the best on both, and 10x from the unstable end.
    """

    def __init__(self, l2_normalize: bool = True, eps: float = 1e-3) -> None:
        self.l2_normalize = l2_normalize
        self.eps = eps
        self.mean: torch.Tensor | None = None  # (D,) float64
        self.precision_chol: torch.Tensor | None = None  # (D, D) float64, lower Cholesky factor of Sigma

    def _prep(self, feats: torch.Tensor, what: str) -> torch.Tensor:
        feats = feats.detach().to(torch.float64)
        finite = torch.isfinite(feats).all(1)
        if not bool(finite.all()):
            i = int((~finite).nonzero()[0])
            raise COFTADInputError(
                f"{what}: feature vector {i} ({int((~finite).sum())} of {len(feats)}) contains NaN or infinity; "
                "the images or the network produced it (check the inputs; if training diverged, lower lr)"
            )
        return F.normalize(feats, dim=1) if self.l2_normalize else feats

    def fit(self, feats: torch.Tensor) -> GaussianDensity:
        """Eq. 7: mu and Sigma (MLE, divide by N) of (N, D) features; needs N >= 2."""
        if feats.ndim != 2:
            raise COFTADInputError(f"features: expected an (N, D) matrix, got shape {tuple(feats.shape)}")
        if len(feats) < 2:
            raise COFTADInputError(
                f"the Gaussian needs at least 2 feature vectors, got {len(feats)}; "
                "use more shots or more augmented copies (n_aug)"
            )
        x = self._prep(feats, "GaussianDensity.fit")
        self.mean = x.mean(0)
        xc = x - self.mean
        sigma = xc.T @ xc / len(x)
        sigma += self.eps * torch.eye(sigma.shape[0], dtype=sigma.dtype, device=sigma.device)
        chol, info = torch.linalg.cholesky_ex(sigma)
        if int(info) != 0:
            raise COFTADInputError(f"GaussianDensity.fit: the covariance of {len(x)} features is not positive definite "
                                   f"with eps={self.eps}; use eps > 0 (e.g. 1e-3)")
        self.precision_chol = chol
        return self

    def score(self, feats: torch.Tensor) -> torch.Tensor:
        """Eq. 8: d_AS = sqrt((f - mu)^T Sigma^{-1} (f - mu)) for (M, D) features -> (M,) float64."""
        if self.mean is None or self.precision_chol is None:
            raise RuntimeError("GaussianDensity.score called before fit")
        x = self._prep(feats, "GaussianDensity.score").to(self.mean.device) - self.mean
        # Solving L y = x (Sigma = L L^T) gives ||y||^2 = x^T Sigma^{-1} x without forming the inverse.
        y = torch.linalg.solve_triangular(self.precision_chol, x.T, upper=False)
        return y.pow(2).sum(0).sqrt()

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors needed to score: mean (D,) and Cholesky factor (D, D)."""
        return {"mean": self.mean, "chol": self.precision_chol}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.mean, self.precision_chol = state["mean"].to(torch.float64), state["chol"].to(torch.float64)
