"""Evaluation metric of the paper: AUROC with anomalies as the positive class (Sec. IV-C)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from .errors import COFTADInputError


def auroc(scores, labels) -> float:
    """Area under the ROC curve in [0, 1]; ``labels`` 1 = anomaly, ``scores`` higher = more anomalous.

    Args:
        scores: (M,) anomaly scores.
        labels: (M,) 0/1 labels.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if s.shape != y.shape:
        raise COFTADInputError(f"auroc: {len(s)} scores but {len(y)} labels")
    if not np.isfinite(s).all():
        raise COFTADInputError("auroc: scores contain NaN or infinity")
    if set(np.unique(y).tolist()) != {0, 1}:
        raise COFTADInputError(f"auroc: labels must contain both 0 (normal) and 1 (anomaly), got {sorted(set(y.tolist()))}")
    return float(roc_auc_score(y, s))
