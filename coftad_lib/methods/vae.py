"""VAE competitor (Sec. IV-B, refs. [45], [46]): reconstruction probability of a convolutional VAE.

Training maximises the ELBO of Kingma & Welling [45] with a Gaussian decoder that outputs a mean
and a variance per pixel. Scoring follows An & Cho [46] (Algorithm 4): draw L codes
z_l ~ q(z | x), decode each to (mu_x, sigma_x) and average the likelihood of x under them; the
anomaly score is the negative of that reconstruction probability.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import trange

from ..device import autocast, place
from ..errors import COFTADInputError
from ..images import Images
from .ae import bergmann_decoder, bergmann_encoder, net_size, resize_to
from .base import BaseDetector

# Decoder log-variance range: sigma_x from 0.01 to 1 for pixels in [0, 1]. Without a floor a
# few-shot VAE drives the variance of pixels it reconstructs well towards 0 and the likelihood
# of any test image (normal or not) towards -inf at those pixels.
LOGVAR_MIN, LOGVAR_MAX = math.log(1e-4), 0.0


class _ConvVAE(nn.Module):
    """Encoder q(z|x) and Gaussian decoder p(x|z) on [19]'s convolutional skeleton.

    Shapes: x (N, 3, S, S) -> (mu_z, logvar_z) each (N, d); z (N, d) -> (mu_x, logvar_x) each (N, 3, S, S).
    """

    def __init__(self, size: int, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = bergmann_encoder(size, 2 * latent_dim)
        self.decoder = bergmann_decoder(size, latent_dim, out_channels=6)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x).flatten(1).float()
        return h[:, : self.latent_dim], h[:, self.latent_dim :].clamp(-10, 10)

    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.decoder(z[:, :, None, None]).float()
        return torch.sigmoid(h[:, :3]), h[:, 3:].clamp(LOGVAR_MIN, LOGVAR_MAX)


def gaussian_log_likelihood(x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(x; mu, exp(logvar)) summed over pixels and channels: (N, 3, S, S) x3 -> (N,) fp32."""
    x, mu, logvar = x.float(), mu.float(), logvar.float()
    ll = -0.5 * (math.log(2 * math.pi) + logvar + (x - mu).pow(2) * torch.exp(-logvar))
    return ll.flatten(1).sum(1)


class VAEDetector(BaseDetector):
    """Convolutional VAE scored by reconstruction probability (VAE in Tables I-V).

    Method-specific args (source in brackets):
        latent_dim: size of z (ours: 100, the AE's [19] code size, so AE and VAE compare like for like).
        n_samples: L latent samples per test image ([46]'s L; 10).
        beta: weight of the KL term of the ELBO ([45]: 1).
        weight_decay: Adam weight decay (ours: 1e-5, as the AE's [19]).
    Common args with VAE-specific defaults:
        steps: 1000 (ours): trained from scratch, like the AE; see :class:`AutoencoderDetector`.
        lr: 3e-4 (the paper's Adam setting, Sec. IV-C; [45] used Adagrad, [46] gives none).
    Backbone args are accepted and ignored (``uses_backbone = False``).

    Score: -(1/L) sum_l log p(x | mu_x(z_l), sigma_x(z_l)) / (3 S^2), z_l ~ q(z|x). [46] averages
    the likelihood itself; over thousands of pixels the log of that average is the single best
    sample's log-likelihood, so we average log-likelihoods (a lower bound of the same quantity, by
    Jensen) which uses all L samples. Dividing by the pixel count only rescales. (M,) float64.
    """

    uses_backbone = False

    def __init__(self, *, latent_dim: int = 100, n_samples: int = 10, beta: float = 1.0,
                 weight_decay: float = 1e-5, steps: int = 1000, lr: float = 3e-4, **common: Any) -> None:
        super().__init__(steps=steps, lr=lr, **common)
        if latent_dim < 1:
            raise COFTADInputError(f"latent_dim={latent_dim}: must be >= 1")
        if n_samples < 1:
            raise COFTADInputError(f"n_samples={n_samples}: the number L of latent samples must be >= 1")
        if beta < 0 or weight_decay < 0:
            raise COFTADInputError(f"beta={beta}, weight_decay={weight_decay}: must be >= 0")
        self.latent_dim, self.n_samples, self.beta, self.weight_decay = latent_dim, n_samples, beta, weight_decay
        self.net_size = net_size(self.image_size)
        self.net: _ConvVAE | None = None
        self.history: list[dict[str, float]] = []

    def fit(self, images: Images) -> VAEDetector:
        """Maximise the ELBO (one reparameterised z per image) on augmented batches of the (k, 3, S, S) shots."""
        shots = self.to_batch(images)
        n_pix = 3 * self.net_size**2
        with self.seeded():
            net = place(_ConvVAE(self.net_size, self.latent_dim), self.device)
            opt = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            net.train()
            self.history = []
            for step in trange(self.steps, desc="VAE training", disable=not self.progress, leave=False):
                x = resize_to(self.augment.positive(self.sample_batch(shots)), self.net_size).clamp(0, 1)
                with autocast(self.device):
                    mu_z, logvar_z = net.encode(x)
                    z = mu_z + torch.randn_like(mu_z) * torch.exp(0.5 * logvar_z)
                    mu_x, logvar_x = net.decode(z)
                nll = -gaussian_log_likelihood(x, mu_x, logvar_x).mean()
                kl = 0.5 * (mu_z.pow(2) + logvar_z.exp() - 1 - logvar_z).sum(1).mean()
                # Per-pixel scale keeps the loss, and so Adam's effective step, independent of S.
                loss = (nll + self.beta * kl) / n_pix
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                self.history.append({"step": step, "loss": float(loss.detach()),
                                     "nll": float(nll.detach()) / n_pix, "kl": float(kl.detach()) / n_pix})
        self.net = net.eval().requires_grad_(False)
        return self

    def score_samples(self, images: Images) -> np.ndarray:
        """Negative reconstruction probability of [46] per image: (M,) float64, higher = more anomalous."""
        if self.net is None:
            raise RuntimeError(f"{type(self).__name__}: call fit() before score_samples()")
        net, n_pix = self.net, 3 * self.net_size**2
        # The L latent samples are drawn with their own seeded generator so scoring is repeatable
        # and does not consume the caller's global RNG.
        gen = torch.Generator(device=self.device).manual_seed(self.seed)

        def score(x: torch.Tensor) -> torch.Tensor:
            x = resize_to(x, self.net_size)
            mu_z, logvar_z = net.encode(x)
            std = torch.exp(0.5 * logvar_z)
            total = torch.zeros(len(x), device=x.device)
            for _ in range(self.n_samples):  # L batched decodes; memory stays at one batch
                z = mu_z + std * torch.randn(mu_z.shape, generator=gen, device=x.device)
                total += gaussian_log_likelihood(x, *net.decode(z))
            return -total / (self.n_samples * n_pix)

        return self.batched(images, score, "VAE scoring")
