"""What a wider demo painter costs a live frame: the generator at its widths and wider ones,
beside the x8 upscaler that follows it at 512 px.

Prints one JSON line. Run: ``python benchmarks/painter_widths.py`` (about a minute; run it on
an otherwise idle machine). Batch 1, ``noise_mode='const'``, ``--threads`` torch threads (1,
as ``live.render`` runs by default), the frame the engine paints. The variants are measured
in turns, ``--rounds`` times each, and each figure is the median of its rounds' medians, so
a burst of load elsewhere touches every variant alike; ``ratio`` is ms over the bundled
painter's ms in the same run.

- ``demo``: the bundled painter's widths (``demo64``: 128 channels from 4 to 16 px, 64 at
  32 px, 32 at 64 px);
- ``coarse_x2``: ``channel_max`` 256: twice the channels at 4 and 8 px only;
- ``fine_x2``: ``channel_base`` 4096: twice the channels at 32 and 64 px;
- ``all_x2``: both, which doubles 16 px too (256, 256, 256, 128, 64 channels).

``upscaler_x8`` is the bundled 64 -> 512 px upscaler on the demo painter's frame: what the
rest of the live frame costs at ``--size 512``.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.gan_speed import median_seconds
from gan.checkpoint import load_generator
from gan.networks import Generator
from gan.upscale.model import Upscaler
from live.demo import DEMO_MODEL

WIDTHS = {"demo": {}, "coarse_x2": {"channel_max": 256}, "fine_x2": {"channel_base": 4096},
          "all_x2": {"channel_base": 4096, "channel_max": 256}}


def widened(G: Generator, change: dict) -> Generator:
    """A generator of ``G``'s shape with the synthesis widths ``change`` sets (fresh weights:
    the cost of a frame does not depend on them)."""
    kwargs = copy.deepcopy(G.init_kwargs)
    kwargs["synthesis_kwargs"].update(change)
    return Generator(**kwargs).eval().requires_grad_(False)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=15, help="timed calls per round")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    demo = load_generator(Path(DEMO_MODEL) / "generator")
    upscaler = Upscaler.from_pretrained(Path(DEMO_MODEL) / "upscaler_x8", device="cpu")
    nets = {name: demo if not change else widened(demo, change)
            for name, change in WIDTHS.items()}
    ws = demo.mapping(torch.randn(1, demo.z_dim), None)
    calls = {name: (lambda G=G: G.synthesis(ws, noise_mode="const")) for name, G in nets.items()}
    with torch.no_grad():
        frame = demo.synthesis(ws, noise_mode="const")
        calls["upscaler_x8"] = lambda: upscaler(frame)
        rounds: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(args.rounds):
            for name, call in calls.items():
                rounds[name].append(median_seconds(call, args.repeats) * 1000)
    ms = {name: statistics.median(values) for name, values in rounds.items()}
    result = {"benchmark": "painter_widths", "threads": args.threads, "rounds": args.rounds}
    for name, G in nets.items():
        blocks = [getattr(G.synthesis, f"b{res}") for res in G.synthesis.block_resolutions]
        result[name] = {"ms": round(ms[name], 2), "ratio": round(ms[name] / ms["demo"], 2),
                        "channels": [block.conv1.weight.shape[0] for block in blocks],
                        "params": sum(p.numel() for p in G.parameters())}
    result["upscaler_x8_ms"] = round(ms["upscaler_x8"], 2)
    result["seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
