"""Several COFT-AD fits trained in one batched step (issue 9, item 2b).

The cells of a table that share backbone, image size, steps, batch size and every loss switch
differ only in task, shots and seed. :func:`fit_packed` trains N of them at once: each fit's
networks (:class:`coftad_lib.training.FitModules`) are stacked with
``torch.func.stack_module_state`` into tensors with a leading fit axis, and one step runs

    terms[i] = loss_terms(f_i(online_in[i]), f^_i(target_in[i]), g_i, q_i, g^_i)   for i < N

for all i in one ``torch.func.vmap(functional_call)`` call (vmap turns the per-fit convolutions
into grouped convolutions, so the device sees N times larger kernels instead of N small ones).
The loss back-propagated is sum_i L_all,i (Eq. 6 per fit): fit i's parameters get exactly the
gradient of its own L_all,i, because no term mixes fits.

Why each packed fit equals fitting it alone (up to float rounding):
- Views: fit i draws its batch, augmentations and permutation from its own ``torch.Generator``
  with :func:`coftad_lib.training.draw_views`, the same calls in the same order as a lone fit.
- Backbone BatchNorm: ``bn_mode="eval"`` normalises with the frozen running statistics, a
  per-sample operation, so a fit's features do not depend on what else is in the call.
  ``bn_mode="train"`` would update running statistics in place, which vmap cannot batch, and is
  refused.
- Head BatchNorm1d (BYOL's projector and predictor) always normalise with batch statistics.
  ``torch.func.replace_all_batch_norm_modules_`` makes sure they track no running statistics (an
  in-place buffer update vmap cannot batch; :func:`coftad_lib.byol.mlp_head` already builds them
  so). The output is unchanged, and running statistics would never be read: heads run only in
  training mode and are discarded after the fit (the scored backbone has no head).
- Optimiser: one Adam over the stacked parameters is N independent Adams, because Adam is
  elementwise (m, v, the bias corrections and the update act on each scalar alone) and every fit
  runs the same step count. It is built by :func:`coftad_lib.training.make_optimizer`, the same
  param groups and kernel as a lone fit.
- EMA (Sec. III-A): ``lerp`` is elementwise too; one ``_foreach_lerp_`` over the stacked tensors.

Tolerance: vmap's grouped convolutions sum in another order than N separate convolutions. With
the networks in float64, packed and lone fits agree to 1e-9 relative (scores, loss history) and
draw exactly the same random numbers (tests/test_packed.py). In float32 the first step's losses
agree to 1e-5, but a few-step Adam fit is chaotic at rounding level (its first update is
lr * sign(g), so near-zero gradient elements flip with any rounding change): scaling a lone fit's
starting weights by (1 + 1e-7) moves its scores by up to 4e-3 relative, and packed vs lone float32
scores differ by that order too. On CPU the packed (vmap) Lite0 gradients are closer to float64
(~1e-6 relative) than the lone ones (~1e-4; depthwise convolutions).

Grouped convolutions rather than vmap were not needed: vmap(functional_call) runs every layer of
both backbones (ResNet, EfficientNet-Lite0 with its depthwise convolutions) and the heads.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from types import SimpleNamespace

import torch
from torch import nn
from torch.func import functional_call, replace_all_batch_norm_modules_, stack_module_state, vmap
from tqdm.auto import tqdm

from .coftad import COFTAD
from .detector import seeded
from .device import autocast
from .errors import COFTADInputError
from .images import Images
from .training import FitModules, Views, build_fit_modules, draw_views, loss_terms, make_optimizer

#: config fields that may differ between packed fits: they change the data a fit sees, its
#: starting weights or how its Gaussian is fitted, not the shape of the step. Every other field
#: (backbone, image size, steps, batch size, losses, optimiser, device...) must be equal.
#: ``compile`` is here because a packed fit always runs its vmapped step eagerly.
PER_FIT_FIELDS = frozenset({"seed", "preset", "cutpaste_mode", "pretrained", "weights_path", "n_aug",
                            "l2_normalize", "eps", "eval_batch_size", "progress", "score_with", "compile"})

_NETS = ("online", "projector", "predictor", "target", "target_projector")
# Which skeleton (module structure) each stacked network is called through.
_SKELETON = {"online": "online", "target": "online", "projector": "projector",
             "predictor": "predictor", "target_projector": "projector"}


def check_packable(detectors: Sequence[COFTAD], shots: Sequence[Images]) -> None:
    """Raise :class:`COFTADInputError` naming the first difference that prevents packing."""
    if len(detectors) == 0:
        raise COFTADInputError("fit_packed: no detectors given")
    if len(shots) != len(detectors):
        raise COFTADInputError(f"fit_packed: {len(detectors)} detectors but {len(shots)} shot sets; pass one per detector")
    for i, det in enumerate(detectors):
        if not isinstance(det, COFTAD):
            raise COFTADInputError(f"fit_packed: detectors[{i}] is a {type(det).__name__}, expected a COFTAD")
    first = detectors[0].config
    if first.bn_mode != "eval":
        raise COFTADInputError(
            "fit_packed: bn_mode='train' cannot be packed: train-mode BatchNorm updates its running "
            "statistics in place, which torch.func.vmap cannot batch; use bn_mode='eval' or fit one at a time")
    for i, det in enumerate(detectors[1:], start=1):
        for f in dataclasses.fields(first):
            if f.name in PER_FIT_FIELDS:
                continue
            a, b = getattr(first, f.name), getattr(det.config, f.name)
            if a != b:
                raise COFTADInputError(
                    f"fit_packed: detectors[{i}].{f.name}={b!r} but detectors[0].{f.name}={a!r}; packed "
                    f"fits must share every setting except {', '.join(sorted(PER_FIT_FIELDS))}")
        if det.device != detectors[0].device:
            raise COFTADInputError(f"fit_packed: detectors[{i}] is on {det.device}, detectors[0] on {detectors[0].device}")


@dataclasses.dataclass
class PackedModules:
    """N fits' networks as stacked tensors: ``params[net][name]`` is (N, *shape of that tensor).

    ``skeletons`` hold the module structure (on the meta device) each network is called through.
    ``center`` is (N, D) for ``positive_pair="fixed_center"``, else None.
    """

    skeletons: dict[str, nn.Module]
    params: dict[str, dict[str, torch.Tensor]]
    buffers: dict[str, dict[str, torch.Tensor]]
    center: torch.Tensor | None

    def module(self, net: str) -> SimpleNamespace:
        """A stand-in with ``parameters()`` for :func:`make_optimizer` (trainable stacked leaves)."""
        return SimpleNamespace(parameters=lambda: iter(self.params[net].values()))


def stack_fits(fits: Sequence[FitModules]) -> PackedModules:
    """Stack N fits' online/target networks and heads; heads stop tracking BatchNorm statistics."""
    for fit in fits:
        for head in (fit.projector, fit.predictor, fit.target_projector):
            replace_all_batch_norm_modules_(head)
    params, buffers = {}, {}
    for net in _NETS:
        params[net], buffers[net] = stack_module_state([getattr(f, net) for f in fits])
    skeletons = {name: copy.deepcopy(getattr(fits[0], name)).to("meta") for name in ("online", "projector", "predictor")}
    center = torch.stack([f.center for f in fits]) if fits[0].center is not None else None
    return PackedModules(skeletons, params, buffers, center)


def unstack_into(packed: PackedModules, i: int, fit: FitModules) -> None:
    """Copy fit ``i``'s trained tensors back into its own :class:`FitModules` (online and target)."""
    with torch.no_grad():
        for net in ("online", "target"):
            module = getattr(fit, net)
            for name, t in [*module.named_parameters(), *module.named_buffers()]:
                src = packed.params[net].get(name)
                t.copy_(src[i] if src is not None else packed.buffers[net][name][i])


def packed_terms(config, packed: PackedModules, views: Sequence[Views]) -> torch.Tensor:
    """(N, T) loss terms of Eq. 6, fit i's row computed from fit i's networks and views only."""
    sk, b = packed.skeletons, views[0].batch_size

    def one_fit(params, buffers, center, idx, online_in, target_in, perm):
        def call(net):
            return lambda x: functional_call(sk[_SKELETON[net]], (params[net], buffers[net]), (x,))
        z_online = call("online")(online_in)
        with torch.no_grad():
            z_target = call("target")(target_in)
        heads = SimpleNamespace(projector=call("projector"), predictor=call("predictor"),
                                target_projector=call("target_projector"), center=center)
        terms = loss_terms(config, z_online, z_target, heads, Views(idx, online_in, target_in, perm, b))
        return torch.stack(list(terms.values()))

    stacked = [torch.stack([getattr(v, k) for v in views]) for k in ("idx", "online_in", "target_in", "perm")]
    center_dim = None if packed.center is None else 0
    with autocast(stacked[1].device):
        return vmap(one_fit, in_dims=(0, 0, center_dim, 0, 0, 0, 0))(packed.params, packed.buffers, packed.center, *stacked)


def _ema(packed: PackedModules, beta: float) -> None:
    """Target <- beta * target + (1 - beta) * online for every stacked parameter and float buffer."""
    with torch.no_grad():
        for tgt, src in (("target", "online"), ("target_projector", "projector")):
            t = [*packed.params[tgt].values()]
            o = [packed.params[src][k] for k in packed.params[tgt]]
            torch._foreach_lerp_(t, o, 1.0 - beta)
            for k, tb in packed.buffers[tgt].items():
                ob = packed.buffers[src][k]
                tb.lerp_(ob, 1.0 - beta) if tb.dtype.is_floating_point else tb.copy_(ob)


def _fit_generator(det: COFTAD) -> torch.Generator:
    """The generator a lone ``det.fit`` draws from (reset there): seeded with the seed, on the device."""
    det.generator = torch.Generator(det.device).manual_seed(det.seed)
    return det.generator


def fit_packed(detectors: Sequence[COFTAD], shots: Sequence[Images]) -> list[COFTAD]:
    """Fit N COFT-AD detectors in one batched step per iteration; as ``[d.fit(s) for d, s in ...]``.

    Args:
        detectors: unfitted :class:`COFTAD` instances whose configs agree on every field except
            :data:`PER_FIT_FIELDS` (seed, preset, ...), with ``bn_mode="eval"``.
        shots: one set of normal shots per detector (any :data:`coftad_lib.images.Images`; the
            number of shots may differ between fits).

    Returns:
        The same detectors, each fitted (``scoring_net``, ``density``, ``history``) as if
        ``det.fit(shots)`` had been called, within float tolerance (module docstring).

    Raises:
        COFTADInputError: configs that cannot share a step (the message names the field).
    """
    detectors = list(detectors)
    check_packable(detectors, shots)
    config = detectors[0].config
    if not config.fine_tunes:  # nothing to train: each fit is its Gaussian only
        return [det.fit(s) for det, s in zip(detectors, shots, strict=True)]
    device = detectors[0].device
    batches = [det._to_device_batch(s) for det, s in zip(detectors, shots, strict=True)]
    gens = [_fit_generator(det) for det in detectors]
    fits = [build_fit_modules(det.config, det._pretrained_net, x, device) for det, x in zip(detectors, batches, strict=True)]
    packed = stack_fits(fits)
    opt = make_optimizer(config, SimpleNamespace(**{n: packed.module(n) for n in ("online", "projector", "predictor")}))
    rows = []
    for _ in tqdm(range(config.steps), desc=f"COFT-AD packed x{len(detectors)}", disable=not config.progress, leave=False):
        views = [draw_views(det.config, det.augment, x, g) for det, x, g in zip(detectors, batches, gens, strict=True)]
        opt.zero_grad(set_to_none=True)
        terms = packed_terms(config, packed, views)  # (N, T)
        loss = terms.sum(1)  # (N,) L_all of each fit
        loss.sum().backward()  # fit i's parameters get the gradient of its own L_all only
        opt.step()
        _ema(packed, config.ema_beta)
        rows.append(torch.cat([loss.detach()[:, None], terms.detach()], 1))
    names = ["loss", *_term_names(config)]
    hist = torch.stack(rows, 1).tolist() if rows else [[] for _ in detectors]  # (N, steps, 1 + T)
    for i, (det, fit, x, g) in enumerate(zip(detectors, fits, batches, gens, strict=True)):
        unstack_into(packed, i, fit)
        det.scoring_net = fit.target if det.config.score_with == "target" else fit.online
        det.history = [{"step": s, **dict(zip(names, r, strict=True))} for s, r in enumerate(hist[i])]
        with seeded(det.seed, device):  # as in FeatureDetector.fit
            det._fit_density(x, generator=g)
    return detectors


def _term_names(config) -> list[str]:
    names = ["con"] if config.contrastive else []
    names += ["pp"] if config.positive_pair != "none" else []
    return names + (["np"] if config.use_negative else [])
