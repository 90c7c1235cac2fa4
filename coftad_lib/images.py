"""Turning user images (paths, PIL images, arrays, tensors) into one float batch.

Every detector in the library takes the same ``images`` argument; this module is
the only place that decodes files, so errors about bad files are raised here with
the file's path in the message.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import COFTADInputError, ImageReadError
from .image_cache import cached_decode

ImageLike = str | os.PathLike | Image.Image | np.ndarray | torch.Tensor
Images = Sequence[ImageLike] | np.ndarray | torch.Tensor

ORIENTATION_TAG = 0x0112  # EXIF Orientation
#: slack around [0, 1] for float images (interpolation and float rounding), far below a 0-255 image
RANGE_TOL = 0.01


def check_values(t: torch.Tensor, label: Callable[[int], str]) -> None:
    """Raise :class:`COFTADInputError` naming the first image of (N, C, H, W) float ``t`` with a
    NaN / infinite value or a value outside [0, 1] (``label(i)`` names image i for the user).

    Float 0-255 images are rejected, not rescaled: a float image carries no scale, and guessing
    one (e.g. "max > 1 means 0-255") would silently mis-scale dark 0-255 images and pass
    mean/std-normalised tensors through. The message says which fix applies.
    """
    flat = t.detach().flatten(1)
    finite = torch.isfinite(flat).all(1)
    if not bool(finite.all()):
        i = int((~finite).nonzero()[0])
        raise COFTADInputError(f"{label(i)}: contains NaN or infinite values; images must be finite, in [0, 1] "
                               f"({int((~finite).sum())} of {len(flat)} images affected)")
    lo, hi = flat.amin(1), flat.amax(1)
    bad = (lo < -RANGE_TOL) | (hi > 1 + RANGE_TOL)
    if bool(bad.any()):
        i = int(bad.nonzero()[0])
        a, b = float(lo[i]), float(hi[i])
        hint = ("it looks like a 0-255 image: divide by 255 or pass uint8" if a >= 0 and b <= 255.5 else
                "it looks mean/std-normalised: pass the [0, 1] image (each backbone normalises inside)")
        raise COFTADInputError(f"{label(i)}: float values span {a:.4g} to {b:.4g}, but float images must lie in "
                               f"[0, 1]; {hint}")


def _pil_to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB: grayscale, palette, RGBA, 16-bit and float are converted, not rejected."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit and float scans (X-ray, depth) carry their range in the data, not the mode:
        # stretch min..max to 0..255 so the detail survives the 8-bit conversion.
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        img = Image.fromarray(arr.astype(np.uint8), mode="L")
    if img.mode in ("P", "PA"):
        img = img.convert("RGBA")
    return img.convert("RGB")


def load_image(path: str | os.PathLike) -> Image.Image:
    """Read one image file as 8-bit RGB, raising :class:`ImageReadError` naming the file on failure."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such image file")
    try:
        with Image.open(path) as img:
            img.load()  # decode now, so a truncated file fails here and not later
            # Cameras and phones store the pixels as shot plus an EXIF orientation tag; viewers
            # apply it, so the user expects the rotated image (no tag: the image is unchanged).
            if img.getexif().get(ORIENTATION_TAG, 1) != 1:
                img = ImageOps.exif_transpose(img)
            return _pil_to_rgb(img)
    except Image.DecompressionBombError as exc:  # PIL's guard: a few KB of PNG can decode to gigabytes
        raise ImageReadError(f"{path}: too large to decode ({exc}); downscale it, or leave it out "
                             "(--skip-bad / skip_bad=True)") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(
            f"{path}: cannot read this image ({exc}); expected a complete PNG/JPEG/TIFF/BMP file"
        ) from exc


def _array_to_chw(arr: np.ndarray, what: str) -> torch.Tensor:
    """(H, W) or (H, W, C) array -> (3, H, W) float tensor in [0, 1]."""
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4):
        raise COFTADInputError(f"{what}: expected an (H, W) or (H, W, C) array with C in 1, 3, 4, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        t = torch.from_numpy(np.ascontiguousarray(arr)).float() / 255.0
    elif arr.dtype == np.uint16:
        t = torch.from_numpy(arr.astype(np.float32)) / 65535.0
    elif np.issubdtype(arr.dtype, np.floating):
        t = torch.from_numpy(arr.astype(np.float32))
        check_values(t.permute(2, 0, 1)[None], lambda _: what)
    else:
        raise COFTADInputError(f"{what}: unsupported array dtype {arr.dtype}; use uint8, uint16 or float in [0, 1]")
    return _chw_to_rgb(t.permute(2, 0, 1), what)


def _chw_to_rgb(t: torch.Tensor, what: str) -> torch.Tensor:
    """(C, H, W) tensor with C in 1, 3, 4 -> (3, H, W) float in [0, 1]."""
    if t.ndim != 3 or t.shape[0] not in (1, 3, 4):
        raise COFTADInputError(f"{what}: expected a (C, H, W) tensor with C in 1, 3, 4, got shape {tuple(t.shape)}")
    if t.dtype == torch.uint8:
        t = t.float() / 255.0
    else:
        check_values(t[None], lambda _: what)
    t = t.float()
    if t.shape[0] == 1:
        t = t.expand(3, -1, -1)
    elif t.shape[0] == 4:
        t = t[:3]
    return t


def _resize(t: torch.Tensor, size: int) -> torch.Tensor:
    """(N, 3, H, W) -> (N, 3, size, size), antialiased bilinear."""
    if t.shape[-2:] == (size, size):
        return t
    return F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False).clamp_(0, 1)


def _one_to_tensor(item: ImageLike, size: int, index: int) -> torch.Tensor:
    """One image-like -> (3, size, size) float tensor in [0, 1]."""
    if isinstance(item, (str, os.PathLike)):
        # Decoded and resized once per process, then shared by every cell and by scoring.
        return cached_decode(item, size, _decode_file).float() / 255.0
    elif isinstance(item, Image.Image):
        img = _pil_to_rgb(item)
        what = f"images[{index}]"
    elif isinstance(item, np.ndarray):
        return _resize(_array_to_chw(item, f"images[{index}]")[None], size)[0]
    elif isinstance(item, torch.Tensor):
        return _resize(_chw_to_rgb(item.detach().cpu(), f"images[{index}]")[None], size)[0]
    else:
        raise COFTADInputError(
            f"images[{index}]: expected a file path, PIL image, numpy array or tensor, got {type(item).__name__}"
        )
    return _pil_to_uint8(img, size, what).float() / 255.0


def _pil_to_uint8(img: Image.Image, size: int, what: str) -> torch.Tensor:
    """RGB PIL image -> (3, size, size) uint8 tensor."""
    # Resizing large scans (900x900 MVTec, 4096x256 AITEX) in PIL first keeps memory small.
    try:
        img = img.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
    except OSError as exc:
        raise ImageReadError(f"{what}: cannot decode image ({exc})") from exc
    arr = np.asarray(img, dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)


def _decode_file(path: str | os.PathLike, size: int) -> torch.Tensor:
    """Image file -> (3, size, size) uint8 tensor; what :mod:`coftad_lib.image_cache` caches."""
    return _pil_to_uint8(load_image(path), size, str(path))


def images_to_tensor(images: Images, size: int, *, num_workers: int = 4) -> torch.Tensor:
    """Convert user images to a float batch.

    Args:
        images: a sequence of file paths / PIL images / (H, W[, C]) arrays / (C, H, W) tensors,
            or a whole batch as an (N, H, W, C) uint8 array or an (N, C, H, W) tensor.
        size: output side length; every image is resized to ``size x size``.

    Returns:
        (N, 3, size, size) float32 tensor in [0, 1] on the CPU.
    """
    if isinstance(images, (str, os.PathLike, Image.Image)):
        raise COFTADInputError("images: expected a list of images, got a single image; wrap it in a list")
    if isinstance(images, np.ndarray):
        if images.ndim != 4:
            raise COFTADInputError(f"images: a numpy batch must be (N, H, W, C), got shape {images.shape}")
        if len(images) == 0:
            raise COFTADInputError("images: the image list is empty; at least one image is needed")
        out = torch.empty(len(images), 3, size, size)
        for start in range(0, len(images), 512):  # chunks bound the float copy of large uint8 batches
            chunk = torch.from_numpy(np.ascontiguousarray(images[start : start + 512])).permute(0, 3, 1, 2)
            if chunk.shape[1] == 1:
                chunk = chunk.expand(-1, 3, -1, -1)
            if chunk.shape[1] not in (3, 4):
                raise COFTADInputError(f"images: a numpy batch needs 1, 3 or 4 channels, got shape {images.shape}")
            scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(images.dtype)
            chunk = chunk[:, :3].float() / (scale or 1.0)
            if scale is None:
                check_values(chunk, lambda i, s=start: f"images[{s + i}]")
            out[start : start + len(chunk)] = _resize(chunk, size)
        return out
    if isinstance(images, torch.Tensor):
        if images.ndim != 4:
            raise COFTADInputError(f"images: a tensor batch must be (N, C, H, W), got shape {tuple(images.shape)}")
        if len(images) == 0:
            raise COFTADInputError("images: the image list is empty; at least one image is needed")
        t = images.detach().cpu()
        if t.dtype == torch.uint8:
            t = t.float() / 255.0
        else:
            check_values(t, lambda i: f"images[{i}]")
            t = t.float()
        if t.shape[1] == 1:
            t = t.expand(-1, 3, -1, -1)
        elif t.shape[1] == 4:
            t = t[:, :3]
        elif t.shape[1] != 3:
            raise COFTADInputError(f"images: a tensor batch needs 1, 3 or 4 channels, got shape {tuple(t.shape)}")
        return _resize(t.contiguous(), size)
    items = list(images)
    if not items:
        raise COFTADInputError("images: the image list is empty; at least one image is needed")
    if len(items) < 16 or num_workers <= 1:
        tensors = [_one_to_tensor(it, size, i) for i, it in enumerate(items)]
    else:
        # PIL releases the GIL while decoding, so threads overlap file reads and decoding.
        with ThreadPoolExecutor(num_workers) as pool:
            tensors = list(pool.map(lambda a: _one_to_tensor(a[1], size, a[0]), enumerate(items)))
    return torch.stack(tensors)
