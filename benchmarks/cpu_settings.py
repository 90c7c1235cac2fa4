"""AUROC and fit seconds of COFT-AD at given settings on the real data in ../shared/data.

Usage (one CSV row per fit, appended to --out; the file says which settings each row used):
    OMP_NUM_THREADS=1 python benchmarks/cpu_settings.py --image-size 224 --steps 100 --batch 64 \
        --seeds 0 --out benchmarks/results/cpu_settings_reference.csv
    python benchmarks/cpu_settings.py --settings cpu --seeds 0,1,2 --out benchmarks/results/cpu_settings_cpu.csv

Tasks: Flowers17 Daffodil/Tulip 5-shot (preset "flowers") and MVTec bottle 5-shot (preset
"industrial"), loaded with coftad_lib.datasets.load_task. Fit time is wall clock of fit() alone
(feature extraction for the Gaussian included, data decoding excluded); ``fit_cpu_s`` is the
process's CPU time for the same fit, which does not grow with other jobs' load: with one thread it
is what the fit takes on one quiet core. Each row also carries the
pretrained-only AUROC at the same image size and seed, for context.
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from pathlib import Path

import torch

from coftad_lib import COFTAD, PretrainedDetector, auroc
from coftad_lib.datasets import load_task
from coftad_lib.images import images_to_tensor

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TASKS = {
    "flowers": ("flowers17", DATA / "flowers17", {"task": "Daffodil/Tulip"}, "flowers"),
    "bottle": ("mvtec", DATA / "mvtec_ad", {"task": "bottle"}, "industrial"),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--settings", default=None, help="COFTADConfig.settings ('cpu', 'paper'); omit for explicit sizes")
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--tasks", default="flowers,bottle")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--shots", type=int, default=5)
    p.add_argument("--out", required=True)
    p.add_argument("--progress", action="store_true", help="show the fit's tqdm bar (long reference fits)")
    args = p.parse_args()
    kw = {k: v for k, v in dict(image_size=args.image_size, steps=args.steps, batch_size=args.batch).items() if v is not None}
    if args.settings:
        kw["settings"] = args.settings
    out = Path(args.out)
    new = not out.exists()
    with out.open("a", newline="") as fh:
        w = csv.writer(fh)
        if new:
            w.writerow(["task", "seed", "settings", "image_size", "steps", "batch_size", "threads",
                        "fit_s", "auroc", "pretrained_auroc", "fit_cpu_s"])
        for name in args.tasks.split(","):
            dataset, root, targs, preset = TASKS[name]
            for seed in [int(s) for s in args.seeds.split(",")]:
                task = load_task(dataset, root, shots=args.shots, seed=seed, **targs)
                det = COFTAD(preset=preset, seed=seed, device="cpu", progress=args.progress, **kw)
                c = det.config
                train = images_to_tensor(task.train, c.image_size)
                test = images_to_tensor(task.test, c.image_size)
                t0, c0 = time.perf_counter(), time.process_time()
                det.fit(train)
                fit_s, fit_cpu_s = time.perf_counter() - t0, time.process_time() - c0
                auc = auroc(det.score_samples(test), task.test_labels)
                pre = PretrainedDetector(preset=preset, seed=seed, device="cpu", progress=False,
                                         image_size=c.image_size).fit(train)
                pre_auc = auroc(pre.score_samples(test), task.test_labels)
                w.writerow([name, seed, args.settings or "explicit", c.image_size, c.steps, c.batch_size,
                            torch.get_num_threads(), f"{fit_s:.1f}", f"{100 * auc:.2f}", f"{100 * pre_auc:.2f}", f"{fit_cpu_s:.1f}"])
                fh.flush()
                print(f"{name} seed={seed} size={c.image_size} steps={c.steps} batch={c.batch_size} "
                      f"fit={fit_s:.1f}s (cpu {fit_cpu_s:.1f}s) auroc={100 * auc:.2f} pretrained={100 * pre_auc:.2f}", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
