"""Shared fixtures: a generated texture task, float64 networks, a Flowers17 layout, and the location of the optional real data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn

import coftad_lib.training as training
from coftad_lib.datasets.synthetic import make_texture_arrays

# Tests never download datasets (CI has no internet): runs of the series fetch nothing unless a test
# says otherwise (the fetch itself is tested against a local server in test_ensure_datasets.py).
os.environ.setdefault("COFTAD_NO_DOWNLOAD", "1")

# helper modules shared by several test files: their asserts report values as the tests' own do
pytest.register_assert_rewrite("archive_server", "cli_helpers", "lock_holder")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def texture_task():
    """Stripe textures; anomalies carry a bright square defect: (train, test, labels) uint8 arrays."""
    return make_texture_arrays()


class _ToDefaultDtype(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(torch.get_default_dtype())


@pytest.fixture(scope="module")
def float64():
    """Networks built in float64: backbones (default dtype) and heads (they cast their input).

    Packed and lone fits are compared in float64 because a few-step float32 Adam fit is chaotic at
    rounding level (tests/test_packed.py's docstring).
    """
    real_head = training.mlp_head
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(training, "mlp_head", lambda *a: nn.Sequential(_ToDefaultDtype(), *real_head(*a)))
        old = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        try:
            yield
        finally:
            torch.set_default_dtype(old)


def flowers_class_colour(c: int) -> tuple[int, int, int]:
    """The colour of Flowers17 class ``c`` in the :func:`flowers_root` fixture."""
    return (15 * c, 255 - 15 * c, 100)


@pytest.fixture(scope="module")
def flowers_root(tmp_path_factory) -> Path:
    """Official 17flowers layout with tiny JPEGs whose colour encodes the class (id 80c+1..80c+80)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("flowers")
    jpg = root / "jpg"
    jpg.mkdir()
    names = []
    for i in range(1, 1361):
        name = f"image_{i:04d}.jpg"
        Image.new("RGB", (8, 8), flowers_class_colour((i - 1) // 80)).save(jpg / name, quality=95)
        names.append(name)
    (jpg / "files.txt").write_text("\n".join(names) + "\n")
    return root


@pytest.fixture(scope="module")
def folder_data(tmp_path_factory) -> Path:
    """A folder dataset (train/, test/good/, test/defect/) of 32 px stripe textures."""
    from coftad_lib.datasets.synthetic import write_texture_folder

    return write_texture_folder(tmp_path_factory.mktemp("textures"), n_train=4, n_normal=8, n_anom=8, size=32)
