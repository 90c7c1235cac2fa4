"""Every method of the paper's tables by short name: build it, name it as the tables do.

``make_detector(name, **kw)`` builds a detector with the common arguments (backbone, pretrained,
weights_path, image_size, steps, batch_size, lr, preset, seed, device, progress, eval_batch_size)
plus the method's own. Modules are imported only when a method is built, so the registry works
while some methods are missing or their dependencies are not installed.

TDG [4] and DifferNet [48] are not run: the paper quotes their MVTec averages from [4] (Table IV),
and so do we, through :data:`QUOTED`.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..detector import Detector
from ..errors import COFTADInputError
from .base import BaseDetector
from .scorers import SCORERS, make_scorer

#: a name table for cell keys (coftad_lib/engine/code_closure.py): adding a method here moves no
#: other method's key; each cell's key holds its own METHODS and FIXED_KWARGS entries
__key_table__ = True

COMMON_KWARGS = ("backbone", "pretrained", "weights_path", "image_size", "steps", "batch_size", "lr",
                 "preset", "seed", "device", "progress", "eval_batch_size")


class MethodSpec(NamedTuple):
    """Where a method lives and how the paper's tables name it."""

    module: str
    cls: str
    display: str


METHODS: dict[str, MethodSpec] = {
    "coftad": MethodSpec("coftad_lib.coftad", "COFTAD", "COFT-AD (w/o np)"),
    "coftad_np": MethodSpec("coftad_lib.coftad", "COFTAD", "COFT-AD (w/ np)"),
    "pretrained": MethodSpec("coftad_lib.coftad", "PretrainedDetector", "ImageNet Pretrained"),
    "random": MethodSpec("coftad_lib.coftad", "PretrainedDetector", "Random Init."),
    "ae": MethodSpec("coftad_lib.methods.ae", "AutoencoderDetector", "AE"),
    "vae": MethodSpec("coftad_lib.methods.vae", "VAEDetector", "VAE"),
    "deepsvdd": MethodSpec("coftad_lib.methods.deepsvdd", "DeepSVDDDetector", "DeepSVDD"),
    "rotnet": MethodSpec("coftad_lib.methods.rotnet", "RotNetDetector", "RotNet"),
    "csi": MethodSpec("coftad_lib.methods.csi", "CSIDetector", "CSI"),
    "cutpaste": MethodSpec("coftad_lib.methods.cutpaste", "CutPasteDetector", "CutPaste"),
    "cflow": MethodSpec("coftad_lib.methods.cflow", "CFlowDetector", "CFLOW-AD"),
    "patchcore": MethodSpec("coftad_lib.methods.patchcore", "PatchCoreDetector", "PatchCore"),
}

# Arguments a registry name fixes (the name *is* that setting), so callers cannot contradict it.
FIXED_KWARGS: dict[str, dict[str, Any]] = {
    "coftad": {"use_negative": False},
    "coftad_np": {"use_negative": True},
    "random": {"pretrained": False},
}


@dataclass(frozen=True)
class QuotedResult:
    """A method whose numbers the paper quotes rather than runs.

    Attributes:
        display: the row label of the paper's table (the * marks quoted rows).
        reference: where the numbers come from.
        mvtec_avg: shots -> MVTec mean image AUROC in %, as printed in Table IV.
    """

    display: str
    reference: str
    mvtec_avg: dict[int, float] = field(default_factory=dict)


QUOTED: dict[str, QuotedResult] = {
    "differnet": QuotedResult("DifferNet*", "DifferNet [48], MVTec averages quoted from [4] in Table IV",
                              {5: 72.10, 10: 73.60}),
    "tdg": QuotedResult("TDG*", "TDG [4], MVTec averages quoted from [4] in Table IV", {5: 77.90, 10: 78.00}),
}


def _known() -> str:
    return ", ".join(METHODS)


def display_name(name: str) -> str:
    """The row label the paper's tables use for a registry name (quoted methods included)."""
    if name in METHODS:
        return METHODS[name].display
    if name in QUOTED:
        return QUOTED[name].display
    raise COFTADInputError(f"method {name!r} is not known; choose one of {_known()} (quoted only: {', '.join(QUOTED)})")


def is_available(name: str) -> bool:
    """Whether the module implementing ``name`` can be found (quoted methods: False)."""
    if name in QUOTED:
        return False
    if name not in METHODS:
        raise COFTADInputError(f"method {name!r} is not known; choose one of {_known()}")
    return importlib.util.find_spec(METHODS[name].module) is not None


def method_class(name: str) -> type[Detector]:
    """The detector class behind a registry name (imports its module)."""
    if name in QUOTED:
        q = QUOTED[name]
        avgs = ", ".join(f"{k}-shot {v:.2f}" for k, v in q.mvtec_avg.items())
        raise COFTADInputError(
            f"method {name!r} ({q.display}) is quoted, not implemented: the paper copies its MVTec "
            f"averages ({avgs}) from [4]. Use coftad_lib.methods.QUOTED[{name!r}] for the numbers."
        )
    if name not in METHODS:
        raise COFTADInputError(f"method {name!r} is not known; choose one of {_known()} (quoted only: {', '.join(QUOTED)})")
    spec = METHODS[name]
    try:
        module = importlib.import_module(spec.module)
    except ModuleNotFoundError as exc:
        if exc.name == spec.module:
            raise COFTADInputError(f"method {name!r}: its module {spec.module} is not in this installation") from exc
        raise
    return getattr(module, spec.cls)


def make_detector(name: str, **kwargs: Any) -> Detector:
    """Build a detector by registry name with common and method-specific keyword arguments.

    Example:
        >>> det = make_detector("cflow", image_size=224, steps=200, seed=0, coupling_blocks=8)
        >>> det.fit(task.train).score_samples(task.test)

    Raises:
        COFTADInputError: unknown or quoted-only name, an argument the name fixes given a different
            value (e.g. ``make_detector("coftad", use_negative=True)``), or an argument the method
            does not take.
    """
    cls = method_class(name)
    fixed = FIXED_KWARGS.get(name, {})
    for key, value in fixed.items():
        if key in kwargs and kwargs[key] != value:
            raise COFTADInputError(f"method {name!r} means {key}={value!r}; got {key}={kwargs[key]!r} (use another name)")
    kwargs = kwargs | fixed
    allowed = _accepted_kwargs(cls)
    if allowed is not None:
        unknown = set(kwargs) - allowed
        if unknown:
            raise COFTADInputError(
                f"method {name!r} ({cls.__name__}): unknown argument(s) {sorted(unknown)}; it takes {sorted(allowed)}"
            )
    return cls(**kwargs)


def _accepted_kwargs(cls: type) -> set[str] | None:
    """Keyword arguments ``cls`` accepts, following ``**common`` up to BaseDetector's signature;
    None when the class validates its own ``**kwargs`` (COFTAD checks them against COFTADConfig)."""
    allowed: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(vars(klass)["__init__"]).parameters
        allowed |= {n for n, p in params.items() if n != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD}
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return allowed
        if not issubclass(klass, BaseDetector):
            return None
    return None


__all__ = ["COMMON_KWARGS", "METHODS", "QUOTED", "SCORERS", "MethodSpec", "QuotedResult", "display_name",
           "is_available", "make_detector", "make_scorer", "method_class"]
