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
    """channels_last on CUDA (faster cuDNN kernels for bf16 convolutions), contiguous on CPU."""
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format
