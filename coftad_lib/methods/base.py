"""Shared plumbing for the competing methods: common arguments, seeding, batching.

Every competitor of Sec. IV-B takes the same few-shot task and the same backbone choice as
COFT-AD, so they share the constructor arguments below; method-specific ones follow.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from ..augment import make_augmentations
from ..backbones import Backbone, build_backbone
from ..detector import Detector, seeded
from ..device import autocast, memory_format, place, resolve_device
from ..errors import COFTADInputError
from ..images import Images, images_to_tensor


class BaseDetector(Detector):
    """Common arguments and helpers of every competing method.

    Args:
        backbone, pretrained, weights_path: as :func:`coftad_lib.backbones.build_backbone`;
            methods without a backbone (AE, VAE) accept and ignore them.
        image_size: square input side.
        steps, batch_size, lr: optimisation budget; each method documents its defaults.
        preset: augmentation family (Sec. IV-C) for methods that augment.
        seed: seeds everything random in fit().
        device: "auto", "cpu", "cuda", ...
        progress: tqdm bars.
    """

    uses_backbone = True

    def __init__(self, *, backbone: str = "efficientnet_lite0", pretrained: bool = True,
                 weights_path: str | None = None, image_size: int = 224, steps: int = 200,
                 batch_size: int = 64, lr: float = 3e-4, preset: str = "flowers", seed: int = 0,
                 device: str = "auto", progress: bool = True, eval_batch_size: int = 128) -> None:
        if image_size < 32:
            raise COFTADInputError(f"image_size={image_size}: must be at least 32 pixels")
        if steps < 0 or batch_size < 2:
            raise COFTADInputError(f"steps={steps}, batch_size={batch_size}: need steps >= 0 and batch_size >= 2")
        self.backbone_name, self.pretrained, self.weights_path = backbone, pretrained, weights_path
        self.image_size, self.steps, self.batch_size, self.lr = image_size, steps, batch_size, lr
        self.preset, self.seed, self.progress = preset, seed, progress
        self.device = resolve_device(device)
        self.eval_batch_size = eval_batch_size
        self.augment = make_augmentations(preset, image_size)
        if self.uses_backbone:
            # Built here so a bad name or missing weights fail before any data is read.
            self._initial_backbone = build_backbone(
                backbone, pretrained=pretrained, weights_path=weights_path, init_seed=seed
            )

    def new_backbone(self) -> Backbone:
        """A fresh copy of the ImageNet-initialised backbone on the device."""
        import copy

        return place(copy.deepcopy(self._initial_backbone), self.device)

    def to_batch(self, images: Images) -> torch.Tensor:
        """Images -> (N, 3, S, S) float in [0, 1] on the device."""
        return images_to_tensor(images, self.image_size).to(self.device, memory_format=memory_format(self.device))

    def seeded(self):
        """Context manager seeding torch's RNG with ``self.seed`` (restored afterwards)."""
        return seeded(self.seed, self.device)

    def sample_batch(self, shots: torch.Tensor) -> torch.Tensor:
        """(k, 3, S, S) -> (batch_size, 3, S, S): shots drawn with replacement, as COFT-AD does."""
        return shots[torch.randint(len(shots), (self.batch_size,), device=shots.device)]

    @torch.no_grad()
    def batched(self, images: Images, fn: Callable[[torch.Tensor], torch.Tensor], desc: str = "scoring") -> np.ndarray:
        """Apply ``fn`` ((B, 3, S, S) -> (B, ...)) over images in eval batches -> concatenated numpy (float64)."""
        x = images_to_tensor(images, self.image_size)
        out = []
        starts = range(0, len(x), self.eval_batch_size)
        for i in tqdm(starts, desc=desc, disable=not self.progress or len(starts) < 8, leave=False):
            xb = x[i : i + self.eval_batch_size].to(self.device, memory_format=memory_format(self.device))
            with autocast(self.device):
                out.append(fn(xb).float().cpu())
        return torch.cat(out).double().numpy()
