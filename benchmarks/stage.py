"""On stage: OSC out and in beside the live loop (issue 17), as ``live.render`` runs them.

    python benchmarks/stage.py                  # 20 s: 10 with OSC out, 10 without
    python benchmarks/stage.py --seconds 60 --segment 3

The bundled demo model (its performer profile, 64 px generator and upscaler to 256 px)
paints a simulator child process (``python -m live.simulate``, 32 channels at 256 Hz) with
the viewer serving one MJPEG client, as ``benchmarks/live_speed.py`` does (its helpers).
OSC out goes to a real ``python-osc`` receiver on loopback: a ``BlockingOSCUDPServer``
thread in a child process, as TouchDesigner or Max are other processes (a receiver thread
inside the painting process would measure its Python parsing fighting the loop for the GIL,
not the sending). Both stamp with LSL's ``local_clock`` (one monotonic clock for all
processes on the machine). Printed as one JSON line:

- ``osc_out.messages_per_s``, ``row_bundles_per_s``: what the receiver got while OSC was on;
- ``osc_out.latency_ms``: p50/p95 from a feature row's computation (``local_clock()`` right
  after ``eeg.online`` computed it) to the receipt of its bundle, matched on the row's EEG
  time (goal: p95 <= 5 ms); ``send_ms``: the same to the end of its ``sendto``;
- ``loop.osc_on`` / ``loop.osc_off``: fps and frame age p50/p95 with OSC out on and off, in
  alternating segments of ``--segment`` seconds (so drifts of the machine hit both alike);
- ``osc_in.command_to_frame_ms``: p50 (and max) from sending ``/neuropaint/blackout`` over
  UDP, from another thread at random moments, to the first painted frame that shows it
  (commands are applied at the start of a frame: at 15 fps expect half a 67 ms slot plus
  one frame's painting).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pylsl import local_clock

from benchmarks.live_speed import mjpeg_client


def receiver(ready, stop, results) -> None:
    """A python-osc UDP server in a child process: the receipt time of each row bundle."""
    from pythonosc.dispatcher import Dispatcher
    from pythonosc.osc_server import BlockingOSCUDPServer

    rows: list[tuple[float, float]] = []  # (eeg_time, receipt)
    messages: list[float] = []  # receipt of every message

    def on_row(_address, eeg_time) -> None:
        now = local_clock()
        rows.append((eeg_time, now))
        messages.append(now)

    def on_other(_address, *_args) -> None:
        messages.append(local_clock())

    dispatcher = Dispatcher(strict_timing=False)
    dispatcher.map("/neuropaint/eeg_time", on_row)
    dispatcher.set_default_handler(on_other)
    server = BlockingOSCUDPServer(("127.0.0.1", 0), dispatcher)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)
    thread.start()
    ready.put(server.server_address[1])
    stop.wait()
    server.shutdown()
    results.put({"rows": rows, "messages": messages})


class Switch:
    """OSC out that the benchmark turns on and off between segments."""

    def __init__(self, sink):
        self.sink = sink
        self.on = True

    def write_rows(self, batch) -> None:
        if self.on:
            self.sink.write_rows(batch)

    def write(self, frame, status) -> None:
        if self.on:
            self.sink.write(frame, status)

    def close(self) -> None:
        self.sink.close()


def percentiles(values, qs=(50, 95)) -> dict:
    if not len(values):
        return {}
    return {f"p{q}": round(float(np.percentile(values, q)), 2) for q in qs}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=20.0,
                   help="measured seconds, half with OSC out on, half off")
    p.add_argument("--segment", type=float, default=2.0, help="seconds per on/off segment")
    p.add_argument("--commands", type=int, default=12, help="OSC-in commands timed")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--fps", type=float, default=15.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-viewer", action="store_true", help="no viewer and MJPEG client")
    p.add_argument("--regions", action="store_true",
                   help="OSC out also sends band powers per region (live.render --osc-regions)")
    args = p.parse_args()

    import torch
    from pythonosc.udp_client import SimpleUDPClient

    from gan.upscale import Upscaler
    from live.demo import demo_upscaler
    from live.engine import Engine, EngineConfig
    from live.osc import OscIn, OscOut, OscOutConfig
    from live.render import SimulatorProcess, load_models
    from live.sinks import ViewerSink
    from live.source import LSLSource
    from live.viewer import Viewer

    ctx = mp.get_context("spawn")
    ready, results, stop_rx = ctx.Queue(), ctx.Queue(), ctx.Event()
    rx = ctx.Process(target=receiver, args=(ready, stop_rx, results), daemon=True)
    rx.start()
    rx_port = ready.get(timeout=60)

    profile, G, mapping_dir, _ = load_models(None, None)
    upscaler_path = demo_upscaler()
    upscaler = Upscaler.from_pretrained(upscaler_path) if upscaler_path else None
    name = f"stage-{uuid.uuid4().hex[:8]}"
    sim = SimulatorProcess(name)
    source = LSLSource(name, timeout=10).open()
    out = OscOut([("127.0.0.1", rx_port)], OscOutConfig(regions=args.regions))
    switch = Switch(out)
    sinks: list = [switch]
    viewer = None
    stop_client = threading.Event()
    if not args.no_viewer:
        viewer = Viewer("127.0.0.1", 0)
        url = viewer.start()
        sinks.append(ViewerSink(viewer))
        threading.Thread(target=mjpeg_client, args=(url, stop_client, [0]),
                         daemon=True).start()
    config = EngineConfig(fps=args.fps, size=args.size, threads=args.threads,
                          calibration=0.0, baseline_memory=None)
    engine = Engine(profile, G, source, config, sinks=sinks, upscaler=upscaler,
                    keep_ages=True)
    osc_in = OscIn()
    queued_at: list[float] = []  # when the OSC-in thread queued each command

    def submit(*command) -> bool:
        queued_at.append(local_clock())
        return engine.submit(*command)

    osc_in.start(submit)

    with torch.inference_mode():
        engine.run(3.0)  # the first 2 s window and warm-up, not measured
        out.history.clear()
        modes = {True: {"frames": 0, "wall": 0.0, "ages": []},
                 False: {"frames": 0, "wall": 0.0, "ages": []}}
        on = True
        spent = 0.0
        windows = []  # (start, end) of the OSC-on segments, local_clock
        while spent < args.seconds - 1e-9:
            seconds = min(args.segment, args.seconds - spent)
            switch.on = on
            engine.stats.all_ages.clear()
            frames0, t0 = engine.stats.frames, time.perf_counter()
            start = local_clock()
            engine.run(seconds)
            if on:
                windows.append((start, local_clock()))
            mode = modes[on]
            mode["wall"] += time.perf_counter() - t0
            mode["frames"] += engine.stats.frames - frames0
            mode["ages"] += engine.stats.all_ages
            spent += seconds
            on = not on
        switch.on = True

        # OSC in: blackout on/off from another thread at random moments against the frame
        # slots, while the loop runs as usual; the first frame that shows each is timed.
        client = SimpleUDPClient(*osc_in.address)
        rng = np.random.default_rng(0)
        pending: list = []  # [sent, black] of the command in flight
        delays, sent_at = [], []

        def on_frame(frame) -> None:
            if pending and (frame.image.max() == 0) == pending[0][1]:
                delays.append(frame.time - pending[0][0])
                pending.clear()

        def sender() -> None:
            for k in range(args.commands):
                time.sleep(float(rng.uniform(0.25, 0.45)))
                if pending:  # the last one never showed within the wait: not counted
                    pending.clear()
                pending.append((local_clock(), k % 2 == 0))
                sent_at.append(pending[0][0])
                client.send_message("/neuropaint/blackout", int(k % 2 == 0))
            time.sleep(0.5)
            engine.stop()

        threading.Thread(target=sender, daemon=True).start()
        engine.run(None, on_frame=on_frame)

    stop_client.set()
    osc_in.close()
    engine.close()
    source.close()
    sim.stop()
    stop_rx.set()
    got = results.get(timeout=30)
    rx.join(10)

    def during_on(times) -> int:
        times = np.asarray(times)
        return int(sum(((times >= a) & (times < b + 0.05)).sum() for a, b in windows))

    computed = {eeg: (c, s) for eeg, c, s in out.history}
    on_rows = [(eeg, rt) for eeg, rt in got["rows"]
               if any(a <= rt < b + 0.05 for a, b in windows)]
    matched = [(rt - computed[eeg][0], computed[eeg][1] - computed[eeg][0])
               for eeg, rt in on_rows if eeg in computed]
    latency = np.array([m[0] for m in matched]) * 1000.0
    send = np.array([m[1] for m in matched]) * 1000.0
    on_seconds = sum(b - a for a, b in windows)
    result = {
        "benchmark": "stage", "regions": args.regions, "mapping": f"profile {mapping_dir}", "size": args.size,
        "target_fps": args.fps, "seconds": round(args.seconds, 1),
        "segment_s": args.segment,
        "osc_out": {
            "messages_per_s": round(during_on(got["messages"]) / max(on_seconds, 1e-9), 1),
            "row_bundles_per_s": round(len(on_rows) / max(on_seconds, 1e-9), 1),
            "rows_matched": len(matched), "send_errors": out.send_errors,
            "rows_skipped": out.rows_skipped,
            "latency_ms": percentiles(latency), "send_ms": percentiles(send),
        },
        "loop": {("osc_on" if flag else "osc_off"): {
            "fps": round(m["frames"] / max(m["wall"], 1e-9), 2),
            "age_ms": percentiles(np.asarray(m["ages"]) * 1000.0)} for flag, m in modes.items()},
        "osc_in": {"commands": args.commands, "shown": len(delays),
                   "received": len(queued_at),
                   "send_to_queue_ms": percentiles(
                       (np.asarray(queued_at) - np.asarray(sent_at)) * 1000.0, (50, 95))
                   if len(queued_at) == len(sent_at) else None,
                   "command_to_frame_ms": {**percentiles(np.asarray(delays) * 1000.0, (50,)),
                                           "max": round(float(np.max(delays)) * 1000.0, 1)
                                           if delays else None}},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
