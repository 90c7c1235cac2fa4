"""COFT-AD: contrastive fine-tuning for few-shot anomaly detection (Liao et al.).

Public API::

    from coftad_lib import COFTAD, PretrainedDetector, auroc
    det = COFTAD(backbone="efficientnet_lite0", preset="flowers").fit(shots)
    scores = det.score_samples(test_images)

Names are imported lazily so that light entry points (data_prep CLIs, the runner's
argument parsing) start without importing torch.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

__version__ = "0.1.0"

# tqdm.auto picks the widget bar in a Jupyter kernel and, without ipywidgets (not a dependency),
# falls back to the text bar with a "TqdmWarning: IProgress not found" on stderr: in every executed
# notebook of the series. The text bar is the one wanted there, so only that warning is silenced.
warnings.filterwarnings("ignore", message="IProgress not found", module="tqdm")

_LAZY = {
    "COFTAD": "coftad_lib.coftad",
    "COFTADConfig": "coftad_lib.coftad",
    "PretrainedDetector": "coftad_lib.coftad",
    "auroc": "coftad_lib.metrics",
    "load_task": "coftad_lib.datasets",
    "make_detector": "coftad_lib.methods",
}

__all__ = [*_LAZY, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'coftad_lib' has no attribute {name!r}")
