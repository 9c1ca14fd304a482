"""Stage controls: what a performer's other tools (OSC in, :mod:`live.osc`) tell the loop.

:class:`StageControls` owns the commands' queue and the state they set: hold, a target,
blend, a forced state, motion time constant and drift, freeze, blackout and its fade, and
snapshots. Any thread may :meth:`~StageControls.submit` (it never waits; a full queue drops
and counts); the engine applies at most ``per_frame`` commands at the start of each frame
(:meth:`~StageControls.apply`), so a flood costs bounded work, and shows each frame through
:meth:`~StageControls.shown` (the blackout's level). A bad command is refused, counted and
logged once; it never stops the painting. What each command does, with its arguments, is
the OSC-in address space in :mod:`live.osc`.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
from collections.abc import Callable

import numpy as np
from pylsl import local_clock

from conditioning.follow import LatentFollower
from neuropaint.validate import NeuropaintError

logger = logging.getLogger(__name__)

__all__ = ["COMMANDS", "COMMAND_QUEUE", "StageControls"]

COMMAND_QUEUE = 256  # Stage commands waiting for a frame; more are dropped (and counted).
COMMANDS = ("hold", "target", "blend", "force_state", "tau", "drift", "freeze", "blackout",
            "fade", "snapshot")  # What StageControls.submit takes (the OSC-in address space).
LOGGED_MAX = 256  # Distinct problems logged once each; after that they are only counted.

# (frame index, ws, image) of the painting now, or None before the first one.
Painted = Callable[[], "tuple[int, np.ndarray, np.ndarray] | None"]


def _flag(value, name: str) -> bool:
    """An on/off argument: a number (0 off, anything else on) or an OSC True/False."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and math.isfinite(value):
        return value != 0
    raise NeuropaintError(f"'{name}' takes 1 or 0, got {value!r}.")


def _number(value, name: str, low: float, high: float) -> float:
    """A finite number from ``low`` (exclusive when 0 and ``name`` is 'tau') to ``high``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
            value):
        raise NeuropaintError(f"'{name}' takes a number, got {value!r}.")
    low_ok = value > low if name == "tau" else value >= low
    if not low_ok or value > high:
        raise NeuropaintError(f"'{name}' must be from {low:g} to {high:g}, got {value!r}.")
    return float(value)


class StageControls:
    """The stage commands' queue and state, for one :class:`live.engine.Engine`.

    Parameters
    ----------
    follower : conditioning.follow.LatentFollower
        The engine's follower (hold, blend, forced state and motion act on it).
    painted : callable
        ``painted()`` -> ``(frame index, ws, image)`` of the painting now, or None.
    snapshots : live.sinks.SnapshotWriter | None
        Where ``snapshot`` writes; None refuses it with the reason.
    per_frame : int
        Most commands applied per frame.
    """

    def __init__(self, follower: LatentFollower, painted: Painted, snapshots=None, *,
                 per_frame: int = 16):
        self.follower, self.painted, self.snapshots = follower, painted, snapshots
        self.per_frame = int(per_frame)
        self.commands: queue.Queue = queue.Queue(maxsize=COMMAND_QUEUE)
        self.applied = 0
        self.dropped = 0  # the queue was full
        self.refused = 0  # bad arguments or not possible now
        self._drop_lock = threading.Lock()
        self._logged: set[str] = set()
        self.hold = False
        self.blend = 0.0
        self.target_name: str | None = None
        self.frozen = False
        self.blackout = False
        self.fade = 0.0  # seconds a blackout takes (and its release)
        self.level = 1.0  # brightness now: 1 the painting, 0 black
        self._handlers = {"hold": self._cmd_hold, "target": self._cmd_target,
                          "blend": self._cmd_blend, "force_state": self._cmd_force_state,
                          "tau": self._cmd_tau, "drift": self._cmd_drift,
                          "freeze": self._cmd_freeze, "blackout": self._cmd_blackout,
                          "fade": self._cmd_fade, "snapshot": self._cmd_snapshot}

    # ------------------------------------------------------------------ queue
    def submit(self, command: str, *args) -> bool:
        """Queue a stage command (thread-safe, never waits): one of :data:`COMMANDS` with
        its arguments as OSC gives them. False when the queue is full (dropped, counted)."""
        try:
            self.commands.put_nowait((command, args, local_clock()))
            return True
        except queue.Full:
            with self._drop_lock:
                self.dropped += 1
                dropped = self.dropped
            if dropped in (1, 100, 10_000):
                logger.warning("stage commands arrive faster than frames take them: %d "
                               "dropped so far", dropped)
            return False

    def apply(self) -> None:
        """Apply up to ``per_frame`` queued commands (at the start of a frame)."""
        for _ in range(self.per_frame):
            try:
                command, args, _sent = self.commands.get_nowait()
            except queue.Empty:
                return
            handler = self._handlers.get(command)
            try:
                if handler is None:
                    raise NeuropaintError(f"unknown command; the commands are "
                                          f"{', '.join(COMMANDS)}.")
                handler(*args)
                self.applied += 1
            except (NeuropaintError, TypeError) as exc:
                # TypeError: too many arguments for the command.
                self.refused += 1
                text = str(exc) if isinstance(exc, NeuropaintError) else "too many arguments"
                self.log_once(f"{command}:{text}", f"stage command {command!r} {list(args)} "
                              f"ignored: {text}")

    def log_once(self, key: str, message: str) -> None:
        """A warning the first time ``key`` is seen (at most :data:`LOGGED_MAX` keys)."""
        if key in self._logged or len(self._logged) >= LOGGED_MAX:
            return
        self._logged.add(key)
        logger.warning("%s (logged once)", message)

    # ------------------------------------------------------------------ what is shown
    def shown(self, image: np.ndarray, dt: float) -> np.ndarray:
        """The painting as the audience sees it: dimmed or black during a blackout."""
        goal = 0.0 if self.blackout else 1.0
        if self.level != goal:
            step = math.inf if self.fade <= 0 else dt / self.fade
            self.level = max(goal, self.level - step) if goal < self.level else min(
                goal, self.level + step)
        if self.level >= 1.0:
            return image
        if self.level <= 0.0:
            return np.zeros_like(image)
        return (image.astype(np.float32) * self.level).astype(np.uint8)

    def status(self) -> dict:
        """The controls' state, for the engine's status (``stage``)."""
        player = self.follower.player
        forced = None if player is None or player.forced is None else player.states[
            player.forced]
        motion = self.follower.motion.config
        return {"hold": self.hold, "blend": self.blend, "target": self.target_name,
                "forced": forced, "frozen": self.frozen, "blackout": self.blackout,
                "level": round(self.level, 3), "fade": self.fade, "tau": motion.tau,
                "drift": motion.drift, "commands": self.applied,
                "commands_dropped": self.dropped, "commands_refused": self.refused}

    # ------------------------------------------------------------------ the commands
    def _held_now(self) -> np.ndarray:
        """The painting's latent now, without the drift (what ``hold`` keeps)."""
        return self.follower.motion.position

    def _update_held(self) -> None:
        follower = self.follower
        if follower.held is None and (self.hold or self.blend > 0):
            follower.held = self._held_now()
        follower.set_held(follower.held, 1.0 if self.hold else self.blend)

    def _cmd_hold(self, on=1) -> None:
        self.hold = _flag(on, "hold")
        if self.hold:
            self.follower.held = self._held_now()  # the painting as it is now
            self.target_name = None
        self._update_held()

    def _cmd_target(self, which=None) -> None:
        if which is None or which == "":
            self.hold, self.target_name = False, None
            self._update_held()
            return
        player = self.follower.player
        if player is None:
            raise NeuropaintError("targets are a performer profile's states; an encoder has "
                                  "none.")
        if isinstance(which, float) and which.is_integer():
            which = int(which)
        if isinstance(which, int) and not isinstance(which, bool) and 0 <= which < len(
                player.states):
            index = which
        elif isinstance(which, str) and which in player.states:
            index = player.states.index(which)
        else:
            raise NeuropaintError(f"unknown target {which!r}; the profile's targets are "
                                  f"{', '.join(player.states)} (or 0 to "
                                  f"{len(player.states) - 1}).")
        self.follower.held = player.targets[index].copy()
        self.hold, self.target_name = True, player.states[index]
        self._update_held()

    def _cmd_blend(self, amount) -> None:
        self.blend = _number(amount, "blend", 0.0, 1.0)
        self._update_held()

    def _cmd_force_state(self, state=None) -> None:
        if isinstance(state, float) and state.is_integer():
            state = int(state)
        self.follower.force_state(None if state == "" else state)

    def _cmd_tau(self, tau) -> None:
        self.follower.motion.retune(tau=_number(tau, "tau", 0.0, 600.0))

    def _cmd_drift(self, drift) -> None:
        self.follower.motion.retune(drift=_number(drift, "drift", 0.0, 100.0))

    def _cmd_freeze(self, on=1) -> None:
        self.frozen = _flag(on, "freeze")

    def _cmd_blackout(self, on=1) -> None:
        self.blackout = _flag(on, "blackout")

    def _cmd_fade(self, seconds) -> None:
        self.fade = _number(seconds, "fade", 0.0, 600.0)

    def _cmd_snapshot(self, name=None) -> None:
        if self.snapshots is None:
            raise NeuropaintError("no snapshot folder: start live.render with --snapshot-dir "
                                  "or --record.")
        if name is not None and not isinstance(name, str):
            raise NeuropaintError(f"a snapshot's name must be a string, got "
                                  f"{type(name).__name__}.")
        painted = self.painted()
        if painted is None:
            raise NeuropaintError("nothing painted yet.")
        index, ws, image = painted
        self.snapshots.save(index, image, ws, name or None)
