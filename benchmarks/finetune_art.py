"""Does the bundled base painter fine-tune well? Scratch vs ``--init`` on real paintings.

Issue 16, point 5: on a folder of real paintings nobody here made (the 21 public-domain
artworks of Debian's ``gcompris-qt-data``, rebuilt by :mod:`benchmarks.real_art`: 11 Western
paintings, 10 Japanese woodblock prints and ukiyo-e), train the real trainer
(:class:`gan.train.Trainer`, preset ``demo64``, 64 px) for ``--minutes`` of CPU time twice,
once from scratch and once from the bundled base generator (``TrainConfig.init``, as
``python -m gan.train --init live/demo_model/generator``: G and G_ema start from the
demo's G_ema, D from the demo's D when it ships one, as it does since 2026-12-07), on the
same tile store with the same seed. Then both EMA
generators are measured with :func:`gan.metrics.evaluate` (``floor=True``: SWD per pyramid
level against real tiles, and the floor, the same SWD between two disjoint sets of real
tiles), and one JSON line is printed: kimg, images/s, SWD at the start and at the end, the
floor per level and the ratio, for each run. Images/s count the whole ``train()`` call
(start-up and the final snapshot included; negligible over 30 minutes).

The tile store is built with :func:`datasets.art.build` (random crops, ``--crops-per-image``
per work, each covering 64-256 source pixels by default, downsampled to 64 px); the floor
needs ``2 * --num`` tiles. A grid (``grid.png`` in ``--out``: real tiles, then scratch, then
init samples, one row each) shows the three side by side.

Each run trains and is measured in a fresh child process (nothing carries over from one
run to the other). ``--parallel`` starts both at once with one torch thread each, so that on
a 2-core machine each gets the same wall time and the same share of the CPU; without it
they run one after the other with ``--threads`` each.

Run (the long version, ~65 minutes on 2 cores with --parallel):
``python benchmarks/finetune_art.py --minutes 30 --parallel --out runs/finetune_art``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.real_art import DEFAULT_CACHE, DEFAULT_KINDS, RealArtError, select, summary
from datasets.art import ArtTiles, build, parse_scale_range
from gan.images import image_grid, to_uint8
from gan.metrics import evaluate
from gan.train import TrainConfig, Trainer

RUNS = ("scratch", "init")
DEFAULT_BASE = Path(__file__).resolve().parents[1] / "live" / "demo_model" / "generator"
GRID_COLUMNS = 8


def build_store(src: Path, out: Path, args: argparse.Namespace) -> dict:
    """Random-crop tile store of the works under ``src``; the build report's counts."""
    report = build(src, out, size=64, crops_per_image=args.crops_per_image,
                   scale_range=args.scale_range, seed=args.seed, n_jobs=1, overwrite=True)
    return report["counts"]


def train_one(run: str, store: Path, out: Path, args: argparse.Namespace) -> dict:
    """Train run ``run`` ("scratch" or "init") for ``args.minutes``; its figures as a dict.

    Also writes ``out/run/samples.npy`` (uint8 ``[GRID_COLUMNS, H, W, 3]``, fixed latents).
    """
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = TrainConfig(data=str(store), out=str(out / run), preset=args.preset, kimg=1e6,
                      snapshot_kimg=1e6, tick_kimg=1.0, device="cpu", seed=args.seed,
                      max_minutes=args.minutes,
                      init=str(args.base) if run == "init" else None)
    trainer = Trainer(cfg)
    # Where each run starts (evaluate() leaves the training RNG as it was).
    before = evaluate(trainer.G_ema, trainer.data.tiles, num_images=args.num, seed=0)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    nimg = trainer.counters.nimg
    metrics = evaluate(trainer.G_ema, trainer.data.tiles, num_images=args.num, seed=0,
                       floor=True)
    z = torch.randn(GRID_COLUMNS, trainer.G_ema.z_dim,
                    generator=torch.Generator().manual_seed(1234))
    trainer.G_ema.eval()
    with torch.no_grad():
        images = trainer.G_ema(z, None, truncation_psi=1.0)  # [N, 3, H, W] in [-1, 1]
    np.save(out / run / "samples.npy", to_uint8(images))  # [N, H, W, 3]
    return {
        "train_minutes": round(seconds / 60, 2),
        "kimg": round(nimg / 1000, 3),
        "img_per_s": round(nimg / seconds, 2),
        "threads": torch.get_num_threads(),
        "swd_start": round(before["swd"], 3),
        "swd_start_levels": [round(v, 3) for v in before["swd_levels"]],
        "swd": round(metrics["swd"], 3),
        "swd_levels": [round(v, 3) for v in metrics["swd_levels"]],
        "swd_resolutions": metrics["swd_resolutions"],
        "swd_floor": round(metrics["swd_floor"], 3),
        "swd_floor_levels": [round(v, 3) for v in metrics["swd_floor_levels"]],
        "swd_ratio": round(metrics["swd_ratio"], 3),
        "swd_ratio_levels": [round(v, 3) for v in metrics["swd_ratio_levels"]],
        "swd_ratio_max": round(metrics["swd_ratio_max"], 3),
        "aug_p": round(trainer.ada.p, 4) if trainer.ada is not None else 0.0,
    }


def _child_argv(run: str, store: Path, out: Path, threads: int,
                args: argparse.Namespace) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--child", run, "--store", str(store),
            "--out", str(out), "--minutes", str(args.minutes), "--preset", args.preset,
            "--base", str(args.base), "--num", str(args.num), "--seed", str(args.seed),
            "--threads", str(threads)]


def train_children(store: Path, out: Path, args: argparse.Namespace) -> dict[str, dict]:
    """Each run in a fresh child process: both at once with one thread each (``--parallel``),
    or one after the other with ``--threads``. Their figures, by run."""
    threads = 1 if args.parallel else args.threads
    env = dict(os.environ)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    children = {}
    for run in RUNS:
        (out / run).mkdir(parents=True, exist_ok=True)
        log = (out / run / "child.log").open("w")
        children[run] = (subprocess.Popen(_child_argv(run, store, out, threads, args), env=env,
                                          stdout=log, stderr=subprocess.STDOUT), log)
        if not args.parallel:
            children[run][0].wait()
    results = {}
    for run, (proc, log) in children.items():
        code = proc.wait()
        log.close()
        if code != 0:
            tail = (out / run / "child.log").read_text().strip().splitlines()[-5:]
            raise RuntimeError(f"the {run} run failed (exit {code}): " + " | ".join(tail))
        results[run] = json.loads((out / run / "result.json").read_text())
    return results


def save_grid(store: Path, out: Path, num_tiles: int) -> Path:
    """``out/grid.png``: a row of real tiles, then the scratch run's, then the init run's."""
    picks = np.random.default_rng(0).choice(num_tiles, GRID_COLUMNS, replace=False)
    real = ArtTiles(store).gather(picks, dtype=torch.uint8).permute(0, 2, 3, 1).numpy()
    rows = [real] + [np.load(out / run / "samples.npy") for run in RUNS]
    grid = image_grid(np.concatenate(rows), cols=GRID_COLUMNS)  # one row each
    path = out / "grid.png"
    Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2),
                                 Image.NEAREST).save(path)
    return path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0,
                        help="training time of each run (default: %(default)s)")
    parser.add_argument("--parallel", action="store_true",
                        help="train both runs at once, one process and one thread each")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads per run without --parallel (0: torch's default)")
    parser.add_argument("--out", type=Path, default=Path("runs/finetune_art"),
                        help="runs, tile store and grid.png go here (default: %(default)s)")
    parser.add_argument("--preset", default="demo64",
                        help="training preset; must match the base (default: %(default)s)")
    parser.add_argument("--base", type=Path, default=DEFAULT_BASE,
                        help="the init run's starting snapshot (default: the bundled demo)")
    parser.add_argument("--num", type=int, default=1024,
                        help="images per SWD set; the floor needs 2x as many tiles "
                             "(default: %(default)s)")
    parser.add_argument("--crops-per-image", type=int, default=200,
                        help="random crops per work in the tile store (default: %(default)s)")
    parser.add_argument("--scale-range", type=parse_scale_range, default=(1.0, 4.0),
                        help="each crop covers 64*k source px, k in [lo,hi] "
                             "(default: 1,4)")
    parser.add_argument("--kinds", default=",".join(DEFAULT_KINDS),
                        help="kinds of works (benchmarks/real_art.py) (default: %(default)s)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                        help="where the works are kept (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the crops and of both runs (default: %(default)s)")
    parser.add_argument("--child", choices=RUNS, help=argparse.SUPPRESS)
    parser.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.minutes <= 0:
        print("finetune_art: error: --minutes must be positive", file=sys.stderr)
        return 2
    if args.child:  # one run: train, measure, leave result.json
        result = train_one(args.child, args.store, args.out, args)
        (args.out / args.child / "result.json").write_text(json.dumps(result))
        return 0
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    try:
        src = select(kinds, args.cache)
    except RealArtError as err:
        print(f"finetune_art: error: {err}", file=sys.stderr)
        return 2
    works = summary(src.parent / "works", kinds)
    args.out.mkdir(parents=True, exist_ok=True)
    store = args.out / "tiles"
    counts = build_store(src, store, args)
    if counts["tiles"] < 2 * args.num:
        print(f"finetune_art: error: the floor needs {2 * args.num} tiles, the store has "
              f"{counts['tiles']}: raise --crops-per-image or lower --num", file=sys.stderr)
        return 2
    for run in RUNS:  # a fresh start for both: a run folder left by an earlier call would resume
        shutil.rmtree(args.out / run, ignore_errors=True)
    start = time.perf_counter()
    runs = train_children(store, args.out, args)
    wall = time.perf_counter() - start
    grid = save_grid(store, args.out, counts["tiles"])
    result = {
        "benchmark": "finetune_art",
        "data": {"package": works["package"], "kinds": list(kinds),
                 "n_works": works["n_works"], "megapixels": works["megapixels"],
                 "tiles": counts["tiles"], "crops_per_image": args.crops_per_image,
                 "scale_range": list(args.scale_range)},
        "preset": args.preset,
        "base": str(args.base),
        "minutes": args.minutes,
        "mode": "parallel" if args.parallel else "sequential",
        "wall_minutes": round(wall / 60, 2),
        "num_images": args.num,
        **runs,
        "init_over_scratch_swd": round(runs["init"]["swd"] / runs["scratch"]["swd"], 3),
        "grid": str(grid),
        "grid_rows": ["real", *RUNS],
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
