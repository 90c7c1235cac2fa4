"""``python -m coftad_lib fit NORMAL_DIR --out MODEL_DIR``: fit, estimate the threshold, save."""

from __future__ import annotations

import argparse
import sys
import time

from ..errors import COFTADInputError


def run(args: argparse.Namespace) -> int:
    """Fit ``args.method`` on the normal images (all, or ``--shots`` drawn with ``--seed``), choose the
    threshold for ``--fpr`` (:func:`coftad_lib.threshold.fit_threshold`) and save both to ``--out``."""
    from ..atomic_files import exclusive_lock
    from ..model_folder import check_model_out

    # Before any work: an unusable --out is refused now, not after a fit of minutes, and a second
    # `fit --out` to the same folder fails at once instead of mixing two fits.
    check_model_out(args.out, inputs=[args.normal_dir])
    with exclusive_lock(args.out, "model folder"):
        return _fit_and_save(args)


def _fit_and_save(args: argparse.Namespace) -> int:
    """The work of :func:`run`, under the lock of ``--out``."""
    from ..datasets.sampling import choose, rng_for
    from ..datasets.user_images import check_readable, user_images
    from ..persistence import save_detector
    from ..threshold import fit_threshold
    from ..user_report import NO_TRAINING, build, method_kwargs

    found = user_images(args.normal_dir, "folder of normal images")
    images, bad = check_readable(found, skip_bad=args.skip_bad, what=f"images in {args.normal_dir}",
                                 progress=not args.quiet)
    if bad:
        print(f"skipped {len(bad)} unreadable image(s) of {len(found)} (--skip-bad)", file=sys.stderr)
    if not images:
        raise COFTADInputError(f"{args.normal_dir}: no readable image left")
    if args.shots is not None:
        images, _ = choose(images, args.shots, rng_for(args.seed, "cli", "fit", "shots"), f"{args.normal_dir} (normal images)")
    kw = method_kwargs(args.method, image_size=args.image_size, steps=args.steps, backbone=args.backbone,
                       preset=args.preset, seed=args.seed, device=args.device, progress=not args.quiet)
    det, resolved = build(args.method, kw)
    t0 = time.perf_counter()
    det.fit(images)
    # Leave-one-out needs a second shot; with one image only its augmented copies can be scored.
    mode = "augmented" if len(images) == 1 else "auto"
    if len(images) == 1:
        print("note: one normal image: the threshold comes from its augmented copies (in-sample, "
              "so expect more false positives than --fpr)", file=sys.stderr)
    threshold = fit_threshold(det, images, fpr=args.fpr, mode=mode)
    seconds = time.perf_counter() - t0
    save_detector(det, args.out, method=args.method, kwargs=resolved | {"progress": False},
                  extra={"train_images": [str(p) for p in images], "skipped_unreadable": [str(p) for p in bad],
                         "fit_seconds": round(seconds, 2)})
    info = det.threshold_info or {}
    steps = "" if args.method in NO_TRAINING else f", steps {resolved.get('steps')}"
    print(f"fitted {args.method} on {len(images)} normal image(s) in {seconds:.1f} s "
          f"(image size {resolved.get('image_size')}{steps})")
    print(f"threshold {threshold:.6g}: aims at {100 * args.fpr:g}% of normal images flagged "
          f"(estimated by {info.get('mode', '?')} from {info.get('n_scores', '?')} scores)")
    print(f"saved to {args.out}")
    return 0
