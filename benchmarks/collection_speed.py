"""How long a unique collection takes: ``gan.collection.export_collection`` on a CPU preset.

Prints one JSON line. Run: ``python benchmarks/collection_speed.py`` (``--count 64`` and the
``cpu64`` preset by default; ``--threads 1`` is the right setting on a busy shared machine).

The generator has the preset's architecture and freshly initialised weights: the time per
candidate (mapping, rendering at batch :data:`gan.collection.BLOCK`, the W and pixel checks)
and per written item (PNG, metadata, manifest, contact sheet) depend on the architecture, not
on training. How many candidates are rejected does depend on the trained weights, so the
figure to use is ``ms_per_candidate`` (everything included: the reference set, the search, the
writing, divided by the candidates tried); the rejection counts are printed for completeness.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from gan.checkpoint import save_snapshot
from gan.collection import collection_config, export_collection
from gan.presets import get_preset
from gan.train import build_networks


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu64")
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--trunc", type=float, default=0.7)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    preset = get_preset(args.preset)
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        G = build_networks(preset)[0]
        snapshot = save_snapshot(Path(tmp) / "G", {"G_ema": G}, {"arch": preset.arch})
        cfg = collection_config(count=args.count, truncation_psi=args.trunc)
        start = time.perf_counter()
        manifest = export_collection(snapshot, Path(tmp) / "collection", cfg)
        seconds = time.perf_counter() - start
    tried = manifest["candidates"]
    result = {
        "benchmark": "collection_speed",
        "preset": args.preset,
        "resolution": preset.resolution,
        "count": args.count,
        "truncation_psi": args.trunc,
        "seconds": round(seconds, 2),
        "items_per_s": round(args.count / seconds, 2),
        "candidates_tried": tried["tried"],
        "ms_per_candidate": round(1000 * seconds / tried["tried"], 1),
        "rejected_w": tried["rejected_w"],
        "rejected_pixels": tried["rejected_pixels"],
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
