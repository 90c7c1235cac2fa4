"""Software and hardware versions recorded next to every result, so a number can be traced."""

from __future__ import annotations

import functools
import platform
import subprocess
from importlib import metadata
from pathlib import Path

#: distributions whose versions decide the numbers (order kept in records and tables)
PACKAGES: tuple[str, ...] = ("torch", "torchvision", "timm", "numpy", "scipy", "scikit-learn", "pillow")

_REPO = Path(__file__).resolve().parents[1]


def package_version(dist: str) -> str:
    """Installed version of distribution ``dist``, or ``"absent"``; read from metadata, no import."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def library_version() -> str:
    """Version of this library (``coftad-lib`` in pyproject.toml); part of every cache key."""
    return package_version("coftad-lib")


def git_commit(repo: Path = _REPO) -> str:
    """Commit of the working tree, suffixed ``-dirty`` with uncommitted changes; ``"unknown"`` outside git."""
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def device_name(device: str = "auto") -> str:
    """Human-readable compute device that ``device`` resolves to (GPU model or CPU architecture)."""
    try:
        import torch
    except ImportError:
        return f"cpu ({platform.machine()})"
    want_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if want_cuda and torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)})"
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"


def versions(device: str = "auto") -> dict[str, str]:
    """Versions behind a result: python, torch, torchvision, timm, numpy, coftad_lib, git commit, device.

    Keys are in :data:`VERSION_KEYS` order. Packages and commit are read once per process (they do
    not change while it runs); the device is read on every call, since a CPU's thread count can be
    changed mid-process (``torch.set_num_threads``). Each call returns a fresh dict.
    """
    return {**dict(_versions()), "device": device_name(device)}


#: keys of :func:`versions`, in the order tables and records list them
VERSION_KEYS: tuple[str, ...] = ("python", *PACKAGES, "coftad_lib", "git_commit", "device")


@functools.lru_cache(maxsize=1)
def _versions() -> tuple[tuple[str, str], ...]:
    values = {"python": platform.python_version()}
    values.update({name: package_version(name) for name in PACKAGES})
    values["coftad_lib"] = library_version()
    values["git_commit"] = git_commit()
    values["device"] = ""  # filled per call by versions()
    return tuple((k, values[k]) for k in VERSION_KEYS)
