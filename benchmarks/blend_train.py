"""Two-discriminator blending (``gan.train --data-b --blend``): where does the blend land?

Prints one JSON line. Run: ``python benchmarks/blend_train.py`` (about five minutes on a
2-core CPU with the defaults). Three generators of the ``tiny`` preset train for the same
number of images from the same seed: one on collection A alone, one on B alone, and one
blend (one generator, a discriminator per collection, per-image loss the max of the two, or
``--blend mean``). Each EMA generator is then measured with ProGAN's sliced Wasserstein
distance (:func:`gan.metrics.evaluate`, lower is closer) against A's tiles, B's tiles and
both together. A blend that takes from both collections is closer to B than the A-only
generator is, and closer to A than the B-only generator is (``between``).

The collections are procedural paintings of one style each (``--style-a``, ``--style-b``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from datasets.art import ArtTiles
from datasets.procedural import STYLES, write_store
from gan.metrics import evaluate
from gan.presets import get_preset
from gan.train import TrainConfig, Trainer


class Union:
    """Half the real tiles from each of two sources (the ``tile_source`` evaluate() takes)."""

    def __init__(self, a, b):
        self.a, self.b = a, b

    def sample_batch(self, n: int, generator: torch.Generator) -> torch.Tensor:
        half = n // 2
        return torch.cat([self.a.sample_batch(half, generator),
                          self.b.sample_batch(n - half, generator)])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--kimg", type=float, default=2.4, help="images per run, thousands")
    parser.add_argument("--paintings", type=int, default=500, help="tiles per collection")
    parser.add_argument("--style-a", default="rothko", choices=STYLES)
    parser.add_argument("--style-b", default="davis", choices=STYLES)
    parser.add_argument("--blend", default="max", choices=["max", "mean"])
    parser.add_argument("--num", type=int, default=512, help="images per SWD estimate")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    size = get_preset(args.preset).resolution
    result: dict = {"benchmark": "blend_train", "preset": args.preset, "kimg": args.kimg,
                    "style_a": args.style_a, "style_b": args.style_b, "reduce": args.blend}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        a = write_store(folder / "a", args.paintings, size, styles=args.style_a)
        b = write_store(folder / "b", args.paintings, size, styles=args.style_b, seed=10_000)
        runs = {"a_only": {"data": str(a)}, "b_only": {"data": str(b)},
                "blend": {"data": str(a), "data_b": str(b), "blend": args.blend}}
        for name, data in runs.items():
            cfg = TrainConfig(**data, out=str(folder / name), preset=args.preset,
                              kimg=args.kimg, snapshot_kimg=args.kimg, tick_kimg=args.kimg,
                              device="cpu", seed=args.seed)
            trainer = Trainer(cfg)
            start = time.perf_counter()
            trainer.train()
            minutes = (time.perf_counter() - start) / 60
            tiles_a, tiles_b = ArtTiles(str(a)), ArtTiles(str(b))
            sources = {"a": tiles_a, "b": tiles_b, "both": Union(tiles_a, tiles_b)}
            swd = {k: evaluate(trainer.G_ema, src, num_images=args.num, seed=1)["swd"]
                   for k, src in sources.items()}
            result[name] = {"swd_to_a": round(swd["a"], 1), "swd_to_b": round(swd["b"], 1),
                            "swd_to_both": round(swd["both"], 1),
                            "train_minutes": round(minutes, 2)}
    blend, a_only, b_only = result["blend"], result["a_only"], result["b_only"]
    result["between"] = bool(blend["swd_to_b"] < a_only["swd_to_b"]
                             and blend["swd_to_a"] < b_only["swd_to_a"])
    result["threads"] = torch.get_num_threads()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
