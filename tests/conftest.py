"""Shared fixtures: a generated texture task and the location of the optional real data."""

from __future__ import annotations

from pathlib import Path

import pytest

from coftad_lib.datasets.synthetic import make_texture_arrays

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def texture_task():
    """Stripe textures; anomalies carry a bright square defect: (train, test, labels) uint8 arrays."""
    return make_texture_arrays()
