"""What each registered method is, for the code that schedules, plans and reports it.

One :class:`MethodTraits` per registry name (:data:`coftad_lib.methods.registry.METHODS`), read
wherever a list of names used to say it: the profiles (which methods take ``n_aug``), the packing
of COFT-AD fits, the ``--plan`` cost families, the user report. Traits describe a method; they do
not compute anything, so this file is left out of the code fingerprint
(:data:`coftad_lib.engine.fingerprint.DESCRIPTIVE_FILES`): where a trait reaches a result (``gaussian``
adds ``n_aug``), it does so through the cell's detector kwargs, which are part of its key.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MethodTraits:
    """Attributes:
        trains: ``fit`` trains a network for ``steps`` (False: a pass over the shots).
        gaussian: scored by the Gaussian of Eqs. 7-8 on the features (takes ``n_aug``).
        packable: a fine-tuned COFT-AD whose fits can share one batched step (``--pack``).
        features: exposes ``embed`` features worth plotting and rescoring (Table VIII, t-SNE).
        family: cost family for ``--plan`` (methods of one family cost about the same per step).
    """

    trains: bool = True
    gaussian: bool = False
    packable: bool = False
    features: bool = False
    family: str = "default"


_COFTAD = MethodTraits(trains=True, gaussian=True, packable=True, features=True, family="coftad")
_FEATURES = MethodTraits(trains=False, gaussian=True, packable=False, features=True, family="features")

#: registry name -> traits (names outside the registry get :class:`MethodTraits` defaults)
TRAITS: dict[str, MethodTraits] = {
    "coftad": _COFTAD,
    "coftad_np": _COFTAD,
    "pretrained": _FEATURES,
    "random": _FEATURES,
    "ae": MethodTraits(family="ae"),
    "vae": MethodTraits(family="ae"),
    "deepsvdd": MethodTraits(family="deepsvdd"),
    "rotnet": MethodTraits(family="rotnet"),
    "csi": MethodTraits(family="csi"),
    "cutpaste": MethodTraits(family="cutpaste"),
    "cflow": MethodTraits(family="cflow"),
    "patchcore": MethodTraits(trains=False, family="patchcore"),
}


def method_traits(name: str) -> MethodTraits:
    """The traits of registry name ``name``; defaults for a name the registry does not know."""
    return TRAITS.get(name, MethodTraits())


def methods_with(**wanted: bool) -> frozenset[str]:
    """Registry names whose traits have every ``wanted`` value: ``methods_with(gaussian=True)``."""
    return frozenset(n for n, t in TRAITS.items() if all(getattr(t, k) == v for k, v in wanted.items()))
