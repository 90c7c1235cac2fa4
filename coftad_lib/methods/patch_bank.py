"""PatchCore's memory bank [8]: locally aware patch features, greedy coreset, nearest-bank distance.

:class:`PatchCoreScorer` is the ``"patchcore"`` scorer of Table VIII
(:func:`coftad_lib.methods.scorers.score_with`) and the scorer inside the PatchCore detector
(:mod:`coftad_lib.methods.patchcore`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..backbones import Backbone
from ..device import memory_format
from ..errors import COFTADInputError
from .scorer_base import FeatureArray, Scorer


@torch.no_grad()
def patch_features(backbone: Backbone, images: torch.Tensor, *, pool: int = 3,
                   batch_size: int = 64, count_include_pad: bool = True) -> torch.Tensor:
    """Locally aware patch features of PatchCore [8] (Sec. 3.1 there): (N, 3, S, S) -> (N, P, C).

    The two mid-level maps (strides 8 and 16, ``backbone.feature_maps``) are each averaged over
    a ``pool x pool`` neighbourhood (PatchCore's local aggregation, p = 3), the stride-16 map is
    bilinearly upsampled to the stride-8 grid, and both are concatenated along channels:
    P = (S/8)^2 patches of C = sum(backbone.map_channels) channels.

    ``count_include_pad=True`` (default) averages border neighbourhoods over the zero padding too,
    as [8]'s code (zero-padded unfold) and anomalib (``AvgPool2d(3, 1, 1)``) do; it shrinks border
    patches and so their distances. ``False`` (this project's earlier default) averages only the
    4 or 6 pixels inside the map there: on Flowers17 Daffodil/Tulip at 224 px the highest patch of
    97-99 % of normal test images then lay on the border ring and AUROC was 61.0 / 61.3 instead of
    64.6 / 68.9 (5 / 10 shots, 3 seeds); MVTec bottle, whose border is plain background, was
    unaffected (benchmarks/results/patchcore_check.md).

    The maps are computed in float32 even under autocast: nearest-neighbour distances between
    near-identical normal patches are small differences of large vectors, which bf16 rounding
    (8-bit mantissa) would blur; the reference implementation is float32 too.
    The backbone is put in eval mode. Returns float32 on the backbone's device.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise COFTADInputError(f"patch_features: expected (N, 3, S, S) images, got shape {tuple(images.shape)}")
    if pool < 1 or pool % 2 == 0:
        raise COFTADInputError(f"patch_features: pool={pool}; must be an odd size >= 1")
    backbone.eval()
    device = next(backbone.parameters()).device
    out = []
    for i in range(0, len(images), batch_size):
        xb = images[i : i + batch_size].to(device, memory_format=memory_format(device))
        with torch.autocast(device.type, enabled=False):
            maps = backbone.feature_maps(xb.float())
        maps = [F.avg_pool2d(m.float(), pool, stride=1, padding=pool // 2, count_include_pad=count_include_pad)
                for m in maps]
        size = maps[0].shape[-2:]
        maps = [maps[0]] + [F.interpolate(m, size=size, mode="bilinear", align_corners=False) for m in maps[1:]]
        feats = torch.cat(maps, dim=1)
        out.append(feats.flatten(2).transpose(1, 2).contiguous())
    return torch.cat(out)


def _as_patches(feats: FeatureArray, what: str, device: torch.device) -> torch.Tensor:
    t = feats if isinstance(feats, torch.Tensor) else torch.from_numpy(np.asarray(feats))
    if t.ndim != 3:
        raise COFTADInputError(f"{what}: expected (N, P, C) patch features (see patch_features), got shape {tuple(t.shape)}")
    if len(t) == 0 or t.shape[1] == 0:
        raise COFTADInputError(f"{what}: no patch features (shape {tuple(t.shape)})")
    return t.detach().to(device, torch.float32)


def greedy_coreset(feats: torch.Tensor, n: int, proj_dim: int | None = 128, seed: int = 0) -> torch.Tensor:
    """Greedy k-center coreset of PatchCore [8] (Alg. 1): indices (n,) into (B, C) ``feats``.

    Distances are computed after a Gaussian random projection to ``proj_dim`` dimensions
    (Johnson-Lindenstrauss, as [8] does to make selection cheap); ``None`` uses the full features.
    The first centre is drawn with ``seed``.
    """
    b = len(feats)
    if n >= b:
        return torch.arange(b, device=feats.device)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    x = feats.float()
    if proj_dim is not None and proj_dim < x.shape[1]:
        proj = torch.randn(x.shape[1], proj_dim, generator=gen) / proj_dim**0.5
        x = x @ proj.to(x.device)
    first = int(torch.randint(b, (1,), generator=gen))
    chosen = torch.empty(n, dtype=torch.long, device=feats.device)
    chosen[0] = first
    min_d = torch.cdist(x, x[first : first + 1]).squeeze(1)
    # Greedy selection is sequential by nature: one vectorised distance update per chosen centre.
    for j in range(1, n):
        nxt = torch.argmax(min_d).view(1)  # stays on the device: no host sync per step
        chosen[j] = nxt[0]
        min_d = torch.minimum(min_d, torch.cdist(x, x.index_select(0, nxt)).squeeze(1))
    return chosen


class PatchCoreScorer(Scorer):
    """PatchCore [8]: memory bank of patch features; image score = max over patches of the
    distance to the nearest bank entry (Eq. 6 of [8] without its re-weighting term, which needs
    a bank large enough to have meaningful neighbourhoods; few-shot banks are not).

    Args:
        coreset_ratio: fraction of bank patches kept by greedy coreset subsampling. 1.0 (default)
            keeps all: a few-shot bank (k * (S/8)^2 patches) is small enough to search exhaustively,
            and subsampling only loses coverage there. [8] used 0.01-0.25 on full training sets.
        coreset_proj_dim: random-projection size used when choosing the coreset ([8]: 128).
        chunk_elems: bound on (test patches x bank) distances computed at once, which caps memory.
        device: where the bank lives and distances are computed.
        seed: first coreset centre and projection.
    """

    name = "patchcore"

    def __init__(self, coreset_ratio: float = 1.0, coreset_proj_dim: int | None = 128,
                 chunk_elems: int = 2**25, device: str | torch.device = "cpu", seed: int = 0) -> None:
        if not 0 < coreset_ratio <= 1:
            raise COFTADInputError(f"patchcore: coreset_ratio={coreset_ratio}; must be in (0, 1]")
        self.coreset_ratio, self.coreset_proj_dim = coreset_ratio, coreset_proj_dim
        self.chunk_elems, self.seed = chunk_elems, seed
        self.device = torch.device(device)
        self.bank: torch.Tensor | None = None  # (B, C) float32
        self.owner: torch.Tensor | None = None  # (B,) int64 source shot of each bank patch

    def fit(self, train_feats: FeatureArray, owners: torch.Tensor | None = None) -> PatchCoreScorer:
        """Build the memory bank from (N, P, C) normal patch features.

        ``owners`` (N,) optionally names the source shot of each of the N images (augmented copies
        share their shot's id); it is kept per bank patch so that :meth:`patch_distances` can leave
        one shot out (threshold estimation, :mod:`coftad_lib.threshold`). Default: image index.
        """
        t = _as_patches(train_feats, "patchcore scorer: train_feats", self.device)
        if owners is None:
            owners = torch.arange(len(t))
        if owners.shape != (len(t),):
            raise COFTADInputError(f"patchcore scorer: owners has shape {tuple(owners.shape)}, expected ({len(t)},)")
        bank = t.reshape(-1, t.shape[-1])
        owner = owners.to(self.device).repeat_interleave(t.shape[1])
        if self.coreset_ratio < 1:
            n = max(1, int(round(self.coreset_ratio * len(bank))))
            keep = greedy_coreset(bank, n, self.coreset_proj_dim, self.seed)
            bank, owner = bank[keep], owner[keep]
        self.bank, self.owner = bank.contiguous(), owner
        return self

    @torch.no_grad()
    def patch_distances(self, test_feats: FeatureArray, exclude: int | None = None) -> torch.Tensor:
        """(M, P, C) -> (M, P) L2 distance of every test patch to its nearest bank patch.

        ``exclude``: leave out the bank patches of that shot id (see :meth:`fit`'s ``owners``).
        """
        if self.bank is None:
            raise RuntimeError("PatchCoreScorer used before fit")
        t = _as_patches(test_feats, "patchcore scorer: test_feats", self.device)
        if t.shape[-1] != self.bank.shape[1]:
            raise COFTADInputError(f"patchcore scorer: test patches have {t.shape[-1]} channels, the bank {self.bank.shape[1]}")
        bank = self.bank if exclude is None else self.bank[self.owner != exclude]
        if len(bank) == 0:
            raise COFTADInputError(f"patchcore scorer: leaving out shot {exclude} empties the bank (one shot only?)")
        flat = t.reshape(-1, t.shape[-1])
        rows = max(1, self.chunk_elems // len(bank))
        with torch.autocast(self.device.type, enabled=False):  # callers may be under bf16 autocast
            nn_d = torch.cat([torch.cdist(flat[i : i + rows], bank).amin(1) for i in range(0, len(flat), rows)])
        return nn_d.view(t.shape[0], t.shape[1])

    def score(self, test_feats: FeatureArray) -> np.ndarray:
        return self.patch_distances(test_feats).amax(1).double().cpu().numpy()
