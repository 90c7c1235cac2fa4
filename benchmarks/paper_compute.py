"""Does fine-tuning help at the paper's compute? Run and judge issue 19's units (coftad_lib.experiments.paper_compute).

    # one fit per unit, scored with the pretrained start, the online and the EMA target network
    python benchmarks/paper_compute.py run --stage cifar:wo_np,w_np --seeds 0,1,2 \
        --device cpu --image-size 64 --label cpu-64px --root cifar10c=prepared_data/cifar10c
    # the verdict over every run under the folder: verdict.md / .csv, per_task.csv
    python benchmarks/paper_compute.py report

``--stage FAMILY:CONFIG,...`` may repeat; the stages form one queue in that order, seed-major, so a
run cut short holds whole seeds of the first stage. ``--workers N`` starts N processes that share
the queue (claim files); each finished unit is one JSON file under ``--out/<label>/``, written
atomically, and a rerun computes only the missing ones.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch

from coftad_lib.experiments import paper_compute as pc

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "paper_compute"


def _args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["run", "report"])
    p.add_argument("--stage", action="append", default=[], help="FAMILY:CONFIG[,CONFIG...], repeatable")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--device", default="cuda")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--eval-batch-size", type=int, default=256)
    p.add_argument("--label", default=None, help="run name (folder and every record); default from the compute")
    p.add_argument("--root", action="append", default=[], help="DATASET=FOLDER, repeatable")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="torch threads per worker (1: results independent of the machine's cores)")
    p.add_argument("--tasks", default="", help="comma list: only these tasks of the stages' families (e.g. airplane,cat)")
    p.add_argument("--max-groups", type=int, default=None, help="only the first N task groups (a rehearsal)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _groups(a: argparse.Namespace) -> list[list[pc.Unit]]:
    seeds = [int(s) for s in a.seeds.split(",")]
    groups = []
    for stage in a.stage:
        fam, _, configs = stage.partition(":")
        groups += pc.plan([fam], configs.split(","), seeds, tasks=[t for t in a.tasks.split(",") if t])
    return groups[: a.max_groups]


def run(a: argparse.Namespace) -> int:
    compute = pc.Compute(image_size=a.image_size, steps=a.steps, batch_size=a.batch_size, device=a.device,
                         eval_batch_size=a.eval_batch_size,
                         label=a.label or f"{a.device}-{a.image_size}px-b{a.batch_size}-{a.steps}steps")
    out = a.out / compute.label
    groups = _groups(a)
    if not groups:
        sys.exit("paper_compute: nothing to run; give at least one --stage FAMILY:CONFIG")
    roots = dict(r.split("=", 1) for r in a.root)
    torch.set_num_threads(a.threads)
    if a.worker or a.workers == 1:
        if not a.worker:
            pc.clear_claims(out)
        n = pc.run_groups(groups, roots, compute, out, log=lambda s: print(s, flush=True))
        print(f"worker done: {n} units computed", flush=True)
        return 0
    pc.clear_claims(out)
    cmd = [sys.executable, __file__, *sys.argv[1:], "--worker"]
    t0 = time.time()
    procs = [subprocess.Popen(cmd) for _ in range(a.workers)]
    rcs = [p.wait() for p in procs]
    print(f"{a.workers} workers finished in {time.time() - t0:.0f} s, exit codes {rcs}", flush=True)
    return max(rcs)


def report(a: argparse.Namespace) -> int:
    frame = pc.load_records(a.out)
    if frame.empty:
        sys.exit(f"paper_compute: no unit records under {a.out}")
    table = pc.verdict(frame)
    table.to_csv(a.out / "verdict.csv", index=False)
    (a.out / "verdict.md").write_text(pc.verdict_markdown(table))
    pc.per_task(frame).round(3).to_csv(a.out / "per_task.csv", index=False)
    print(pc.verdict_markdown(table))
    return 0


if __name__ == "__main__":
    from coftad_lib.engine.kernels import ensure_pinned

    ensure_pinned(sys.argv[1:])  # units on AVX2 kernels, as the cells
    ns = _args()
    raise SystemExit(run(ns) if ns.command == "run" else report(ns))
