"""Which CPU kernels compute a cell: one instruction set on every x86 machine, so any machine repeats a number.

PyTorch, oneDNN, MKL, OpenBLAS and NumPy each pick their kernels for the CPU they find: on a machine
with AVX-512 they run other kernels than on one with AVX2 only, float sums round in another order,
and a few ulps at the first fine-tuning step become AUROC points after 32 steps (issue "Any machine
repeats any number": 5 of 6 committed cells recomputed to another AUROC on an AVX2 machine).
Each library reads its choice from an environment variable once, when it loads, so the pin has to
be in the environment before ``import torch``: :func:`ensure_pinned` restarts the runner's process
with it (``os.execv``), spawned pool workers inherit it, and :func:`kernel_info` records in every
cell which capability computed it.

AVX2 is the pin because every x86-64 machine this project runs on has it (AVX-512 is missing on
some); ``$COFTAD_KERNELS=native`` lets each library choose (faster on AVX-512, not repeatable).
The pin's cost and its effect on AUROC are measured in ``benchmarks/kernel_pin.py``.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping, Sequence

from ..errors import COFTADInputError

#: environment variable choosing the kernels: ``avx2`` (default on x86-64) or ``native``
KERNELS_ENV = "COFTAD_KERNELS"

#: what each library reads at load time to stay on AVX2 kernels
#: (ATen's vectorised ops; oneDNN's convolutions; MKL's GEMM with conditional numerical
#: reproducibility, STRICT so that it also fixes the order of its reductions; OpenBLAS's GEMM under
#: NumPy/SciPy; NumPy's own SIMD loops, which it dispatches above its X86_V3 (AVX2) level)
AVX2_ENV: Mapping[str, str] = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_CBWR": "AVX2,STRICT",
    "OPENBLAS_CORETYPE": "Haswell",
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
}


def wanted_kernels() -> str:
    """``"avx2"`` or ``"native"``: ``$COFTAD_KERNELS``, default AVX2 on x86-64 and native elsewhere."""
    raw = os.environ.get(KERNELS_ENV, "").strip().lower()
    if raw in ("", "auto"):
        return "avx2" if platform.machine().lower() in ("x86_64", "amd64") else "native"
    if raw not in ("avx2", "native"):
        raise COFTADInputError(f"{KERNELS_ENV}={raw!r}: expected 'avx2' or 'native'")
    return raw


def pin_env(kernels: str | None = None) -> dict[str, str]:
    """The environment variables that pin ``kernels`` (empty for ``"native"``)."""
    return dict(AVX2_ENV) if (kernels or wanted_kernels()) == "avx2" else {}


def is_pinned(env: Mapping[str, str] | None = None) -> bool:
    """Whether ``env`` (default ``os.environ``) already holds the wanted pin."""
    env = os.environ if env is None else env
    return all(env.get(k) == v for k, v in pin_env().items())


def ensure_pinned(argv: Sequence[str], module: str | None = None) -> None:
    """Restart this process as ``python -m module argv...`` (``module`` None: as the script
    ``sys.argv[0]``) with the pin in its environment, unless it holds it.

    Called first thing by ``python -m coftad_lib.reproduce`` (and the paper-compute benchmark). A
    process that already imported torch cannot change its kernels, hence the restart.
    """
    if is_pinned():
        return
    env = {**os.environ, **pin_env()}
    target = ["-m", module] if module else [sys.argv[0]]
    os.execve(sys.executable, [sys.executable, *target, *argv], env)


def cpu_capability() -> str:
    """The kernel level ATen runs on in this process (``"AVX2"``, ``"AVX512"``, ``"DEFAULT"``...)."""
    import torch

    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except AttributeError:  # an older torch
        return "unknown"


def kernel_info() -> dict[str, str]:
    """What a record stores about its kernels: ``cpu_capability`` and ``kernels`` (``"avx2"``/``"native"``)."""
    pinned = bool(pin_env()) and is_pinned()
    return {"cpu_capability": cpu_capability(), "kernels": "avx2" if pinned else "native"}
