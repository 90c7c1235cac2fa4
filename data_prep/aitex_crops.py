"""Cut the AITEX 4096 x 256 fabric scans into the paper's 256 x 256 patches (Sec. IV-A).

Writes ``<out>/normal/*.png`` (``patches_per_image`` random patches per defect-free scan),
``<out>/defect/*.png`` (the one patch of each defect scan that holds its defect),
``<out>/left_out.csv`` (defect scans left out, with the reason) and ``<out>/manifest.csv``. Every
file is written to a temporary name and renamed, and the manifest is written last, so an
interrupted run never looks finished; rerunning resumes it, and rerunning a finished run with the
same parameters does nothing.

The official release has quirks, each handled here and written down in the manifest's ``note``
column or in ``left_out.csv`` (the loader returns both in ``task.info``):

* ``0100_025_08.png`` has no mask and ``0106_010_03_mask.png`` is all black, so neither has a
  patch "holding the defect" and both are left out (:data:`KNOWN_UNMASKED`); that leaves 104
  defect patches (the paper reports 105, i.e. it kept one of them, but does not say how it placed
  its patch).
* ``0044_019_04`` and ``0097_030_03`` come with ``_mask1.png`` and ``_mask2.png`` instead of
  ``_mask.png``: the defect is the union of all masks of a scan.
* ``0094_027_05.png`` (and its mask) is 3796 px wide: patch positions are drawn within each scan's
  own size and the defect window is clamped to it, so any size of at least one patch works.
* 31 scans and 12 masks are grey + alpha (mode ``LA``): every image is reduced to 8-bit grey
  (``L``) by :func:`_to_gray`; the alpha channel is dropped (scans are fully opaque, and a mask's
  grey channel alone marks its defect). Masks are anti-aliased, not binary: pixels above
  ``mask_threshold`` (127) are defect.

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
from coftad_lib.datasets.crops import LEFT_OUT, MANIFEST
from coftad_lib.datasets.files import check_image_file, check_mask
from coftad_lib.datasets.sampling import rng_for
from coftad_lib.errors import COFTADInputError, DatasetNotFoundError, ImageReadError
from data_prep.atomic_io import fingerprint, save_png_atomic, start_run, write_csv_atomic

#: defect scans of the official release without a usable mask, left out by default:
#: 0100_025_08 has no mask file and 0106_010_03's mask has no defect pixel (all black). Any other
#: defect scan without a mask, or with an empty one, is an error.
KNOWN_UNMASKED: tuple[str, ...] = ("0100_025_08", "0106_010_03")

#: (width, height) of nearly all scans; another size is noted in the manifest, not refused
AITEX_SIZE = (4096, 256)

_NAME = re.compile(r"^(\d{4})_(\d{3})_(\d{2})$")  # nnnn_ddd_ff: image, defect code, fabric code

MANIFEST_FIELDS = [
    "file", "label", "kind", "source", "x", "y", "patch", "defect_px_in_patch", "defect_px_total", "note",
]  # fmt: skip
LEFT_OUT_FIELDS = ["source", "reason"]

# 16-bit grey PNGs open as one of these integer modes; their 0..65535 range is scaled to 0..255
_WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def _to_gray(img: Image.Image, path: Path) -> Image.Image:
    """8-bit grey (``L``, (H, W)) of ``img`` read from ``path``, whatever its mode.

    Alpha is dropped rather than composited: the scans are opaque and a mask's grey channel alone
    marks its defect. Palettes go through RGBA so their colours, not indices, become grey; 16-bit
    grey is scaled, because Pillow's own ``convert("L")`` clips it at 255.
    """
    if img.mode == "L":
        return img
    if img.mode in _WIDE_MODES:
        arr = np.asarray(img, dtype=np.int64)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise COFTADInputError(f"{path}: {img.mode} pixel values outside 0..65535; expected 8- or 16-bit grey")
        return Image.fromarray(np.round(arr / 257).astype(np.uint8), mode="L")
    if img.mode in ("P", "PA"):
        img = img.convert("RGBA")
    try:
        return img.convert("L")
    except ValueError as exc:
        raise COFTADInputError(f"{path}: image mode {img.mode!r} cannot be made 8-bit grey ({exc}); "
                               "expected a grey or colour PNG") from exc


def _read(path: Path) -> Image.Image:
    """The decoded 8-bit grey image at ``path``; a file that cannot be decoded is an ImageReadError."""
    try:
        with Image.open(path) as img:
            img.load()
            return _to_gray(img, path)
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot decode this image ({exc})") from exc


def _mode(path: Path) -> str:
    """The PIL mode of ``path`` from its header (nothing decoded); ``check_image_file`` ran first."""
    with Image.open(path) as img:
        return img.mode


def _scan_header(path: Path, patch: int) -> tuple[tuple[int, int], list[str]]:
    """(W, H) of a scan, checked to hold one patch, and the notes its size and mode call for."""
    size = check_image_file(path)
    if size[0] < patch or size[1] < patch:
        raise COFTADInputError(
            f"{path}: image is {size[0]}x{size[1]} (WxH); expected at least {patch}x{patch} to cut a patch"
        )
    notes = []
    if size != AITEX_SIZE:
        notes.append(f"scan {size[0]}x{size[1]}, not {AITEX_SIZE[0]}x{AITEX_SIZE[1]}: patch kept inside it")
    mode = _mode(path)
    if mode != "L":
        notes.append(f"scan mode {mode} made 8-bit grey" + (" (alpha dropped)" if "A" in mode else ""))
    return size, notes


def _masks_of(stem: str, mask_dir: Path) -> list[Path]:
    """``<stem>_mask.png`` and split masks such as ``<stem>_mask1.png``, ``<stem>_mask2.png``."""
    return sorted(p for p in mask_dir.glob(f"{stem}_mask*.png") if re.fullmatch(rf"{re.escape(stem)}_mask\d*", p.stem))


def _defect_mask(
    image: Path, masks: list[Path], size: tuple[int, int], threshold: int
) -> tuple[np.ndarray, list[str]]:
    """(H, W) bool union of an image's masks (may be all False), and notes on how it was made."""
    union = np.zeros((size[1], size[0]), dtype=bool)
    modes = set()
    for m in masks:
        check_mask(m, image, size)
        modes.add(_mode(m))
        union |= np.asarray(_read(m)) > threshold
    notes = [f"defect = union of {' + '.join(m.name for m in masks)}"] if len(masks) > 1 else []
    notes += [f"mask mode {mode} made 8-bit grey (grey channel used)" for mode in sorted(modes - {"L"})]
    return union, notes


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


def _skip_hint(stem: str) -> str:
    return f"pass skip_unmasked=(..., {stem!r}) or --skip-unmasked ... {stem} to leave it out"


def _match_masks(
    defect_imgs: list[Path], mask_dir: Path, skip_unmasked: Sequence[str]
) -> tuple[dict[Path, list[Path]], list[dict]]:
    """Each defect scan's mask files, and the ``left_out.csv`` rows of the scans that have none."""
    masks: dict[Path, list[Path]] = {}
    left_out = []
    for img in defect_imgs:
        found = _masks_of(img.stem, mask_dir)
        if found:
            masks[img] = found
        elif img.stem in skip_unmasked:
            left_out.append({"source": f"{img.parent.name}/{img.name}",
                             "reason": f"no mask: {mask_dir.name}/{img.stem}_mask.png is absent"})
        else:
            expected = mask_dir / f"{img.stem}_mask.png"
            raise COFTADInputError(f"{img}: defect scan without a mask; expected {expected} "
                                   f"(or _mask1.png, _mask2.png, ...); {_skip_hint(img.stem)}")
    return masks, left_out


def _normal_patches(
    img: Path,
    root: Path,
    normal_dir: Path,
    out: Path,
    seed: int,
    patch: int,
    patches_per_image: int,
) -> list[dict]:
    """Write one defect-free scan's random patches that are not there yet; their manifest rows.

    Positions are drawn without replacement from the scan's grid of non-overlapping patches
    (floor(W / patch) x floor(H / patch): 16 x 1 for a 4096 x 256 scan; a narrower scan, like
    0094_027_05 at 3796 px, just has fewer). Non-overlapping, because a shot and a test patch cut
    from overlapping windows of one scan would share pixels, and the test would partly score the
    training images; the paper says only "randomly crop".
    """
    rel = img.relative_to(normal_dir)
    size, notes = _scan_header(img, patch)
    rng = rng_for(seed, "aitex_crops", rel.as_posix())  # per scan: other scans do not shift it
    cols, grid_rows = size[0] // patch, size[1] // patch
    if cols * grid_rows < patches_per_image:
        raise COFTADInputError(f"{img}: {size[0]} x {size[1]} px holds {cols * grid_rows} non-overlapping "
                               f"{patch}-px patches; {patches_per_image} were asked (--patches-per-image)")
    cells = rng.choice(cols * grid_rows, size=patches_per_image, replace=False)
    xs, ys = (cells % cols) * patch, (cells // cols) * patch
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
                     "x": x, "y": y, "patch": patch, "defect_px_in_patch": 0, "defect_px_total": 0,
                     "note": "; ".join(notes)})
    return rows


def _defect_center(defect: np.ndarray, center: str) -> tuple[float, float]:
    """(x, y) centre of the (H, W) bool defect mask: its bounding box's middle or its centroid."""
    ys_, xs_ = np.nonzero(defect)
    if center == "bbox":
        return (xs_.min() + xs_.max() + 1) / 2, (ys_.min() + ys_.max() + 1) / 2
    return xs_.mean() + 0.5, ys_.mean() + 0.5


def _crop_origin(center: float, length: int, patch: int) -> int:
    """Top-left coordinate of a ``patch``-long window centred on ``center``, kept inside [0, length)."""
    return int(min(max(round(center - patch / 2), 0), length - patch))


def _densest_window(defect: np.ndarray, patch: int) -> tuple[int, int]:
    """Top-left (x, y) of the ``patch`` x ``patch`` window of the (H, W) bool mask with most defect pixels.

    Summed-area table: every window's count in one pass; ties go to the first (top, then left).
    """
    sat = np.pad(defect.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    counts = sat[patch:, patch:] - sat[:-patch, patch:] - sat[patch:, :-patch] + sat[:-patch, :-patch]
    y, x = np.unravel_index(int(np.argmax(counts)), counts.shape)
    return int(x), int(y)


def _defect_window(defect: np.ndarray, patch: int, center: str) -> tuple[int, int, list[str]]:
    """Top-left (x, y) of the defect patch in the (H, W) bool mask, and a note if the fallback was used.

    The window is centred on the defect (``center``) and clamped to the scan. A defect of parts far
    apart can leave that window without a defect pixel; then the window holding the most defect
    pixels is taken, so every defect patch shows some of its defect.
    """
    cx, cy = _defect_center(defect, center)
    x, y = _crop_origin(cx, defect.shape[1], patch), _crop_origin(cy, defect.shape[0], patch)
    if defect[y : y + patch, x : x + patch].any():
        return x, y, []
    x, y = _densest_window(defect, patch)
    return x, y, [f"{center}-centred window held no defect pixel; window with most defect pixels taken"]


def _defect_patch(
    img: Path, img_masks: list[Path], root: Path, out: Path, patch: int, center: str, mask_threshold: int,
    skip_unmasked: Sequence[str],
) -> dict:
    """Write the patch of one defect scan that holds its defect, unless there; its manifest row.

    Returns a ``left_out.csv`` row (keys source, reason) instead when the masks hold no defect
    pixel and the scan is in ``skip_unmasked``.
    """
    size, notes = _scan_header(img, patch)
    defect, mask_notes = _defect_mask(img, img_masks, size, mask_threshold)
    source = img.relative_to(root).as_posix()
    if not defect.any():
        names = ", ".join(m.name for m in img_masks)
        if img.stem in skip_unmasked:
            return {"source": source, "reason": f"empty mask: {names} has no pixel above {mask_threshold}"}
        paths = ", ".join(map(str, img_masks))
        raise COFTADInputError(f"{paths}: mask has no defect pixels (> {mask_threshold}); "
                               f"expected the defect of {img} in white; {_skip_hint(img.stem)}")
    x, y, window_notes = _defect_window(defect, patch, center)
    name = f"defect/{img.stem}_x{x:04d}_y{y:04d}.png"
    if not (out / name).is_file():
        save_png_atomic(_read(img).crop((x, y, x + patch, y + patch)), out / name)
    m = _NAME.match(img.stem)
    return {"file": name, "label": 1, "kind": f"defect_{m.group(2)}" if m else "defect",
            "source": source, "x": x, "y": y, "patch": patch,
            "defect_px_in_patch": int(defect[y : y + patch, x : x + patch].sum()),
            "defect_px_total": int(defect.sum()), "note": "; ".join(notes + mask_notes + window_notes)}  # fmt: skip


def _check_args(center: str, patch: int, patches_per_image: int) -> None:
    if center not in ("bbox", "centroid"):
        raise COFTADInputError(f"center={center!r}; expected 'bbox' or 'centroid'")
    if patch <= 0 or patches_per_image <= 0:
        raise COFTADInputError(f"patch={patch}, patches_per_image={patches_per_image}; both must be positive")


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
        out_dir: where ``normal/``, ``defect/``, ``left_out.csv`` and ``manifest.csv`` go.
        seed: chooses the random patch positions; the same seed gives the same patches.
        patch: patch side in pixels (paper: 256, the scans' height).
        patches_per_image: random patches per defect-free scan (paper: 5), drawn from the scan's
            grid of non-overlapping patches (so no two share pixels); the paper says only "randomly crop".
        center: where the defect patch is centred: ``"bbox"`` (the middle of the defect's bounding
            box, so an elongated defect is covered evenly) or ``"centroid"`` (the mask's centre of
            mass). Either way the window is clamped to the image, and if it then holds no defect
            pixel the window holding most of them is taken. The paper does not say.
        mask_threshold: mask pixels above this (0..255) are defect; the released masks are
            anti-aliased, not strictly binary.
        skip_unmasked: defect-scan names (without extension) left out when they have no mask file
            or an empty mask; any other defect scan without a usable mask is an error.

    Raises:
        DatasetNotFoundError: a folder of the layout is missing.
        COFTADInputError: a defect scan without usable mask, a mask of another size than its scan,
            an undecodable image, or a scan smaller than the patch.
    """
    _check_args(center, patch, patches_per_image)
    root, out = Path(aitex_root), Path(out_dir)
    dirs, normal_imgs, defect_imgs = _find_scans(root)
    masks, left_out = _match_masks(defect_imgs, dirs["Mask_images"], skip_unmasked)
    inputs = normal_imgs + [p for img, ms in masks.items() for p in [img, *ms]]
    params = {
        "job": "aitex_crops", "seed": seed, "patch": patch, "patches_per_image": patches_per_image,
        "center": center, "mask_threshold": mask_threshold, "skip_unmasked": sorted(skip_unmasked),
        "inputs": fingerprint(inputs, root),
    }  # fmt: skip
    if start_run(out, params):
        if verbose:
            print(f"{out}: crops already complete for these settings; nothing to do")
        return out

    rows: list[dict] = []
    for img in normal_imgs:
        rows += _normal_patches(img, root, dirs["NODefect_images"], out, seed, patch, patches_per_image)
    for img, img_masks in masks.items():
        row = _defect_patch(img, img_masks, root, out, patch, center, mask_threshold, skip_unmasked)
        (rows if "file" in row else left_out).append(row)

    left_out.sort(key=lambda r: r["source"])
    write_csv_atomic(out / LEFT_OUT, left_out, LEFT_OUT_FIELDS)
    write_csv_atomic(out / MANIFEST, rows, MANIFEST_FIELDS)  # last: its presence means finished
    if verbose:
        n_def = sum(r["label"] for r in rows)
        note = "".join(f"\n  left out {r['source']}: {r['reason']}" for r in left_out)
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
    ap.add_argument("--skip-unmasked", nargs="*", default=list(KNOWN_UNMASKED), metavar="STEM",
                    help="defect scans to leave out when their mask is absent or empty "
                         f"(default: {' '.join(KNOWN_UNMASKED)}; none given: leave none out)")
    args = ap.parse_args(argv)
    try:
        prepare_crops(args.root, args.out, args.seed, patch=args.patch, patches_per_image=args.patches_per_image,
                      center=args.center, skip_unmasked=tuple(args.skip_unmasked))  # fmt: skip
    except (COFTADInputError, DatasetNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
