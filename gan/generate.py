"""``python -m gan.generate``: images, grids, interpolation videos and style-mixing grids.

Examples
--------
python -m gan.generate runs/cpu64 --seeds 0-15 --trunc 0.7 --out out/      # images + grid
python -m gan.generate runs/cpu64 --seeds 3,7,12 --interpolate --format gif --out out/
python -m gan.generate runs/cpu64 --mix --rows 0-3 --cols 10-14 --out out/
python -m gan.generate runs/cpu64 --w latents.npy --out out/
python -m gan.generate runs/cpu64 --collection 100 --trunc 0.7 --out drops/first  # unique set
python -m gan.generate runs/cpu64 --collection 200 --trunc 0.7 --out drops/first --extend
python -m gan.generate runs/cpu64 --collection-dir drops/first --interpolate-items 3,7,12 \\
    --out out/                                     # a loop through chosen items of a collection

Interpolation goes seed to seed and loops: spherical in Z (slerp, since Gaussian latents live
near a sphere) or linear in W (``--space w``, after truncation), as the StyleGAN papers do.
The style-mixing grid follows the StyleGAN paper's figure: each cell takes the row seed's
styles and replaces the coarse (4-8 px), middle (16-32 px) or fine (64 px and up) ones with
the column seed's. Each seed's "validity" is printed, as the seed projects did for their
DCGAN: the snapshot's discriminator D's score, sigmoid(D(image)) in (0, 1), of the image being
a real tile. A discriminator late in training scores most generated images low, so read the
ranking of the seeds, not the value. The grid scales each image up by a whole factor (nearest
neighbour: no invented detail) to at least ``--grid-cell`` pixels, so a 16-image grid of a
64 px generator is 512 px wide rather than 256.

``--collection N`` writes N images guaranteed unique (no repeated seed, no near-duplicate in W
or in pixels), each with token metadata, plus a manifest and a contact sheet; see
:mod:`gan.collection` for the rules and the folder layout.
"""

from __future__ import annotations

import argparse
import logging
import math
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gan.checkpoint import load_generator, load_network, resolve_snapshot, weights_hash
from gan.images import image_grid, to_uint8
from neuropaint.atomic import atomic_path
from neuropaint.logs import run_cli, setup_logging
from neuropaint.validate import NeuropaintError

logger = logging.getLogger(__name__)

FORMATS = ("gif", "webp", "frames", "mp4")


def parse_seeds(text: str) -> list[int]:
    """'0-3,7,10-11' -> [0, 1, 2, 3, 7, 10, 11]."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                low, high = (int(x) for x in part.split("-", 1))
                if high < low:
                    raise ValueError
                seeds.extend(range(low, high + 1))
            elif part:
                seeds.append(int(part))
    except ValueError:
        raise NeuropaintError(f"'--seeds' must look like '0-15' or '1,5,9', got {text!r}.") \
            from None
    if not seeds or min(seeds) < 0:
        raise NeuropaintError(f"'--seeds' must name non-negative seeds, got {text!r}.")
    return seeds


def seed_z(G: torch.nn.Module, seeds: Sequence[int]) -> torch.Tensor:
    """The latent of each seed: the same seed always gives the same z (float32 [N, z_dim])."""
    return torch.from_numpy(np.stack([
        np.random.RandomState(seed).standard_normal(G.z_dim) for seed in seeds
    ]).astype(np.float32))


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation between latents (shape [..., D])."""
    a_n = a / a.norm(dim=-1, keepdim=True)
    b_n = b / b.norm(dim=-1, keepdim=True)
    omega = torch.arccos((a_n * b_n).sum(-1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so) * a + (torch.sin(t * omega) / so) * b


@torch.no_grad()
def render_ws(G: torch.nn.Module, ws: torch.Tensor, *, batch: int = 8,
              noise_mode: str = "const") -> np.ndarray:
    """uint8 images [N, H, W, 3] from ws [N, num_ws, w_dim]."""
    return np.concatenate([to_uint8(G.synthesis(ws[i : i + batch], noise_mode=noise_mode))
                           for i in range(0, len(ws), batch)])


@torch.no_grad()
def render_z(G: torch.nn.Module, z: torch.Tensor, *, truncation_psi: float = 1.0,
             batch: int = 8, noise_mode: str = "const") -> np.ndarray:
    """uint8 images [N, H, W, 3] from z [N, z_dim]."""
    out = []
    for i in range(0, len(z), batch):
        out.append(to_uint8(G(z[i : i + batch], None, truncation_psi=truncation_psi,
                              noise_mode=noise_mode)))
    return np.concatenate(out)


def interpolation_frames(G: torch.nn.Module, seeds: Sequence[int], *, frames: int = 30,
                         space: str = "z", truncation_psi: float = 1.0) -> np.ndarray:
    """A looping walk through the seeds' latents: ``frames`` frames per transition."""
    if len(seeds) < 2:
        raise NeuropaintError("interpolation needs at least 2 seeds, e.g. --seeds 1,2,3.")
    z = seed_z(G, seeds)
    if space == "w":
        if not hasattr(G, "mapping"):
            raise NeuropaintError("--space w needs a StyleGAN2 generator; this one has no W.")
        with torch.no_grad():
            ws = G.mapping(z, None, truncation_psi=truncation_psi)  # [S, num_ws, w_dim]
        return render_ws(G, w_loop(ws, frames))
    path = torch.stack([slerp(z[a], z[b], t) for a, b, t in _loop_steps(len(seeds), frames)])
    return render_z(G, path, truncation_psi=truncation_psi)


def _loop_steps(n_keys: int, frames: int) -> list[tuple[int, int, float]]:
    """(from key, to key, t) for every frame of a loop through ``n_keys`` keys and back."""
    keys = [*range(n_keys), 0]  # loop back to the first key
    return [(keys[i], keys[i + 1], t / frames) for i in range(n_keys) for t in range(frames)]


def w_loop(ws: torch.Tensor, frames: int) -> torch.Tensor:
    """A looping linear path through key ws [K, num_ws, w_dim]: [K * frames, num_ws, w_dim]."""
    return torch.stack([ws[a].lerp(ws[b], t) for a, b, t in _loop_steps(len(ws), frames)])


LAYER_GROUPS = {"coarse": (4, 8), "middle": (16, 32), "fine": (64, 1 << 20)}


def mixing_grid(G: torch.nn.Module, row_seeds: Sequence[int], col_seeds: Sequence[int], *,
                layers: str = "coarse", truncation_psi: float = 1.0) -> np.ndarray:
    """The StyleGAN paper's style-mixing figure as one uint8 picture."""
    if not hasattr(G, "mapping"):
        raise NeuropaintError("--mix needs a StyleGAN2 generator; this one has no W space.")
    if layers not in LAYER_GROUPS:
        raise NeuropaintError(f"'--layers' must be one of {', '.join(LAYER_GROUPS)}, got "
                              f"{layers!r}.")
    low, high = LAYER_GROUPS[layers]
    # ws index i feeds resolution 4 * 2 ** ((i + 1) // 2) (two per block, plus toRGB).
    res_of_ws = [4 * 2 ** ((i + 1) // 2) for i in range(G.num_ws)]
    picked = torch.tensor([low <= r <= high for r in res_of_ws])
    with torch.no_grad():
        row_ws = G.mapping(seed_z(G, row_seeds), None, truncation_psi=truncation_psi)
        col_ws = G.mapping(seed_z(G, col_seeds), None, truncation_psi=truncation_psi)
    row_img = render_ws(G, row_ws)
    col_img = render_ws(G, col_ws)
    h, w = row_img.shape[1:3]
    canvas = np.full(((len(row_seeds) + 1) * h, (len(col_seeds) + 1) * w, 3), 255, np.uint8)
    for j, img in enumerate(col_img):
        canvas[:h, (j + 1) * w : (j + 2) * w] = img
    for i, img in enumerate(row_img):
        canvas[(i + 1) * h : (i + 2) * h, :w] = img
        mixed = row_ws[i : i + 1].repeat(len(col_seeds), 1, 1)
        mixed[:, picked] = col_ws[:, picked]
        for j, cell in enumerate(render_ws(G, mixed)):
            canvas[(i + 1) * h : (i + 2) * h, (j + 1) * w : (j + 2) * w] = cell
    return canvas


def save_png(image: np.ndarray, path: Path) -> Path:
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
    return path


def save_animation(frames: np.ndarray, out: Path, fmt: str, fps: float,
                   name: str = "interpolation") -> Path:
    """Frames as ``out/NAME.gif|webp|mp4`` (mp4 when ffmpeg is installed) or PNG files."""
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "frames":
        for i, frame in enumerate(frames):
            save_png(frame, out / f"frame{i:05d}.png")
        return out
    if fmt == "mp4":
        ffmpeg = shutil.which("ffmpeg")
        if ffmpeg is None:
            raise NeuropaintError("mp4 needs ffmpeg, which is not installed; use --format gif, "
                                  "webp or frames (or install ffmpeg).")
        path = out / f"{name}.mp4"
        h, w = frames.shape[1:3]
        with atomic_path(path) as tmp:
            cmd = [ffmpeg, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
                   "-s", f"{w}x{h}", "-r", str(fps), "-i", "-", "-pix_fmt", "yuv420p",
                   "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", str(tmp)]
            subprocess.run(cmd, input=frames.tobytes(), check=True)
        return path
    path = out / f"{name}.{fmt}"
    images = [Image.fromarray(f) for f in frames]
    with atomic_path(path) as tmp:
        images[0].save(tmp, format=fmt.upper(), save_all=True, append_images=images[1:],
                       duration=max(1, round(1000 / fps)), loop=0)
    return path


def upscale_cells(images: np.ndarray, cell: int) -> np.ndarray:
    """uint8 images [N, H, W, 3] scaled up by the smallest whole factor reaching ``cell`` px.

    Nearest neighbour (each pixel becomes a block), so the grid shows what the generator made
    and nothing more; images already that large are left alone.
    """
    factor = max(1, math.ceil(cell / max(images.shape[1:3])))
    if factor == 1:
        return images
    return images.repeat(factor, axis=1).repeat(factor, axis=2)  # [N, H*f, W*f, 3]


VALIDITY_NOTE = ("validity: the discriminator D's score, sigmoid(D(image)) in (0, 1), that the "
                 "image is a real tile; a trained D scores most generated images low, so "
                 "compare seeds by it rather than reading the value alone")


@torch.no_grad()
def validity(D: torch.nn.Module, images: np.ndarray) -> np.ndarray:
    """The discriminator's sigmoid score of uint8 images (the seeds' "validity")."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    return torch.sigmoid(D(x, None)).flatten().numpy()


def _collection(args: argparse.Namespace, out: Path) -> int:
    from gan.collection import collection_config, export_collection  # it imports this module

    cfg = collection_config(count=args.collection, truncation_psi=args.trunc,
                            min_distance=args.min_distance, pixel_distance=args.pixel_distance,
                            first_seed=args.first_seed, max_candidates=args.max_candidates,
                            name=args.name, description=args.description)
    manifest = export_collection(args.checkpoint, out, cfg, extend=args.extend,
                                 ema=not args.no_ema)
    tried = manifest["candidates"]
    print(f"collection: {len(manifest['items'])} unique images in {out} ({tried['tried']} "
          f"candidates tried; {tried['rejected_w']} too close in W, "
          f"{tried['rejected_pixels']} in pixels)")
    return 0


def _interpolate_items(args: argparse.Namespace, out: Path) -> int:
    from gan.collection import interpolate_items, parse_items  # it imports this module

    if args.collection_dir is None or args.interpolate_items is None:
        raise NeuropaintError("--collection-dir and --interpolate-items go together, e.g. "
                              "--collection-dir drops/first --interpolate-items 3,7,12.")
    if args.frames < 1:
        raise NeuropaintError(f"'--frames' must be at least 1, got {args.frames}.")
    items = parse_items(args.interpolate_items)
    G = load_generator(args.checkpoint, ema=not args.no_ema)
    sha = weights_hash(resolve_snapshot(args.checkpoint), "G" if args.no_ema else "G_ema")
    frames = interpolate_items(G, args.collection_dir, items, frames=args.frames,
                               generator_sha256=sha)
    name = "items_" + "-".join(str(i) for i in items)
    print(f"interpolation: {save_animation(frames, out, args.format, args.fps, name=name)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gan.generate",
        description="Render images, grids, interpolations and style-mixing grids from a "
        "trained generator (a snapshot folder or a run folder).",
    )
    parser.add_argument("checkpoint", help="snapshot folder, or a run folder (its latest)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--seeds", default="0-15",
                        help="e.g. 0-15 or 1,5,9 (default: %(default)s)")
    parser.add_argument("--trunc", type=float, default=1.0,
                        help="truncation psi: 1 samples the whole learnt distribution, lower "
                        "values (0.5-0.8) pull towards the average image, more typical and "
                        "less varied (default: %(default)s)")
    parser.add_argument("--grid-cell", type=int, default=128, metavar="PX",
                        help="grid.png shows each image at least this many pixels wide, "
                        "scaled up by a whole factor (nearest neighbour); 0: as generated "
                        "(default: %(default)s)")
    parser.add_argument("--no-ema", action="store_true", help="use G instead of G_ema")
    parser.add_argument("--interpolate", action="store_true", help="seed-to-seed walk")
    parser.add_argument("--space", choices=["z", "w"], default="z",
                        help="interpolate in Z (slerp) or W (lerp) (default: %(default)s)")
    parser.add_argument("--frames", type=int, default=30,
                        help="with --interpolate or --interpolate-items: frames per "
                        "transition from one seed (or item) to the next; the loop has "
                        "seeds x frames frames (default: %(default)s)")
    parser.add_argument("--fps", type=int, default=15,
                        help="frames per second of the animation (default: %(default)s)")
    parser.add_argument("--format", choices=FORMATS, default="gif",
                        help="animation format: gif, webp, frames (PNG files) or mp4 (needs "
                        "ffmpeg) (default: %(default)s)")
    parser.add_argument("--mix", action="store_true", help="style-mixing grid")
    parser.add_argument("--rows", default="0-3",
                        help="row seeds of the mixing grid (default: %(default)s)")
    parser.add_argument("--cols", default="10-14",
                        help="column seeds of the mixing grid (default: %(default)s)")
    parser.add_argument("--layers", default="coarse", choices=list(LAYER_GROUPS),
                        help="which styles the column seeds give (default: %(default)s)")
    parser.add_argument("--w", type=Path, help=".npy of ws [N, num_ws, w_dim] or w [N, w_dim]")
    group = parser.add_argument_group(
        "unique collections", "--collection N writes N unique images with token metadata to "
        "--out (see gan.collection); --collection-dir with --interpolate-items renders a loop "
        "in W through chosen items of a collection into --out")
    group.add_argument("--collection", type=int, metavar="N", help="number of unique images")
    group.add_argument("--min-distance", type=float, default=0.25,
                       help="minimum W distance between items, as a fraction of the typical "
                       "distance between random images (default: 0.25)")
    group.add_argument("--pixel-distance", type=float, default=0.02,
                       help="minimum RMS difference of 16 px thumbnails, in [0, 1] "
                       "(default: 0.02)")
    group.add_argument("--first-seed", type=int, default=0,
                       help="first candidate seed (default: %(default)s)")
    group.add_argument("--max-candidates", type=int,
                       help="seeds to try at most (default: max(10000, 10 N))")
    group.add_argument("--name", default="neuropaint",
                       help="collection name: 'NAME #k' (default: %(default)s)")
    group.add_argument("--description", default="",
                       help="description of every item (default: none)")
    group.add_argument("--extend", action="store_true",
                       help="keep the collection in --out and add items up to N")
    group.add_argument("--collection-dir", type=Path, help="a collection folder")
    group.add_argument("--interpolate-items", metavar="K,K,...",
                       help="item numbers of --collection-dir to loop through, e.g. 3,7,12")
    args = parser.parse_args(argv)
    setup_logging("WARNING")
    out = Path(args.out)
    if args.collection is not None:
        return _collection(args, out)
    if args.collection_dir is not None or args.interpolate_items is not None:
        return _interpolate_items(args, out)
    G = load_generator(args.checkpoint, ema=not args.no_ema)

    if args.mix:
        picture = mixing_grid(G, parse_seeds(args.rows), parse_seeds(args.cols),
                              layers=args.layers, truncation_psi=args.trunc)
        print(f"mixing grid: {save_png(picture, out / f'mixing_{args.layers}.png')}")
        return 0
    if args.interpolate:
        if args.frames < 1:
            raise NeuropaintError(f"'--frames' must be at least 1, got {args.frames}.")
        frames = interpolation_frames(G, parse_seeds(args.seeds), frames=args.frames,
                                      space=args.space, truncation_psi=args.trunc)
        print(f"interpolation: {save_animation(frames, out, args.format, args.fps)}")
        return 0
    if args.w is not None:
        if not hasattr(G, "mapping"):
            raise NeuropaintError("--w needs a StyleGAN2 generator; this one has no W space.")
        try:
            w = torch.from_numpy(np.load(args.w, allow_pickle=False)).float()
        except (OSError, ValueError) as exc:
            raise NeuropaintError(f"cannot read {args.w} as a .npy array ({exc}).") from None
        if w.ndim == 2:
            w = w[:, None, :].repeat(1, G.num_ws, 1)
        if w.ndim != 3 or w.shape[1:] != (G.num_ws, G.w_dim):
            raise NeuropaintError(f"{args.w} must hold ws [N, {G.num_ws}, {G.w_dim}] or w "
                                  f"[N, {G.w_dim}], got {list(w.shape)}.")
        images = render_ws(G, w)
        for i, img in enumerate(images):
            save_png(img, out / f"w{i:04d}.png")
        save_png(image_grid(upscale_cells(images, args.grid_cell)), out / "grid.png")
        print(f"{len(images)} images from {args.w} -> {out}")
        return 0

    seeds = parse_seeds(args.seeds)
    images = render_z(G, seed_z(G, seeds), truncation_psi=args.trunc)
    scores = None
    try:
        scores = validity(load_network(args.checkpoint, "D"), images)
    except NeuropaintError:
        logger.info("no discriminator in %s: no validity scores", args.checkpoint)
    if scores is not None:
        print(VALIDITY_NOTE)
    for i, (seed, img) in enumerate(zip(seeds, images, strict=True)):
        save_png(img, out / f"seed{seed:04d}.png")
        if scores is not None:
            print(f"seed {seed}: validity {scores[i]:.3f}")
    grid = save_png(image_grid(upscale_cells(images, args.grid_cell),
                               cols=math.ceil(math.sqrt(len(images)))), out / "grid.png")
    print(f"{len(images)} images and {grid}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
