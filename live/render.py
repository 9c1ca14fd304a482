"""``python -m live.render``: paint a brain live, for a performance.

Examples
--------
python -m live.render                                  # the demo: simulated headset, bundled model
python -m live.render --duration 60 --no-serve         # a minute of it, status lines only
python -m live.render --stream MyHeadset               # a real headset on LSL (by stream name)
python -m live.render --type EEG --encoder runs/enc --generator runs/gan --size 512
python -m live.render --stream MyHeadset --record sessions/tonight --frames out/frames
python -m live.render --frames out/frames --frames-every 15 --frames-max 600  # 1 a second
python -m live.render --serve 0.0.0.0:8765             # the viewer, visible to the network
python -m live.render --osc-out 127.0.0.1:9000 --osc-in 127.0.0.1:9001  # TouchDesigner, Max

With no ``--stream``/``--type``/``--source-id``, a simulated headset (``python -m
live.simulate``, synthetic EEG cycling through brain states) is started in a child process and
played. With no ``--encoder``/``--generator``, the bundled demo model (``live/demo_model``, see
:mod:`live.demo`) paints. The viewer is served at ``--serve`` (default
``127.0.0.1:8765``; its URL is printed), and a one-line status is printed every few seconds:
frames per second, frame age (EEG sample to painted frame) p50/p95, dropped frames and the
state of the signal. Ctrl-C (or ``--duration``) stops everything cleanly: the session recording
is closed, the child simulator ended. The last two lines give the whole session (frames,
mean fps, frame age p50/p95, dropped frames), then the last window as the status line does.

With the simulator, a state's name or number typed in the terminal (and Enter) switches the
simulated headset to it and holds it (``cycle`` cycles again): the line is checked and
echoed here, a typo refused with the valid names, and the status line ends with the state
the simulator is streaming (read from its marker stream ``NAME-states``, as it is with
``--stream NAME`` for a ``python -m live.simulate`` in another terminal).

``--osc-out HOST:PORT`` (repeatable) sends the EEG features, states and frame figures as
OSC; ``--osc-in HOST:PORT`` takes stage commands (hold, force a state, blackout, snapshot,
...): the address space is in :mod:`live.osc`.

liblsl and MNE are quiet unless ``-v``; ``--frames-every``/``--frames-max`` thin out
``--frames``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import torch

from conditioning.motion import MotionConfig
from conditioning.player import PlayerConfig
from eeg.io import UNITS_CHOICES
from eeg.synthetic import list_states
from live.engine import Engine, EngineConfig, check_output_size
from neuropaint.device import resolve_device
from neuropaint.logs import run_cli, setup_logging
from neuropaint.signals import stop_on_signals
from neuropaint.validate import NeuropaintError, build_config, check_int

logger = logging.getLogger(__name__)

__all__ = ["SimulatorProcess", "load_models", "main"]

SIMULATOR_START_S = 30.0  # Longest wait for the child simulator's first line.


class SimulatorProcess:
    """``python -m live.simulate`` in a child process, ended with the parent."""

    def __init__(self, name: str, *, channels: int = 32, rate: float = 256.0,
                 chunk: int = 16, extra: Sequence[str] = (), commands: bool = False):
        self.name = name
        cmd = [sys.executable, "-m", "live.simulate", "--name", name, "--channels",
               str(channels), "--rate", f"{rate:g}", "--chunk", str(chunk), *extra]
        # Its own process group: Ctrl-C in the terminal reaches the parent only, which then
        # ends the child in order (no traceback from either).
        # stderr goes to a file, not a pipe nobody reads (a full pipe would stall the child).
        # stdin: with ``commands`` a pipe that :meth:`send` writes state switches into (the
        # parent reads the terminal, checks and echoes what is typed); else nothing.
        self._stderr = tempfile.TemporaryFile(mode="w+")
        if commands:
            cmd.append("--stdin")
        self.process = subprocess.Popen([*cmd, "--log-level", "WARNING"],
                                        stdin=subprocess.PIPE if commands else subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=self._stderr, text=True,
                                        start_new_session=True, preexec_fn=_end_with_parent)
        self.line = self._wait_ready()

    def send(self, command: str) -> None:
        """Pass one command line (a state, or 'cycle') to the simulator's stdin."""
        if self.process.stdin is None or self.process.poll() is not None:
            raise NeuropaintError("the simulated headset is not running.")
        try:
            self.process.stdin.write(command.strip() + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, ValueError) as exc:  # ValueError: the pipe is closed
            raise NeuropaintError(f"the simulated headset does not listen: {exc}") from None

    def _wait_ready(self) -> str:
        result: list[str] = []

        def read() -> None:
            result.append(self.process.stdout.readline())

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(SIMULATOR_START_S)
        line = result[0].strip() if result else ""
        if not line.startswith("live.simulate: streaming"):
            self._end()
            self._stderr.seek(0)
            err = self._stderr.read().strip().splitlines()
            self.stop()
            why = err[-1] if err else f"no start line in {SIMULATOR_START_S:g} s"
            raise NeuropaintError(f"the simulated headset did not start: {why}")
        return line

    def stop(self) -> None:
        """End the child (SIGINT, then SIGKILL after 5 s) and close its pipes."""
        self._end()
        if self.process.stdin is not None:
            try:
                self.process.stdin.close()
            except BrokenPipeError:  # it had ended with a command unread
                pass
        self.process.stdout.close()
        self._stderr.close()

    def _end(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class SimulatedState:
    """The state a simulated headset is streaming, from its marker stream ``NAME-states``.

    The simulator sends each state change there (``live.simulate``), so this works for the
    child simulator and for one running in another terminal alike, and it shows what the
    headset streams rather than what was asked for. LSL does not replay samples sent before
    an inlet connects: ``initial`` is the state until the first marker arrives (the child
    simulator starts in the first state of its cycle, and changes only at block ends or on
    a command, which come after the inlet is open).

    Parameters
    ----------
    name : str
        The EEG stream's name (the marker stream is ``NAME-states``).
    timeout : float
        Seconds to find the marker stream; without one, :attr:`state` stays None.
    initial : str | None
    """

    def __init__(self, name: str, *, timeout: float = 2.0, initial: str | None = None):
        import pylsl

        from live.simulate import marker_stream_name

        self.state = initial
        self.inlet = None
        infos = pylsl.resolve_bypred(f"name='{marker_stream_name(name)}'", 1, timeout)
        if infos:
            self.inlet = pylsl.StreamInlet(infos[0])
            self.inlet.open_stream(timeout)

    @property
    def found(self) -> bool:
        return self.inlet is not None

    def poll(self) -> str | None:
        """The newest state (never waits)."""
        if self.inlet is not None:
            samples, _ = self.inlet.pull_chunk(timeout=0.0)
            if samples:
                self.state = samples[-1][0]
        return self.state

    def close(self) -> None:
        if self.inlet is not None:
            self.inlet.close_stream()
            self.inlet = None


def _keyboard(simulator: SimulatorProcess, stop: threading.Event) -> None:
    """The terminal switches the child simulator's states, checked and echoed here."""
    from live.simulate import follow_commands

    follow_commands(sys.stdin, lambda _state, line: simulator.send(line), stop,
                    prog="live.render", prefix="simulator ")


def _end_with_parent() -> None:
    """In the child, before exec: ask Linux to send SIGTERM when the parent dies.

    Even a parent killed with SIGKILL (which cannot clean up) then leaves no simulator behind.
    Elsewhere this does nothing; the parent's normal exit still stops the child.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG = 1


def load_models(encoder_path: str | None, generator_path: str | None, *,
                profile_path: str | None = None, device: str = "cpu"):
    """``(mapping, G, mapping_folder, generator_folder)``.

    The mapping is a performer profile (``profile_path``; its generator is
    ``generator_path`` or the demo's), an encoder (``encoder_path`` with ``generator_path``),
    or with none of them the bundled demo: its profile when it has one, else its encoder.
    """
    from conditioning.encoder import Encoder
    from conditioning.profile import PerformerProfile
    from gan.checkpoint import load_generator
    from live.demo import demo_paths, demo_profile

    if profile_path is not None and encoder_path is not None:
        raise NeuropaintError("give --profile or --encoder, not both.")
    if profile_path is None and (encoder_path is None) != (generator_path is None):
        raise NeuropaintError("give both --encoder and --generator (or neither, for the demo "
                              "model).")
    if profile_path is None and encoder_path is None:
        profile_path = demo_profile()  # None when the demo model has no profile
    if profile_path is not None:
        gen_dir = Path(generator_path) if generator_path else demo_paths()[1]
        mapping = PerformerProfile.from_pretrained(profile_path, generator_path=gen_dir)
        map_dir = Path(profile_path)
    else:
        enc_dir, gen_dir = ((Path(encoder_path), Path(generator_path)) if encoder_path
                            else demo_paths())
        mapping = Encoder.from_pretrained(enc_dir, generator_path=gen_dir, device=device)
        map_dir = enc_dir
    G = load_generator(gen_dir, device=device)
    return mapping, G, map_dir, gen_dir


def _status_line(engine: Engine, source, simulated: SimulatedState | None = None) -> str:
    status = engine.status()
    age = status.get("age_ms") or {}
    ages = (f"age p50 {age['p50']:.0f} ms p95 {age['p95']:.0f} ms" if age else "age -")
    signal_state = status.get("reason") or status.get("signal", "waiting")
    if getattr(source, "stalled", False):
        signal_state = f"stalled {source.stalled_for:.1f} s"
    line = (f"{status['fps']:.1f} fps, {ages}, dropped {status['dropped']}, "
            f"signal {signal_state}, frame {status['frames']}")
    instrument = status.get("instrument")
    if instrument:
        committed = instrument.get("committed")
        belief = instrument.get("posteriors", {}).get(committed, 0.0) if committed else 0.0
        line += (f", state {committed} ({belief:.2f})" if committed else ", state -")
    if simulated is not None and simulated.found:
        line += f", simulated {simulated.poll() or '-'}"
    return line


def _session_line(engine: Engine) -> str:
    """The whole session's figures (the status line shows the last window's)."""
    session = engine.stats.session()
    age = session["age_ms"]
    ages = f"age p50 {age['p50']:.0f} ms p95 {age['p95']:.0f} ms" if age else "age -"
    line = (f"session {session['frames']} frames in {session['seconds']:.1f} s, "
            f"mean {session['fps']:.1f} fps, {ages}, dropped {session['dropped']}")
    if session["stalled_frames"]:
        line += f", stalled {session['stalled_frames']}"
    return line


def _state_choices() -> str:
    return ", ".join(f"{i} {name}" for i, name in enumerate(list_states(), 1))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m live.render",
                                description="Paint EEG live: headset (or simulator) -> viewer.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    src = p.add_argument_group("EEG source (none: a simulated headset)")
    src.add_argument("--stream", help="LSL stream name of the headset")
    src.add_argument("--type", dest="stream_type", help="LSL stream type (e.g. EEG)")
    src.add_argument("--source-id", help="LSL source_id of the headset")
    src.add_argument("--timeout", type=float, default=10.0, help="seconds to find the stream")
    src.add_argument("--units", choices=UNITS_CHOICES, default="auto",
                     help="the headset's EEG unit: auto trusts the stream's metadata unless "
                          "its amplitudes cannot be EEG in that unit (then rescales, saying "
                          "so); V, uV or mV overrides the metadata")
    src.add_argument("--sim-channels", type=int, default=32, help="simulator: channels")
    src.add_argument("--sim-rate", type=float, default=256.0, help="simulator: rate in Hz")
    src.add_argument("--sim-chunk", type=int, default=16, help="simulator: samples per chunk")
    model = p.add_argument_group("model (none: the bundled demo model and its profile)")
    model.add_argument("--profile", help="performer profile folder (python -m live.calibrate "
                       "or conditioning.calibrate): your states paint your targets")
    model.add_argument("--encoder", help="encoder folder (conditioning.train), instead of a "
                       "profile")
    model.add_argument("--generator", help="generator snapshot or run (gan.train); with "
                       "--profile, default: the demo generator")
    model.add_argument("--hold", type=float, help="profile: seconds a state must lead before "
                       "the painting commits to it (default: the profile's)")
    model.add_argument("--crossfade", type=float, help="profile: least seconds a move between "
                       "the two closest targets takes, 0 for no limit (default: the profile's)")
    model.add_argument("--upscaler", help="gan.upscale model applied after the generator "
                       "(the demo model brings its own)")
    model.add_argument("--no-upscaler", action="store_true",
                       help="bicubic resizing only, even with the demo model")
    model.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, "
                       "cuda:1, ...")
    model.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                       help="generator and upscaler number format: auto is bf16 where the "
                            "hardware computes it (CUDA, a CPU with AVX512-BF16 or AMX), "
                            "else fp32")
    model.add_argument("--threads", type=int, default=1,
                       help="torch CPU threads; 1 is safest beside the LSL, viewer and "
                            "simulator threads (on a busy CPU 2 threads spin against them); "
                            "on a machine doing nothing else, 2 paint a 512 px frame sooner "
                            "(frame age p95 98 vs 111 ms on a 2-core CPU)")
    paint = p.add_argument_group("painting")
    paint.add_argument("--fps", type=float, default=15.0, help="target frames per second")
    paint.add_argument("--size", type=int, default=256,
                       help="output side in pixels (the demo takes its x8 upscaler above 256)")
    paint.add_argument("--calibration", type=float,
                       help="seconds of EEG that set the session baseline (default: 10 with "
                            "an encoder, 0 with a profile, which brings the performer's own)")
    paint.add_argument("--tau", type=float, default=0.6, help="motion time constant (s)")
    paint.add_argument("--drift", type=float, default=0.15,
                       help="slow wander in W when the EEG is still (0: off)")
    paint.add_argument("--seed", type=int, default=0, help="seed of the drift")
    out = p.add_argument_group("outputs")
    out.add_argument("--serve", default="127.0.0.1:8765",
                     help="viewer address HOST:PORT (0.0.0.0 exposes it to the network)")
    out.add_argument("--no-serve", action="store_true", help="no viewer")
    out.add_argument("--token", help="viewer: the token a client must give (generated and "
                     "printed in the URL when serving beyond this machine and none is given)")
    out.add_argument("--allow-host", action="append", metavar="HOST",
                     help="viewer: also accept this Host header (repeatable; e.g. the "
                          "machine's name on the network)")
    out.add_argument("--osc-out", action="append", metavar="HOST:PORT",
                     help="send EEG features, states and frame figures as OSC to HOST:PORT "
                          "(repeatable; addresses /neuropaint/..., see live.osc)")
    out.add_argument("--osc-regions", action="store_true",
                     help="with --osc-out: also send band powers per scalp region "
                          "(/neuropaint/region/<region>/<band>, ~80 more messages per row)")
    out.add_argument("--osc-in", metavar="HOST:PORT",
                     help="take stage commands over OSC on this UDP address (e.g. "
                          "127.0.0.1:9001; :PORT is this machine only; another host only if "
                          "named)")
    out.add_argument("--snapshot-dir", metavar="FOLDER",
                     help="where /neuropaint/snapshot writes (None: --record's "
                          "snapshots/ folder, if recording)")
    out.add_argument("--frames", help="also write numbered frames into this folder")
    out.add_argument("--frame-format", default="jpg", choices=("jpg", "png"),
                     help="image format of the --frames files: jpg is small, png lossless")
    out.add_argument("--frames-every", type=int, default=1, metavar="N",
                     help="with --frames: keep one frame in N (files keep the frame's "
                          "number: frame_000000, frame_00000N, ...)")
    out.add_argument("--frames-max", type=int, metavar="M",
                     help="with --frames: write at most M files (None: no limit)")
    out.add_argument("--record", help="record the session (EEG, frames, ws) into this folder")
    out.add_argument("--duration", type=float, help="stop after this many seconds")
    out.add_argument("--status-every", type=float, default=5.0,
                     help="seconds between status lines")
    out.add_argument("-q", "--quiet", action="store_true", help="warnings only")
    out.add_argument("-v", "--verbose", action="store_true",
                     help="also show liblsl's and MNE's own messages")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging("WARNING" if args.quiet else "INFO", verbose=args.verbose)
    from live.osc import OscIn, OscOut, OscOutConfig, parse_osc_address
    from live.record import SessionRecorder
    from live.sinks import FrameFolder, SnapshotWriter, ViewerSink
    from live.source import LSLSource
    from live.viewer import Viewer, parse_address

    address = None if args.no_serve else parse_address(args.serve)
    osc_targets = [parse_osc_address(text, "--osc-out") for text in args.osc_out or ()]
    osc_listen = (None if args.osc_in is None
                  else parse_osc_address(args.osc_in, "--osc-in", allow_zero=True))
    if args.osc_regions and not args.osc_out:
        raise NeuropaintError("--osc-regions needs --osc-out HOST:PORT.")
    if not args.frames and (args.frames_every != 1 or args.frames_max is not None):
        raise NeuropaintError("--frames-every and --frames-max need --frames FOLDER.")
    check_int(args.frames_every, "--frames-every", minimum=1)
    if args.frames_max is not None:
        check_int(args.frames_max, "--frames-max", minimum=1)
    device = resolve_device(args.device)
    encoder, G, enc_dir, gen_dir = load_models(args.encoder, args.generator,
                                               profile_path=args.profile, device=device)
    is_profile = hasattr(encoder, "new_player")
    calibration = args.calibration if args.calibration is not None else (
        0.0 if is_profile else 10.0)
    player = None
    chosen = {k: v for k, v in (("hold", args.hold), ("crossfade", args.crossfade))
              if v is not None}
    if chosen:
        if not is_profile:
            raise NeuropaintError(f"--{next(iter(chosen))} plays a profile's states; an encoder "
                                  f"has none.")
        player = build_config(PlayerConfig, encoder.player_config.model_dump(), **chosen)
    config = build_config(EngineConfig, fps=args.fps, size=args.size, precision=args.precision,
                          calibration=calibration, seed=args.seed, threads=args.threads,
                          baseline_memory=None if is_profile else 60.0, player=player,
                          motion=build_config(MotionConfig, tau=args.tau, drift=args.drift))
    upscaler_path = args.upscaler
    if upscaler_path is None and args.encoder is None and not args.no_upscaler and (
            args.generator is None):
        from live.demo import demo_upscaler

        upscaler_path = demo_upscaler(size=args.size)  # x4 or x8, whichever reaches --size
    upscaler = None
    if upscaler_path:
        from gan.upscale import Upscaler

        upscaler = Upscaler.from_pretrained(upscaler_path, device=device)
    painted = check_output_size(G, upscaler, args.size)  # before anything starts

    stop = threading.Event()
    simulator = source = engine = simulated = osc_in = snapshots = None
    sinks: list = []

    def on_stop() -> None:  # on the watcher thread of stop_on_signals, never in a handler
        stop.set()
        if engine is not None:
            engine.stop()

    with stop_on_signals(on_stop):
        try:
            if osc_listen is not None:  # first: a port in use stops us before anything starts
                osc_in = OscIn(*osc_listen)
            use_simulator = not (args.stream or args.stream_type or args.source_id)
            if use_simulator:
                name = f"neuropaint-demo-{uuid.uuid4().hex[:8]}"
                keyboard = sys.stdin is not None and sys.stdin.isatty()
                simulator = SimulatorProcess(name, channels=args.sim_channels,
                                             rate=args.sim_rate, chunk=args.sim_chunk,
                                             commands=keyboard)
                started = simulator.line.removeprefix("live.simulate: ")
                print(f"live.render: {started}", flush=True)
                simulated = SimulatedState(name, initial=list_states()[0])
                source = LSLSource(name, type="EEG", timeout=args.timeout,
                                   units=args.units).open()
                if keyboard:
                    threading.Thread(target=_keyboard, args=(simulator, stop), daemon=True,
                                     name="render-keyboard").start()
                    print("live.render: type a state's name or number and Enter to hold it "
                          f"in the simulator, 'cycle' to cycle ({_state_choices()})",
                          flush=True)
            else:
                source = LSLSource(args.stream, type=args.stream_type or
                                   (None if args.stream or args.source_id else "EEG"),
                                   source_id=args.source_id, timeout=args.timeout,
                                   units=args.units).open()
                if args.stream:  # a live.simulate in another terminal has a marker stream
                    simulated = SimulatedState(args.stream, timeout=0.7)
            if args.record:
                about = {("profile" if is_profile else "encoder"): str(Path(enc_dir).resolve()),
                         "generator": str(Path(gen_dir).resolve()),
                         "generator_identity": encoder.generator_info,
                         "engine": config.model_dump(mode="json")}
                sinks.append(SessionRecorder(args.record, source.meta, num_ws=G.num_ws,
                                             w_dim=G.w_dim, about=about))
            if args.frames:
                sinks.append(FrameFolder(args.frames, args.frame_format,
                                         every=args.frames_every, max_frames=args.frames_max))
            if osc_targets:
                sinks.append(OscOut(osc_targets,
                                    OscOutConfig(regions=args.osc_regions)))
                shown = ", ".join(f"{h}:{p}" for h, p in osc_targets)
                print(f"live.render: OSC out to {shown}", flush=True)
            snapshot_dir = args.snapshot_dir or (
                Path(args.record) / "snapshots" if args.record else None)
            if snapshot_dir is not None:
                snapshots = SnapshotWriter(snapshot_dir)
            if address is not None:
                viewer = Viewer(*address, title="neuropaint", token=args.token,
                                allowed_hosts=args.allow_host)
                url = viewer.start()
                if is_profile and hasattr(viewer, "set_targets"):
                    from conditioning.render import synthesize

                    viewer.set_targets(encoder.states,
                                       list(synthesize(G, encoder.targets.numpy(), size=96)))
                extra = None
                if simulated is not None and simulated.found:
                    def extra() -> dict:  # the viewer shows 'state' beside the signal
                        state = simulated.poll()
                        return {"simulated_state": state,
                                "state": f"simulated {state}" if state else ""}
                sinks.append(ViewerSink(viewer, extra))
                print(f"live.render: viewer at {url}", flush=True)
            engine = Engine(encoder, G, source, config, sinks=sinks, upscaler=upscaler,
                            snapshots=snapshots)
            if osc_in is not None:
                osc_in.start(engine.submit)
                host, port = osc_in.address
                print(f"live.render: OSC in at {host}:{port} (/neuropaint/hold, "
                      f"/neuropaint/blackout, /neuropaint/snapshot, ...)", flush=True)
            if stop.is_set():
                return 0
            mapping = (f"profile {Path(enc_dir).name} (states {', '.join(encoder.states)})"
                       if is_profile else f"encoder {Path(enc_dir).name}")
            settle = (f"calibrating for {calibration:g} s" if calibration > 0 else
                      "with the profile's baseline")
            how = (f"{G.img_resolution} px x{upscaler.scale}" if upscaler is not None else
                   f"{G.img_resolution} px")
            if args.size > painted:
                how += " stretched (bicubic)"
            print(f"live.render: painting {source.meta.describe()} with {mapping} at "
                  f"{args.fps:g} fps, {args.size} px ({how}, {engine.precision}); {settle} "
                  "(Ctrl-C stops)", flush=True)
            last = [time.monotonic()]

            def on_frame(frame) -> None:
                now = time.monotonic()
                if now - last[0] >= args.status_every:
                    last[0] = now
                    print(f"live.render: {_status_line(engine, source, simulated)}",
                          flush=True)

            with torch.inference_mode():
                engine.run(args.duration, on_frame=on_frame)
            # The whole session first: the status line's figures are of the last seconds only.
            print(f"live.render: stopped: {_session_line(engine)}", flush=True)
            print(f"live.render: last window: {_status_line(engine, source, simulated)}",
                  flush=True)
        finally:
            if osc_in is not None:
                osc_in.close()
            if engine is not None:
                engine.close()
            else:
                for sink in [*sinks, *([snapshots] if snapshots is not None else [])]:
                    sink.close()
            if source is not None:
                source.close()
            if simulated is not None:
                simulated.close()
            if simulator is not None:
                simulator.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
