"""The README's before/after picture of the demo painter: real paintings, then each painter.

    python docs/painter_before_after.py BEFORE_GENERATOR [AFTER_GENERATOR] \
        [--out docs/demo_painter_before_after.jpg]

Row 1: procedural paintings of the demo's training data (``datasets.procedural``, seed 0);
then one row per generator, the same latents (seeds 0..7) for each, no truncation, shown at
twice their 64 px by nearest-neighbour (so what each painter paints is what is seen, with no
upscaler). BEFORE is a copy of ``live/demo_model/generator`` kept from before it was trained
further; AFTER defaults to the bundled one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from datasets.procedural import paint_many
from gan.checkpoint import load_generator
from gan.generate import seed_z
from gan.images import image_grid, to_uint8

COLUMNS, SCALE, LABEL_W = 8, 2, 150


def row_of(images: np.ndarray) -> Image.Image:
    strip = Image.fromarray(image_grid(images[:COLUMNS], cols=COLUMNS))
    return strip.resize((strip.width * SCALE, strip.height * SCALE), Image.NEAREST)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after", nargs="?", default="live/demo_model/generator")
    parser.add_argument("--out", default="docs/demo_painter_before_after.jpg")
    parser.add_argument("--before-label", default="before")
    parser.add_argument("--after-label", default="after")
    args = parser.parse_args(argv)
    real = np.stack([np.asarray(img) for _, img in paint_many(COLUMNS, 64, seed=0)])
    rows = [("paintings", row_of(real))]
    for label, path in ((args.before_label, args.before), (args.after_label, args.after)):
        G = load_generator(path)
        with torch.no_grad():
            img = G(seed_z(G, list(range(COLUMNS))), None, noise_mode="const")
        rows.append((label, row_of(to_uint8(img))))
    width = LABEL_W + rows[0][1].width
    sheet = Image.new("RGB", (width, sum(r.height for _, r in rows)), "black")
    draw = ImageDraw.Draw(sheet)
    y = 0
    for label, strip in rows:
        sheet.paste(strip, (LABEL_W, y))
        draw.text((6, y + strip.height // 2 - 6), label, fill="white")
        y += strip.height
    sheet.save(args.out, quality=92)
    print(f"picture: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
