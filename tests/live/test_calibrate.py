"""``python -m live.calibrate``: the schedule, real runs against a simulated headset on LSL.

What a performer relies on: the blocks are interleaved and reproducible, the simulated headset
plays what the instruction says, the recording reads back with the blocks as annotations,
Ctrl-C or a lost stream keeps what was recorded, and bad input is one clear line.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from scipy import signal as sp_signal

from eeg.io import read_raw
from eeg.synthetic import list_states
from live.calibrate import (
    DEFAULT_INSTRUCTIONS,
    SIMULATOR_ALIASES,
    CalibrationConfig,
    instruction_for,
    main,
    make_schedule,
    simulator_state,
)
from neuropaint.validate import NeuropaintError, build_config
from tests.live.conftest import wait_for_line

REPO = Path(__file__).resolve().parents[2]
SHORT = ["--states", "eyes_closed,focused", "--repeats", "2", "--rest", "0.5", "--no-serve",
         "--sim-channels", "8"]


def _start(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "live.calibrate", *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for(proc: subprocess.Popen, text: str, timeout: float = 60.0) -> list[str]:
    return wait_for_line(proc, text, timeout)


def _alpha_ratio(data: np.ndarray, sfreq: float) -> float:
    """Alpha (8-12 Hz) over broadband (2-30 Hz) power, channels averaged."""
    freqs, psd = sp_signal.welch(data, sfreq, nperseg=256)
    return float(psd[:, (freqs >= 8) & (freqs <= 12)].sum()
                 / psd[:, (freqs >= 2) & (freqs <= 30)].sum())


# -- the schedule ------------------------------------------------------------------------------


@pytest.mark.parametrize("n_states", [2, 3, 4, 6])
def test_schedule_is_interleaved_rounds_without_repeats_and_seeded(n_states):
    states = [f"s{i}" for i in range(n_states)]
    for seed in range(20):
        order = make_schedule(states, 5, seed)
        assert len(order) == 5 * n_states
        for r in range(5):  # Every round holds every state once.
            assert sorted(order[r * n_states:(r + 1) * n_states]) == states
        assert all(a != b for a, b in itertools.pairwise(order)), order
        assert make_schedule(states, 5, seed) == order  # The seed decides it.
    orders = {tuple(make_schedule(states, 5, seed)) for seed in range(20)}
    assert len(orders) > (1 if n_states == 2 else 10)  # Not one fixed order.
    assert make_schedule(states, 1, 3) == make_schedule(states, 5, 3)[:n_states]


def test_config_builds_blocks_with_instruction_texts():
    config = build_config(CalibrationConfig, states=["eyes_closed", "smile", "drowsy"],
                          block=7.5, repeats=2, seed=4, instructions={"smile": "Smile broadly"})
    blocks = config.schedule()
    assert [b.number for b in blocks] == list(range(1, 7))
    assert [b.state for b in blocks] == make_schedule(config.states, 2, 4)
    texts = {b.state: b.text for b in blocks}
    assert texts == {"eyes_closed": "Close your eyes and stay still", "smile": "Smile broadly",
                     "drowsy": DEFAULT_INSTRUCTIONS["drowsy"]}
    assert all(b.duration == 7.5 for b in blocks)
    assert instruction_for("hum_a_tune") == "Hold the state: hum a tune"
    assert instruction_for("eyes_open") == "Eyes open: rest your gaze on the dot"
    assert instruction_for("focused") == "Count back from 300 in sevens"
    assert instruction_for("relaxed") == "Relax, let your thoughts wander"


def test_simulator_plays_every_default_state_and_the_aliases():
    assert SIMULATOR_ALIASES == {"eyes_open": "neutral", "relaxed": "drowsy"}
    for state in ["eyes_closed", "eyes_open", "focused", "relaxed", *list_states()]:
        assert simulator_state(state) in list_states()
    assert simulator_state("eyes_open") == "neutral"
    assert simulator_state("relaxed") == "drowsy"
    with pytest.raises(NeuropaintError, match=r"^the simulated headset has no state 'smile': "
                       r"it plays neutral, eyes_closed, focused, drowsy and the aliases "
                       r"eyes_open \(= neutral\), relaxed \(= drowsy\); give --stream"):
        simulator_state("smile")


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "message"), [
    (["--states", "eyes_closed"], r"'states': Value error, a calibration needs at least two "
                                  r"states to tell apart, got 1: eyes_closed"),
    (["--states", "eyes_closed,smile"], r"the simulated headset has no state 'smile'"),
    (["--block", "0"], r"'block': Input should be greater than 0"),
    (["--states", "focused,eyes_closed,focused"],
     r"'states': Value error, duplicate state\(s\) focused: name each state once"),
    (["--repeats", "0"], r"'repeats': Input should be greater than or equal to 1"),
    (["--rest", "-1"], r"'rest': Input should be greater than or equal to 0"),
    (["--states", "eyes_closed,BAD_x"], r"bad state name\(s\) 'BAD_x'"),
    (["--instructions", "smile=Smile"], r"instructions for smile, which is not among"),
    (["--instructions", "focused"], r"^'instructions' takes STATE=VALUE, got 'focused'\.$"),
    (["--target", "focused=no-such.png"], r"the target for focused must be an image file, "
                                          r"'seed:N' or 'auto'"),
    (["--stall-timeout", "0"], r"^'stall_timeout' must be a positive number, got 0\.0\.$"),
    (["--generator", "/no/such/generator"], r"no such generator"),
])
def test_bad_input_is_a_one_line_error_before_anything_starts(tmp_path, args, message):
    with pytest.raises((NeuropaintError, FileNotFoundError), match=message) as info:
        main([*args, "--no-serve", "--out", str(tmp_path / "p")])
    assert "\n" not in str(info.value)
    assert not any(tmp_path.iterdir())  # Nothing was started or written.


def test_existing_profile_or_recording_is_refused(tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "config.json").write_text("{}")
    with pytest.raises(NeuropaintError, match=r"p already exists and is not empty; choose a "
                                              r"new --out \(nothing was overwritten\)"):
        main(["--no-serve", "--out", str(tmp_path / "p")])
    (tmp_path / "rec").mkdir()
    (tmp_path / "rec" / "x").write_text("")
    with pytest.raises(NeuropaintError, match=r"choose a new --record folder"):
        main(["--no-serve", "--out", str(tmp_path / "q"), "--record", str(tmp_path / "rec")])


def test_cli_prints_a_bad_argument_as_one_line_with_status_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "live.calibrate", "--states", "focused",
                           "--out", str(tmp_path / "p"), "--no-serve"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "python -m live.calibrate: error: invalid CalibrationConfig: 'states': Value error, a "
        "calibration needs at least two states to tell apart, got 1: focused."]


# -- real runs ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_short_run_records_the_blocks_the_simulator_follows_and_a_profile_is_fitted(tmp_path):
    out = tmp_path / "profile"
    # Seeded targets: "auto" would search the generator for each state (a minute on 2 cores).
    proc = subprocess.run([sys.executable, "-m", "live.calibrate", *SHORT, "--block", "3",
                           "--seed", "1", "--out", str(out), "--target", "eyes_closed=seed:1",
                           "focused=seed:2"], cwd=REPO, capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    schedule = make_schedule(["eyes_closed", "focused"], 2, 1)
    text = proc.stdout
    for number, state in enumerate(schedule, 1):  # Banners in order, with their countdowns.
        assert f"BLOCK {number} / 4   {state.replace('_', ' ').upper()}   3 s" in text
    assert ">>>  Close your eyes and stay still  <<<" in text
    assert "  eyes_closed:   3 s left" in text and "  focused:   1 s left" in text
    assert "4 of 4 blocks finished (eyes_closed 2, focused 2)" in text
    record = tmp_path / "profile.calibration"  # The default, beside --out.
    # The profile, fitted by conditioning.calibrate, and its report.
    assert f"live.calibrate: fitting the profile into {out}" in text
    assert "targets: eyes_closed=seed:1, focused=seed:2" in text  # From report.summary().
    assert (f"live.calibrate: profile written to {out}; play it with: python -m live.render "
            f"--profile {out}") in text
    assert (out / "config.json").is_file()

    raw = read_raw(record, verbose="error")
    sfreq = raw.info["sfreq"]
    blocks = [(a["onset"], a["duration"], a["description"]) for a in raw.annotations]
    assert [d for _, _, d in blocks] == schedule
    for _, duration, _ in blocks:
        assert duration == pytest.approx(3.0, abs=2 / sfreq)
    onsets = [onset for onset, _, _ in blocks]
    assert onsets[0] == pytest.approx(0.5, abs=0.3)  # After the lead-in rest.
    np.testing.assert_allclose(np.diff(onsets), 3.5, atol=0.15)  # Block + rest.
    assert raw.times[-1] >= onsets[-1] + 3.0 - 2 / sfreq  # The last block is all there.

    # The simulated headset played each instruction: alpha high with the eyes closed.
    data = raw.get_data()
    ratios = {"eyes_closed": [], "focused": []}
    for onset, duration, state in blocks:
        start = round((onset + 1.0) * sfreq)  # Past the simulator's half-second cross-fade.
        ratios[state].append(_alpha_ratio(data[:, start:round((onset + duration) * sfreq)],
                                          sfreq))
    assert min(ratios["eyes_closed"]) > 2 * max(ratios["focused"]), ratios

    session = json.loads((record / "session.json").read_text())
    assert session["kind"] == "neuropaint-calibration-session" and session["how"] == "done"
    assert session["schedule"] == schedule and session["ended"] is not None
    assert [b["complete"] for b in session["blocks"]] == [True] * 4
    assert session["simulator"]["states"] == {"eyes_closed": "eyes_closed",
                                              "focused": "focused", "rest": "neutral"}


@pytest.mark.slow
def test_ctrl_c_keeps_the_recording_with_the_cut_block_and_says_how_to_fit(tmp_path):
    out = tmp_path / "profile"
    proc = _start([*SHORT, "--block", "2", "--out", str(out), "--no-fit"])
    _wait_for(proc, "BLOCK 3 / 4")
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 1, stderr[-2000:]  # Stopped early: no profile.
    assert "Traceback" not in stderr
    assert "live.calibrate: stopped; recorded " in stdout
    assert "2 of 4 blocks finished (eyes_closed 1, focused 1)" in stdout
    assert ", eyes_closed cut at " in stdout
    record = tmp_path / "profile.calibration"
    assert (f"live.calibrate: fit the profile with: python -m conditioning.calibrate {record} "
            f"--generator ") in stdout
    assert not out.exists()

    schedule = make_schedule(["eyes_closed", "focused"], 2, 0)
    raw = read_raw(record, verbose="error")
    blocks = [(a["onset"], a["duration"], a["description"]) for a in raw.annotations]
    assert [d for _, _, d in blocks] == schedule[:3]
    assert [b[1] for b in blocks[:2]] == [pytest.approx(2.0, abs=0.01)] * 2
    assert 0.7 < blocks[2][1] < 1.9  # Cut at the stop.
    assert raw.times[-1] >= blocks[2][0] + blocks[2][1] - 0.05  # The samples up to the stop.
    session = json.loads((record / "session.json").read_text())
    assert session["how"] == "stopped" and session["ended"] is not None
    assert [b["complete"] for b in session["blocks"]] == [True, True, False]


@pytest.mark.slow
def test_a_stream_that_goes_away_ends_the_calibration_and_keeps_the_recording(
        tmp_path, start_simulator):
    sim, name = start_simulator(channels=8)
    out = tmp_path / "profile"
    proc = _start(["--stream", name, "--states", "eyes_closed,focused", "--repeats", "2",
                   "--rest", "0", "--block", "2", "--no-serve", "--stall-timeout", "1.5",
                   "--out", str(out), "--record", str(tmp_path / "rec")])
    _wait_for(proc, "BLOCK 2 / 4")
    time.sleep(0.6)
    sim.stop()  # The headset is switched off.
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 1, stderr[-2000:]
    assert "Traceback" not in stderr
    assert "the stream sends nothing (block 2/4); waiting up to 1.5 s for it" in stdout
    assert "the stream went away (no sample for 1.5 s); recorded " in stdout
    assert "cannot fit a profile: it needs a finished block of at least two states" in stdout
    raw = read_raw(tmp_path / "rec", verbose="error")
    blocks = [(a["duration"], a["description"]) for a in raw.annotations]
    assert blocks[0] == (pytest.approx(2.0, abs=0.01), make_schedule(
        ["eyes_closed", "focused"], 2, 0)[0])
    assert len(blocks) == 2 and 0.2 < blocks[1][0] < 1.2  # Cut at the last sample.
