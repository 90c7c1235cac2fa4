"""Generated AITEX folders in the official layout, with the real release's quirks (paper Sec. IV-A).

Shared by the AITEX data-preparation tests: scans are 256 px high like the real ones, but narrower
than 4096 px for speed. :func:`make_aitex_root` adds one file per quirk of the official files: a
defect scan without mask, one with an all-black mask, one with two masks, narrower scans, and scans
and masks stored as grey + alpha (LA), RGBA and 16-bit grey.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image


def manifest_rows(out: Path) -> list[dict]:
    """Rows of ``<out>/manifest.csv`` as dicts of strings."""
    with open(out / "manifest.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def write_png(path: Path, arr: np.ndarray, mode: str | None = None) -> Path:
    """Write the (H, W) or (H, W, C) array as a PNG at ``path`` (folders made as needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode=mode).save(path)
    return path


def scan(width: int, seed: int, channels: int = 0) -> np.ndarray:
    """A 256-high fabric-like scan (the real height; widths reduced from 4096 for speed).

    ``channels``: 0 grey (H, W); 2 grey + alpha (H, W, 2), as 31 real scans are stored (mode LA);
    4 RGBA (H, W, 4).
    """
    rng = np.random.default_rng(seed)
    base = 120 + 40 * np.sin(np.arange(width) / 3.0)[None, :] + rng.normal(0, 10, (256, width))
    gray = np.clip(base, 0, 255).astype(np.uint8)
    opaque = np.full_like(gray, 255)
    if channels == 2:
        return np.dstack([gray, opaque])
    if channels == 4:
        return np.dstack([gray, gray, gray, opaque])
    return gray


def gray_of(path: Path) -> np.ndarray:
    """(H, W) uint8 grey of a fixture scan: its (first) grey channel; 16-bit scaled to 8-bit."""
    arr = np.asarray(Image.open(path))
    if arr.dtype == np.uint16:
        return np.round(arr / 257).astype(np.uint8)
    return arr if arr.ndim == 2 else arr[..., 0]


def band_mask(width: int, x0: int, x1: int, y0: int, y1: int) -> np.ndarray:
    """(H, W) uint8 mask, 255 on the rectangle [y0, y1) x [x0, x1), 0 elsewhere."""
    m = np.zeros((256, width), dtype=np.uint8)
    m[y0:y1, x0:x1] = 255
    return m


def la_mask(width: int, x0: int, x1: int, y0: int, y1: int) -> np.ndarray:
    """(H, W, 2) grey + alpha mask like the real LA masks: anti-aliased rim, alpha below 255 there."""
    grey = band_mask(width, x0, x1, y0, y1)
    grey[y0 - 1, x0:x1] = 60  # a faint rim above the defect: not defect at threshold 127
    alpha = np.full_like(grey, 255)
    alpha[y0, x0:x1] = 40  # the real masks' alpha dips on the defect's edge; the grey channel counts
    return np.dstack([grey, alpha])


def make_aitex_root(root: Path) -> Path:
    """The official layout under ``root`` with each quirk of the real release, at reduced widths."""
    write_png(root / "NODefect_images" / "2306881-210020u" / "0001_000_00.png", scan(1536, 1))
    write_png(root / "NODefect_images" / "2306881-210020u" / "0002_000_00.png", scan(1536, 2, channels=4), "RGBA")
    write_png(root / "NODefect_images" / "2311517-195063u" / "0003_000_01.png", scan(1300, 3))  # narrower
    write_png(root / "NODefect_images" / "2311517-195063u" / "0004_000_04.png", scan(1536, 7, channels=2))  # LA
    # a 16-bit grey scan: Pillow's own convert("L") would clip it to white
    # (normal scans are >= 5 x 256 px wide: their 5 patches come from a non-overlapping grid)
    wide = scan(1280, 8).astype(np.uint16) * 257
    write_png(root / "NODefect_images" / "2311517-195063u" / "0005_000_04.png", wide)
    # defect near the right edge: its patch must be clamped inside the image
    write_png(root / "Defect_images" / "0010_002_00.png", scan(1024, 4))
    write_png(root / "Mask_images" / "0010_002_00_mask.png", band_mask(1024, 950, 1010, 100, 140))
    # narrower RGBA scan whose defect comes as two mask files
    write_png(root / "Defect_images" / "0011_019_01.png", scan(700, 5, channels=4), "RGBA")
    write_png(root / "Mask_images" / "0011_019_01_mask1.png", band_mask(700, 300, 320, 10, 30))
    write_png(root / "Mask_images" / "0011_019_01_mask2.png", band_mask(700, 400, 420, 200, 230))
    # like 0094_027_05: a narrower grey + alpha scan with a grey + alpha mask
    write_png(root / "Defect_images" / "0094_027_05.png", scan(760, 9, channels=2))
    write_png(root / "Mask_images" / "0094_027_05_mask.png", la_mask(760, 700, 740, 50, 60))
    # the official release's scan without a mask and the one with an all-black mask, left out by default
    write_png(root / "Defect_images" / "0100_025_08.png", scan(1024, 6))
    write_png(root / "Defect_images" / "0106_010_03.png", scan(512, 10))
    write_png(root / "Mask_images" / "0106_010_03_mask.png", np.zeros((256, 512), np.uint8))
    return root


N_NORMAL_SCANS = 5  # defect-free scans make_aitex_root writes
