"""Datasets room speed: building art tiles, the training loader, procedural paintings.

Prints one JSON line. Run: ``python benchmarks/datasets_speed.py`` (about a minute and a half
on 2 cores). What it measures, on files it makes in a temporary folder:

- ``build_512_tiles_per_s``: ``datasets.art build`` in random-crop mode, 512 px native-pixel
  crops from 20 images of 4000 x 3000 (smooth colour fields, shapes and grain, JPEG quality
  90, like photographed paintings), all cores, from cold start to committed store. The issue
  asks for 100 crops per image; this uses 20 (``--crops``) to keep the run short: the JPEG
  decode per image is paid once either way, so more crops per image only raise tiles/s.
- ``pad_512_images_per_s``: the same folder in pad mode (one whole work per tile), where big
  JPEGs are decoded at reduced scale (libjpeg DCT scaling).
- ``loader_256_batch32_tiles_per_s``: ``ArtTiles.sample_batch(32)`` on a 256 px store (random
  batches gathered from the memory-mapped shards, converted to float [-1, 1]), and the same
  through a ``torch.utils.data.DataLoader`` (batched ``__getitems__``, no workers). The store
  was just written, so it sits in the page cache, as it does after the first epoch. Also the
  uint8 batches a GPU trainer would copy and convert on the device.
- ``procedural_256_images_per_s``: ``datasets.procedural.paint`` at 256 px, cycling through
  its styles, when that module is importable (null otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from datasets.art import ArtTiles, build


def make_artwork(seed: int, width: int, height: int) -> Image.Image:
    """A photographed-painting stand-in: smooth colour field, shapes, and fine grain."""
    rng = np.random.default_rng(seed)
    field = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    image = Image.fromarray(field).resize((width, height), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x0, x1 = sorted(int(v) for v in rng.integers(0, width, 2))
        y0, y1 = sorted(int(v) for v in rng.integers(0, height, 2))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=colour)
    # Grain (canvas and camera noise) is what makes real JPEGs slow to decode; a tiled
    # 509 x 509 noise patch (prime-ish size: no visible period at 512 px) keeps this fast.
    patch = rng.integers(-12, 13, (509, 509, 3), dtype=np.int16)
    reps = (height // 509 + 1, width // 509 + 1, 1)
    grain = np.tile(patch, reps)[:height, :width]
    pixels = np.clip(np.asarray(image, dtype=np.int16) + grain, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def make_folder(folder: Path, n_images: int, width: int, height: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n_images):
        make_artwork(i, width, height).save(folder / f"work_{i:03d}.jpg", quality=90)


def time_loader(store: Path, seconds: float, batch_size: int = 32) -> dict:
    data = ArtTiles(store, xflip=True)
    generator = torch.Generator().manual_seed(0)
    data.sample_batch(batch_size, generator)  # Warm-up.
    n_batches = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        data.sample_batch(batch_size, generator)
        n_batches += 1
    sample_s = time.perf_counter() - start
    n_raw = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds / 2:
        data.sample_batch(batch_size, generator, dtype=torch.uint8)
        n_raw += 1
    raw_s = time.perf_counter() - start
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=True,
                                         num_workers=0, drop_last=True)
    n_loader = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in loader:
            n_loader += 1
            if time.perf_counter() - start >= seconds:
                break
    loader_s = time.perf_counter() - start
    return {
        "loader_256_batch32_tiles_per_s": round(n_batches * batch_size / sample_s, 1),
        "loader_256_batch32_ms_per_batch": round(1000 * sample_s / n_batches, 2),
        "loader_256_batch32_uint8_tiles_per_s": round(n_raw * batch_size / raw_s, 1),
        "dataloader_256_batch32_tiles_per_s": round(n_loader * batch_size / loader_s, 1),
        "loader_store_tiles": len(data) // 2,
    }


def time_procedural(seconds: float) -> dict:
    try:
        from datasets import procedural
    except ImportError:
        return {"procedural_256_images_per_s": None}
    styles = list(getattr(procedural, "STYLES", ())) or [None]
    try:
        procedural.paint(styles[0], 256, 0)  # Warm-up (and a check that the call works).
        n = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            image = procedural.paint(styles[n % len(styles)], 256, n)
            n += 1
        elapsed = time.perf_counter() - start
        assert np.asarray(image).shape == (256, 256, 3)
    except Exception as exc:  # The module is another room's work in progress: report, go on.
        return {"procedural_256_images_per_s": None,
                "procedural_error": f"{type(exc).__name__}: {exc}"}
    return {"procedural_256_images_per_s": round(n / elapsed, 1), "procedural_images": n}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=20, help="source images (default 20)")
    parser.add_argument("--width", type=int, default=4000, help="source width (default 4000)")
    parser.add_argument("--height", type=int, default=3000, help="source height (default 3000)")
    parser.add_argument("--crops", type=int, default=20, help="crops per image (default 20)")
    parser.add_argument("--seconds", type=float, default=4.0,
                        help="seconds per loader / procedural measurement (default 4)")
    args = parser.parse_args(argv)

    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="neuropaint-bench-") as tmp:
        tmp = Path(tmp)
        src = tmp / "art"
        start = time.perf_counter()
        make_folder(src, args.images, args.width, args.height)
        results["make_images_s"] = round(time.perf_counter() - start, 1)

        report = build(src, tmp / "tiles512", size=512, crops_per_image=args.crops, seed=0)
        timing = report["timing"]
        results.update({
            "build_512_tiles_per_s": round(report["counts"]["tiles"] / timing["total_s"], 1),
            "build_512_tiles": report["counts"]["tiles"],
            "build_512_s": timing["total_s"],
            "build_512_scan_s": timing["scan_s"],
            "build_crops_per_image": args.crops,
            "build_source": f"{args.images} x {args.width}x{args.height} JPEG q90",
            "n_jobs": report["n_jobs"],
        })
        report = build(src, tmp / "pad512", mode="pad", size=512)
        results["pad_512_images_per_s"] = round(
            report["counts"]["images_used"] / report["timing"]["total_s"], 1)

        # A 256 px store of 1000 tiles (about 200 MB) for the loader.
        build(src, tmp / "tiles256", size=256, crops_per_image=1000 // args.images,
              scale_range=(1.0, 4.0), seed=0)
        results.update(time_loader(tmp / "tiles256", args.seconds))
    results.update(time_procedural(args.seconds))
    results.update({
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "machine": platform.machine(),
    })
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
