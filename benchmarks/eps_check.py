"""How much does the covariance regulariser eps (Eq. 7's Sigma + eps I) move AUROC? (issue 19, item 4)

The pretrained Lite0 detector (the Gaussian of Eqs. 7-8 without fine-tuning, so only eps changes)
on Flowers17's 8 pairs (5 shots) and MVTec bottle (2/5/10 shots, the official split), seeds 0-2,
at ``--image-size`` (default 128, the CPU setting), full test sets. Writes a CSV of every fit and a
Markdown table of the mean AUROC per eps with its difference to the library's default 1e-3.

    python benchmarks/eps_check.py --data-root ../shared/data --out benchmarks/results/eps_check
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from coftad_lib import PretrainedDetector, auroc
from coftad_lib.datasets import load_task

EPS = (1e-4, 1e-3, 1e-2, 1e-1)
FLOWERS = ("Crocus/Bluebell", "Bluebell/Crocus", "Daffodil/Tulip", "Tulip/Daffodil",
           "Pansy/Windflower", "Windflower/Pansy", "Buttercup/Cowslip", "Cowslip/Buttercup")
TASKS = [("flowers17", "flowers17", t, 5, "flowers") for t in FLOWERS] + \
        [("mvtec", "mvtec_ad", "bottle", k, "industrial") for k in (2, 5, 10)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "eps_check")
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--seeds", default="0,1,2")
    a = p.parse_args()
    torch.set_num_threads(1)
    rows = []
    jobs = [(t, s) for t in TASKS for s in map(int, a.seeds.split(","))]
    for (dataset, folder, task, shots, preset), seed in tqdm(jobs, desc="eps check"):
        ft = load_task(dataset, a.data_root / folder, shots=shots, seed=seed, task=task)
        labels = np.asarray(ft.test_labels)
        for eps in EPS:
            det = PretrainedDetector(backbone="efficientnet_lite0", preset=preset, image_size=a.image_size,
                                     eps=eps, seed=seed, device="cpu", progress=False).fit(ft.train)
            rows.append({"dataset": dataset, "task": task, "shots": shots, "seed": seed, "eps": eps,
                         "image_size": a.image_size, "n_test": int(labels.size),
                         "auroc": 100 * auroc(det.score_samples(ft.test), labels)})
    a.out.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows)
    frame.to_csv(a.out / "eps_check.csv", index=False)
    mean = frame.groupby(["dataset", "eps"])["auroc"].mean().unstack("eps")
    worst = frame.pivot_table(index=["dataset", "task", "shots", "seed"], columns="eps", values="auroc")
    lines = ["| dataset | " + " | ".join(f"eps={e:g}" for e in EPS) + " | largest change of one fit vs 1e-3 |",
             "|---|" + "---:|" * (len(EPS) + 1)]
    for ds, r in mean.iterrows():
        w = worst.loc[ds]
        dev = float((w.sub(w[1e-3], axis=0)).abs().to_numpy().max())
        lines.append(f"| {ds} | " + " | ".join(f"{r[e]:.2f}" for e in EPS) + f" | {dev:.2f} |")
    (a.out / "eps_check.md").write_text("Mean AUROC (%) of the pretrained Lite0 Gaussian over tasks, shots and seeds "
                                        f"0-2 at {a.image_size} px (benchmarks/eps_check.py):\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
