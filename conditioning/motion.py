"""Motion in W: a smooth, frame-rate independent path from the encoder's targets to the painting.

The encoder gives a target ``ws`` for each new EEG feature row; painting it directly would jump
whenever the features jump. :class:`WMotion` follows the target with a critically damped
second-order system (a spring with exactly enough damping not to overshoot), the usual
"smooth damp" of animation and camera control::

    x'' = omega² (target - x) - 2 omega x'

For a target held constant over a step of ``dt`` the system has a closed-form solution, so
each step is the exact discretisation: 100 steps of ``dt`` and 50 steps of ``2 dt`` land in
the same place, and the painting moves at the same pace at 10 or 60 fps. The target is held
between calls (zero-order hold); ``step(None, dt)`` keeps following the last target, which is
how artifact gating holds the last good latent.

``tau`` is the time constant in the everyday sense: after a step change of the target, the
path has covered 1 - 1/e (63 %) of the distance after ``tau`` seconds. For the critically
damped system that means ``omega = 2.146 / tau`` (the root of ``(1 + u) exp(-u) = 1/e``).

An optional slow drift (a sum of a few sinusoids with incommensurate periods, each along a
fixed random unit direction of W) is added to the output, so that the painting breathes when
the EEG is still. It is smooth, bounded, and seeded: two runs with one seed drift alike.

:meth:`WMotion.retune` changes ``tau`` and ``drift`` while the path runs (the stage controls
of :mod:`live.osc`): the position and velocity carry on, and the drift's size glides to its
new value with the time constant ``tau`` rather than jumping.

Both the live engine and offline rendering (:mod:`conditioning.render`) use this class: it is
the one implementation of motion in W. Pure numpy; ``ws`` are float32 ``[num_ws, w_dim]``.
"""

from __future__ import annotations

import logging
import math

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from neuropaint.validate import NeuropaintError, build_config, check_int, check_positive

logger = logging.getLogger(__name__)

__all__ = ["TAU_TO_OMEGA", "MotionConfig", "WMotion"]

# omega * tau such that a critically damped step response has covered 1 - 1/e at t = tau:
# (1 + u) exp(-u) = exp(-1), u = 2.1462... (solved once by Newton's method; see the test).
TAU_TO_OMEGA = 2.1461932206205825
_DRIFT_PARTIALS = 3  # Sinusoids in the drift.
# Period ratios of the partials: powers of the golden ratio, so the sum never repeats exactly.
_DRIFT_RATIOS = (1.0, 1.618033988749895, 2.618033988749895)


class MotionConfig(BaseModel):
    """How the painting moves through W."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tau: float = Field(0.5, gt=0, le=600, description="Time constant in seconds: after a step "
                       "change of the target, 63 % of the way is covered after tau seconds "
                       "(critically damped, no overshoot).")
    drift: float = Field(0.0, ge=0, description="RMS size of the slow wander added to every w, "
                         "in W units (L2 norm of the offset of one w vector); 0 = off.")
    drift_period: float = Field(20.0, gt=0, description="Period in seconds of the slowest "
                                "drift sinusoid; the others are 1.6x and 2.6x faster.")
    max_step: float | None = Field(None, gt=0, description="Largest distance moved per second "
                                   "(L2 norm over each w vector, the worst one counts); the "
                                   "step is scaled by dt so the clamp is frame-rate "
                                   "independent. None: no clamp.")


class WMotion:
    """A critically damped follow of target ``ws``, plus an optional slow drift.

    Parameters
    ----------
    config : MotionConfig
        Time constant, drift and clamp.
    num_ws : int
        Number of ws of the generator.
    w_dim : int
        W dimensionality.
    w_avg : array-like, shape (w_dim,) | None
        Where the path starts (broadcast to every w) until :meth:`reset` says otherwise;
        usually ``G.mapping.w_avg``. None: the origin.
    seed : int
        Seed of the drift directions and phases.

    Examples
    --------
    >>> motion = WMotion(MotionConfig(tau=0.5), num_ws=8, w_dim=32)
    >>> ws = motion.step(target_ws, dt=1 / 15)  # doctest: +SKIP
    >>> ws = motion.step(None, dt=1 / 15)  # artifact: keep following the last target  # doctest: +SKIP
    """

    def __init__(self, config: MotionConfig, num_ws: int, w_dim: int, *,
                 w_avg: np.ndarray | None = None, seed: int = 0):
        if not isinstance(config, MotionConfig):
            raise NeuropaintError(f"'config' must be a MotionConfig, got "
                                  f"{type(config).__name__}.")
        self.config = config
        self.num_ws = check_int(num_ws, "num_ws", minimum=1)
        self.w_dim = check_int(w_dim, "w_dim", minimum=1)
        self.seed = check_int(seed, "seed", minimum=0)
        self.omega = TAU_TO_OMEGA / config.tau
        if w_avg is None:
            self._home = np.zeros((self.num_ws, self.w_dim))
        else:
            w_avg = _as_array(w_avg, "w_avg").reshape(-1)
            if w_avg.shape != (self.w_dim,):
                raise NeuropaintError(f"'w_avg' must have shape ({self.w_dim},), got "
                                      f"{w_avg.shape}.")
            self._home = np.broadcast_to(w_avg, (self.num_ws, self.w_dim)).copy()
        rng = np.random.default_rng(self.seed)
        dirs = rng.standard_normal((_DRIFT_PARTIALS, self.w_dim))
        self._drift_dirs = dirs / np.linalg.norm(dirs, axis=1, keepdims=True)  # [K, w_dim]
        self._drift_phases = rng.uniform(0.0, 2.0 * math.pi, _DRIFT_PARTIALS)  # [K]
        self.reset()

    # --- state --------------------------------------------------------------------------

    def reset(self, ws0: np.ndarray | None = None) -> None:
        """Start at rest at ``ws0`` (default: ``w_avg``), with that as the target; clock to 0."""
        start = self._home if ws0 is None else self._check_ws(ws0, "ws0")
        self._pos = np.array(start, dtype=np.float64)       # [num_ws, w_dim]
        self._vel = np.zeros_like(self._pos)                 # [num_ws, w_dim]
        self._target = self._pos.copy()                      # [num_ws, w_dim]
        self._drift_amp = self.config.drift                  # glides to config.drift
        self.time = 0.0

    def retune(self, *, tau: float | None = None, drift: float | None = None) -> MotionConfig:
        """Change the time constant and/or the drift's size from now on; return the new config.

        The path keeps its position and velocity (no jump); a new drift size is reached
        smoothly, with the time constant ``tau``. Bad values are a one-line
        :class:`NeuropaintError` naming the field, as for :class:`MotionConfig`.
        """
        changes = {k: v for k, v in (("tau", tau), ("drift", drift)) if v is not None}
        self.config = build_config(MotionConfig, self.config.model_dump(), **changes)
        self.omega = TAU_TO_OMEGA / self.config.tau
        return self.config

    @property
    def position(self) -> np.ndarray:
        """The followed ws without drift, float32 ``[num_ws, w_dim]``."""
        return self._pos.astype(np.float32)

    @property
    def velocity(self) -> np.ndarray:
        """d(position)/dt, float32 ``[num_ws, w_dim]``."""
        return self._vel.astype(np.float32)

    @property
    def target(self) -> np.ndarray:
        """The target currently followed (the last one given), float32 ``[num_ws, w_dim]``."""
        return self._target.astype(np.float32)

    @property
    def ws(self) -> np.ndarray:
        """The current output: position plus drift, float32 ``[num_ws, w_dim]``."""
        return (self._pos + self._drift_at(self.time)).astype(np.float32)

    # --- motion -------------------------------------------------------------------------

    def step(self, target_ws: np.ndarray | None, dt: float) -> np.ndarray:
        """Advance by ``dt`` seconds towards ``target_ws``; return the new ``ws``.

        Parameters
        ----------
        target_ws : array-like, shape (num_ws, w_dim) | None
            The new target (numpy or torch), held until the next call. None keeps the last
            target (artifact gating: the last good latent is held).
        dt : float
            Seconds since the previous step (>= 0); any frame rate, even an irregular one.

        Returns
        -------
        ws : ndarray of float32, shape (num_ws, w_dim)
            Position plus drift at the new time.
        """
        dt = check_positive(dt, "dt", allow_zero=True)
        if target_ws is not None:
            self._target = self._check_ws(target_ws, "target_ws")
        if dt > 0:
            before = self._pos
            pos, vel = self._exact_step(self._pos - self._target, self._vel, dt)
            pos += self._target
            if self.config.max_step is not None:
                pos, vel = self._clamp(before, pos, vel, dt)
            self._pos, self._vel = pos, vel
            self.time += dt
            if self._drift_amp != self.config.drift:  # after retune(drift=...): glide there
                gap = self.config.drift - self._drift_amp
                self._drift_amp += gap * (1.0 - math.exp(-dt / self.config.tau))
                if abs(self.config.drift - self._drift_amp) < 1e-6:
                    self._drift_amp = self.config.drift
        return self.ws

    def _exact_step(self, err: np.ndarray, vel: np.ndarray, dt: float
                    ) -> tuple[np.ndarray, np.ndarray]:
        """Closed-form solution of e'' = -omega² e - 2 omega e' after ``dt`` (e = x - target).

        e(t) = (e0 + (v0 + omega e0) t) exp(-omega t)
        v(t) = (v0 - omega (v0 + omega e0) t) exp(-omega t)
        """
        w = self.omega
        decay = math.exp(-w * dt)
        common = vel + w * err  # [num_ws, w_dim]
        new_err = (err + common * dt) * decay
        new_vel = (vel - w * common * dt) * decay
        return new_err, new_vel

    def _clamp(self, before: np.ndarray, pos: np.ndarray, vel: np.ndarray, dt: float
               ) -> tuple[np.ndarray, np.ndarray]:
        limit = self.config.max_step * dt
        move = pos - before  # [num_ws, w_dim]
        worst = float(np.linalg.norm(move, axis=1).max())
        if worst <= limit:
            return pos, vel
        move *= limit / worst
        # Keep the state consistent: the velocity is the (clamped) mean speed of this step.
        return before + move, move / dt

    def _drift_at(self, t: float) -> np.ndarray:
        amp = self._drift_amp
        if amp == 0.0:
            return np.zeros((1, self.w_dim))
        # Each partial's RMS is a/sqrt(2) along a unit direction; with K partials along
        # near-orthogonal directions the RMS norm of the sum is a*sqrt(K/2) = drift.
        a = amp * math.sqrt(2.0 / _DRIFT_PARTIALS)
        periods = self.config.drift_period / np.asarray(_DRIFT_RATIOS)
        waves = a * np.sin(2.0 * math.pi * t / periods + self._drift_phases)  # [K]
        return (waves @ self._drift_dirs)[None, :]  # [1, w_dim], the same for every w

    def _check_ws(self, ws: np.ndarray, name: str) -> np.ndarray:
        arr = _as_array(ws, name)
        if arr.shape != (self.num_ws, self.w_dim):
            raise NeuropaintError(f"'{name}' must have shape ({self.num_ws}, {self.w_dim}), got "
                                  f"{arr.shape}.")
        if not np.isfinite(arr).all():
            raise NeuropaintError(f"'{name}' holds non-finite values; pass None to hold the "
                                  f"last target instead.")
        return arr


def _as_array(value, name: str) -> np.ndarray:
    """numpy float64 from a numpy array, a torch tensor or nested lists."""
    if hasattr(value, "detach"):  # a torch tensor, without importing torch here
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise NeuropaintError(f"'{name}' must be an array of numbers, got "
                              f"{type(value).__name__}.") from None
