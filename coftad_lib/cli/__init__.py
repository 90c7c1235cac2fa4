"""``python -m coftad_lib``: few-shot anomaly detection on your own images (beyond the paper).

Sub-commands (each in its own module): ``fit`` (:mod:`.fit`), ``score`` (:mod:`.score`),
``evaluate`` (:mod:`.evaluate`). This module builds the parser, runs a command and turns the
library's exceptions into one-line messages and exit codes (:data:`EXIT_CODES`).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import warnings
from collections.abc import Sequence

from ..errors import COFTADInputError, DatasetNotFoundError, WeightsUnavailableError
from .checks import check_options, describe_os_error

EXIT_OK, EXIT_OTHER, EXIT_BAD_INPUT, EXIT_MISSING, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_CODES = f"""\
exit codes:
  {EXIT_OK}    ok
  {EXIT_BAD_INPUT}    bad input: an unreadable or oversized image, a bad CSV row, a corrupt or mixed model
       folder, a bad option or output path, a file system error (full disk, permission denied),
       an output another process is writing
  {EXIT_MISSING}    missing: a data folder, image, model folder/file or pretrained weights not found
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C, SIGINT or SIGTERM): outputs are the old ones or absent, never half-written
  {EXIT_OTHER}    anything else (a bug: please report it with the message)"""

DESCRIPTION = """\
Few-shot anomaly detection on your own images (COFT-AD and the paper's competitors).

  fit       fit a detector on a folder of normal images; save it with its threshold
  score     score images with a saved detector: one row per image, most anomalous first
  evaluate  compare methods on a labelled folder or CSV; write a report (AUROC, figures)"""


def _common(p: argparse.ArgumentParser, multi_method: bool) -> None:
    from ..user_report import DEFAULT_METHODS

    if multi_method:
        p.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                       help="comma-separated registry names, or 'all' (default: %(default)s)")
    else:
        p.add_argument("--method", default="coftad", help="registry name (default: %(default)s); see --list-methods")
    p.add_argument("--shots", type=int, default=None, help="normal images to draw with --seed (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed for drawing shots and for training (default: 0)")
    p.add_argument("--image-size", type=int, default=None,
                   help="input side in pixels (default: COFT-AD's own choice, 128 on a CPU and 224 on a GPU)")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: each method's own)")
    p.add_argument("--backbone", default="efficientnet_lite0",
                   help="efficientnet_lite0 (offline), resnet18 or resnet50 (default: %(default)s)")
    p.add_argument("--preset", default="industrial",
                   help="augmentation family: industrial, flowers or cifar_c (default: %(default)s)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:0 (default: %(default)s)")
    p.add_argument("--skip-bad", action="store_true",
                   help="leave unreadable images out (and say how many) instead of stopping")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m coftad_lib`` argument parser."""
    parser = argparse.ArgumentParser(prog="python -m coftad_lib", description=DESCRIPTION, epilog=EXIT_CODES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list-methods", action="store_true", help="print the registry's method names and exit")
    sub = parser.add_subparsers(dest="command", metavar="{fit,score,evaluate}")
    fmt = argparse.RawDescriptionHelpFormatter

    p = sub.add_parser("fit", help="fit on normal images, save detector + threshold", epilog=EXIT_CODES,
                       formatter_class=fmt, description="Fit a detector on a folder of normal images (searched "
                       "recursively; hidden files skipped), estimate the threshold for --fpr and save both.")
    p.add_argument("normal_dir", metavar="NORMAL_DIR", help="folder of normal images")
    p.add_argument("--out", required=True, metavar="MODEL_DIR", help="folder to write config.json + weights.safetensors")
    p.add_argument("--fpr", type=float, default=0.05,
                   help="false-positive rate the threshold aims at on normal images (default: %(default)s)")
    _common(p, multi_method=False)

    p = sub.add_parser("score", help="score images with a saved detector", epilog=EXIT_CODES, formatter_class=fmt,
                       description="Score images (files or folders) with a detector saved by `fit`: one row per "
                       "image (path, score, flag at the saved threshold), most anomalous first.")
    p.add_argument("model_dir", metavar="MODEL_DIR")
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR")
    p.add_argument("--csv", metavar="FILE", help="also write path,score,flag rows (input order) to FILE")
    p.add_argument("--maps", metavar="DIR", help="write heat-map PNGs over each image (PatchCore, CFLOW-AD)")
    p.add_argument("--top", type=int, default=20, help="rows shown on screen (default: %(default)s; all go to --csv)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda (default: %(default)s)")
    p.add_argument("--skip-bad", action="store_true", help="leave unreadable images out instead of stopping")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("evaluate", help="compare methods on labelled data; write a report", epilog=EXIT_CODES,
                       formatter_class=fmt, description="DATA is a folder (train/, test/good/, test/<defect>/) or a "
                       "CSV with columns path,label[,kind][,split] (label 0 normal, 1 anomaly; paths relative to the "
                       "CSV; without a split column --shots normal rows, default 5, are the shots). Writes "
                       "REPORT_DIR/report.md (AUROC per method and defect kind), scores.csv and PNG figures.")
    p.add_argument("data", metavar="DATA")
    p.add_argument("--out", default="coftad_report", metavar="REPORT_DIR", help="report folder (default: %(default)s)")
    p.add_argument("--gallery", type=int, default=8, help="images per row of the galleries (default: %(default)s)")
    _common(p, multi_method=True)
    return parser


def exit_code(exc: BaseException) -> int:
    """The exit code for an exception raised by a command (see :data:`EXIT_CODES`)."""
    from ..persistence import ModelNotFoundError

    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, (DatasetNotFoundError, WeightsUnavailableError, ModelNotFoundError, FileNotFoundError)):
        return EXIT_MISSING
    if isinstance(exc, (COFTADInputError, OSError)):  # OSError: a full disk, a permission, a read-only path
        return EXIT_BAD_INPUT
    return EXIT_OTHER


class _Signals:
    """SIGINT and SIGTERM raise KeyboardInterrupt (so temporaries are removed) and are remembered, so
    that an error a signal caused (a read cut short) is reported as the interrupt, never as a bad file."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._old: dict[int, object] = {}

    def _handle(self, signum: int, frame: object) -> None:
        self.received = signum
        raise KeyboardInterrupt

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():  # handlers can only be set there
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code (messages go to stderr, results to stdout)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_methods:
        from ..methods.registry import METHODS

        print("\n".join(f"{k:12s} {v.display}" for k, v in METHODS.items()))
        return EXIT_OK
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_BAD_INPUT
    from . import evaluate, fit, score

    command = {"fit": fit.run, "score": score.run, "evaluate": evaluate.run}[args.command]
    with _Signals() as signals:
        try:
            check_options(args)
            with warnings.catch_warnings():
                warnings.simplefilter("default")
                warnings.showwarning = _note  # restored when the block ends
                return command(args)
        except BaseException as exc:  # one line for the user, not a stack trace
            if not isinstance(exc, Exception) and not isinstance(exc, KeyboardInterrupt):
                raise  # SystemExit and the like
            return _report(exc, signals.received)


def _report(exc: BaseException, signum: int | None) -> int:
    """Print the one-line message for ``exc`` and return its exit code."""
    if isinstance(exc, KeyboardInterrupt) or signum is not None:
        name = signal.Signals(signum).name if signum is not None else "SIGINT"
        print(f"interrupted ({name}); outputs are as they were before, or absent", file=sys.stderr)
        return EXIT_INTERRUPTED
    code = exit_code(exc)
    message = describe_os_error(exc) if isinstance(exc, OSError) and not isinstance(exc, COFTADInputError) else exc
    print(f"error: {message}", file=sys.stderr)
    if os.environ.get("COFTAD_DEBUG"):
        raise exc
    if code == EXIT_OTHER:
        print(f"({type(exc).__name__}; set COFTAD_DEBUG=1 for the traceback)", file=sys.stderr)
    return code


def _note(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings from the library, as one line each."""
    print(f"note: {message}", file=sys.stderr)


__all__ = ["EXIT_BAD_INPUT", "EXIT_CODES", "EXIT_INTERRUPTED", "EXIT_MISSING", "EXIT_OK", "EXIT_OTHER", "build_parser", "exit_code", "main"]
