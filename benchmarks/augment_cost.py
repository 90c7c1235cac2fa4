"""Cost of the batched augmentations against one plain backbone forward, old (kornia) vs new.

Usage:
    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/augment_cost.py --batch 64 --image-size 224
    python benchmarks/augment_cost.py --device cuda --repeats 20

For each preset it times, interleaved inside one process (so machine load hits all alike):
the positive t(X) and negative t_n(X) of ``coftad_lib.augment`` (new), the kornia pipeline the
library used before (old, rebuilt here with the same ranges only for this comparison), and one
plain ``efficientnet_lite0`` forward (eval, no grad) of the same (B, 3, S, S) batch. It prints
the median seconds with their interquartile range and each augmentation as a ratio of the
forward. A COFT-AD step calls t twice and t_n once per batch next to a forward + backward of
the online net over 3B images and a target forward over 3B images, so these ratios bound the
share of a step augmentation takes. A measurement, not a test.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys

import kornia.augmentation as K
import torch
from timing import timed  # benchmarks/ is on sys.path when this file runs as a script
from torch import nn
from tqdm.auto import tqdm

from coftad_lib.augment import PRESETS, CutPaste, make_augmentations
from coftad_lib.backbones import build_backbone


class _KorniaJitter(nn.Module):
    """Old CutPaste patch jitter: kornia's per-sample ColorJitter(0.1, 0.1, 0.1, 0.1)."""

    def __init__(self) -> None:
        super().__init__()
        self.jitter = K.ColorJitter(0.1, 0.1, 0.1, 0.1, p=1.0)

    def transform(self, x: torch.Tensor, generator=None) -> torch.Tensor:
        return self.jitter(x)


def _old_cutpaste(mode: str) -> CutPaste:
    # The old CutPaste had the same vectorised geometry; only its jitter was kornia's.
    cp = CutPaste(mode)
    cp.jitter = _KorniaJitter()
    return cp


def _old_blur(image_size: int, p: float) -> nn.Module:
    k = max(3, int(image_size * 0.1) // 2 * 2 + 1)
    return K.RandomGaussianBlur((k, k), sigma=(0.1, 2.0 * image_size / 224 + 0.1), p=p)


def old_pair(preset: str, image_size: int, cutpaste_mode: str = "union") -> tuple[nn.Module, nn.Module]:
    """The kornia-based (positive, negative) of the library before the batched rewrite."""
    if preset == "flowers":
        pos = nn.Sequential(K.RandomAffine(degrees=15, translate=(0.1, 0.1), scale=(0.9, 1.1), p=1.0),
                            K.ColorJitter(0.3, 0.3, 0.3, 0.05, p=0.8))
        return pos, _old_cutpaste(cutpaste_mode)
    if preset == "cifar_c":
        pos = K.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1), p=1.0)
        return pos, nn.Sequential(_old_blur(image_size, 1.0), K.ColorJitter(brightness=0.5, contrast=0.5, p=1.0))
    pos = nn.Sequential(K.RandomAffine(degrees=5, translate=(0.05, 0.05), scale=(0.95, 1.05), p=1.0),
                        _old_blur(image_size, 0.5), K.RandomGrayscale(p=0.2))
    return pos, _old_cutpaste(cutpaste_mode)


def _summary(ts: list[float]) -> tuple[float, float, float]:
    """Median and interquartile range (25th, 75th percentile) in seconds."""
    q = statistics.quantiles(ts, n=4) if len(ts) > 1 else [ts[0]] * 3
    return statistics.median(ts), q[0], q[2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--presets", default=",".join(PRESETS))
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    b, s = args.batch, args.image_size
    x = torch.rand(b, 3, s, s, generator=torch.Generator().manual_seed(0)).to(device)
    net = build_backbone("efficientnet_lite0", pretrained=False).to(device).eval()
    gen = torch.Generator(device=device).manual_seed(0)

    @torch.no_grad()
    def forward() -> None:
        net(x)

    print(f"# command: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} python {' '.join(sys.argv)}")
    print(f"# augment_cost: batch {b}, {s} px, device {device}, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    print(f"# median seconds [25%, 75%] over {args.repeats} interleaved repeats after 1 warm-up; "
          "ratio = median / median of one Lite0 forward (eval, no grad)")
    for preset in args.presets.split(","):
        new = make_augmentations(preset, s)
        old_pos, old_neg = (m.to(device) for m in old_pair(preset, s))
        cases = {
            "lite0 forward": forward,
            "old t (kornia)": lambda m=old_pos: m(x),
            "new t": lambda m=new.positive: m(x, generator=gen),
            "old t_n (kornia)": lambda m=old_neg: m(x),
            "new t_n": lambda m=new.negative: m(x, generator=gen),
        }
        times: dict[str, list[float]] = {k: [] for k in cases}
        with torch.no_grad():
            for fn in cases.values():  # warm-up
                fn()
            for _ in tqdm(range(args.repeats), desc=preset, leave=False):
                for k, fn in cases.items():
                    times[k].append(timed(fn, device))
        ref = _summary(times["lite0 forward"])[0]
        print(f"\n## preset {preset}")
        for k, ts in times.items():
            med, lo, hi = _summary(ts)
            print(f"{k:18s} {med:8.4f} s  [{lo:.4f}, {hi:.4f}]  ratio {med / ref:6.3f}")
        for part in ("t", "t_n"):
            old, new_t = (_summary(times[f"{v} {part}{suffix}"])[0] for v, suffix in (("old", " (kornia)"), ("new", "")))
            print(f"speed-up {part:3s}      old / new = {old / new_t:6.1f}x")


if __name__ == "__main__":
    main()
