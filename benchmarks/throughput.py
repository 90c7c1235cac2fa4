"""Cost of a COFT-AD training step against the plain backbone passes it contains (issue 9, item 5).

Usage:
    python benchmarks/throughput.py                                   # GPU: 224 px, batch 64
    OMP_NUM_THREADS=2 python benchmarks/throughput.py --image-size 128 --batch 16 --steps 20
    python benchmarks/throughput.py --profile --backbones efficientnet_lite0 --image-size 128 --batch 32

For each backbone, without and with negative pairs, one measurement round is:
- ``plain``: the passes a step contains, nothing else: online forward + backward over the online
  inputs (2B images, 3B with negatives) and a no-grad target forward over the target inputs,
  with frozen BatchNorm statistics as in a fit. Timed ``--steps`` times back to back.
- ``step``: one fit of ``--steps`` steps built from coftad_lib.training (batch sampling,
  augmentation, both passes, heads, losses, Adam, EMA), with a timestamp after every step
  (CUDA-synchronised on GPU). The first ``--warmup`` steps are dropped.
Rounds alternate plain / step ``--repeats`` times in one process, so machine load hits both alike;
the ratio is median(step) / median(plain) with the spread (min-max of the round medians).
``step 1 s`` is the median first step of a timed fit (with ``--compile`` it includes that fit's
compilation). ``fit s`` is one whole ``COFTAD.fit`` on ``--shots`` random shots (Gaussian fit
included) at the same sizes. ResNet18 is randomly initialised (timing does not depend on the weights).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from coftad_lib import COFTAD
from coftad_lib.augment import make_augmentations
from coftad_lib.backbones import build_backbone
from coftad_lib.coftad import COFTADConfig
from coftad_lib.device import autocast, memory_format, resolve_device
from coftad_lib.training import Trainer, build_fit_modules, draw_views

# Wall clock by default; --clock cpu uses the process's CPU time, which on a shared, loaded machine
# with one thread measures what the step costs on one quiet core (other jobs' load does not enter).
CLOCK = time.perf_counter


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def plain_times(net: torch.nn.Module, n_online: int, n_target: int, size: int, steps: int,
                device: torch.device) -> list[float]:
    """Seconds of each of ``steps`` plain rounds: online fwd+bwd (n_online) + target fwd (n_target)."""
    online, target = copy.deepcopy(net).eval(), copy.deepcopy(net).eval().requires_grad_(False)
    fmt = memory_format(device)
    x_on = torch.rand(n_online, 3, size, size, device=device).contiguous(memory_format=fmt)
    x_tg = torch.rand(n_target, 3, size, size, device=device).contiguous(memory_format=fmt)
    times = []
    _sync(device)
    t = CLOCK()
    for _ in range(steps):
        with autocast(device):
            loss = online(x_on).float().mean()
        loss.backward()
        online.zero_grad(set_to_none=True)
        with torch.no_grad(), autocast(device):
            target(x_tg)
        _sync(device)
        now = CLOCK()
        times.append(now - t)
        t = now
    return times


def step_times(config: COFTADConfig, net: torch.nn.Module, shots: torch.Tensor, device: torch.device) -> list[float]:
    """Seconds of each step of one fit of ``config.steps`` steps (the fit_backbone loop, timestamped)."""
    augment = make_augmentations(config.preset, config.image_size, config.cutpaste_mode)
    generator = torch.Generator(device).manual_seed(config.seed)
    trainer = Trainer(config, build_fit_modules(config, net, shots, device))
    times = []
    _sync(device)
    t = CLOCK()
    for _ in range(config.steps):
        trainer.step(draw_views(config, augment, shots, generator))
        _sync(device)
        now = CLOCK()
        times.append(now - t)
        t = now
    return times


def bench_one(args: argparse.Namespace, backbone: str, negative: bool, device: torch.device) -> str:
    """One table row: step and plain medians, their ratio with spread, and one whole fit's seconds."""
    s, b = args.image_size, args.batch
    pretrained = backbone == "efficientnet_lite0"
    net = build_backbone(backbone, pretrained=pretrained)
    cfg = COFTADConfig(backbone=backbone, pretrained=pretrained, image_size=s, batch_size=b,
                       steps=args.steps, use_negative=negative, device=str(device), compile=args.compile)
    shots = torch.rand(args.shots, 3, s, s, device=device).contiguous(memory_format=memory_format(device))
    n_views = 3 if negative else 2
    w = args.warmup
    plain_med, step_med, first = [], [], []
    for _ in range(args.repeats):
        plain_med.append(statistics.median(plain_times(net, n_views * b, n_views * b, s, args.steps, device)[w:]))
        times = step_times(cfg, net, shots, device)
        step_med.append(statistics.median(times[w:]))
        first.append(times[0])  # a fit's first step: with --compile it includes that fit's compilation
    ratios = [st / pl for st, pl in zip(step_med, plain_med, strict=True)]
    p, st = statistics.median(plain_med), statistics.median(step_med)
    row = (f"{backbone:<18} {'w/ np' if negative else 'w/o np':<7} {p * 1e3:9.1f} {st * 1e3:9.1f} "
           f"{statistics.median(ratios):6.2f}x  [{min(ratios):.2f}-{max(ratios):.2f}] {statistics.median(first):8.2f}")
    if args.fit_steps == 0:
        return row + f" {'-':>8}"
    det = COFTAD(backbone=backbone, pretrained=pretrained, image_size=s, batch_size=b, steps=args.fit_steps,
                 use_negative=negative, device=str(device), progress=False, compile=args.compile)
    _sync(device)
    t0 = time.perf_counter()
    det.fit(shots.cpu())
    _sync(device)
    return row + f" {time.perf_counter() - t0:8.1f}"


def profile(args: argparse.Namespace, backbone: str, device: torch.device) -> None:
    """torch.profiler over a few warm steps: the top operators by self CPU time."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as tprofile

    pretrained = backbone == "efficientnet_lite0"
    net = build_backbone(backbone, pretrained=pretrained)
    cfg = COFTADConfig(backbone=backbone, pretrained=pretrained, image_size=args.image_size,
                       batch_size=args.batch, steps=3, use_negative=args.profile_negative,
                       device=str(device), compile=args.compile)
    shots = torch.rand(args.shots, 3, args.image_size, args.image_size, device=device)
    augment = make_augmentations(cfg.preset, cfg.image_size, cfg.cutpaste_mode)
    gen = torch.Generator(device).manual_seed(0)
    trainer = Trainer(cfg, build_fit_modules(cfg, net, shots, device))
    for _ in range(2):
        trainer.step(draw_views(cfg, augment, shots, gen))
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with tprofile(activities=acts) as prof:
        for _ in range(3):
            trainer.step(draw_views(cfg, augment, shots, gen))
        _sync(device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=args.profile_rows))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbones", default="resnet18,efficientnet_lite0")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=12, help="steps per timed fit (and plain rounds)")
    p.add_argument("--warmup", type=int, default=2, help="steps dropped from each timed fit")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--fit-steps", type=int, default=100, help="steps of the whole fit ('fit s'); 0 = skip it")
    p.add_argument("--shots", type=int, default=5)
    p.add_argument("--negatives", default="0,1", help="0 = w/o np, 1 = w/ np")
    p.add_argument("--compile", action="store_true", help="torch.compile the step (COFTADConfig.compile)")
    p.add_argument("--device", default="auto")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="cpu: process CPU time (use with OMP_NUM_THREADS=1 on a loaded CPU machine)")
    p.add_argument("--profile", action="store_true", help="print torch.profiler's top operators instead")
    p.add_argument("--profile-negative", action="store_true")
    p.add_argument("--profile-rows", type=int, default=15)
    args = p.parse_args()
    device = resolve_device(args.device)
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.profile:
        for backbone in args.backbones.split(","):
            profile(args, backbone, device)
        return
    print(f"device={device} threads={torch.get_num_threads()} image={args.image_size} batch={args.batch} "
          f"steps/fit={args.steps} (first {args.warmup} dropped) repeats={args.repeats} "
          f"clock={args.clock} compile={args.compile} fit-steps={args.fit_steps} shots={args.shots}")
    print(f"{'backbone':<18} {'pairs':<7} {'plain ms':>9} {'step ms':>9} {'ratio':>7}  [spread]   {'step 1 s':>8} {'fit s':>8}")
    for backbone in args.backbones.split(","):
        for neg in args.negatives.split(","):
            print(bench_one(args, backbone, neg == "1", device), flush=True)


if __name__ == "__main__":
    main()
