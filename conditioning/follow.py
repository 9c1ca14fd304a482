"""EEG feature rows -> the painting's ``ws``, one frame at a time: the live loop's core.

:class:`LatentFollower` is the one implementation of what happens between the feature rows
and the generator, used by the live engine (:mod:`live.engine`) frame by frame and by offline
rendering (:func:`conditioning.render.follow_rows`) over a whole recording, so a recorded
session re-renders as it looked live:

1. rows arrive (:meth:`LatentFollower.push`), in the stream's feature order, matched by name to
   the encoder's (a missing regional feature falls back to whole-head, never a refusal);
2. until the calibration time, clean rows are kept; at that time (or as soon as there are
   ``MIN_CALIBRATION_ROWS`` of them) they set the session baseline of the encoder's
   normaliser; after it, an optional running update (an exponential average) follows slow
   drifts of the signal;
3. each frame (:meth:`LatentFollower.step`), the newest row, when it is clean and new, is
   encoded to a target ``ws``; when it is not clean (non-finite samples or a ``BAD*`` span
   in its window: blinks, saturation, a dead channel) there is no target and the last good
   latent is held (artifact gating);
4. :class:`conditioning.motion.WMotion` follows the target smoothly.

The mapping is an :class:`conditioning.encoder.Encoder` or a
:class:`conditioning.profile.PerformerProfile`. With a profile, step 3 is: each new clean row
gives the state posteriors and controls (:meth:`PerformerProfile.read`), a per-session
:class:`conditioning.player.StatePlayer` smooths them, commits to a state with hysteresis (on
the rows' EEG clock) and gives the target; the rest is the same. A profile carries the
performer's own baseline from their calibration, so its sessions usually skip the live
calibration (``calibration_s=0``).

Stage controls (:mod:`live.osc`, through :class:`live.engine.Engine`) act between step 3 and
step 4: :meth:`LatentFollower.set_held` pulls the target towards a *held* latent (amount 0:
the EEG's target as above, 1: the held latent alone, between: a straight blend in W), and
:meth:`LatentFollower.force_state` makes a profile's player paint one state. Neither touches
calibration, encoding or the player's reading of the EEG, which go on underneath.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from conditioning.encoder import take_features
from conditioning.motion import MotionConfig, WMotion
from conditioning.player import PlayerConfig
from eeg.features import FeatureFrame
from neuropaint.validate import NeuropaintError, check_positive

logger = logging.getLogger(__name__)

__all__ = ["MIN_CALIBRATION_ROWS", "FollowState", "LatentFollower"]

MIN_CALIBRATION_ROWS = 5  # Clean rows needed before the baseline is trusted.


@dataclass
class FollowState:
    """What one frame was made of (everything but the pixels).

    Attributes
    ----------
    ws : ndarray of float32, shape (num_ws, w_dim)
        The latent painted, after motion.
    valid : bool
        The newest row was clean (False: the last good latent is held).
    calibrating : bool
        The session baseline is not set yet (the painting rests at ``w_avg``).
    eeg_time : float
        Time of the newest EEG sample in the newest row (NaN before the first row).
    row : ndarray of float32 | None
        The newest row in the encoder's feature order (NaN where the stream lacks a feature),
        None before the first row.
    instrument : dict | None
        With a profile: smoothed ``posteriors`` per state, the ``committed`` state (None
        before the first) and ``controls`` (0..1), as :meth:`StatePlayer.describe` gives.
    """

    ws: np.ndarray
    valid: bool
    calibrating: bool
    eeg_time: float
    row: np.ndarray | None
    instrument: dict | None = None


class LatentFollower:
    """Calibration, encoding, artifact gating and motion for one session.

    Parameters
    ----------
    encoder : conditioning.encoder.Encoder
        Its normaliser gets this session's baseline (pass a copy to keep the original).
    names : sequence of str
        Feature names of the rows that will be pushed, in column order.
    motion : MotionConfig | None
        Motion in W (default ``MotionConfig()``).
    calibration_s : float
        Session time (seconds, on the clock :meth:`step` is given) at which the baseline is
        set from the clean rows seen so far; 0 keeps the encoder's baseline as it is.
    update_momentum : float | None
        After calibration, each clean row also moves the baseline with this momentum (the
        live running update); None: off.
    w_avg : ndarray, shape (w_dim,) | None
        Where the painting rests before the first target (usually the generator's ``w_avg``).
    seed : int
        Seed of the motion's drift.
    player : PlayerConfig | None
        With a profile: how its states are played (default: the profile's own).
    """

    def __init__(self, encoder, names, *, motion: MotionConfig | None = None,
                 calibration_s: float = 10.0, update_momentum: float | None = None,
                 w_avg: np.ndarray | None = None, seed: int = 0,
                 player: PlayerConfig | None = None):
        self.encoder = encoder
        self.names = list(names)
        self.calibration_s = check_positive(calibration_s, "calibration_s", allow_zero=True)
        if update_momentum is not None and not 0.0 < update_momentum <= 1.0:
            raise NeuropaintError(f"'update_momentum' must be in (0, 1] or None, got "
                                  f"{update_momentum!r}.")
        self.update_momentum = update_momentum
        self.index = np.asarray(encoder.match_features(self.names))  # -1: the stream lacks it
        motion = motion or MotionConfig()
        new_player = getattr(encoder, "new_player", None)  # a performer profile
        self.player = new_player(player) if new_player is not None else None
        if self.player is not None and motion.max_step is None:
            # A change of state morphs over the player's crossfade instead of cutting.
            motion = motion.model_copy(update={"max_step": self.player.speed_limit()})
        self.motion = WMotion(motion, encoder.num_ws, encoder.w_dim, w_avg=w_avg, seed=seed)
        self.calibrated = self.calibration_s == 0
        self._pending: list[np.ndarray] = []  # clean rows (encoder order) before calibration
        self._newest: np.ndarray | None = None  # the newest row to encode (missing: baseline)
        self._newest_shown: np.ndarray | None = None  # the same row, NaN where missing
        self._newest_clean = False
        self._newest_time = float("nan")
        self._fresh = False  # the newest row has not been encoded yet
        self.rows_seen = 0
        self.clean_rows_seen = 0
        self.driven = self.motion.target  # the newest target the EEG gave (w_avg before)
        self.held: np.ndarray | None = None  # a latent the stage controls hold (None: none)
        self.held_amount = 0.0  # 0: the EEG's target, 1: the held latent
        self._retarget = False  # a control changed: give the motion a new target now
        encoder.eval()

    def set_held(self, ws: np.ndarray | None, amount: float) -> None:
        """Hold the painting at ``ws`` ``[num_ws, w_dim]`` by ``amount`` (0..1): the target is
        ``(1 - amount) * EEG target + amount * ws`` from the next step; None or 0 releases."""
        if not 0.0 <= amount <= 1.0:
            raise NeuropaintError(f"'amount' must be between 0 and 1, got {amount!r}.")
        self.held = None if ws is None else np.asarray(ws, dtype=np.float32).copy()
        self.held_amount = float(amount)
        self._retarget = True

    def force_state(self, state: str | int | None) -> str | None:
        """Paint a profile's state (name or index) whatever the EEG says; None releases.

        Returns the state's name (None when released). The posteriors and the committed
        state go on following the EEG.
        """
        if self.player is None:
            raise NeuropaintError("forcing a state needs a performer profile; an encoder has "
                                  "no states.")
        states = self.player.states
        if state is None:
            self.player.forced = None
        elif isinstance(state, int) and not isinstance(state, bool) and 0 <= state < len(states):
            self.player.forced = state
        elif isinstance(state, str) and state in states:
            self.player.forced = states.index(state)
        else:
            raise NeuropaintError(f"unknown state {state!r}; the profile's states are "
                                  f"{', '.join(states)} (or 0 to {len(states) - 1}).")
        self._retarget = True
        return None if self.player.forced is None else states[self.player.forced]

    def clean_mask(self, rows: FeatureFrame) -> np.ndarray:
        """Rows that may drive the painting: flagged valid and finite in every used column."""
        values = np.asarray(rows.values, dtype=np.float32)
        present = values[:, self.index[self.index >= 0]]
        return np.asarray(rows.valid, dtype=bool) & np.isfinite(present).all(axis=1)

    def take(self, values: np.ndarray) -> np.ndarray:
        """Stream rows ``(n, n_in)`` -> the encoder's columns (missing: the baseline)."""
        return self.encoder.take_features(np.asarray(values, dtype=np.float32), self.index)

    def push(self, rows: FeatureFrame) -> None:
        """New feature rows, in time order, with the names given at construction."""
        if len(rows) == 0:
            return
        if list(rows.names) != self.names:
            raise NeuropaintError("the pushed rows' feature names differ from the ones this "
                                  "follower was built for.")
        clean = self.clean_mask(rows)
        self.rows_seen += len(rows)
        self.clean_rows_seen += int(clean.sum())
        if clean.any():
            good = self.take(np.asarray(rows.values)[clean])
            if not self.calibrated:
                self._pending.extend(good)
            elif self.update_momentum is not None and self.player is not None:
                self.encoder.recentre(good, self.update_momentum)  # a profile keeps its spread
            elif self.update_momentum is not None:
                self.encoder.normalizer.update(good, self.update_momentum)
        last = np.asarray(rows.values[-1:], dtype=np.float32)
        self._newest = self.take(last)[0]
        self._newest_shown = take_features(last, self.index)[0]
        self._newest_clean = bool(clean[-1])
        self._newest_time = float(rows.times[-1])
        self._fresh = True

    def _try_calibrate(self, t: float) -> None:
        if self.calibrated or t < self.calibration_s or len(self._pending) < MIN_CALIBRATION_ROWS:
            return
        if self.player is not None:
            self.encoder.recentre(np.stack(self._pending))  # a profile keeps its spread
        else:
            self.encoder.normalizer.calibrate(np.stack(self._pending))
        logger.info("baseline from %d clean rows up to %.1f s", len(self._pending), t)
        self._pending = []
        self.calibrated = True

    @torch.inference_mode()
    def _encode(self, row: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(row, dtype=np.float32))[None]  # [1, F]
        return self.encoder(x)[0].detach().cpu().numpy()  # [num_ws, w_dim]

    def step(self, t: float, dt: float) -> FollowState:
        """The frame at session time ``t``, ``dt`` seconds after the previous one."""
        self._try_calibrate(t)
        target = None
        valid = self._newest is not None and self._newest_clean
        if self.player is not None:
            if valid and self.calibrated and self._fresh:
                posteriors, controls = self.encoder.read(self._newest[None])
                self.player.push(posteriors[0], controls[0], self._newest_time)
                target = self.player.target()
                self._fresh = False
            elif self._retarget:  # a state was forced or released
                target = self.player.target()
        elif valid and self.calibrated and (self._fresh or self.update_momentum is not None):
            target = self._encode(self._newest)
            self._fresh = False
        if target is not None:
            self.driven = target
        if self._retarget or (self.held is not None and self.held_amount > 0):
            target = self.driven
            if self.held is not None and self.held_amount > 0:
                target = (1.0 - self.held_amount) * self.driven + self.held_amount * self.held
        self._retarget = False
        ws = self.motion.step(target, dt)
        return FollowState(ws=ws, valid=valid, calibrating=not self.calibrated,
                           eeg_time=self._newest_time, row=self._newest_shown,
                           instrument=None if self.player is None else self.player.describe())
