"""Does training learn? The ``tiny`` preset on procedural paintings, SWD before and after.

Prints one JSON line. Run: ``python benchmarks/gan_quality.py`` (``--minutes 10`` by
default). The goal from the GAN-room issue: ten minutes of training on this CPU lowers the
sliced Wasserstein distance (ProGAN's SWD, :func:`gan.metrics.sliced_wasserstein`) between
generated images and the real tiles by at least half from its value at initialisation.

Both measurements use the EMA generator, the same 1024 real tiles and the same latents.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from datasets.procedural import write_store
from gan.metrics import evaluate
from gan.presets import get_preset
from gan.train import TrainConfig, Trainer


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="training time")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--paintings", type=int, default=1000, help="procedural paintings")
    parser.add_argument("--num", type=int, default=1024, help="images per SWD estimate")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        size = get_preset(args.preset).resolution
        store = write_store(folder / "paintings", args.paintings, size)
        cfg = TrainConfig(data=str(store), out=str(folder / "run"), preset=args.preset,
                          kimg=1e6, snapshot_kimg=1e6, tick_kimg=1.0, device="cpu",
                          max_minutes=args.minutes)
        trainer = Trainer(cfg)
        before = evaluate(trainer.G_ema, trainer.data.tiles, num_images=args.num, seed=0)
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
        after = evaluate(trainer.G_ema, trainer.data.tiles, num_images=args.num, seed=0)
    result = {
        "benchmark": "gan_quality",
        "preset": args.preset,
        "resolution": size,
        "train_minutes": round(seconds / 60, 2),
        "kimg": round(trainer.counters.nimg / 1000, 2),
        "swd_init": round(before["swd"], 3),
        "swd_trained": round(after["swd"], 3),
        "swd_ratio": round(after["swd"] / before["swd"], 3),
        "goal": "swd_ratio <= 0.5",
        "aug_p": round(trainer.ada.p, 4) if trainer.ada is not None else 0.0,
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
