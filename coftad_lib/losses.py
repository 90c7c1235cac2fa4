"""The three training losses of COFT-AD (Eqs. 1, 4, 5) and the fixed-centre alternative of Table VI.

Every loss is a (negative) mean cosine similarity, so all three live on the same scale and the
weights of Eq. 6 (1, lambda_PP = 0.8, lambda_NP = 0.6) compare like with like. Arguments named
``target_*`` come from the EMA network and are detached here, which is what stops collapse.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine similarity of two (N, D) tensors -> (N,), computed in fp32."""
    return F.cosine_similarity(a.float(), b.float(), dim=-1, eps=1e-8)


def byol_loss(online_pred_1: torch.Tensor, online_pred_2: torch.Tensor,
              target_proj_1: torch.Tensor, target_proj_2: torch.Tensor) -> torch.Tensor:
    """Symmetrised contrastive loss of Eq. 1.

    L_Con = -1/(2N) sum_i [cos(q(g(z_i^1)), g^(z^_i^2)) + cos(q(g(z_i^2)), g^(z^_i^1))]:
    the online prediction of one view against the target projection of the other view.

    Args:
        online_pred_k: (N, P) predictor outputs q(g(z)) of view k (online network).
        target_proj_k: (N, P) projector outputs of view k from the EMA target network.
    Returns:
        scalar in [-1, 1].
    """
    return -0.5 * (_cos(online_pred_1, target_proj_2.detach()) + _cos(online_pred_2, target_proj_1.detach())).mean()


def cross_instance_loss(online_feat: torch.Tensor, target_feat: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Cross-instance positive-pair loss of Eq. 4 on backbone features.

    Image i is paired with image perm[i] (another normal sample), and both directions count:
    L_PP = -1/(2N) sum_i [cos(f(x_i), f^(x_p(i))) + cos(f(x_p(i)), f^(x_i))].

    Args:
        online_feat: (N, D) online backbone features f(t(X)).
        target_feat: (N, D) target backbone features f(t(X); Theta^) of the same images.
        perm: (N,) long, a random permutation of range(N).
    """
    t = target_feat.detach()
    return -0.5 * (_cos(online_feat, t[perm]) + _cos(online_feat[perm], t)).mean()


def negative_pair_loss(target_clean_feat: torch.Tensor, online_neg_feat: torch.Tensor) -> torch.Tensor:
    """Negative-pair loss of Eq. 5: L_NP = 1/N sum_i cos(f(X_i; Theta^), f(t_n(X_i); Theta)).

    Args:
        target_clean_feat: (N, D) EMA-target features of the clean images X_i.
        online_neg_feat: (N, D) online features of their negative augmentations t_n(X_i).
    """
    return _cos(target_clean_feat.detach(), online_neg_feat).mean()


def fixed_center_loss(online_feat: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
    """Deep-SVDD-style positive loss towards a centre fixed at the first forward pass (Table VI, "F.C.").

    Written as a negative cosine so it is a drop-in replacement for Eq. 4:
    L_FC = -1/N sum_i cos(f(x_i), c).

    Args:
        online_feat: (N, D) online backbone features.
        center: (D,) the fixed centre c.
    """
    return -_cos(online_feat, center.detach().expand_as(online_feat)).mean()
