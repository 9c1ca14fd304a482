"""The output map: painted ``w`` moved onto the generator's own W distribution.

What the live loop paints is not the encoder's output row by row but its motion-smoothed
path (:class:`conditioning.motion.WMotion`): smoothing removes the fast part of the encoded ``w``'s
spread, and the distribution term of training matches rows, not paths. Measured on the
fidelity benchmark's tiny generator, the painted ws of an align encoder spread six times wider
than the mapping network's along a few directions and far narrower along the rest.

:func:`fit_output_map` paints the training recordings as the live loop would (the encoder's
rows, followed by ``WMotion`` with the painting's time constant), and fits, per layer group,
the affine map that carries a Gaussian with the painted mean and covariance onto one with the
mapping network's: the optimal-transport (Monge) map between two Gaussians,

    A = C_p^(-1/2) (C_p^(1/2) C_w C_p^(1/2))^(1/2) C_p^(-1/2),    w' = m_w + A (w - m_p)

(Dowson & Landau 1982; Olkin & Pukelsheim 1982), the smallest mean squared move that matches
both moments. It is linear, so it commutes with the motion's smoothing: the painted path of
the mapped targets is the mapped painted path. The map is stored in the encoder
(``Encoder.set_output_map``) and fitted for one motion time constant, recorded in its training
stats.

What it does and does not do, on 8 held-out sessions with an align encoder trained without
the whole-code term (tau 0.5 s; :mod:`conditioning.metrics`): with whole-session baselines the
w coverage ratio fell from 3.86 to 1.50, the image coverage ratio from 4.11 to 3.49 (goal
1.2), responsiveness from 0.839 to 0.819; with the live baseline (10 s calibration, running
update) the image ratio rose from 4.15 to 4.74 and responsiveness fell from 0.816 to 0.780.
Fitting the map on rows standardised the live way did not change that much. Hence it is
opt-in (``conditioning.train --output-map``).

Moments were not the main gap. Each layer group gets its own w, and ws drawn independently per
group are style mixing, which moves the paintings off the generator's own: on the benchmark's
tiny generator (trained without mixing regularisation), mapping-network ws drawn from z
correlated 0, 0.5, 0.9 and 1 between the groups scored image ratios of 4.20, 2.65, 1.21 and
1.01 (1.99 for independent groups on the bundled demo generator, trained with mixing). That
encoder's painted group ws were correlated -0.14 to 0.26. Training's whole-code term
(:func:`conditioning.train.unmixed_swd`, weight 4) ties the groups (correlation 0.54) and took
the image ratio to 2.45 (2.12 live) at no cost in responsiveness for that generator, but at
0.1 for another run's and for the demo generator's (see :mod:`conditioning.train`); a joint
map onto ws correlated 0.9 reached 1.76 but cost 0.1 in responsiveness, and a direct penalty
on the groups' differences (correlation 0.96) shrank their spread instead (4.13). Within a
state the painted ws still hold two thirds of their variance, so they are not a few tight
clusters.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from conditioning.encoder import GROUPS, Encoder
from conditioning.motion import MotionConfig, WMotion
from neuropaint.validate import NeuropaintError, check_positive

logger = logging.getLogger(__name__)

__all__ = ["fit_output_map", "gaussian_transport", "painted_group_ws"]

RIDGE = 1e-4  # Added to the painted covariance's eigenvalues, relative to their mean.
MIN_ROWS = 16


def _sqrt_psd(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(C^(1/2), C^(-1/2)) of a symmetric positive definite matrix."""
    evals, evecs = np.linalg.eigh(c)
    evals = np.clip(evals, 1e-12, None)
    root = np.sqrt(evals)
    return (evecs * root) @ evecs.T, (evecs / root) @ evecs.T


def gaussian_transport(source: np.ndarray, target: np.ndarray, *, ridge: float = RIDGE
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Affine optimal-transport map between the Gaussians fitted to two sets of vectors.

    Parameters
    ----------
    source, target : ndarray, shape (n, dim)
        Samples; the map carries the source's mean and covariance onto the target's.
    ridge : float
        Added to the source covariance's eigenvalues, times their mean, so that directions
        the source barely moves in are not blown up without limit.

    Returns
    -------
    matrix : ndarray, shape (dim, dim)
    shift : ndarray, shape (dim,)
        ``mapped = x @ matrix.T + shift``.
    """
    source = np.asarray(source, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if source.ndim != 2 or target.ndim != 2 or source.shape[1] != target.shape[1]:
        raise NeuropaintError(f"'source' and 'target' must be [n, dim] sets of one dim, got "
                              f"{source.shape} and {target.shape}.")
    if len(source) < 2 or len(target) < 2:
        raise NeuropaintError("a Gaussian fit needs at least 2 samples on each side.")
    dim = source.shape[1]
    m_p, m_w = source.mean(axis=0), target.mean(axis=0)
    c_p = np.cov(source, rowvar=False).reshape(dim, dim)
    c_w = np.cov(target, rowvar=False).reshape(dim, dim)
    c_p = c_p + ridge * max(float(np.trace(c_p)) / dim, 1e-12) * np.eye(dim)
    root, inv_root = _sqrt_psd(c_p)
    middle, _ = _sqrt_psd(root @ c_w @ root)
    matrix = inv_root @ middle @ inv_root
    matrix = (matrix + matrix.T) / 2  # symmetric in exact arithmetic
    return matrix, m_w - matrix @ m_p


@torch.no_grad()
def painted_group_ws(encoder: Encoder, normalized: np.ndarray, recording: np.ndarray,
                     times: np.ndarray, tau: float, *, batch: int = 4096) -> np.ndarray:
    """Group ws ``[N, 3, w_dim]`` along each recording's motion-smoothed path.

    Rows must be in time order within each recording. Each recording's path starts at rest
    at its first target and follows its rows with :class:`conditioning.motion.WMotion` (time
    constant ``tau``, no drift), stepping by the rows' own time differences.
    """
    tau = check_positive(tau, "tau")
    x = torch.from_numpy(np.ascontiguousarray(normalized, dtype=np.float32))
    targets = torch.cat([encoder.group_ws(x[i:i + batch]) for i in range(0, len(x), batch)]
                        ).cpu().numpy().astype(np.float64)  # [N, 3, w_dim]
    painted = np.empty_like(targets)
    for rec in np.unique(recording):
        idx = np.flatnonzero(recording == rec)
        motion = WMotion(MotionConfig(tau=tau), len(GROUPS), encoder.w_dim)
        motion.reset(targets[idx[0]])
        previous = times[idx[0]]
        for i in idx:
            painted[i] = motion.step(targets[i], max(float(times[i] - previous), 0.0))
            previous = times[i]
    return painted


def fit_output_map(encoder: Encoder, normalized: np.ndarray, recording: np.ndarray,
                   times: np.ndarray, w_pool: np.ndarray, *, tau: float) -> dict:
    """Fit and set the encoder's output map (see the module notes); return a report.

    Parameters
    ----------
    encoder : Encoder
        Any output map it has is dropped first: the map is fitted to the bare encoder.
    normalized : ndarray, shape (N, F)
        Standardised feature rows of the training recordings (as training standardised them).
    recording, times : ndarray, shape (N,)
        Each row's recording and time (seconds).
    w_pool : ndarray, shape (P, w_dim)
        Mapping-network samples of the generator: the target distribution.
    tau : float
        The motion time constant the paintings will be painted with.
    """
    if len(normalized) < MIN_ROWS:
        raise NeuropaintError(f"the output map needs at least {MIN_ROWS} training rows, got "
                              f"{len(normalized)}.")
    w_pool = np.asarray(w_pool, dtype=np.float64)
    encoder.clear_output_map()
    painted = painted_group_ws(encoder, normalized, recording, times, tau)
    matrices, shifts, spread = [], [], {}
    pool_var = float(w_pool.var(axis=0).sum())
    for g, name in enumerate(GROUPS):
        matrix, shift = gaussian_transport(painted[:, g], w_pool)
        matrices.append(matrix)
        shifts.append(shift)
        spread[name] = round(float(painted[:, g].var(axis=0).sum()) / max(pool_var, 1e-12), 4)
    encoder.set_output_map(np.stack(matrices), np.stack(shifts))
    report = {"tau": float(tau), "rows": len(normalized),
              "painted_to_w_variance": spread}
    logger.info("output map fitted on %d painted rows (tau %.2f s); painted/W variance per "
                "group: %s", len(normalized), tau, spread)
    return report
