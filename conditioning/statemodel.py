"""A performer's brain states from their EEG features: shrinkage LDA, posteriors, honest accuracy.

The state model of a performer profile (:mod:`conditioning.profile`) is linear discriminant
analysis (Fisher 1936; Hastie, Tibshirani & Friedman, *The Elements of Statistical Learning*,
2nd ed., sec. 4.3) on standardised features, with the pooled within-class covariance shrunk
toward its mean variance (the regularised discriminant analysis of Friedman 1989, sec. 4.3.1
of ESL). Shrinkage is what makes LDA work with a few minutes of calibration and ~170
strongly correlated band-power features; it is the standard first choice in BCI (Blankertz
et al. 2011, "Single-trial analysis and classification of ERP components", NeuroImage 56).

Posteriors come from the discriminant scores through a softmax with equal priors (a
performer chooses which state to be in; the calibration's block counts say nothing about
that), and a temperature fitted on held-out predictions so that "0.9" means right nine times
in ten (Guo et al. 2017, "On calibration of modern neural networks", temperature scaling).

Accuracy is cross-validated **by block**: a block of calibration (one state, one stretch of
time) is never on both sides of a split, because neighbouring feature rows share most of
their window and would flatter any split by row. The chance level is the same
cross-validation with the block labels permuted (each block keeps one label), which keeps the
blocks' time structure (Ojala & Garriga 2010, "Permutation tests for studying classifier
performance", JMLR 11).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from neuropaint.validate import NeuropaintError

logger = logging.getLogger(__name__)

__all__ = ["SHRINKAGES", "StateModel", "block_folds", "cross_validate", "fit_state_model",
           "lda_train", "standardiser", "state_accuracy"]

SHRINKAGES = (0.01, 0.05, 0.1, 0.3, 0.6, 0.9)  # Grid of the inner choice of shrinkage.
TEMPERATURES = np.exp(np.linspace(np.log(0.05), np.log(20.0), 61))  # Grid of the calibration.
MAX_FOLDS = 5


def standardiser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column mean and std of ``x`` (a constant column gets std 1)."""
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std[std < 1e-6] = 1.0  # a constant training feature must not blow up on the test side
    return mean, std


def lda_train(x: np.ndarray, labels: np.ndarray, n_classes: int,
              shrinkages: Sequence[float], *, equal_priors: bool = False) -> list:
    """Linear discriminant analysis on standardised features, the pooled within-class
    covariance shrunk towards its mean variance; one (mean, std, coef, bias) per shrinkage.

    ``x @ coef + bias`` (after standardising) are the discriminant scores: their softmax is
    the posterior. Priors are the training shares, or equal with ``equal_priors``. A class
    missing from the training rows is never predicted.
    """
    mean, std = standardiser(x)
    z = (x - mean) / std
    counts = np.bincount(labels, minlength=n_classes)
    present = counts > 0
    centroids = np.zeros((n_classes, z.shape[1]))
    np.add.at(centroids, labels, z)
    centroids[present] /= counts[present, None]
    residual = z - centroids[labels]
    evals, evecs = np.linalg.eigh(residual.T @ residual / len(z))  # [d], [d, d]
    evals = np.clip(evals, 0.0, None)
    target = max(float(evals.mean()), 1e-12)
    proj = evecs.T @ centroids.T  # [d, C]
    log_prior = np.full(n_classes, -np.inf)
    shares = np.full(int(present.sum()), 1.0 / present.sum()) if equal_priors \
        else counts[present] / len(z)
    log_prior[present] = np.log(shares)
    models = []
    for shrinkage in shrinkages:
        variances = (1.0 - shrinkage) * evals + shrinkage * target
        coef = evecs @ (proj / np.maximum(variances, 1e-12 * target)[:, None])  # [d, C]
        bias = log_prior - 0.5 * np.sum(centroids.T * coef, axis=0)
        models.append((mean, std, coef, bias))
    return models


def _scores(model, x: np.ndarray) -> np.ndarray:
    mean, std, coef, bias = model
    return ((x - mean) / std) @ coef + bias  # [n, C]


def _log_softmax(scores: np.ndarray) -> np.ndarray:
    finite = np.where(np.isfinite(scores), scores, -1e30)
    top = finite.max(axis=1, keepdims=True)
    return finite - top - np.log(np.exp(finite - top).sum(axis=1, keepdims=True))


def block_folds(blocks: np.ndarray, max_folds: int = MAX_FOLDS) -> list[np.ndarray]:
    """Test masks of folds that keep each block on one side (blocks dealt round-robin)."""
    unique = np.unique(blocks)
    k = min(max_folds, len(unique))
    return [np.isin(blocks, unique[f::k]) for f in range(k)]


def _choose_shrinkage(x, y, blocks, n_classes) -> float:
    """The shrinkage of :data:`SHRINKAGES` with the best inner block-CV balanced accuracy."""
    if len(np.unique(blocks)) < 3:
        return 0.3
    hits = np.zeros(len(SHRINKAGES))
    for test in block_folds(blocks, 3):
        models = lda_train(x[~test], y[~test], n_classes, SHRINKAGES, equal_priors=True)
        for i, m in enumerate(models):
            hits[i] += _balanced(y[test], np.argmax(_scores(m, x[test]), axis=1), n_classes)
    return SHRINKAGES[int(np.argmax(hits))]


def _balanced(y: np.ndarray, predicted: np.ndarray, n_classes: int) -> float:
    recalls = [np.mean(predicted[y == k] == k) for k in range(n_classes) if np.any(y == k)]
    return float(np.mean(recalls)) if recalls else 0.0


def cross_validate(x: np.ndarray, y: np.ndarray, blocks: np.ndarray, n_classes: int, *,
                   shrinkage: float | None = None) -> tuple[np.ndarray, list[float]]:
    """Out-of-block discriminant scores ``[n, C]`` and the shrinkage of each fold.

    With ``shrinkage`` None it is chosen inside each training fold (nested, by block).
    """
    scores = np.zeros((len(x), n_classes))
    chosen = []
    for test in block_folds(blocks):
        train = ~test
        s = shrinkage if shrinkage is not None else _choose_shrinkage(
            x[train], y[train], blocks[train], n_classes)
        chosen.append(s)
        model = lda_train(x[train], y[train], n_classes, [s], equal_priors=True)[0]
        scores[test] = _scores(model, x[test])
    return scores, chosen


def _fit_temperature(scores: np.ndarray, y: np.ndarray) -> float:
    """The softmax temperature that minimises the held-out negative log-likelihood."""
    nll = [-np.mean(_log_softmax(scores / t)[np.arange(len(y)), y]) for t in TEMPERATURES]
    return float(TEMPERATURES[int(np.argmin(nll))])


@dataclass
class StateModel:
    """Shrinkage LDA with a calibrated softmax: feature rows -> state posteriors.

    Attributes
    ----------
    states : list of str
    mean, std : ndarray, shape (n_features,)
        Standardisation of the (baseline-normalised) features.
    coef : ndarray, shape (n_features, n_states)
    bias : ndarray, shape (n_states,)
    temperature : float
        Scores are divided by it before the softmax.
    shrinkage : float
    """

    states: list[str]
    mean: np.ndarray
    std: np.ndarray
    coef: np.ndarray
    bias: np.ndarray
    temperature: float = 1.0
    shrinkage: float = 0.3

    def __post_init__(self) -> None:
        # One affine map: posteriors = softmax(x @ weight + offset), cheap per frame.
        scale = 1.0 / (self.std * self.temperature)
        self.weight = (self.coef * scale[:, None]).astype(np.float64)  # [F, K]
        self.offset = (self.bias / self.temperature
                       - (self.mean / self.std) @ self.coef / self.temperature)  # [K]

    def log_posteriors(self, x: np.ndarray) -> np.ndarray:
        """``(n, n_features)`` -> log posteriors ``(n, n_states)``."""
        return _log_softmax(np.asarray(x, dtype=np.float64) @ self.weight + self.offset)

    def posteriors(self, x: np.ndarray) -> np.ndarray:
        """``(n, n_features)`` -> posteriors ``(n, n_states)``, rows summing to 1."""
        return np.exp(self.log_posteriors(x))

    def temperature_log_posteriors(self, scores: np.ndarray) -> np.ndarray:
        """Discriminant ``scores`` ``(n, n_states)`` (e.g. the out-of-block ones of
        :func:`fit_state_model`) -> log posteriors with this model's temperature."""
        return _log_softmax(np.asarray(scores, dtype=np.float64) / self.temperature)


def fit_state_model(x: np.ndarray, labels: Sequence[str], blocks: Sequence, states: Sequence[str]
                    ) -> tuple[StateModel, np.ndarray]:
    """Fit on every row; the temperature and shrinkage from block cross-validation.

    Returns the model and the out-of-block scores (for :func:`state_accuracy`).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.array([list(states).index(s) for s in labels])
    blocks = np.asarray(blocks)
    scores, chosen = cross_validate(x, y, blocks, len(states))
    shrinkage = float(np.median(chosen))
    model = lda_train(x, y, len(states), [shrinkage], equal_priors=True)[0]
    mean, std, coef, bias = model
    return StateModel(list(states), mean, std, coef, bias,
                      temperature=_fit_temperature(scores, y), shrinkage=shrinkage), scores


@dataclass
class StateAccuracy:
    """How well the calibration tells its states apart, cross-validated by block."""

    states: list[str]
    balanced_accuracy: float
    recall: dict[str, float]
    confusion: list[list[int]]          # rows: true state, columns: predicted
    chance_mean: float                  # block-permutation chance, mean
    chance_p95: float                   # and its 95th percentile
    permutations: int
    n_rows: dict[str, int]
    n_blocks: dict[str, int]
    folds: int
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def summary(self) -> str:
        lines = [f"balanced accuracy {self.balanced_accuracy:.2f} (cross-validated by block, "
                 f"{self.folds} folds); chance {self.chance_mean:.2f}, 95th percentile "
                 f"{self.chance_p95:.2f} ({self.permutations} block-label permutations)"]
        width = max(len(s) for s in self.states)
        lines.append(" " * (width + 2) + " ".join(f"{s[:8]:>8}" for s in self.states)
                     + "   recall  blocks  rows")
        for i, s in enumerate(self.states):
            cells = " ".join(f"{c:8d}" for c in self.confusion[i])
            lines.append(f"{s:>{width}}  {cells}   {self.recall[s]:6.2f}  {self.n_blocks[s]:6d}"
                         f"  {self.n_rows[s]:4d}")
        lines.extend(f"warning: {w}" for w in self.warnings)
        return "\n".join(lines)


def state_accuracy(scores: np.ndarray, labels: Sequence[str], blocks: Sequence,
                   states: Sequence[str], x: np.ndarray, *, permutations: int = 100,
                   shrinkage: float = 0.3, seed: int = 0) -> StateAccuracy:
    """Balanced accuracy, confusion and block-permutation chance of out-of-block ``scores``."""
    states = list(states)
    y = np.array([states.index(s) for s in labels])
    blocks = np.asarray(blocks)
    k = len(states)
    predicted = np.argmax(scores, axis=1)
    confusion = np.zeros((k, k), dtype=int)
    np.add.at(confusion, (y, predicted), 1)
    recall = {s: float(confusion[i, i] / max(1, confusion[i].sum())) for i, s in enumerate(states)}
    balanced = _balanced(y, predicted, k)
    # Chance: the same CV with each block's label drawn from a permutation of the block labels.
    unique_blocks = np.unique(blocks)
    block_label = np.array([y[blocks == b][0] for b in unique_blocks])
    where = np.searchsorted(unique_blocks, blocks)
    rng = np.random.default_rng(seed)
    x = np.asarray(x, dtype=np.float64)
    chance = []
    for _ in range(permutations):
        y_perm = rng.permutation(block_label)[where]
        perm_scores, _ = cross_validate(x, y_perm, blocks, k, shrinkage=shrinkage)
        chance.append(_balanced(y_perm, np.argmax(perm_scores, axis=1), k))
    chance_mean = float(np.mean(chance)) if chance else 1.0 / k
    chance_p95 = float(np.percentile(chance, 95)) if chance else 1.0 / k
    warnings = []
    if balanced <= chance_p95:
        coarse = len(unique_blocks) < 12
        warnings.append(
            f"the calibration does not show the states apart from chance: balanced accuracy "
            f"{balanced:.2f}, 95th percentile of block permutations {chance_p95:.2f}"
            + (f"; with {len(unique_blocks)} blocks that test is coarse (a permutation that "
               f"moves one or two blocks scores almost as well): record more, shorter blocks"
               if coarse else "; the profile still plays, but its states may not follow "
               "the performer"))
    for i, s in enumerate(states):
        row = confusion[i].astype(float) / max(1, confusion[i].sum())
        other = int(np.argmax(np.where(np.arange(k) == i, -1, row)))
        if recall[s] < 0.5 and row[other] >= 0.25:
            warnings.append(f"state {s!r} is often taken for {states[other]!r} (recall "
                            f"{recall[s]:.2f}, {row[other]:.0%} of its rows read as "
                            f"{states[other]!r}; chance {chance_mean:.2f})")
    n_rows = {s: int((y == i).sum()) for i, s in enumerate(states)}
    n_blocks = {s: int((block_label == i).sum()) for i, s in enumerate(states)}
    return StateAccuracy(states=states, balanced_accuracy=balanced, recall=recall,
                         confusion=confusion.tolist(), chance_mean=chance_mean,
                         chance_p95=chance_p95, permutations=permutations, n_rows=n_rows,
                         n_blocks=n_blocks, folds=len(block_folds(blocks)), warnings=warnings)


def check_training_rows(labels: Sequence[str], blocks: Sequence, states: Sequence[str]) -> None:
    """Refuse calibrations that cannot be fitted, naming what is missing."""
    states = list(states)
    if len(states) < 2:
        raise NeuropaintError(f"a profile needs at least two states to tell apart, got "
                              f"{states}.")
    labels = np.asarray(labels)
    blocks = np.asarray(blocks)
    for s in states:
        if not np.any(labels == s):
            raise NeuropaintError(f"state {s!r} has no clean calibration data (every row of "
                                  f"its blocks is spoiled by blinks, saturation, gaps or bad "
                                  f"spans, or it was never recorded).")
    if len(np.unique(blocks)) < 2:
        raise NeuropaintError("the calibration has a single block: cross-validation by block "
                              "needs at least two.")
