"""``python -m live.calibrate``: a guided calibration that records labelled EEG and fits a profile.

Examples
--------
python -m live.calibrate --out profiles/demo         # simulated headset, 4 states x 4 x 20 s
python -m live.calibrate --stream MyHeadset --out profiles/anna --block 30 --repeats 3
python -m live.calibrate --type EEG --states eyes_closed,focused --out profiles/b --no-serve
python -m live.calibrate --states eyes_closed,smile --instructions "smile=Smile broadly" \\
    --stream MyHeadset --out profiles/c
python -m live.calibrate --out profiles/d --target eyes_closed=art/moon.png \\
    --target focused=seed:7 --target eyes_open=auto

The performer is guided through blocks of named states: each state ``--repeats`` times,
``--block`` seconds each, interleaved (each round is the states in a seeded random order, and
a round never starts with the state the previous one ended with), with ``--rest`` seconds of
unlabelled rest before each block (the first one is the lead-in). The terminal prints each
block's instruction in a banner and counts down (in place on a terminal, every few seconds in
a log; a bell marks each block's end, for the eyes-closed blocks); the web viewer shows it in
large type over a dark frame, with the band meters of the live signal and a fixation dot for
the eyes-open states.

The EEG is recorded as ``live.render --record`` does (``eeg.npeeg``; see
:class:`live.record.CalibrationRecorder`), each block labelled with its state as it ends, so
that ``eeg.io.read_raw(DIR).annotations`` holds the blocks (onset and duration in recording
time; rests are unlabelled). After the last block the performer profile is fitted by
:func:`conditioning.calibrate.calibrate` and its report printed.

With no ``--stream``/``--type`` a simulated headset (:class:`live.simulate.Simulator`) runs in
this process and follows the instructions: each calibration state plays the simulator state
of the same name or of its alias in :data:`SIMULATOR_ALIASES`, rests play ``neutral``.

Ctrl-C (or SIGTERM) stops the calibration: the recording is kept with every finished block and
the current one cut at the stop, and the profile is fitted from it when at least two states
have a finished block. A stream that sends nothing for ``--stall-timeout`` seconds ends the
calibration the same way. A second Ctrl-C while fitting abandons the fit (the recording stays).

Exit status: 0 when a profile was written (or ``--no-fit`` recorded every block), 1 when the
calibration ended without one (too little recorded, or the fit failed: the recording is kept
and the command to fit it later is printed), 2 for a bad argument.
"""

from __future__ import annotations

import argparse
import logging
import math
import re
import shlex
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pylsl import local_clock

from eeg.io import UNITS_CHOICES
from eeg.synthetic import list_states
from neuropaint.logs import run_cli, setup_logging
from neuropaint.signals import stop_on_signals
from neuropaint.validate import NeuropaintError, build_config

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_INSTRUCTIONS", "SIMULATOR_ALIASES", "Block", "CalibrationConfig",
           "instruction_for", "main", "make_schedule", "simulator_state"]

PROG = "python -m live.calibrate"
DEFAULT_STATES = ("eyes_closed", "eyes_open", "focused", "relaxed")
DEFAULT_INSTRUCTIONS: Mapping[str, str] = {
    "eyes_closed": "Close your eyes and stay still",
    "eyes_open": "Eyes open: rest your gaze on the dot",
    "focused": "Count back from 300 in sevens",
    "relaxed": "Relax, let your thoughts wander",
    # The simulator's own state names, for a calibration of the simulated headset.
    "neutral": "Eyes open: sit still, breathe normally, gaze on the dot",
    "drowsy": "Let your eyelids grow heavy, breathe slowly, drift off a little",
}
GENERIC_INSTRUCTION = "Hold the state: {name}"  # For a state with no text of its own.
# The one place where calibration states meet the simulator's (eeg.synthetic.list_states()):
# a state plays the simulator state of its own name, or of its alias here. Rests play
# REST_SIMULATOR_STATE. Eyes open at rest is the simulator's "neutral" (modest alpha, blinks);
# relaxed, thoughts wandering, is closest to its "drowsy" (theta up, alpha fading).
SIMULATOR_ALIASES: Mapping[str, str] = {"eyes_open": "neutral", "relaxed": "drowsy"}
REST_SIMULATOR_STATE = "neutral"
FIXATION_STATES = frozenset({"eyes_open", "neutral"})  # The viewer shows a dot to look at.
_STATE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_TICK_S = 0.05  # Main loop period: reading the stream, the countdown, the viewer.
_PUBLISH_S = 0.25  # Viewer status period.
_DRAIN_S = 1.0  # Longest wait, at the end, for the samples of the last moments to arrive.
# A block ends once its samples have arrived up to this close to its end: a stream that dies
# late in a block holds the block open until it comes back or --stall-timeout ends it there.
_LATE_S = 0.5
_FRAME = np.full((90, 160, 3), 12, dtype=np.uint8)  # The dark 16:9 "painting" of the viewer.


class CalibrationConfig(BaseModel):
    """The guided schedule: which states, how long, in what order, with which words."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    states: list[str] = Field(default_factory=lambda: list(DEFAULT_STATES),
                              description="States to calibrate, at least two, each once "
                              "(lower-case names: letters, digits, underscores).")
    block: float = Field(20.0, gt=0, le=3600, description="Seconds of each block.")
    repeats: int = Field(4, ge=1, le=100, description="Blocks of each state.")
    rest: float = Field(3.0, ge=0, le=600, description="Seconds of unlabelled rest before "
                        "each block (the first one is the lead-in); 0: none.")
    seed: int = Field(0, ge=0, description="Seed of the block order.")
    instructions: dict[str, str] = Field(default_factory=dict, description="Instruction text "
                                         "by state, over DEFAULT_INSTRUCTIONS.")
    targets: dict[str, str] | None = Field(None, description="Target painting by state: an "
                                           "image file, 'seed:N' or 'auto'; None: the "
                                           "fitter's default.")

    @field_validator("states")
    @classmethod
    def _check_states(cls, states: list[str]) -> list[str]:
        bad = [name for name in states if not _STATE_NAME.match(name) or name == "rest"
               or name.startswith("bad")]
        if bad:
            raise ValueError(f"bad state name(s) {', '.join(map(repr, bad))}: use lower-case "
                             "letters, digits and underscores, starting with a letter (not "
                             "'rest', not starting with 'bad')")
        dupes = sorted(name for name, n in Counter(states).items() if n > 1)
        if dupes:
            raise ValueError(f"duplicate state(s) {', '.join(dupes)}: name each state once "
                             "(--repeats repeats them)")
        if len(states) < 2:
            raise ValueError(f"a calibration needs at least two states to tell apart, got "
                             f"{len(states)}: {', '.join(states) or 'none'}")
        return states

    @model_validator(mode="after")
    def _check_per_state(self) -> CalibrationConfig:
        for what, table in (("instructions", self.instructions), ("targets", self.targets)):
            unknown = sorted(set(table or {}) - set(self.states))
            if unknown:
                raise ValueError(f"{what} for {', '.join(unknown)}, which is not among the "
                                 f"states {', '.join(self.states)}")
        for state, text in self.instructions.items():
            if not text.strip() or "\n" in text:
                raise ValueError(f"the instruction for {state} must be one non-empty line")
        for state, target in (self.targets or {}).items():
            if target != "auto" and not re.fullmatch(r"seed:\d+", target) \
                    and not Path(target).is_file():
                raise ValueError(f"the target for {state} must be an image file, 'seed:N' or "
                                 f"'auto'; {target!r} is none of those (no such file)")
        return self

    def instruction(self, state: str) -> str:
        return instruction_for(state, self.instructions)

    def schedule(self) -> list[Block]:
        order = make_schedule(self.states, self.repeats, self.seed)
        return [Block(number=i, state=state, text=self.instruction(state), duration=self.block)
                for i, state in enumerate(order, 1)]


@dataclass(frozen=True)
class Block:
    """One block of the schedule."""

    number: int  # From 1.
    state: str
    text: str  # The instruction.
    duration: float  # Seconds.


def instruction_for(state: str, instructions: Mapping[str, str] | None = None) -> str:
    """The text shown for ``state``: the given one, the default one, or a generic one."""
    given = (instructions or {}).get(state)
    if given:
        return given.strip()
    return DEFAULT_INSTRUCTIONS.get(state) or GENERIC_INSTRUCTION.format(
        name=state.replace("_", " "))


def make_schedule(states: Sequence[str], repeats: int, seed: int) -> list[str]:
    """The block order: ``repeats`` rounds, each every state once in a seeded random order.

    A round that would start with the state the previous round ended with has its first
    state swapped with another of its states, so no state comes twice in a row (with two or
    more states that is always possible).
    """
    rng = np.random.default_rng(seed)
    order: list[str] = []
    for _ in range(repeats):
        round_ = [states[i] for i in rng.permutation(len(states))]
        if order and len(round_) > 1 and round_[0] == order[-1]:
            j = int(rng.integers(1, len(round_)))
            round_[0], round_[j] = round_[j], round_[0]
        order.extend(round_)
    return order


def simulator_state(state: str) -> str:
    """The simulator state that plays calibration state ``state`` (its own, or its alias)."""
    name = SIMULATOR_ALIASES.get(state, state)
    if name not in list_states():
        aliases = ", ".join(f"{a} (= {s})" for a, s in SIMULATOR_ALIASES.items())
        raise NeuropaintError(f"the simulated headset has no state {state!r}: it plays "
                              f"{', '.join(list_states())} and the aliases {aliases}; give "
                              f"--stream or --type to calibrate a real headset.")
    return name


# -- what the performer sees -------------------------------------------------------------------


class _Terminal:
    """Instructions in banners and a countdown: in place on a terminal, sparse in a log."""

    WIDTH = 64
    LOG_EVERY_S = 5  # In a log, a countdown line every this many seconds (and the last 3).

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._shown: int | None = None
        self._open = False  # A countdown line is being rewritten in place.

    def line(self, text: str = "") -> None:
        self._end_countdown()
        print(text, file=self.stream, flush=True)

    def banner(self, block: Block, blocks: int) -> None:
        rule = "=" * self.WIDTH
        self.line()
        self.line(rule)
        self.line(f"  BLOCK {block.number} / {blocks}   "
                  f"{block.state.replace('_', ' ').upper()}   {block.duration:g} s")
        self.line(f"  >>>  {block.text}  <<<")
        self.line(rule)
        self._shown = None

    def rest(self, seconds: float, upcoming: Block, first: bool) -> None:
        what = "Get ready" if first else "Rest"
        self.line()
        self.line(f"  {what} {seconds:g} s ... next: {upcoming.state} ({upcoming.text})")
        self._shown = None

    def countdown(self, label: str, left: float) -> None:
        whole = max(0, math.ceil(left - 1e-6))
        if whole == self._shown or whole == 0:
            return
        self._shown = whole
        text = f"  {label}: {whole:3d} s left"
        if self.tty:
            print(f"\r{text}   ", end="", file=self.stream, flush=True)
            self._open = True
        elif whole % self.LOG_EVERY_S == 0 or whole <= 3:
            print(text, file=self.stream, flush=True)

    def bell(self) -> None:
        """End of a block: a bell on a terminal (the performer may have closed the eyes)."""
        if self.tty:
            print("\a", end="", file=self.stream, flush=True)

    def _end_countdown(self) -> None:
        if self._open:
            print(file=self.stream, flush=True)
            self._open = False


class _Meters:
    """Band meters of the live signal for the viewer, from the house online features."""

    def __init__(self, sfreq: float, ch_names: list[str]) -> None:
        from eeg.features import FeatureSpec
        from eeg.online import OnlineProcessor
        from live.engine import band_meters  # Imports torch: only when there is a viewer.

        self._band_meters = band_meters
        spec = FeatureSpec(features=("relative_power",), hop=0.25)
        self.bands = list(spec.bands)
        self.processor = OnlineProcessor(spec, sfreq, ch_names)
        self.value: dict[str, float] = {}

    def push(self, data: np.ndarray, times: np.ndarray) -> None:
        rows = self.processor.push(data, times)
        if len(rows.values):
            self.value = self._band_meters(np.asarray(rows.values)[-1], self.processor.names,
                                           self.bands)


# -- the guided run ------------------------------------------------------------------------------


@dataclass
class RunResult:
    """How the guided run ended and what it labelled."""

    how: str  # "done", "stopped" (Ctrl-C) or "lost" (the stream went away).
    complete: list[Block]
    partial: Block | None
    partial_s: float
    recorded_s: float


class _Run:
    """Walks the schedule: reads the stream into the recording, labels the blocks, tells the
    simulator (if any) what to play, counts down, feeds the viewer."""

    def __init__(self, blocks: list[Block], *, rest: float, source, recorder, stop,
                 terminal: _Terminal, stall_timeout: float,
                 set_simulator: Callable[[str], None] | None = None,
                 publish: Callable[[dict], None] | None = None, meters: _Meters | None = None):
        self.blocks, self.rest = blocks, rest
        self.source, self.recorder, self.stop = source, recorder, stop
        self.terminal, self.stall_timeout = terminal, stall_timeout
        self.set_simulator, self.publish, self.meters = set_simulator, publish, meters
        self.complete: list[Block] = []
        self._stall_said = False
        self._last_publish = -math.inf

    def run(self) -> RunResult:
        how, partial, partial_s = "done", None, 0.0
        for block in self.blocks:
            if self.rest > 0:
                how, _ = self._phase(None, block, self.rest)
                if how != "done":
                    break
            start = local_clock()
            how, end = self._phase(block, block, block.duration, start)
            if how != "done":
                if end > start:
                    partial, partial_s = block, end - start
                    self.recorder.label(block.state, start, end, complete=False)
                break
            self.recorder.label(block.state, start, end, complete=True)
            self.complete.append(block)
            self.terminal.bell()
        self._drain(local_clock() if how != "lost" else -math.inf)
        recorded = (0.0 if self.recorder.first_time is None
                    else self.recorder.last_time - self.recorder.first_time)
        return RunResult(how, self.complete, partial, partial_s, recorded)

    def _phase(self, block: Block | None, upcoming: Block, duration: float,
               start: float | None = None) -> tuple[str, float]:
        """One block (or the rest before ``upcoming``); ``(how it ended, LSL end time)``."""
        start = local_clock() if start is None else start
        end = start + duration
        state = block.state if block is not None else REST_SIMULATOR_STATE
        if self.set_simulator is not None:
            self.set_simulator(simulator_state(state) if block is not None else state)
        if block is not None:
            self.terminal.banner(block, len(self.blocks))
            label = block.state
        else:
            self.terminal.rest(duration, upcoming, first=upcoming.number == 1)
            label = "rest"
        while True:
            self._pump()
            now = local_clock()
            if self.stop.is_set():
                return "stopped", now
            stalled = self.source.stalled_for
            if stalled > self.stall_timeout:
                newest = self.source.newest_timestamp
                return "lost", start if newest is None else min(newest, now)
            self._say_stall(stalled, upcoming)
            newest = self.source.newest_timestamp
            if now >= end and newest is not None and newest >= end - _LATE_S:
                return "done", end
            self.terminal.countdown(label, end - now)
            self._publish(block, upcoming, end - now)
            self.stop.wait(min(_TICK_S, end - now))

    def _pump(self) -> None:
        data, times = self.source.read()
        if len(times):
            self.recorder.write_eeg(data, times)
            if self.meters is not None:
                self.meters.push(data, times)

    def _say_stall(self, stalled: float, upcoming: Block) -> None:
        if stalled > 0 and not self._stall_said:
            self._stall_said = True
            self.terminal.line(f"live.calibrate: the stream sends nothing (block "
                               f"{upcoming.number}/{len(self.blocks)}); waiting up to "
                               f"{self.stall_timeout:g} s for it")
        elif stalled == 0 and self._stall_said:
            self._stall_said = False
            self.terminal.line("live.calibrate: the stream is back")

    def _publish(self, block: Block | None, upcoming: Block, left: float) -> None:
        now = local_clock()
        if self.publish is None or now - self._last_publish < _PUBLISH_S:
            return
        self._last_publish = now
        if block is not None:
            text, state = block.text, block.state
        else:
            text = f"{'Get ready' if upcoming.number == 1 else 'Rest'}. Next: {upcoming.text}"
            state = "rest"
        self.publish(self._status(text, state, left, upcoming.number))

    def _status(self, text: str, state: str, left: float, number: int) -> dict:
        if self.source.newest_timestamp is None:
            signal = "waiting"
        else:
            signal = "stalled" if self.source.stalled else "ok"
        return {"signal": signal, "state": "calibration",
                "bands": self.meters.value if self.meters is not None else {},
                "instruction": {"text": text, "state": state, "remaining_s": round(left, 1),
                                "block": number, "blocks": len(self.blocks),
                                "fixation": state in FIXATION_STATES}}

    def final(self, text: str) -> None:
        """The last thing the viewer shows (done, stopped, fitting)."""
        if self.publish is not None:
            n = len(self.blocks)
            self.publish(self._status(text, "done", 0.0, n) | {"state": "calibration over"})

    def _drain(self, until: float) -> None:
        """Record the samples of the last moments, which may still be on their way."""
        deadline = local_clock() + _DRAIN_S
        while local_clock() < deadline:
            self._pump()
            newest = self.source.newest_timestamp
            if (newest is not None and newest >= until) or self.source.stalled:
                return
            time.sleep(_TICK_S)  # Not stop.wait(): the stop may be set already.


# -- the command line ----------------------------------------------------------------------------


def _pairs(values: Sequence[str] | None, option: str) -> dict[str, str]:
    """``["STATE=TEXT", ...]`` as a dict; a malformed or repeated pair is a one-line error."""
    out: dict[str, str] = {}
    for item in values or ():
        state, sep, value = item.partition("=")
        state = state.strip()
        if not sep or not state or not value.strip():
            raise NeuropaintError(f"'{option}' takes STATE=VALUE, got {item!r}.")
        if state in out:
            raise NeuropaintError(f"'{option}' gives {state} twice.")
        out[state] = value.strip()
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Guide a performer through blocks of brain states, record the labelled "
                    "EEG and fit a performer profile from it (then: python -m live.render "
                    "--profile PROFILE). Ctrl-C stops and keeps the recording.")
    src = p.add_argument_group("EEG source (none: a simulated headset that follows the "
                               "instructions)")
    src.add_argument("--stream", help="LSL stream name of the headset")
    src.add_argument("--type", dest="stream_type", help="LSL stream type (e.g. EEG)")
    src.add_argument("--timeout", type=float, default=10.0, help="seconds to find the stream")
    src.add_argument("--units", choices=UNITS_CHOICES, default="auto",
                     help="the headset's EEG unit: auto trusts the stream's metadata unless "
                          "its amplitudes cannot be EEG in that unit (then rescales, saying "
                          "so); V, uV or mV overrides the metadata")
    src.add_argument("--stall-timeout", type=float, default=5.0,
                     help="seconds without a sample after which the calibration ends (the "
                          "recording is kept)")
    src.add_argument("--sim-channels", type=int, default=32, help="simulator: channels")
    src.add_argument("--sim-rate", type=float, default=256.0, help="simulator: rate in Hz")
    plan = p.add_argument_group("schedule")
    plan.add_argument("--states", default=",".join(DEFAULT_STATES),
                      help="comma-separated states, at least two; the simulator plays "
                           f"{', '.join(list_states())}, "
                           + ", ".join(f"{a} (as {s})" for a, s in SIMULATOR_ALIASES.items()))
    plan.add_argument("--block", type=float, default=20.0, help="seconds per block")
    plan.add_argument("--repeats", type=int, default=4, help="blocks per state")
    plan.add_argument("--rest", type=float, default=3.0,
                      help="seconds of unlabelled rest before each block (0: none)")
    plan.add_argument("--seed", type=int, default=0, help="seed of the block order")
    plan.add_argument("--instructions", nargs="+", action="extend", metavar="STATE=TEXT",
                      help="instruction text of a state (defaults: "
                           + "; ".join(f"{s}: {t}" for s, t in DEFAULT_INSTRUCTIONS.items())
                           + "; others: '" + GENERIC_INSTRUCTION + "')")
    out = p.add_argument_group("profile and recording")
    out.add_argument("--out", required=True, metavar="PROFILE",
                     help="profile folder to write (must not exist yet, or be empty)")
    out.add_argument("--generator", help="generator the profile paints with; none: the "
                     "bundled demo model's")
    out.add_argument("--target", nargs="+", action="extend", metavar="STATE=IMAGE|seed:N|auto",
                     help="target painting of a state; none: the fitter's choice")
    out.add_argument("--record", metavar="DIR",
                     help="recording folder; none: PROFILE.calibration beside --out")
    out.add_argument("--no-fit", action="store_true",
                     help="record only; fit later with python -m conditioning.calibrate")
    out.add_argument("--serve", default="127.0.0.1:8765",
                     help="viewer address HOST:PORT (0.0.0.0 exposes it to the network)")
    out.add_argument("--no-serve", action="store_true", help="no viewer")
    out.add_argument("-q", "--quiet", action="store_true", help="warnings only in the log")
    return p


def _check_new(folder: Path, option: str) -> None:
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise NeuropaintError(f"{folder} already exists and is not empty; choose a new "
                              f"{option} (nothing was overwritten).")


def _fit_command(record: Path, generator: Path, out: Path) -> str:
    return (f"python -m conditioning.calibrate {shlex.quote(str(record))} --generator "
            f"{shlex.quote(str(generator))} --out {shlex.quote(str(out))}")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging("WARNING" if args.quiet else "INFO")
    states = [s.strip() for s in args.states.split(",") if s.strip()]
    config = build_config(CalibrationConfig, states=states, block=args.block,
                          repeats=args.repeats, rest=args.rest, seed=args.seed,
                          instructions=_pairs(args.instructions, "instructions"),
                          targets=_pairs(args.target, "target") or None)
    use_simulator = not (args.stream or args.stream_type)
    if use_simulator:
        for state in config.states:
            simulator_state(state)
    for value, name in ((args.timeout, "timeout"), (args.stall_timeout, "stall_timeout")):
        if not (math.isfinite(value) and value > 0):
            raise NeuropaintError(f"'{name}' must be a positive number, got {value!r}.")
    out = Path(args.out)
    record = Path(args.record) if args.record else out.with_name(out.name + ".calibration")
    _check_new(out, "--out")
    _check_new(record, "--record folder")
    if args.generator:
        generator = Path(args.generator)
        if not generator.exists():
            raise FileNotFoundError(f"no such generator: {generator}")
    else:
        from live.demo import demo_paths

        generator = demo_paths()[1]
    address = None
    if not args.no_serve:
        from live.viewer import parse_address

        address = parse_address(args.serve)

    terminal = _Terminal()
    stop = threading.Event()
    blocks = config.schedule()
    viewer = None
    try:
        with stop_on_signals(stop.set):
            if address is not None:
                from live.viewer import Viewer

                viewer = Viewer(*address, title="neuropaint calibration")
                print(f"live.calibrate: viewer at {viewer.start()}", flush=True)
            result, run = _record(args, config, blocks, record, stop, terminal, viewer,
                                  use_simulator)
        # Out of the signal block: a Ctrl-C while fitting interrupts the fit itself.
        return _finish(args, config, result, run, record, generator, out, terminal)
    finally:
        if viewer is not None:
            viewer.stop()


def _record(args, config: CalibrationConfig, blocks: list[Block], record: Path, stop,
            terminal: _Terminal, viewer, use_simulator: bool) -> tuple[RunResult, _Run]:
    from live.record import CalibrationRecorder
    from live.simulate import Simulator, SimulatorConfig
    from live.source import LSLSource

    simulator = source = recorder = result = None
    try:
        about = {"calibration": config.model_dump(mode="json"),
                 "instructions": {s: config.instruction(s) for s in config.states},
                 "schedule": [b.state for b in blocks]}
        if use_simulator:
            # Its state changes are in session.json; on the performer's terminal they would
            # only come between the instructions.
            logging.getLogger("live.simulate").setLevel(logging.WARNING)
            name = f"neuropaint-calibrate-{uuid.uuid4().hex[:8]}"
            simulator = Simulator(build_config(
                SimulatorConfig, name=name, channels=args.sim_channels, rate=args.sim_rate,
                states=[REST_SIMULATOR_STATE], state_duration=4.0, seed=config.seed)).start()
            print(f"live.calibrate: simulated headset {name!r} "
                  f"({simulator.describe().partition('(')[2].rstrip(')')}); it plays each "
                  f"state as told", flush=True)
            about["simulator"] = {"name": name, "states": {
                s: simulator_state(s) for s in config.states} | {"rest": REST_SIMULATOR_STATE}}
            source = LSLSource(name, type="EEG", timeout=args.timeout, units=args.units).open()
        else:
            source = LSLSource(args.stream, type=args.stream_type or
                               (None if args.stream else "EEG"), timeout=args.timeout,
                               units=args.units).open()
        recorder = CalibrationRecorder(record, source.meta, about=about)
        meters = None
        if viewer is not None:
            try:
                meters = _Meters(source.meta.sfreq, list(source.meta.ch_names))
            except NeuropaintError as exc:  # Odd labels: no meters, the rest works.
                logger.warning("no band meters in the viewer: %s", exc)
        total = len(blocks) * (config.block + config.rest)
        print(f"live.calibrate: recording {source.meta.describe()} into {record}; "
              f"{len(blocks)} blocks of {config.block:g} s ({', '.join(config.states)}, "
              f"{config.repeats} each), about {total / 60:.1f} min (Ctrl-C stops, keeping "
              f"the recording)", flush=True)
        run = _Run(blocks, rest=config.rest, source=source, recorder=recorder, stop=stop,
                   terminal=terminal, stall_timeout=args.stall_timeout,
                   set_simulator=simulator.set_state if simulator is not None else None,
                   publish=(lambda status: viewer.publish(_FRAME, status)) if viewer else None,
                   meters=meters)
        result = run.run()
        return result, run
    finally:
        if recorder is not None:
            recorder.close(how=result.how if result is not None else "unfinished")
        if source is not None:
            source.close()
        if simulator is not None:
            simulator.stop()


def _finish(args, config: CalibrationConfig, result: RunResult, run: _Run, record: Path,
            generator: Path, out: Path, terminal: _Terminal) -> int:
    done = Counter(block.state for block in result.complete)
    fit_later = _fit_command(record, generator, out)
    terminal.line()
    summary = (f"{result.recorded_s:.1f} s of EEG, {len(result.complete)} of "
               f"{len(run.blocks)} blocks finished"
               + (f" ({', '.join(f'{s} {n}' for s, n in done.items())})" if done else "")
               + (f", {result.partial.state} cut at {result.partial_s:.1f} s"
                  if result.partial is not None else ""))
    if result.how == "stopped":
        terminal.line(f"live.calibrate: stopped; recorded {summary} in {record}")
    elif result.how == "lost":
        terminal.line(f"live.calibrate: the stream went away (no sample for "
                      f"{args.stall_timeout:g} s); recorded {summary} in {record}")
    else:
        terminal.line(f"live.calibrate: calibration done; recorded {summary} in {record}")
    states = [s for s in config.states if done[s] > 0]
    if len(states) < 2:
        run.final("Stopped: too little recorded to fit a profile")
        terminal.line(f"live.calibrate: cannot fit a profile: it needs a finished block of at "
                      f"least two states; fit later from a longer recording with: {fit_later}")
        return 1
    if args.no_fit:
        run.final("Recorded. The profile is fitted later")
        terminal.line(f"live.calibrate: fit the profile with: {fit_later}")
        return 0 if result.how == "done" else 1
    if len(states) < len(config.states):
        terminal.line(f"live.calibrate: fitting the states with a finished block only: "
                      f"{', '.join(states)}")
    targets = {s: t for s, t in (config.targets or {}).items() if s in states} or None
    run.final("Done. Fitting the profile")
    terminal.line(f"live.calibrate: fitting the profile into {out} (Ctrl-C abandons the fit; "
                  f"the recording stays)")
    try:
        from conditioning.calibrate import calibrate
    except ImportError as exc:
        if exc.name not in ("conditioning.calibrate", None):
            raise
        terminal.line(f"live.calibrate: this neuropaint cannot fit profiles "
                      f"(conditioning.calibrate is missing); the recording is kept; fit it "
                      f"with a newer one: {fit_later}")
        return 1
    try:
        _, report = calibrate(recordings=[str(record)], generator=str(generator), out=str(out),
                              states=states, targets=targets)
    except NeuropaintError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr, flush=True)
        terminal.line(f"live.calibrate: no profile written; the recording is kept in {record}; "
                      f"after fixing that, fit it with: {fit_later}")
        return 1
    terminal.line(report.summary())
    play = " ".join(shlex.quote(a) for a in _source_args(args))
    terminal.line(f"live.calibrate: profile written to {out}; play it with: python -m "
                  f"live.render --profile {shlex.quote(str(out))}{' ' + play if play else ''}")
    return 0


def _source_args(args) -> list[str]:
    out = []
    if args.stream:
        out += ["--stream", args.stream]
    if args.stream_type:
        out += ["--type", args.stream_type]
    return out


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
