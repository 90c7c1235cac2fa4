"""Cut the AITEX 4096 x 256 fabric scans into the paper's 256 x 256 patches (Sec. IV-A).

Writes ``<out>/normal/*.png`` (``patches_per_image`` random patches per defect-free scan),
``<out>/defect/*.png`` (the one patch of each defect scan that holds its defect) and
``<out>/manifest.csv``. Every file is written to a temporary name and renamed, and the manifest is
written last, so an interrupted run never looks finished; rerunning resumes it, and rerunning a
finished run with the same parameters does nothing.

CLI::

    python -m data_prep.aitex_crops --root data/aitex --out data/aitex_crops [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from coftad_lib.datasets.aitex import HOW_TO_GET
from coftad_lib.datasets.crops import MANIFEST
from coftad_lib.datasets.files import check_image_file, check_mask
from coftad_lib.datasets.sampling import rng_for
from coftad_lib.errors import COFTADInputError, DatasetNotFoundError, ImageReadError
from data_prep.atomic_io import fingerprint, save_png_atomic, start_run, write_csv_atomic

#: defect scans of the official release that ship without a mask. 0100_025_08 has none, and
#: leaving it out gives the paper's count of 105 defect images; any other scan without a mask is
#: an error.
KNOWN_UNMASKED: tuple[str, ...] = ("0100_025_08",)

_NAME = re.compile(r"^(\d{4})_(\d{3})_(\d{2})$")  # nnnn_ddd_ff: image, defect code, fabric code

MANIFEST_FIELDS = [
    "file", "label", "kind", "source", "x", "y", "patch", "defect_px_in_patch", "defect_px_total",
]  # fmt: skip


def _to_gray(img: Image.Image) -> Image.Image:
    """8-bit grayscale; alpha channels (a few AITEX scans have one) and palettes are dropped."""
    if img.mode == "L":
        return img
    if img.mode in ("P", "PA"):
        img = img.convert("RGBA")
    return img.convert("L")


def _masks_of(stem: str, mask_dir: Path) -> list[Path]:
    """``<stem>_mask.png`` and split masks such as ``<stem>_mask1.png``, ``<stem>_mask2.png``."""
    return sorted(p for p in mask_dir.glob(f"{stem}_mask*.png") if re.fullmatch(rf"{re.escape(stem)}_mask\d*", p.stem))


def _defect_mask(image: Path, masks: list[Path], size: tuple[int, int], threshold: int) -> np.ndarray:
    """(H, W) bool union of an image's masks; checks each mask's size against the image."""
    union = np.zeros((size[1], size[0]), dtype=bool)
    for m in masks:
        check_mask(m, image, size)
        with Image.open(m) as im:
            union |= np.asarray(_to_gray(im)) > threshold
    if not union.any():
        raise COFTADInputError(f"{', '.join(map(str, masks))}: mask has no defect pixels (> {threshold}); expected the defect of {image} in white")
    return union


def _crop_origin(center: float, length: int, patch: int) -> int:
    """Top-left coordinate of a ``patch``-long window centred on ``center``, kept inside [0, length)."""
    return int(min(max(round(center - patch / 2), 0), length - patch))


def _read(path: Path) -> Image.Image:
    try:
        with Image.open(path) as img:
            img.load()
            return _to_gray(img)
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot decode this image ({exc})") from exc


def _check_size(path: Path, size: tuple[int, int], patch: int) -> None:
    if size[0] < patch or size[1] < patch:
        raise COFTADInputError(f"{path}: image is {size[0]}x{size[1]} (WxH); expected at least {patch}x{patch} to cut a patch")


def _find_scans(root: Path) -> tuple[dict[str, Path], list[Path], list[Path]]:
    """The layout's folders by name, and the sorted defect-free and defect PNG scans."""
    dirs = {d: root / d for d in ("Defect_images", "NODefect_images", "Mask_images")}
    for d in dirs.values():
        if not d.is_dir():
            raise DatasetNotFoundError(f"{d}: folder not found; {root} is not an AITEX folder.\n{HOW_TO_GET}")
    normal_imgs = sorted(p for p in dirs["NODefect_images"].rglob("*.png") if not p.name.startswith("."))
    defect_imgs = sorted(p for p in dirs["Defect_images"].glob("*.png") if not p.name.startswith("."))
    if not normal_imgs:
        raise COFTADInputError(f"{dirs['NODefect_images']}: no PNG scans; expected <fabric>/*.png defect-free scans")
    if not defect_imgs:
        raise COFTADInputError(f"{dirs['Defect_images']}: no PNG scans; expected nnnn_ddd_ff.png defect scans")
    return dirs, normal_imgs, defect_imgs


def _match_masks(
    defect_imgs: list[Path], mask_dir: Path, skip_unmasked: Sequence[str]
) -> tuple[dict[Path, list[Path]], list[str]]:
    """Each defect scan's mask files, and the stems of the scans left out for having none."""
    masks: dict[Path, list[Path]] = {}
    skipped = []
    for img in defect_imgs:
        found = _masks_of(img.stem, mask_dir)
        if found:
            masks[img] = found
        elif img.stem in skip_unmasked:
            skipped.append(img.stem)
        else:
            raise COFTADInputError(
                f"{img}: defect scan without a mask; expected {mask_dir / (img.stem + '_mask.png')} "
                f"(pass skip_unmasked=(..., {img.stem!r}) to leave it out)"
            )
    return masks, skipped


def _normal_patches(
    img: Path,
    root: Path,
    normal_dir: Path,
    out: Path,
    seed: int,
    patch: int,
    patches_per_image: int,
) -> list[dict]:
    """Write one defect-free scan's random patches that are not there yet; their manifest rows."""
    rel = img.relative_to(normal_dir)
    size = check_image_file(img)
    _check_size(img, size, patch)
    rng = rng_for(seed, "aitex_crops", rel.as_posix())  # per scan: other scans do not shift it
    xs = rng.integers(0, size[0] - patch + 1, size=patches_per_image)
    ys = rng.integers(0, size[1] - patch + 1, size=patches_per_image)
    prefix = "_".join(rel.with_suffix("").parts)
    todo = [(i, int(x), int(y)) for i, (x, y) in enumerate(zip(xs, ys, strict=True))]
    names = [f"normal/{prefix}_p{i}_x{x:04d}_y{y:04d}.png" for i, x, y in todo]
    if not all((out / n).is_file() for n in names):
        pixels = _read(img)
        for (_, x, y), name in zip(todo, names, strict=True):
            if not (out / name).is_file():
                save_png_atomic(pixels.crop((x, y, x + patch, y + patch)), out / name)
    rows = []
    for (_, x, y), name in zip(todo, names, strict=True):
        rows.append({"file": name, "label": 0, "kind": "normal", "source": img.relative_to(root).as_posix(),
                     "x": x, "y": y, "patch": patch, "defect_px_in_patch": 0, "defect_px_total": 0})
    return rows


def _defect_center(defect: np.ndarray, center: str) -> tuple[float, float]:
    """(x, y) centre of the (H, W) bool defect mask: its bounding box's middle or its centroid."""
    ys_, xs_ = np.nonzero(defect)
    if center == "bbox":
        return (xs_.min() + xs_.max() + 1) / 2, (ys_.min() + ys_.max() + 1) / 2
    return xs_.mean() + 0.5, ys_.mean() + 0.5


def _defect_patch(
    img: Path,
    img_masks: list[Path],
    root: Path,
    out: Path,
    patch: int,
    center: str,
    mask_threshold: int,
) -> dict:
    """Write the patch of one defect scan that holds its defect, unless there; its manifest row."""
    size = check_image_file(img)
    _check_size(img, size, patch)
    defect = _defect_mask(img, img_masks, size, mask_threshold)
    cx, cy = _defect_center(defect, center)
    x, y = _crop_origin(cx, size[0], patch), _crop_origin(cy, size[1], patch)
    name = f"defect/{img.stem}_x{x:04d}_y{y:04d}.png"
    if not (out / name).is_file():
        save_png_atomic(_read(img).crop((x, y, x + patch, y + patch)), out / name)
    m = _NAME.match(img.stem)
    return {"file": name, "label": 1, "kind": f"defect_{m.group(2)}" if m else "defect",
            "source": img.relative_to(root).as_posix(), "x": x, "y": y, "patch": patch,
            "defect_px_in_patch": int(defect[y : y + patch, x : x + patch].sum()),
            "defect_px_total": int(defect.sum())}  # fmt: skip


def prepare_crops(
    aitex_root: str | os.PathLike,
    out_dir: str | os.PathLike,
    seed: int = 0,
    *,
    patch: int = 256,
    patches_per_image: int = 5,
    center: str = "bbox",
    mask_threshold: int = 127,
    skip_unmasked: Sequence[str] = KNOWN_UNMASKED,
    verbose: bool = True,
) -> Path:
    """Cut the AITEX scans into patches (paper Sec. IV-A); returns ``out_dir``.

    Args:
        aitex_root: the official layout (``Defect_images/``, ``NODefect_images/<fabric>/``,
            ``Mask_images/``).
        out_dir: where ``normal/``, ``defect/`` and ``manifest.csv`` go.
        seed: chooses the random patch positions; the same seed gives the same patches.
        patch: patch side in pixels (paper: 256, the scans' height).
        patches_per_image: random patches per defect-free scan (paper: 5). Positions are drawn
            independently and uniformly, so two patches of one scan may overlap; the paper says only
            "randomly crop".
        center: where the defect patch is centred: ``"bbox"`` (the middle of the defect's bounding
            box, so an elongated defect is covered evenly) or ``"centroid"`` (the mask's centre of
            mass). Either way the window is clamped to the image. The paper does not say.
        mask_threshold: mask pixels above this (0..255) are defect; the released masks are not all
            strictly binary.
        skip_unmasked: defect-scan names (without extension) that have no mask and are left out;
            any other defect scan without a mask is an error.

    Raises:
        DatasetNotFoundError: a folder of the layout is missing.
        COFTADInputError: a defect scan without mask, a mask of another size than its scan, an empty
            mask, or a scan smaller than the patch.
    """
    if center not in ("bbox", "centroid"):
        raise COFTADInputError(f"center={center!r}; expected 'bbox' or 'centroid'")
    if patch <= 0 or patches_per_image <= 0:
        raise COFTADInputError(f"patch={patch}, patches_per_image={patches_per_image}; both must be positive")
    root, out = Path(aitex_root), Path(out_dir)
    dirs, normal_imgs, defect_imgs = _find_scans(root)
    masks, skipped = _match_masks(defect_imgs, dirs["Mask_images"], skip_unmasked)
    inputs = normal_imgs + [p for img, ms in masks.items() for p in [img, *ms]]
    params = {
        "job": "aitex_crops", "seed": seed, "patch": patch, "patches_per_image": patches_per_image,
        "center": center, "mask_threshold": mask_threshold, "inputs": fingerprint(inputs, root),
    }  # fmt: skip
    if start_run(out, params):
        if verbose:
            print(f"{out}: crops already complete for these settings; nothing to do")
        return out

    rows: list[dict] = []
    normal_dir = dirs["NODefect_images"]
    for img in normal_imgs:
        rows += _normal_patches(img, root, normal_dir, out, seed, patch, patches_per_image)
    for img, img_masks in masks.items():
        rows.append(_defect_patch(img, img_masks, root, out, patch, center, mask_threshold))

    write_csv_atomic(out / MANIFEST, rows, MANIFEST_FIELDS)
    if verbose:
        n_def = sum(r["label"] for r in rows)
        note = f" (left out, no mask: {', '.join(skipped)})" if skipped else ""
        print(f"{out}: {len(rows) - n_def} normal + {n_def} defect patches of {patch}x{patch}{note}")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    ap = argparse.ArgumentParser(prog="python -m data_prep.aitex_crops", description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", required=True, help="AITEX folder (Defect_images/, NODefect_images/, Mask_images/)")
    ap.add_argument("--out", required=True, help="output folder for normal/, defect/, manifest.csv")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--patch", type=int, default=256)
    ap.add_argument("--patches-per-image", type=int, default=5)
    ap.add_argument("--center", choices=("bbox", "centroid"), default="bbox")
    args = ap.parse_args(argv)
    try:
        prepare_crops(args.root, args.out, args.seed, patch=args.patch,
                      patches_per_image=args.patches_per_image, center=args.center)  # fmt: skip
    except (COFTADInputError, DatasetNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
