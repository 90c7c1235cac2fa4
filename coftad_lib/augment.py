"""Positive augmentations t(X) and negative augmentations t_n(X) of Sec. IV-C, batched.

All transforms take and return (B, 3, H, W) float tensors in [0, 1] on any device and draw
parameters per sample, so a training step makes one call per batch instead of one per image.
Per-sample random transforms come from kornia; CutPaste (Li et al. 2021, ref. [15]) is written
here because kornia has none, vectorised as a per-sample affine resampling plus a rectangle mask.

Strengths are not given in the paper; the values below are ours, each with its reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import kornia.augmentation as K
import torch
import torch.nn.functional as F
from torch import nn

from .errors import COFTADInputError

PRESETS = ("flowers", "cifar_c", "industrial")
CUTPASTE_MODES = ("normal", "scar", "union")


class CutPaste(nn.Module):
    """CutPaste negative augmentation: cut a patch, jitter it, paste it elsewhere (ref. [15]).

    ``normal``: a rectangle of 2-15 % of the image area, aspect ratio in [0.3, 1/0.3] (log-uniform),
    pasted unrotated. ``scar``: a thin rectangle (2-16 x 10-25 px at 256 px, scaled to the image
    size) rotated by [-45, 45] degrees. ``union``: each sample picks one of the two. These are the
    ranges of the CutPaste paper. The patch gets a mild colour jitter (0.1), also as there.

    Shape: (B, 3, H, W) in [0, 1] -> (B, 3, H, W) in [0, 1].
    """

    def __init__(self, mode: str = "union", area: tuple[float, float] = (0.02, 0.15),
                 aspect: tuple[float, float] = (0.3, 1 / 0.3), jitter: float = 0.1) -> None:
        super().__init__()
        if mode not in CUTPASTE_MODES:
            raise COFTADInputError(f"cutpaste mode={mode!r}; choose one of {', '.join(CUTPASTE_MODES)}")
        self.mode, self.area, self.aspect = mode, area, aspect
        self.jitter = K.ColorJitter(jitter, jitter, jitter, jitter, p=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        dev = x.device

        def uniform(lo: float, hi: float) -> torch.Tensor:
            return torch.rand(b, device=dev) * (hi - lo) + lo

        # Normal CutPaste: axis-aligned patch with area and aspect ratio from the paper's ranges.
        area = uniform(*self.area) * h * w
        log_ar = uniform(math.log(self.aspect[0]), math.log(self.aspect[1]))
        ph = torch.sqrt(area * torch.exp(log_ar)).clamp(2, h - 1)
        pw = torch.sqrt(area / torch.exp(log_ar)).clamp(2, w - 1)
        angle = torch.zeros(b, device=dev)
        if self.mode != "normal":
            scale = min(h, w) / 256.0  # scar sizes are quoted for 256 px images
            scar = torch.ones(b, dtype=torch.bool, device=dev) if self.mode == "scar" else torch.rand(b, device=dev) < 0.5
            sw = (uniform(2, 16) * scale).clamp(min=1.0)
            sh = (uniform(10, 25) * scale).clamp(min=2.0, max=h - 1)
            pw, ph = torch.where(scar, sw, pw), torch.where(scar, sh, ph)
            angle = torch.where(scar, uniform(-math.pi / 4, math.pi / 4), angle)
        # Source patch centre keeps the whole patch inside; destination centre anywhere that fits.
        src_y, src_x = ph / 2 + torch.rand(b, device=dev) * (h - ph), pw / 2 + torch.rand(b, device=dev) * (w - pw)
        dst_y, dst_x = ph / 2 + torch.rand(b, device=dev) * (h - ph), pw / 2 + torch.rand(b, device=dev) * (w - pw)

        ys = torch.arange(h, device=dev, dtype=x.dtype).view(1, h, 1) + 0.5
        xs = torch.arange(w, device=dev, dtype=x.dtype).view(1, 1, w) + 0.5
        ry, rx = ys - dst_y.view(b, 1, 1), xs - dst_x.view(b, 1, 1)
        cos, sin = torch.cos(angle).view(b, 1, 1), torch.sin(angle).view(b, 1, 1)
        u, v = cos * rx + sin * ry, -sin * rx + cos * ry  # destination pixel in the patch frame
        mask = ((u.abs() <= pw.view(b, 1, 1) / 2) & (v.abs() <= ph.view(b, 1, 1) / 2)).unsqueeze(1)
        sx, sy = src_x.view(b, 1, 1) + u, src_y.view(b, 1, 1) + v  # where that pixel is cut from
        grid = torch.stack((2 * sx / w - 1, 2 * sy / h - 1), dim=-1)
        patch = F.grid_sample(self.jitter(x), grid, mode="bilinear", padding_mode="border", align_corners=False)
        return torch.where(mask, patch, x)


@dataclass(frozen=True)
class AugmentationPair:
    """A preset's positive augmentation t(.) and negative augmentation t_n(.)."""

    positive: nn.Module
    negative: nn.Module


def _blur(image_size: int, p: float) -> nn.Module:
    # A kernel of about 1/10 of the image keeps blur comparable across 64 px smoke and 224 px runs.
    k = max(3, int(image_size * 0.1) // 2 * 2 + 1)
    return K.RandomGaussianBlur((k, k), sigma=(0.1, 2.0 * image_size / 224 + 0.1), p=p)


def make_augmentations(preset: str, image_size: int, cutpaste_mode: str = "union") -> AugmentationPair:
    """Build the positive/negative augmentation pair of a preset (Sec. IV-C).

    - ``flowers``: t = random affine + colour jitter; t_n = CutPaste.
    - ``cifar_c``: t = random affine; t_n = blur + random brightness / contrast.
    - ``industrial``: t = random affine + blur + grayscale; t_n = CutPaste.

    Affine ranges are mild (rotation <= 15 degrees, translation <= 10 %, scale 0.9-1.1) because
    the shots are few and a strong t would make the Gaussian of Eq. 7 model the augmentation, not
    the normal class. Industrial images are aligned, hence even smaller affine ranges there.
    """
    if preset not in PRESETS:
        raise COFTADInputError(f"preset={preset!r} is not known; choose one of {', '.join(PRESETS)}")
    if preset == "flowers":
        positive = nn.Sequential(
            K.RandomAffine(degrees=15, translate=(0.1, 0.1), scale=(0.9, 1.1), p=1.0),
            K.ColorJitter(0.3, 0.3, 0.3, 0.05, p=0.8),
        )
        negative = CutPaste(cutpaste_mode)
    elif preset == "cifar_c":
        positive = K.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1), p=1.0)
        # CIFAR-C anomalies are blur, noise and photometric shifts; t_n mimics the latter two families.
        negative = nn.Sequential(_blur(image_size, p=1.0), K.ColorJitter(brightness=0.5, contrast=0.5, p=1.0))
    else:
        positive = nn.Sequential(
            K.RandomAffine(degrees=5, translate=(0.05, 0.05), scale=(0.95, 1.05), p=1.0),
            _blur(image_size, p=0.5),
            K.RandomGrayscale(p=0.2),
        )
        negative = CutPaste(cutpaste_mode)
    return AugmentationPair(positive=positive, negative=negative)
