"""``python -m live.simulate``: a simulated EEG headset on LSL, for the demo and the tests.

Examples
--------
python -m live.simulate                                   # 32 ch, 256 Hz, cycling states
python -m live.simulate --name sim --states eyes_closed,focused --state-duration 20
python -m live.simulate --file session.fif --loop --chunk 32
python -m live.simulate --format int16 --no-labels --duration 30

An LSL outlet that looks like a real amplifier's: type ``EEG``, channel labels, units
(``microvolts``), types and, for a recording that has them, sensor positions (``location``
with ``X``, ``Y``, ``Z`` in millimetres, MNE's head frame) under ``desc/channels/channel``,
``desc/manufacturer`` ``neuropaint simulator``, and a source_id (``neuropaint-sim:NAME`` by
default) so that a consumer can tell a restarted simulator is the same device. Chunks are
pushed in real time: sample ``k`` leaves at ``t0 + k / rate`` on ``pylsl.local_clock()`` and
carries that time stamp, so the pace never drifts however long it runs.

The signal is either

- synthetic (the default): :func:`eeg.synthetic.make_raw`, one block per brain state
  (``state_duration`` seconds, a new seed for each block), made one or two blocks ahead by a
  background thread so that pushing never waits. Consecutive blocks overlap by half a second
  and are cross-faded with equal-power (cos/sin) weights, so the signal is continuous at
  every boundary and the state changes smoothly. The states cycle in order; a performer can
  type a state's name or number and Enter (when stdin is a terminal, or with ``--stdin``
  from a parent's pipe) to switch to it and hold it, and ``cycle`` to go back to cycling;
  each is echoed on stderr, a typo refused with the valid names and numbers. Each change
  is logged with its LSL time and, unless ``--no-markers``, sent on a marker stream
  ``NAME-states``; or
- a recording (``--file``): anything :func:`eeg.io.read_raw` reads, its EEG channels at the
  file's rate, looped with ``--loop``.

``--format int16`` sends integers in microvolts (rounded, clipped at +-32767 µV), as some
amplifiers do; ``--no-labels`` leaves the channel description out, as some cheap devices do.

The first line on stdout, printed once the outlet is up, is
``live.simulate: streaming 'NAME' (32 ch, 256 Hz, source_id '...')``: a parent process
(``live.render``) waits for it. SIGINT and SIGTERM stop the simulator cleanly (exit 0).
"""

from __future__ import annotations

import argparse
import collections
import logging
import sys
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pylsl
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from eeg.channels import standard_channel_set
from eeg.io import read_raw
from eeg.synthetic import list_states, make_raw
from neuropaint.logs import run_cli, setup_logging
from neuropaint.signals import stop_on_signals
from neuropaint.validate import NeuropaintError, build_config

logger = logging.getLogger(__name__)

__all__ = ["Simulator", "SimulatorConfig", "describe_command", "main", "marker_stream_name",
           "parse_command"]

_SYNTHETIC_CHANNELS = (8, 16, 32, 64)
_FADE = 0.5  # Seconds of cross-fade between consecutive synthetic blocks.
_AHEAD = 2  # Synthetic blocks made ahead of the one being pushed.
_MAX_LAG = 1.0  # Seconds behind schedule (a suspended process) after which the clock resyncs.
_INT16_MAX = 32767


class SimulatorConfig(BaseModel):
    """What the simulated headset streams."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("neuropaint-sim", min_length=1, description="LSL stream name.")
    type: str = Field("EEG", min_length=1, description="LSL content type.")
    source_id: str | None = Field(None, description="LSL source_id; None: "
                                  "'neuropaint-sim:NAME'; '': none (a consumer then cannot "
                                  "tell a restarted simulator is the same device).")
    file: Path | None = Field(None, description="Stream this recording (any file "
                              "eeg.io.read_raw reads) instead of synthetic EEG.")
    loop: bool = Field(False, description="With file: start again at its end (else stop).")
    units: Literal["auto", "V", "uV", "mV"] = Field(
        "auto", description="With file: the unit of its numbers, as eeg.io.read_raw's 'units' "
        "(auto rescales an amplitude that cannot be EEG in the file's unit, and says so).")
    channels: int = Field(32, description="Synthetic: 8, 16, 32 or 64 standard channels.")
    rate: float = Field(256.0, ge=64.0, le=16384.0, description="Synthetic: sampling rate "
                        "in Hz.")
    states: list[str] | None = Field(None, min_length=1, description="Synthetic: the states "
                                     "to cycle through, in order; None: all of them.")
    state_duration: float = Field(10.0, gt=0, le=3600, description="Synthetic: seconds per "
                                  "state (each block of EEG).")
    chunk: int = Field(16, ge=1, le=65536, description="Samples per pushed chunk.")
    format: Literal["float32", "double64", "int16"] = Field(
        "float32", description="Sample format on the wire (int16: whole microvolts).")
    labels: bool = Field(True, description="Describe the channels (labels, units, types); "
                         "False sends no channel description at all.")
    markers: bool = Field(True, description="Synthetic: also send each state change on a "
                          "marker stream NAME-states.")
    seed: int = Field(0, ge=0, description="Seed of the synthetic EEG (block i uses a seed "
                      "derived from it).")
    duration: float | None = Field(None, gt=0, description="Stop after this many seconds; "
                                   "None: run until stopped.")

    @field_validator("channels")
    @classmethod
    def _known_layout(cls, value: int) -> int:
        if value not in _SYNTHETIC_CHANNELS:
            valid = ", ".join(str(n) for n in _SYNTHETIC_CHANNELS)
            raise ValueError(f"must be one of {valid}")
        return value

    @field_validator("states")
    @classmethod
    def _known_states(cls, value: list[str] | None) -> list[str] | None:
        unknown = [name for name in value or [] if name not in list_states()]
        if unknown:
            raise ValueError(f"unknown state(s) {', '.join(unknown)}; valid: "
                             f"{', '.join(list_states())}")
        return value

    @model_validator(mode="after")
    def _source_options(self) -> SimulatorConfig:
        synthetic_only = {"channels", "rate", "states", "state_duration", "markers"}
        if self.file is not None:
            clash = sorted(synthetic_only & self.model_fields_set)
            if clash:
                raise ValueError(f"{', '.join(clash)}: for synthetic EEG only (a file brings "
                                 "its own channels and rate)")
        elif self.loop:
            raise ValueError("loop applies to file only; synthetic EEG runs until stopped")
        elif "units" in self.model_fields_set:
            raise ValueError("units applies to file only; synthetic EEG is in volts")
        return self

    @property
    def stream_source_id(self) -> str:
        """The source_id the outlet gets."""
        return f"neuropaint-sim:{self.name}" if self.source_id is None else self.source_id


def marker_stream_name(name: str) -> str:
    """Name of the marker stream that carries a simulator's state changes."""
    return f"{name}-states"


class Simulator:
    """A simulated headset: an LSL outlet pushing synthetic or recorded EEG in real time.

    Parameters
    ----------
    config : SimulatorConfig
        What to stream.

    Examples
    --------
    >>> config = build_config(SimulatorConfig, name="sim", channels=8)  # doctest: +SKIP
    >>> with Simulator(config) as sim:  # doctest: +SKIP
    ...     sim.set_state("eyes_closed")
    """

    def __init__(self, config: SimulatorConfig):
        if not isinstance(config, SimulatorConfig):
            raise NeuropaintError(f"'config' must be a SimulatorConfig, got "
                                  f"{type(config).__name__}.")
        self.config = config
        self.finished = threading.Event()  # Set when the stream ended (duration, file end).
        self.error: BaseException | None = None  # What stopped the push thread, if anything.
        self.n_pushed = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._outlet: pylsl.StreamOutlet | None = None
        self._markers: pylsl.StreamOutlet | None = None
        self._feed: _Feed | None = None
        self._t0 = 0.0

    # --- life cycle ----------------------------------------------------------------------

    def start(self) -> Simulator:
        """Read or make the first block, open the outlet(s) and start pushing.

        Returns once the outlet is discoverable. Raises NeuropaintError (or
        FileNotFoundError) for a recording that cannot be read.
        """
        if self._threads:
            return self
        cfg = self.config
        self._feed = _FileFeed(cfg) if cfg.file is not None else _SyntheticFeed(cfg)
        feed = self._feed
        self._stop.clear()
        self.finished.clear()
        self.error = None
        self.n_pushed = 0
        if cfg.markers and cfg.file is None:
            info = pylsl.StreamInfo(marker_stream_name(cfg.name), "Markers", 1,
                                    pylsl.IRREGULAR_RATE, "string",
                                    cfg.stream_source_id + "-states" if cfg.stream_source_id
                                    else "")
            self._markers = pylsl.StreamOutlet(info)
        # The EEG outlet last: of several outlets on one machine, liblsl's multicast query
        # reaches the one bound last, which then resolves at once (the others ~0.5 s later).
        self._outlet = pylsl.StreamOutlet(self._stream_info(), chunk_size=cfg.chunk,
                                          max_buffered=60)
        self._t0 = pylsl.local_clock()  # Sample k leaves at _t0 + k / sfreq.
        self._threads = [threading.Thread(target=self._push_loop, daemon=True,
                                          name=f"simulate-push:{cfg.name}")]
        if isinstance(feed, _SyntheticFeed):
            self._threads.append(threading.Thread(target=feed.run, args=(self._stop,),
                                                  daemon=True, name=f"simulate-gen:{cfg.name}"))
        for thread in self._threads:
            thread.start()
        logger.info("streaming %r: %d channels at %g Hz, %s, chunks of %d, source_id %r",
                    cfg.name, len(feed.ch_names), feed.sfreq, feed.describe(), cfg.chunk,
                    cfg.stream_source_id)
        return self

    def stop(self) -> None:
        """Stop pushing and close the outlet(s): consumers see the stream go away."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5.0)
        self._threads = []
        # liblsl destroys an outlet with its last reference; it vanishes from the network.
        self._outlet = None
        self._markers = None

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the stream ends (``duration`` reached, file over); True if it did."""
        return self.finished.wait(timeout)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return bool(self._threads) and not self.finished.is_set()

    @property
    def ch_names(self) -> list[str]:
        return list(self._require_feed().ch_names)

    @property
    def sfreq(self) -> float:
        return self._require_feed().sfreq

    @property
    def current_state(self) -> str | None:
        """The brain state being streamed now (None for a recording)."""
        feed = self._require_feed()
        return feed.state if isinstance(feed, _SyntheticFeed) else None

    def set_state(self, state: str | int | None) -> None:
        """Switch to a state and hold it (name, or its number from 1 in
        :func:`eeg.synthetic.list_states` order); None goes back to cycling. The new state
        starts streaming as soon as its first block is made (tens of milliseconds)."""
        feed = self._require_feed()
        if not isinstance(feed, _SyntheticFeed):
            raise NeuropaintError("switching states needs synthetic EEG, not a recording.")
        feed.request(_parse_state(state))

    def lsl_time(self, sample: int) -> float:
        """The LSL time stamp of sample number ``sample`` (0 = the first one pushed)."""
        return self._t0 + sample / self.sfreq

    def describe(self) -> str:
        """The line printed when the outlet is up."""
        cfg = self.config
        sid = repr(cfg.stream_source_id) if cfg.stream_source_id else "none"
        return (f"live.simulate: streaming {cfg.name!r} ({len(self.ch_names)} ch, "
                f"{self.sfreq:g} Hz, source_id {sid})")

    def _require_feed(self) -> _Feed:
        if self._feed is None:
            raise NeuropaintError("the simulator has not been started: call start() first.")
        return self._feed

    # --- the outlet ----------------------------------------------------------------------

    def _stream_info(self) -> pylsl.StreamInfo:
        cfg = self.config
        feed = self._require_feed()
        info = pylsl.StreamInfo(cfg.name, cfg.type, len(feed.ch_names), feed.sfreq, cfg.format,
                                cfg.stream_source_id)
        desc = info.desc()
        desc.append_child_value("manufacturer", "neuropaint simulator")
        if cfg.labels:
            channels = desc.append_child("channels")
            for label in feed.ch_names:
                channel = channels.append_child("channel")
                channel.append_child_value("label", label)
                channel.append_child_value("unit", "microvolts")
                channel.append_child_value("type", "EEG")
                if label in feed.positions:  # The XDF convention: millimetres.
                    location = channel.append_child("location")
                    for axis, metres in zip("XYZ", feed.positions[label], strict=True):
                        location.append_child_value(axis, f"{metres * 1e3:.3f}")
        return info

    def _encode(self, block: np.ndarray) -> np.ndarray:
        """µV float32 [n, n_channels] in the wire format."""
        fmt = self.config.format
        if fmt == "int16":
            clean = np.nan_to_num(block, nan=0.0)
            return np.clip(np.rint(clean), -_INT16_MAX, _INT16_MAX).astype(np.int16)
        return block.astype(np.float64) if fmt == "double64" else block

    def _push_loop(self) -> None:
        try:
            self._push_until_done()
        except Exception as exc:  # Reported by wait()/error and the log, not a dead thread.
            self.error = exc
            logger.exception("simulator %r stopped", self.config.name)
        finally:
            self.finished.set()

    def _push_until_done(self) -> None:
        cfg = self.config
        feed = self._require_feed()
        rate = feed.sfreq
        total = None if cfg.duration is None else max(1, round(cfg.duration * rate))
        k = 0
        while not self._stop.is_set():
            n = cfg.chunk if total is None else min(cfg.chunk, total - k)
            due = self._t0 + (k + n - 1) / rate  # Time stamp of the chunk's last sample.
            delay = due - pylsl.local_clock()
            if delay > 0:
                if self._stop.wait(delay):
                    break
            elif -delay > _MAX_LAG:  # Suspended or starved: jump ahead instead of bursting.
                logger.warning("simulator %r fell %.1f s behind; skipping ahead", cfg.name,
                               -delay)
                self._t0 -= delay
            block, changes = feed.take(n, k)
            for sample, state in changes:
                self._announce(state, sample)
            if len(block):
                self._outlet.push_chunk(self._encode(block), timestamp=self._t0
                                        + (k + len(block) - 1) / rate)
            k += len(block)
            self.n_pushed = k
            if len(block) < n or (total is not None and k >= total):
                break

    def _announce(self, state: str, sample: int) -> None:
        stamp = self.lsl_time(sample)
        logger.info("state %s from LSL time %.3f (sample %d)", state, stamp, sample)
        if self._markers is not None:
            self._markers.push_sample([state], stamp)


# --- what is streamed --------------------------------------------------------------------


class _Feed:
    """Samples for the push thread, in µV, [n_times, n_channels] float32."""

    ch_names: list[str]
    sfreq: float
    positions: dict[str, np.ndarray]  # Sensor positions, metres (head frame), by label.

    def take(self, n: int, first: int) -> tuple[np.ndarray, list[tuple[int, str]]]:
        """The next ``n`` samples (fewer only at the end of a recording) and the state
        changes they start, as (sample number, state); ``first`` numbers the first one."""
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


class _FileFeed(_Feed):
    """A recording, read once, streamed from the start (and again with ``loop``)."""

    def __init__(self, cfg: SimulatorConfig):
        raw = read_raw(cfg.file, units=cfg.units)
        self.path = cfg.file
        self.loop = cfg.loop
        self.ch_names = list(raw.ch_names)
        self.sfreq = float(raw.info["sfreq"])
        self.positions = _positions(raw.info)
        self._data = np.ascontiguousarray((raw.get_data() * 1e6).T, dtype=np.float32)  # [n, ch]
        self._pos = 0

    def take(self, n: int, first: int) -> tuple[np.ndarray, list[tuple[int, str]]]:
        parts = []
        while n > 0:
            if self._pos >= len(self._data):
                if not self.loop:
                    break
                logger.info("end of %s; looping", self.path.name)
                self._pos = 0
            m = min(n, len(self._data) - self._pos)
            parts.append(self._data[self._pos:self._pos + m])
            self._pos += m
            n -= m
        block = np.concatenate(parts) if parts else self._data[:0]
        return block, []

    def describe(self) -> str:
        return f"{self.path.name}{' looped' if self.loop else ''}"


def _positions(info) -> dict[str, np.ndarray]:
    """The channels' sensor positions (metres, head frame) that are known: finite, not zero."""
    positions = {}
    for ch in info["chs"]:
        pos = np.asarray(ch["loc"][:3], dtype=float)
        if np.all(np.isfinite(pos)) and np.linalg.norm(pos) > 1e-6:
            positions[ch["ch_name"]] = pos
    return positions


class _SyntheticFeed(_Feed):
    """Blocks of :func:`eeg.synthetic.make_raw`, one state each, cross-faded end to start.

    A generator thread (:meth:`run`) keeps up to ``_AHEAD`` blocks ready. A block is
    ``state_duration`` seconds plus ``_FADE`` seconds of tail; the tail is mixed into the
    start of the next block. A requested state change bumps the plan's epoch: blocks made
    for an older epoch are discarded, and the push side fades into the first block of the
    new epoch as soon as it is ready, without waiting for the end of the current block.
    """

    def __init__(self, cfg: SimulatorConfig):
        self.cfg = cfg
        self.ch_names = standard_channel_set(cfg.channels)
        self.sfreq = float(cfg.rate)
        self.positions = {}  # Standard labels: a consumer places them by label.
        self.cycle = list(cfg.states or list_states())
        self.n_own = max(1, round(cfg.state_duration * self.sfreq))
        self.n_fade = min(round(_FADE * self.sfreq), self.n_own)
        ramp = (np.arange(self.n_fade) + 0.5) / self.n_fade * (np.pi / 2)
        self._fade_out = np.cos(ramp, dtype=np.float32)[:, np.newaxis]  # [n_fade, 1]
        self._fade_in = np.sin(ramp, dtype=np.float32)[:, np.newaxis]
        self._cond = threading.Condition()
        self._ready: collections.deque[tuple[int, str, np.ndarray]] = collections.deque()
        self._epoch = 0
        self._hold: str | None = None
        self._next_in_cycle = 0
        self._n_made = 0
        # The first block is made here, so that pushing can start at once.
        state = self._plan_next()
        self._cur = self._make(state)
        self._cur_epoch = 0
        self.state = state
        self._pos = 0
        self._started = False

    def describe(self) -> str:
        return (f"synthetic states {', '.join(self.cycle)} ({self.cfg.state_duration:g} s "
                f"each)")

    def request(self, state: str | None) -> None:
        with self._cond:
            self._hold = state
            if state is None:  # Cycle on from the state after the one streaming now.
                self._next_in_cycle = (self.cycle.index(self.state) + 1
                                       if self.state in self.cycle else 0)
            self._epoch += 1
            self._ready.clear()
            self._cond.notify_all()
        logger.info("state %s requested", state or "cycling")

    def _plan_next(self) -> str:
        """The state of the next block to make (lock held, or before the thread starts)."""
        if self._hold is not None:
            return self._hold
        state = self.cycle[self._next_in_cycle % len(self.cycle)]
        self._next_in_cycle += 1
        return state

    def _make(self, state: str) -> np.ndarray:
        seed = self.cfg.seed * 1_000_003 + self._n_made  # A new seed per block.
        self._n_made += 1
        raw = make_raw((self.n_own + self.n_fade) / self.sfreq, n_channels=self.cfg.channels,
                       sfreq=self.sfreq, states=state, seed=seed)
        return np.ascontiguousarray((raw.get_data() * 1e6).T, dtype=np.float32)  # [n, ch]

    def run(self, stop: threading.Event) -> None:
        """Generator thread: keep ``_AHEAD`` blocks of the current plan ready."""
        while not stop.is_set():
            with self._cond:
                while len(self._ready) >= _AHEAD and not stop.is_set():
                    self._cond.wait(0.2)
                if stop.is_set():
                    return
                epoch = self._epoch
                state = self._plan_next()
            block = self._make(state)
            with self._cond:
                if epoch == self._epoch:  # Else the plan changed meanwhile: drop it.
                    self._ready.append((epoch, state, block))

    def take(self, n: int, first: int) -> tuple[np.ndarray, list[tuple[int, str]]]:
        changes = []
        if not self._started:
            self._started = True
            changes.append((first, self.state))
        out = np.empty((n, len(self.ch_names)), dtype=np.float32)
        done = 0
        while done < n:
            end = len(self._cur) - self.n_fade  # The current block's own samples end here.
            if self._pos >= end or self._switch_ready():
                changes.append((first + done, self._advance()))
                continue
            m = min(n - done, end - self._pos)
            out[done:done + m] = self._cur[self._pos:self._pos + m]
            self._pos += m
            done += m
        return out, changes

    def _switch_ready(self) -> bool:
        with self._cond:
            return bool(self._ready) and self._ready[0][0] != self._cur_epoch

    def _advance(self) -> str:
        """Fade from the current position into the next block; return its state."""
        with self._cond:
            item = self._ready.popleft() if self._ready else None
            self._cond.notify_all()
        if item is None:  # The generator is late (a starved CPU): replay this block.
            logger.debug("no synthetic block ready; repeating the current one")
            epoch, state, block = self._cur_epoch, self.state, self._cur.copy()
        else:
            epoch, state, block = item
        tail = self._cur[self._pos:self._pos + self.n_fade]  # [n_fade, ch]
        block[:self.n_fade] = tail * self._fade_out + block[:self.n_fade] * self._fade_in
        self._cur, self._cur_epoch, self._pos = block, epoch, 0
        self.state = state
        return state


def _parse_state(state: str | int | None) -> str | None:
    """A state by name or number (from 1), or None; anything else is a one-line error."""
    names = list_states()
    if state is None:
        return None
    if isinstance(state, str) and state.strip().isdigit():
        state = int(state.strip())
    if isinstance(state, int) and not isinstance(state, bool) and 1 <= state <= len(names):
        return names[state - 1]
    if isinstance(state, str) and state.strip().casefold() in names:
        return state.strip().casefold()
    choices = ", ".join(f"{i} {name}" for i, name in enumerate(names, 1))
    raise NeuropaintError(f"unknown state {state!r}; type one of {choices}, or 'cycle'.")


# --- command line ------------------------------------------------------------------------


def parse_command(text: str) -> str | None:
    """What a performer typed: a state's name or number (its name is returned), or
    ``cycle`` (None). Anything else raises NeuropaintError listing the valid names and
    numbers. ``live.render`` checks its terminal's lines with it before passing them on."""
    text = text.strip()
    return None if text.casefold() == "cycle" else _parse_state(text)


def describe_command(state: str | None) -> str:
    """The echo of an accepted command."""
    return ("cycling through the states again" if state is None else
            f"holding {state} (type 'cycle' to cycle again)")


def follow_commands(lines: Iterable[str], apply, stop: threading.Event, *, prog: str,
                    prefix: str = "", stream=None) -> None:
    """State switches typed as lines (a name, a number, or 'cycle'): each is checked,
    ``apply(state, line)``-ed and echoed as ``PROG: PREFIX<what now>``; what is not a
    command is refused with the valid ones. Ends at the end of ``lines`` or on ``stop``."""
    for line in lines:
        if stop.is_set():
            return
        if not line.strip():
            continue
        try:
            state = parse_command(line)
            apply(state, line)
        except NeuropaintError as exc:
            print(f"{prog}: {exc}", file=stream, flush=True)
        else:
            print(f"{prog}: {prefix}{describe_command(state)}", file=stream, flush=True)


def _keyboard(sim: Simulator, stop: threading.Event) -> None:
    """stdin (a terminal, or a parent's pipe) switches states; messages go to stderr, since
    stdout carries the start line a parent waits for."""
    follow_commands(sys.stdin, lambda state, _line: sim.set_state(state), stop,
                    prog="live.simulate", stream=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: stream synthetic EEG or a recording until stopped."""
    states_help = ", ".join(f"{i} {name}" for i, name in enumerate(list_states(), 1))
    parser = argparse.ArgumentParser(
        prog="python -m live.simulate",
        description="A simulated EEG headset on LSL: synthetic EEG with named brain states "
        "(cycling; type a state's name or number and Enter to switch and hold it, 'cycle' "
        f"to cycle again; states: {states_help}) or a recording, pushed in real time. "
        "Ctrl-C stops it.",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--synthetic", action="store_true",
                        help="synthetic EEG from eeg.synthetic (the default)")
    source.add_argument("--file", metavar="RECORDING",
                        help="stream this recording instead (EDF/BDF/GDF/FIF/BrainVision/"
                        "EEGLAB/XDF)")
    parser.add_argument("--loop", action="store_true", help="with --file: loop it forever")
    parser.add_argument("--units", choices=("auto", "V", "uV", "mV"), default="auto",
                        help="with --file: unit of its numbers; auto trusts the file unless its "
                        "amplitude cannot be EEG in that unit, then rescales and says so; V, uV "
                        "or mV override the file (default: auto)")
    parser.add_argument("--channels", type=int, help="synthetic: 8, 16, 32 or 64 (32)")
    parser.add_argument("--rate", type=float, help="synthetic: sampling rate in Hz (256)")
    parser.add_argument("--states", help="synthetic: comma-separated states to cycle (all)")
    parser.add_argument("--state-duration", type=float,
                        help="synthetic: seconds per state (10)")
    parser.add_argument("--name", default="neuropaint-sim",
                        help="LSL stream name (neuropaint-sim)")
    parser.add_argument("--type", default="EEG", help="LSL content type (EEG)")
    parser.add_argument("--source-id", help="LSL source_id (default neuropaint-sim:NAME; '' "
                        "for none)")
    parser.add_argument("--chunk", type=int, default=16, help="samples per chunk (16)")
    parser.add_argument("--format", default="float32", help="sample format: float32, "
                        "double64 or int16 (whole microvolts) (float32)")
    parser.add_argument("--no-labels", action="store_true",
                        help="send no channel description (labels, units)")
    parser.add_argument("--no-markers", action="store_true",
                        help="synthetic: no NAME-states marker stream")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic EEG (0)")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument("--stdin", action="store_true",
                        help="read state switches from stdin even when it is not a terminal "
                        "(a parent process writes them; live.render does)")
    parser.add_argument("--log-level", default="INFO", help="INFO, WARNING, ... (INFO)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also liblsl's and MNE's own messages (quiet by default)")
    args = parser.parse_args(argv)
    setup_logging(args.log_level, verbose=args.verbose)

    stop = threading.Event()
    with stop_on_signals(stop.set):
        values: dict[str, object] = {
            "name": args.name, "type": args.type, "source_id": args.source_id,
            "chunk": args.chunk, "format": args.format, "labels": not args.no_labels,
            "seed": args.seed, "duration": args.duration, "loop": args.loop,
        }
        if args.file is not None:
            values["file"] = args.file
            values["units"] = args.units
        optional = {"channels": args.channels, "rate": args.rate,
                    "state_duration": args.state_duration,
                    "states": None if args.states is None else
                    [s.strip() for s in args.states.split(",") if s.strip()]}
        values.update({key: value for key, value in optional.items() if value is not None})
        if args.no_markers:
            values["markers"] = False
        config = build_config(SimulatorConfig, values)
        sim = Simulator(config).start()
        try:
            print(sim.describe(), flush=True)
            if config.file is None and sys.stdin is not None and (args.stdin
                                                                  or sys.stdin.isatty()):
                threading.Thread(target=_keyboard, args=(sim, stop), daemon=True,
                                 name="simulate-keyboard").start()
            while not stop.is_set() and not sim.finished.is_set():
                stop.wait(0.2)
        finally:
            sim.stop()
    if sim.error is not None:
        raise NeuropaintError(f"the simulator stopped: {sim.error}")
    logger.info("stopped after %d samples", sim.n_pushed)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
