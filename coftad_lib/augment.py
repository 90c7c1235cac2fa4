"""Positive augmentations t(X) and negative augmentations t_n(X) of Sec. IV-C, batched.

Every transform maps (B, 3, H, W) float in [0, 1] on any device to the same shape in [0, 1], draws
its parameters per sample as tensors, and costs a few batched ops per call (one ``grid_sample``
for the affine, one ``baddbmm`` for all colour changes, two batched matmuls for the blur):
no Python loop over samples and no per-sample modules, because a COFT-AD step calls them on
every batch. All randomness comes from the ``generator`` argument (a ``torch.Generator`` on the
images' device) when given, else from torch's global RNG; the same generator state gives the
same output. The work runs in float32 with autocast off (the ops are cheap and memory-bound, and
bf16 would round colours visibly), and the result is cast back to the input dtype.

Strengths are not given in the paper; the values below are ours, each with its reason.
CutPaste (Li et al. 2021, ref. [15]) is a per-sample affine resampling plus a rectangle mask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .errors import COFTADInputError

PRESETS = ("flowers", "cifar_c", "industrial")
CUTPASTE_MODES = ("normal", "scar", "union")
#: names of the negative augmentations t_n; ``negative=None`` picks the preset's own
NEGATIVES = ("cutpaste", "photometric", "cutpaste_small")
#: how the affine fills pixels it pulls from outside the image (``grid_sample``'s modes)
PADDING_MODES = ("reflection", "border", "zeros")

# ITU-R 601 luma, the Y row of YIQ (torchvision's / kornia's rgb_to_grayscale weights).
_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ_INV = torch.linalg.inv(_YIQ.double()).float()


def _uniform(n: int, lo: float, hi: float, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """(n,) float32 draws from U[lo, hi) on ``x``'s device."""
    return torch.rand(n, generator=generator, device=x.device) * (hi - lo) + lo


def _coin(n: int, p: float, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """(n,) bool, True with probability ``p``."""
    return torch.rand(n, generator=generator, device=x.device) < p


class BatchAugment(nn.Module):
    """Base of the batched transforms: checks the input, turns autocast off, casts back.

    Subclasses implement ``transform(x, generator)`` on float32 (or float64) images.
    """

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, 3, H, W) in [0, 1], same dtype and device."""
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3 or not x.is_floating_point():
            got = f"{tuple(x.shape)} {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
            raise COFTADInputError(f"{type(self).__name__}: expected a (B, 3, H, W) float image batch, got {got}")
        if generator is not None:
            if not isinstance(generator, torch.Generator):
                raise COFTADInputError(f"{type(self).__name__}: generator must be a torch.Generator or None, got {type(generator).__name__}")
            if generator.device.type != x.device.type:
                raise COFTADInputError(f"{type(self).__name__}: generator is on {generator.device}, images on {x.device}; "
                                       "create it with torch.Generator(device=images.device)")
        work = torch.float64 if x.dtype == torch.float64 else torch.float32
        with torch.autocast(x.device.type, enabled=False):
            out = self.transform(x.to(work), generator).to(x.dtype)
        return out.clone() if out is x else out  # never hand back the caller's tensor itself

    def transform(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        raise NotImplementedError


class Compose(BatchAugment):
    """Apply the steps in order, all drawing from the same generator."""

    def __init__(self, *steps: BatchAugment) -> None:
        super().__init__()
        self.steps = nn.ModuleList(steps)

    def transform(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        for step in self.steps:
            x = step.transform(x, generator)
        return x


def affine_theta(angle: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor, scale: torch.Tensor,
                 h: int, w: int) -> torch.Tensor:
    """(B, 2, 3) ``affine_grid`` matrices of "rotate by ``angle`` (rad), scale, translate (px)".

    ``affine_grid`` maps output to input coordinates, so this is the inverse map
    p_in = R(-angle) (p_out - t) / scale in pixel units about the image centre, rewritten in the
    [-1, 1] units of each axis (hence the h/w factors that keep rotations rigid on non-square images).
    """
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    row_x = torch.stack((cos, sin * h / w, -(cos * tx + sin * ty) * 2 / w), dim=1)
    row_y = torch.stack((-sin * w / h, cos, -(-sin * tx + cos * ty) * 2 / h), dim=1)
    return torch.stack((row_x, row_y), dim=1)


class RandomAffine(BatchAugment):
    """Per-sample rotation, translation and isotropic scale, one ``grid_sample`` per batch.

    angle ~ U(degrees) (a number d means (-d, d)), (tx, ty) ~ U(-translate, translate) * (W, H),
    scale ~ U(scale); bilinear. Padding defaults to ``reflection``: zero padding (kornia's default)
    paints black corners, an artefact no normal image has that the features would learn as
    normal; reflection continues the texture, and ``border`` smears edge pixels into streaks.
    """

    def __init__(self, degrees: float | tuple[float, float], translate: float,
                 scale: tuple[float, float], padding_mode: str = "reflection") -> None:
        super().__init__()
        if padding_mode not in PADDING_MODES:
            raise COFTADInputError(f"padding_mode={padding_mode!r}; choose one of {', '.join(PADDING_MODES)}")
        self.degrees = (-degrees, degrees) if isinstance(degrees, (int, float)) else tuple(degrees)
        self.translate, self.scale, self.padding_mode = translate, tuple(scale), padding_mode
        self.identity = self.degrees == (0, 0) and translate == 0 and self.scale == (1, 1)

    def transform(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if self.identity:  # strength 0: skip the resampling, which is exact only up to rounding
            return x
        b, _, h, w = x.shape
        angle = _uniform(b, *self.degrees, x, generator) * (math.pi / 180)
        tx = _uniform(b, -self.translate, self.translate, x, generator) * w
        ty = _uniform(b, -self.translate, self.translate, x, generator) * h
        scale = _uniform(b, *self.scale, x, generator).clamp(min=1e-3)
        theta = affine_theta(angle, tx, ty, scale, h, w).to(x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode=self.padding_mode, align_corners=False)


class ColorJitter(BatchAugment):
    """Brightness, contrast, saturation, hue and grayscale per sample as ONE affine colour map.

    With probability ``p`` a sample gets factors b ~ U(1-B, 1+B), c ~ U(1-C, 1+C),
    s ~ U(1-S, 1+S) and a hue turn h ~ U(-H, H) (torchvision's ranges and formulas, in this fixed
    order): x -> b x; blend with the image's mean luma m by c; blend with the pixel's luma by s;
    rotate the chroma plane (I, Q) of YIQ by 2 pi h. The last is a cheap stand-in for the exact
    HSV hue shift (same angle, linear, keeps luma). All four are linear in x and leave grey alone,
    so they compose into out = M x + (1 - c) b m with one 3x3 matrix M per sample, applied by a
    single ``baddbmm`` and clamped to [0, 1] once (torchvision clamps after every step).
    With probability ``grayscale_p`` a sample's saturation is multiplied by 1 - ``grayscale_amount``
    (amount 1 = grayscale).

    Shape: (B, 3, H, W) -> (B, 3, H, W).
    """

    def __init__(self, brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0,
                 hue: float = 0.0, p: float = 1.0, grayscale_p: float = 0.0, grayscale_amount: float = 1.0) -> None:
        super().__init__()
        self.brightness, self.contrast, self.saturation, self.hue = brightness, contrast, saturation, hue
        self.p, self.grayscale_p, self.grayscale_amount = p, grayscale_p, grayscale_amount
        self.identity = (brightness == contrast == saturation == hue == 0) and (grayscale_p == 0 or grayscale_amount == 0)

    def matrices(self, x: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, 3) colour matrices M and (B,) weights (1 - c) b of the mean luma."""
        n = len(x)
        jitter = _coin(n, self.p, x, generator)

        def factor(r: float) -> torch.Tensor:
            return torch.where(jitter, _uniform(n, max(0.0, 1 - r), 1 + r, x, generator), 1.0)

        b, c, s = factor(self.brightness), factor(self.contrast), factor(self.saturation)
        turn = torch.where(jitter, _uniform(n, -self.hue, self.hue, x, generator), 0.0) * (2 * math.pi)
        gray = _coin(n, self.grayscale_p, x, generator)
        s = torch.where(gray, s * (1 - self.grayscale_amount), s)
        yiq, yiq_inv = _YIQ.to(x), _YIQ_INV.to(x)
        eye = torch.eye(3, dtype=x.dtype, device=x.device)
        luma = yiq[0].expand(3, 3)  # every row = luma weights: luma(x) as a vector (L, L, L)
        sat = s.view(n, 1, 1).to(x) * eye + (1 - s.view(n, 1, 1).to(x)) * luma
        # Hue as I + Y^-1 (R - I) Y: exactly the identity at turn 0 (strength 0 stays exact).
        cos, sin = torch.cos(turn).to(x) - 1, torch.sin(turn).to(x)
        zero = torch.zeros_like(cos)
        rot = torch.stack((zero, zero, zero, zero, cos, -sin, zero, sin, cos), 1).view(n, 3, 3)
        hue = eye + yiq_inv @ rot @ yiq
        m = hue @ sat * (c * b).view(n, 1, 1).to(x)
        return m, ((1 - c) * b).to(x)

    def transform(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if self.identity:
            return x
        n, _, h, w = x.shape
        m, k = self.matrices(x, generator)
        mean_luma = x.mean((2, 3)) @ _YIQ[0].to(x)  # (B,): mean luma of each image
        offset = (k * mean_luma).view(n, 1, 1)
        return torch.baddbmm(offset, m, x.reshape(n, 3, h * w)).view(n, 3, h, w).clamp_(0, 1)


def blur_matrices(kernel: torch.Tensor, n: int) -> torch.Tensor:
    """(B, K) 1-D kernels -> (B, n, n) matrices M with (M v)_i = sum_k kernel_k v_reflect(i + k - K // 2).

    The banded (Toeplitz) matrix of the convolution with reflect padding (kornia's default
    border) folded in at the edges; needs K // 2 < n.
    """
    r = kernel.shape[1] // 2
    idx = (torch.arange(n, device=kernel.device).view(n, 1) + torch.arange(-r, r + 1, device=kernel.device)).abs()
    idx = torch.where(idx > n - 1, 2 * (n - 1) - idx, idx)  # reflect at both ends
    b = len(kernel)
    m = torch.zeros(b, n, n, dtype=kernel.dtype, device=kernel.device)
    return m.scatter_add_(2, idx.expand(b, n, 2 * r + 1), kernel.view(b, 1, 2 * r + 1).expand(b, n, 2 * r + 1))


class GaussianBlur(BatchAugment):
    """Separable Gaussian blur with per-sample sigma ~ U(sigma), applied with probability ``p``.

    Every sample's 1-D kernel (``kernel_size`` taps) is built at once and turned into a banded
    matrix per sample (:func:`blur_matrices`); the batch is then blurred by two batched matmuls,
    rows then columns. Dense matmuls do more arithmetic than a depthwise convolution but run
    faster on CPU than a grouped convolution with B * 3 groups did in our trials, and need no
    padding copy. Samples not drawn for blurring are returned exactly unchanged.
    """

    def __init__(self, kernel_size: int, sigma: tuple[float, float], p: float = 1.0) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise COFTADInputError(f"GaussianBlur: kernel_size={kernel_size}; expected an odd number >= 1")
        self.kernel_size, self.sigma, self.p = kernel_size, tuple(sigma), p
        self.identity = self.sigma[1] <= 0 or p == 0 or kernel_size == 1

    def transform(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if self.identity:
            return x
        n, c, h, w = x.shape
        r = min(self.kernel_size // 2, h - 1, w - 1)  # reflection needs r < side
        sigma = _uniform(n, *self.sigma, x, generator).clamp(min=1e-3).to(x)
        blur = _coin(n, self.p, x, generator)
        offs = torch.arange(-r, r + 1, device=x.device, dtype=x.dtype)
        kernel = torch.exp(-(offs**2) / (2 * sigma.view(n, 1) ** 2))
        kernel = kernel / kernel.sum(1, keepdim=True)
        if x.device.type == "cpu" and self.p < 1:
            # CPU: blur only the drawn samples (half the work at p = 0.5). Elsewhere keep shapes
            # static (no host sync; compile and graph capture stay possible) and select by where.
            idx = blur.nonzero().squeeze(1)
            return x.index_copy(0, idx, self.separable(x[idx], kernel[idx]))
        return torch.where(blur.view(n, 1, 1, 1), self.separable(x, kernel), x)

    @staticmethod
    def separable(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) images, (B, K) kernels -> each image blurred along rows, then columns."""
        n, c, h, w = x.shape
        mw = blur_matrices(kernel, w)
        mh = mw if h == w else blur_matrices(kernel, h)
        y = torch.bmm(x.reshape(n, c * h, w), mw.transpose(1, 2)).view(n, c, h, w)  # along rows
        return torch.matmul(mh.unsqueeze(1), y)  # along columns, broadcast over channels


def _cutpaste_sizes(mode: str, area: tuple[float, float], aspect: tuple[float, float], x: torch.Tensor,
                    generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B,) patch heights, widths (px) and angles (rad) of CutPaste / scar patches."""
    b, _, h, w = x.shape
    # Normal CutPaste: axis-aligned patch with area and aspect ratio from the paper's ranges.
    size = _uniform(b, *area, x, generator) * h * w
    log_ar = _uniform(b, math.log(aspect[0]), math.log(aspect[1]), x, generator)
    ph = torch.sqrt(size * torch.exp(log_ar)).clamp(2, h - 1)
    pw = torch.sqrt(size / torch.exp(log_ar)).clamp(2, w - 1)
    angle = torch.zeros(b, device=x.device)
    if mode != "normal":
        scale = min(h, w) / 256.0  # scar sizes are quoted for 256 px images
        coin = _coin(b, 0.5, x, generator)
        scar = torch.ones_like(coin) if mode == "scar" else coin
        sw = (_uniform(b, 2, 16, x, generator) * scale).clamp(min=1.0)
        sh = (_uniform(b, 10, 25, x, generator) * scale).clamp(min=2.0, max=h - 1)
        pw, ph = torch.where(scar, sw, pw), torch.where(scar, sh, ph)
        angle = torch.where(scar, _uniform(b, -math.pi / 4, math.pi / 4, x, generator), angle)
    return ph, pw, angle


class CutPaste(BatchAugment):
    """CutPaste negative augmentation: cut a patch, jitter it, paste it elsewhere (ref. [15]).

    ``normal``: a rectangle of ``area`` (default 2-15 %) of the image, aspect ratio in ``aspect``
    (default [0.3, 1/0.3], log-uniform), pasted unrotated. ``scar``: a thin rectangle
    (2-16 x 10-25 px at 256 px, scaled to the image size) rotated by [-45, 45] degrees. ``union``:
    each sample picks one of the two. These are the ranges of the CutPaste paper. The patch gets
    a mild colour jitter (``jitter`` = 0.1 for brightness, contrast, saturation and hue), also as
    there, by :class:`ColorJitter`; 0 turns it off.

    Shape: (B, 3, H, W) in [0, 1] -> (B, 3, H, W) in [0, 1].
    """

    def __init__(self, mode: str = "union", area: tuple[float, float] = (0.02, 0.15),
                 aspect: tuple[float, float] = (0.3, 1 / 0.3), jitter: float = 0.1) -> None:
        super().__init__()
        if mode not in CUTPASTE_MODES:
            raise COFTADInputError(f"cutpaste mode={mode!r}; choose one of {', '.join(CUTPASTE_MODES)}")
        self.mode, self.area, self.aspect = mode, tuple(area), tuple(aspect)
        self.jitter = ColorJitter(jitter, jitter, jitter, jitter)

    def transform(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        b, _, h, w = x.shape
        ph, pw, angle = _cutpaste_sizes(self.mode, self.area, self.aspect, x, generator)
        # Source patch centre keeps the whole patch inside; destination centre anywhere that fits.
        src_y, src_x = ph / 2 + _uniform(b, 0, 1, x, generator) * (h - ph), pw / 2 + _uniform(b, 0, 1, x, generator) * (w - pw)
        dst_y, dst_x = ph / 2 + _uniform(b, 0, 1, x, generator) * (h - ph), pw / 2 + _uniform(b, 0, 1, x, generator) * (w - pw)
        ph, pw, angle, src_y, src_x, dst_y, dst_x = (t.to(x).view(b, 1, 1) for t in (ph, pw, angle, src_y, src_x, dst_y, dst_x))

        ys = torch.arange(h, device=x.device, dtype=x.dtype).view(1, h, 1) + 0.5
        xs = torch.arange(w, device=x.device, dtype=x.dtype).view(1, 1, w) + 0.5
        ry, rx = ys - dst_y, xs - dst_x
        cos, sin = torch.cos(angle), torch.sin(angle)
        u, v = cos * rx + sin * ry, -sin * rx + cos * ry  # destination pixel in the patch frame
        mask = ((u.abs() <= pw / 2) & (v.abs() <= ph / 2)).unsqueeze(1)
        sx, sy = src_x + u, src_y + v  # where that pixel is cut from
        grid = torch.stack((2 * sx / w - 1, 2 * sy / h - 1), dim=-1)
        patch = F.grid_sample(self.jitter.transform(x, generator), grid, mode="bilinear",
                              padding_mode="border", align_corners=False)
        return torch.where(mask, patch, x)


@dataclass(frozen=True)
class AugmentationPair:
    """A preset's positive augmentation t(.) and negative augmentation t_n(.).

    Both are called as ``aug(x, generator=None)`` on (B, 3, H, W) images in [0, 1].
    """

    positive: BatchAugment
    negative: BatchAugment


def _blur(image_size: int, p: float, strength: float = 1.0) -> GaussianBlur:
    # A kernel of about 1/10 of the image keeps blur comparable across 64 px smoke and 224 px runs.
    k = max(3, int(image_size * 0.1) // 2 * 2 + 1)
    return GaussianBlur(k, (0.1 * strength, (2.0 * image_size / 224 + 0.1) * strength), p=p)


def make_negative(name: str, image_size: int, cutpaste_mode: str = "union") -> BatchAugment:
    """A negative augmentation t_n (Eq. 5) by name, one of :data:`NEGATIVES`.

    - ``cutpaste``: :class:`CutPaste` in ``cutpaste_mode``.
    - ``photometric``: blur + random brightness / contrast (the cifar_c preset's t_n).
    - ``cutpaste_small``: a milder synthetic anomaly for the fine-tuning study (issue 11): CutPaste
      rectangles of 0.5-2 % of the image instead of 2-15 % (scars, already that small, unchanged)
      and no colour jitter, so t_n(X) stays much closer to X and Eq. 5 pushes apart less.
    """
    if name not in NEGATIVES:
        raise COFTADInputError(f"negative={name!r} is not known; choose one of {', '.join(NEGATIVES)}")
    if name == "cutpaste":
        return CutPaste(cutpaste_mode)
    if name == "cutpaste_small":
        return CutPaste(cutpaste_mode, area=(0.005, 0.02), jitter=0.0)
    # CIFAR-C anomalies are blur, noise and photometric shifts; t_n mimics the latter two families.
    return Compose(_blur(image_size, p=1.0), ColorJitter(brightness=0.5, contrast=0.5))


def _positive(preset: str, image_size: int, st: float, padding_mode: str) -> BatchAugment:
    """The preset's t(.) with every range scaled by ``st`` (1 = the ranges documented below)."""
    if preset == "flowers":
        return Compose(RandomAffine(15 * st, 0.1 * st, (1 - 0.1 * st, 1 + 0.1 * st), padding_mode),
                       ColorJitter(0.3 * st, 0.3 * st, 0.3 * st, 0.05 * st, p=0.8))
    if preset == "cifar_c":
        return RandomAffine(10 * st, 0.1 * st, (1 - 0.1 * st, 1 + 0.1 * st), padding_mode)
    # Grayscale keeps its probability; strength scales how far towards gray (capped at full gray).
    return Compose(RandomAffine(5 * st, 0.05 * st, (1 - 0.05 * st, 1 + 0.05 * st), padding_mode),
                   _blur(image_size, p=0.5, strength=st),
                   ColorJitter(grayscale_p=0.2, grayscale_amount=min(st, 1.0)))


def make_augmentations(preset: str, image_size: int, cutpaste_mode: str = "union", *,
                       strength: float = 1.0, negative: str | None = None,
                       padding_mode: str = "reflection") -> AugmentationPair:
    """Build the positive/negative augmentation pair of a preset (Sec. IV-C).

    - ``flowers``: t = random affine + colour jitter (p = 0.8); t_n = CutPaste.
    - ``cifar_c``: t = random affine; t_n = blur + random brightness / contrast ("photometric").
    - ``industrial``: t = random affine + blur (p = 0.5) + grayscale (p = 0.2); t_n = CutPaste.

    Affine ranges are mild (rotation <= 15 degrees, translation <= 10 %, scale 0.9-1.1) because
    the shots are few and a strong t would make the Gaussian of Eq. 7 model the augmentation, not
    the normal class. Industrial images are aligned, hence even smaller affine ranges there.
    Colour jitter: brightness, contrast, saturation 0.3, hue 0.05; blur sigma 0.1 to 2.1 at 224 px.

    Args:
        strength: scales every range of t (0 = identity, 1 = the ranges above): degrees,
            translation, scale - 1, colour factors - 1, hue and blur sigma; probabilities stay,
            and grayscale goes min(strength, 1) of the way to gray. t_n is unchanged.
        negative: None for the preset's t_n, else one of :data:`NEGATIVES` (see :func:`make_negative`).
        padding_mode: how the affine fills pixels from outside the image (:data:`PADDING_MODES`).
    """
    if preset not in PRESETS:
        raise COFTADInputError(f"preset={preset!r} is not known; choose one of {', '.join(PRESETS)}")
    if cutpaste_mode not in CUTPASTE_MODES:
        raise COFTADInputError(f"cutpaste_mode={cutpaste_mode!r}; choose one of {', '.join(CUTPASTE_MODES)}")
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not math.isfinite(strength) or strength < 0:
        raise COFTADInputError(f"strength={strength!r}: expected a finite number >= 0 (1 = the preset's ranges)")
    if padding_mode not in PADDING_MODES:
        raise COFTADInputError(f"padding_mode={padding_mode!r}; choose one of {', '.join(PADDING_MODES)}")
    if negative is None:
        negative = "photometric" if preset == "cifar_c" else "cutpaste"
    return AugmentationPair(positive=_positive(preset, image_size, float(strength), padding_mode),
                            negative=make_negative(negative, image_size, cutpaste_mode))
