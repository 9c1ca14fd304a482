"""The README's layer-swap picture: collection A | collection B | their blend (docs/blend.jpg).

Run: ``python benchmarks/blend_demo.py --work /tmp/blend_demo`` (about 13 minutes of training
on this 2-core CPU with the defaults), then look at ``docs/blend.jpg``. Prints one JSON line.

What it does, with the project's own tools only:

1. paints three tile stores of procedural paintings (:func:`datasets.procedural.write_store`)
   at the preset's resolution: every style (the base), ``--style-a`` and ``--style-b``;
2. trains a base generator on every style for ``--base-minutes`` (:class:`gan.train.Trainer`),
   then continues that snapshot on A's store and, separately, on B's store for
   ``--tune-minutes`` each: ``gan.train --resume <base snapshot> --data <other store>`` does
   the same from the command line; the two generators share their origin, as Pinkney & Adler
   (2020) require;
3. blends them with :func:`gan.blend.blend_snapshots` (coarse layers from A, fine from B);
4. renders the same seeds from A, B and the blend, one labelled row each, enlarged with
   nearest-neighbour pixels so that nothing is smoothed, and saves the sheet as a JPEG.

The JSON line has the training minutes and kimg of each stage, the blend's share of B per
resolution, the generators' similarity (:func:`gan.blend.base_similarity`), and the sliced
Wasserstein distance (:func:`gan.metrics.evaluate`) of A, B and the blend to A's and B's
tiles, so that "the blend sits between" is a figure, not an impression. A work folder that
already holds trained runs is reused (``--retrain`` to start over).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from datasets.art import ArtTiles
from datasets.procedural import STYLES, contact_sheet, write_store
from gan.blend import base_similarity, blend_snapshots, crossover_table
from gan.checkpoint import load_generator, resolve_snapshot
from gan.generate import parse_seeds, render_z, seed_z
from gan.metrics import evaluate
from gan.presets import get_preset
from gan.train import TrainConfig, Trainer
from neuropaint.atomic import atomic_path

ROOT = Path(__file__).resolve().parents[1]


def train(data: Path, out: Path, preset: str, minutes: float, resume: Path | None,
          retrain: bool) -> dict:
    """Train (or continue) a run for ``minutes``; reuse a finished one unless ``retrain``."""
    if (out / "latest").exists() and not retrain:
        snapshot = resolve_snapshot(out)
        return {"snapshot": str(snapshot), "reused": True}
    if out.exists():
        shutil.rmtree(out)  # a fresh run: no stats or snapshots of an earlier one
    start, cpu_start = time.perf_counter(), time.process_time()
    cfg = TrainConfig(data=str(data), out=str(out), preset=preset, kimg=1e6, snapshot_kimg=1e6,
                      tick_kimg=1.0, device="cpu", max_minutes=minutes,
                      resume=str(resume) if resume is not None else None)
    trainer = Trainer(cfg)
    first_kimg = trainer.counters.nimg / 1000
    snapshot = trainer.train()
    return {"snapshot": str(snapshot), "reused": False,
            "minutes": round((time.perf_counter() - start) / 60, 2),
            "cpu_minutes": round((time.process_time() - cpu_start) / 60, 2),
            "kimg": round(trainer.counters.nimg / 1000 - first_kimg, 2)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for stores and runs")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "blend.jpg")
    parser.add_argument("--preset", default="tiny32")
    parser.add_argument("--style-a", default="rothko", choices=STYLES)
    parser.add_argument("--style-b", default="davis", choices=STYLES)
    parser.add_argument("--paintings", type=int, default=500, help="paintings per store")
    parser.add_argument("--base-minutes", type=float, default=5.0)
    parser.add_argument("--tune-minutes", type=float, default=4.0, help="for A and for B")
    parser.add_argument("--swap-resolution", type=int, default=8)
    parser.add_argument("--crossover-width", type=float, default=1.0)
    parser.add_argument("--seeds", default="0-7")
    parser.add_argument("--scale", type=int, default=3, help="nearest-neighbour enlargement")
    parser.add_argument("--swd-images", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: on a shared 2-core machine, two threads spin "
                        "against other processes and train ~10x fewer images per CPU second)")
    parser.add_argument("--retrain", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    work = args.work
    size = get_preset(args.preset).resolution
    stores = {}
    for name, styles in (("base", None), ("a", args.style_a), ("b", args.style_b)):
        stores[name] = work / f"store_{name}"
        if not (stores[name] / "manifest.json").exists() or args.retrain:
            write_store(stores[name], args.paintings, size, styles=styles, overwrite=True)

    stages = {"base": train(stores["base"], work / "base", args.preset, args.base_minutes, None,
                            args.retrain)}
    base = Path(stages["base"]["snapshot"])
    for name in ("a", "b"):
        stages[name] = train(stores[name], work / name, args.preset, args.tune_minutes, base,
                             args.retrain)
    gens = {name: Path(stages[name]["snapshot"]) for name in ("a", "b")}
    blended = blend_snapshots(gens["a"], gens["b"], work / "blend",
                              swap_resolution=args.swap_resolution,
                              crossover_width=args.crossover_width)

    seeds = parse_seeds(args.seeds)
    rows, swd = [], {}
    tiles = {name: ArtTiles(stores[name]) for name in ("a", "b")}
    for name, path in (("a", gens["a"]), ("b", gens["b"]), ("blend", blended)):
        G = load_generator(path)
        images = render_z(G, seed_z(G, seeds))
        rows.append([np.kron(img, np.ones((args.scale, args.scale, 1), np.uint8))
                     for img in images])
        for store in ("a", "b"):
            result = evaluate(G, tiles[store], num_images=args.swd_images, seed=0)
            swd[f"{name}_to_{store}"] = round(result["swd"], 2)
    labels = [f"A: {args.style_a}", f"B: {args.style_b}", "blend"]
    sheet = contact_sheet(rows, labels=labels)
    with atomic_path(args.out) as tmp:
        Image.fromarray(sheet).save(tmp, format="JPEG", quality=92)

    G_blend = load_generator(blended)
    table = crossover_table(G_blend.state_dict().keys(), G_blend.img_resolution,
                            args.swap_resolution, args.crossover_width)
    result = {
        "benchmark": "blend_demo",
        "preset": args.preset,
        "resolution": size,
        "styles": {"a": args.style_a, "b": args.style_b},
        "training": {name: {k: v for k, v in stage.items() if k != "snapshot"}
                     for name, stage in stages.items()},
        "swap_resolution": args.swap_resolution,
        "crossover_width": args.crossover_width,
        "share_of_b": table,
        "threads": torch.get_num_threads(),
        "similarity": base_similarity(load_generator(gens["a"]).state_dict(),
                                      load_generator(gens["b"]).state_dict()),
        "swd": swd,
        "picture": str(args.out),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
