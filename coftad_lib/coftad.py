"""COFT-AD (Sec. III) and its pretrained-only baseline, both behind the :class:`Detector` interface.

Training (Eq. 6): L_all = L_Con + lambda_PP * L_PP + lambda_NP * L_NP, with BYOL's online network
(backbone f, projector g, predictor q) and an EMA target (f^, g^). Each step draws a batch of
``batch_size`` images from the k shots with replacement and augments every one afresh.
Scoring (Eqs. 7-8): Gaussian on L2-normalised features of N_A augmented copies of the shots.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from .backbones import Backbone, build_backbone
from .detector import FeatureDetector
from .device import place, resolve_device
from .errors import COFTADInputError
from .training import SETTINGS, fit_backbone

POSITIVE_PAIRS = ("cross_instance", "fixed_center", "none")

@dataclass
class COFTADConfig:
    """Every setting of COFT-AD. Values the paper gives are marked (paper); the rest are ours.

    Attributes:
        backbone: "resnet18" (paper), "resnet50" (Table VI) or "efficientnet_lite0" (offline default).
        pretrained: ImageNet weights (True, paper) or random initialisation (Table VI, row 1).
        weights_path: a local state_dict for the backbone instead of the hub cache.
        preset: augmentation family of Sec. IV-C: "flowers", "cifar_c" or "industrial".
        cutpaste_mode: "normal", "scar" or "union" when the preset's t_n is CutPaste.
        settings: where image_size, steps and batch_size come from when they are None: "paper"
            (224 px, 100 steps, batch 64), "cpu" (a fit of about a minute on 2 cores; see
            :data:`SETTINGS` and benchmarks/results/cpu_settings.md for its cost and AUROC), or
            "auto" = "cpu" on a CPU device, "paper" otherwise. Explicit values always win.
        image_size: side of the square input. The paper does not say; 224 is ResNet's ImageNet size.
        steps: optimiser steps. The paper does not say. On Flowers17 (Lite0, 224 px, batch 64,
            2 seeds x 8 pairs; benchmarks/results/flowers_study_h200_*.csv) 100 steps gave
            80.5 mean AUROC against 80.0 for the pretrained features, and +4.6 on Daffodil/Tulip.
        batch_size: images per step, drawn from the shots with replacement (paper: 64).
        lr, betas: Adam (paper: 3e-4, (0.9, 0.99)).
        backbone_lr_scale: the backbone learns at lr * backbone_lr_scale, the heads at lr. The
            paper uses one rate; a pretrained backbone may need a smaller one than freshly
            initialised heads (issue 11's study).
        train_stages: None = the whole backbone trains (paper); k = only the last k stages of
            ``Backbone.stages`` (and its head layer) train, the stem and earlier stages stay frozen
            (issue 11: does touching only high-level layers keep the pretrained features?).
        feature_stage: None = pooled last layer (paper); i = pooled output of stage i, a weaker
            feature, to test the paper's explanation that the gain grows when the start is weaker.
        ema_beta: target EMA rate. BYOL uses 0.996 over ~10^5 steps; with a few hundred steps
            that barely moves the target, so we use 0.99 (a ~100-step memory).
        proj_hidden, proj_dim: BYOL's head sizes (4096, 256); negligible cost next to the backbone.
        contrastive: use L_Con (Eq. 1). Off together with the other losses = pretrained only.
        positive_pair: "cross_instance" (Eq. 4), "fixed_center" (Deep SVDD centre, Table VI) or "none".
        use_negative: add L_NP (Eq. 5), "COFT-AD (w/ np)".
        lambda_pp, lambda_np: loss weights of Eq. 6 (paper: 0.8, 0.6).
        aug_strength: scales the ranges of the positive augmentation t (1.0 = the preset's own,
            which the paper does not state); issue 11 studies it.
        negative: t_n other than the preset's (None = the preset's, e.g. CutPaste); a milder
            negative for issue 11. Names: see ``coftad_lib.augment.make_augmentations``.
        n_aug: augmented copies N_A for the Gaussian (paper: 10).
        l2_normalize: L2-normalise features before the Gaussian (paper: yes; Table VI ablation).
        eps: diagonal added to Sigma.
        bn_mode: "eval" freezes BatchNorm running statistics during fine-tuning (affine weights
            still train); "train" uses batch statistics. With 5 distinct images per batch, train-mode
            statistics lowered AUROC beyond the seed spread on all three study families (-7.6 CIFAR-10-C,
            -9.1 Flowers17, -6.3 bottle; benchmarks/results/study/VERDICT.md), so "eval".
        score_with: which backbone's features are scored after training: the EMA "target" or the "online" one.
            At the paper's compute the target scored higher in 3 of 4 family x configuration rows
            (benchmarks/results/paper_compute/README.md), so "target".
        compile: torch.compile the forward + loss of a step. False (default), True, or "auto"
            (CUDA only). On CPU it does not win: the compiled step is as fast as eager and the
            first fit of a process waits 156 s to compile (cold cache), later fits reuse it
            (``benchmarks/results/compile_cpu.txt``); on CUDA unmeasured. Any compile error
            falls back to eager with one warning.
        seed: seeds augmentation, batch sampling and head initialisation (one torch.Generator per
            fit; the caller's global RNG is never read or moved).
        device: "auto" (CUDA when present), "cpu", "cuda", ...
        eval_batch_size: batch size for feature extraction.
        progress: show tqdm progress bars.
    """

    backbone: str = "efficientnet_lite0"
    pretrained: bool = True
    weights_path: str | None = None
    preset: str = "flowers"
    cutpaste_mode: str = "union"
    settings: Literal["auto", "cpu", "paper"] = "auto"
    image_size: int | None = None
    steps: int | None = None
    batch_size: int | None = None
    lr: float = 3e-4
    betas: tuple[float, float] = (0.9, 0.99)
    backbone_lr_scale: float = 1.0
    train_stages: int | None = None
    feature_stage: int | None = None
    ema_beta: float = 0.99
    proj_hidden: int = 4096
    proj_dim: int = 256
    contrastive: bool = True
    positive_pair: Literal["cross_instance", "fixed_center", "none"] = "cross_instance"
    use_negative: bool = False
    lambda_pp: float = 0.8
    lambda_np: float = 0.6
    aug_strength: float = 1.0
    negative: str | None = None
    n_aug: int = 10
    l2_normalize: bool = True
    eps: float = 1e-3
    bn_mode: Literal["eval", "train"] = "eval"
    score_with: Literal["target", "online"] = "target"
    compile: bool | Literal["auto"] = False
    seed: int = 0
    device: str = "auto"
    eval_batch_size: int = 128
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.settings not in ("auto", *SETTINGS):
            raise COFTADInputError(f"settings={self.settings!r}; choose 'auto', 'cpu' or 'paper'")
        chosen = self.settings
        if chosen == "auto":
            chosen = "cpu" if resolve_device(self.device).type == "cpu" else "paper"
        for key, value in SETTINGS[chosen].items():
            if getattr(self, key) is None:
                setattr(self, key, value)
        if self.positive_pair not in POSITIVE_PAIRS:
            raise COFTADInputError(f"positive_pair={self.positive_pair!r}; choose one of {', '.join(POSITIVE_PAIRS)}")
        if self.bn_mode not in ("eval", "train"):
            raise COFTADInputError(f"bn_mode={self.bn_mode!r}; choose 'eval' or 'train'")
        if self.score_with not in ("target", "online"):
            raise COFTADInputError(f"score_with={self.score_with!r}; choose 'target' or 'online'")
        if self.steps < 0 or self.batch_size < 2:
            raise COFTADInputError(f"steps={self.steps}, batch_size={self.batch_size}: need steps >= 0 and batch_size >= 2")
        if self.train_stages is not None and self.train_stages < 0:
            raise COFTADInputError(f"train_stages={self.train_stages}: need None (all) or a count >= 0")
        if self.backbone_lr_scale < 0 or self.aug_strength < 0:
            raise COFTADInputError(f"backbone_lr_scale={self.backbone_lr_scale}, aug_strength={self.aug_strength}: need >= 0")
        if self.compile not in (True, False, "auto"):
            raise COFTADInputError(f"compile={self.compile!r}; choose True, False or 'auto'")
        self.betas = tuple(self.betas)

    @property
    def fine_tunes(self) -> bool:
        """Whether any loss term is on (otherwise the detector is 'pretrained only')."""
        return self.steps > 0 and (self.contrastive or self.positive_pair != "none" or self.use_negative)


class COFTAD(FeatureDetector):
    """COntrastive Fine-Tuning for few-shot Anomaly Detection.

    On a CPU the default sizes are :data:`SETTINGS` ["cpu"] (128 px, 32 steps, batch 16: 51-58 s
    for 5 shots on 2 quiet cores, 56-63 s on one core since channels_last on CPU; mean AUROC over 3 seeds above the pretrained features on
    Flowers17, +3.6, and on MVTec bottle, +0.4); on a GPU the paper's (224 px, 100 steps, batch 64, which on a CPU
    takes ~40 min of one core and 10-13 GB of RAM; over 3 seeds the CPU settings scored +0.10 on
    Flowers17 and +1.13 on bottle against it on average, -4.57 to +4.86 per fit). Pass ``settings="paper"`` for the paper's on any device
    (benchmarks/results/cpu_settings.md has the measurements).

    Example:
        >>> det = COFTAD(backbone="efficientnet_lite0", preset="flowers", steps=100, seed=0)
        >>> det.fit(["shot1.jpg", "shot2.jpg", "shot3.jpg"])
        >>> scores = det.score_samples(["test1.jpg", "test2.jpg"])  # higher = more anomalous

    Any field of :class:`COFTADConfig` is a keyword argument.
    """

    #: the dataclass of its keyword arguments (read by persistence to check a saved model's types)
    config_class = COFTADConfig

    def __init__(self, **kwargs: Any) -> None:
        unknown = set(kwargs) - {f.name for f in dataclasses.fields(COFTADConfig)}
        if unknown:
            raise COFTADInputError(f"{type(self).__name__}: unknown argument(s) {sorted(unknown)}")
        self.config = COFTADConfig(**kwargs)
        c = self.config
        super().__init__(
            image_size=c.image_size, preset=c.preset, n_aug=c.n_aug, l2_normalize=c.l2_normalize,
            eps=c.eps, seed=c.seed, device=c.device, eval_batch_size=c.eval_batch_size,
            cutpaste_mode=c.cutpaste_mode, progress=c.progress, aug_strength=c.aug_strength,
            negative=c.negative,
        )
        # Fail on a bad backbone name or missing weights now, not after data loading.
        self._pretrained_net = build_backbone(
            c.backbone, pretrained=c.pretrained, weights_path=c.weights_path, init_seed=c.seed,
            feature_stage=c.feature_stage,
        )
        self.history: list[dict[str, float]] = []

    def _train(self, shots: torch.Tensor) -> Backbone:
        """Fine-tune a copy of the pretrained backbone on (k, 3, S, S) shots with Eq. 6."""
        if not self.config.fine_tunes:
            self.history = []
            return place(copy.deepcopy(self._pretrained_net), self.device)
        net, self.history = fit_backbone(self.config, self._pretrained_net, shots, self.augment,
                                         self.generator, progress=self.progress)
        return net

    # -- persistence --------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write ``<path>/config.json`` and ``<path>/weights.safetensors`` (no pickles), whole or not at
        all: the format of :func:`coftad_lib.persistence.save_detector`, the library's one save path."""
        from .persistence import save_detector

        if self.scoring_net is None or self.density.mean is None:
            raise RuntimeError("COFTAD.save: fit() the detector first")
        kwargs = {k: v for k, v in dataclasses.asdict(self.config).items() if k not in ("device", "progress")}
        return save_detector(self, path, method=self.registry_name(), kwargs=kwargs)

    def registry_name(self) -> str:
        """The :data:`coftad_lib.methods.METHODS` name that builds this detector from its config."""
        if isinstance(self, PretrainedDetector):
            return "pretrained" if self.config.pretrained else "random"
        return "coftad_np" if self.config.use_negative else "coftad"

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "auto") -> COFTAD:
        """Read a detector written by :meth:`save` or :func:`coftad_lib.persistence.save_detector`;
        it scores exactly as the saved one did. A corrupt or missing file raises
        :class:`coftad_lib.persistence.ModelFileError` naming the file."""
        from .persistence import load_detector

        det = load_detector(path, device=device)
        if not isinstance(det, COFTAD):
            raise COFTADInputError(f"{path}: holds a {type(det).__name__}, not a COFT-AD detector; "
                                   "read it with coftad_lib.persistence.load_detector()")
        return det


class PretrainedDetector(COFTAD):
    """ImageNet features + the same Gaussian, no fine-tuning (Table VI row 2, Table VIII row 1)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs = {**kwargs, "steps": 0}
        super().__init__(**kwargs)

