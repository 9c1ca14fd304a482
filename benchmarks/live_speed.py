"""Live loop speed: the demo model against the simulated headset, as ``live.render`` runs it.

    python benchmarks/live_speed.py                 # 60 s, then an outlet kill and return
    python benchmarks/live_speed.py --soak          # 10 minutes: memory growth
    python benchmarks/live_speed.py --encoder E --generator G --size 512 --seconds 30
    python benchmarks/live_speed.py --profile P --generator G      # a performer profile

A simulator child process (``python -m live.simulate``, 32 channels at 256 Hz, 16-sample
chunks, cycling states) feeds :class:`live.engine.Engine` with the viewer serving and one
browser-like client reading the MJPEG stream, so JPEG encoding is paid as in a performance.
Printed as one JSON line:

- ``fps``: frames painted per second over the run (after the calibration period);
- ``age_ms``: p50/p95/p99 of ``local_clock() - newest EEG sample`` when each frame is ready;
- ``dropped``: frame slots missed (a frame never waits, it is dropped);
- ``cpu_percent``: this process's CPU time over wall time (100 = one core);
- ``rss_mb``: resident memory at the start of the loop and at the end;
- ``recovery_s``: after the simulator is killed and started again under the same name and
  source_id, seconds from its first new sample to the first frame reflecting new EEG.

Goals (issue 6, 2-core CPU, >= 256 px): fps >= 15, age p95 <= 100 ms, recovery <= 1.5 s,
RSS growth < 50 MB over 10 minutes.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import resource
import sys
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pylsl import local_clock

from live.demo import demo_upscaler
from live.engine import Engine, EngineConfig
from live.render import SimulatorProcess, load_models
from live.sinks import ViewerSink
from live.source import LSLSource
from live.viewer import Viewer


def rss_mb() -> float:
    """Current resident set size in MB (Linux /proc)."""
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * resource.getpagesize() / 1e6


def mjpeg_client(url: str, stop: threading.Event, counter: list[int]) -> None:
    """Read the viewer's stream like a browser would, counting bytes."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    conn.request("GET", "/stream.mjpg")
    resp = conn.getresponse()
    while not stop.is_set():
        chunk = resp.read1(65536)
        if not chunk:
            break
        counter[0] += len(chunk)
    conn.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--soak", action="store_true", help="10-minute run (RSS growth)")
    p.add_argument("--profile", help="default: the demo profile, when no --encoder is given")
    p.add_argument("--encoder")
    p.add_argument("--generator")
    p.add_argument("--upscaler", help="default: the demo model's, when no --encoder is given")
    p.add_argument("--no-upscaler", action="store_true", help="bicubic resizing only")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--fps", type=float, default=15.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-recovery", action="store_true")
    args = p.parse_args()
    seconds = 600.0 if args.soak else args.seconds

    encoder, G, mapping_dir, gen_dir = load_models(args.encoder, args.generator,
                                                   profile_path=args.profile)
    is_profile = hasattr(encoder, "new_player")
    upscaler_path = args.upscaler
    if (upscaler_path is None and args.encoder is None and args.generator is None
            and not args.no_upscaler):
        upscaler_path = demo_upscaler(size=args.size)
    upscaler = None
    if upscaler_path:
        from gan.upscale import Upscaler

        upscaler = Upscaler.from_pretrained(upscaler_path)
    name = f"bench-{uuid.uuid4().hex[:8]}"
    sim = SimulatorProcess(name)
    source = LSLSource(name, timeout=10).open()
    viewer = Viewer("127.0.0.1", 0)
    url = viewer.start()
    # A profile brings the performer's baseline (no session calibration), as live.render does.
    config = EngineConfig(fps=args.fps, size=args.size, threads=args.threads,
                          **({"calibration": 0.0, "baseline_memory": None} if is_profile
                             else {}))
    engine = Engine(encoder, G, source, config, sinks=[ViewerSink(viewer)], upscaler=upscaler,
                    keep_ages=True)
    stop_client = threading.Event()
    received = [0]
    client = threading.Thread(target=mjpeg_client, args=(url, stop_client, received),
                              daemon=True)
    client.start()

    calibration = config.calibration
    engine.run(calibration + 1.0)  # calibration and warm-up, not measured
    engine.stats.all_ages.clear()
    frames0, dropped0 = engine.stats.frames, engine.stats.dropped
    rss_start = rss_mb()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    with torch.inference_mode():
        engine.run(seconds)
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    rss_end = rss_mb()
    frames = engine.stats.frames - frames0
    ages = np.asarray(engine.stats.all_ages) * 1000.0

    recovery = None
    if not args.no_recovery:
        sim.stop()
        engine.run(3.0)  # the stream is gone: stalled, last image held
        sim = SimulatorProcess(name)
        back = local_clock()
        recovery = math.nan
        deadline = back + 10.0
        while local_clock() < deadline:
            frame = engine.render_frame()
            if frame.signal != "stalled" and frame.eeg_time > back - 0.5:
                recovery = frame.time - back
                break
            time.sleep(1.0 / args.fps)

    stop_client.set()
    engine.close()
    source.close()
    sim.stop()
    result = {
        "benchmark": "live_speed", "seconds": round(wall, 1), "size": args.size,
        "mapping": f"{'profile' if is_profile else 'encoder'} {mapping_dir}",
        "generator": str(gen_dir), "generator_resolution": G.img_resolution,
        "upscaler": None if upscaler_path is None else str(upscaler_path),
        "threads": args.threads,
        "fps": round(frames / wall, 2), "target_fps": args.fps,
        "age_ms": {q: round(float(np.percentile(ages, v)), 1)
                   for q, v in (("p50", 50), ("p95", 95), ("p99", 99))} if len(ages) else None,
        "dropped": engine.stats.dropped - dropped0, "frames": frames,
        "cpu_percent": round(100.0 * cpu / wall, 1),
        "rss_mb": {"start": round(rss_start, 1), "end": round(rss_end, 1),
                   "growth": round(rss_end - rss_start, 1)},
        "recovery_s": None if recovery is None else round(recovery, 3),
        "viewer_bytes": received[0],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
