"""Choice of compute device and the mixed-precision context used on it."""

from __future__ import annotations

import contextlib

import torch

from .errors import COFTADInputError


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Return ``cuda`` when asked for ``"auto"`` and a GPU is present, else the named device."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise COFTADInputError(f"device={device!r} is not a device name ('auto', 'cpu', 'cuda', 'cuda:0')") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise COFTADInputError(f"device={device!r} was asked for but no CUDA GPU is visible; use device='cpu'")
    return dev


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (Hopper/Ampere run convolutions fastest in bf16); a no-op on CPU.

    CPU bf16 autocast is slower than fp32 on most CPUs without AMX, so we leave CPU in fp32.
    """
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def memory_format(device: torch.device) -> torch.memory_format:
    """channels_last on every device: the faster layout for convolutions on both.

    On CUDA cuDNN's bf16 convolution kernels want it. On CPU, oneDNN's are faster in it too: measured on
    2 cores with torch 2.14, batch 64 (``python benchmarks/memory_format.py``, output in
    ``benchmarks/results/memory_format_cpu.txt``), EfficientNet-Lite0 ran 1.6-2.4x faster for
    forward + backward and 1.3-3.5x for inference at 32-128 px, ResNet18 1.1-1.4x. Both the input and
    the network's weights must be channels_last (converting only the input left Lite0 at 32 px
    3.5x slower), so modules go to the device through :func:`place`.
    """
    return torch.channels_last


def place(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``module`` on ``device`` with its 4-D (convolution) weights in :func:`memory_format` (in place)."""
    return module.to(device, memory_format=memory_format(device))
