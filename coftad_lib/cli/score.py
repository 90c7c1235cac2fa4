"""``python -m coftad_lib score MODEL_DIR IMAGE_OR_DIR...``: score, flag, rank; optional CSV and heat maps."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

from ..errors import COFTADInputError


def run(args: argparse.Namespace) -> int:
    """Print one row per image (rank, score, flag, path), most anomalous first; ``--csv`` writes all
    rows in input order; ``--maps`` writes heat-map overlays for methods with ``anomaly_maps``."""
    from ..atomic_files import exclusive_lock
    from ..datasets.user_images import expand_inputs
    from ..model_folder import CONFIG_FILE, WEIGHTS_FILE
    from ..persistence import read_config
    from .checks import check_output_file, check_output_folder

    read_config(args.model_dir)  # a missing or corrupt model is named before the inputs are listed
    found = expand_inputs(args.inputs)
    # Outputs checked before the work; an output equal to an input (once: --csv in/000.png) is refused.
    if args.csv:
        model_files = [Path(args.model_dir) / name for name in (CONFIG_FILE, WEIGHTS_FILE)]
        check_output_file(args.csv, "--csv", inputs=[*found, *model_files])
    if not args.maps:
        return _score(args, found)
    check_output_folder(args.maps, "--maps", inputs=[*args.inputs, args.model_dir])
    with exclusive_lock(args.maps, "heat-map folder"):
        return _score(args, found)


def _score(args: argparse.Namespace, found: list[Path]) -> int:
    from ..datasets.user_images import check_readable
    from ..persistence import load_detector

    det = load_detector(args.model_dir, device=args.device, progress=not args.quiet)
    if args.maps and not hasattr(det, "anomaly_maps"):
        raise COFTADInputError(f"--maps: method {det.method!r} has no anomaly maps; PatchCore (patchcore) and "
                               "CFLOW-AD (cflow) do. Fit one of them with `fit --method patchcore`")
    paths, bad = check_readable(found, skip_bad=args.skip_bad, progress=not args.quiet)
    if bad:
        print(f"skipped {len(bad)} unreadable image(s) of {len(found)} (--skip-bad)", file=sys.stderr)
    if not paths:
        raise COFTADInputError("no readable image left to score")
    scores = np.asarray(det.score_samples([str(p) for p in paths]), dtype=np.float64)
    thr = det.threshold
    flags = np.zeros(len(scores), dtype=int) if thr is None else (scores > thr).astype(int)
    _print_ranked(paths, scores, flags, thr, args.top)
    if args.csv:
        _write_csv(Path(args.csv), paths, scores, flags, thr)
        print(f"wrote {len(paths)} rows to {args.csv}")
    if args.maps:
        written = _write_maps(det, paths, Path(args.maps))
        print(f"wrote {len(written)} heat maps to {args.maps}")
    return 0


def _print_ranked(paths: list[Path], scores: np.ndarray, flags: np.ndarray, thr: float | None, top: int) -> None:
    order = np.argsort(-scores, kind="stable")
    shown = order[: max(top, 0)] if top else order
    print(f"{'rank':>4}  {'score':>12}  {'flag':4}  path")
    for rank, i in enumerate(shown, start=1):
        print(f"{rank:>4}  {scores[i]:>12.6g}  {'ANOM' if flags[i] else 'ok':4}  {paths[i]}")
    if len(shown) < len(order):
        print(f"... {len(order) - len(shown)} more (use --top 0 for all, or --csv)")
    if thr is None:
        print("no threshold saved with this model: every flag is 'ok'")
    else:
        print(f"{int(flags.sum())} of {len(flags)} flagged as anomalous (score > threshold {thr:.6g})")


def _write_csv(target: Path, paths: list[Path], scores: np.ndarray, flags: np.ndarray, thr: float | None) -> None:
    from ..atomic_files import atomic_open

    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(target, "w", newline="") as f:  # complete or absent, even on a full disk
        w = csv.writer(f)
        w.writerow(["path", "score", "flag", "threshold"])
        for p, s, fl in zip(paths, scores, flags, strict=True):
            w.writerow([str(p), repr(float(s)), int(fl), "" if thr is None else repr(float(thr))])


def _write_maps(det, paths: list[Path], out: Path) -> list[Path]:
    """One overlay per image at the model's map resolution stretched to the image (one colour scale)."""
    from ..user_figures import write_overlays

    maps = det.anomaly_maps([str(p) for p in paths])
    return write_overlays(paths, list(maps), out)
