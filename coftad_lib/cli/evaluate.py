"""``python -m coftad_lib evaluate DATA``: compare methods on labelled data and write a report folder."""

from __future__ import annotations

import argparse
import sys

from ..errors import COFTADInputError


def methods_from(arg: str) -> list[str]:
    """``"a,b"`` -> ["a", "b"]; ``"all"`` -> every registry method."""
    from ..methods.registry import METHODS, method_class

    names = list(METHODS) if arg.strip() == "all" else [m.strip() for m in arg.split(",") if m.strip()]
    if not names:
        raise COFTADInputError("--methods: no method named; e.g. --methods coftad,patchcore")
    for m in names:
        if m not in METHODS:
            method_class(m)  # raises: unknown, or quoted by the paper and not runnable
    return names


def run(args: argparse.Namespace) -> int:
    """Load DATA (:func:`coftad_lib.datasets.labelled.load_labelled`), fit and score every method
    (:func:`coftad_lib.user_report.evaluate`), write the report (:func:`~coftad_lib.user_report.write_report`)."""
    from ..atomic_files import exclusive_lock
    from .checks import check_output_folder

    methods = methods_from(args.methods)
    check_output_folder(args.out, "--out", inputs=[args.data])  # before the fits, not after
    with exclusive_lock(args.out, "report folder"):
        return _evaluate(args, methods)


def _evaluate(args: argparse.Namespace, methods: list[str]) -> int:
    """The work of :func:`run`, under the lock of ``--out``."""
    from ..datasets.labelled import load_labelled
    from ..user_report import evaluate, write_report

    task = load_labelled(args.data, shots=args.shots, seed=args.seed, skip_bad=args.skip_bad, progress=not args.quiet)
    skipped = task.info.get("skipped_unreadable", [])
    if skipped:
        print(f"skipped {len(skipped)} unreadable image(s) (--skip-bad)", file=sys.stderr)
    print(task.summary())
    ev = evaluate(task, methods, progress=not args.quiet, source=str(args.data), image_size=args.image_size,
                  steps=args.steps, backbone=args.backbone, preset=args.preset, seed=args.seed, device=args.device)
    paths = write_report(ev, args.out, n_gallery=args.gallery)
    print(ev.auroc_table().round(1).to_string())
    print(f"report: {paths['report']}")
    return 0
