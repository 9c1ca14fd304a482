"""live.simulate: the simulated headset, heard through real LSL inlets on loopback.

What a consumer relies on: the brain states it announces are in the signal (posterior alpha
with the eyes closed), the schedule and the real-time pace hold, a recording streams to its
end, the configuration refuses what makes no sense, and the command line starts quickly and
stops cleanly on SIGINT/SIGTERM.
"""

from __future__ import annotations

import itertools
import os
import pty
import select
import signal
import subprocess
import sys
import time

import numpy as np
import pylsl
import pytest
from scipy import signal as sp_signal

from eeg.synthetic import make_raw
from live.simulate import Simulator, SimulatorConfig, marker_stream_name
from live.source import LSLSource
from neuropaint.validate import NeuropaintError, build_config
from tests.live.conftest import unique_stream_name

SFREQ = 256.0


def marker_inlet(name: str) -> pylsl.StreamInlet:
    infos = pylsl.resolve_bypred(f"name='{marker_stream_name(name)}'", 1, 3.0)
    assert infos, "the marker stream is not visible"
    inlet = pylsl.StreamInlet(infos[0])  # Same machine: the stamps are the sender's own.
    inlet.open_stream(3.0)
    return inlet


def pull_markers(inlet: pylsl.StreamInlet) -> list[tuple[str, float]]:
    samples, stamps = inlet.pull_chunk(timeout=0.0)
    return [(sample[0], stamp) for sample, stamp in zip(samples, stamps, strict=True)]


def alpha_ratio(data: np.ndarray, sfreq: float) -> float:
    """Posterior alpha (8-12 Hz) over broadband (2-30 Hz) power, channels averaged."""
    freqs, psd = sp_signal.welch(data, sfreq, nperseg=256)
    alpha = psd[:, (freqs >= 8) & (freqs <= 12)].sum()
    broad = psd[:, (freqs >= 2) & (freqs <= 30)].sum()
    return float(alpha / broad)


# --- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(("fields", "message"), [
    ({"channels": 7}, "'channels': Value error, must be one of 8, 16, 32, 64"),
    ({"rate": 10}, "'rate': Input should be greater than or equal to 64"),
    ({"states": ["eyes_closed", "asleep"]}, "unknown state.* asleep; valid: neutral, "),
    ({"file": "x.fif", "rate": 512}, "rate: for synthetic EEG only"),
    ({"loop": True}, "loop applies to file only"),
    ({"format": "int8"}, "'format': Input should be 'float32', 'double64' or 'int16'"),
    ({"chunk": 0}, "'chunk': Input should be greater than or equal to 1"),
    ({"speed": 2}, "'speed': unknown field"),
])
def test_config_errors_name_the_field(fields, message):
    with pytest.raises(NeuropaintError, match=message):
        build_config(SimulatorConfig, fields)


def test_source_id_defaults_to_the_name_and_can_be_left_out():
    assert build_config(SimulatorConfig, name="a").stream_source_id == "neuropaint-sim:a"
    assert build_config(SimulatorConfig, name="a", source_id="").stream_source_id == ""


# --- the synthetic headset -----------------------------------------------------------------


@pytest.mark.slow
def test_switching_state_changes_the_signal_and_is_announced(start_simulator):
    sim, name = start_simulator(channels=8, state_duration=30.0)  # No cycling meanwhile.
    markers = marker_inlet(name)
    with LSLSource(name, timeout=3.0) as source:
        ratios = {}
        for state in ("eyes_closed", 3):  # By name, and by number (3 = focused).
            sim.set_state(state)
            time.sleep(0.8)  # Block made, half-second cross-fade over.
            source.read()
            time.sleep(2.0)
            data, _ = source.read()
            ratios[sim.current_state] = alpha_ratio(data[[5, 6, 7]], SFREQ)  # PO7, Oz, PO8
        assert sim.current_state == "focused"
    # Posterior alpha with the eyes closed is several times that of focused attention.
    assert ratios["eyes_closed"] > 2 * ratios["focused"], ratios
    received = pull_markers(markers)  # The first 'neutral' may predate the inlet.
    assert [state for state, _ in received if state != "neutral"] == ["eyes_closed", "focused"]
    assert all(0 < pylsl.local_clock() - stamp < 10.0 for _, stamp in received)
    with pytest.raises(NeuropaintError, match=r"unknown state 'asleep'; type one of 1 "
                       r"neutral, 2 eyes_closed, 3 focused, 4 drowsy, or 'cycle'"):
        sim.set_state("asleep")
    with pytest.raises(NeuropaintError, match="unknown state 9"):
        sim.set_state(9)


def test_states_cycle_on_schedule_in_real_time(start_simulator):
    sim, name = start_simulator(channels=8, states=["focused", "drowsy"], state_duration=0.5,
                                chunk=8)
    markers = marker_inlet(name)
    time.sleep(1.6)
    received = pull_markers(markers)
    pushed, now = sim.n_pushed, pylsl.local_clock()
    # The marker inlet connected after the first change; the rest alternate every 0.5 s.
    states = [state for state, _ in received]
    assert len(states) >= 2 and all(a != b for a, b in itertools.pairwise(states))
    assert set(states) <= {"focused", "drowsy"}
    np.testing.assert_allclose(np.diff([stamp for _, stamp in received]), 0.5, atol=1e-6)
    assert sim.lsl_time(0) < received[0][1]
    # Paced by the clock: sample k leaves at lsl_time(k), so what was pushed is what the
    # time since sample 0 allows, to a chunk (8) and a little scheduling slack.
    assert abs(pushed - (now - sim.lsl_time(0)) * SFREQ) <= 8 + 8


def test_duration_stops_after_exactly_that_many_samples(start_simulator):
    sim, _name = start_simulator(channels=8, duration=0.5, chunk=7)
    assert sim.wait(timeout=3.0)
    assert sim.n_pushed == 128 and not sim.running and sim.error is None


# --- a recording ---------------------------------------------------------------------------


def test_a_fif_file_streams_to_its_end_with_its_own_labels_and_rate(start_simulator, tmp_path):
    raw = make_raw(1.0, n_channels=16, sfreq=128.0, seed=1)
    fname = tmp_path / "short_raw.fif"
    raw.save(fname, verbose="error")
    sim, _name = start_simulator(file=fname, chunk=10)
    assert sim.current_state is None
    assert sim.ch_names == raw.ch_names and sim.sfreq == 128.0
    with pytest.raises(NeuropaintError, match="switching states needs synthetic EEG"):
        sim.set_state("focused")
    assert sim.wait(timeout=3.0)  # 1 s of data, then the end: no loop.
    assert sim.n_pushed == 128 and sim.error is None


def test_a_missing_recording_is_an_error_at_start(tmp_path):
    config = build_config(SimulatorConfig, name=unique_stream_name(),
                          file=tmp_path / "none.fif")
    with pytest.raises(FileNotFoundError, match="no such file"):
        Simulator(config).start()


# --- command line --------------------------------------------------------------------------


def start_cli(*args: str, stdin: int | None = None) -> tuple[subprocess.Popen, str, float]:
    """Start ``python -m live.simulate`` and wait for its first line (the outlet is up)."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "live.simulate", *args], stdin=stdin,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    ready, _, _ = select.select([proc.stdout], [], [], 30.0)
    if not ready:
        proc.kill()
        pytest.fail("the simulator printed nothing within 30 s")
    return proc, proc.stdout.readline(), time.perf_counter() - start


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_cli_streams_until_a_signal_and_exits_cleanly(signum):
    name = unique_stream_name()
    proc, line, startup = start_cli("--name", name, "--channels", "8", "--format", "int16")
    try:
        assert line.strip() == (f"live.simulate: streaming '{name}' (8 ch, 256 Hz, "
                                f"source_id 'neuropaint-sim:{name}')")
        print(f"live.simulate up in {startup:.2f} s")
        with LSLSource(name, timeout=3.0) as source:
            assert source.meta.channel_format == "int16"
            time.sleep(0.5)
            data, _ = source.read()
            assert data.shape[0] == 8 and data.shape[1] > 0.3 * SFREQ
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "stopped after" in err


@pytest.mark.slow
def test_cli_takes_state_switches_from_the_keyboard():
    """On a terminal (a real pseudo-terminal here) a performer types a number or a name."""
    name = unique_stream_name()
    controller, terminal = pty.openpty()
    proc, _, _ = start_cli("--name", name, "--channels", "8", "--state-duration", "30",
                           stdin=terminal)
    try:
        markers = marker_inlet(name)
        for typed in ("2", "drowsy", "asleep"):
            os.write(controller, f"{typed}\n".encode())
            time.sleep(0.4)
        received = [state for state, _ in pull_markers(markers)]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(controller)
        os.close(terminal)
    assert received == ["eyes_closed", "drowsy"]
    assert "live.simulate: holding eyes_closed (type 'cycle' to cycle again)" in err  # echoed
    assert "live.simulate: holding drowsy" in err
    assert "unknown state 'asleep'; type one of 1 neutral" in err
    assert proc.returncode == 0 and "Traceback" not in err


def test_cli_bad_option_is_one_line_with_exit_2():
    proc = subprocess.run([sys.executable, "-m", "live.simulate", "--states", "asleep"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "python -m live.simulate: error: invalid SimulatorConfig: 'states': ")
    assert "Traceback" not in proc.stderr
