"""Synthetic stand-in for the private SemiCon 3D X-ray volumes (paper Sec. IV-A, dataset [44]).

Each volume is a (Z, Y, X) 16-bit scan of one interconnect layer: a die on top, a substrate below
and between them a grid of barrel-shaped solder bumps (bright: solder absorbs X-rays strongly).
Some bumps hold spherical voids of varied size (dark: gas absorbs little). The image is blurred
like an XRM point-spread function and carries Poisson (photon) and Gaussian (read-out) noise. With
every volume come its solder mask (the bumps, voids included) and void mask, the inputs
``data_prep.semicon_slices`` labels slices from. Deterministic given the seed.

Files: ``<out>/vol_000.tif``, ``<out>/vol_000_solder.tif``, ``<out>/vol_000_void.tif`` ...
(``fmt="npy"`` or ``"nii.gz"`` for the other formats the slicer reads).

CLI::

    python -m data_prep.semicon_synth --out data/semicon_volumes --n-volumes 6 --seed 0
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from coftad_lib.atomic_files import atomic_path
from coftad_lib.datasets.sampling import rng_for
from coftad_lib.errors import COFTADInputError
from data_prep.atomic_io import read_json, write_json_atomic

#: records the parameters the volumes in a folder were made with
PARAMS_FILE = "synth.json"
FORMATS = ("tif", "npy", "nii.gz")

# Relative attenuation of each material before noise; solder (Sn-Ag) is far denser than the silicon
# die, the organic substrate or the gas in a void.
_BACKGROUND, _DIE, _SUBSTRATE, _SOLDER, _VOID = 0.08, 0.35, 0.28, 0.9, 0.12


def synth_volume(
    shape: tuple[int, int, int],
    rng: np.random.Generator,
    *,
    pitch: int = 32,
    void_prob: float = 0.35,
    blur_sigma: float = 1.0,
    photons: float = 300.0,
    read_noise: float = 0.01,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One synthetic scan.

    Args:
        shape: (Z, Y, X); the bumps are vertical, so slicing along axis 0 cuts across them.
        rng: the random generator (positions, sizes, voids, noise).
        pitch: bump spacing in voxels; a (Y // pitch) x (X // pitch) grid.
        void_prob: mean chance that a bump holds voids (scaled per volume, so some scans are
            cleaner than others).
        blur_sigma: Gaussian point-spread sigma in voxels.
        photons: mean photon count at attenuation 1; lower means noisier.
        read_noise: Gaussian noise sigma, as a fraction of the attenuation range.

    Returns:
        (volume (Z, Y, X) uint16, solder mask (Z, Y, X) uint8 with voids inside it, void mask uint8).
    """
    Z, Y, X = shape
    if min(shape) < 8 or Y < pitch or X < pitch:
        raise COFTADInputError(f"shape={shape}, pitch={pitch}: need every side >= 8 and Y, X >= pitch")
    z0, z1 = int(round(0.22 * Z)), int(round(0.78 * Z))  # bump band; die above, substrate below
    zc, half = (z0 + z1 - 1) / 2, max((z1 - z0) / 2, 1.0)
    solder = np.zeros(shape, dtype=bool)
    void = np.zeros(shape, dtype=bool)
    volume_void_prob = void_prob * rng.uniform(0.3, 1.7)
    zz = np.arange(z0, z1)[:, None, None]
    for iy in range(Y // pitch):
        for ix in range(X // pitch):
            cy = (iy + 0.5) * pitch + rng.uniform(-1.5, 1.5)
            cx = (ix + 0.5) * pitch + rng.uniform(-1.5, 1.5)
            r = 0.36 * pitch * (1 + 0.05 * rng.standard_normal())
            y0, y1 = max(int(cy - r) - 1, 0), min(int(cy + r) + 2, Y)
            x0, x1 = max(int(cx - r) - 1, 0), min(int(cx + r) + 2, X)
            yy, xx = np.ogrid[y0:y1, x0:x1]
            # barrel: full radius mid-height, narrowing to ~0.7 r where the bump meets its pads
            rz = r * np.sqrt(np.clip(1 - 0.5 * ((zz - zc) / half) ** 2, 0, None))
            bump = (yy - cy) ** 2 + (xx - cx) ** 2 <= rz**2
            solder[z0:z1, y0:y1, x0:x1] |= bump
            if rng.random() >= volume_void_prob:
                continue
            for _ in range(int(rng.integers(1, 3))):
                rv = r * rng.uniform(0.12, 0.55)
                vz = zc + rng.uniform(-1, 1) * max(half - rv, 0) * 0.8
                ang, off = rng.uniform(0, 2 * np.pi), rng.uniform(0, 1) * max(r - rv, 0) * 0.7
                vy, vx = cy + off * np.sin(ang), cx + off * np.cos(ang)
                sphere = (zz - vz) ** 2 + (yy - vy) ** 2 + (xx - vx) ** 2 <= rv**2
                void[z0:z1, y0:y1, x0:x1] |= sphere & bump

    att = np.full(shape, _BACKGROUND, dtype=np.float32)
    att[:z0] = _DIE
    att[z1:] = _SUBSTRATE
    att[solder] = _SOLDER
    att[void] = _VOID
    att = gaussian_filter(att, sigma=blur_sigma) if blur_sigma > 0 else att
    noisy = rng.poisson(att * photons).astype(np.float32) / photons
    noisy += rng.normal(0, read_noise, size=shape).astype(np.float32)
    vol = np.clip(noisy / 1.2, 0, 1) * 65535
    return vol.astype(np.uint16), solder.astype(np.uint8), void.astype(np.uint8)


def save_volume(arr: np.ndarray, path: Path) -> None:
    """Write a (Z, Y, X) array as TIFF stack / .npy / NIfTI by ``path``'s ending, via a temporary file."""
    name = path.name
    if not name.endswith((".tif", ".tiff", ".npy", ".nii", ".nii.gz")):
        raise COFTADInputError(f"{path}: unknown volume format; use .tif, .npy or .nii.gz")
    # keep_ending: nibabel and tifffile pick the format from the temporary's name
    with atomic_path(path, keep_ending=True) as tmp:
        if name.endswith((".tif", ".tiff")):
            import tifffile

            # minisblack: a stack of 3 or 4 slices would otherwise be stored as one RGB(A) image
            tifffile.imwrite(tmp, arr, photometric="minisblack")
        elif name.endswith(".npy"):
            with open(tmp, "wb") as fh:
                np.save(fh, arr)
        else:
            import nibabel as nib

            nib.save(nib.Nifti1Image(arr, affine=np.eye(4)), tmp)


def make_synthetic_volumes(
    out_dir: str | os.PathLike,
    n_volumes: int = 6,
    seed: int = 0,
    shape: Sequence[int] = (64, 128, 128),
    *,
    fmt: str = "tif",
    pitch: int = 32,
    void_prob: float = 0.35,
    blur_sigma: float = 1.0,
    photons: float = 300.0,
    read_noise: float = 0.01,
    verbose: bool = True,
) -> list[Path]:
    """Write ``n_volumes`` synthetic scans with their solder and void masks; returns the scan paths.

    Volume i depends only on (seed, i) and the settings, so asking for more volumes keeps the
    first ones. A folder already holding volumes made with the same settings is left as it is.
    """
    if fmt not in FORMATS:
        raise COFTADInputError(f"fmt={fmt!r}; expected one of {', '.join(FORMATS)}")
    if n_volumes < 1:
        raise COFTADInputError(f"n_volumes={n_volumes}; expected at least 1")
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3:
        raise COFTADInputError(f"shape={shape}; expected (Z, Y, X)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    params = {"seed": seed, "n_volumes": n_volumes, "shape": list(shape), "fmt": fmt, "pitch": pitch,
              "void_prob": void_prob, "blur_sigma": blur_sigma, "photons": photons, "read_noise": read_noise}  # fmt: skip
    names = [f"vol_{i:03d}" for i in range(n_volumes)]
    paths = [[out / f"{n}{suffix}.{fmt}" for suffix in ("", "_solder", "_void")] for n in names]
    pfile = out / PARAMS_FILE
    if read_json(pfile) == params and all(p.is_file() for trio in paths for p in trio):
        if verbose:
            print(f"{out}: {n_volumes} synthetic volumes already there; nothing to do")
        return [trio[0] for trio in paths]
    pfile.unlink(missing_ok=True)
    for i, trio in enumerate(paths):
        arrays = synth_volume(shape, rng_for(seed, "semicon_synth", i), pitch=pitch, void_prob=void_prob,
                              blur_sigma=blur_sigma, photons=photons, read_noise=read_noise)  # fmt: skip
        for arr, path in zip(arrays, trio, strict=True):
            save_volume(arr, path)
    write_json_atomic(pfile, params)  # written last: marks completion
    if verbose:
        print(f"{out}: wrote {n_volumes} synthetic volumes of shape {shape} (+ solder and void masks)")
    return [trio[0] for trio in paths]


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    ap = argparse.ArgumentParser(prog="python -m data_prep.semicon_synth", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output folder for the volumes and masks")
    ap.add_argument("--n-volumes", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shape", type=int, nargs=3, default=(64, 128, 128), metavar=("Z", "Y", "X"))
    ap.add_argument("--format", choices=FORMATS, default="tif")
    ap.add_argument("--void-prob", type=float, default=0.35)
    args = ap.parse_args(argv)
    try:
        make_synthetic_volumes(args.out, args.n_volumes, args.seed, args.shape, fmt=args.format,
                               void_prob=args.void_prob)  # fmt: skip
    except COFTADInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
