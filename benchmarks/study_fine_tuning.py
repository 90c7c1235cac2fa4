"""When does contrastive fine-tuning help? Issue 11's study as cached units (beyond the paper).

Stages (see coftad_lib/experiments/study.py for the grid and the family protocols):
- ``screen``: one seed, the family's screening tasks, every runnable grid row one factor at a time
  from the base configuration, each against the detector with the same starting features.
- ``confirm``: every task of the family, the given seeds, for pretrained / the best configuration
  without negative pairs / the best with them (picked from a screen CSV, or given with --configs).

Every unit goes through the cell cache (coftad_lib.engine.cache.cached): a rerun resumes where the
last one stopped. A row records seed, configuration, protocol, timings, versions, device, commit.

Usage:
    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/study_fine_tuning.py --family cifar --stage screen \
        --seeds 0 --out benchmarks/results/study --data-root ../shared/data --data-root /tmp/prep \
        --cache results/cache/study --budget-s 900
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from coftad_lib.experiments import study

KEYS = ["family", "task", "shots", "seed", "config"]


def write(rows: list[dict], out: Path, stem: str) -> pd.DataFrame:
    """Merge into ``<stem>.csv`` (one row per unit) and ``<stem>_loss.csv`` (loss per step).

    Rows of earlier runs (other configurations or seeds) are kept; a unit run again replaces its
    row. Returns the merged unit table.
    """
    out.mkdir(parents=True, exist_ok=True)
    if not rows:
        path = out / f"{stem}.csv"
        return pd.read_csv(path) if path.exists() else pd.DataFrame(columns=KEYS)
    table, curves = study.split_history(rows)
    merged = []
    for new, path in ((table, out / f"{stem}.csv"), (curves, out / f"{stem}_loss.csv")):
        if path.exists():
            old = pd.read_csv(path)
            done = set(map(tuple, new[KEYS].astype(str).values))
            old = old[[tuple(r) not in done for r in old[KEYS].astype(str).values]]
            new = pd.concat([old, new], ignore_index=True)
        new.to_csv(path, index=False)
        merged.append(new)
    return merged[0]


def plan_units(args: argparse.Namespace, fam: study.Protocol) -> list[tuple]:
    """(task, shots, seed, name, config) in run order: seed-major, so a cut run keeps whole seeds."""
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.stage == "screen":
        tasks = fam.screen_tasks
        shots = (fam.shots[len(fam.shots) // 2],)
        configs = study.screen_plan(fam.family)
        if args.configs:
            keep = set(args.configs.split(","))
            configs = [(n, c) for n, c in configs if n in keep or n == study.baseline_name(c)]
    else:
        tasks, shots = fam.tasks, fam.shots
        names = args.configs.split(",") if args.configs else best_from_screen(args.out, args.screen_family or fam.family)
        # each configuration's own start (random init, an earlier block) runs too, as in the screen
        configs = study.with_starts([(n, study.config_of(n)) for n in ["pretrained", *[n for n in names if n != "pretrained"]]])
    if args.stage == "screen":  # configuration-major: a cut screen has its first rows on every task
        return [(t, k, s, n, c) for n, c in configs for s in seeds for t in tasks for k in shots]
    return [(t, k, s, n, c) for s in seeds for t in tasks for k in shots for n, c in configs]


def best_from_screen(out: Path, fam: str) -> list[str]:
    """The best w/o np and w/ np configurations of ``<out>/<fam>_screen.csv``."""
    path = out / f"{fam}_screen.csv"
    if not path.exists():
        raise SystemExit(f"{path}: no screen results; run --stage screen first or pass --configs")
    best = study.pick_best(study.screen_summary(pd.read_csv(path)))
    print(f"best from {path}: {best}")
    return [best[k] for k in ("wo_np", "w_np") if k in best]


def save_family_figure(out: Path, fam: str) -> None:
    """``<out>/figures/study_<fam>.png`` and ``.pdf`` from the family's CSVs."""
    from coftad_lib.experiments.study_plots import study_figure
    from coftad_lib.figures import save_figure

    f = study.load_study(out, fam)
    curves = f["confirm_loss"] if f["confirm_loss"] is not None else f["screen_loss"]
    save_figure(study_figure(fam, f["confirm"], f["screen"], curves), f"study_{fam}", out / "figures")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--family", choices=list(study.FAMILIES), required=True)
    p.add_argument("--stage", choices=["screen", "confirm"], required=True)
    p.add_argument("--seeds", default="0")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/study"))
    p.add_argument("--data-root", action="append", default=None,
                   help="data folder(s); the first holding a dataset's sub-folder wins (default ../shared/data)")
    p.add_argument("--cache", type=Path, default=Path("results/cache/study"))
    p.add_argument("--configs", default="", help="comma-separated grid rows (screen: a subset; confirm: the rows)")
    p.add_argument("--screen-family", default="", help="confirm: take the best rows from this family's screen")
    p.add_argument("--budget-s", type=float, default=3600, help="start no new unit after this many seconds")
    p.add_argument("--device", default="cpu")
    p.add_argument("--cached-only", action="store_true", help="collect cached units only (no fitting)")
    args = p.parse_args()
    fam = study.family(args.family)
    roots = args.data_root or ["../shared/data"]
    units = plan_units(args, fam)
    print(f"{args.family}/{args.stage}: {len(units)} units, ~{fam.seconds_per_fit:.0f} s per fine-tuning fit")
    t0, rows = time.time(), []
    stem = f"{args.family}_{args.stage}"
    if args.cached_only:
        units = [u for u in units if study.is_cached(fam, u[0], u[1], u[2], u[4], args.cache, args.device)]
    for task, shots, seed, name, cfg in tqdm(units, desc=stem, unit="unit"):
        if time.time() - t0 > args.budget_s:
            print(f"time budget of {args.budget_s:.0f} s reached: {len(units) - len(rows)} units not run")
            break
        rows.append(study.run_unit(fam, task, shots, seed, name, cfg, roots, args.cache, args.device))
        r = rows[-1]
        tqdm.write(f"{name:<16} {task:<18} k={shots:<2} seed={seed} auroc={r['auroc']:6.2f} "
                   f"drift={r['drift_normal']:.3f} fit={r['fit_seconds']:.0f}s")
        write(rows[-1:], args.out, stem)
    df = write([], args.out, stem)
    save_family_figure(args.out, args.family)
    if args.stage == "screen":
        summary = study.screen_summary(df)
        (args.out / f"{stem}.md").write_text(summary.to_markdown(index=False, floatfmt=".2f") + "\n")
        print(summary.to_string(index=False))
    else:
        table = study.verdict(df, [n for n in df["config"].unique() if n != "pretrained"])
        table.to_csv(args.out / f"{args.family}_verdict.csv", index=False)
        (args.out / f"{args.family}_verdict.md").write_text(table.to_markdown(index=False, floatfmt=".2f") + "\n")
        print(table.to_string(index=False))


if __name__ == "__main__":
    main()
