"""CIFAR-C image corruptions (Hendrycks & Dietterich 2019, ref. [41]) in numpy/scipy/PIL.

Used by ``python -m data_prep.cifar_c`` to generate the corrupted anomalies of the paper's
CIFAR-10-C / CIFAR-100-C protocol (Sec. IV-A-1) when the official files are not at hand.

The severity constants are those of the official CIFAR generator, ``make_cifar_c.py`` in
github.com/hendrycks/robustness (``ImageNet-C/create_c/``), not the ImageNet-C ones: the CIFAR
script uses milder values tuned for 32x32 images. The algorithms follow that script; the code is
our own and replaces its OpenCV / scikit-image / ImageMagick calls with numpy, scipy and PIL
equivalents, vectorised over the batch. Random draws come from a ``numpy.random.Generator``, so
pixels are not bit-identical to the official files, but each corruption has the same
distribution and strength.

Every function takes an ``(N, H, W, 3)`` uint8 batch and returns the same shape and dtype. Like
the official script (``np.uint8(corruption(img))``), float results are truncated, not rounded.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image
from scipy import ndimage

from ..errors import COFTADInputError

#: Severity constants, index s-1 for severity s, copied from the official make_cifar_c.py.
CIFAR_C_SEVERITY_CONSTANTS: dict[str, list] = {
    "gaussian_noise": [0.04, 0.06, 0.08, 0.09, 0.10],  # noise std on [0, 1] pixels
    "shot_noise": [500, 250, 100, 75, 50],  # Poisson photon count scale
    "impulse_noise": [0.01, 0.02, 0.03, 0.05, 0.07],  # fraction of salt & pepper values
    "speckle_noise": [0.06, 0.1, 0.12, 0.16, 0.2],  # multiplicative noise std
    "gaussian_blur": [0.4, 0.6, 0.7, 0.8, 1.0],  # blur sigma in pixels
    "defocus_blur": [
        (0.3, 0.4),
        (0.4, 0.5),
        (0.5, 0.6),
        (1, 0.2),
        (1.5, 0.1),
    ],  # (disk radius, alias blur)
    "fog": [(0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)],  # (fog strength, fractal decay)
    "contrast": [0.75, 0.5, 0.4, 0.3, 0.15],  # contrast factor around the channel mean
    "brightness": [0.05, 0.1, 0.15, 0.2, 0.3],  # added to HSV value
    "pixelate": [0.95, 0.9, 0.85, 0.75, 0.65],  # downscale factor before upscaling back
    "jpeg_compression": [80, 65, 58, 50, 40],  # JPEG quality
    # (alpha, sigma, affine jitter), in pixels for 32-px images (the script writes IMSIZE * factor)
    "elastic_transform": [
        (32 * 0.0, 32 * 0.0, 32 * 0.08),
        (32 * 0.05, 32 * 0.2, 32 * 0.07),
        (32 * 0.08, 32 * 0.06, 32 * 0.06),
        (32 * 0.1, 32 * 0.04, 32 * 0.05),
        (32 * 0.1, 32 * 0.03, 32 * 0.03),
    ],
}


def _check(images: np.ndarray, name: str, severity: int) -> np.ndarray:
    if not isinstance(images, np.ndarray) or images.ndim != 4 or images.shape[-1] != 3:
        shape = getattr(images, "shape", type(images).__name__)
        raise COFTADInputError(f"{name}: expected an (N, H, W, 3) uint8 batch, got {shape}")
    if images.dtype != np.uint8:
        raise COFTADInputError(f"{name}: expected uint8 pixels, got dtype {images.dtype}")
    if severity not in (1, 2, 3, 4, 5):
        raise COFTADInputError(f"{name}: severity must be 1..5, got {severity!r}")
    return images


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """[0, 1] floats -> uint8 by truncation, as the official ``np.uint8`` cast does."""
    return (np.clip(x, 0.0, 1.0) * 255).astype(np.uint8)


def gaussian_noise(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Additive Gaussian noise, std c on [0, 1] pixels. (N,H,W,3) uint8 -> same."""
    c = CIFAR_C_SEVERITY_CONSTANTS["gaussian_noise"][severity - 1]
    x = images / 255.0
    return _to_uint8(x + rng.normal(scale=c, size=x.shape))


def shot_noise(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Poisson (photon) noise: Poisson(x * c) / c. (N,H,W,3) uint8 -> same."""
    c = CIFAR_C_SEVERITY_CONSTANTS["shot_noise"][severity - 1]
    x = images / 255.0
    return _to_uint8(rng.poisson(x * c) / c)


def impulse_noise(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Salt & pepper noise on a fraction c of the values (each channel independently).

    scikit-image's ``random_noise(mode="s&p")``, which the official script calls, flips each
    array element with probability ``amount`` to 0 or 1 with equal odds; done here directly.
    """
    c = CIFAR_C_SEVERITY_CONSTANTS["impulse_noise"][severity - 1]
    x = images / 255.0
    flipped = rng.random(x.shape) < c
    salt = rng.random(x.shape) < 0.5
    x[flipped & salt] = 1.0
    x[flipped & ~salt] = 0.0
    return _to_uint8(x)


def speckle_noise(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative noise x + x * N(0, c). (N,H,W,3) uint8 -> same."""
    c = CIFAR_C_SEVERITY_CONSTANTS["speckle_noise"][severity - 1]
    x = images / 255.0
    return _to_uint8(x + x * rng.normal(scale=c, size=x.shape))


def gaussian_blur(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian blur with sigma c over the two spatial axes (skimage defaults: nearest, truncate 4)."""
    c = CIFAR_C_SEVERITY_CONSTANTS["gaussian_blur"][severity - 1]
    x = ndimage.gaussian_filter(images / 255.0, sigma=(0, c, c, 0), mode="nearest", truncate=4.0)
    return _to_uint8(x)


def _disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """The official anti-aliased disk: a binary disk smoothed by a 3x3 Gaussian of sigma alias_blur."""
    half = 8 if radius <= 8 else int(np.ceil(radius))
    ax = np.arange(-half, half + 1)
    xx, yy = np.meshgrid(ax, ax)
    disk = ((xx**2 + yy**2) <= radius**2).astype(np.float64)
    disk /= disk.sum()
    # The script uses a 3x3 Gaussian for radius <= 8 (our case: radii are <= 1.5).
    taps = np.exp(-(np.array([-1.0, 0.0, 1.0]) ** 2) / (2 * alias_blur**2))
    taps /= taps.sum()
    kernel = ndimage.correlate1d(
        ndimage.correlate1d(disk, taps, axis=0, mode="mirror"), taps, axis=1, mode="mirror"
    )
    # Zero rows/columns do not change the filter; dropping them makes the batch filter cheap.
    nz_r, nz_c = np.nonzero(kernel)
    r = max(abs(nz_r - half).max(), abs(nz_c - half).max())
    return kernel[half - r : half + r + 1, half - r : half + r + 1]


def defocus_blur(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Convolution with an anti-aliased disk (OpenCV filter2D's reflect-101 border = scipy 'mirror')."""
    radius, alias = CIFAR_C_SEVERITY_CONSTANTS["defocus_blur"][severity - 1]
    k = _disk_kernel(radius, alias)
    x = ndimage.correlate(images / 255.0, k[None, :, :, None], mode="mirror")
    return _to_uint8(x)


def _plasma_fractal(
    n: int, mapsize: int, wibbledecay: float, rng: np.random.Generator
) -> np.ndarray:
    """(n, mapsize, mapsize) diamond-square height maps in [0, 1], one per image (as the script's)."""
    maps = np.zeros((n, mapsize, mapsize))
    step = mapsize
    wibble = 100.0

    def wibbled_mean(a: np.ndarray) -> np.ndarray:
        # wibble * U(-wibble, wibble) is the official (squared) jitter scale, kept as is.
        return a / 4 + wibble * rng.uniform(-wibble, wibble, a.shape)

    while step >= 2:
        h = step // 2
        corners = maps[:, 0:mapsize:step, 0:mapsize:step]
        sq = corners + np.roll(corners, -1, axis=1)
        sq = sq + np.roll(sq, -1, axis=2)
        maps[:, h:mapsize:step, h:mapsize:step] = wibbled_mean(sq)
        dr = maps[:, h:mapsize:step, h:mapsize:step]
        ul = maps[:, 0:mapsize:step, 0:mapsize:step]
        lt = dr + np.roll(dr, 1, axis=1) + ul + np.roll(ul, -1, axis=2)
        maps[:, 0:mapsize:step, h:mapsize:step] = wibbled_mean(lt)
        tt = dr + np.roll(dr, 1, axis=2) + ul + np.roll(ul, -1, axis=1)
        maps[:, h:mapsize:step, 0:mapsize:step] = wibbled_mean(tt)
        step //= 2
        wibble /= wibbledecay
    maps -= maps.min(axis=(1, 2), keepdims=True)
    return maps / maps.max(axis=(1, 2), keepdims=True)


def fog(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Adds a plasma-fractal haze of strength c0, rescaled by max / (max + c0)."""
    strength, decay = CIFAR_C_SEVERITY_CONSTANTS["fog"][severity - 1]
    n, h, w, _ = images.shape
    mapsize = 1 << int(np.ceil(np.log2(max(h, w, 2))))
    x = images / 255.0
    max_val = x.max(axis=(1, 2, 3), keepdims=True)
    x = x + strength * _plasma_fractal(n, mapsize, decay, rng)[:, :h, :w, None]
    return _to_uint8(x * max_val / (max_val + strength))


def contrast(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Scales each channel's deviation from its per-image mean by c."""
    c = CIFAR_C_SEVERITY_CONSTANTS["contrast"][severity - 1]
    x = images / 255.0
    means = x.mean(axis=(1, 2), keepdims=True)
    return _to_uint8((x - means) * c + means)


def brightness(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Adds c to the HSV value channel.

    HSV->RGB is linear in V for fixed H and S, so raising V to V' = clip(V + c) scales the pixel
    by V'/V; a black pixel (V = 0, S = 0) becomes grey V'. This equals the official rgb2hsv /
    hsv2rgb round trip without the conversion.
    """
    c = CIFAR_C_SEVERITY_CONSTANTS["brightness"][severity - 1]
    x = images / 255.0
    v = x.max(axis=-1, keepdims=True)
    v_new = np.clip(v + c, 0.0, 1.0)
    scale = np.divide(v_new, v, out=np.zeros_like(v), where=v > 0)
    out = np.where(v > 0, x * scale, v_new)
    return _to_uint8(out)


def pixelate(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Box-downscale by c and box-upscale back (PIL, as the official script)."""
    c = CIFAR_C_SEVERITY_CONSTANTS["pixelate"][severity - 1]
    h, w = images.shape[1:3]
    small = (int(w * c), int(h * c))
    out = np.empty_like(images)
    for i, img in enumerate(images):
        pil = Image.fromarray(img).resize(small, Image.Resampling.BOX)
        out[i] = np.asarray(pil.resize((w, h), Image.Resampling.BOX))
    return out


def jpeg_compression(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Re-encode as JPEG at quality c (PIL defaults, as the official script)."""
    q = CIFAR_C_SEVERITY_CONSTANTS["jpeg_compression"][severity - 1]
    out = np.empty_like(images)
    for i, img in enumerate(images):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, "JPEG", quality=q)
        buf.seek(0)
        with Image.open(buf) as dec:
            out[i] = np.asarray(dec.convert("RGB"))
    return out


def elastic_transform(images: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Random affine jitter of three anchor points, then a smooth random displacement field.

    Official steps: OpenCV ``warpAffine`` (bilinear, reflect-101 border) then
    ``map_coordinates`` with Gaussian-smoothed U(-1, 1) offsets scaled by alpha. Both are done
    here with scipy ``map_coordinates`` over the whole batch (mode 'mirror' = reflect-101).
    """
    alpha, sigma, jitter = CIFAR_C_SEVERITY_CONSTANTS["elastic_transform"][severity - 1]
    n, h, w, ch = images.shape
    # The official constants are for 32-px images; rescale for other sizes.
    scale = min(h, w) / 32.0
    alpha, sigma, jitter = alpha * scale, sigma * scale, jitter * scale
    x = images.astype(np.float32) / 255.0

    center = np.float32([h, w]) // 2
    size = min(h, w) // 3
    # (x, y) anchor points as OpenCV's getAffineTransform takes them.
    pts1 = np.float32([center + size, [center[0] + size, center[1] - size], center - size])
    pts2 = pts1[None] + rng.uniform(-jitter, jitter, size=(n, 3, 2)).astype(np.float32)
    src = np.concatenate([pts1, np.ones((3, 1), np.float32)], axis=1)  # (3, 3)
    # fwd: (n, 3, 2) with [x y 1] @ fwd = moved point, as getAffineTransform solves it
    fwd = np.linalg.solve(src[None].astype(np.float64), pts2.astype(np.float64))
    full = np.zeros((n, 3, 3))
    full[:, :, :2] = fwd
    full[:, 2, 2] = 1.0
    inv = np.linalg.inv(full)  # dst -> src, as warpAffine samples src at M^-1(dst)
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    dst = np.stack([cols, rows, np.ones_like(rows)], axis=-1).astype(np.float64)  # (h, w, [x y 1])
    src_xy = np.einsum("hwk,nkj->nhwj", dst, inv)  # (n, h, w, 3)
    x = _sample(x, src_xy[..., 1], src_xy[..., 0], mode="mirror")

    noise = rng.uniform(-1, 1, size=(2, n, h, w))
    if sigma > 0:
        noise = ndimage.gaussian_filter(
            noise, sigma=(0, 0, sigma, sigma), mode="reflect", truncate=3
        )
    dx, dy = (noise * alpha).astype(np.float32)
    x = _sample(x, rows[None] + dy, cols[None] + dx, mode="reflect")
    return _to_uint8(x)


def _sample(x: np.ndarray, rows: np.ndarray, cols: np.ndarray, mode: str) -> np.ndarray:
    """Bilinear sample of (N,H,W,C) ``x`` at per-image (N,H,W) row/col coordinates."""
    n, h, w, ch = x.shape
    out = np.empty_like(x)
    idx_n = np.broadcast_to(np.arange(n, dtype=np.float64)[:, None, None], rows.shape)
    for c in range(ch):
        plane = x[..., c]
        out[..., c] = ndimage.map_coordinates(plane, [idx_n, rows, cols], order=1, mode=mode)
    return out


CorruptionFn = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]

#: every implemented corruption, by its official file name (``<name>.npy``)
CORRUPTIONS: dict[str, CorruptionFn] = {
    "gaussian_noise": gaussian_noise,
    "shot_noise": shot_noise,
    "impulse_noise": impulse_noise,
    "speckle_noise": speckle_noise,
    "gaussian_blur": gaussian_blur,
    "defocus_blur": defocus_blur,
    "fog": fog,
    "contrast": contrast,
    "brightness": brightness,
    "pixelate": pixelate,
    "jpeg_compression": jpeg_compression,
    "elastic_transform": elastic_transform,
}


def corrupt(images: np.ndarray, name: str, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Apply corruption ``name`` at ``severity`` (1..5) to an (N, H, W, 3) uint8 batch."""
    if name not in CORRUPTIONS:
        raise COFTADInputError(
            f"corruption {name!r} is not implemented; choose from {', '.join(CORRUPTIONS)}"
        )
    _check(images, name, severity)
    if len(images) == 0:
        return images.copy()
    return CORRUPTIONS[name](images, severity, rng)
