"""The CPU kernel pin (engine/kernels.py) and what --verify does with a record's kernels."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from coftad_lib.engine import kernels
from coftad_lib.errors import COFTADInputError
from coftad_lib.reproduce.verify import kernel_mismatch


def test_wanted_kernels_reads_the_environment(monkeypatch):
    monkeypatch.setenv(kernels.KERNELS_ENV, "native")
    assert kernels.wanted_kernels() == "native" and kernels.pin_env() == {} and kernels.is_pinned()
    monkeypatch.setenv(kernels.KERNELS_ENV, "avx2")
    assert kernels.pin_env()["ATEN_CPU_CAPABILITY"] == "avx2"
    monkeypatch.setenv(kernels.KERNELS_ENV, "sse")
    with pytest.raises(COFTADInputError, match="COFTAD_KERNELS"):
        kernels.wanted_kernels()


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the AVX2 pin is for x86-64")
def test_the_pinned_process_runs_avx2_kernels():
    env = {**os.environ, **kernels.AVX2_ENV, kernels.KERNELS_ENV: "avx2"}
    code = "from coftad_lib.engine.kernels import kernel_info; print(kernel_info())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert "'cpu_capability': 'AVX2'" in out and "'kernels': 'avx2'" in out


def test_verify_names_the_kernels_a_record_needs():
    here = {"kernels": "avx2", "cpu_capability": "AVX2"}
    assert kernel_mismatch({"kernels": "avx2", "cpu_capability": "AVX2"}, here) == ""
    assert kernel_mismatch({}, here) == ""  # an older record: tried, and its difference reported
    assert "native kernels" in kernel_mismatch({"kernels": "native", "cpu_capability": "AVX512"}, here) or \
        "native" in kernel_mismatch({"kernels": "native", "cpu_capability": "AVX512"}, here)
    native = {"kernels": "native", "cpu_capability": "AVX2"}
    assert "needs native AVX512" in kernel_mismatch({"kernels": "native", "cpu_capability": "AVX512"}, native)
