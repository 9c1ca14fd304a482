"""``python -m live.render`` as a user runs it: a real process, a real child simulator."""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from eeg.io import read_raw
from gan.precision import bf16_native
from live.record import read_session
from tests.live.conftest import wait_for_line

pytestmark = pytest.mark.slow


def _start(args, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "live.render", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **kw)


def _wait_for(proc: subprocess.Popen, text: str, timeout: float = 90.0) -> list[str]:
    return wait_for_line(proc, text, timeout)


def _simulator_running(stream: str) -> bool:
    out = subprocess.run(["pgrep", "-f", f"live.simulate --name {stream}"], capture_output=True,
                         text=True)
    return bool(out.stdout.strip())


def _stream_name(lines: list[str]) -> str:
    first = next(line for line in lines if "streaming" in line)
    return first.split("'")[1]


def _model_args(tiny_model) -> list[str]:
    enc, gen = tiny_model
    return ["--encoder", str(enc), "--generator", str(gen), "--sim-channels", "16",
            "--size", "32", "--calibration", "1", "--status-every", "1"]


def test_ctrl_c_stops_cleanly_and_ends_the_simulator(tiny_model, tmp_path):
    proc = _start([*_model_args(tiny_model), "--serve", "127.0.0.1:0",
                   "--frames", str(tmp_path / "frames")])
    lines = _wait_for(proc, "fps, age p50")
    stream = _stream_name(lines)
    assert any("viewer at http://127.0.0.1:" in line for line in lines)
    assert _simulator_running(stream)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "stopped:" in out
    time.sleep(0.5)
    assert not _simulator_running(stream)
    assert len(list((tmp_path / "frames").glob("frame_*.jpg"))) >= 5


def test_kill_9_loses_at_most_a_second_of_the_recording(tiny_model, tmp_path):
    folder = tmp_path / "session"
    proc = _start([*_model_args(tiny_model), "--no-serve", "--record", str(folder)])
    lines = _wait_for(proc, "fps, age p50")
    stream = _stream_name(lines)
    time.sleep(2.0)
    proc.kill()  # SIGKILL: no cleanup at all
    killed = time.monotonic()
    proc.communicate(timeout=10)
    session, rows, ws = read_session(folder)
    assert session["ended"] is None  # it never closed
    raw = read_raw(folder, verbose="error")
    # The recorder flushes every 0.5 s: what it received up to then is on disk.
    frames_time = float(rows[-1]["time"]) - float(rows[0]["time"])
    assert len(rows) == len(ws) >= 15
    assert raw.n_times / 256.0 >= frames_time - 1.0
    deadline = killed + 5.0
    while _simulator_running(stream) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _simulator_running(stream), "the child simulator outlived its killed parent"


def test_bad_arguments_give_one_line_errors(tiny_model, tmp_path):
    enc, gen = tiny_model
    cases = [
        (["--encoder", str(enc), "--no-serve"], "give both --encoder and --generator"),
        (["--encoder", str(enc), "--generator", str(tmp_path), "--no-serve"],
         "neither a GAN snapshot"),
        (["--serve", "nonsense"], "'serve' must be HOST:PORT"),
        (["--fps", "0", "--no-serve"], "fps"),
        (["--device", "banana", "--no-serve"], "unknown device 'banana'"),
        (["--encoder", str(enc), "--generator", str(gen), "--stream", "no-such-headset-x",
          "--timeout", "0.5", "--no-serve"], "no-such-headset-x"),
        (["--profile", str(tmp_path / "nobody"), "--no-serve"], "no such profile"),
        (["--profile", str(enc), "--no-serve"], "is not a performer profile"),
        (["--profile", "live/demo_model/profile", "--generator", str(gen), "--no-serve"],
         "the profile was calibrated for a generator of another shape"),
        (["--profile", "live/demo_model/profile", "--encoder", str(enc), "--no-serve"],
         "give --profile or --encoder, not both"),
        (["--encoder", str(enc), "--generator", str(gen), "--hold", "1", "--no-serve"],
         "--hold plays a profile's states"),
        (["--profile", "live/demo_model/profile", "--crossfade", "-1", "--no-serve"],
         "crossfade"),
        (["--encoder", str(enc), "--generator", str(gen), "--crossfade", "2", "--no-serve"],
         "--crossfade plays a profile's states"),
        (["--units", "kV", "--no-serve"], "invalid choice: 'kV'"),
        (["--encoder", str(enc), "--generator", str(gen), "--frames-every", "2", "--no-serve"],
         "--frames-every and --frames-max need --frames FOLDER"),
        (["--size", "4096", "--no-serve"], "upscaler reaches"),
        (["--encoder", str(enc), "--generator", str(gen), "--upscaler",
          "live/demo_model/upscaler", "--size", "512", "--no-serve"],
         "--size 512: the generator paints 16 px and the x4 upscaler reaches 64 px; choose "
         "--size 64 or less"),
    ]
    if not bf16_native("cpu"):
        cases.append((["--precision", "bf16", "--no-serve"], "has no bf16 instructions"))
    for args, message in cases:
        proc = subprocess.run([sys.executable, "-m", "live.render", *args],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, (args, proc.stderr)
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith("python -m live.render: error:") and message in last, last
        assert "Traceback" not in proc.stderr


def test_the_demo_runs_with_the_bundled_model_and_a_simulated_headset():
    """``python -m live.render`` as the README runs it (with a duration, to end by itself)."""
    # --units uV states what the simulator streams (LSL's convention): the signal stays ok.
    proc = subprocess.run([sys.executable, "-m", "live.render", "--duration", "14",
                           "--calibration", "3", "--status-every", "2", "--serve",
                           "127.0.0.1:0", "--units", "uV"], capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    out = proc.stdout
    assert "streaming 'neuropaint-demo-" in out and "viewer at http://127.0.0.1:" in out
    assert "256 px (64 px x4, " in out and "stopped:" in out
    status = [line for line in out.splitlines() if "fps, age p50" in line]
    assert status and "signal ok" in status[-1], out


def test_typed_states_frames_every_and_the_whole_session_at_the_end(tiny_model, tmp_path):
    """One run as a performer sees it (a real pseudo-terminal): a typed state is echoed and
    shows in the status line, a typo is refused with the list; every third frame is written,
    four at most; the last lines give the whole session, then the last window; stderr holds
    only our own log format."""
    controller, terminal = pty.openpty()
    frames = tmp_path / "frames"
    try:
        proc = _start([*_model_args(tiny_model), "--serve", "127.0.0.1:0", "--duration", "8",
                       "--frames", str(frames), "--frames-every", "3", "--frames-max", "4"],
                      stdin=terminal)
        lines = _wait_for(proc, "live.render: painting")
        url = next(line.split()[-1] for line in lines if "viewer at " in line)
        for typed in ("2", "asleep"):
            os.write(controller, f"{typed}\n".encode())
        lines += _wait_for(proc, "simulated eyes_closed")
        with urllib.request.urlopen(url.rstrip("/") + "/status.json", timeout=5) as response:
            shown = json.loads(response.read())["status"]
        rest, err = proc.communicate(timeout=60)
        out = "".join(lines) + rest
    finally:
        os.close(controller)
        os.close(terminal)
    assert proc.returncode == 0, err
    assert shown["state"] == "simulated eyes_closed"  # the viewer shows it beside the signal
    assert "live.render: simulator holding eyes_closed (type 'cycle' to cycle again)" in out
    assert ("live.render: unknown state 'asleep'; type one of 1 neutral, 2 eyes_closed, "
            "3 focused, 4 drowsy, or 'cycle'.") in out
    status = [line for line in out.splitlines() if "fps, age p50" in line]
    assert any(line.endswith("simulated eyes_closed") for line in status), status
    # The whole session first, then the last window, both at the end.
    session, window = out.strip().splitlines()[-2:]
    found = re.fullmatch(r"live.render: stopped: session (\d+) frames in ([\d.]+) s, mean "
                         r"([\d.]+) fps, age p50 \d+ ms p95 \d+ ms, dropped \d+", session)
    assert found, session
    n, seconds, fps = int(found[1]), float(found[2]), float(found[3])
    assert 6.0 < seconds < 8.5 and abs(fps - (n - 1) / seconds) < 0.03 * fps  # seconds is printed to 0.1 s
    assert window.startswith("live.render: last window: ") and f"frame {n}," in window
    assert sorted(p.name for p in frames.iterdir()) == [
        f"frame_{i:06d}.jpg" for i in (0, 3, 6, 9)]
    # One log format: no liblsl banner, no MNE chatter, no two-line Python warnings.
    assert "api_config.cpp" not in err and "py.warnings" not in err
    assert all(re.match(r"\d\d:\d\d:\d\d (INFO|WARNING) ", line) for line in err.splitlines()), err

