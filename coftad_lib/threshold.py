"""A decision threshold from a few normal shots, for ``Detector.predict`` (beyond the paper).

:func:`fit_threshold` chooses the score above which an image is flagged, for a requested
false-positive rate (FPR) on normal images, and stores it on the detector
(``detector.threshold``, ``detector.threshold_info``); ``detector.predict(images)`` then returns 0/1.

Why not the shots' own scores: a model scores the images it was fitted on too low (its Gaussian
or memory bank contains them; PatchCore gives a shot distance 0 to itself), so a quantile of
those scores flags far more fresh normal images than asked. Instead (``mode``):

- ``"loo"``: leave one shot out. Shot i is scored by a model whose density / memory bank
  excludes shot i: Gaussian-scored detectors (COFT-AD, pretrained, random, CutPaste) refit the
  Gaussian of Eq. 7 on the other shots' N_A augmented features; PatchCore drops shot i's patches
  from the bank. Only the last stage is left out: a fine-tuned backbone (COFT-AD, CutPaste) has
  still seen shot i, so its LOO scores can stay a little low. A model of k - 1 shots is slightly
  weaker than one of k, which errs the other way (a slightly higher threshold).
- ``"augmented"``: score ``n_copies`` fresh augmented copies of each shot with the fitted model.
  In-sample, so optimistic (too many false positives); the fallback for methods without a cheap
  LOO (AE, VAE, DeepSVDD, RotNet, CSI, CFLOW-AD). ``threshold_info["mode"]`` says it was used.
- ``"refit"``: honest LOO for any method by refitting the whole detector k times (k x fit time).
- ``"holdout"``: ``images`` are normal images *not* used for fitting; their scores are used as is.
- ``"auto"`` (default): ``"loo"`` where it is cheap, else ``"augmented"`` (also with one shot).

Resolution: k shots give k honest scores, so the empirical quantile moves in steps of 1/k (with
5 shots nothing between FPR 0 and 0.2 can be told apart). In ``"loo"``/``"refit"`` each held-out
shot also contributes ``n_copies`` augmented copies of itself (default: the detector's n_aug),
scored by the same held-out model, to fill the steps between the real shots (copies of one shot
are correlated: they smooth the quantile, they do not add information about unseen normal
variation). For PatchCore (no augmentation in its bank by default) no copies are scored. The threshold is the
split-conformal order statistic: the r-th smallest of the n scores, r = ceil((n + 1)(1 - fpr)),
which for exchangeable scores gives P(fresh normal score > threshold) <= fpr. When r > n there are
too few scores for the requested rate and the largest score is used (``resolution_limited``).
"""

from __future__ import annotations

import copy
import math
import warnings
from typing import Any

import numpy as np
import torch

from .density import GaussianDensity
from .detector import Detector, seeded
from .errors import COFTADInputError
from .images import Images, images_to_tensor

MODES = ("auto", "loo", "augmented", "refit", "holdout")


def supports_loo(detector: Detector) -> bool:
    """Whether ``detector`` has a cheap leave-one-shot-out score (Gaussian-scored or PatchCore)."""
    if hasattr(detector, "leave_one_out_scores"):
        return True
    return isinstance(getattr(detector, "density", None), GaussianDensity) and hasattr(detector, "embed")


def _default_copies(detector: Detector, mode: str = "loo") -> int:
    """Copies scored per shot: the detector's own n_aug, as its model of normality treats those
    augmentations as normal (Gaussian detectors fit on N_A copies; PatchCore's bank holds n_aug
    copies, 0 by default, and scoring rotated or shifted copies against a bank without any set
    every texture threshold far too high). ``"augmented"`` needs some: 10 when n_aug is 0."""
    n_aug = getattr(detector, "n_aug", 0)
    n = int(n_aug) if isinstance(n_aug, int) and n_aug >= 0 else 0
    return max(n, 10) if mode == "augmented" and n < 1 else n


def _shots(detector: Detector, images: Images) -> torch.Tensor:
    return images_to_tensor(images, detector.image_size).to(detector.device)


@torch.no_grad()
def _copies(detector: Detector, shots: torch.Tensor, n_copies: int) -> torch.Tensor:
    """(k, 3, S, S) -> (k, 1 + n_copies, 3, S, S): each shot and its augmented copies (seeded)."""
    with seeded(detector.seed, detector.device):
        views = [shots] + [detector.augment.positive(shots) for _ in range(n_copies)]
    return torch.stack(views, dim=1)


def gaussian_loo_scores(detector: Detector, images: Images, n_copies: int) -> np.ndarray:
    """LOO for Gaussian-scored detectors: (k * (1 + n_copies),) scores, shot-major.

    Fold i fits a new :class:`GaussianDensity` (the detector's l2_normalize, eps) on the augmented
    copies of the other k - 1 shots (``detector.n_aug`` each, Eq. 7) and scores shot i and
    ``n_copies`` augmented copies of it (Eq. 8).
    """
    shots = _shots(detector, images)
    k = len(shots)
    n_fit = max(_default_copies(detector), n_copies, 1)
    views = _copies(detector, shots, n_fit)  # (k, 1 + n_fit, 3, S, S)
    feats = torch.from_numpy(detector.embed(views.flatten(0, 1))).view(k, 1 + n_fit, -1)
    if (k - 1) * n_fit < 2:
        raise COFTADInputError(f"threshold: leave-one-out needs >= 2 features from the other shots; got {k} shot(s) "
                               f"x {n_fit} copies")
    out = []
    for i in range(k):
        train = torch.cat([feats[:i, 1:], feats[i + 1 :, 1:]]).flatten(0, 1)
        dens = GaussianDensity(l2_normalize=detector.density.l2_normalize, eps=detector.density.eps).fit(train)
        out.append(dens.score(feats[i, : 1 + n_copies]).cpu().numpy())
    return np.concatenate(out)


def augmented_scores(detector: Detector, images: Images, n_copies: int) -> np.ndarray:
    """In-sample scores of ``n_copies`` augmented copies of every shot: (k * n_copies,)."""
    if n_copies < 1:
        raise COFTADInputError(f"threshold: mode='augmented' needs n_copies >= 1, got {n_copies}")
    views = _copies(detector, _shots(detector, images), n_copies)[:, 1:]
    return np.asarray(detector.score_samples(views.flatten(0, 1).cpu()), dtype=np.float64)


def refit_loo_scores(detector: Detector, images: Images, n_copies: int) -> np.ndarray:
    """LOO by refitting a copy of the detector on k - 1 shots, k times: (k * (1 + n_copies),)."""
    shots = _shots(detector, images).cpu()
    if len(shots) < 2:
        raise COFTADInputError("threshold: mode='refit' needs at least 2 shots")
    views = _copies(detector, shots.to(detector.device), n_copies).cpu()
    out = []
    for i in range(len(shots)):
        fold = copy.deepcopy(detector)
        fold.progress = False
        fold.fit(torch.cat([shots[:i], shots[i + 1 :]]))
        out.append(np.asarray(fold.score_samples(views[i]), dtype=np.float64))
    return np.concatenate(out)


def normal_scores(detector: Detector, images: Images, mode: str = "auto",
                  n_copies: int | None = None) -> tuple[np.ndarray, str]:
    """Scores of normal images for threshold estimation, and the mode actually used (see module)."""
    if mode not in MODES:
        raise COFTADInputError(f"threshold: mode={mode!r}; choose one of {', '.join(MODES)}")
    k = len(images)
    if mode == "auto":
        # One shot leaves nothing to fit a held-out model on: score its augmented copies instead.
        mode = "loo" if supports_loo(detector) and k >= 2 else "augmented"
    if mode in ("loo", "refit") and k < 2:
        raise COFTADInputError(f"threshold: mode={mode!r} needs at least 2 shots, got {k}; use mode='augmented' "
                               "(in-sample, optimistic) or mode='holdout' with other normal images")
    n = _default_copies(detector, mode) if n_copies is None else n_copies
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise COFTADInputError(f"threshold: n_copies={n_copies!r}; expected an int >= 0")
    if mode == "holdout":
        return np.asarray(detector.score_samples(images), dtype=np.float64), mode
    if mode == "augmented":
        return augmented_scores(detector, images, n), mode
    if mode == "refit":
        return refit_loo_scores(detector, images, n), mode
    if not supports_loo(detector):
        raise COFTADInputError(f"threshold: {type(detector).__name__} has no cheap leave-one-out; use mode='refit' or 'augmented'")
    if hasattr(detector, "leave_one_out_scores"):
        return np.asarray(detector.leave_one_out_scores(images, n_copies=n), dtype=np.float64), mode
    return gaussian_loo_scores(detector, images, n), mode


def conformal_threshold(scores: np.ndarray, fpr: float) -> tuple[float, bool]:
    """The r-th smallest score, r = ceil((n + 1)(1 - fpr)); (threshold, resolution_limited).

    For n scores exchangeable with a fresh normal score s, P(s > threshold) <= fpr. If r > n the
    largest score is returned and ``resolution_limited`` is True (the rate cannot be promised).
    """
    s = np.sort(np.asarray(scores, dtype=np.float64))
    if s.ndim != 1 or len(s) == 0 or not np.isfinite(s).all():
        raise COFTADInputError(f"threshold: need a non-empty vector of finite scores, got shape {s.shape}")
    r = math.ceil((len(s) + 1) * (1 - fpr) - 1e-9)
    return float(s[min(max(r, 1), len(s)) - 1]), r > len(s)


def fit_threshold(detector: Detector, images: Images, fpr: float = 0.05, mode: str = "auto",
                  n_copies: int | None = None) -> float:
    """Choose and store ``detector.threshold`` for false-positive rate ``fpr`` on normal images.

    Args:
        detector: a fitted detector (any registry method).
        images: the k shots the detector was fitted on (same order), or for ``mode="holdout"``
            normal images not used in fitting.
        fpr: requested false-positive rate on normal images, in (0, 1).
        mode: "auto", "loo", "augmented", "refit" or "holdout" (module docstring).
        n_copies: augmented copies per shot also scored (default: the detector's n_aug; 10 for
            ``"augmented"`` when that is 0).

    Returns:
        The threshold; ``detector.predict(x)`` flags scores strictly above it.
        ``detector.threshold_info``: fpr, mode, n_scores, n_copies, resolution_limited.
    """
    if isinstance(fpr, bool) or not isinstance(fpr, (int, float)) or not 0 < fpr < 1:
        raise COFTADInputError(f"threshold: fpr={fpr!r}; expected a number in (0, 1), e.g. 0.05")
    scores, used = normal_scores(detector, images, mode, n_copies)
    thr, limited = conformal_threshold(scores, float(fpr))
    n = _default_copies(detector, used) if n_copies is None else n_copies
    info: dict[str, Any] = {"fpr": float(fpr), "mode": used, "n_scores": int(len(scores)),
                            "n_copies": 0 if used == "holdout" else int(n), "resolution_limited": limited}
    if limited:
        warnings.warn(f"threshold: {len(scores)} normal scores cannot resolve fpr={fpr}; using the largest "
                      f"score (raise n_copies or fpr)", stacklevel=2)
    if used == "augmented":
        warnings.warn(f"threshold: {type(detector).__name__} has no leave-one-out; scored augmented copies of "
                      "its own shots, which tends to set the threshold too low (mode='refit' is honest)", stacklevel=2)
    detector.threshold, detector.threshold_info = thr, info
    return thr
