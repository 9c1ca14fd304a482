"""The live engine against real LSL streams on loopback, with a tiny real model.

Each test starts its own simulated headset (or a raw pylsl outlet) under a unique name, reads
it with :class:`live.source.LSLSource` and paints with the ``tiny_model`` fixture (a 16 px
generator trained for two steps, an encoder aligned to it on synthetic EEG of 16 channels).
"""

from __future__ import annotations

import threading
import time
import uuid

import numpy as np
import pylsl
import pytest

from conditioning.encoder import Encoder, FeatureMismatchWarning
from eeg.io import read_raw
from eeg.synthetic import make_raw
from gan.checkpoint import load_generator
from live.engine import Engine, EngineConfig, band_meters, live_spec
from live.record import SessionRecorder, read_session
from live.simulate import Simulator, SimulatorConfig
from live.source import LSLSource
from neuropaint.validate import build_config

pytestmark = pytest.mark.slow

FPS = 15.0


def unique(prefix: str = "eng") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def simulator(name: str, **options) -> Simulator:
    return Simulator(build_config(SimulatorConfig, name=name, channels=options.pop(
        "channels", 16), **options)).start()


def models(tiny_model):
    enc_dir, gen_dir = tiny_model
    return Encoder.from_pretrained(enc_dir, generator_path=gen_dir), load_generator(gen_dir)


def engine_for(tiny_model, source, **config) -> Engine:
    encoder, G = models(tiny_model)
    cfg = EngineConfig(**{"fps": FPS, "size": 32, "calibration": 1.0, **config})
    return Engine(encoder, G, source, cfg, keep_ages=True)


def collect(engine: Engine, seconds: float) -> list:
    frames = []
    engine.run(seconds, on_frame=frames.append)
    return frames


def test_simulator_to_engine_paints_with_sane_ages(tiny_model):
    name = unique()
    with simulator(name), LSLSource(name, timeout=5).open() as source:
        engine = engine_for(tiny_model, source)
        frames = collect(engine, 4.0)
    assert len(frames) >= 0.5 * FPS * 4.0
    signals = [f.signal for f in frames]
    assert "calibrating" in signals and signals[-1] == "ok"
    ok = [f for f in frames if f.signal == "ok"]
    ages = np.array([f.age for f in ok])
    assert np.isfinite(ages).all()
    assert (ages > 0).all() and np.median(ages) < 0.5
    assert ok[0].image.shape == (32, 32, 3) and ok[0].image.dtype == np.uint8
    # The painting follows the EEG: it does not stand still once calibrated.
    assert np.abs(ok[-1].image.astype(int) - ok[0].image.astype(int)).max() > 0
    assert set(ok[-1].bands) == set(engine.spec.bands)
    assert abs(sum(ok[-1].bands.values()) - 1.0) < 1e-3
    status = engine.status()
    assert status["signal"] == "ok" and status["age_ms"]["p95"] > 0
    assert status["eeg_time"] == frames[-1].eeg_time  # the MJPEG part headers align on it
    assert engine.status(frames[0])["eeg_time"] is None  # before the first row: NaN -> None


def test_outlet_killed_and_restarted_engine_recovers(tiny_model):
    name = unique()
    sim = simulator(name)
    with LSLSource(name, timeout=5).open() as source:
        engine = engine_for(tiny_model, source)
        collect(engine, 2.5)
        before = engine.last_frame
        sim.stop()
        stalled = collect(engine, 2.0)
        assert any(f.signal == "stalled" for f in stalled)
        first = next(i for i, f in enumerate(stalled) if f.signal == "stalled")
        last_painted = stalled[first - 1] if first else before
        held = stalled[first:]
        # The last painted image is held, unchanged, until the stream returns.
        assert all(f.signal == "stalled" for f in held)
        assert all(np.array_equal(f.image, last_painted.image) for f in held)
        back = pylsl.local_clock()
        with simulator(name):
            after = collect(engine, 3.0)
        assert source.reconnects >= 1
        fresh = [f for f in after if f.signal != "stalled" and f.eeg_time > back]
        assert fresh, "no frame reflected the returned stream"
        assert fresh[0].time - back < 2.5
        assert after[-1].signal in ("ok", "artifact")
    sim.stop()


@pytest.mark.parametrize("options", [{"labels": False}, {"channels": 8}, {"format": "int16"}],
                         ids=["no-labels", "fewer-channels", "int16"])
def test_streams_that_do_not_match_the_encoder_still_play(tiny_model, options):
    name = unique()
    with simulator(name, **options), LSLSource(name, timeout=5).open() as source:
        if "format" in options:
            engine = engine_for(tiny_model, source)  # int16 in microvolts: same channels
        else:  # missing regional features are filled from whole-head ones, with a warning
            with pytest.warns(FeatureMismatchWarning, match="filled from whole-head features"):
                engine = engine_for(tiny_model, source)
        frames = collect(engine, 3.0)
    assert frames[-1].signal == "ok"
    if options.get("labels") is False:
        assert source.meta.generic_labels
    if "channels" in options:
        assert source.meta.n_channels == 8 < 16


def _push_with_nan_burst(name: str, stop: threading.Event, nan_from: float, nan_to: float):
    """A raw outlet: 16 synthetic channels in real time, NaN in two channels for a while."""
    raw = make_raw(30.0, n_channels=16, seed=3, blinks=False)
    data = (raw.get_data() * 1e6).astype(np.float32)  # microvolts, samples in columns
    info = pylsl.StreamInfo(name, "EEG", 16, 256.0, pylsl.cf_float32, name)
    chans = info.desc().append_child("channels")
    for label in raw.ch_names:
        ch = chans.append_child("channel")
        ch.append_child_value("label", label)
        ch.append_child_value("unit", "microvolts")
    outlet = pylsl.StreamOutlet(info, 16)
    t0 = pylsl.local_clock()
    k = 0
    while not stop.is_set() and k + 16 <= data.shape[1]:
        now = pylsl.local_clock() - t0
        if now * 256 < k + 16:
            time.sleep(0.005)
            continue
        chunk = data[:, k : k + 16].T.copy()
        if nan_from <= k / 256 < nan_to:
            chunk[:, 2:4] = np.nan
        outlet.push_chunk(chunk, t0 + (k + 15) / 256)
        k += 16
    del outlet


def test_nan_laden_chunks_hold_the_last_latent_and_recover(tiny_model):
    name = unique()
    stop = threading.Event()
    pusher = threading.Thread(target=_push_with_nan_burst, args=(name, stop, 3.0, 4.0),
                              daemon=True)
    pusher.start()
    try:
        with LSLSource(name, timeout=5).open() as source:
            engine = engine_for(tiny_model, source, calibration=1.0)
            frames, targets = [], []

            def record(frame):
                frames.append(frame)
                targets.append(engine.follower.motion.target.copy())

            engine.run(9.0, on_frame=record)
    finally:
        stop.set()
        pusher.join(5)
    signals = [f.signal for f in frames]
    assert "artifact" in signals
    first = signals.index("artifact")
    last = len(signals) - 1 - signals[::-1].index("artifact")
    assert {f.artifact for f in frames[first : last + 1]} == {"nan"}
    # While the rows are not clean, the target (the last good latent) does not move.
    for i in range(first + 1, last + 1):
        np.testing.assert_array_equal(targets[i], targets[first])
    assert all(np.isfinite(f.ws).all() for f in frames)
    assert signals[-1] == "ok", "the engine did not recover once the NaNs left the window"


def test_recorded_session_reads_back_and_replays(tiny_model, tmp_path):
    from live.replay import main as replay_main

    name = unique()
    folder = tmp_path / "session"
    enc_dir, gen_dir = tiny_model
    with simulator(name), LSLSource(name, timeout=5).open() as source:
        encoder, G = models(tiny_model)
        recorder = SessionRecorder(folder, source.meta, num_ws=G.num_ws, w_dim=G.w_dim,
                                   about={"encoder": str(enc_dir), "generator": str(gen_dir),
                                          "generator_identity": encoder.generator_info,
                                          "engine": {"fps": FPS}})
        engine = Engine(encoder, G, source, EngineConfig(fps=FPS, size=32, calibration=1.0),
                        sinks=[recorder])
        frames = collect(engine, 3.0)
        engine.close()
    session, rows, ws = read_session(folder)
    assert session["n_frames"] == len(frames) == len(rows) == len(ws)
    np.testing.assert_array_equal(ws[-1], frames[-1].ws)
    raw = read_raw(folder, verbose="error")  # the folder's eeg.npeeg, as any recording
    assert raw.ch_names[:3] == ["Fp1", "Fp2", "F3"] and raw.info["sfreq"] == 256.0
    assert 2.0 * 256 <= raw.n_times <= 4.5 * 256
    assert raw.get_data().std() > 1e-7  # volts, the EEG itself

    out = tmp_path / "replay"
    assert replay_main([str(folder), "--out", str(out), "--size", "48",
                        "--format", "frames"]) == 0
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) >= len(frames) - 2
    assert (out / "frames.csv").read_text().count("\n") == len(pngs) + 1
    again = tmp_path / "recomputed"
    assert replay_main([str(folder), "--out", str(again), "--recompute"]) == 0
    assert (again / "session.gif").exists()


def test_band_meters_and_live_spec():
    from eeg.features import FeatureSpec

    spec = FeatureSpec()
    fast = live_spec(spec, 40.0)
    assert fast.hop == pytest.approx(spec.hop / 4) and fast.window == spec.window
    assert live_spec(spec, 5.0) is spec
    names = [f"log_power:{b}:whole_head" for b in spec.bands]
    row = np.array([1.0] + [0.0] * (len(names) - 1))
    meters = band_meters(row, names, list(spec.bands))
    assert meters[next(iter(spec.bands))] == pytest.approx(10 / (10 + len(names) - 1), 1e-3)
    assert band_meters(None, names, list(spec.bands)) == {}
    assert band_meters(np.full(len(names), np.nan), names, list(spec.bands)) == {}


def test_a_profile_plays_live_and_replays_offline_alike(tiny_model, tiny_profile, tmp_path):
    """The simulator holds eyes_closed, then focused; the engine paints with a profile; the
    recorded session re-rendered offline from its EEG commits to the same states."""
    from conditioning.profile import PerformerProfile
    from live.replay import main as replay_main

    _, gen_dir = tiny_model
    name = unique()
    folder = tmp_path / "session"
    profile = PerformerProfile.from_pretrained(tiny_profile, generator_path=gen_dir)
    G = load_generator(gen_dir)
    with simulator(name, states=["eyes_closed", "focused"], state_duration=6.0) as sim, \
            LSLSource(name, timeout=5).open() as source:
        recorder = SessionRecorder(folder, source.meta, num_ws=G.num_ws, w_dim=G.w_dim,
                                   about={"profile": str(tiny_profile), "generator": str(gen_dir),
                                          "generator_identity": profile.generator_info,
                                          "engine": {"fps": FPS}})
        engine = Engine(profile, G, source, EngineConfig(fps=FPS, size=32, calibration=0.0,
                                                         baseline_memory=None),
                        sinks=[recorder])
        frames = collect(engine, 11.0)
        engine.close()
        assert sim.running
    live = [f.instrument["committed"] or "" for f in frames if f.instrument]
    assert frames[-1].signal == "ok" and not any(f.calibrating for f in frames)
    assert set(frames[-1].instrument["posteriors"]) == {"eyes_closed", "focused", "drowsy"}
    assert engine.status()["instrument"]["committed"] == live[-1]
    assert "eyes_closed" in live[: len(live) // 2]  # the first state is found live
    out = tmp_path / "again"
    assert replay_main([str(folder), "--out", str(out), "--recompute", "--format",
                        "frames"]) == 0
    table = (out / "frames.csv").read_text().splitlines()
    column = table[0].split(",").index("committed_state")
    offline = [line.split(",")[column] for line in table[1:]]
    # Each live frame against the offline frame at the same EEG time (from the first sample).
    pairs = [(f.instrument["committed"] or "",
              offline[min(len(offline) - 1, round((f.eeg_time - engine.first_sample) * FPS))])
             for f in frames if f.instrument and np.isfinite(f.eeg_time)]
    agree = np.mean([a == b for a, b in pairs])
    assert agree > 0.85, pairs
