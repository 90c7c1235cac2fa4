"""Does bf16 autocast make CPU scoring cheaper without moving AUROC? (issues 19 and 20)

The rule of both issues: keep bf16 for CPU scoring only if AUROC moves < 0.05 points on a checked
sample. Each task is fitted once (the pretrained Lite0 Gaussian and a COFT-AD fit at the CPU
settings), then its test set is scored twice from the same fitted detector: float32 (the library's
CPU path) and under ``torch.autocast("cpu", dtype=torch.bfloat16)``. Writes every task's AUROC in
both, the difference, and the scoring time ratio (1 thread; a ratio, not an absolute time).

    python benchmarks/cpu_bf16_scoring.py --data-root ../shared/data --cifar-c prepared_data/cifar10c
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from coftad_lib import COFTAD, PretrainedDetector, auroc
from coftad_lib.datasets import load_task


def _score(det, test, bf16: bool) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    if bf16:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            s = det.score_samples(test)
    else:
        s = det.score_samples(test)
    return s, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    p.add_argument("--cifar-c", type=Path, default=Path("prepared_data/cifar10c"))
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "cpu_bf16_scoring")
    a = p.parse_args()
    torch.set_num_threads(1)
    tasks = [("flowers17", a.data_root / "flowers17", t, 5, "flowers", 128) for t in ("Daffodil/Tulip", "Tulip/Daffodil")]
    tasks += [("mvtec", a.data_root / "mvtec_ad", "bottle", 5, "industrial", 128)]
    tasks += [("cifar10c", a.cifar_c, t, 10, "cifar_c", 64) for t in ("airplane", "cat")]
    rows = []
    for dataset, root, task, shots, preset, size in tasks:
        ft = load_task(dataset, root, shots=shots, seed=0, task=task)
        labels = np.asarray(ft.test_labels)
        for name, cls in (("pretrained", PretrainedDetector), ("coftad", COFTAD)):
            det = cls(backbone="efficientnet_lite0", preset=preset, image_size=size, steps=32, batch_size=16,
                      seed=0, device="cpu", progress=False).fit(ft.train)
            s32, t32 = _score(det, ft.test, bf16=False)
            s16, t16 = _score(det, ft.test, bf16=True)
            r = {"dataset": dataset, "task": task, "method": name, "image_size": size, "n_test": int(labels.size),
                 "auroc_fp32": 100 * auroc(s32, labels), "auroc_bf16": 100 * auroc(s16, labels),
                 "seconds_fp32": round(t32, 2), "seconds_bf16": round(t16, 2)}
            r["diff"] = r["auroc_bf16"] - r["auroc_fp32"]
            print(r, flush=True)
            rows.append(r)
    a.out.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows)
    frame.to_csv(a.out / "cpu_bf16_scoring.csv", index=False)
    keep = bool(frame["diff"].abs().max() < 0.05)
    (a.out / "cpu_bf16_scoring.md").write_text(
        f"bf16 autocast for CPU scoring, {len(frame)} fitted detectors, 1 thread "
        f"(benchmarks/cpu_bf16_scoring.py; {torch.__version__}):\n\n"
        f"- largest AUROC change: {frame['diff'].abs().max():.3f} points (rule: keep only if < 0.05) -> "
        f"{'keep' if keep else 'do not keep'}\n"
        f"- scoring time bf16 / fp32: median {np.median(frame['seconds_bf16'] / frame['seconds_fp32']):.2f}x\n\n"
        + frame.round(3).to_markdown(index=False) + "\n")
    print((a.out / "cpu_bf16_scoring.md").read_text())


if __name__ == "__main__":
    main()
