"""Slice 3D X-ray volumes of solder interconnects into labelled 2D images (paper Sec. IV-A, SemiCon).

The paper slices the 3D scans into 2D images and calls a slice anomalous when its voids are large
relative to its solder ("a large void to solder ratio may indicate defective products"). Here a
slice's label comes either from masks or from a CSV:

* masks: ``<name>_solder.*`` and ``<name>_void.*`` volumes of the scan's shape. The ratio is
  void area / joint area, the joint being solder or void (so it does not matter whether a solder
  mask includes its voids); a slice is a defect when the ratio exceeds ``threshold``.
* ``labels_csv``: columns ``volume,slice,label`` (label 0/1 or normal/defect); only the slices
  listed are written.

Scans are ``<name>.tif`` / ``.tiff`` (TIFF stacks), ``.npy`` or ``.nii`` / ``.nii.gz`` (NIfTI),
read as stored, sliced along ``axis``. Output: ``<out>/normal/*.png``, ``<out>/defect/*.png`` and
``<out>/manifest.csv`` (volume, slice index, ratio, label), written atomically with the manifest
last, so an interrupted run never looks finished; a finished run with the same settings and
inputs is not redone.

CLI::

    python -m data_prep.semicon_slices --volumes data/semicon_volumes --out data/semicon_slices
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from coftad_lib.datasets.crops import MANIFEST
from coftad_lib.errors import COFTADInputError, DatasetNotFoundError
from data_prep.atomic_io import fingerprint, save_png_atomic, start_run, write_csv_atomic

#: void / joint area above which a slice is a defect. The paper gives no number; with
#: ratio="slice" (all joints of a slice together) 0.01 means the voids cut by the slice take over
#: 1% of its solder, which a large void in one bump of a 4 x 4 grid reaches and scattered small
#: voids do not. For ratio="bump" (the worst single joint) a larger value such as 0.1 fits better.
DEFAULT_THRESHOLD = 0.01
VOLUME_SUFFIXES = (".nii.gz", ".tif", ".tiff", ".npy", ".nii")
MASK_SUFFIXES = ("_solder", "_void")
MANIFEST_FIELDS = [
    "file", "label", "kind", "volume", "axis", "slice_index", "solder_px", "void_px", "ratio",
]  # fmt: skip


def _split(path: Path) -> tuple[str, str] | None:
    """(stem, suffix) for a volume file name, None for other files."""
    for suf in VOLUME_SUFFIXES:
        if path.name.lower().endswith(suf) and not path.name.startswith("."):
            return path.name[: -len(suf)], suf
    return None


def read_volume(path: str | os.PathLike) -> np.ndarray:
    """A 3D array from a TIFF stack, ``.npy`` or NIfTI file, as stored (no axis reordering).

    Raises:
        COFTADInputError: unreadable file or not 3D (the message names the file and the shape).
    """
    path = Path(path)
    name = path.name.lower()
    try:
        if name.endswith((".tif", ".tiff")):
            import tifffile

            arr = tifffile.imread(path)
        elif name.endswith(".npy"):
            arr = np.load(path, mmap_mode="r")
        elif name.endswith((".nii", ".nii.gz")):
            import nibabel as nib

            arr = np.asanyarray(nib.load(path).dataobj)
        else:
            raise COFTADInputError(f"{path}: unknown volume format; expected {', '.join(VOLUME_SUFFIXES)}")
    except COFTADInputError:
        raise
    except Exception as exc:  # each reader raises its own types for truncated/corrupt files
        raise COFTADInputError(f"{path}: cannot read this volume ({type(exc).__name__}: {exc})") from exc
    arr = np.squeeze(arr)
    if arr.ndim != 3:
        raise COFTADInputError(f"{path}: expected a 3D volume, got shape {arr.shape}")
    return arr


def find_volumes(volume_dir: Path) -> dict[str, dict[str, Path | None]]:
    """name -> {"volume", "solder", "void"} paths (masks None when absent)."""
    if not volume_dir.is_dir():
        raise DatasetNotFoundError(f"{volume_dir}: volume folder not found")
    found: dict[str, dict[str, Path | None]] = {}
    masks: dict[tuple[str, str], Path] = {}
    for p in sorted(volume_dir.iterdir()):
        split = _split(p) if p.is_file() else None
        if split is None:
            continue
        stem = split[0]
        for ms in MASK_SUFFIXES:
            if stem.endswith(ms):
                masks[(stem[: -len(ms)], ms[1:])] = p
                break
        else:
            found[stem] = {"volume": p, "solder": None, "void": None}
    for (stem, kind), p in masks.items():
        if stem in found:
            found[stem][kind] = p
    if not found:
        raise COFTADInputError(f"{volume_dir}: no volumes ({', '.join(VOLUME_SUFFIXES)}); expected <name>.tif with <name>_solder.tif and <name>_void.tif")
    return found


def slice_ratios(solder: np.ndarray, void: np.ndarray, axis: int, mode: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per slice along ``axis``: (joint px, void px, ratio); ratio 0 where a slice has no joint.

    ``mode="slice"``: void / joint area over the whole slice. ``mode="bump"``: the largest ratio of
    any one joint (a connected component of the slice's joint mask).
    """
    joint = np.moveaxis((solder > 0) | (void > 0), axis, 0)
    holes = np.moveaxis(void > 0, axis, 0) & joint
    joint_px = joint.sum(axis=(1, 2))
    void_px = holes.sum(axis=(1, 2))
    if mode == "slice":
        ratio = np.divide(void_px, joint_px, out=np.zeros(len(joint_px)), where=joint_px > 0)
    elif mode == "bump":
        ratio = np.zeros(len(joint_px))
        for i in np.nonzero(void_px)[0]:
            lab, n = ndimage.label(joint[i])
            area = np.bincount(lab.ravel(), minlength=n + 1)[1:]
            voids = np.bincount(lab[holes[i]], minlength=n + 1)[1:]
            ratio[i] = float((voids / np.maximum(area, 1)).max())
    else:
        raise COFTADInputError(f"mode={mode!r}; expected 'slice' or 'bump'")
    return joint_px, void_px, ratio


def _read_labels(path: Path) -> dict[tuple[str, int], int]:
    words = {"0": 0, "1": 1, "normal": 0, "defect": 1}
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not {"volume", "slice", "label"} <= set(rows[0]):
        raise COFTADInputError(f"{path}: expected a CSV with columns volume,slice,label")
    out = {}
    for row in rows:
        label = words.get(row["label"].strip().lower())
        if label is None:
            raise COFTADInputError(f"{path}: label {row['label']!r} (volume {row['volume']}); expected 0/1 or normal/defect")
        out[(row["volume"].strip(), int(row["slice"]))] = label
    return out


def _to_uint8(vol: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Map the volume to 0..255 with one per-volume percentile window, so slices of a scan share
    one grey scale (per-slice stretching would erase the contrast between slices)."""
    lo, hi = np.percentile(vol, window)
    scaled = (np.asarray(vol, dtype=np.float32) - lo) / max(float(hi - lo), 1e-12)
    return (np.clip(scaled, 0, 1) * 255).round().astype(np.uint8)


def _volumes_to_slice(
    vols: dict[str, dict[str, Path | None]],
    vdir: Path,
    labels: dict[tuple[str, int], int] | None,
    labels_csv: str | os.PathLike | None,
) -> dict[str, dict[str, Path | None]]:
    """The volumes ``labels`` names, or, without labels, all of them once each has both masks."""
    if labels is not None:
        unknown = sorted({v for v, _ in labels} - set(vols))
        if unknown:
            raise COFTADInputError(f"{labels_csv}: volumes {', '.join(unknown)} are not in {vdir}")
        vols = {k: v for k, v in vols.items() if any(name == k for name, _ in labels)}
    else:
        for name, files in vols.items():
            missing = [k for k in ("solder", "void") if files[k] is None]
            if missing:
                ext = _split(files["volume"])[1]
                want = " and ".join(str(vdir / f"{name}_{k}{ext}") for k in missing)
                raise COFTADInputError(f"{files['volume']}: no {' / '.join(missing)} mask; expected {want} (or pass labels_csv)")
    return vols


def _mask_ratios(
    files: dict[str, Path | None], vol: np.ndarray, axis: int, mode: str
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """:func:`slice_ratios` of the masks, checked to match the (Z, Y, X) ``vol``; Nones without."""
    if files["solder"] is None or files["void"] is None:
        return None, None, None
    solder, void = read_volume(files["solder"]), read_volume(files["void"])
    for kind, m in (("solder", solder), ("void", void)):
        if m.shape != vol.shape:
            raise COFTADInputError(f"{files[kind]}: {kind} mask has shape {m.shape} but its volume {files['volume']} has {vol.shape}")
    return slice_ratios(solder, void, axis, mode)


def _label_slices(
    name: str,
    shape: tuple[int, ...],
    axis: int,
    labels: dict[tuple[str, int], int] | None,
    labels_csv: str | os.PathLike | None,
    joint_px: np.ndarray | None,
    ratio: np.ndarray | None,
    threshold: float,
    min_joint_fraction: float,
) -> dict[int, int]:
    """Slice index -> label in slice order: from ``labels``, else from the (n,) per-slice arrays."""
    n = shape[axis]
    if labels is not None:
        picks = sorted(i for v, i in labels if v == name)
        bad = [i for i in picks if not 0 <= i < n]
        if bad:
            raise COFTADInputError(f"{labels_csv}: slices {bad} of {name} are outside 0..{n - 1}")
        return {i: labels[(name, i)] for i in picks}
    area = np.prod(shape) / n
    picks = [i for i in range(n) if joint_px[i] >= min_joint_fraction * area]
    return {i: int(ratio[i] > threshold) for i in picks}


def _write_slices(
    name: str,
    vol: np.ndarray,
    slice_labels: dict[int, int],
    out: Path,
    axis: int,
    window: tuple[float, float],
    joint_px: np.ndarray | None,
    void_px: np.ndarray | None,
    ratio: np.ndarray | None,
) -> list[dict]:
    """Write the (Z, Y, X) ``vol``'s labelled slices that are not there yet; their manifest rows."""
    rows = []
    img8 = None
    for i, label in slice_labels.items():
        file = f"{'defect' if label else 'normal'}/{name}_ax{axis}_{i:04d}.png"
        if not (out / file).is_file():
            if img8 is None:
                img8 = _to_uint8(vol, window)
            save_png_atomic(Image.fromarray(np.ascontiguousarray(np.take(img8, i, axis=axis)), mode="L"), out / file)
        rows.append({"file": file, "label": label, "kind": "void" if label else "normal", "volume": name,
                     "axis": axis, "slice_index": i,
                     "solder_px": "" if joint_px is None else int(joint_px[i]),
                     "void_px": "" if void_px is None else int(void_px[i]),
                     "ratio": "" if ratio is None else f"{ratio[i]:.6f}"})  # fmt: skip
    return rows


def slice_volumes(
    volume_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    threshold: float = DEFAULT_THRESHOLD,
    *,
    axis: int = 0,
    mode: str = "slice",
    min_joint_fraction: float = 0.01,
    labels_csv: str | os.PathLike | None = None,
    window: tuple[float, float] = (0.5, 99.5),
    verbose: bool = True,
) -> Path:
    """Slice every scan in ``volume_dir`` into labelled PNGs under ``out_dir``; returns ``out_dir``.

    Args:
        threshold: void / joint area ratio above which a slice is a defect (see
            :data:`DEFAULT_THRESHOLD`).
        axis: slicing axis of the stored array (0 cuts across the bumps of ``semicon_synth``).
        mode: ``"slice"`` (ratio of the whole slice) or ``"bump"`` (worst single joint).
        min_joint_fraction: slices whose joint (solder + void) area is below this fraction of the
            slice are skipped: they cut no interconnect, so there is nothing to inspect. Not used
            with ``labels_csv``, which lists the slices itself.
        labels_csv: optional ``volume,slice,label`` CSV that labels slices instead of the masks.
        window: percentiles of each scan mapped to 0 and 255 in the 8-bit PNGs.

    Raises:
        COFTADInputError: masks missing (and no labels CSV), mask shape differs from its scan,
            unreadable scan, bad parameters.
    """
    if mode not in ("slice", "bump"):
        raise COFTADInputError(f"mode={mode!r}; expected 'slice' or 'bump'")
    if axis not in (0, 1, 2):
        raise COFTADInputError(f"axis={axis}; a volume has axes 0, 1, 2")
    vdir, out = Path(volume_dir), Path(out_dir)
    vols = find_volumes(vdir)
    labels = _read_labels(Path(labels_csv)) if labels_csv is not None else None
    vols = _volumes_to_slice(vols, vdir, labels, labels_csv)
    inputs = [p for files in vols.values() for p in files.values() if p is not None]
    if labels_csv is not None:
        inputs.append(Path(labels_csv).resolve())
    params = {"job": "semicon_slices", "threshold": threshold, "axis": axis, "mode": mode,
              "min_joint_fraction": min_joint_fraction, "window": list(window),
              "labels_csv": str(labels_csv) if labels_csv else None,
              "inputs": fingerprint(inputs, vdir)}  # fmt: skip
    if start_run(out, params):
        if verbose:
            print(f"{out}: slices already complete for these settings; nothing to do")
        return out

    rows: list[dict] = []
    for name, files in vols.items():
        vol = read_volume(files["volume"])
        joint_px, void_px, ratio = _mask_ratios(files, vol, axis, mode)
        slice_labels = _label_slices(name, vol.shape, axis, labels, labels_csv, joint_px, ratio,
                                     threshold, min_joint_fraction)  # fmt: skip
        rows += _write_slices(name, vol, slice_labels, out, axis, window, joint_px, void_px, ratio)
    if not rows:
        raise COFTADInputError(f"{vdir}: no slice has a joint area of at least {min_joint_fraction:.0%}; lower min_joint_fraction")
    write_csv_atomic(out / MANIFEST, rows, MANIFEST_FIELDS)
    if verbose:
        n_def = sum(r["label"] for r in rows)
        print(f"{out}: {len(rows) - n_def} normal + {n_def} defect slices from {len(vols)} volumes")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    ap = argparse.ArgumentParser(prog="python -m data_prep.semicon_slices", description=__doc__.split("\n\n")[0])
    ap.add_argument("--volumes", required=True, help="folder of <name>.tif/.npy/.nii.gz scans with masks")
    ap.add_argument("--out", required=True, help="output folder for normal/, defect/, manifest.csv")
    ap.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    ap.add_argument("--axis", type=int, default=0)
    ap.add_argument("--mode", choices=("slice", "bump"), default="slice")
    ap.add_argument("--min-joint-fraction", type=float, default=0.01)
    ap.add_argument("--labels", default=None, help="optional CSV volume,slice,label instead of masks")
    args = ap.parse_args(argv)
    try:
        slice_volumes(args.volumes, args.out, args.threshold, axis=args.axis, mode=args.mode,
                      min_joint_fraction=args.min_joint_fraction, labels_csv=args.labels)  # fmt: skip
    except (COFTADInputError, DatasetNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
