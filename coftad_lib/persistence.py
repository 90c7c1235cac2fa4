"""Saving and loading any fitted detector of the registry: ``config.json`` + ``weights.safetensors``.

One mechanism for every method, no pickles (the format of :meth:`COFTAD.save`, generalised):

- **save** walks the fitted detector's public attributes and writes every tensor it holds
  (``nn.Module`` state dicts, bare tensors, :class:`~coftad_lib.density.GaussianDensity` and
  tensors of nested library objects such as PatchCore's memory bank) to ``weights.safetensors``;
  plain values (settings, ``history``, a dataclass ``config``) and the registry name + keyword
  arguments that built it go to ``config.json``, with the decision threshold.
- **load** rebuilds the detector from the registry name and keyword arguments, runs a *skeleton
  fit* (``steps=0`` on two placeholder images) so that every module a ``fit()`` creates exists with
  its shape, then overwrites every saved tensor and value. The skeleton fit costs a few forward
  passes (e.g. ~20 Lite0 passes for COFT-AD's N_A = 10 copies), never training, and needs no
  ImageNet weights: the detector is built with ``pretrained=False`` and all weights that score come
  from the file. A loaded detector therefore scores exactly as the saved one did but cannot be
  refit (its starting weights are not stored); :func:`load_detector` makes ``fit`` say so.

The folder is written whole or not at all, and ``config.json`` records the weights file's SHA-256
and tensor list, checked on load (format 3, :mod:`coftad_lib.model_folder`). :meth:`COFTAD.save`
writes the same format. Older folders load too: format 2 (without the weights record) and format
1, what ``COFTAD.save`` wrote before (``"config"`` and ``"class"``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .detector import Detector
from .errors import COFTADInputError
from .model_folder import (
    CONFIG_FILE,
    FORMAT_VERSION,
    WEIGHTS_FILE,
    ModelFileError,
    ModelNotFoundError,
    check_config_types,
    check_value_types,
    check_weights,
    read_weights,
    write_model_folder,
)

#: keyword arguments replaced when rebuilding: the file holds every weight that scores
_REBUILD = {"pretrained": False, "weights_path": None}
_LEGACY_CLASSES = {"COFTAD", "PretrainedDetector"}
_RNG = "__rng_state__"  # key suffix of a torch.Generator's state


# ------------------------------------------------------------------ capture

def _is_library_object(value: Any) -> bool:
    return type(value).__module__.startswith("coftad_lib.") and not isinstance(value, (nn.Module, Detector))


def _has_state_dict(value: Any) -> bool:
    return not isinstance(value, nn.Module) and callable(getattr(value, "state_dict", None)) \
        and callable(getattr(value, "load_state_dict", None))


def _public(obj: Any) -> dict[str, Any]:
    # Private attributes (``_initial_backbone``, caches) are construction-time state: rebuilt from kwargs.
    return {k: v for k, v in vars(obj).items() if not k.startswith("_")}


def _tensor(v: torch.Tensor) -> torch.Tensor:
    # clone: safetensors refuses tensors that share storage (e.g. the same module under two names)
    return v.detach().to("cpu").contiguous().clone()


def _capture_tensors(obj: Any, prefix: str, out: dict[str, torch.Tensor], depth: int = 0) -> None:
    """Add every tensor ``obj`` holds in public attributes to ``out`` under ``prefix.attr[.key]``."""
    for name, value in _public(obj).items():
        key = f"{prefix}{name}"
        if isinstance(value, nn.Module):
            out.update({f"{key}.{k}": _tensor(v) for k, v in value.state_dict().items()})
        elif isinstance(value, torch.Tensor):
            out[key] = _tensor(value)
        elif isinstance(value, torch.Generator):  # e.g. COFT-AD's fit generator: later draws continue alike
            out[f"{key}.{_RNG}"] = _tensor(value.get_state())
        elif _has_state_dict(value):
            state = value.state_dict()
            if any(v is None for v in state.values()):
                raise RuntimeError(f"save_detector: {key} is not fitted; call fit() first")
            out.update({f"{key}.{k}": _tensor(v) for k, v in state.items()})
        elif _is_library_object(value) and depth == 0:
            _capture_tensors(value, f"{key}.", out, depth + 1)


def _jsonable(value: Any) -> Any:
    """``value`` as JSON (numpy scalars and arrays converted); raises TypeError when impossible."""
    if isinstance(value, (np.generic,)):
        value = value.item()
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _jsonable(v) for k, v in value.items()}
    raise TypeError(type(value).__name__)


def _capture_values(det: Detector) -> dict[str, Any]:
    """Public plain-valued attributes (settings, history, dataclass configs) as JSON."""
    state: dict[str, Any] = {}
    for name, value in _public(det).items():
        try:
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                state[name] = {"__dataclass__": _jsonable(dataclasses.asdict(value))}
            else:
                state[name] = _jsonable(value)
        except TypeError:
            pass  # devices, augmentation objects, modules: rebuilt from kwargs or stored as tensors
    return state


def _check_fitted(det: Detector, tensors: dict[str, torch.Tensor]) -> None:
    trained = [k for k, v in _public(det).items()
               if (isinstance(v, nn.Module) and any(True for _ in v.parameters())) or isinstance(v, torch.Tensor)]
    if not trained or not tensors:
        raise RuntimeError(f"save_detector: {type(det).__name__} is not fitted; call fit() first")


def save_detector(det: Detector, path: str | os.PathLike, *, method: str, kwargs: dict[str, Any],
                  threshold: float | None = None, threshold_info: dict[str, Any] | None = None,
                  extra: dict[str, Any] | None = None) -> Path:
    """Write a fitted detector to ``<path>/config.json`` + ``<path>/weights.safetensors``.

    Args:
        det: a fitted detector built by ``make_detector(method, **kwargs)``.
        method: its registry name (``coftad_lib.methods.METHODS``).
        kwargs: the keyword arguments it was built with (JSON values).
        threshold, threshold_info: decision threshold and how it was estimated; default: the
            detector's ``threshold`` / ``threshold_info`` attributes when set (``fit_threshold``).
        extra: JSON values recorded as they are (e.g. the training images), read back by
            :func:`read_config` under ``"extra"``.

    Returns:
        ``path``.
    """
    from .methods.registry import METHODS

    if method not in METHODS:
        raise COFTADInputError(f"save_detector: method {method!r} is not in the registry ({', '.join(METHODS)})")
    try:
        kwargs_json = _jsonable(dict(kwargs))
    except TypeError as exc:
        raise COFTADInputError(f"save_detector: kwargs must be JSON values (numbers, strings, lists); got a {exc}") from exc
    tensors: dict[str, torch.Tensor] = {}
    _capture_tensors(det, "", tensors)
    _check_fitted(det, tensors)
    threshold = getattr(det, "threshold", None) if threshold is None else threshold
    threshold_info = getattr(det, "threshold_info", None) if threshold_info is None else threshold_info
    meta = {
        "format_version": FORMAT_VERSION, "library": "coftad_lib", "method": method, "class": type(det).__name__,
        "kwargs": kwargs_json, "state": _capture_values(det),
        "threshold": None if threshold is None else float(threshold),
        "threshold_info": _jsonable(threshold_info or {}), "extra": _jsonable(extra or {}),
    }
    # Built aside and renamed into place under a lock: the folder is the old model or the new one.
    path = write_model_folder(path, tensors, meta)
    return path


# ------------------------------------------------------------------ read

def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """``<path>/config.json`` of a saved detector, checked, in the current format's keys.

    Raises:
        ModelNotFoundError: the folder or its config.json is missing.
        ModelFileError: not JSON, not a saved detector, a newer format, or an unknown method.
    """
    from .methods.registry import METHODS

    folder = Path(path)
    cfg_file = folder / CONFIG_FILE
    if not folder.is_dir():
        raise ModelNotFoundError(f"{folder}: no such model folder; expected one written by `coftad fit` / save_detector()")
    if not cfg_file.is_file():
        raise ModelNotFoundError(f"{cfg_file}: missing; expected a model folder written by save_detector() or COFTAD.save()")
    try:
        meta = json.loads(cfg_file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{cfg_file}: corrupt, not valid JSON ({exc}); save the model again") from exc
    if not isinstance(meta, dict) or not isinstance(meta.get("format_version"), int):
        raise ModelFileError(f"{cfg_file}: not a saved detector (no integer 'format_version')")
    version = meta["format_version"]
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{cfg_file}: format version {version} was written by a newer coftad_lib; this one reads "
            f"versions up to {FORMAT_VERSION}: upgrade coftad_lib"
        )
    check_config_types(meta, cfg_file)
    if "method" not in meta:  # format 1: COFTAD.save
        if meta.get("class") not in _LEGACY_CLASSES or not isinstance(meta.get("config"), dict):
            raise ModelFileError(f"{cfg_file}: neither 'method' nor a COFTAD 'config'; not a saved detector")
        config = meta["config"]
        meta = {"format_version": version, "class": meta["class"], "kwargs": config,
                "state": {"config": {"__dataclass__": config}},  # the rebuild ran with steps=0
                "method": "pretrained" if meta["class"] == "PretrainedDetector"
                else "coftad_np" if config.get("use_negative") else "coftad",
                "threshold": None, "threshold_info": {}, "legacy": True}
    if meta["method"] not in METHODS:
        raise ModelFileError(f"{cfg_file}: method {meta['method']!r} is not known to this coftad_lib "
                             f"(known: {', '.join(METHODS)})")
    if not isinstance(meta.get("kwargs"), dict):
        raise ModelFileError(f"{cfg_file}: 'kwargs' must be an object of keyword arguments")
    return meta


def _read_tensors(folder: Path, meta: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The tensors of ``weights.safetensors``, checked against what ``config.json`` records (format 3)."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    w_file = folder / WEIGHTS_FILE
    data = read_weights(w_file)
    try:
        tensors = load(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{w_file}: corrupt or not a safetensors file ({exc}); fit the model again") from exc
    check_weights(meta, data, tensors, w_file, folder / CONFIG_FILE)
    if meta.get("legacy"):  # COFTAD.save named the scoring network "backbone."
        tensors = {("scoring_net." + k[len("backbone."):]) if k.startswith("backbone.") else k: v
                   for k, v in tensors.items()}
    return tensors


# ------------------------------------------------------------------ rebuild

def _skeleton(method: str, kwargs: dict[str, Any], device: str, cfg_file: Path) -> Detector:
    """The detector rebuilt from its kwargs and fitted with ``steps=0`` on placeholder images."""
    from .methods.registry import make_detector

    check_value_types(kwargs, _default_kwargs(method), cfg_file)
    kw = dict(kwargs) | _REBUILD | {"device": device, "progress": False, "steps": 0}
    try:
        det = make_detector(method, **kw)
    except (COFTADInputError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{cfg_file}: cannot rebuild {method!r} from its saved 'kwargs': {exc}") from exc
    size = int(getattr(det, "image_size", 32))
    placeholders = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    det.fit(placeholders)
    return det


_SAMPLES = {"int": 0, "float": 0.0, "str": "", "bool": False}


def _example(default: Any, annotation: Any) -> Any:
    """A value of the one plain type (int, float, str, bool) ``annotation`` names, None for any other
    annotation (unions such as ``bool | Literal["auto"]`` are not checked); ``default`` when there is none."""
    if annotation is None or annotation is inspect.Parameter.empty:
        return default
    names = [t.strip() for t in str(annotation).split("|") if t.strip() != "None"]
    return _SAMPLES.get(names[0]) if len(names) == 1 else None


def _default_kwargs(method: str) -> dict[str, Any]:
    """Example values (defaults) of the keyword arguments ``method``'s class takes (its ``config_class``'s
    fields for a class configured by a dataclass, such as COFT-AD), to check a saved model's types."""
    from .methods.registry import method_class

    cls = method_class(method)
    config_cls = getattr(cls, "config_class", None)
    if dataclasses.is_dataclass(config_cls):
        return {f.name: _example(None, f.type) for f in dataclasses.fields(config_cls)}
    out: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if "__init__" in vars(klass):
            out |= {n: _example(p.default, p.annotation)
                    for n, p in inspect.signature(vars(klass)["__init__"]).parameters.items()
                    if p.default is not inspect.Parameter.empty}
    return out


def _restore_tensors(obj: Any, tensors: dict[str, torch.Tensor], prefix: str, device: torch.device,
                     w_file: Path) -> set[str]:
    """Put the tensors under ``prefix`` back into ``obj``'s attributes; returns the keys used."""
    used: set[str] = set()
    for name, value in _public(obj).items():
        key = f"{prefix}{name}"
        sub = {k[len(key) + 1:]: v for k, v in tensors.items() if k.startswith(key + ".")}
        if isinstance(value, nn.Module):
            try:
                value.load_state_dict(sub, strict=True)
            except RuntimeError as exc:
                raise ModelFileError(f"{w_file}: the tensors of {key} do not fit the rebuilt model ({exc})") from exc
            used |= {f"{key}.{k}" for k in sub}
        elif key in tensors:
            setattr(obj, name, tensors[key].to(device))
            used.add(key)
        elif isinstance(value, torch.Generator) and f"{key}.{_RNG}" in tensors:
            used.add(f"{key}.{_RNG}")
            with contextlib.suppress(RuntimeError):  # saved on another device type: keep the rebuilt state
                value.set_state(tensors[f"{key}.{_RNG}"])
        elif _has_state_dict(value):
            if not sub:
                raise ModelFileError(f"{w_file}: no tensors for {key}; the file is incomplete")
            value.load_state_dict({k: v.to(device) for k, v in sub.items()})
            used |= {f"{key}.{k}" for k in sub}
        elif _is_library_object(value) and not prefix:
            used |= _restore_tensors(value, tensors, f"{key}.", device, w_file)
    return used


def _restore_values(det: Detector, state: dict[str, Any], cfg_file: Path) -> None:
    """Put saved plain values back, each checked against the rebuilt detector's own value's type."""
    current_values = {k: v for k, v in vars(det).items() if not isinstance(v, dict)}
    check_value_types(state, current_values, cfg_file, "state", loose_numbers=True)
    for name, value in state.items():
        current = getattr(det, name, None)
        if isinstance(value, dict) and "__dataclass__" in value and dataclasses.is_dataclass(current):
            fields = {f.name for f in dataclasses.fields(current)}
            examples = {f.name: _example(None, f.type) for f in dataclasses.fields(current)}
            check_value_types(value["__dataclass__"], examples, cfg_file, f"state.{name}")
            keep = {"device", "progress"}  # the loading machine's choice
            setattr(det, name, dataclasses.replace(
                current, **{k: v for k, v in value["__dataclass__"].items() if k in fields and k not in keep}))
        elif not isinstance(current, (nn.Module, torch.Tensor)) and name not in ("device", "progress"):
            setattr(det, name, value)


def _refuse_fit(*_: Any, **__: Any) -> Detector:
    raise COFTADInputError(
        "this detector was loaded from disk: it scores, but its ImageNet starting weights are not "
        "stored, so it cannot be refit; build a new one with coftad_lib.methods.make_detector()"
    )


def load_detector(path: str | os.PathLike, device: str = "auto", progress: bool = False) -> Detector:
    """Read a detector written by :func:`save_detector` (or :meth:`COFTAD.save`).

    It scores exactly as the saved one did; ``threshold``, ``threshold_info``, ``method`` and
    ``method_kwargs`` attributes carry what was saved (``threshold`` None when none was).

    Raises:
        ModelNotFoundError: folder, config.json or weights.safetensors missing.
        ModelFileError: a corrupt file, an unknown method, a newer format version, or tensors that
            do not fit the rebuilt model; the message names the file.
    """
    folder = Path(path)
    meta = read_config(folder)
    w_file = folder / WEIGHTS_FILE
    tensors = _read_tensors(folder, meta)
    det = _skeleton(meta["method"], meta["kwargs"], device, folder / CONFIG_FILE)
    used = _restore_tensors(det, tensors, "", det.device if hasattr(det, "device") else torch.device("cpu"), w_file)
    unused = sorted(set(tensors) - used)
    if unused:
        raise ModelFileError(f"{w_file}: {len(unused)} tensors match nothing in a rebuilt {meta['method']!r} "
                             f"detector (e.g. {unused[0]}); was it saved by another method?")
    _restore_values(det, meta.get("state", {}), folder / CONFIG_FILE)
    det.progress = progress
    if hasattr(det, "config") and hasattr(det.config, "progress"):
        det.config.progress = progress
    det.threshold, det.threshold_info = meta.get("threshold"), meta.get("threshold_info") or {}
    det.method, det.method_kwargs = meta["method"], meta["kwargs"]
    det.fit = _refuse_fit  # instance attribute: see the module docstring
    return det


__all__ = ["FORMAT_VERSION", "ModelFileError", "ModelNotFoundError", "load_detector", "read_config", "save_detector"]
