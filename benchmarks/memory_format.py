"""Backbone passes in contiguous (NCHW) against channels_last (NHWC) memory layout.

Why this exists: ``coftad_lib.device.memory_format`` picks the layout of every image batch and
every network. It used channels_last only on CUDA until this benchmark showed oneDNN's CPU
convolutions are also faster in it. Printed: the median seconds of a forward pass (inference)
and of a forward + backward pass (a fit's step) in each layout, and the speed-up ratio.
Both the input and the weights are converted (``coftad_lib.device.place``); the input alone
is also timed, because converting only the batch is the tempting half-fix.

    python benchmarks/memory_format.py                 # Lite0 and ResNet18 at 32/64/128 px
    python benchmarks/memory_format.py --sizes 224 --batch 64 --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import timed  # noqa: E402

from coftad_lib.backbones import build_backbone  # noqa: E402
from coftad_lib.device import resolve_device  # noqa: E402
from coftad_lib.versions import versions  # noqa: E402

LAYOUTS = {"contiguous": (torch.contiguous_format, torch.contiguous_format),
           "input only": (torch.channels_last, torch.contiguous_format),
           "channels_last": (torch.channels_last, torch.channels_last)}


def median_seconds(net: torch.nn.Module, x: torch.Tensor, backward: bool, device: torch.device, repeats: int) -> float:
    """Median over ``repeats`` of one pass of ``net`` on ``x`` after one warm-up pass."""
    def one() -> None:
        if backward:
            net.zero_grad(set_to_none=True)
            net(x).sum().backward()
        else:
            with torch.no_grad():
                net(x)
    one()
    return statistics.median(timed(one, device) for _ in range(repeats))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backbones", default="efficientnet_lite0,resnet18")
    ap.add_argument("--sizes", default="32,64,128")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    device = resolve_device(args.device)
    v = versions()
    print(f"# device {device}, torch {v.get('torch')}, threads {torch.get_num_threads()}, batch {args.batch}, "
          f"median of {args.repeats}")
    print("backbone,size,pass,contiguous_s,input_only_s,channels_last_s,speedup")
    for name in args.backbones.split(","):
        # random init for ResNet: its weights do not install offline, and timing does not need them
        net = build_backbone(name, pretrained=name.startswith("efficientnet"))
        for size in (int(s) for s in args.sizes.split(",")):
            for backward in (False, True):
                net.train(backward)
                secs = {}
                for layout, (x_fmt, w_fmt) in LAYOUTS.items():
                    net.to(device, memory_format=w_fmt)
                    x = torch.rand(args.batch, 3, size, size, device=device).contiguous(memory_format=x_fmt)
                    secs[layout] = median_seconds(net, x, backward, device, args.repeats)
                ratio = secs["contiguous"] / secs["channels_last"]
                print(f"{name},{size},{'fwd+bwd' if backward else 'fwd'},{secs['contiguous']:.3f},"
                      f"{secs['input only']:.3f},{secs['channels_last']:.3f},{ratio:.2f}x", flush=True)


if __name__ == "__main__":
    main()
