"""The method tour (notebook 00): what each loss of COFT-AD does to the features, on one small task.

On Flowers17 Daffodil/Tulip (or, without the data, the generated texture task of
:mod:`coftad_lib.datasets.synthetic`) it fits the four models of the ablation (Figs. 6-7: ImageNet
features, + L_Con (Eq. 1), + L_PP (Eq. 4), + L_NP (Eq. 5)) and measures on each:

- the cosine similarities between the shots' features (Eq. 4 pulls different normal images
  together, so off-diagonal values should rise);
- the spread of the normal test features around their mean direction, and how far the anomalies
  lie from it (what the Gaussian of Eqs. 7-8 turns into scores);
- the cosine similarity between a shot and its negative augmentation t_n (Eq. 5 pushes it down);
- the AUROC of the Mahalanobis score (Eq. 8).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..datasets import load_task, protocols
from ..datasets.task import FewShotTask
from ..engine.cache import cached
from ..engine.cells import dataset_root
from ..errors import DatasetNotFoundError
from ..versions import library_version
from .figure_runs import ABLATION_PANELS
from .profiles import detector_kwargs, preset_for

#: the tour's real task (Table I's first Flowers17 direction of the Daffodil/Tulip pair)
TOUR_TASK = ("flowers17", "Daffodil/Tulip")


def tour_task(data_roots: Any, shots: int, seed: int, max_test_per_class: int | None,
              image_size: int) -> tuple[FewShotTask, str]:
    """The tour's task with images decoded once at ``image_size``; returns (task, what it is).

    Flowers17 Daffodil/Tulip when it is under one of ``data_roots``, else the generated texture
    task (the returned text says which). Images become (N, S, S, 3) uint8 arrays, so the several
    models of the tour do not decode the JPEGs again each time.
    """
    from ..images import images_to_tensor

    dataset, name = TOUR_TASK
    try:
        task = load_task(dataset, dataset_root(data_roots, dataset), shots=shots, seed=seed, task=name)
        what = f"Flowers17 {name} (normal/abnormal), {shots} shots"
    except DatasetNotFoundError:
        from ..datasets import synthetic

        task = synthetic.load(None, shots=shots, seed=seed, size=max(image_size, 32))
        what = (f"generated stripe textures (Flowers17 not found under {data_roots}); "
                "anomalies carry a red square")
    if max_test_per_class is not None:
        task = protocols.subsample_test(task, max_normal=max_test_per_class, max_anomalies=max_test_per_class, seed=seed)

    def as_u8(images: Any) -> np.ndarray:
        t = images_to_tensor(images, image_size)
        return (t.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()

    task.train, task.test = as_u8(task.train), as_u8(task.test)
    return task, what


def augmentation_examples(images: Any, preset: str, image_size: int, seed: int = 0,
                          cutpaste_mode: str = "union") -> dict[str, torch.Tensor]:
    """The shots and what the preset's augmentations make of them (Sec. IV-C).

    Returns:
        row title -> (k, 3, S, S) tensor in [0, 1]: the shots X, two positive views t(X) (the pairs
        of Eq. 1) and the negative augmentation t_n(X) (Eq. 5).
    """
    from ..augment import make_augmentations
    from ..images import images_to_tensor

    aug = make_augmentations(preset, image_size, cutpaste_mode)
    x = images_to_tensor(images, image_size)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        return {"shots X": x, "t(X), view 1": aug.positive(x), "t(X), view 2": aug.positive(x),
                "t_n(X), negative": aug.negative(x)}


def tour_models(profile: str | Mapping[str, Any], dataset: str, seed: int,
                panels: Sequence[str] = tuple(ABLATION_PANELS), **overrides: Any) -> dict[str, Any]:
    """Unfitted detectors of the ablation panels (title -> detector) with the profile's settings.

    ``overrides`` (e.g. ``steps=30``) apply to every model.
    """
    from ..methods import make_detector

    out = {}
    for pid in panels:
        m = ABLATION_PANELS[pid]
        kw = detector_kwargs(profile, m.method, preset=preset_for(dataset), **{**m.overrides, **overrides})
        out[m.title] = make_detector(m.method, seed=seed, **kw)
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def feature_effects(detector: Any, task: FewShotTask, seed: int = 0, n_negative: int = 4) -> dict[str, Any]:
    """What a fitted detector's features look like on ``task`` (see the module docstring).

    Returns:
        dict with ``shot_cosine`` ((k, k) cosine similarities of the shots' features),
        ``shot_cosine_offdiag`` (their mean off the diagonal), ``normal_spread`` and
        ``anomaly_distance`` (mean cosine distance 1 - cos of normal / anomalous test features to
        the normal test features' mean direction), ``negative_cosine`` (mean cos(f(X), f(t_n(X)))
        over ``n_negative`` draws of t_n per shot), ``scores`` (M,) and ``auroc`` (%).
    """
    from ..images import images_to_tensor
    from ..metrics import auroc

    labels = np.asarray(task.test_labels)
    shots = _unit(detector.embed(task.train))
    test = _unit(detector.embed(task.test))
    centre = _unit(test[labels == 0].mean(0, keepdims=True))[0]
    dist = 1.0 - test @ centre
    x = images_to_tensor(task.train, detector.image_size)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        negs = torch.cat([detector.augment.negative(x) for _ in range(n_negative)])
    neg = _unit(detector.embed(negs))
    neg_cos = float(np.mean(np.sum(np.tile(shots, (n_negative, 1)) * neg, axis=1)))
    cos = shots @ shots.T
    k = len(cos)
    scores = detector.score_samples(task.test)
    return {
        "shot_cosine": cos,
        "shot_cosine_offdiag": float((cos.sum() - np.trace(cos)) / max(k * (k - 1), 1)),
        "normal_spread": float(dist[labels == 0].mean()),
        "anomaly_distance": float(dist[labels == 1].mean()),
        "negative_cosine": neg_cos,
        "scores": scores,
        "auroc": 100.0 * auroc(scores, labels),
    }


def effects_table(effects: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per model with the scalar measures of :func:`feature_effects`."""
    cols = ["shot_cosine_offdiag", "normal_spread", "anomaly_distance", "negative_cosine", "auroc"]
    return pd.DataFrame([{"model": name, **{c: e[c] for c in cols}} for name, e in effects.items()]).set_index("model")


def fit_and_measure(models: Mapping[str, Any], task: FewShotTask, seed: int = 0,
                    cache_dir: str | os.PathLike | None = None) -> dict[str, dict[str, Any]]:
    """Fit every model on ``task.train``; :func:`feature_effects` per model plus its ``history``.

    With ``cache_dir`` each model's measures are kept (JSON, via :func:`cached`) under a key of its
    full configuration, the task's item ids, the seed and the library version, so rerunning the
    tour does not train again.
    """
    out = {}
    for name, det in models.items():
        def work(det: Any = det) -> dict[str, Any]:
            det.fit(task.train)
            eff = {**feature_effects(det, task, seed), "history": list(getattr(det, "history", []))}
            return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in eff.items()}

        if cache_dir is None:
            eff = work()
        else:
            config = dataclasses.asdict(det.config) if dataclasses.is_dataclass(getattr(det, "config", None)) else {}
            key = {"detector": type(det).__name__, "config": config, "dataset": task.dataset, "task": task.name,
                   "train_ids": [str(i) for i in task.train_ids], "test_ids": [str(i) for i in task.test_ids],
                   "seed": seed, "coftad_lib": library_version()}
            eff = cached("tour", key, work, cache_dir)
        out[name] = {**eff, "shot_cosine": np.asarray(eff["shot_cosine"]), "scores": np.asarray(eff["scores"])}
    return out

