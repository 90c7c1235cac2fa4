"""Several COFT-AD fits on one device: one at a time vs packed (vmap) vs a process pool (issue 9, item 5).

Usage:
    python benchmarks/packing.py                       # GPU: 224 px, batch 64, 100 steps, N = 1, 2, 4, 8
    python benchmarks/packing.py --image-size 64 --batch 8 --steps 4 --n-aug 2 --repeats 3   # small CPU run

For each backbone (random init; timing only) and without / with negative pairs it prints, per N:
- ``alone``: fits per minute fitting one detector at a time (``COFTAD.fit``), N fits in a row;
- ``packed``: fits per minute of :func:`coftad_lib.packed.fit_packed` on N detectors (one vmap step);
- ``pool``: N worker processes sharing the device, each running one ``COFTAD.fit`` at the same
  moment (workers are started and warmed up before timing; wall clock from the first start to the
  last end);
- ``floor``: N * 60 / (steps * t), with t the time of the plain passes a packed step contains over
  N * V * B images at once (online forward + backward and target forward, as benchmarks/bench.py),
  i.e. fits per minute if a fit cost only its backbone passes;
- ratios: packed / alone, pool / alone, packed / floor.

A "fit" is a whole ``fit()``: copies, heads, ``steps`` training steps and the Gaussian on N_A
augmented copies (``--n-aug``). Rows are medians over ``--repeats`` interleaved rounds, with the
spread (min-max) in brackets. CUDA work is synchronised before every clock read. Threads: the main
process keeps torch's thread count; each pool worker gets max(1, threads // N), so on a CPU the
pool uses no more cores than the other rows.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing as mp
import os
import queue
import statistics
import time
from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from coftad_lib import COFTAD
from coftad_lib.device import autocast, memory_format, resolve_device
from coftad_lib.packed import fit_packed


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _detector_kwargs(args: argparse.Namespace, backbone: str, negative: bool) -> dict:
    return dict(backbone=backbone, pretrained=False, image_size=args.image_size, steps=args.steps,
                batch_size=args.batch, n_aug=args.n_aug, use_negative=negative, device=args.device,
                progress=False, preset="flowers")


def _shots(args: argparse.Namespace, i: int) -> torch.Tensor:
    """Fit i's shots: (k, 3, S, S) random images, different per fit."""
    g = torch.Generator().manual_seed(1000 + i)
    return torch.rand(args.shots, 3, args.image_size, args.image_size, generator=g)


def _timed(fn: Callable[[], object], device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def _worker(rank: int, kwargs: dict, args: argparse.Namespace, threads: int, commands, results) -> None:
    """Pool worker: warm up once, then for each command fit one detector and report (start, end)."""
    torch.set_num_threads(threads)
    device = resolve_device(kwargs["device"])
    COFTAD(seed=rank, **{**kwargs, "steps": 1}).fit(_shots(args, rank))  # imports, kernels, allocator
    results.put(("ready", rank))
    parent = os.getppid()
    while True:
        try:
            cmd = commands.get(timeout=5)
        except queue.Empty:
            if os.getppid() != parent:  # the benchmark died (e.g. killed): do not linger as an orphan
                return
            continue
        if cmd is None:
            return
        seed, n_threads = cmd
        torch.set_num_threads(n_threads)
        det = COFTAD(seed=seed + rank, **kwargs)
        x = _shots(args, rank)
        _sync(device)
        t0 = time.perf_counter()  # CLOCK_MONOTONIC: comparable across processes on one machine
        det.fit(x)
        _sync(device)
        results.put((t0, time.perf_counter()))


class Pool:
    """``size`` persistent worker processes (spawned, so CUDA works in them)."""

    def __init__(self, size: int, kwargs: dict, args: argparse.Namespace) -> None:
        ctx = mp.get_context("spawn")
        self.results = ctx.Queue()
        self.commands = [ctx.Queue() for _ in range(size)]
        threads = torch.get_num_threads()
        self.procs = [ctx.Process(target=_worker, args=(r, kwargs, args, threads, self.commands[r], self.results),
                                  daemon=True) for r in range(size)]
        for p in self.procs:
            p.start()
        for _ in range(size):
            self.results.get(timeout=600)
        self.threads = threads

    def run(self, n: int, seed: int) -> float:
        """Wall seconds for n workers each fitting one detector at the same time."""
        for w in range(n):
            self.commands[w].put((seed, max(1, self.threads // n)))
        spans = [self.results.get(timeout=3600) for _ in range(n)]
        return max(e for _, e in spans) - min(s for s, _ in spans)

    def close(self) -> None:
        for q in self.commands:
            q.put(None)
        for p in self.procs:
            p.join(timeout=60)


def floor_seconds(backbone: str, args: argparse.Namespace, n: int, views: int, device: torch.device,
                  repeats: int) -> float:
    """Median seconds of the plain passes of one packed step over n * views * batch images."""
    from coftad_lib.backbones import build_backbone

    net = build_backbone(backbone, pretrained=False).to(device).eval()
    tgt = build_backbone(backbone, pretrained=False).to(device).eval().requires_grad_(False)
    x = torch.rand(n * views * args.batch, 3, args.image_size, args.image_size, device=device)
    x = x.contiguous(memory_format=memory_format(device))

    def step() -> None:
        with autocast(device):
            loss = net(x).float().sum()
            with torch.no_grad():
                tgt(x)
        loss.backward()

    step()
    return statistics.median(_timed(step, device) for _ in range(repeats))


def _fmt(times: list[float], n: int) -> tuple[float, str]:
    """Fits per minute (median) and its spread from per-round seconds for n fits."""
    rates = sorted(60.0 * n / t for t in times)
    return statistics.median(rates), f"[{rates[0]:.1f}-{rates[-1]:.1f}]"


def _measure(n: int, kwargs: dict, args: argparse.Namespace, device: torch.device,
             pool: Pool | None) -> dict[str, list[float]]:
    """Seconds for n fits, per round: alone, packed and (when ``pool``) pool, interleaved."""
    times: dict[str, list[float]] = {"alone": [], "packed": [], "pool": []}
    for r in range(args.repeats):  # interleaved: the three rows see the same machine load each round
        shots = [_shots(args, i) for i in range(n)]
        dets = [COFTAD(seed=100 * r + i, **kwargs) for i in range(n)]
        times["alone"].append(_timed(lambda d=dets, s=shots: [x.fit(y) for x, y in zip(d, s, strict=True)], device))
        dets = [COFTAD(seed=100 * r + i, **kwargs) for i in range(n)]
        times["packed"].append(_timed(lambda d=dets, s=shots: fit_packed(d, s), device))
        if pool is not None:
            times["pool"].append(pool.run(n, 100 * r))
        del dets  # fitted detectors hold networks: free them before the next round
        gc.collect()
    return times


def bench(backbone: str, negative: bool, args: argparse.Namespace, device: torch.device) -> None:
    """Print one row per N for this backbone and negative-pair setting (each row as soon as measured)."""
    kwargs = _detector_kwargs(args, backbone, negative)
    ns = [int(v) for v in args.ns.split(",")]
    pool_ns = [n for n in ns if n <= args.max_pool]
    views = 3 if negative else 2
    pool = Pool(max(pool_ns), kwargs, args) if pool_ns else None
    fit_packed([COFTAD(seed=0, **{**kwargs, "steps": 1})], [_shots(args, 0)])  # warm-up
    COFTAD(seed=0, **{**kwargs, "steps": 1}).fit(_shots(args, 0))
    print(f"\n{backbone}, {'with' if negative else 'without'} negatives: {args.image_size} px, batch {args.batch}, "
          f"{args.steps} steps, {args.shots} shots, N_A={args.n_aug}, {views} views, device={device}, "
          f"threads={torch.get_num_threads()}, images per fit = {args.steps * views * args.batch}")
    print(f"{'N':>3} {'alone fits/min':>22} {'packed fits/min':>22} {'pool fits/min':>22} {'floor':>8}"
          f" {'packed/alone':>13} {'pool/alone':>11} {'packed/floor':>13}", flush=True)
    for n in tqdm(ns, desc=f"{backbone} np={negative}", leave=False):
        times = _measure(n, kwargs, args, device, pool if n in pool_ns else None)
        alone, a_sp = _fmt(times["alone"], n)
        packed, p_sp = _fmt(times["packed"], n)
        floor = 60.0 * n / (args.steps * floor_seconds(backbone, args, n, views, device, max(3, args.repeats)))
        if times["pool"]:
            pool_rate, o_sp = _fmt(times["pool"], n)
            pool_txt, pool_ratio = f"{pool_rate:8.1f} {o_sp:>13}", f"{pool_rate / alone:10.2f}x"
        else:
            pool_txt, pool_ratio = f"{'-':>22}", f"{'-':>11}"
        print(f"{n:>3} {alone:8.1f} {a_sp:>13} {packed:8.1f} {p_sp:>13} {pool_txt} {floor:8.1f}"
              f" {packed / alone:12.2f}x {pool_ratio} {packed / floor:12.2f}x", flush=True)
    if pool is not None:
        pool.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbones", default="efficientnet_lite0,resnet18")
    p.add_argument("--negatives", default="0,1", help="0 = without, 1 = with negative pairs")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--shots", type=int, default=5)
    p.add_argument("--n-aug", type=int, default=10)
    p.add_argument("--ns", default="1,2,4,8", help="numbers of fits run together")
    p.add_argument("--max-pool", type=int, default=8, help="largest N measured with the process pool (memory)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    device = resolve_device(args.device)
    args.device = str(device)
    print(f"torch {torch.__version__}, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    for backbone in args.backbones.split(","):
        for neg in args.negatives.split(","):
            bench(backbone, neg == "1", args, device)


if __name__ == "__main__":
    main()
