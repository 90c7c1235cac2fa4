"""Cost of COFT-AD and of every competing method, as ratios against plain backbone passes.

Usage:
    python benchmarks/bench.py --backbone efficientnet_lite0 --batch 64 --image-size 224
    python benchmarks/bench.py --methods coftad,patchcore,cflow --fit-steps 20

Rows printed:
- ``train step``: one COFT-AD step (two positive views, plus negatives with --negative) against
  the plain passes it contains (online forward + backward and target forward over the same
  images), timed step by step inside one fit by benchmarks/throughput.py (which has more rows).
- ``scoring``: images/s of COFTAD.score_samples (Mahalanobis included) against plain inference.
- one row per method: fit seconds on k shots and scoring images/s at the same size.
Timing uses wall clock with CUDA synchronisation, after warm-up; it is a measurement, not a test.
"""

from __future__ import annotations

import argparse

import torch
from timing import timed  # benchmarks/ is on sys.path when this file runs as a script

from coftad_lib import COFTAD
from coftad_lib.backbones import build_backbone
from coftad_lib.device import autocast, memory_format, resolve_device


def _timeit(fn, device: torch.device, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs after two warm-ups."""
    for _ in range(2):
        fn()
    times = sorted(timed(fn, device) for _ in range(repeats))
    return times[len(times) // 2]


def bench_core(args: argparse.Namespace, device: torch.device) -> None:
    """Print the train-step ratio (benchmarks/throughput.py) and the scoring ratio of COFT-AD."""
    from throughput import bench_one  # benchmarks/ is on sys.path when this file runs as a script

    b, s = args.batch, args.image_size
    shots = torch.rand(args.shots, 3, s, s)
    net = build_backbone(args.backbone, pretrained=args.backbone == "efficientnet_lite0").to(device).eval()
    targs = argparse.Namespace(image_size=s, batch=b, steps=args.steps_per_call, warmup=2, repeats=args.repeats,
                               fit_steps=args.fit_steps, shots=args.shots, compile=False)
    print(f"device={device} backbone={args.backbone} batch={b} image={s}")
    print(f"{'backbone':<18} {'pairs':<7} {'plain ms':>9} {'step ms':>9} {'ratio':>7}  [spread]   {'fit s':>8}")
    print(bench_one(targs, args.backbone, args.negative, device))
    det = COFTAD(backbone=args.backbone, pretrained=args.backbone == "efficientnet_lite0",
                 image_size=s, steps=0, batch_size=b, device=str(device), progress=False, n_aug=2)
    det.fit(shots)
    test = torch.rand(args.score_images, 3, s, s)

    def plain_infer() -> None:
        with torch.no_grad():
            for i in range(0, len(test), det.eval_batch_size):
                with autocast(device):
                    net(test[i : i + det.eval_batch_size].to(device, memory_format=memory_format(device)))

    t_inf = _timeit(plain_infer, device, args.repeats)
    t_score = _timeit(lambda: det.score_samples(test), device, args.repeats)
    print(f"plain inference:  {len(test) / t_inf:9.1f} images/s")
    print(f"score_samples:    {len(test) / t_score:9.1f} images/s  ratio {t_score / t_inf:5.2f}x")


def bench_methods(args: argparse.Namespace, device: torch.device) -> None:
    """One row per method: fit seconds and scoring throughput at the benchmark size."""
    from coftad_lib.methods import make_detector

    shots = torch.rand(args.shots, 3, args.image_size, args.image_size)
    test = torch.rand(args.score_images, 3, args.image_size, args.image_size)
    print(f"\n{'method':<12} {'fit s':>8} {'score img/s':>12}   (k={args.shots}, steps={args.fit_steps})")
    for name in args.methods.split(","):
        det = make_detector(name, backbone=args.backbone, image_size=args.image_size,
                            steps=args.fit_steps, batch_size=args.batch, device=str(device), progress=False)
        t_fit = timed(lambda det=det: det.fit(shots), device)
        t_score = _timeit(lambda det=det: det.score_samples(test), device, max(1, args.repeats // 2))
        print(f"{name:<12} {t_fit:8.2f} {len(test) / t_score:12.1f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--shots", type=int, default=5)
    p.add_argument("--negative", action="store_true", help="include the negative-pair views")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps-per-call", type=int, default=12, help="steps per timed fit")
    p.add_argument("--score-images", type=int, default=512)
    p.add_argument("--device", default="auto")
    p.add_argument("--methods", default="", help="comma-separated registry names for per-method rows")
    p.add_argument("--fit-steps", type=int, default=20)
    p.add_argument("--skip-core", action="store_true")
    args = p.parse_args()
    device = resolve_device(args.device)
    if not args.skip_core:
        bench_core(args, device)
    if args.methods:
        bench_methods(args, device)


if __name__ == "__main__":
    main()
