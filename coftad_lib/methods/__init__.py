"""Competing methods (Sec. IV-B), the scoring functions of Table VIII, and the method registry.

Example::

    from coftad_lib.methods import make_detector, display_name
    det = make_detector("cutpaste", preset="industrial", steps=200, seed=0).fit(task.train)
    scores = det.score_samples(task.test)
"""

from .patch_bank import patch_features
from .registry import (
    COMMON_KWARGS,
    METHODS,
    QUOTED,
    SCORERS,
    MethodSpec,
    QuotedResult,
    display_name,
    is_available,
    make_detector,
    make_scorer,
    method_class,
)
from .scorers import Scorer, score_with

__all__ = ["COMMON_KWARGS", "METHODS", "QUOTED", "SCORERS", "MethodSpec", "QuotedResult", "Scorer",
           "display_name", "is_available", "make_detector", "make_scorer", "method_class",
           "patch_features", "score_with"]
