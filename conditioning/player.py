"""From a profile's posteriors and controls to the painting's target: smoothing and hysteresis.

A performer's states arrive as posteriors on every clean feature row; painting the most
probable state of each row would cut between paintings whenever one row wavers. The
:class:`StatePlayer` makes that a steady instrument:

1. **evidence over time**: the posteriors are filtered by a hidden Markov model whose
   state sticks (a change is expected about every ``1 / switch_rate`` seconds): each new
   row multiplies in its posterior, tempered by ``dt / evidence_tau`` because neighbouring
   rows share most of their window and are not independent observations (the forward
   algorithm, Rabiner 1989, "A tutorial on hidden Markov models", eq. 19-20). Evidence
   thus adds up across a whole stretch of one state, so a few seconds that look like
   another state do not overturn it, while a real change with clear evidence wins within a
   second or two. All on the rows' own EEG clock, so offline and live agree;
2. **hysteresis**: the painting *commits* to a state only after that state has led the
   filtered posteriors, above ``threshold``, for ``hold`` seconds without a break; a blink
   (no clean rows: nothing is pushed) or a short excursion into another state leaves the
   committed state as it is. The first commitment takes the same test.

   On synthetic sessions (held-out seeds, ``benchmarks/instrument.py``) an exponential
   average of the posteriors (any time constant from 0.4 to 2 s, any hold) left 14 % of
   settled frames on the wrong state, as the per-row state model does (0.85 balanced
   accuracy): its errors come in stretches of seconds, which an average cannot outvote. The
   sticky filter brought that to 10-11 % with a commit after 2.0-2.5 s (p50). How sticky is
   best depends on the performer and the paradigm, so a calibration rehearses a few
   settings on its own out-of-block posteriors and keeps the best
   (:mod:`conditioning.playertune`);
3. **target**: the committed state's target ``ws`` plus the continuous controls, each moving
   the painting along its own latent direction *within* the target (a control at the middle
   of the performer's range, 0.5, adds nothing; 0 and 1 add ``-amount`` and ``+amount``
   times the direction). Controls are smoothed with ``control_tau``.

A state can be *forced* from outside (:attr:`StatePlayer.forced`, the stage controls of
:mod:`live.osc`): the target is then that state's, with the controls as usual, while the
posteriors and the committed state go on following the EEG (and say so).

Before the first commitment the target is the average of the targets weighted by the
smoothed posteriors (a quiet blend that resolves as soon as a state holds). The move from
one target to the next is :class:`conditioning.motion.WMotion`'s job, as for every mapping,
with its speed limited so that the crossing between the two closest targets takes at least
``crossfade`` seconds (:meth:`StatePlayer.speed_limit`): at 10 fps on the synthetic sessions
the largest change between neighbouring frames fell from 24 to 17 (mean pixel levels,
where the two closest targets' paintings differ by 44), so no change of state reads as a cut.
Pure numpy; one update costs a few microseconds.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["PlayerConfig", "StatePlayer"]


class PlayerConfig(BaseModel):
    """How a profile's states and controls steer the painting."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    evidence_tau: float = Field(0.5, gt=0, le=60, description="Seconds of feature rows that "
                                "count as one independent observation of the state (about "
                                "half the feature window: rows overlap).")
    switch_rate: float = Field(0.1, gt=0, le=10, description="Expected state changes per "
                               "second: lower holds states more firmly, higher answers "
                               "faster.")
    hold: float = Field(0.2, ge=0, le=60, description="Seconds a new state must lead the "
                        "smoothed posteriors before the painting commits to it.")
    threshold: float = Field(0.5, ge=0, le=1, description="Smoothed posterior a state needs "
                             "to count as leading.")
    crossfade: float = Field(1.0, ge=0, le=60, description="Least seconds a move between "
                             "the two closest targets takes: the painting's speed in W is "
                             "limited to their distance per crossfade, so a change of state "
                             "morphs instead of cutting (0: no limit).")
    control_tau: float = Field(1.0, ge=0, le=60, description="Seconds over which the "
                               "continuous controls are averaged.")
    control_amount: float = Field(0.75, ge=0, le=10, description="How far a control at 0 or 1 "
                                  "moves the painting along its direction, in standard "
                                  "deviations of W along it.")


def _blend(old: np.ndarray, new: np.ndarray, dt: float, tau: float) -> np.ndarray:
    if tau <= 0 or not math.isfinite(dt):
        return new.copy()
    alpha = 1.0 - math.exp(-max(dt, 0.0) / tau)
    return old + alpha * (new - old)


class StatePlayer:
    """Smoothed posteriors, committed state and controls of one session.

    Parameters
    ----------
    targets : ndarray, shape (n_states, num_ws, w_dim)
    directions : ndarray, shape (n_controls, num_ws, w_dim)
        One latent direction per control, already scaled to one standard deviation of W.
    states, controls : sequence of str
    config : PlayerConfig
    """

    def __init__(self, targets: np.ndarray, directions: np.ndarray, states, controls,
                 config: PlayerConfig | None = None):
        self.config = config or PlayerConfig()
        self.targets = np.asarray(targets, dtype=np.float32)
        self.directions = np.asarray(directions, dtype=np.float32)
        self.states = list(states)
        self.controls = list(controls)
        self.posteriors: np.ndarray | None = None  # smoothed [K]
        self.control_values: np.ndarray | None = None  # smoothed [C], 0..1
        self.committed: int | None = None
        self.forced: int | None = None  # a state painted whatever the EEG says (None: off)
        self._candidate: int | None = None
        self._candidate_since = math.nan
        self._last_time = math.nan

    def push(self, posteriors: np.ndarray, controls: np.ndarray, time: float) -> None:
        """One clean row's posteriors ``[K]`` and controls ``[C]`` (0..1), at EEG ``time``."""
        posteriors = np.asarray(posteriors, dtype=np.float64)
        controls = np.asarray(controls, dtype=np.float64)
        cfg = self.config
        dt = time - self._last_time if math.isfinite(self._last_time) else math.inf
        self._last_time = time
        if self.posteriors is None:
            self.posteriors = posteriors.copy()
            self.control_values = controls.copy()
        else:
            self.posteriors = self._forward(self.posteriors, posteriors, dt)
            self.control_values = _blend(self.control_values, controls, dt, cfg.control_tau)
        lead = int(np.argmax(self.posteriors))
        if self.posteriors[lead] < cfg.threshold or lead == self.committed:
            self._candidate = None  # nothing challenges the committed state
            return
        if lead != self._candidate:
            self._candidate, self._candidate_since = lead, time
        if time - self._candidate_since >= cfg.hold:
            self.committed = lead
            self._candidate = None

    def _forward(self, belief: np.ndarray, posteriors: np.ndarray, dt: float) -> np.ndarray:
        """One step of the sticky HMM filter: predict over ``dt``, then weigh in the row."""
        k = len(belief)
        dt = min(max(dt, 0.0), 5.0) if math.isfinite(dt) else 5.0
        stay = math.exp(-self.config.switch_rate * dt)  # P(no change during dt)
        predicted = stay * belief + (1.0 - stay) * (1.0 - belief) / max(k - 1, 1)
        weight = dt / self.config.evidence_tau
        log_b = np.log(np.maximum(predicted, 1e-300)) + weight * np.log(
            np.maximum(posteriors, 1e-300))
        log_b -= log_b.max()
        out = np.exp(log_b)
        return out / out.sum()

    def speed_limit(self) -> float | None:
        """Largest W distance per second (worst w, as :class:`conditioning.motion.MotionConfig`
        ``max_step`` counts it) for :attr:`PlayerConfig.crossfade`; None without a limit."""
        k = len(self.targets)
        if self.config.crossfade <= 0 or k < 2:
            return None
        closest = min(float(np.linalg.norm(self.targets[i] - self.targets[j], axis=-1).max())
                      for i in range(k) for j in range(i + 1, k))
        return closest / self.config.crossfade if closest > 0 else None

    def target(self) -> np.ndarray | None:
        """The target ``ws`` ``[num_ws, w_dim]`` now (None before the first row, unless a
        state is forced)."""
        if self.forced is not None:
            base = self.targets[self.forced].copy()
        elif self.posteriors is None:
            return None
        elif self.committed is None:
            base = np.tensordot(self.posteriors.astype(np.float32), self.targets, axes=1)
        else:
            base = self.targets[self.committed].copy()
        if len(self.controls) and self.control_values is not None:
            lean = (self.control_values.astype(np.float32) - 0.5) * 2.0 * self.config.control_amount
            base += np.tensordot(lean, self.directions, axes=1)
        return base

    def describe(self) -> dict:
        """What the viewer and OSC show: posteriors, committed state, controls, and the
        forced state (None when the EEG chooses)."""
        post = {} if self.posteriors is None else {
            s: round(float(p), 4) for s, p in zip(self.states, self.posteriors, strict=True)}
        ctrl = {} if self.control_values is None else {
            c: round(float(v), 4) for c, v in zip(self.controls, self.control_values, strict=True)}
        return {"states": list(self.states), "posteriors": post,
                "committed": None if self.committed is None else self.states[self.committed],
                "controls": ctrl,
                "forced": None if self.forced is None else self.states[self.forced]}
