"""CLI: ``python -m coftad_lib.reproduce --profile smoke|paper [options]`` runs the notebook series.

Examples:
    python -m coftad_lib.reproduce --profile smoke
    python -m coftad_lib.reproduce --profile paper --only 01,04 --seeds 0,1,2 --strict
    python -m coftad_lib.reproduce --profile smoke --param STEPS=5 --data-root ../shared/data
    python -m coftad_lib.reproduce --profile paper --executor ray --address auto --gpus-per-cell 0.25
    python -m coftad_lib.reproduce --profile paper --pack 8 --param backbone=efficientnet_lite0
    python -m coftad_lib.reproduce --profile paper --executor pool --workers 4 --param backbone=efficientnet_lite0
    python -m coftad_lib.reproduce --profile paper --plan --plan-timings coftad_lib/reproduce/timings_h200.json
    python -m coftad_lib.reproduce --profile paper --only 04 --cells-only --param backbone=efficientnet_lite0
    python -m coftad_lib.reproduce --profile protocol-cpu --verify 2
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Sequence
from typing import Any

from ..engine.executors import EXECUTORS
from ..engine.migrate import ensure_migrated
from ..errors import COFTADInputError
from ..paper.migration import migrate_run
from ..paper.profiles import PROFILES
from .runner import DEFAULT_PREP_DIR, EXIT_USAGE, run_series
from .series import build_context, out_lock


def parse_param(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` -> (KEY, value); VALUE is a Python literal when it parses as one, else a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.isidentifier():
        raise COFTADInputError(f"--param {text!r}: expected KEY=VALUE with KEY a Python name")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return key, value


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    p = argparse.ArgumentParser(prog="python -m coftad_lib.reproduce", description=__doc__.split("\n")[0],
                                epilog="Exit codes: 0 ok, 1 a notebook failed (--verify: a cell differs), "
                                       "2 bad arguments, 3 --strict and data were missing (--verify: a "
                                       "drawn cell's data is not here), 130 interrupted.")
    p.add_argument("--profile", required=True, choices=sorted(PROFILES), help="run size (see profiles.py)")
    p.add_argument("--only", type=_csv, default=None, help="comma list of notebook numbers or names (01,04 or mvtec)")
    p.add_argument("--seeds", type=lambda s: [int(x) for x in _csv(s)], default=None,
                   help="comma list of seeds (default: the profile's)")
    p.add_argument("--strict", action="store_true", help="missing datasets or weights are an error (exit 3)")
    p.add_argument("--data-root", default=None,
                   help="folder holding the datasets (default: $COFTAD_DATA_ROOT, else ./data, else ../shared/data)")
    p.add_argument("--prep-dir", default=DEFAULT_PREP_DIR,
                   help=f"where data_prep notebooks write derived datasets (default: {DEFAULT_PREP_DIR})")
    p.add_argument("--out", default=None,
                   help="output folder (default: the profile's own: results/smoke, results/paper, ...; "
                        "results itself for protocol-cpu, the committed headline)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="extra notebook parameter (repeatable); must be assigned in the notebook's parameters cell")
    p.add_argument("--notebooks", default="notebooks", help="folder of NN_*.ipynb (default: notebooks)")
    p.add_argument("--kernel", default="python3", help="Jupyter kernel name (default: python3)")
    p.add_argument("--log-output", action="store_true", help="stream notebook output to this terminal")
    p.add_argument("--executor", default=None, choices=EXECUTORS,
                   help="where cells run: local (this process; the default), pool (--workers processes here, "
                        "sharing the GPU), ray (one Ray task per cell) or cache (compute nothing: cells not in "
                        "the cache show as pending; protocol-cpu's default)")
    p.add_argument("--address", default=None,
                   help="Ray cluster to join (auto = the one started with `ray start`); default: start a local Ray")
    p.add_argument("--gpus-per-cell", type=float, default=None,
                   help="GPU share of one cell with --executor ray (e.g. 0.25: four cells per GPU; default 0)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="processes running cells at once with --executor pool (sharing this machine's GPU; "
                        "default 2)")
    p.add_argument("--pack", type=int, default=None, metavar="N",
                   help="fit up to N COFT-AD cells that share backbone, size, steps and losses in one batched step "
                        "(bn_mode eval; default 1 = each alone). For a GPU; slower on a CPU "
                        "(benchmarks/results/packing_cpu.txt)")
    p.add_argument("--plan", action="store_true",
                   help="run nothing: print the cells each notebook needs, how many are cached, and the expected time")
    p.add_argument("--cells-only", action="store_true",
                   help="run no notebook: prepare data and compute the cells --plan lists into <out>/cache "
                        "(no Jupyter needed; notebooks run later with that cache only render)")
    p.add_argument("--verify", type=int, default=None, metavar="N",
                   help="run no notebook: recompute N random committed cells of the profile's cache and compare "
                        "each AUROC with its record (exit 1 naming any that differs by more than 1e-6)")
    p.add_argument("--verify-seed", type=int, default=None, metavar="S",
                   help="seed of --verify's draw (default: a new draw each time)")
    p.add_argument("--verify-key", type=_csv, default=(), metavar="KEY[,KEY]",
                   help="recompute these cells (key prefixes) instead of a random draw (implies --verify)")
    p.add_argument("--recompute-unpinned", action="store_true",
                   help="with --cells-only: also recompute cached cells computed before the AVX2 kernel pin "
                        "(their records are kept in <cache>/superseded/)")
    p.add_argument("--no-download", action="store_true",
                   help="fetch no dataset before the run (default: fetch the public ones the notebooks need "
                        "and lack into --data-root; also $COFTAD_NO_DOWNLOAD=1)")
    p.add_argument("--data-mirror", default=None, metavar="URL|DIR",
                   help="take dataset archives from this mirror (same file names; also $COFTAD_DATA_MIRROR)")
    p.add_argument("--plan-timings", default=None, metavar="FILE",
                   help="benchmark file (JSON or CSV, see coftad_lib/reproduce/plan.py) for --plan; "
                        "default: a short calibration on this machine")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run the series, return the exit code."""
    args = build_parser().parse_args(argv)
    if args.verify_key and args.verify is None:  # naming cells asks to verify them
        args.verify = len(args.verify_key)
    try:
        params = dict(parse_param(t) for t in args.param)
        if args.verify is not None:
            from .verify import verify

            ctx, _ = build_context(args.profile, seeds=args.seeds, data_root=args.data_root, prep_dir=args.prep_dir,
                                   out_dir=args.out, params=params)
            return verify(ctx.cache_dir, ctx.data_roots, args.verify, seed=args.verify_seed, keys=args.verify_key)
        if args.plan or args.cells_only:
            # the same run context as a run: only the profile overrides of --param count; a plan
            # computes nothing, so it needs no executor (nor Ray installed)
            if args.cells_only and args.executor == "cache":
                raise COFTADInputError("--cells-only computes cells: choose --executor local, pool or ray")
            # --cells-only computes: a profile that renders from its cache still computes here
            executor = args.executor or "local"
            where = {} if args.plan else {"executor": executor, "address": args.address, "pack": args.pack,
                                          "gpus_per_cell": args.gpus_per_cell, "workers": args.workers}
            ctx, _ = build_context(args.profile, seeds=args.seeds, data_root=args.data_root, prep_dir=args.prep_dir,
                                   out_dir=args.out, params=params, **where)
        if args.plan:
            from .plan import print_plan

            return print_plan(ctx, only=args.only, notebooks_dir=args.notebooks, timings=args.plan_timings)
        if args.cells_only:
            from .prefill import prefill

            with out_lock(ctx.out_dir):
                ensure_migrated(ctx.cache_dir)
                migrate_run(ctx)
                return prefill(ctx, only=args.only, strict=args.strict, notebooks_dir=args.notebooks,
                               recompute_unpinned=args.recompute_unpinned)
        code, _ = run_series(args.profile, only=args.only, seeds=args.seeds, strict=args.strict,
                             data_root=args.data_root, prep_dir=args.prep_dir, out_dir=args.out, params=params,
                             notebooks_dir=args.notebooks, kernel_name=args.kernel, log_output=args.log_output,
                             executor=args.executor, address=args.address, gpus_per_cell=args.gpus_per_cell,
                             pack=args.pack, workers=args.workers,
                             download=False if args.no_download else None, data_mirror=args.data_mirror)
    except COFTADInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return code


if __name__ == "__main__":
    # before anything imports torch: every cell of every run on the same CPU kernels (engine/kernels.py)
    from ..engine.kernels import ensure_pinned

    ensure_pinned(sys.argv[1:], "coftad_lib.reproduce")
    sys.exit(main())
