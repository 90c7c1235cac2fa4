"""Where a committed cell's numbers start to differ between CPU kernels, and what pinning them costs.

Usage:
    python benchmarks/kernel_pin.py --keys 62b39ff85d6b,63cc9b40dc9f --data-root ../shared/data
    python benchmarks/kernel_pin.py --keys ... --out benchmarks/results/kernel_pin

For each committed cell (by key prefix, from ``results/cache``), one fresh process per kernel choice
(``native``: each library picks its kernels for this CPU; ``avx2``: the pin of
:mod:`coftad_lib.engine.kernels`) computes the cell's inputs and results stage by stage:

1. ``pixels``: the decoded task images (uint8 shots and test set);
2. ``pretrained``: features of the pretrained backbone on the shots and the test images;
3. ``step1``: features of the network after one fine-tuning step (same method and settings, steps=1);
4. ``scores``: the cell's test scores after the whole fit, and its AUROC.

The parent compares the stages across kernel choices (largest absolute difference) and names the
first that differs; the AUROCs stand beside the record's, and the fit's CPU seconds (one thread,
``time.process_time``) give the pin's cost as a ratio to native. Output: ``kernel_pin.csv`` and
``kernel_pin.md`` in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
STAGES = ("pixels", "pretrained", "step1", "scores")


def _record(key: str, cache_dir: Path) -> dict:
    from coftad_lib.engine.testset_files import join_test_set

    hits = sorted((cache_dir / "cells").glob(f"{key}*.json"))
    if len(hits) != 1:
        sys.exit(f"--keys {key}: expected one record in {cache_dir / 'cells'}, found {len(hits)}")
    return join_test_set(json.loads(hits[0].read_text()), cache_dir)


def child(key: str, cache_dir: Path, data_root: str, dump: Path) -> None:
    """Compute the stages of one cell in this process; write ``stages.npz`` and ``result.json`` into ``dump``."""
    import torch

    from coftad_lib.engine.cells import compute_record, load_cell_task, make_detector
    from coftad_lib.engine.kernels import kernel_info
    from coftad_lib.engine.migrate import record_cell
    from coftad_lib.images import images_to_tensor

    torch.set_num_threads(1)
    rec = _record(key, cache_dir)
    cell = record_cell(rec)
    task = load_cell_task(cell, data_root)
    size = int(cell.method_kwargs.get("image_size", 224))
    out = {"pixels": np.concatenate([images_to_tensor(task.train, size).numpy().ravel(),
                                     images_to_tensor(task.test, size).numpy().ravel()])}
    kw = {k: v for k, v in cell.method_kwargs.items() if k not in ("steps", "n_aug")}
    base = make_detector("pretrained", seed=cell.seed, **{k: v for k, v in kw.items()
                                                          if k in ("backbone", "image_size", "preset", "device")})
    base.fit(task.train)
    out["pretrained"] = base.embed(task.test)
    one = make_detector(cell.method, seed=cell.seed, **{**cell.method_kwargs, "steps": 1})
    one.fit(task.train)
    out["step1"] = one.embed(task.test) if hasattr(one, "embed") else np.asarray(one.score_samples(task.test))
    t0 = time.process_time()
    fresh, _ = compute_record(cell, data_root, "kernel-pin", strict=True)
    cpu_s = time.process_time() - t0
    out["scores"] = np.asarray(fresh["scores"], dtype=np.float64)
    np.savez(dump / "stages.npz", **out)
    (dump / "result.json").write_text(json.dumps({"auroc": fresh["auroc"], "cpu_s": cpu_s, **kernel_info()}))


def run_child(key: str, kernels: str, args: argparse.Namespace) -> tuple[dict, dict]:
    from coftad_lib.engine.kernels import AVX2_ENV

    env = {k: v for k, v in os.environ.items() if k not in AVX2_ENV}
    env.update({**(AVX2_ENV if kernels == "avx2" else {}), "COFTAD_KERNELS": kernels, "PYTHONPATH": str(REPO)})
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, __file__, "--child", key, "--cache", str(args.cache),
                        "--data-root", args.data_root, "--dump", tmp], env=env, check=True)
        with np.load(Path(tmp) / "stages.npz") as z:
            stages = {k: z[k] for k in z.files}
        return json.loads((Path(tmp) / "result.json").read_text()), stages


def compare(key: str, args: argparse.Namespace) -> dict:
    """One row: the record, both kernel choices' AUROCs and CPU seconds, each stage's largest difference."""
    rec = _record(key, args.cache)
    (nat, s_nat), (pin, s_pin) = run_child(key, "native", args), run_child(key, "avx2", args)
    diffs = {s: float(np.max(np.abs(s_nat[s].astype(np.float64) - s_pin[s].astype(np.float64)))) for s in STAGES}
    first = next((s for s in STAGES if diffs[s] > 0), "none")
    return {"key": key, "what": f"{rec['method']} {rec['dataset']}/{rec['task']} {rec['shots']}-shot seed {rec['seed']}",
            "recorded": rec["auroc"], "native": nat["auroc"], "avx2": pin["auroc"],
            "native_capability": nat["cpu_capability"], "pinned_capability": pin["cpu_capability"],
            **{f"diff_{s}": diffs[s] for s in STAGES}, "first_difference": first,
            "cpu_s_native": round(nat["cpu_s"], 1), "cpu_s_avx2": round(pin["cpu_s"], 1),
            "cost_ratio": round(pin["cpu_s"] / nat["cpu_s"], 3)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--keys", default="", help="comma list of committed cell key prefixes")
    p.add_argument("--cache", type=Path, default=REPO / "results" / "cache")
    p.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    p.add_argument("--out", type=Path, default=HERE / "results" / "kernel_pin")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--dump", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args.child, args.cache, args.data_root, args.dump)
    import pandas as pd

    rows = [compare(k.strip(), args) for k in args.keys.split(",") if k.strip()]
    df = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out / "kernel_pin.csv", index=False)
    (args.out / "kernel_pin.md").write_text(
        "# Committed cells recomputed with native and AVX2-pinned CPU kernels\n\n"
        f"`python benchmarks/kernel_pin.py --keys {args.keys}` (one fresh process per kernel choice, one thread).\n\n"
        + df.to_markdown(index=False, floatfmt=".6g") + "\n")
    print(df.to_string(index=False))


if __name__ == "__main__":
    main()
