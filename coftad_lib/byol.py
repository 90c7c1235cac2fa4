"""BYOL pieces (ref. [14]): projector g, predictor q, and the EMA update of the target network."""

from __future__ import annotations

import torch
from torch import nn


def mlp_head(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    """BYOL's two-layer head: Linear -> BatchNorm -> ReLU -> Linear.

    Shape: (N, in_dim) -> (N, out_dim). Used for the projector g (in_dim = D) and the
    predictor q (in_dim = out_dim = P).
    """
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True),
        nn.Linear(hidden_dim, out_dim),
    )


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, beta: float) -> None:
    """Theta^_t = beta * Theta^_{t-1} + (1 - beta) * Theta_t (Sec. III-A), for parameters and float buffers.

    Buffers (BatchNorm running statistics) follow the same average so the target's
    normalisation stays consistent with its weights.
    """
    t_params = [p for p in target.parameters()]
    o_params = [p for p in online.parameters()]
    torch._foreach_lerp_(t_params, o_params, 1.0 - beta)
    for tb, ob in zip(target.buffers(), online.buffers(), strict=True):
        if tb.dtype.is_floating_point:
            tb.lerp_(ob, 1.0 - beta)
        else:
            tb.copy_(ob)
