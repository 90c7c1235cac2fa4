"""Does torch.compile's step compile once per process or once per fit? (issue 9, item 1)

Usage:
    OMP_NUM_THREADS=1 python benchmarks/compile_reuse.py [--device cuda] [--image-size 64 --batch 4]

Builds ``--fits`` fits one after another in this process (new networks each, as a table's cells
do) with ``compile=True`` and prints the wall seconds of each fit's first ``--steps`` steps. A
first step far above the rest only in fit 0 means the compiled step is reused by later fits;
the same in every fit would mean each cell pays the compilation again.
"""

from __future__ import annotations

import argparse
import time

import torch

from coftad_lib.augment import make_augmentations
from coftad_lib.backbones import build_backbone
from coftad_lib.coftad import COFTADConfig
from coftad_lib.device import memory_format, resolve_device
from coftad_lib.training import Trainer, build_fit_modules, draw_views


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--fits", type=int, default=4)
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    device = resolve_device(args.device)
    s = args.image_size
    net = build_backbone(args.backbone, pretrained=args.backbone == "efficientnet_lite0")
    cfg = COFTADConfig(backbone=args.backbone, image_size=s, batch_size=args.batch, steps=args.steps,
                       device=str(device), compile=True)
    shots = torch.rand(5, 3, s, s, device=device).contiguous(memory_format=memory_format(device))
    augment = make_augmentations(cfg.preset, s, cfg.cutpaste_mode)
    print(f"# {args.backbone} {s} px batch {args.batch} device={device} threads={torch.get_num_threads()} "
          f"torch={torch.__version__}")
    for fit in range(args.fits):
        gen = torch.Generator(device).manual_seed(fit)
        trainer = Trainer(cfg, build_fit_modules(cfg, net, shots, device))
        times = []
        for _ in range(args.steps):
            t = time.perf_counter()
            trainer.step(draw_views(cfg, augment, shots, gen))
            _sync(device)
            times.append(time.perf_counter() - t)
        print(f"fit {fit}: step wall s " + " ".join(f"{x:.2f}" for x in times), flush=True)


if __name__ == "__main__":
    main()
