"""LSL source against the simulated headset: start-up, sample age, read cost, CPU, recovery.

Prints one JSON line. Run: ``python benchmarks/live_source_speed.py`` (about 45 s here).

The simulator runs as ``live.render`` runs it: ``python -m live.simulate`` in a child process
(32 channels, 256 Hz, chunks of 16), LSL on this machine only (tests/lsl/lsl_api.cfg).

- ``sim_startup_s``: from starting the child to its "streaming" line (median of every start).
- ``open_s``: :meth:`LSLSource.open` (resolve, connect, metadata) against the running child.
- ``age_ms``: ``local_clock() - times[-1]`` right after each :meth:`LSLSource.read` that got
  new samples, reading every 10 ms for ``--seconds``: transport, reader thread and polling
  (up to 10 ms) together (p50/p95/p99). The simulator stamps a chunk's last sample with the
  time it sends it; a consumer that looks between chunks sees the newest sample up to one
  chunk period (62.5 ms at 16 samples and 256 Hz) older than this.
- ``read_us``: the cost of one ``read()`` (p50/p99), ``cpu_percent``: this process (reader
  thread plus the polling loop) and the child, over the same seconds.
- ``recovery_s``: the issue's figure. The child is stopped (SIGTERM), the source reports the
  stall, and after ``--gap`` seconds a new child with the same name (and source_id) starts;
  the time from its "streaming" line (its outlet is up) to the first samples in the source.
  Measured ``--trials`` times with a source_id and as often without one. Goal <= 1.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

os.environ.setdefault("LSLAPICFG", str(Path(__file__).resolve().parents[1] / "tests" / "lsl"
                                       / "lsl_api.cfg"))

# After LSLAPICFG: liblsl reads it when it is first loaded.
import numpy as np
import pylsl

from live.source import LSLSource

_TICK = os.sysconf("SC_CLK_TCK")


def start_child(name: str, *extra: str) -> tuple[subprocess.Popen, float]:
    """The simulator CLI; returns once its outlet is up, with the start-up time."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "live.simulate", "--name", name,
                             "--channels", "32", "--log-level", "WARNING", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    if not line.startswith("live.simulate: streaming"):
        proc.kill()
        raise RuntimeError(f"the simulator did not start: {line!r}")
    return proc, time.perf_counter() - start


def stop_child(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)


def child_cpu_seconds(proc: subprocess.Popen) -> float:
    with open(f"/proc/{proc.pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def percentiles(values: list[float], scale: float = 1.0, digits: int = 1) -> dict[str, float]:
    arr = np.asarray(values) * scale
    return {f"p{q}": round(float(np.percentile(arr, q)), digits) for q in (50, 95, 99)}


def measure_flow(source: LSLSource, child: subprocess.Popen, seconds: float) -> dict:
    ages, reads = [], []
    source.read()
    cpu0, child0, wall0 = time.process_time(), child_cpu_seconds(child), time.perf_counter()
    end = wall0 + seconds
    n_samples = 0
    while time.perf_counter() < end:
        start = time.perf_counter()
        _, times = source.read()
        reads.append(time.perf_counter() - start)
        if len(times):
            ages.append(pylsl.local_clock() - times[-1])
            n_samples += len(times)
        time.sleep(0.01)
    wall = time.perf_counter() - wall0
    return {
        "age_ms": percentiles(ages, 1e3),
        "read_us": {k: v for k, v in percentiles(reads, 1e6, 0).items() if k != "p95"},
        "samples_per_s": round(n_samples / wall, 1),
        "cpu_percent": round(100 * (time.process_time() - cpu0) / wall, 1),
        "sim_cpu_percent": round(100 * (child_cpu_seconds(child) - child0) / wall, 1),
        "dropped_samples": source.dropped_samples,
    }


def measure_recovery(name: str, extra: tuple[str, ...], trials: int, gap: float,
                     startups: list[float]) -> tuple[list[float], list[float]]:
    child, startup = start_child(name, *extra)
    startups.append(startup)
    recoveries, stall_reports = [], []
    with LSLSource(name, timeout=10.0) as source:
        time.sleep(0.5)
        for _ in range(trials):
            killed = time.perf_counter()
            stop_child(child)
            while not source.stalled:
                time.sleep(0.005)
            stall_reports.append(time.perf_counter() - killed)
            time.sleep(max(0.0, gap - (time.perf_counter() - killed)))
            count = source.reconnects
            child, startup = start_child(name, *extra)
            startups.append(startup)
            back = time.perf_counter()
            while source.reconnects == count:
                if time.perf_counter() - back > 10:
                    raise RuntimeError("no recovery within 10 s")
                time.sleep(0.002)
            recoveries.append(time.perf_counter() - back)
            time.sleep(0.5)
    stop_child(child)
    return recoveries, stall_reports


def summary(values: list[float]) -> dict:
    return {"runs": [round(v, 3) for v in values], "p50": round(float(np.median(values)), 3),
            "max": round(max(values), 3)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="seconds of reading for the age and CPU figures (default 10)")
    parser.add_argument("--trials", type=int, default=4,
                        help="restarts per recovery case (default 4)")
    parser.add_argument("--gap", type=float, default=2.0,
                        help="seconds the outlet stays away in each trial (default 2)")
    args = parser.parse_args(argv)
    name = f"bench-{uuid.uuid4().hex[:8]}"
    startups: list[float] = []

    child, startup = start_child(name)
    startups.append(startup)
    try:
        start = time.perf_counter()
        source = LSLSource(name, timeout=10.0).open()
        open_s = time.perf_counter() - start
        with source:
            time.sleep(1.0)
            flow = measure_flow(source, child, args.seconds)
    finally:
        stop_child(child)

    with_id, stall_with = measure_recovery(f"{name}-id", (), args.trials, args.gap, startups)
    without_id, stall_without = measure_recovery(f"{name}-noid", ("--source-id", ""),
                                                 args.trials, args.gap, startups)
    result = {
        "benchmark": "live_source_speed",
        "stream": "live.simulate child: 32 ch x 256 Hz float32, chunks of 16",
        "sim_startup_s": round(float(np.median(startups)), 3),
        "open_s": round(open_s, 3),
        **flow,
        "stall_reported_after_s": round(float(np.median(stall_with + stall_without)), 3),
        "recovery_s": summary(with_id),
        "recovery_no_source_id_s": summary(without_id),
        "recovery_goal_s": 1.5,
        "python": platform.python_version(),
        "pylsl": pylsl.__version__,
        "liblsl": pylsl.library_version(),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
