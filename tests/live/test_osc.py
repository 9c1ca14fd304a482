"""OSC out and in (live.osc) on loopback: a real python-osc parser receiving, a real
python-osc client sending, the engine painting a real simulated headset read over LSL with
the bundled demo model (its performer profile, so states and controls are sent too)."""

from __future__ import annotations

import math
import socket
import struct
import threading
import time
import uuid

import numpy as np
import pytest
from PIL import Image
from pylsl import local_clock
from pythonosc.osc_packet import OscPacket
from pythonosc.udp_client import SimpleUDPClient

from live.engine import COMMAND_QUEUE, Engine, EngineConfig
from live.osc import OscIn, OscOut, OscOutConfig, parse_osc_address
from live.render import load_models, main
from live.simulate import Simulator, SimulatorConfig
from live.sinks import SnapshotWriter
from live.source import LSLSource
from neuropaint.logs import run_cli
from neuropaint.validate import NeuropaintError

pytestmark = pytest.mark.slow

FPS = 15.0
BANDS = ["delta", "theta", "alpha", "beta", "gamma"]
WARM_S = 2.6  # the first feature row needs a 2 s window


@pytest.fixture(scope="module")
def demo():
    """The bundled demo: ``(profile, G)``."""
    profile, G, _, _ = load_models(None, None)
    return profile, G


class Receiver:
    """A UDP socket on loopback; each datagram parsed by python-osc, with its arrival time."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.address = self.sock.getsockname()
        self.packets: list[tuple[float, dict[str, tuple]]] = []  # (arrival, address -> args)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            now = local_clock()
            messages = {m.message.address: tuple(m.message.params)
                        for m in OscPacket(data).messages}
            self.packets.append((now, messages))

    def rows(self) -> list[dict]:
        return [m for _, m in self.packets if "/neuropaint/eeg_time" in m]

    def frames(self) -> list[dict]:
        return [m for _, m in self.packets if "/neuropaint/frame" in m]

    def close(self):
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def _start_sim(**options) -> tuple[Simulator, str]:
    name = f"osc-{uuid.uuid4().hex[:10]}"
    sim = Simulator(SimulatorConfig(name=name, channels=32, **options)).start()
    return sim, name


def _engine(demo, source, **kw) -> Engine:
    profile, G = demo
    config = EngineConfig(fps=FPS, size=32, calibration=0.0, baseline_memory=None)
    return Engine(profile, G, source, config, **kw)


def _frames(engine: Engine, seconds: float) -> list:
    frames = []
    engine.run(seconds, on_frame=frames.append)
    return frames


def test_every_documented_address_arrives_with_types_and_plausible_values(demo):
    profile, _ = demo
    receiver = Receiver()
    sim, name = _start_sim()
    try:
        with LSLSource(name, timeout=5).open() as source:
            out = OscOut([receiver.address], OscOutConfig(regions=True))
            engine = _engine(demo, source, sinks=[out])
            sim.set_state("eyes_closed")
            _frames(engine, 3.5)
            switch = local_clock()
            sim.set_state("focused")
            frames = _frames(engine, 3.5)
            engine.close()
        time.sleep(0.2)
    finally:
        sim.stop()
        receiver.close()
    rows, framed = receiver.rows(), receiver.frames()
    # Row bundles: about 64 a second, each one moment (one EEG time), in time order.
    times = np.array([r["/neuropaint/eeg_time"][0] for r in rows])
    assert len(rows) > 5.0 * 50 and np.all(np.diff(times) > 0)
    assert np.median(np.diff(times)) == pytest.approx(1 / 64, rel=0.1)
    regions = {a.split("/")[3] for r in rows for a in r if a.startswith("/neuropaint/region/")}
    assert {"frontal_left", "occipital_midline", "temporal_right"} <= regions
    for row in rows:
        assert all(isinstance(v, float) for v in row["/neuropaint/eeg_time"])
        shares = [row[f"/neuropaint/band/{b}"][0] for b in BANDS]
        assert all(isinstance(s, float) and 0.0 <= s <= 1.0 for s in shares)
        assert sum(shares) == pytest.approx(1.0, abs=1e-3)
        occipital = [row[f"/neuropaint/region/occipital_midline/{b}"][0] for b in BANDS]
        assert sum(occipital) == pytest.approx(1.0, abs=1e-3)
        flag, kind = row["/neuropaint/artifact"]
        assert isinstance(flag, int) and isinstance(kind, str) and (flag == 1) == (kind != "")
    # The profile's reading rides in the frame bundles (the player steps once a frame), from
    # the first frame that read rows (after the 2 s window); never in a row bundle.
    assert not any("/neuropaint/state" in r for r in rows)
    read = [f for f in framed if "/neuropaint/state" in f]
    assert 0.6 * len(framed) <= len(read) <= len(framed)
    for row in read:
        posteriors = [row[f"/neuropaint/state/{s}"][0] for s in profile.states]
        assert sum(posteriors) == pytest.approx(1.0, abs=1e-3)
        assert row["/neuropaint/state"][0] in ["", *profile.states]
        assert all(0.0 <= row[f"/neuropaint/control/{c}"][0] <= 1.0 for c in profile.controls)
        assert row["/neuropaint/forced"] == ("",)
    # Plausible: eyes closed is more alpha, and the profile says so, than focused.
    late = switch + 2.5  # the 2 s window has left the eyes-closed block

    def mean(address, select):
        return np.mean([r[address][0] for r in select if address in r])

    closed = [r for r in rows if r["/neuropaint/eeg_time"][0] < switch]
    focused = [r for r in rows if r["/neuropaint/eeg_time"][0] > late]
    assert mean("/neuropaint/band/alpha", closed) > mean("/neuropaint/band/alpha", focused)
    closed_frames = [f for f in read if f["/neuropaint/frame/eeg_time"][0] < switch]
    focused_frames = [f for f in read if f["/neuropaint/frame/eeg_time"][0] > late]
    assert mean("/neuropaint/state/eyes_closed", closed_frames) > 0.5
    assert mean("/neuropaint/state/focused", focused_frames) > mean("/neuropaint/state/focused",
                                                                      closed_frames)
    # Frame bundles: one per painted frame, with its number, the EEG time and age it shows.
    assert len(framed) == engine.stats.frames
    numbers = [f["/neuropaint/frame"][0] for f in framed]
    assert numbers == list(range(len(framed)))
    last = framed[-1]
    assert last["/neuropaint/frame/eeg_time"][0] == pytest.approx(frames[-1].eeg_time)
    assert 0.0 < last["/neuropaint/age_ms"][0] < 1000.0
    # The engine's own rate over the last 2 s: the clock caps it, the machine's load sets it
    # (a busy machine paints fewer frames; a timing figure is a benchmark's job).
    assert 0.0 < last["/neuropaint/fps"][0] <= FPS * 1.3
    assert last["/neuropaint/fps"][0] == pytest.approx(engine.stats.fps(), rel=0.2)
    assert last["/neuropaint/signal"] == ("ok",)
    assert isinstance(last["/neuropaint/dropped"][0], int)
    assert last["/neuropaint/level"] == (1.0,)
    assert out.send_errors == 0 and out.rows_sent == len(rows)


def _send_and_wait(engine: Engine, osc_in: OscIn, client: SimpleUDPClient, address: str,
                   *args) -> None:
    """Send one command and wait until the OSC-in thread has queued it."""
    before = osc_in.received
    client.send_message(address, list(args))
    deadline = time.monotonic() + 2.0
    while osc_in.received == before and time.monotonic() < deadline:
        time.sleep(0.002)
    assert osc_in.received == before + 1, f"{address} never arrived"


def _paint(engine: Engine, n: int) -> list:
    frames = []
    for _ in range(n):
        frames.append(engine.render_frame())
        time.sleep(1 / FPS)
    return frames


def test_osc_in_commands_change_the_engine(demo, tmp_path):
    profile, G = demo
    sim, name = _start_sim()
    osc_in = OscIn()
    try:
        with LSLSource(name, timeout=5).open() as source:
            engine = _engine(demo, source, snapshots=SnapshotWriter(tmp_path / "snaps"))
            osc_in.start(engine.submit)
            client = SimpleUDPClient(*osc_in.address)

            def command(address, *args):
                _send_and_wait(engine, osc_in, client, address, *args)

            _frames(engine, WARM_S)
            assert engine.last_frame.signal == "ok"
            # Blackout: a cut to black (fade 0), then back.
            command("/neuropaint/blackout", 1)
            assert _paint(engine, 1)[0].image.max() == 0
            command("/neuropaint/blackout", 0)
            assert _paint(engine, 1)[0].image.max() > 0
            # A fade takes its time: dimmer, not black, then black.
            command("/neuropaint/fade", 0.5)
            command("/neuropaint/blackout", True)
            fading = _paint(engine, 12)
            levels = [f.image.astype(float).mean() for f in fading]
            assert 0 < levels[1] < levels[0] and levels[-1] == 0
            assert engine.status()["stage"]["level"] == 0.0
            command("/neuropaint/fade", 0)
            command("/neuropaint/blackout", 0)
            # Freeze: the image stands still while the EEG goes on.
            command("/neuropaint/freeze", 1)
            frozen = _paint(engine, 5)
            assert all(np.array_equal(f.image, frozen[0].image) for f in frozen)
            assert frozen[-1].eeg_time > frozen[0].eeg_time
            command("/neuropaint/freeze", 0)
            # Tau and drift retune the motion.
            command("/neuropaint/tau", 0.05)
            command("/neuropaint/drift", 0)
            _paint(engine, 1)
            assert engine.follower.motion.config.tau == pytest.approx(0.05)
            assert engine.follower.motion.config.drift == 0.0
            # Force a state: the painting goes to its target (plus the controls' lean).
            command("/neuropaint/force_state", "relaxed")
            _paint(engine, 1)
            assert engine.status()["stage"]["forced"] == "relaxed"
            assert engine.last_frame.instrument["forced"] == "relaxed"
            player = engine.follower.player
            lean = player.target() - profile.targets[profile.states.index("relaxed")].numpy()
            assert np.abs(lean).max() < 3.0  # the target is relaxed's, leaning by controls
            command("/neuropaint/force_state", "")
            _paint(engine, 1)
            assert engine.follower.player.forced is None
            # Target: go to a state's target and hold it (the EEG no longer moves it).
            start = engine.last_frame.ws
            command("/neuropaint/target", "focused")
            goal = profile.targets[profile.states.index("focused")].numpy()
            # The move is speed-limited (the player's crossfade): give it the time it needs.
            limit = engine.follower.motion.config.max_step
            seconds = np.linalg.norm(start - goal, axis=-1).max() / (limit or np.inf) + 1.0
            held = _paint(engine, max(15, math.ceil(seconds * FPS)))
            np.testing.assert_allclose(engine.follower.motion.target, goal, atol=1e-5)
            assert np.abs(held[-1].ws - goal).max() < 0.05
            # Blend: half way between the EEG's target and the held latent.
            command("/neuropaint/target")
            command("/neuropaint/blend", 0.5)
            _paint(engine, 1)
            expected = 0.5 * engine.follower.driven + 0.5 * goal
            np.testing.assert_allclose(engine.follower.motion.target, expected, atol=1e-5)
            command("/neuropaint/blend", 0.0)
            # Hold: the target stays put while the EEG goes on.
            command("/neuropaint/hold", 1)
            _paint(engine, 1)
            target = engine.follower.motion.target.copy()
            _paint(engine, 6)
            np.testing.assert_array_equal(engine.follower.motion.target, target)
            assert engine.status()["stage"]["hold"] is True
            command("/neuropaint/hold", 0)
            # Snapshot: the painting and its ws, readable.
            shown = _paint(engine, 1)[0]
            command("/neuropaint/snapshot", "chorus")
            _paint(engine, 1)
            engine.close()  # waits for the writer
        stage = engine.status()["stage"]
        assert stage["commands_refused"] == 0 and stage["commands_dropped"] == 0
    finally:
        osc_in.close()
        sim.stop()
    pngs = sorted((tmp_path / "snaps").glob("*.png"))
    assert [p.name for p in pngs] == [f"snapshot_0000_frame_{shown.index:06d}_chorus.png"]
    image = np.asarray(Image.open(pngs[0]))
    np.testing.assert_array_equal(image, shown.image)
    assert image.shape == (32, 32, 3)
    ws = np.load(pngs[0].with_suffix(".npy"))
    assert ws.dtype == np.float32 and ws.shape == (G.num_ws, G.w_dim)
    np.testing.assert_array_equal(ws, shown.ws)


def test_garbage_and_unknown_addresses_leave_the_loop_running(demo, caplog):
    sim, name = _start_sim()
    osc_in = OscIn()
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        with LSLSource(name, timeout=5).open() as source:
            engine = _engine(demo, source, snapshots=None)
            osc_in.start(engine.submit)
            client = SimpleUDPClient(*osc_in.address)
            _frames(engine, WARM_S)
            garbage = [b"\x00\xffnot osc at all", b"/neuropaint/hold\x00\x00\x00\x00,i",
                       b"#bundle\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\xff/x",
                       b"/neuropaint/tau\x00,f\x00\x00\x01", b"", b"/" * 9000]
            for packet in garbage * 3:
                raw.sendto(packet, osc_in.address)
            for _ in range(3):  # each problem is logged once
                client.send_message("/somewhere/else", 1)
                client.send_message("/neuropaint/nope", 1)
                client.send_message("/neuropaint/tau", "slow")  # wrong type
                client.send_message("/neuropaint/hold", [1, 2, 3])  # too many arguments
                client.send_message("/neuropaint/force_state", "asleep")  # no such state
                client.send_message("/neuropaint/blend", 2.0)  # out of range
                client.send_message("/neuropaint/snapshot", [])  # no snapshot folder
            # A bundle dated a year ahead is applied now, not waited for.
            future = (int(time.time()) + 2208988800 + 365 * 86400) << 32
            message = b"/neuropaint/drift\x00\x00\x00,f\x00\x00" + struct.pack(">f", 0.3)
            raw.sendto(b"#bundle\x00" + struct.pack(">Q", future)
                       + struct.pack(">i", len(message)) + message, osc_in.address)
            time.sleep(0.3)
            frames = _paint(engine, 10)
            _send_and_wait(engine, osc_in, client, "/neuropaint/blackout", 1)
            after = _paint(engine, 2)
    finally:
        osc_in.close()
        sim.stop()
        raw.close()
    assert all(f.signal == "ok" for f in frames)
    assert after[-1].image.max() == 0, "a good command after the garbage still works"
    assert engine.follower.motion.config.drift == pytest.approx(0.3)
    assert osc_in.bad_packets >= 3 and osc_in.unknown == 6
    assert engine.stage.refused == 15
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    for text in ["unknown OSC address '/somewhere/else'", "unknown OSC address "
                 "'/neuropaint/nope'", "'tau' takes a number, got 'slow'", "too many arguments",
                 "unknown state 'asleep'", "'blend' must be from 0 to 1, got 2.0",
                 "no snapshot folder", "not OSC"]:
        assert sum(text in w for w in warnings) == 1, (text, warnings)


def test_a_receiver_that_is_not_listening_breaks_nothing(demo, caplog):
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nobody listens there: Linux answers with ICMP port unreachable
    sim, name = _start_sim()
    try:
        with LSLSource(name, timeout=5).open() as source:
            # A broadcast address without SO_BROADCAST: every send fails (EACCES), as one to
            # an unreachable network would.
            out = OscOut([("127.0.0.1", port), ("255.255.255.255", port)])
            engine = _engine(demo, source, sinks=[out])
            frames = _frames(engine, WARM_S + 1.0)
            engine.close()
    finally:
        sim.stop()
    assert frames[-1].signal == "ok" and len(frames) >= 0.8 * FPS * (WARM_S + 1.0)
    assert out.rows_sent > 64
    # The unconnected socket never hears of the closed port (no ICMP error is reported to
    # sendto); the failing broadcast is counted for every bundle, logged once, never raised.
    assert out.send_errors == out.rows_sent + out.frames_sent
    assert out.packets == out.rows_sent + out.frames_sent  # all to 127.0.0.1
    failed = [r.getMessage() for r in caplog.records if "OSC out to" in r.getMessage()]
    assert len(failed) == 1 and "255.255.255.255" in failed[0], failed


def test_a_flood_of_commands_costs_bounded_work_per_frame(demo):
    sim, name = _start_sim()
    osc_in = OscIn()
    stop = threading.Event()
    sent = [0]

    def flood():
        client = SimpleUDPClient(*osc_in.address)
        while not stop.is_set():
            client.send_message("/neuropaint/drift", 0.1 + (sent[0] % 10) / 100)
            sent[0] += 1

    try:
        with LSLSource(name, timeout=5).open() as source:
            engine = _engine(demo, source)
            osc_in.start(engine.submit)
            _frames(engine, WARM_S)
            flooder = threading.Thread(target=flood, daemon=True)
            flooder.start()
            applied, waiting = [], []
            for _ in range(20):
                before = engine.stage.applied
                engine.render_frame()
                applied.append(engine.stage.applied - before)
                waiting.append(engine.stage.commands.qsize())
                time.sleep(1 / FPS)
            stop.set()
            flooder.join(2)
    finally:
        osc_in.close()
        sim.stop()
    per_frame = engine.config.commands_per_frame
    assert max(applied) == per_frame and max(waiting) <= COMMAND_QUEUE
    assert engine.stage.dropped > 0 and sent[0] > 20 * per_frame
    # The loop paints on (the in-process simulator, starved of CPU by the flood, may leave
    # gaps that the artifact gate holds the painting through).
    assert engine.last_frame.signal in ("ok", "artifact")
    assert np.isfinite(engine.last_frame.ws).all()


def test_bad_osc_addresses_are_one_line_errors(capsys):
    bound = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    bound.bind(("127.0.0.1", 0))
    port = bound.getsockname()[1]
    try:
        cases = [
            (["--osc-out", "127.0.0.1"], r"--osc-out must be HOST:PORT .*: no port"),
            (["--osc-regions", "--no-serve"], r"--osc-regions needs --osc-out HOST:PORT"),
            (["--osc-out", "127.0.0.1:0"], r"the port must be a number from 1 to 65535"),
            (["--osc-out", "127.0.0.1:70000"], r"the port must be a number from 1 to 65535"),
            (["--osc-out", "999.1.1.1:9000"], r"'999.1.1.1' is not an IPv4 address"),
            (["--osc-out", "no such host:9000"], r"is not a host name or IP address"),
            (["--osc-out", "nosuch.invalid:9000"], r"cannot resolve 'nosuch.invalid'"),
            (["--osc-in", "127.0.0.1:x"], r"--osc-in must be HOST:PORT"),
            (["--osc-in", f"127.0.0.1:{port}", "--no-serve"],
             rf"--osc-in cannot listen on 127.0.0.1:{port}: in use"),
            # --token reaches the viewer (which checks it).
            (["--token", "bad token!", "--serve", "127.0.0.1:0", "--size", "32"],
             r"'token' must be 1 to 256 letters"),
        ]
        for args, message in cases:
            with pytest.raises(NeuropaintError, match=message):
                main(args)
        # As a user sees it: one line, status 2.
        assert run_cli(main, ["--osc-in", f"127.0.0.1:{port}", "--no-serve"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].endswith(f"error: --osc-in cannot listen on 127.0.0.1:{port}: in use.")
        assert "Traceback" not in "".join(err)
    finally:
        bound.close()
    assert parse_osc_address(":9000", "--osc-out") == ("127.0.0.1", 9000)
    assert parse_osc_address("localhost:9000", "--osc-out")[1] == 9000
    assert parse_osc_address("[::1]:9000", "--osc-out") == ("::1", 9000)


def test_live_render_sends_and_takes_osc(tmp_path, capsys):
    """The CLI wiring: --osc-out to a receiver, --osc-in taking a snapshot and a blackout."""
    receiver = Receiver()
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    stop = threading.Event()

    def steer():  # once frames arrive: a snapshot, then black
        client = SimpleUDPClient("127.0.0.1", port)
        while not stop.is_set() and not receiver.frames():
            time.sleep(0.1)
        client.send_message("/neuropaint/snapshot", "cli")
        time.sleep(0.3)
        client.send_message("/neuropaint/blackout", 1)

    steering = threading.Thread(target=steer, daemon=True)
    steering.start()
    try:
        code = main(["--osc-out", f"127.0.0.1:{receiver.address[1]}", "--osc-in",
                     f"127.0.0.1:{port}", "--snapshot-dir", str(tmp_path), "--no-serve",
                     "--duration", "4", "--size", "32", "--units", "uV", "-q"])
    finally:
        stop.set()
        steering.join(2)
        receiver.close()
    out = capsys.readouterr().out
    assert code == 0
    assert f"OSC out to 127.0.0.1:{receiver.address[1]}" in out
    assert f"OSC in at 127.0.0.1:{port}" in out
    assert len(receiver.rows()) > 64 and receiver.frames()
    assert receiver.frames()[-1]["/neuropaint/level"] == (0.0,)
    snaps = list(tmp_path.glob("snapshot_0000_frame_*_cli.png"))
    assert len(snaps) == 1 and Image.open(snaps[0]).size == (32, 32)
    assert math.isfinite(np.load(snaps[0].with_suffix(".npy")).sum())
