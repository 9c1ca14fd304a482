"""Fidelity metrics of an EEG -> W encoder: does the brain actually show in the paintings?

Three questions, each with a goal (see ``GOALS``), measured on recordings with annotated
states (held-out synthetic sessions from :func:`eeg.synthetic.make_raw`, or real ones):

- **responsiveness**: can the state be read back from the paintings? A linear probe (ridge
  classifier by default, or shrinkage LDA, which does not mask a state lying between the
  others: :func:`linear_probe`; closed form, regularisation chosen by inner cross-validation)
  on image features (each frame area-downsampled to 16 x 16 RGB, standardised) is
  cross-validated **by recording** (a recording's frames are never on both sides), on frames
  painted in a settled state. Goal: accuracy >= 0.9 with 4 states. Its **ceiling** is the
  same probe on the EEG feature rows behind the same frames (each recording standardised by
  its own baseline, followed by the same motion): what the features carry at this window and
  time constant. A painting can hardly carry more; the gap between the two is what the
  encoder and the generator lose (``benchmarks/feature_ceiling.py`` measures the ceiling
  alone for other windows and time constants). The probe learns from the other recordings
  only, so it needs several: with 2 training recordings a probe on the features themselves
  scored 0.73, with 7 0.81.
- **coverage**: do EEG-driven latents land where the generator's own live? Sliced
  Wasserstein distance (SWD) between encoded ``w`` (every layer's w, pooled, standardised by
  the random set's statistics) and mapping-network ``w`` of random ``z``; and the SWD between
  EEG-driven frames and random-latent images, compared as **whitened pixels** (area-
  downsampled to 8 x 8 RGB, then PCA-whitened with the statistics of a separate random set).
  Each is divided by the same distance between independent random-latent sets of the same
  size, so 1 means "as close as another random draw". Goal (images): ratio <= 1.2.
  Why not ProGAN's patch SWD (:func:`gan.metrics.sliced_wasserstein`)? Its ruler wobbles: on
  small frames its one pyramid level is the colour field, which moves little between the
  patches of one image, so it behaves like a distance in a few dimensions and its sampling
  noise does not average out. Six fresh random sets of 1024 frames from the bundled demo
  generator scored ratios from 0.83 to 1.92 on it (against 4 random sets); on whitened pixels,
  where every direction of variation counts the same, the same six scored 0.99 to 1.02.
  Hence 1024 frames against 4 random sets (:func:`coverage_from_sets`), whitened by a fifth.
  Frames of one session are correlated in time, so their effective sample size is smaller
  than their count: the ratio errs on the strict side.
- **smoothness**: does the painting hold still within a state and move when the state
  changes? Distances are RMS differences (pixels scaled to [0, 1]; the same on ``ws`` for the
  ``*_w`` figures). *within*: the mean change between consecutive frames in settled stretches
  of one state. *between*: for each state switch, the change from the last frame before the
  switch to the first settled frame after it (the change the switch causes). ratio =
  between / within, at 10 frames (updates) per second. Goal: >= 5.

A frame is *settled* once ``settle_s`` seconds (default: the feature window plus 3 motion
time constants, when 99 % of a step is covered) have passed since its state began. Frames of
the calibration period are left out everywhere.

:func:`evaluate_encoder` renders the recordings (through :mod:`conditioning.render`, exactly as
the live loop paints them) and computes all three; the functions below it also work on any
arrays, for tests and for other callers.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from conditioning.motion import MotionConfig
from conditioning.statemodel import lda_train as _lda_train
from conditioning.statemodel import standardiser as _standardiser
from eeg.features import FeatureFrame
from neuropaint.validate import NeuropaintError, check_int, check_option, check_positive

logger = logging.getLogger(__name__)

__all__ = ["GOALS", "PROBES", "coverage", "coverage_from_sets", "evaluate_encoder",
           "fit_test_probe", "image_features", "json_ready", "label_blocks", "linear_probe", "random_sets", "responsiveness",
           "sliced_wasserstein_vectors", "smoothness", "summary_line"]

GOALS = {
    "responsiveness": {"accuracy": 0.9, "compare": ">="},
    "coverage": {"image_ratio": 1.2, "compare": "<="},
    "smoothness": {"ratio": 5.0, "compare": ">="},
}
COVERAGE_PIXELS = 8  # Image coverage compares frames area-downsampled to 8 x 8 RGB.
RIDGE_ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)
LDA_SHRINKAGES = (0.001, 0.01, 0.05, 0.1, 0.3, 0.6, 0.9)


# --------------------------------------------------------------------------------------------
# Responsiveness: a linear probe on image features
# --------------------------------------------------------------------------------------------

def image_features(images: np.ndarray, size: int = 16) -> np.ndarray:
    """Area-downsampled RGB pixels: uint8 ``[N, H, W, 3]`` -> float32 ``[N, 3 * s * s]``.

    ``s`` is ``size`` or the image side when that is smaller. Values in [0, 1].
    """
    images = _check_frames(images, "images")
    size = check_int(size, "size", minimum=1)
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    side = min(size, images.shape[1], images.shape[2])
    x = F.adaptive_avg_pool2d(x, side)  # [N, 3, s, s]
    return x.reshape(len(images), -1).numpy()  # [N, 3*s*s]


def _group_folds(groups: np.ndarray, max_folds: int) -> list[np.ndarray]:
    """Test masks of folds that keep each group on one side (at most ``max_folds``)."""
    unique = np.unique(groups)
    k = min(max_folds, len(unique))
    return [np.isin(groups, unique[f::k]) for f in range(k)]


def _ridge_fit(x: np.ndarray, y: np.ndarray, alphas: Sequence[float]):
    """Ridge solutions for several alphas from one eigendecomposition; x, y centred."""
    n, d = x.shape
    if n < d:  # dual form: coef = x^T (x x^T + a I)^-1 y
        evals, evecs = np.linalg.eigh(x @ x.T)  # [n], [n, n]
        proj = evecs.T @ y  # [n, C]
        return [x.T @ (evecs @ (proj / (evals + a)[:, None])) for a in alphas]
    evals, evecs = np.linalg.eigh(x.T @ x)  # [d], [d, d]
    proj = evecs.T @ (x.T @ y)  # [d, C]
    return [evecs @ (proj / (evals + a)[:, None]) for a in alphas]


def _ridge_train(x: np.ndarray, labels: np.ndarray, n_classes: int,
                 alphas: Sequence[float]) -> list:
    """Standardise, one-hot (+1/-1) targets; one (mean, std, coef, bias) per alpha."""
    mean, std = _standardiser(x)
    z = (x - mean) / std
    y = -np.ones((len(x), n_classes))
    y[np.arange(len(x)), labels] = 1.0
    y_mean = y.mean(axis=0)
    return [(mean, std, coef, y_mean) for coef in _ridge_fit(z, y - y_mean, alphas)]


def _linear_predict(model, x: np.ndarray) -> np.ndarray:
    mean, std, coef, bias = model
    return np.argmax(((x - mean) / std) @ coef + bias, axis=1)


# How each probe fits, and the grid of its regularisation strength (chosen by inner CV).
PROBES = {"ridge": (_ridge_train, RIDGE_ALPHAS), "lda": (_lda_train, LDA_SHRINKAGES)}


def _recalls(y: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Recall of each class present in ``y`` (NaN for a class absent from it)."""
    return np.array([np.mean(predicted[y == k] == k) if np.any(y == k) else np.nan
                     for k in range(n_classes)])


def fit_test_probe(train_features: np.ndarray, train_labels: Sequence,
                   test_features: np.ndarray, test_labels: Sequence, *, method: str = "lda",
                   strength: float | None = None, train_groups: Sequence | None = None) -> dict:
    """A linear probe fitted on one set and tested on another (e.g. calibration vs
    performance, one session vs the next).

    ``strength`` (ridge alpha or LDA shrinkage) is chosen on ``train_groups`` by an inner
    split when None and there are 2 or more groups, else the middle of the method's grid.

    Returns
    -------
    dict
        ``balanced_accuracy`` (mean recall over the test set's classes), ``accuracy``,
        ``chance`` (the test set's majority share), ``per_class``, ``predictions`` (test
        labels predicted, in order), ``classes``, ``strength``, ``method``.
    """
    train_models, grid = PROBES[check_option(method, "method", PROBES)]
    x = np.asarray(train_features, dtype=np.float64)
    xt = np.asarray(test_features, dtype=np.float64)
    train_labels, test_labels = np.asarray(train_labels), np.asarray(test_labels)
    if x.ndim != 2 or xt.ndim != 2 or x.shape[1] != xt.shape[1] or len(x) != len(
            train_labels) or len(xt) != len(test_labels):
        raise NeuropaintError(f"train [N, F] / test [M, F] features and their labels must "
                              f"agree, got {x.shape}, {len(train_labels)}, {xt.shape}, "
                              f"{len(test_labels)}.")
    classes, y = np.unique(train_labels, return_inverse=True)
    if len(classes) < 2:
        raise NeuropaintError(f"a probe needs at least 2 states to train on, got "
                              f"{list(classes)}.")
    unknown = sorted(set(test_labels.tolist()) - set(classes.tolist()))
    if unknown:
        raise NeuropaintError(f"the test set has states the training set lacks: {unknown}.")
    yt = np.searchsorted(classes, test_labels)
    if strength is None:
        groups = (np.zeros(len(x)) if train_groups is None else np.asarray(train_groups))
        strength = _choose_strength(train_models, x, y, groups, len(classes), list(grid))
    model = train_models(x, y, len(classes), [strength])[0]
    predicted = _linear_predict(model, xt)
    recalls = _recalls(yt, predicted, len(classes))
    counts = np.bincount(yt, minlength=len(classes))
    return {
        "balanced_accuracy": float(np.nanmean(recalls)),
        "accuracy": float(np.mean(predicted == yt)),
        "chance": float(counts.max() / len(yt)),
        "per_class": {str(c): float(r) for c, r in zip(classes, recalls, strict=True)
                      if not np.isnan(r)},
        "predictions": [str(classes[k]) for k in predicted],
        "classes": [str(c) for c in classes],
        "strength": float(strength),
        "method": method,
    }


def label_blocks(labels: Sequence, groups: Sequence) -> np.ndarray:
    """Block number of each sample: a run of one label within one group (recording)."""
    labels, groups = np.asarray(labels), np.asarray(groups)
    change = np.ones(len(labels), dtype=bool)
    change[1:] = (labels[1:] != labels[:-1]) | (groups[1:] != groups[:-1])
    return np.cumsum(change) - 1


def linear_probe(features: np.ndarray, labels: Sequence, groups: Sequence, *,
                 method: str = "ridge", strengths: Sequence[float] | None = None,
                 max_folds: int = 5, permutations: int = 0, seed: int = 0) -> dict:
    """Cross-validated accuracy of a linear classifier, folds split by group (recording).

    ``method`` is ``'ridge'`` (regression onto +1/-1 class indicators, the fidelity figures'
    probe) or ``'lda'`` (linear discriminant analysis with a shrunk covariance). Both are
    linear in the features. Regression onto indicators can *mask* a class that lies between
    the others (Hastie, Tibshirani & Friedman, *The Elements of Statistical Learning*, 2nd
    ed., sec. 4.2): no indicator's fit is ever highest in the middle. LDA does not mask, so
    it tells whether a low recall of such a state is the probe's or the data's.

    The regularisation (ridge alpha, or LDA shrinkage towards the mean variance) is chosen
    from ``strengths`` (default: the method's grid in ``PROBES``) inside each training fold
    by a second split by group (when the training fold has 2 or more groups). With a single
    group the folds are contiguous blocks of frames instead (``cv='blocked'``), which leaks
    slow drifts: pass several recordings for an honest figure.

    Parameters
    ----------
    features : ndarray, shape (n_samples, n_features)
    labels : sequence, length n_samples
        Class of each sample (any hashable, e.g. state names).
    groups : sequence, length n_samples
        Recording of each sample.

    permutations : int
        With > 0, also the chance level of ``balanced_accuracy`` from that many
        block-preserving label permutations (each run of one label within a recording keeps
        one label; Ojala & Garriga 2010), with the regularisation fixed at the grid's middle.

    Returns
    -------
    dict
        ``accuracy``, ``balanced_accuracy`` (the mean recall: unbalanced states do not
        flatter it), ``chance`` (the majority class share), ``n_samples``, ``classes``,
        ``per_class`` (the share of each class's samples recognised, i.e. its recall),
        ``predictions`` (each sample's out-of-fold prediction), ``method``, ``folds``, ``cv``
        ('by_recording' or 'blocked'), ``per_fold``; with ``permutations``,
        ``permutation_chance`` (mean) and ``permutation_chance_p95``.
    """
    train_models, grid = PROBES[check_option(method, "method", PROBES)]
    strengths = list(grid if strengths is None else strengths)
    x = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    groups = np.asarray(groups)
    if x.ndim != 2 or len(x) != len(labels) or len(x) != len(groups):
        raise NeuropaintError(f"'features' [N, F], 'labels' [N] and 'groups' [N] must agree, "
                              f"got {x.shape}, {labels.shape} and {groups.shape}.")
    classes, y = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        raise NeuropaintError(f"a probe needs at least 2 states, got {list(classes)}: the "
                              f"recordings must hold annotated states that settle.")
    cv = "by_recording"
    if len(np.unique(groups)) < 2:
        logger.warning("one recording only: the probe is cross-validated over time blocks, "
                       "which flatters it; pass 2 or more recordings")
        groups = np.arange(len(x)) * max_folds // len(x)  # contiguous blocks
        cv = "blocked"
    correct = 0
    per_fold = []
    predicted = np.empty_like(y)
    for test in _group_folds(groups, max_folds):
        train = ~test
        strength = _choose_strength(train_models, x[train], y[train], groups[train],
                                    len(classes), strengths)
        model = train_models(x[train], y[train], len(classes), [strength])[0]
        predicted[test] = _linear_predict(model, x[test])
        hits = int((predicted[test] == y[test]).sum())
        correct += hits
        per_fold.append(hits / int(test.sum()))
    counts = np.bincount(y, minlength=len(classes))
    hits_per_class = np.bincount(y[predicted == y], minlength=len(classes))
    extra = {}
    if permutations > 0:
        blocks = label_blocks(y, groups)
        block_label = np.array([y[blocks == b][0] for b in range(blocks.max() + 1)])
        rng = np.random.default_rng(seed)
        middle = [strengths[len(strengths) // 2]]
        chance = []
        for _ in range(permutations):
            y_perm = rng.permutation(block_label)[blocks]
            guess = np.empty_like(y_perm)
            for test in _group_folds(groups, max_folds):
                model = train_models(x[~test], y_perm[~test], len(classes), middle)[0]
                guess[test] = _linear_predict(model, x[test])
            chance.append(float(np.nanmean(_recalls(y_perm, guess, len(classes)))))
        extra = {"permutation_chance": float(np.mean(chance)),
                 "permutation_chance_p95": float(np.percentile(chance, 95))}
    return {
        **extra,
        "balanced_accuracy": float(np.nanmean(_recalls(y, predicted, len(classes)))),
        "predictions": [str(classes[k]) for k in predicted],
        "accuracy": correct / len(x),
        "chance": float(counts.max() / len(x)),
        "n_samples": len(x),
        "classes": [str(c) for c in classes],
        "per_class": {str(c): float(hits_per_class[k] / counts[k])
                      for k, c in enumerate(classes)},
        "method": method,
        "folds": len(per_fold),
        "cv": cv,
        "per_fold": per_fold,
    }


def _choose_strength(train_models, x, y, groups, n_classes, strengths) -> float:
    if len(strengths) == 1 or len(np.unique(groups)) < 2:
        return strengths[len(strengths) // 2]
    hits = np.zeros(len(strengths))
    for test in _group_folds(groups, 3):
        models = train_models(x[~test], y[~test], n_classes, strengths)
        hits += [(_linear_predict(m, x[test]) == y[test]).sum() for m in models]
    return strengths[int(np.argmax(hits))]


def responsiveness(images: np.ndarray, states: Sequence[str], groups: Sequence, *,
                   size: int = 16, method: str = "ridge", max_folds: int = 5) -> dict:
    """Can a linear probe on the paintings recover the brain state?

    Parameters
    ----------
    images : ndarray of uint8, shape (n_frames, H, W, 3)
        Frames painted in settled states.
    states : sequence of str, length n_frames
        The annotated state of each frame.
    groups : sequence, length n_frames
        The recording of each frame: folds are split by it.
    size : int
        Side of the downsampled pixels the probe sees.
    method : str
        The linear probe, ``'ridge'`` or ``'lda'`` (see :func:`linear_probe`).

    Returns
    -------
    dict
        See :func:`linear_probe`; plus ``goal`` and ``passed``.
    """
    result = linear_probe(image_features(images, size), states, groups, method=method,
                          max_folds=max_folds)
    goal = GOALS["responsiveness"]["accuracy"]
    result.update(goal=goal, passed=bool(result["accuracy"] >= goal))
    return result


def smoothed_features(features: np.ndarray, times: np.ndarray,
                      motion: MotionConfig) -> np.ndarray:
    """One recording's feature rows per frame, standardised by the recording's own
    baseline and followed by the painting's motion: what the EEG itself says at each frame.

    NaN rows (before the first feature row) read as the baseline (0).
    """
    from conditioning.motion import WMotion

    x = np.asarray(features, dtype=np.float64)
    finite = np.isfinite(x).all(axis=1)
    if finite.sum() >= 2:
        mean, std = x[finite].mean(axis=0), x[finite].std(axis=0)
        x = (x - mean) / np.where(std > 1e-12, std, 1.0)
    x[~finite] = 0.0
    follow = WMotion(MotionConfig(tau=motion.tau), 1, x.shape[1])
    out = np.empty_like(x)
    previous = times[0] if len(times) else 0.0
    for i, t in enumerate(times):
        out[i] = follow.step(x[i][None], max(float(t - previous), 0.0))[0]
        previous = t
    return out


# --------------------------------------------------------------------------------------------
# Coverage: sliced Wasserstein distances
# --------------------------------------------------------------------------------------------

def sliced_wasserstein_vectors(a: np.ndarray, b: np.ndarray, *, num_projections: int = 512,
                               reference: np.ndarray | None = None, standardize: bool = True,
                               seed: int = 0) -> float:
    """Sliced Wasserstein-1 distance between two sets of vectors (may differ in size).

    Both sets are standardised per dimension by ``reference``'s statistics (default ``b``;
    ``standardize=False``: taken as they are, e.g. already whitened), projected onto
    ``num_projections`` random unit directions, and the 1-D Wasserstein-1 distances (mean
    absolute difference of the quantile functions) are averaged.

    Parameters
    ----------
    a : ndarray, shape (n_a, dim)
    b : ndarray, shape (n_b, dim)
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or not len(a) or not len(b):
        raise NeuropaintError(f"'a' and 'b' must be non-empty [N, dim] sets of one dim, got "
                              f"{a.shape} and {b.shape}.")
    if standardize:
        ref = b if reference is None else np.asarray(reference, dtype=np.float64)
        mean, std = ref.mean(axis=0), ref.std(axis=0) + 1e-8
    else:
        mean, std = 0.0, 1.0
    rng = np.random.default_rng(seed)
    dirs = rng.standard_normal((a.shape[1], check_int(num_projections, "num_projections",
                                                      minimum=1)))
    dirs /= np.linalg.norm(dirs, axis=0, keepdims=True)  # [dim, K]
    pa = np.sort(((a - mean) / std) @ dirs, axis=0)  # [n_a, K]
    pb = np.sort(((b - mean) / std) @ dirs, axis=0)  # [n_b, K]
    n = max(len(a), len(b))
    q = (np.arange(n) + 0.5) / n  # common quantile grid
    qa = _quantiles(pa, q)
    qb = _quantiles(pb, q)
    return float(np.abs(qa - qb).mean())


def _quantiles(sorted_proj: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Empirical quantile function (step, as for W1) of sorted columns at levels ``q``."""
    idx = np.minimum((q * len(sorted_proj)).astype(int), len(sorted_proj) - 1)
    return sorted_proj[idx]


def whitening(x: np.ndarray, *, floor: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Mean and whitening matrix of rows ``x`` (PCA; eigenvalues floored at ``floor`` x the
    largest): ``(x - mean) @ matrix`` has identity covariance."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0)
    eigval, eigvec = np.linalg.eigh(np.cov(x, rowvar=False))
    eigval = np.maximum(eigval, eigval.max() * floor)
    return mean, eigvec / np.sqrt(eigval)


def coverage_from_sets(w_eeg: np.ndarray, w_random: Sequence[np.ndarray],
                       images_eeg: np.ndarray, images_random: Sequence[np.ndarray], *,
                       images_whitening: np.ndarray | None = None, seed: int = 0) -> dict:
    """Coverage from given sets: EEG-driven vs random, as a ratio to random vs random.

    With ``K >= 2`` independent random sets ``R_k``, the distance of the EEG set is the mean
    of its distances to every ``R_k`` and the reference is the mean distance of ``R_k`` to
    ``R_{k+1}`` (cyclically). Images are compared as whitened pixels (see the module notes).

    Parameters
    ----------
    w_eeg : ndarray, shape (n, w_dim)
        Encoded w.
    w_random : sequence of ndarray, shape (n, w_dim)
        ``K >= 2`` independent sets of mapping-network w.
    images_eeg : ndarray of uint8, shape (n, H, W, 3)
        EEG-driven frames.
    images_random : sequence of ndarray of uint8, shape (n, H, W, 3)
        The ``K`` random-latent image sets.
    images_whitening : ndarray of uint8, shape (m, H, W, 3) | None
        A further independent random-latent set that fixes the whitening (default: the
        ``K`` sets pooled, which puts every other set slightly farther, a few per cent).

    Returns
    -------
    dict
        ``w_ratio``, ``image_ratio`` (the goal is on this one), the distances behind them,
        and ``image_reference_spread``: the relative standard deviation of the ``K``
        random-vs-random image distances.
    """
    if len(w_random) < 2 or len(w_random) != len(images_random):
        raise NeuropaintError(f"coverage needs at least 2 random sets, as many of w as of "
                              f"images, got {len(w_random)} and {len(images_random)}.")
    k_sets = len(w_random)
    nxt = [(k + 1) % k_sets for k in range(k_sets)]
    w_swd = float(np.mean([sliced_wasserstein_vectors(w_eeg, w, seed=seed) for w in w_random]))
    w_refs = [sliced_wasserstein_vectors(w_random[j], w_random[k], seed=seed)
              for k, j in enumerate(nxt)]

    def pixels(images):
        return image_features(images, COVERAGE_PIXELS).astype(np.float64)

    randoms = [pixels(x) for x in images_random]
    basis = np.concatenate(randoms) if images_whitening is None else pixels(images_whitening)
    mean, matrix = whitening(basis)
    randoms = [(x - mean) @ matrix for x in randoms]
    fake = (pixels(images_eeg) - mean) @ matrix
    img = float(np.mean([sliced_wasserstein_vectors(fake, r, standardize=False, seed=seed)
                         for r in randoms]))
    img_refs = np.array([sliced_wasserstein_vectors(randoms[j], randoms[k], standardize=False,
                                                    seed=seed) for k, j in enumerate(nxt)])
    w_ref, img_ref = float(np.mean(w_refs)), float(img_refs.mean())
    goal = GOALS["coverage"]["image_ratio"]
    image_ratio = img / max(img_ref, 1e-12)
    return {
        "w_swd": w_swd,
        "w_swd_reference": w_ref,
        "w_ratio": w_swd / max(w_ref, 1e-12),
        "image_swd": img,
        "image_swd_reference": img_ref,
        "image_ratio": image_ratio,
        "image_reference_spread": float(img_refs.std() / max(img_ref, 1e-12)),
        "n": int(min(len(images_eeg), *(len(x) for x in images_random))),
        "random_sets": k_sets,
        "goal": goal,
        "passed": bool(image_ratio <= goal),
    }


@torch.no_grad()
def random_ws(G: torch.nn.Module, n: int, *, seed: int = 0, truncation_psi: float = 1.0
              ) -> np.ndarray:
    """Mapping-network ws of ``n`` seeded random z: float32 ``[n, num_ws, w_dim]``."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, G.z_dim, generator=gen)
    return G.mapping(z, None, truncation_psi=truncation_psi).numpy()


def random_sets(G: torch.nn.Module, *, n: int = 1024, sets: int = 5, size: int | None = None,
                seed: int = 0, truncation_psi: float = 1.0, batch: int = 16
                ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``sets`` independent random-latent sets of ``n``: (first-layer ws, uint8 images).

    Seeds ``seed + 1`` ... ``seed + sets``. :func:`coverage` whitens with the first and
    compares with the others. Build them once per generator and pass them to
    :func:`coverage` (or :func:`evaluate_encoder`) to measure several encoders against the
    same ruler.
    """
    from conditioning.render import synthesize

    n = check_int(n, "n", minimum=2)
    ws_sets, image_sets = [], []
    for k in range(check_int(sets, "sets", minimum=3)):
        ws = random_ws(G, n, seed=seed + 1 + k, truncation_psi=truncation_psi)
        ws_sets.append(ws[:, 0])
        image_sets.append(synthesize(G, ws, size=size, batch=batch))
    return ws_sets, image_sets


def coverage(G: torch.nn.Module, ws_eeg: np.ndarray, images_eeg: np.ndarray, *,
             n: int = 1024, sets: int = 5, seed: int = 0, truncation_psi: float = 1.0,
             batch: int = 16, reference: tuple[list, list] | None = None) -> dict:
    """Coverage of EEG-driven latents and frames against the generator's random latents.

    Parameters
    ----------
    ws_eeg : ndarray, shape (n_frames, num_ws, w_dim)
        Latents painted (all layers' w are pooled).
    images_eeg : ndarray of uint8, shape (n_frames, H, W, 3)
        The frames painted from them.
    n : int
        Samples per set: the EEG frames are evenly subsampled to ``n``; ``sets`` independent
        random sets of ``n`` are drawn (:func:`random_sets`): the first fixes the image
        whitening, the others are compared with.
    reference : (ws sets, image sets) | None
        Random sets made beforehand by :func:`random_sets` (their size must match the
        frames'); ``n``, ``sets`` and ``truncation_psi`` then only subsample the frames.
    """
    ws_eeg = np.asarray(ws_eeg)
    images_eeg = _check_frames(images_eeg, "images_eeg")
    if len(ws_eeg) != len(images_eeg):
        raise NeuropaintError(f"'ws_eeg' and 'images_eeg' must have one row per frame, got "
                              f"{len(ws_eeg)} and {len(images_eeg)}.")
    size = images_eeg.shape[1]
    if reference is None:
        reference = random_sets(G, n=n, sets=sets, size=size, seed=seed,
                                truncation_psi=truncation_psi, batch=batch)
    elif reference[1][0].shape[1:] != images_eeg.shape[1:]:
        raise NeuropaintError(f"the random reference images are {list(reference[1][0].shape[1:])}"
                              f", the frames {list(images_eeg.shape[1:])}: make the reference "
                              f"at the frames' size.")
    n = min(check_int(n, "n", minimum=2), len(ws_eeg), len(reference[0][0]))
    pick = np.linspace(0, len(ws_eeg) - 1, n).round().astype(int)
    w_eeg = ws_eeg[pick].reshape(-1, ws_eeg.shape[-1])  # [n * num_ws, w_dim], layers pooled
    return coverage_from_sets(w_eeg, reference[0][1:], images_eeg[pick], reference[1][1:],
                              images_whitening=reference[1][0], seed=seed)


# --------------------------------------------------------------------------------------------
# Smoothness
# --------------------------------------------------------------------------------------------

def _rms(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(a - b))))


def _as_float(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    return x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)


def smoothness(x: np.ndarray, states: Sequence[str], times: np.ndarray, *, settle_s: float,
               groups: Sequence | None = None) -> dict:
    """Frame-to-frame change within settled states vs the change a state switch causes.

    Parameters
    ----------
    x : ndarray, shape (n_frames, ...)
        Frames (uint8 images are scaled to [0, 1]) or latents; distances are RMS over all
        but the first axis.
    states : sequence of str, length n_frames
        Annotated state of each frame ("" = none: never settled).
    times : ndarray, shape (n_frames,)
        Frame times in seconds.
    settle_s : float
        Seconds after a state begins before its frames count as settled.
    groups : sequence | None
        Recording of each frame; runs and pairs never cross recordings.

    Returns
    -------
    dict
        ``within`` (mean change between consecutive settled frames of one state),
        ``between`` (mean change from the last frame before a switch to the first settled
        frame after it), ``ratio`` (between / within; None when undefined), ``n_switches``,
        ``n_pairs``.
    """
    x = _as_float(x)
    states = np.asarray(states, dtype=object)
    times = np.asarray(times, dtype=np.float64)
    settle_s = check_positive(settle_s, "settle_s", allow_zero=True)
    groups = np.zeros(len(x), dtype=int) if groups is None else np.asarray(groups)
    if not len(x) == len(states) == len(times) == len(groups):
        raise NeuropaintError(f"'x', 'states', 'times' and 'groups' must have one entry per "
                              f"frame, got {len(x)}, {len(states)}, {len(times)}, "
                              f"{len(groups)}.")
    within: list[float] = []
    between: list[float] = []
    for g in _unique_in_order(groups):
        idx = np.flatnonzero(groups == g)
        runs = _runs(states[idx])  # (state, start, stop) in positions of idx
        settled_runs = []
        for state, start, stop in runs:
            if state == "":
                settled_runs.append(None)
                continue
            settled = np.flatnonzero(times[idx[start:stop]] - times[idx[start]] >= settle_s)
            settled_runs.append(idx[start + settled] if len(settled) else None)
            frames = idx[start + settled]
            if len(frames) > 1:
                steps = (x[frames[1:]] - x[frames[:-1]]).reshape(len(frames) - 1, -1)
                within += np.sqrt(np.mean(np.square(steps), axis=1)).tolist()
        for r in range(1, len(runs)):
            before, after = settled_runs[r - 1], settled_runs[r]
            # Only a switch between two labelled states, the first settled up to its end.
            if before is None or after is None or before[-1] != idx[runs[r - 1][2] - 1]:
                continue
            between.append(_rms(x[before[-1]], x[after[0]]))
    mean_within = float(np.mean(within)) if within else None
    mean_between = float(np.mean(between)) if between else None
    ratio = None
    if mean_within is not None and mean_between is not None and mean_within > 0:
        ratio = mean_between / mean_within
    return {"within": mean_within, "between": mean_between, "ratio": ratio,
            "n_switches": len(between), "n_pairs": len(within)}


def _unique_in_order(values: np.ndarray) -> list:
    seen: dict = {}
    for v in values.tolist():
        seen.setdefault(v, None)
    return list(seen)


def _runs(states: np.ndarray) -> list[tuple[str, int, int]]:
    """Runs of equal consecutive states as (state, start, stop)."""
    runs = []
    start = 0
    for i in range(1, len(states) + 1):
        if i == len(states) or states[i] != states[start]:
            runs.append((str(states[start]), start, i))
            start = i
    return runs


def settled_mask(states: Sequence[str], times: np.ndarray, settle_s: float,
                 groups: Sequence | None = None) -> np.ndarray:
    """Frames in a labelled state for at least ``settle_s`` seconds (bool ``[n_frames]``)."""
    states = np.asarray(states, dtype=object)
    times = np.asarray(times, dtype=np.float64)
    groups = np.zeros(len(states), dtype=int) if groups is None else np.asarray(groups)
    mask = np.zeros(len(states), dtype=bool)
    for g in _unique_in_order(groups):
        idx = np.flatnonzero(groups == g)
        for state, start, stop in _runs(states[idx]):
            if state:
                span = idx[start:stop]
                mask[span] = times[span] - times[span[0]] >= settle_s
    return mask


# --------------------------------------------------------------------------------------------
# All three on recordings
# --------------------------------------------------------------------------------------------

def _check_frames(images: np.ndarray, name: str) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8 or not len(images):
        raise NeuropaintError(f"'{name}' must be uint8 frames [N, H, W, 3], got "
                              f"{images.dtype} {list(images.shape)}.")
    return images


def _nchw(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)  # [N, 3, H, W]


def _store_sessions(store, recordings: Sequence[int] | None, encoder, fps: float):
    """(name, FeatureFrame, frame times, states per frame) for each recording of a store."""
    from conditioning.render import frame_times

    if store.spec != encoder.spec:
        raise NeuropaintError("the EEG store was built with a different FeatureSpec than the "
                              "encoder's; rebuild it with the encoder's spec.")
    ids = range(len(store.recordings)) if recordings is None else recordings
    labels = store.labels
    for rec_id in ids:
        rows = store.rows([rec_id], only_valid=False)
        meta = store.recordings[rec_id]
        frame = FeatureFrame(np.asarray(store.features[rows], dtype=np.float64),
                             list(store.names), np.asarray(store.times[rows]),
                             np.asarray(store.valid[rows]))
        times = frame_times(float(meta["duration"]), fps)
        newest = np.searchsorted(frame.times, times, side="right") - 1
        states = [labels[rows[j]] if j >= 0 else "" for j in newest]
        yield meta.get("session", str(rec_id)), frame, times, states


def evaluate_encoder(
    encoder,
    G: torch.nn.Module,
    recordings,
    *,
    fps: float = 10.0,
    tau: float = 0.5,
    calibration_s: float | None = 10.0,
    update_momentum: float | None = None,
    settle_s: float | None = None,
    n_random: int = 1024,
    coverage_reference: tuple[list, list] | None = None,
    probe_size: int = 16,
    probe: str = "ridge",
    store_recordings: Sequence[int] | None = None,
    seed: int = 0,
    batch: int = 16,
) -> dict:
    """Responsiveness, coverage and smoothness of an encoder on annotated recordings.

    Each recording is painted as the live loop would (online features, a calibration
    period on a fresh copy of the encoder, artifact gating, :class:`conditioning.motion.WMotion`
    with time constant ``tau``) at ``fps`` frames per second; the calibration frames are left
    out. Stored feature rows (an EEG store) were computed from cleaned recordings, so they
    differ a little from what a live stream gives.

    Parameters
    ----------
    encoder : conditioning.encoder.Encoder
    G : Generator
        The generator the encoder is for.
    recordings : sequence of (Raw | path) | EEGStore
        Recordings with state annotations (held-out ones), or an EEG store, whose stored
        feature rows are then used directly (``store_recordings`` picks its recordings, e.g.
        the test side of a split; default all).
    fps : float
        Frames (updates) per second; the smoothness goal is set at 10.
    calibration_s : float | None
        Baseline period at the start of each recording, as live (its frames are left out);
        None: each recording's whole-session baseline (as training standardises).
    update_momentum : float | None
        The live running update of the baseline after calibration (None: off).
    settle_s : float | None
        Seconds after a state begins before its frames count as settled; default the
        feature window + 3 ``tau``.
    n_random : int
        Samples per set for coverage.
    coverage_reference : (ws sets, image sets) | None
        Random sets from :func:`random_sets` at the frames' size, to measure several encoders
        of one generator against the same ruler (default: drawn here, 5 sets of
        ``n_random``).
    probe : str
        The linear probe whose accuracy is ``responsiveness`` (``'ridge'`` or ``'lda'``).
        Every probe in ``PROBES`` is also run, on the paintings and on the features behind
        them: ``responsiveness['by_probe'][name]`` holds ``accuracy``, ``ceiling`` and
        ``per_class``.

    Returns
    -------
    dict
        ``responsiveness``, ``coverage``, ``smoothness`` (each with its ``goal`` and
        ``passed``), ``sessions``, ``frames``, ``fps``, ``tau``, ``settle_s``.
    """
    from conditioning.render import check_encoder, follow_rows, session_latents, synthesize
    from datasets.eeg import EEGStore

    check_encoder(encoder, G)
    check_option(probe, "probe", PROBES)
    fps = check_positive(fps, "fps")
    tau = check_positive(tau, "tau")
    motion = MotionConfig(tau=tau)
    if settle_s is None:
        settle_s = encoder.spec.window + 3.0 * tau
    w_avg = G.mapping.w_avg.detach().cpu().numpy()

    per_session = []  # (name, ws, states, times, calibrating, features)
    if isinstance(recordings, EEGStore):
        for name, frame, times, states in _store_sessions(recordings, store_recordings,
                                                          encoder, fps):
            ws, info = follow_rows(copy.deepcopy(encoder), frame, times, motion=motion,
                                   calibration_s=calibration_s,
                                   update_momentum=update_momentum, w_avg=w_avg, seed=seed)
            per_session.append((name, ws, states, times, info["calibrating"],
                                info["features"]))
    else:
        if isinstance(recordings, str | Path) or not isinstance(recordings, Sequence):
            recordings = [recordings]
        if not recordings:
            raise NeuropaintError("no recordings to evaluate on.")
        for i, raw in enumerate(recordings):
            latents = session_latents(copy.deepcopy(encoder), raw, fps=fps, motion=motion,
                                      calibration_s=calibration_s,
                                      update_momentum=update_momentum, w_avg=w_avg, seed=seed)
            name = Path(raw).name if isinstance(raw, str | Path) else f"recording{i}"
            per_session.append((name, latents.ws, latents.states, latents.times,
                                latents.calibrating, latents.features))

    keep = [~np.asarray(s[4]) for s in per_session]
    ws = np.concatenate([s[1][k] for s, k in zip(per_session, keep, strict=True)])
    states = np.concatenate([np.asarray(s[2], dtype=object)[k]
                             for s, k in zip(per_session, keep, strict=True)])
    times = np.concatenate([s[3][k] for s, k in zip(per_session, keep, strict=True)])
    groups = np.concatenate([np.full(int(k.sum()), i) for i, k in enumerate(keep)])
    if len(ws) == 0:
        raise NeuropaintError(f"the recordings end before the {calibration_s or 0:g} s "
                              f"calibration does: nothing left to evaluate.")
    settled = settled_mask(states, times, settle_s, groups)
    if settled.sum() == 0:
        raise NeuropaintError(f"no frame is in an annotated state for {settle_s:g} s: the "
                              f"recordings need state annotations (e.g. from "
                              f"eeg.synthetic.make_raw).")
    images = synthesize(G, ws, batch=batch)
    features = np.concatenate([smoothed_features(s[5][k], s[3][k], motion)
                               for s, k in zip(per_session, keep, strict=True)])
    by_probe = {}
    for method in PROBES:
        painted = responsiveness(images[settled], states[settled], groups[settled],
                                 size=probe_size, method=method)
        ceiling = linear_probe(features[settled], states[settled], groups[settled],
                               method=method)
        painted["ceiling"] = ceiling["accuracy"]
        by_probe[method] = painted
    readback = dict(by_probe[probe])
    readback["by_probe"] = {method: {"accuracy": r["accuracy"], "ceiling": r["ceiling"],
                                     "per_class": r["per_class"]}
                            for method, r in by_probe.items()}
    cover = coverage(G, ws, images, n=n_random, seed=seed, batch=batch,
                     reference=coverage_reference)
    smooth = smoothness(images, states, times, settle_s=settle_s, groups=groups)
    smooth_w = smoothness(ws, states, times, settle_s=settle_s, groups=groups)
    goal = GOALS["smoothness"]["ratio"]
    smooth.update(
        within_w=smooth_w["within"], between_w=smooth_w["between"], ratio_w=smooth_w["ratio"],
        unit="RMS pixel change (0-1 scale); *_w: RMS change of ws", goal=goal,
        passed=bool(smooth["ratio"] is not None and smooth["ratio"] >= goal))
    return {
        "responsiveness": readback,
        "coverage": cover,
        "smoothness": smooth,
        "sessions": [s[0] for s in per_session],
        "frames": len(ws),
        "fps": fps,
        "tau": tau,
        "calibration": "session" if calibration_s is None else calibration_s,
        "update_momentum": update_momentum,
        "settle_s": settle_s,
        "resolution": int(images.shape[1]),
    }


def summary_line(result: dict) -> str:
    """One human line: the three figures against their goals."""
    r, c, s = result["responsiveness"], result["coverage"], result["smoothness"]

    def mark(ok: bool) -> str:
        return "ok" if ok else "below goal"

    ratio = "n/a" if s["ratio"] is None else f"{s['ratio']:.2f}"
    ceiling = f", the EEG features {r['ceiling']:.3f}" if "ceiling" in r else ""
    return (f"responsiveness {r['accuracy']:.3f} (goal >= {r['goal']}, chance "
            f"{r['chance']:.2f}{ceiling}: {mark(r['passed'])}); coverage image SWD ratio "
            f"{c['image_ratio']:.2f} (goal <= {c['goal']}: {mark(c['passed'])}), w ratio "
            f"{c['w_ratio']:.2f}; smoothness {ratio} (goal >= {s['goal']}: "
            f"{mark(s['passed'])})")


def json_ready(value):
    """JSON-safe: NaN/inf -> None, recursively."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
