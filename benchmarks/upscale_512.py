"""Which upscaler paints 512 px live from a 64 px generator: quality and cost, in one run.

    python benchmarks/upscale_512.py --x8 live/demo_model/upscaler_x8 \\
        --x4 live/demo_model/upscaler [--x4-compact RUN] [--threads 1]

Each pipeline takes a 64 px painting to 512 px, as the live engine would
(:meth:`live.engine.Engine.paint`: the upscaler, then bicubic to the output size):

- ``bicubic``: Pillow's bicubic x8 (the classic baseline; torch's, as the engine uses without an
  upscaler, is timed);
- ``x4+bicubic``: an x4 upscaler (64 -> 256), then bicubic x2 (the demo's path before x8);
- ``x8``: an x8 upscaler, 64 -> 512 directly.

Quality: PSNR (dB, RGB 0-255) and SSIM (``gan.upscale.metrics``) against held-out 512 px
procedural paintings (``datasets.procedural``, a seed no upscaler was trained on), from two
kinds of 64 px input: ``clean`` (antialiased bicubic downscale) and ``degraded`` (the
``light`` degradations: blur, noise, JPEG, each 30 % of the time, fixed seed). Cost: ms per
frame at batch 1, the median of ``--repeats`` calls, on ``--threads`` torch threads (1, as
the live loop runs). Prints one JSON line; ``lead_db`` is a pipeline's PSNR minus bicubic's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from gan_speed import median_seconds  # this folder: the one timing rule of the benchmarks

from datasets.art import ArtTiles
from datasets.procedural import write_store
from gan.upscale import Upscaler, compare, degrade, get_degradation

SIZE = 512
LOW = 64


def pipeline(upscaler: Upscaler | None):
    """64 px ``[N, 3, 64, 64]`` -> 512 px, as the engine paints (upscaler, then bicubic)."""
    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            y = upscaler(x) if upscaler is not None else x
            if y.shape[-1] != SIZE:
                y = F.interpolate(y, size=(SIZE, SIZE), mode="bicubic", align_corners=False)
            return y.clamp(-1, 1)
    return run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--x8", required=True, help="x8 upscaler (64 -> 512)")
    parser.add_argument("--x4", help="x4 upscaler (64 -> 256, then bicubic x2)")
    parser.add_argument("--x4-compact", help="a second x4 upscaler, e.g. the compact preset")
    parser.add_argument("--paintings", type=int, default=40, help="held-out 512 px paintings")
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per pipeline")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--seed", type=int, default=424242, help="paintings' seed")
    parser.add_argument("--work", type=Path, default=Path("/tmp/neuropaint_upscale_512"),
                        help="where the held-out paintings are kept between runs")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    store = args.work / f"paintings{args.paintings}_{args.seed}"
    if not store.exists():
        write_store(store, args.paintings, SIZE, seed=args.seed)
    hr = ArtTiles(store).gather(list(range(args.paintings)))  # [N, 3, 512, 512]
    inputs = {name: degrade(hr, SIZE // LOW, get_degradation(kind),
                            torch.Generator().manual_seed(args.seed + 1))
              for name, kind in (("clean", "bicubic"), ("degraded", "light"))}
    models = {"x8": args.x8, "x4+bicubic": args.x4, "x4_compact+bicubic": args.x4_compact}
    pipelines = {"bicubic": pipeline(None)}
    about = {"bicubic": {}}
    for name, path in models.items():
        if path:
            up = Upscaler.from_pretrained(path)
            pipelines[name] = pipeline(up)
            about[name] = {"model": str(path), "net": type(up.net).__name__,
                           "params": sum(p.numel() for p in up.net.parameters())}
    x = inputs["clean"][:1]
    result: dict = {"benchmark": "upscale_512", "paintings": args.paintings,
                    "threads": torch.get_num_threads(), "pipelines": {}}
    for name, run in pipelines.items():
        figures = dict(about[name])
        for kind, lr in inputs.items():
            q = compare(run, lr, hr, SIZE // LOW)  # also measures Pillow's bicubic
            if name == "bicubic":  # Pillow's bicubic, the published baseline
                figures[kind] = {"psnr": round(q["psnr_bicubic"], 3),
                                 "ssim": round(q["ssim_bicubic"], 4)}
            else:
                figures[kind] = {"psnr": round(q["psnr_model"], 3),
                                 "ssim": round(q["ssim_model"], 4),
                                 "lead_db": round(q["psnr_model"] - q["psnr_bicubic"], 3),
                                 "ssim_lead": round(q["ssim_model"] - q["ssim_bicubic"], 4)}
        figures["ms_per_frame"] = round(median_seconds(lambda run=run: run(x), args.repeats)
                                        * 1000, 2)
        result["pipelines"][name] = figures
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
