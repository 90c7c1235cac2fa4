"""One COFT-AD fine-tuning fit (Eq. 6) split into the pieces a step is made of.

A step: draw ``batch_size`` images from the k shots with replacement, augment them
(:func:`draw_views`), run the online network once over all its views and the EMA target once over
its views, add the weighted loss terms of Eqs. 1, 4, 5 (:func:`loss_terms`), take one Adam step
and move the target towards the online network (:func:`ema_step`). :func:`fit_backbone` is the
loop COFTAD uses; ``coftad_lib.packed`` trains several fits at once from the same pieces.

All randomness of a fit after :func:`build_fit_modules` comes from one ``torch.Generator`` on the
shots' device, so a fit never reads or moves the caller's global RNG and the same seed gives the
same fit.
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from .backbones import Backbone
from .byol import ema_lists, ema_update, mlp_head
from .device import autocast, memory_format, place
from .losses import byol_loss, cross_instance_loss, fixed_center_loss, negative_pair_loss

# A fit whose estimate (timed over its first steps) is longer than this prints a one-line hint.
SLOW_FIT_S = 60.0

#: Sizes of a fit when image_size / steps / batch_size are not given (``settings``).
#: "paper": 224 px (ResNet's ImageNet size), 100 steps, batch 64 (Sec. IV-C).
#: "cpu": a 5-shot Lite0 fit in under a minute on 2 CPU cores. Measured on a quiet 2-core machine
#: (benchmarks/results/cpu_settings.md, 5 shots, w/o np, seeds 0-2): 32 steps took 51-58 s per fit
#: (40 steps: 56-68 s), and 56-63 s on ONE core since channels_last on CPU (device.memory_format).
#: AUROC at 32 steps vs 40 steps vs pretrained (128 px): Flowers17 Daffodil/Tulip 88.5 vs 89.4 vs
#: 84.9, MVTec bottle 97.0 vs 97.4 vs 96.6. The 224 px / 100 step / batch 64 reference did not fit
#: in the shared machine's memory (~11 GB), so "within 1 point of it" is not verified
#: (the one comparable seed, Flowers seed 0 on an H200: 90.6 vs 88.6 here).
SETTINGS: dict[str, dict[str, int]] = {
    "paper": {"image_size": 224, "steps": 100, "batch_size": 64},
    "cpu": {"image_size": 128, "steps": 32, "batch_size": 16},
}


@dataclass
class FitModules:
    """The networks of one fit: BYOL's online f, g, q and the EMA target f^, g^ (Sec. III-A).

    ``center`` is the Deep SVDD centre c (D,) for ``positive_pair="fixed_center"``, else None.
    """

    online: Backbone
    projector: nn.Module
    predictor: nn.Module
    target: Backbone
    target_projector: nn.Module
    center: torch.Tensor | None = None

    def trainable(self) -> list[nn.Module]:
        return [self.online, self.projector, self.predictor]


def freeze_early_stages(net: Backbone, train_stages: int | None) -> None:
    """Keep only the last ``train_stages`` stages (and the head) trainable; None = all train.

    The stem and the earlier stages get ``requires_grad=False``, so no gradient is computed for
    them and the optimiser never sees them (issue 11: "which blocks train").
    """
    if train_stages is None:
        return
    n = len(net.stages)
    net.stem.requires_grad_(False)
    for stage in net.stages[: max(0, n - train_stages)]:
        stage.requires_grad_(False)


def build_fit_modules(config: Any, pretrained_net: Backbone, shots: torch.Tensor,
                      device: torch.device) -> FitModules:
    """Copy the pretrained backbone into online and target networks and build fresh heads.

    Heads are initialised on the CPU inside a forked RNG seeded with ``config.seed``: the result
    depends on the seed only, not on the caller's RNG state or the device.

    Args:
        config: a :class:`coftad_lib.coftad.COFTADConfig` (fields seed, proj_hidden, proj_dim,
            positive_pair, train_stages, bn_mode are read).
        pretrained_net: the starting backbone (left untouched).
        shots: (k, 3, S, S) on ``device``; used for the fixed centre only.
    """
    # channels_last on every device (faster convolutions on cuDNN and oneDNN; see device.memory_format).
    online = place(copy.deepcopy(pretrained_net), device)
    freeze_early_stages(online, config.train_stages)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        projector = mlp_head(online.feature_dim, config.proj_hidden, config.proj_dim)
        predictor = mlp_head(config.proj_dim, config.proj_hidden, config.proj_dim)
    projector, predictor = projector.to(device), predictor.to(device)
    target = copy.deepcopy(online).requires_grad_(False)
    target_projector = copy.deepcopy(projector).requires_grad_(False)
    center = None
    if config.positive_pair == "fixed_center":
        # Deep SVDD fixes c from one forward pass of the initial network over the shots.
        online.eval()
        with torch.no_grad(), autocast(device):
            center = online(shots).float().mean(0)
    bn_train = config.bn_mode == "train"
    online.train(bn_train), target.train(bn_train)
    for head in (projector, predictor, target_projector):
        head.train()  # BYOL's heads always normalise with batch statistics
    return FitModules(online, projector, predictor, target, target_projector, center)


def make_optimizer(config: Any, modules: FitModules) -> torch.optim.Optimizer:
    """Adam (paper: 3e-4, betas (0.9, 0.99)) with the backbone at ``lr * backbone_lr_scale``.

    Frozen parameters (``train_stages``) are left out. The fused kernel (all parameters in one
    update) is used where this torch has it, else the multi-tensor ``foreach`` one.
    """
    def trainable(m: nn.Module) -> list[nn.Parameter]:
        return [p for p in m.parameters() if p.requires_grad]

    groups = [
        {"params": trainable(modules.online), "lr": config.lr * config.backbone_lr_scale},
        {"params": trainable(modules.projector) + trainable(modules.predictor), "lr": config.lr},
    ]
    groups = [g for g in groups if g["params"]]
    try:
        return torch.optim.Adam(groups, lr=config.lr, betas=config.betas, fused=True)
    except (RuntimeError, TypeError):  # fused Adam is missing for some device / dtype combinations
        return torch.optim.Adam(groups, lr=config.lr, betas=config.betas, foreach=True)


@dataclass
class Views:
    """The inputs of one step, for B = ``batch_size`` images drawn from the shots.

    Attributes:
        idx: (B,) long, which shot each batch image is.
        online_in: (2B or 3B, 3, S, S): v1 = t(x), v2 = t(x) and, with negatives, t_n(x).
        target_in: (2B or 3B, 3, S, S): v1, v2 and, with negatives, the clean x.
        perm: (B,) long, the cross-instance partner of each image (Eq. 4).
        batch_size: B.
    """

    idx: torch.Tensor
    online_in: torch.Tensor
    target_in: torch.Tensor
    perm: torch.Tensor
    batch_size: int


def draw_views(config: Any, augment: Any, shots: torch.Tensor, generator: torch.Generator) -> Views:
    """Sample a batch from the (k, 3, S, S) shots and augment it; all randomness from ``generator``.

    Both positive views come from one call over the doubled batch (one affine grid and one colour
    op for the 2B images) and each network's input is one tensor, so a step makes one pass per network.
    """
    b = config.batch_size
    idx = torch.randint(len(shots), (b,), generator=generator, device=shots.device)
    x = shots[idx]
    fmt = memory_format(shots.device)
    views = augment.positive(x.repeat(2, 1, 1, 1), generator=generator).contiguous(memory_format=fmt)  # v1, v2
    if config.use_negative:
        neg = augment.negative(x, generator=generator)
        online_in = torch.cat([views, neg]).contiguous(memory_format=fmt)
        target_in = torch.cat([views, x]).contiguous(memory_format=fmt)
    else:
        online_in = target_in = views
    perm = torch.randperm(b, generator=generator, device=shots.device)
    return Views(idx, online_in, target_in, perm, b)


def loss_terms(config: Any, z_online: torch.Tensor, z_target: torch.Tensor, heads: Any,
               views: Views) -> dict[str, torch.Tensor]:
    """The weighted terms of Eq. 6 from the two networks' backbone features.

    Pure tensor code (no RNG, no host sync), so it also runs under ``torch.func.vmap``.

    Args:
        z_online: (2B or 3B, D) online features of ``views.online_in``.
        z_target: (2B or 3B, D) target features of ``views.target_in`` (no gradient).
        heads: anything with ``projector``, ``predictor``, ``target_projector`` callables and a
            ``center`` (D,) tensor or None, e.g. :class:`FitModules`.
    Returns:
        {"con": L_Con (Eq. 1), "pp": lambda_PP * L_PP (Eq. 4 or fixed centre), "np": lambda_NP * L_NP
        (Eq. 5)}, each present only when switched on.
    """
    n = views.batch_size
    terms: dict[str, torch.Tensor] = {}
    if config.contrastive:
        # Both views through each head in one pass (as byol-pytorch does): BatchNorm1d statistics
        # are over the 2B projections of both views.
        p = heads.predictor(heads.projector(z_online[: 2 * n]))
        with torch.no_grad():
            t = heads.target_projector(z_target[: 2 * n])
        terms["con"] = byol_loss(p[:n], p[n:], t[:n], t[n:])
    if config.positive_pair == "cross_instance":
        terms["pp"] = config.lambda_pp * cross_instance_loss(z_online[:n], z_target[n : 2 * n], views.perm)
    elif config.positive_pair == "fixed_center":
        terms["pp"] = config.lambda_pp * fixed_center_loss(z_online[:n], heads.center)
    if config.use_negative:
        terms["np"] = config.lambda_np * negative_pair_loss(z_target[2 * n :], z_online[2 * n :])
    return terms


def forward_loss(config: Any, modules: FitModules, views: Views) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One pass per network over its views, then Eq. 6: (loss, terms)."""
    with autocast(views.online_in.device):
        z_online = modules.online(views.online_in)
        with torch.no_grad():
            z_target = modules.target(views.target_in)
        terms = loss_terms(config, z_online, z_target, modules, views)
    return sum(terms.values()), terms


class Trainer:
    """Optimiser, EMA lists and the (optionally compiled) step of one fit."""

    def __init__(self, config: Any, modules: FitModules) -> None:
        self.config, self.modules = config, modules
        self.optimizer = make_optimizer(config, modules)
        self._ema = [ema_lists(modules.target, modules.online), ema_lists(modules.target_projector, modules.projector)]
        self._forward: Callable = forward_loss
        if _want_compile(config.compile, modules.online):
            self._forward = torch.compile(forward_loss, dynamic=False)

    def _forward_backward(self, views: Views) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        self.optimizer.zero_grad(set_to_none=True)
        loss, terms = self._forward(self.config, self.modules, views)
        loss.backward()
        return loss, terms

    def step(self, views: Views) -> torch.Tensor:
        """One Adam step of Eq. 6 and the EMA update; returns (1 + #terms,) detached losses."""
        try:
            loss, terms = self._forward_backward(views)
        except Exception as exc:  # noqa: BLE001 - any compiler failure: run eagerly instead
            if self._forward is forward_loss:
                raise
            warnings.warn(f"torch.compile failed ({type(exc).__name__}: {str(exc)[:80]}); training eagerly",
                          stacklevel=2)
            self._forward = forward_loss
            loss, terms = self._forward_backward(views)
        self.optimizer.step()
        for lists in self._ema:
            ema_update(None, None, self.config.ema_beta, lists=lists)
        return torch.stack([loss.detach(), *(v.detach() for v in terms.values())])


def _want_compile(option: bool | str, net: nn.Module) -> bool:
    """``compile=True`` always; ``"auto"`` on CUDA only.

    On CPU it does not pay (``benchmarks/results/compile_cpu.txt``): the compiled step is as fast as
    eager, and a process's first fit waits 156 s for the compile (cold cache). Later fits in the
    process reuse it (``benchmarks/compile_reuse.py``). On CUDA: unmeasured.
    """
    if option == "auto":
        return next(net.parameters()).device.type == "cuda"
    return bool(option)


def fit_backbone(config: Any, pretrained_net: Backbone, shots: torch.Tensor, augment: Any,
                 generator: torch.Generator, progress: bool = True,
                 ) -> tuple[Backbone, list[dict[str, float]]]:
    """Fine-tune a copy of ``pretrained_net`` on (k, 3, S, S) shots with Eq. 6 for ``config.steps``.

    Returns the backbone to score (target or online, ``config.score_with``) and the loss history
    [{"step", "loss", "con", "pp", "np"}], converted to floats once at the end (no per-step sync).
    """
    modules, hist = fine_tune(config, pretrained_net, shots, augment, generator, progress)
    return (modules.target if config.score_with == "target" else modules.online), hist


def fine_tune(config: Any, pretrained_net: Backbone, shots: torch.Tensor, augment: Any,
              generator: torch.Generator, progress: bool = True,
              ) -> tuple[FitModules, list[dict[str, float]]]:
    """:func:`fit_backbone`, returning every network of the fit: online f and EMA target f^ both,
    so one fit can be scored with either (issue 19 compares them)."""
    modules = build_fit_modules(config, pretrained_net, shots, shots.device)
    trainer = Trainer(config, modules)
    names = ["loss", *_term_names(config)]
    history = []
    t0 = time.perf_counter()
    for step in tqdm(range(config.steps), desc="COFT-AD fine-tuning", disable=not progress, leave=False):
        history.append(trainer.step(draw_views(config, augment, shots, generator)))
        if step == 2:  # the estimate from the first 3 steps (one-off costs included: an upper bound)
            _warn_if_slow(config, shots, history[-1], t0)
    rows = torch.stack(history).tolist() if history else []
    hist = [{"step": i, **dict(zip(names, row, strict=True))} for i, row in enumerate(rows)]
    return modules, hist


def _term_names(config: Any) -> list[str]:
    names = ["con"] if config.contrastive else []
    names += ["pp"] if config.positive_pair != "none" else []
    return names + (["np"] if config.use_negative else [])


def _warn_if_slow(config: Any, shots: torch.Tensor, last: torch.Tensor, t_start: float) -> None:
    """Print one line when the fit's estimate exceeds :data:`SLOW_FIT_S`."""
    last.sum().item()  # one sync, so the timing covers the queued GPU work
    per_step = (time.perf_counter() - t_start) / 3
    est = per_step * config.steps
    if est <= SLOW_FIT_S:
        return
    cpu = SETTINGS["cpu"]
    print(f"COFT-AD: this fit will take about {est:.0f} s ({per_step:.2f} s/step x {config.steps} steps at "
          f"{config.image_size} px, batch {config.batch_size}, {shots.device.type}); for a faster fit use a GPU "
          f"or smaller image_size / steps / batch_size (settings='cpu' = {cpu['image_size']} px, "
          f"{cpu['steps']} steps, batch {cpu['batch_size']})", flush=True)
