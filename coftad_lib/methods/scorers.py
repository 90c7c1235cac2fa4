"""Anomaly scoring functions compared in Table VIII (Sec. V-D), on one fitted feature extractor.

A :class:`Scorer` is fitted on features of normal data and scores test features, higher = more
anomalous. Pooled scorers take (N, D) image features; ``"patchcore"`` takes (N, P, C) patch
features from :func:`patch_features`. :func:`score_with` computes a fitted detector's features
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
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..backbones import Backbone
from ..density import GaussianDensity
from ..detector import seeded
from ..device import memory_format
from ..errors import COFTADInputError
from ..images import Images, images_to_tensor

SCORERS = ("gaussian", "knn", "iforest", "dif", "patchcore")
PATCH_SCORERS = ("patchcore",)

FeatureArray = np.ndarray | torch.Tensor


def _as_matrix(feats: FeatureArray, what: str, min_rows: int = 1) -> np.ndarray:
    """(N, D) array or tensor -> float64 numpy, with a clear error on a wrong shape or NaN."""
    x = feats.detach().cpu().double().numpy() if isinstance(feats, torch.Tensor) else np.asarray(feats, dtype=np.float64)
    if x.ndim != 2:
        raise COFTADInputError(f"{what}: expected an (N, D) feature matrix, got shape {x.shape}")
    if len(x) < min_rows:
        raise COFTADInputError(f"{what}: needs at least {min_rows} feature vector(s), got {len(x)}")
    if not np.isfinite(x).all():
        raise COFTADInputError(f"{what}: features contain NaN or infinity")
    return x


def _l2n(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@contextlib.contextmanager
def _numpy_seeded(seed: int) -> Iterator[None]:
    """Seed numpy's global RNG for a block and restore the caller's state afterwards.

    PyOD's DIF and FrEIA's coupling blocks draw from ``np.random`` directly; this keeps them
    reproducible without changing the RNG stream of the caller.
    """
    state = np.random.get_state()
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        np.random.set_state(state)


class Scorer(ABC):
    """Fit on normal features, score test features (higher = more anomalous)."""

    name: str = ""

    @abstractmethod
    def fit(self, train_feats: FeatureArray) -> Scorer:
        """Fit on (N, D) normal features (patch scorers: (N, P, C)); returns self."""

    @abstractmethod
    def score(self, test_feats: FeatureArray) -> np.ndarray:
        """(M, D) test features (patch scorers: (M, P, C)) -> (M,) float64 anomaly scores."""


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


# -- PatchCore ---------------------------------------------------------------------------------


@torch.no_grad()
def patch_features(backbone: Backbone, images: torch.Tensor, *, pool: int = 3,
                   batch_size: int = 64, count_include_pad: bool = True) -> torch.Tensor:
    """Locally aware patch features of PatchCore [8] (Sec. 3.1 there): (N, 3, S, S) -> (N, P, C).

    The two mid-level maps (strides 8 and 16, ``backbone.feature_maps``) are each averaged over
    a ``pool x pool`` neighbourhood (PatchCore's local aggregation, p = 3), the stride-16 map is
    bilinearly upsampled to the stride-8 grid, and both are concatenated along channels:
    P = (S/8)^2 patches of C = sum(backbone.map_channels) channels.

    ``count_include_pad=True`` (default) averages border neighbourhoods over the zero padding too,
    as [8]'s code (zero-padded unfold) and anomalib (``AvgPool2d(3, 1, 1)``) do; it shrinks border
    patches and so their distances. ``False`` (this project's earlier default) averages only the
    4 or 6 pixels inside the map there: on Flowers17 Daffodil/Tulip at 224 px the highest patch of
    97-99 % of normal test images then lay on the border ring and AUROC was 61.0 / 61.3 instead of
    64.6 / 68.9 (5 / 10 shots, 3 seeds); MVTec bottle, whose border is plain background, was
    unaffected (benchmarks/results/patchcore_check.md).

    The maps are computed in float32 even under autocast: nearest-neighbour distances between
    near-identical normal patches are small differences of large vectors, which bf16 rounding
    (8-bit mantissa) would blur; the reference implementation is float32 too.
    The backbone is put in eval mode. Returns float32 on the backbone's device.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise COFTADInputError(f"patch_features: expected (N, 3, S, S) images, got shape {tuple(images.shape)}")
    if pool < 1 or pool % 2 == 0:
        raise COFTADInputError(f"patch_features: pool={pool}; must be an odd size >= 1")
    backbone.eval()
    device = next(backbone.parameters()).device
    out = []
    for i in range(0, len(images), batch_size):
        xb = images[i : i + batch_size].to(device, memory_format=memory_format(device))
        with torch.autocast(device.type, enabled=False):
            maps = backbone.feature_maps(xb.float())
        maps = [F.avg_pool2d(m.float(), pool, stride=1, padding=pool // 2, count_include_pad=count_include_pad)
                for m in maps]
        size = maps[0].shape[-2:]
        maps = [maps[0]] + [F.interpolate(m, size=size, mode="bilinear", align_corners=False) for m in maps[1:]]
        feats = torch.cat(maps, dim=1)
        out.append(feats.flatten(2).transpose(1, 2).contiguous())
    return torch.cat(out)


def _as_patches(feats: FeatureArray, what: str, device: torch.device) -> torch.Tensor:
    t = feats if isinstance(feats, torch.Tensor) else torch.from_numpy(np.asarray(feats))
    if t.ndim != 3:
        raise COFTADInputError(f"{what}: expected (N, P, C) patch features (see patch_features), got shape {tuple(t.shape)}")
    if len(t) == 0 or t.shape[1] == 0:
        raise COFTADInputError(f"{what}: no patch features (shape {tuple(t.shape)})")
    return t.detach().to(device, torch.float32)


def greedy_coreset(feats: torch.Tensor, n: int, proj_dim: int | None = 128, seed: int = 0) -> torch.Tensor:
    """Greedy k-center coreset of PatchCore [8] (Alg. 1): indices (n,) into (B, C) ``feats``.

    Distances are computed after a Gaussian random projection to ``proj_dim`` dimensions
    (Johnson-Lindenstrauss, as [8] does to make selection cheap); ``None`` uses the full features.
    The first centre is drawn with ``seed``.
    """
    b = len(feats)
    if n >= b:
        return torch.arange(b, device=feats.device)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    x = feats.float()
    if proj_dim is not None and proj_dim < x.shape[1]:
        proj = torch.randn(x.shape[1], proj_dim, generator=gen) / proj_dim**0.5
        x = x @ proj.to(x.device)
    first = int(torch.randint(b, (1,), generator=gen))
    chosen = torch.empty(n, dtype=torch.long, device=feats.device)
    chosen[0] = first
    min_d = torch.cdist(x, x[first : first + 1]).squeeze(1)
    # Greedy selection is sequential by nature: one vectorised distance update per chosen centre.
    for j in range(1, n):
        nxt = torch.argmax(min_d).view(1)  # stays on the device: no host sync per step
        chosen[j] = nxt[0]
        min_d = torch.minimum(min_d, torch.cdist(x, x.index_select(0, nxt)).squeeze(1))
    return chosen


class PatchCoreScorer(Scorer):
    """PatchCore [8]: memory bank of patch features; image score = max over patches of the
    distance to the nearest bank entry (Eq. 6 of [8] without its re-weighting term, which needs
    a bank large enough to have meaningful neighbourhoods; few-shot banks are not).

    Args:
        coreset_ratio: fraction of bank patches kept by greedy coreset subsampling. 1.0 (default)
            keeps all: a few-shot bank (k * (S/8)^2 patches) is small enough to search exhaustively,
            and subsampling only loses coverage there. [8] used 0.01-0.25 on full training sets.
        coreset_proj_dim: random-projection size used when choosing the coreset ([8]: 128).
        chunk_elems: bound on (test patches x bank) distances computed at once, which caps memory.
        device: where the bank lives and distances are computed.
        seed: first coreset centre and projection.
    """

    name = "patchcore"

    def __init__(self, coreset_ratio: float = 1.0, coreset_proj_dim: int | None = 128,
                 chunk_elems: int = 2**25, device: str | torch.device = "cpu", seed: int = 0) -> None:
        if not 0 < coreset_ratio <= 1:
            raise COFTADInputError(f"patchcore: coreset_ratio={coreset_ratio}; must be in (0, 1]")
        self.coreset_ratio, self.coreset_proj_dim = coreset_ratio, coreset_proj_dim
        self.chunk_elems, self.seed = chunk_elems, seed
        self.device = torch.device(device)
        self.bank: torch.Tensor | None = None  # (B, C) float32
        self.owner: torch.Tensor | None = None  # (B,) int64 source shot of each bank patch

    def fit(self, train_feats: FeatureArray, owners: torch.Tensor | None = None) -> PatchCoreScorer:
        """Build the memory bank from (N, P, C) normal patch features.

        ``owners`` (N,) optionally names the source shot of each of the N images (augmented copies
        share their shot's id); it is kept per bank patch so that :meth:`patch_distances` can leave
        one shot out (threshold estimation, :mod:`coftad_lib.threshold`). Default: image index.
        """
        t = _as_patches(train_feats, "patchcore scorer: train_feats", self.device)
        if owners is None:
            owners = torch.arange(len(t))
        if owners.shape != (len(t),):
            raise COFTADInputError(f"patchcore scorer: owners has shape {tuple(owners.shape)}, expected ({len(t)},)")
        bank = t.reshape(-1, t.shape[-1])
        owner = owners.to(self.device).repeat_interleave(t.shape[1])
        if self.coreset_ratio < 1:
            n = max(1, int(round(self.coreset_ratio * len(bank))))
            keep = greedy_coreset(bank, n, self.coreset_proj_dim, self.seed)
            bank, owner = bank[keep], owner[keep]
        self.bank, self.owner = bank.contiguous(), owner
        return self

    @torch.no_grad()
    def patch_distances(self, test_feats: FeatureArray, exclude: int | None = None) -> torch.Tensor:
        """(M, P, C) -> (M, P) L2 distance of every test patch to its nearest bank patch.

        ``exclude``: leave out the bank patches of that shot id (see :meth:`fit`'s ``owners``).
        """
        if self.bank is None:
            raise RuntimeError("PatchCoreScorer used before fit")
        t = _as_patches(test_feats, "patchcore scorer: test_feats", self.device)
        if t.shape[-1] != self.bank.shape[1]:
            raise COFTADInputError(f"patchcore scorer: test patches have {t.shape[-1]} channels, the bank {self.bank.shape[1]}")
        bank = self.bank if exclude is None else self.bank[self.owner != exclude]
        if len(bank) == 0:
            raise COFTADInputError(f"patchcore scorer: leaving out shot {exclude} empties the bank (one shot only?)")
        flat = t.reshape(-1, t.shape[-1])
        rows = max(1, self.chunk_elems // len(bank))
        with torch.autocast(self.device.type, enabled=False):  # callers may be under bf16 autocast
            nn_d = torch.cat([torch.cdist(flat[i : i + rows], bank).amin(1) for i in range(0, len(flat), rows)])
        return nn_d.view(t.shape[0], t.shape[1])

    def score(self, test_feats: FeatureArray) -> np.ndarray:
        return self.patch_distances(test_feats).amax(1).double().cpu().numpy()


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
