"""Where a generator's SWD gap lies: the same generator with its parts turned off, per level.

Prints one JSON line. Run: ``python benchmarks/painter_parts.py --data STORE`` (the demo
painter by default; ``--generator SNAPSHOT`` for another; a few minutes on 2 cores). STORE
is the painter's own kind of painting, e.g. ``python -m datasets.procedural store64 --store
--count 4096 --size 64`` for the demo. Two disjoint sets of ``--num`` real tiles are drawn
(the first ``--num`` and the next ``--num``); each generated set is compared with the first:

- ``floor``: the second real set: what two samples of the paintings differ by;
- ``as_trained``: the generator as ``gan.metrics`` runs it (fresh noise inputs);
- ``noise_const`` / ``noise_none``: its per-pixel noise inputs fixed, or off;
- ``no_canvas``: its canvas texture (``gan.networks.CanvasTexture``) off, when it has one.

Each variant gives SWD (ProGAN's, x10^3) per level, finest first, and the ratio to the floor.
Also printed: ``power_ratio``, generated / real mean power per band of spatial frequency
(cycles per pixel, luminance and colour together), which says whether the images are blurred
or noisy overall; and, when the snapshot keeps its discriminator, D's mean score of the
generated images with and without the canvas texture (``d_score``), which says whether D
sees the texture at all.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from itertools import pairwise
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datasets.art import ArtTiles
from gan.checkpoint import load_network, read_config
from gan.metrics import sliced_wasserstein
from live.demo import DEMO_MODEL

BANDS = (0.0, 1 / 32, 1 / 16, 1 / 8, 1 / 4, 3 / 8, 0.5, 0.75)  # Cycles per pixel.
BLOCK = 128


def generate(G: torch.nn.Module, z: torch.Tensor, *, noise_mode: str = "random",
             canvas: bool = True) -> torch.Tensor:
    """Float images in [-1, 1] for ``z``; ``canvas=False`` paints without the texture."""
    synthesis = G.synthesis
    keep = synthesis.canvas_channels
    torch.manual_seed(0)  # The noise inputs, the same for every variant.
    try:
        if not canvas:
            synthesis.canvas_channels = 0  # SynthesisNetwork.forward skips the texture.
        with torch.no_grad():
            return torch.cat([G(z[i : i + BLOCK], None, noise_mode=noise_mode)
                              for i in range(0, len(z), BLOCK)])
    finally:
        synthesis.canvas_channels = keep


def band_power(images: torch.Tensor) -> list[float]:
    """Mean power per band of spatial frequency (``BANDS``), each image's mean removed."""
    x = images.float()
    x = x - x.mean(dim=(2, 3), keepdim=True)
    power = torch.fft.rfft2(x, norm="ortho").abs().square().mean(dim=(0, 1))  # [H, W/2+1]
    fy = torch.fft.fftfreq(x.shape[2]).abs()[:, None]
    fx = torch.fft.rfftfreq(x.shape[3])[None, :]
    radius = torch.sqrt(fy**2 + fx**2)
    return [power[(radius >= lo) & (radius < hi)].mean().item()
            for lo, hi in pairwise(BANDS)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", default=str(Path(DEMO_MODEL) / "generator"))
    parser.add_argument("--data", required=True, help="tile store of the real paintings")
    parser.add_argument("--num", type=int, default=2048, help="images per set")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    tiles = ArtTiles(args.data)
    if len(tiles) < 2 * args.num:
        parser.error(f"--data holds {len(tiles)} tiles; two sets of --num {args.num} need "
                     f"{2 * args.num}.")
    real = tiles.gather(np.arange(args.num))
    real_b = tiles.gather(np.arange(args.num, 2 * args.num))
    G = load_network(args.generator, "G_ema").eval().requires_grad_(False)
    if G.img_resolution != tiles.img_resolution:
        parser.error(f"the generator paints {G.img_resolution} px, --data holds "
                     f"{tiles.img_resolution} px tiles.")
    z = torch.randn(args.num, G.z_dim, generator=torch.Generator().manual_seed(args.seed))
    variants = {"floor": real_b, "as_trained": generate(G, z),
                "noise_const": generate(G, z, noise_mode="const"),
                "noise_none": generate(G, z, noise_mode="none")}
    if G.synthesis.canvas_channels:
        variants["no_canvas"] = generate(G, z, canvas=False)
    result: dict = {"benchmark": "painter_parts", "generator": args.generator,
                    "data": args.data, "num": args.num}
    swds = {name: sliced_wasserstein(real, images, generator=args.seed + 1)["swd_levels"]
            for name, images in variants.items()}
    floor = swds["floor"]
    for name, swd in swds.items():
        result[name] = {"swd": [round(v, 1) for v in swd],
                        "ratio": [round(v / f, 2) for v, f in zip(swd, floor, strict=True)]}
    real_power = band_power(real)
    result["bands_cycles_per_px"] = [round(b, 3) for b in BANDS]
    result["power_ratio"] = [round(f / r, 2) for f, r in
                             zip(band_power(variants["as_trained"]), real_power, strict=True)]
    if "D" in read_config(args.generator)["networks"]:
        D = load_network(args.generator, "D").float().eval()
        with torch.no_grad():
            scores = {name: torch.cat([D(variants[name][i : i + BLOCK], None)
                                       for i in range(0, args.num, BLOCK)]).mean().item()
                      for name in ("as_trained", "no_canvas") if name in variants}
            scores["real"] = torch.cat([D(real[i : i + BLOCK], None)
                                        for i in range(0, args.num, BLOCK)]).mean().item()
        result["d_score"] = {k: round(v, 3) for k, v in scores.items()}
    result["seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
