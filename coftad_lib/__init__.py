"""COFT-AD: contrastive fine-tuning for few-shot anomaly detection (Liao et al.).

Public API::

    from coftad_lib import COFTAD, PretrainedDetector, auroc
    det = COFTAD(backbone="efficientnet_lite0", preset="flowers").fit(shots)
    scores = det.score_samples(test_images)
"""

from .coftad import COFTAD, COFTADConfig, PretrainedDetector
from .metrics import auroc

__version__ = "0.1.0"

__all__ = ["COFTAD", "COFTADConfig", "PretrainedDetector", "auroc", "__version__"]
