"""Anomaly scoring functions compared in Table VIII (Sec. V-D), on one fitted feature extractor.

A :class:`Scorer` is fitted on features of normal data and scores test features, higher = more
anomalous. Pooled scorers take (N, D) image features; ``"patchcore"`` takes (N, P, C) patch
features from :func:`~coftad_lib.methods.patch_bank.patch_features`. :func:`score_with` computes a fitted detector's features
once and runs several scorers on them, which is how Table VIII's row for one model is made.

- ``"gaussian"``: Mahalanobis distance to a Gaussian (Eqs. 7-8), :class:`GaussianDensity`.
- ``"knn"`` [53]: mean Euclidean distance to the k nearest training features.
- ``"iforest"``: scikit-learn's Isolation Forest on the features.
- ``"dif"`` [54]: Deep Isolation Forest (PyOD's ``DIF``).
- ``"patchcore"`` [8]: largest nearest-neighbour distance of a test patch to the memory bank.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from ..density import GaussianDensity
from ..detector import seeded
from ..errors import COFTADInputError
from ..images import Images, images_to_tensor
from .patch_bank import PatchCoreScorer, patch_features
from .scorer_base import FeatureArray, Scorer, _as_matrix, _l2n, _numpy_seeded

SCORERS = ("gaussian", "knn", "iforest", "dif", "patchcore")
PATCH_SCORERS = ("patchcore",)


class GaussianScorer(Scorer):
    """Eqs. 7-8: Gaussian on (L2-normalised) features, score = Mahalanobis distance."""

    name = "gaussian"

    def __init__(self, l2_normalize: bool = True, eps: float = 1e-3) -> None:
        self.density = GaussianDensity(l2_normalize=l2_normalize, eps=eps)

    def fit(self, train_feats: FeatureArray) -> GaussianScorer:
        self.density.fit(torch.from_numpy(_as_matrix(train_feats, "gaussian scorer: train_feats", 2)))
        return self

    def score(self, test_feats: FeatureArray) -> np.ndarray:
        x = torch.from_numpy(_as_matrix(test_feats, "gaussian scorer: test_feats"))
        return self.density.score(x).cpu().numpy()


class KNNScorer(Scorer):
    """kNN distance [53]: mean Euclidean distance to the k nearest training features.

    Args:
        k: neighbours; ``None`` = min(5, N - 1) (5 is a common kNN-AD choice; N - 1 keeps it
            meaningful with very few training vectors), at least 1.
        l2_normalize: compare L2-normalised features, as the Gaussian does (Sec. III-D).
    """

    name = "knn"

    def __init__(self, k: int | None = None, l2_normalize: bool = True) -> None:
        if k is not None and k < 1:
            raise COFTADInputError(f"knn scorer: k={k}; must be >= 1")
        self.k, self.l2_normalize = k, l2_normalize
        self.nn: Any = None

    def fit(self, train_feats: FeatureArray) -> KNNScorer:
        from sklearn.neighbors import NearestNeighbors

        x = _as_matrix(train_feats, "knn scorer: train_feats")
        k = self.k if self.k is not None else max(1, min(5, len(x) - 1))
        if k > len(x):
            raise COFTADInputError(f"knn scorer: k={k} but only {len(x)} training features")
        self.k_ = k
        self.nn = NearestNeighbors(n_neighbors=k).fit(_l2n(x) if self.l2_normalize else x)
        return self

    def score(self, test_feats: FeatureArray) -> np.ndarray:
        if self.nn is None:
            raise RuntimeError("KNNScorer.score called before fit")
        x = _as_matrix(test_feats, "knn scorer: test_feats")
        dist, _ = self.nn.kneighbors(_l2n(x) if self.l2_normalize else x)
        return dist.mean(1).astype(np.float64)


class IForestScorer(Scorer):
    """Isolation Forest (scikit-learn); score = -score_samples (higher = more anomalous).

    Args:
        n_estimators: trees (scikit-learn's default 100).
        seed: ``random_state`` of the forest.
        l2_normalize: L2-normalise features first, as for the Gaussian.
    """

    name = "iforest"

    def __init__(self, n_estimators: int = 100, seed: int = 0, l2_normalize: bool = True) -> None:
        self.n_estimators, self.seed, self.l2_normalize = n_estimators, seed, l2_normalize
        self.forest: Any = None

    def fit(self, train_feats: FeatureArray) -> IForestScorer:
        from sklearn.ensemble import IsolationForest

        x = _as_matrix(train_feats, "iforest scorer: train_feats", 2)
        self.forest = IsolationForest(n_estimators=self.n_estimators, random_state=self.seed)
        self.forest.fit(_l2n(x) if self.l2_normalize else x)
        return self

    def score(self, test_feats: FeatureArray) -> np.ndarray:
        if self.forest is None:
            raise RuntimeError("IForestScorer.score called before fit")
        x = _as_matrix(test_feats, "iforest scorer: test_feats")
        return -self.forest.score_samples(_l2n(x) if self.l2_normalize else x).astype(np.float64)


class DIFScorer(Scorer):
    """Deep Isolation Forest [54] via ``pyod.models.dif.DIF``.

    Defaults are [54]'s (50 random MLP representations of dim 20 with hidden sizes (500, 100),
    6 trees each, 256 samples per tree capped at N). It runs on the CPU: the inputs are a few
    hundred vectors, and the CPU makes it reproducible. PyOD's DIF seeds torch and numpy's
    *global* RNGs; we run it inside forked RNGs so callers' random streams are untouched.

    Args:
        n_ensemble, n_estimators, representation_dim, hidden_neurons, max_samples, batch_size:
            PyOD's ``DIF`` arguments.
        seed: ``random_state``.
        l2_normalize: L2-normalise features first (PyOD then min-max scales them).
        standardize: how each random representation is standardised before its forests.
            PyOD's ``decision_function`` refits the standardisation on the batch being scored
            ("batch"), so a test image's score depends on the rest of the test set; with half the
            test set anomalous this moved the anomalies' cluster to the centre and gave AUROC 0.31
            on two well-separated clouds (tests/test_methods_registry_scorers.py). "train"
            (default, our choice) standardises with the statistics of the training
            representations, exactly those the forests were fitted on, and scores each image on
            its own; the isolation score itself is PyOD's.
    """

    name = "dif"

    def __init__(self, n_ensemble: int = 50, n_estimators: int = 6, representation_dim: int = 20,
                 hidden_neurons: Sequence[int] = (500, 100), max_samples: int = 256,
                 batch_size: int = 1000, seed: int = 0, l2_normalize: bool = True,
                 standardize: str = "train") -> None:
        if standardize not in ("train", "batch"):
            raise COFTADInputError(f"dif scorer: standardize={standardize!r}; choose 'train' or 'batch'")
        self.standardize = standardize
        self.n_ensemble, self.n_estimators = n_ensemble, n_estimators
        self.representation_dim, self.hidden_neurons = representation_dim, list(hidden_neurons)
        self.max_samples, self.batch_size = max_samples, batch_size
        self.seed, self.l2_normalize = seed, l2_normalize
        self.model: Any = None
        self.scalers: list[Any] = []

    @contextlib.contextmanager
    def _isolated_rng(self) -> Iterator[None]:
        with torch.random.fork_rng(devices=[]), _numpy_seeded(self.seed):
            torch.manual_seed(self.seed)
            yield

    def fit(self, train_feats: FeatureArray) -> DIFScorer:
        from pyod.models.dif import DIF
        from sklearn.preprocessing import StandardScaler

        x = _as_matrix(train_feats, "dif scorer: train_feats", 2)
        with self._isolated_rng():
            self.model = DIF(
                batch_size=self.batch_size, representation_dim=self.representation_dim,
                hidden_neurons=self.hidden_neurons, n_ensemble=self.n_ensemble,
                n_estimators=self.n_estimators, max_samples=min(self.max_samples, len(x)),
                random_state=self.seed, device=torch.device("cpu"),
            )
            x = _l2n(x) if self.l2_normalize else x
            self.model.fit(x)
            # The statistics PyOD standardised the training representations with, kept for scoring.
            self.scalers = [StandardScaler().fit(r) for r in self._raw_representations(x)]
        return self

    @torch.no_grad()
    def _raw_representations(self, x: np.ndarray) -> list[np.ndarray]:
        """(N, D) -> per ensemble member the (N, representation_dim) random-network outputs."""
        t = torch.from_numpy(self.model.minmax_scaler.transform(x)).float()
        return [net(t).double().numpy() for net in self.model.net_lst]

    def score(self, test_feats: FeatureArray) -> np.ndarray:
        if self.model is None:
            raise RuntimeError("DIFScorer.score called before fit")
        x = _as_matrix(test_feats, "dif scorer: test_feats", 2 if self.standardize == "batch" else 1)
        x = _l2n(x) if self.l2_normalize else x
        with self._isolated_rng():
            if self.standardize == "batch":
                return np.asarray(self.model.decision_function(x), dtype=np.float64)
            from pyod.models.dif import _cal_score

            reps = self._raw_representations(x)
            scores = [_cal_score(np.tanh(sc.transform(r)), forest)
                      for r, sc, forest in zip(reps, self.scalers, self.model.iForest_lst, strict=True)]
            return np.mean(scores, axis=0).astype(np.float64)


_SCORER_CLASSES: dict[str, type[Scorer]] = {
    "gaussian": GaussianScorer, "knn": KNNScorer, "iforest": IForestScorer, "dif": DIFScorer,
    "patchcore": PatchCoreScorer,
}


def make_scorer(name: str, **kwargs: Any) -> Scorer:
    """Build a scorer by name (one of :data:`SCORERS`) with its keyword arguments."""
    if name not in _SCORER_CLASSES:
        raise COFTADInputError(f"scorer={name!r} is not known; choose one of {', '.join(SCORERS)}")
    cls = _SCORER_CLASSES[name]
    allowed = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = set(kwargs) - allowed
    if unknown:
        raise COFTADInputError(f"scorer {name!r}: unknown argument(s) {sorted(unknown)}; it takes {sorted(allowed)}")
    return cls(**kwargs)


def _scorer_kwargs(name: str, seed: int, device: torch.device, given: dict[str, Any]) -> dict[str, Any]:
    """Defaults that follow the feature detector (seed, device), overridden by ``given``."""
    params = inspect.signature(_SCORER_CLASSES[name].__init__).parameters
    kw: dict[str, Any] = {}
    if "seed" in params:
        kw["seed"] = seed
    if "device" in params:
        kw["device"] = device
    return kw | given


def score_with(feature_detector: Any, scorers: str | Sequence[str], train_images: Images,
               test_images: Images, scorer_kwargs: dict[str, dict[str, Any]] | None = None,
               patch_batch_size: int = 32) -> dict[str, np.ndarray]:
    """Score test images with several scoring functions on one fitted extractor (Table VIII).

    Pooled scorers are fitted on the same training features the Gaussian of Eq. 7 uses:
    D_TA = ``feature_detector.n_aug`` positively augmented copies of the shots (drawn with
    ``feature_detector.seed``; the draws differ from the ones made inside ``fit``, so the
    "gaussian" column can differ slightly from ``feature_detector.score_samples``), and score
    ``feature_detector.embed(test_images)``. Features are computed once and shared.

    ``"patchcore"`` builds its bank from :func:`patch_features` of ``feature_detector.scoring_net``
    on the un-augmented shots (PatchCore [8] does not augment) and scores test images batch by
    batch, so no (M, P, C) array is held at once.

    Args:
        feature_detector: a fitted detector with ``embed``, ``augment.positive``, ``n_aug``,
            ``image_size``, ``seed``, ``device`` and (for patchcore) ``scoring_net``:
            :class:`~coftad_lib.coftad.COFTAD`, :class:`~coftad_lib.coftad.PretrainedDetector`,
            :class:`~coftad_lib.methods.cutpaste.CutPasteDetector`.
        scorers: one name or a list of names from :data:`SCORERS`.
        train_images: the k normal shots the detector was fitted on.
        test_images: M test images.
        scorer_kwargs: per-scorer keyword arguments, e.g. ``{"knn": {"k": 3}}``.
        patch_batch_size: test images per PatchCore batch.

    Returns:
        name -> (M,) float64 scores, higher = more anomalous, in the order given.
    """
    names = [scorers] if isinstance(scorers, str) else list(scorers)
    if not names:
        raise COFTADInputError("score_with: scorers is empty; give at least one of " + ", ".join(SCORERS))
    for n in names:
        if n not in _SCORER_CLASSES:
            raise COFTADInputError(f"score_with: scorer {n!r} is not known; choose from {', '.join(SCORERS)}")
    given = scorer_kwargs or {}
    for n in given:
        if n not in names:
            raise COFTADInputError(f"score_with: scorer_kwargs has {n!r}, which is not among the scorers {names}")
    net = getattr(feature_detector, "scoring_net", None)
    if net is None:
        raise COFTADInputError(f"score_with: {type(feature_detector).__name__} is not fitted (no scoring_net); call fit() first")
    seed, device, size = feature_detector.seed, feature_detector.device, feature_detector.image_size
    shots = images_to_tensor(train_images, size).to(device)
    out: dict[str, np.ndarray] = {}

    pooled = [n for n in names if n not in PATCH_SCORERS]
    if pooled:
        if len(shots) * feature_detector.n_aug < 2:
            raise COFTADInputError(f"score_with: {len(shots)} shot(s) x n_aug={feature_detector.n_aug} < 2 training features")
        with seeded(seed, device), torch.no_grad():
            copies = torch.cat([feature_detector.augment.positive(shots) for _ in range(feature_detector.n_aug)])
        train_feats = feature_detector.embed(copies)
        test_feats = feature_detector.embed(test_images)
        for n in pooled:
            scorer = make_scorer(n, **_scorer_kwargs(n, seed, device, given.get(n, {})))
            out[n] = scorer.fit(train_feats).score(test_feats)

    for n in [n for n in names if n in PATCH_SCORERS]:
        scorer = make_scorer(n, **_scorer_kwargs(n, seed, device, given.get(n, {})))
        scorer.fit(patch_features(net, shots))
        test = images_to_tensor(test_images, size)
        out[n] = np.concatenate([
            scorer.score(patch_features(net, test[i : i + patch_batch_size]))
            for i in range(0, len(test), patch_batch_size)
        ])
    return {n: out[n] for n in names}
