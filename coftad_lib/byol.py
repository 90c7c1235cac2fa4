"""BYOL pieces (ref. [14]): projector g, predictor q, and the EMA update of the target network."""

from __future__ import annotations

import torch
from torch import nn

EMALists = tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor], list[torch.Tensor],
                 list[tuple[torch.Tensor, torch.Tensor]]]


def mlp_head(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    """BYOL's two-layer head: Linear -> BatchNorm -> ReLU -> Linear.

    Shape: (N, in_dim) -> (N, out_dim). Used for the projector g (in_dim = D) and the
    predictor q (in_dim = out_dim = P). The heads only ever run in training mode (batch
    statistics), so BatchNorm keeps no running statistics: less work per step, no in-place buffer
    updates (which would stop ``torch.func.vmap`` over several fits).
    """
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim), nn.BatchNorm1d(hidden_dim, track_running_stats=False),
        nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim),
    )


def ema_lists(target: nn.Module, online: nn.Module) -> EMALists:
    """The tensors :func:`ema_update` moves, gathered once per fit.

    Returns (target params, online params, target float buffers, online float buffers, other
    buffer pairs). Parameters frozen in the online network (``train_stages``) are left out: they
    never change, so target and online already agree on them.
    """
    pairs = [(t, o) for t, o in zip(target.parameters(), online.parameters(), strict=True) if o.requires_grad]
    bufs = list(zip(target.buffers(), online.buffers(), strict=True))
    fbufs = [(t, o) for t, o in bufs if t.dtype.is_floating_point]
    return ([t for t, _ in pairs], [o for _, o in pairs], [t for t, _ in fbufs], [o for _, o in fbufs],
            [(t, o) for t, o in bufs if not t.dtype.is_floating_point])


@torch.no_grad()
def ema_update(target: nn.Module | None, online: nn.Module | None, beta: float,
               lists: EMALists | None = None) -> None:
    """Theta^_t = beta * Theta^_{t-1} + (1 - beta) * Theta_t (Sec. III-A), for parameters and float buffers.

    Buffers (BatchNorm running statistics) follow the same average so the target's
    normalisation stays consistent with its weights; integer buffers are copied. One multi-tensor
    lerp for all parameters and one for all float buffers. Pass ``lists`` from :func:`ema_lists`
    to skip gathering the tensors every step.
    """
    t_params, o_params, t_bufs, o_bufs, others = lists if lists is not None else ema_lists(target, online)
    if t_params:
        torch._foreach_lerp_(t_params, o_params, 1.0 - beta)
    if t_bufs:
        torch._foreach_lerp_(t_bufs, o_bufs, 1.0 - beta)
    for t, o in others:
        t.copy_(o)
