"""Quality per kimg of the CPU training recipe: the step as issue 16 found it against today's.

    python benchmarks/train_recipe_quality.py [--preset demo64] [--kimg 12] [--every 3]

Issue 16, point 3, asks for training twice as fast "with no loss of quality per kimg".
The speed is :mod:`benchmarks.train_speed`'s; this is the quality half. Two runs of the real
trainer (:class:`gan.train.Trainer`) on the same procedural paintings (the demo's data,
2,000 paintings at 64 px with mirrored tiles, as ``live.demo build`` trains) with the same
seed, one per recipe:

- ``before``: the preset as the issue was filed: a discriminator as wide as the generator,
  a fresh generator pass for the discriminator step, path length every 4 steps (and the
  generator's blocks one sample at a time, which changes the speed but not the arithmetic);
- ``today``: the preset as it is now (``gan.presets``).

Each run is measured every ``--every`` kimg with :func:`gan.metrics.evaluate` (SWD of the
EMA generator against the tiles, per pyramid level, ``--num`` images a side, the same seed
for both), and once more at the end with the floor (two disjoint real sets). The runs train
in two child processes at once, one torch thread each, so that a noisy neighbour slows
both alike (their images/s are printed too, but the speed figure is train_speed's). One
JSON line: each recipe's SWD curve, its final SWD and levels, and the ratio today/before at
every checkpoint (below 1: today's recipe is ahead at the same kimg).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RECIPES = ("before", "today")


def recipe_preset(name: str, preset: str):
    from gan.presets import CPU_STEP_BEFORE, get_preset

    return get_preset(preset, **(CPU_STEP_BEFORE if name == "before" else {}))


def run_child(args: argparse.Namespace) -> int:
    """Train one recipe to ``--kimg``, measuring at every checkpoint; write its JSON."""
    import torch

    from datasets.art import ArtTiles
    from gan.metrics import evaluate
    from gan.train import TrainConfig, Trainer

    torch.set_num_threads(1)
    preset = recipe_preset(args.child, args.preset)
    cfg = TrainConfig(data=args.store, out=str(Path(args.work) / args.child),
                      preset=args.preset, kimg=1e6, snapshot_kimg=1e6, snapshot_minutes=None,
                      tick_kimg=1e6, xflip=True, device="cpu", seed=args.seed)
    trainer = Trainer(cfg, preset=preset)
    if args.child == "before":
        trainer.G.synthesis.per_sample_in_training = True  # the step as it was filed
    tiles = ArtTiles(args.store)
    curve, seconds = [], 0.0
    for checkpoint in _checkpoints(args.kimg, args.every):
        start = time.perf_counter()
        while trainer.counters.nimg < checkpoint * 1000:
            trainer.train_step()
        seconds += time.perf_counter() - start
        last = checkpoint == args.kimg
        result = evaluate(trainer.G_ema, tiles, num_images=args.num, seed=args.seed,
                          floor=last)
        point = {"kimg": round(trainer.counters.nimg / 1000, 3),
                 "swd": round(result["swd"], 2),
                 "swd_levels": [round(v, 2) for v in result["swd_levels"]]}
        if last:
            point["floor_levels"] = [round(v, 2) for v in result["swd_floor_levels"]]
            point["ratio_to_floor_levels"] = [round(v, 2) for v in result["swd_ratio_levels"]]
        curve.append(point)
        print(json.dumps({"recipe": args.child, **point}), file=sys.stderr, flush=True)
    summary = {"curve": curve, "images_per_s": round(trainer.counters.nimg / seconds, 2),
               "preset": preset.model_dump(include={"d_channel_base", "reuse_fakes",
                                                    "pl_interval"})}
    Path(args.result).write_text(json.dumps(summary))
    return 0


def _checkpoints(kimg: float, every: float) -> list[float]:
    points, k = [], every
    while k < kimg - 1e-9:
        points.append(round(k, 6))
        k += every
    return [*points, kimg]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="demo64")
    parser.add_argument("--kimg", type=float, default=12.0)
    parser.add_argument("--every", type=float, default=3.0)
    parser.add_argument("--num", type=int, default=1000,
                        help="images a side for SWD (the floor needs twice as many paintings)")
    parser.add_argument("--paintings", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", choices=RECIPES, help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return run_child(args)
    from datasets.procedural import write_store

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        store = write_store(work / "paintings", args.paintings, 64, seed=args.seed)
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        children = {}
        for name in RECIPES:
            cmd = [sys.executable, __file__, "--child", name, "--store", str(store),
                   "--work", str(work), "--result", str(work / f"{name}.json"),
                   "--preset", args.preset, "--kimg", str(args.kimg), "--every",
                   str(args.every), "--num", str(args.num), "--seed", str(args.seed)]
            children[name] = subprocess.Popen(cmd, env=env)
        failed = [name for name, child in children.items() if child.wait() != 0]
        if failed:
            print(f"train_recipe_quality: the {', '.join(failed)} run failed", file=sys.stderr)
            return 1
        runs = {name: json.loads((work / f"{name}.json").read_text()) for name in RECIPES}
    ratio = [round(t["swd"] / b["swd"], 3)
             for b, t in zip(runs["before"]["curve"], runs["today"]["curve"], strict=True)]
    print(json.dumps({"case": "train_recipe_quality", "preset": args.preset,
                      "kimg": args.kimg, "num_images": args.num, "seed": args.seed,
                      "runs": runs, "swd_ratio_today_to_before": ratio}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
