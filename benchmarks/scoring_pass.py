"""The scoring pass of a CIFAR-10-C cell: eager PyTorch against torch.compile and ONNX Runtime (issue 32, item 4).

Usage:
    python benchmarks/scoring_pass.py                      # Lite0, 64 px, 9,900 images, batch 256, 1 thread
    python benchmarks/scoring_pass.py --images 2000 --out benchmarks/results/scoring_pass

A protocol-cpu CIFAR-10-C cell spends most of its time embedding its test images with the fitted
backbone (eval mode, no gradient). This measures that pass alone, three ways, on the same random
weights-perturbed Lite0 and the same images (one torch thread, AVX2 kernels as the cells):

- ``eager``: the library's path (``FeatureDetector._features``);
- ``compile``: ``torch.compile`` of the backbone (inductor; the first call compiles, timed apart);
- ``onnxruntime``: the backbone exported with ``torch.onnx.export`` and run by ONNX Runtime on one
  thread (skipped when ``onnxruntime`` is not installed).

Reported: process CPU seconds per pass (after one warm-up pass), the ratio to eager, and the largest
feature difference and the AUROC change of a Gaussian fitted on the first 100 images' features
(a stand-in for the cell's shots) when scoring the rest with labels = second half anomalous: a
faster path is only worth taking at equal AUROC (|change| < 0.05 points).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from coftad_lib.backbones import build_backbone
from coftad_lib.density import GaussianDensity
from coftad_lib.metrics import auroc


def _timed(fn, x: torch.Tensor, batch: int) -> tuple[np.ndarray, float]:
    t0 = time.process_time()
    with torch.no_grad():
        out = np.concatenate([np.asarray(fn(x[i:i + batch])) for i in range(0, len(x), batch)])
    return out.astype(np.float64), time.process_time() - t0


def _auroc_of(feats: np.ndarray) -> float:
    d = GaussianDensity(l2_normalize=True, eps=1e-3)
    d.fit(torch.as_tensor(feats[:100], dtype=torch.float32))
    scores = d.score(torch.as_tensor(feats[100:], dtype=torch.float32)).numpy()
    labels = np.r_[np.zeros(len(scores) // 2), np.ones(len(scores) - len(scores) // 2)]
    return 100 * auroc(scores, labels)


def _onnx(net: torch.nn.Module, x: torch.Tensor, tmp: Path):
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    path = tmp / "lite0.onnx"
    torch.onnx.export(net, x[:2], path, input_names=["x"], output_names=["f"], dynamic_axes={"x": {0: "n"}})
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return lambda xb: sess.run(None, {"x": xb.numpy()})[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=9900)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = build_backbone("efficientnet_lite0").eval()
    x = torch.rand(args.images, 3, args.image_size, args.image_size)
    rows = []
    eager_fn = lambda xb: net(xb).numpy()  # noqa: E731
    _timed(eager_fn, x[:args.batch], args.batch)  # warm-up
    ref, t_ref = _timed(eager_fn, x, args.batch)
    a_ref = _auroc_of(ref)
    rows.append(("eager", t_ref, 1.0, 0.0, a_ref, 0.0, 0.0))
    compiled = torch.compile(net)
    t0 = time.perf_counter()
    _timed(lambda xb: compiled(xb).numpy(), x[:args.batch], args.batch)
    compile_s = time.perf_counter() - t0
    feats, t = _timed(lambda xb: compiled(xb).numpy(), x, args.batch)
    rows.append(("compile", t, t / t_ref, float(np.abs(feats - ref).max()), _auroc_of(feats), 0.0, compile_s))
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        run = _onnx(net, x, Path(tmp))
        if run is not None:
            _timed(run, x[:args.batch], args.batch)
            feats, t = _timed(run, x, args.batch)
            rows.append(("onnxruntime", t, t / t_ref, float(np.abs(feats - ref).max()), _auroc_of(feats), 0.0, 0.0))
    lines = [f"# Scoring pass: Lite0 at {args.image_size} px, {args.images} images, batch {args.batch}, 1 thread, "
             f"torch {torch.__version__}", "", "| path | CPU s per pass | ratio to eager | max feature diff | AUROC | "
             "AUROC change | first-call wall s |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, t, ratio, diff, auc, _, first in rows:
        lines.append(f"| {name} | {t:.1f} | {ratio:.2f} | {diff:.2e} | {auc:.3f} | {auc - a_ref:+.3f} | {first:.1f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "scoring_pass_cpu.md").write_text(text)


if __name__ == "__main__":
    from coftad_lib.engine.kernels import ensure_pinned

    ensure_pinned(sys.argv[1:])
    main()
