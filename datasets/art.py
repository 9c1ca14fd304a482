"""Art tiles: turn an artist's messy folder into a fast, reproducible training store.

``python -m datasets.art build SRC OUT`` walks ``SRC``, reads every image it can (see
:mod:`datasets.imageio` for formats, orientation, colour and safety), drops what it must with
a reason (bad files, too small, duplicates, curation lists) and cuts the rest into square
``uint8`` tiles in three modes:

- ``random-crop`` (default): ``--crops-per-image`` crops of ``--size`` px at random places,
  at native resolution or, with ``--scale-range LO,HI``, of ``size * k`` source pixels with
  ``k`` log-uniform in ``[LO, HI]``, downsampled. This is how the EEG-conditioned StyleGAN
  seed cut 160 works into 16,000 random 512 px crops.
- ``pad``: the whole work, padded to a square with ``--background`` and resized (the
  seeds' way for small collections: no cropping).
- ``center-crop``: the largest centred square, resized.

Transparency is composited onto ``--background`` (white by default). Near-blank tiles
(at least ``--blank-fraction`` of the pixels within ``--blank-tolerance`` levels of the tile's
median colour: the empty background around a portrait) are skipped unless ``--keep-blank``,
and counted in ``report.json`` either way. The summary warns when random crops at the works'
own resolution see less than a quarter of a work's shorter side (fragments), and suggests
``--scale-range`` or ``--mode pad``.

Crop positions come from a generator seeded by ``--seed`` and the file's path relative to
``SRC``, so a build is reproducible, independent of the number of worker processes, and
adding one image does not move the crops of the others.

Where things live: :mod:`datasets.art_build` builds (``build``, ``ArtBuildConfig``),
:mod:`datasets.art_store` holds the on-disk format (``TileStoreWriter``, ``TileStore``),
:mod:`datasets.imageio` reads image files. This module is the public face: the command line,
``export``, ``info``, and the torch :class:`ArtTiles` dataset, whose
:meth:`ArtTiles.sample_batch` gathers training batches straight from the memory maps.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image

from datasets.art_build import (
    LANCZOS,
    REDUCING_GAP,
    ArtBuildConfig,
    Progress,
    build,
    ordered_map,
    process_pool,
    resolve_jobs,
)
from datasets.art_store import TileStore, TileStoreWriter
from datasets.imageio import DEFAULT_MAX_PIXELS
from neuropaint.atomic import atomic_path
from neuropaint.logs import run_cli, setup_logging
from neuropaint.validate import NeuropaintError

__all__ = [
    "ArtBuildConfig",
    "ArtTiles",
    "TileStore",
    "TileStoreWriter",
    "build",
    "contact_sheet",
    "export",
    "parse_scale_range",
    "summarize",
]


# --------------------------------------------------------------------------------------------
# Reading: the torch dataset
# --------------------------------------------------------------------------------------------
def _to_tensor(tiles: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """``uint8 [n, H, W, 3]`` -> ``[n, 3, H, W]``: float in [-1, 1] (0 -> -1, 255 -> 1), or
    the uint8 values themselves (``dtype=torch.uint8``: 4x less to copy to a GPU).

    numpy, single-threaded, does the conversion: measured 3x faster here than torch's strided
    uint8->float copy, whose thread pool only adds overhead on a small machine.
    """
    chw = tiles.transpose(0, 3, 1, 2)  # [n, 3, H, W], a strided view
    if dtype == torch.uint8:
        return torch.from_numpy(np.ascontiguousarray(chw))
    if dtype != torch.float32:
        raise NeuropaintError(f"'dtype' must be torch.float32 or torch.uint8, got {dtype}.")
    out = np.empty(chw.shape, dtype=np.float32)
    np.divide(chw, np.float32(127.5), out=out, dtype=np.float32)
    out -= np.float32(1.0)
    return torch.from_numpy(out)


class ArtTiles(torch.utils.data.Dataset):
    """A tile store as a torch ``Dataset`` of ``float32 [3, H, W]`` images in ``[-1, 1]``.

    Parameters
    ----------
    store : path-like or TileStore
        A store made by ``python -m datasets.art build`` (or a :class:`TileStoreWriter`).
    xflip : bool
        Double the dataset with left-right mirrored copies: index ``i + len(store)`` is tile
        ``i`` mirrored (StyleGAN's ``--mirror``).

    Notes
    -----
    Tiles come straight from the memory-mapped shards: no image decoding at training time.
    :meth:`sample_batch` and :meth:`iter_batches` read a whole batch with one fancy index per
    shard and hand it over without further copies; they are the fast path for training. A
    ``DataLoader`` also reads batches in one go (``__getitems__``), but its default collate
    then stacks them again.
    """

    def __init__(self, store: str | os.PathLike | TileStore, *, xflip: bool = False):
        self.store = store if isinstance(store, TileStore) else TileStore(store)
        self.xflip = bool(xflip)
        self._n_tiles = len(self.store)
        if self._n_tiles == 0:
            raise NeuropaintError(f"tile store '{self.store.path}' holds no tiles.")

    @property
    def img_resolution(self) -> int:
        return self.store.size

    @property
    def img_channels(self) -> int:
        return 3

    def __len__(self) -> int:
        return self._n_tiles * (2 if self.xflip else 1)

    def __getitem__(self, index: int) -> torch.Tensor:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} images")
        return self.gather([index % n])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[torch.Tensor]:
        return list(self.gather(indices).unbind(0))

    def gather(
        self,
        indices: Sequence[int] | np.ndarray | torch.Tensor,
        *,
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """Images ``indices`` as one ``[n, 3, H, W]`` batch: float32 in ``[-1, 1]``, or with
        ``dtype=torch.uint8`` the raw 0-255 values (convert on the GPU: less to copy)."""
        if isinstance(indices, torch.Tensor):
            indices = indices.cpu().numpy()
        indices = np.asarray(indices, dtype=np.int64).ravel()
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"indices must lie in [0, {len(self)})")
        tiles = self.store.gather(indices % self._n_tiles)  # [n, H, W, 3]
        flipped = indices >= self._n_tiles
        if flipped.any():
            tiles[flipped] = tiles[flipped][:, :, ::-1]
        return _to_tensor(tiles, dtype)

    def sample_batch(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        *,
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """``batch_size`` random images (with replacement) as ``[N, 3, H, W]``; see
        :meth:`gather` for ``dtype``."""
        indices = torch.randint(len(self), (int(batch_size),), generator=generator)
        return self.gather(indices, dtype=dtype)

    def iter_batches(
        self,
        batch_size: int,
        *,
        generator: torch.Generator | None = None,
        shuffle: bool = True,
        drop_last: bool = False,
        dtype: torch.dtype = torch.float32,
    ) -> Iterator[torch.Tensor]:
        """One epoch in batches (shuffled with ``generator`` unless ``shuffle=False``)."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        stop = n - n % batch_size if drop_last else n
        for begin in range(0, stop, batch_size):
            yield self.gather(order[begin : begin + batch_size], dtype=dtype)


# --------------------------------------------------------------------------------------------
# Export and info
# --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=4)
def _cached_store(path: Path) -> TileStore:
    return TileStore(path)  # One manifest parse per export worker, not one per chunk.


def _export_chunk(args: tuple[Path, Path, list[int], int]) -> int:
    store_path, out_dir, indices, width = args
    store = _cached_store(store_path)
    for i in indices:
        name = f"{i:0{width}d}.png"
        tmp = out_dir / f".{name}.tmp"
        Image.fromarray(np.asarray(store[i])).save(tmp, format="PNG", compress_level=4)
        os.replace(tmp, out_dir / name)  # Never a half-written PNG under its final name.
    return len(indices)


def export(
    store: str | os.PathLike | TileStore,
    out_dir: str | os.PathLike,
    *,
    overwrite: bool = False,
    n_jobs: int | None = None,
    progress: Progress | None = None,
) -> list[Path]:
    """Write every tile as ``out_dir/NNNNNN.png`` plus ``index.csv`` (source, box, transform).

    ``out_dir`` must be new or empty, unless ``overwrite`` (files of the same names are
    replaced). Returns the PNG paths in tile order.
    """
    store = store if isinstance(store, TileStore) else TileStore(store)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise NeuropaintError(f"'dir' exists and is not a folder: '{out_dir}'.")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise NeuropaintError(
            f"'dir' folder '{out_dir}' is not empty (pass --overwrite to write into it)."
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    n = len(store)
    width = max(6, len(str(n - 1)))
    chunk = 64
    jobs = [(store.path, out_dir, list(range(b, min(b + chunk, n))), width)
            for b in range(0, n, chunk)]
    n_jobs = max(1, min(resolve_jobs(n_jobs), len(jobs)))
    done = 0
    with process_pool(n_jobs) as pool:
        for count in ordered_map(pool, _export_chunk, jobs, stage="export", progress=None,
                                  window=4 * n_jobs):
            done += count
            if progress is not None:
                progress("export", done, n)
    lines = ["file,source,left,top,right,bottom,transform"]
    for i, rec in enumerate(store.tiles):
        source = '"' + rec["source"].replace('"', '""') + '"'
        lines.append(f"{i:0{width}d}.png,{source},{','.join(map(str, rec['box']))},"
                     f"{rec['transform']}")
    with atomic_path(out_dir / "index.csv") as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [out_dir / f"{i:0{width}d}.png" for i in range(n)]


def summarize(store: str | os.PathLike | TileStore) -> dict[str, Any]:
    """Facts about a store: counts, size on disk, sources, build options and report."""
    store = store if isinstance(store, TileStore) else TileStore(store)
    per_source = Counter(t["source"] for t in store.tiles)
    counts = np.array(list(per_source.values()) or [0])
    nbytes = sum((store.path / s["file"]).stat().st_size for s in store.manifest["shards"])
    summary: dict[str, Any] = {
        "store": str(store.path),
        "format_version": store.manifest["format_version"],
        "created": store.manifest.get("created"),
        "tiles": len(store),
        "size": store.size,
        "shards": len(store.manifest["shards"]),
        "bytes": nbytes,
        "sources": len(per_source),
        "tiles_per_source": {"min": int(counts.min()), "median": float(np.median(counts)),
                             "max": int(counts.max())},
        "transforms": dict(Counter(t["transform"] for t in store.tiles)),
        "options": store.options,
    }
    report_file = store.path / "report.json"
    if report_file.is_file():
        with contextlib.suppress(json.JSONDecodeError, OSError):
            report = json.loads(report_file.read_text(encoding="utf-8"))
            summary["build"] = {
                "counts": report.get("counts"),
                "skipped_by_reason": report.get("skipped_by_reason"),
                "timing": report.get("timing"),
            }
    return summary


def contact_sheet(
    store: str | os.PathLike | TileStore,
    path: str | os.PathLike,
    *,
    count: int = 64,
    thumb: int = 128,
    gap: int = 4,
) -> Path:
    """Save a grid of ``count`` tiles spread evenly over the store (so every source shows)."""
    store = store if isinstance(store, TileStore) else TileStore(store)
    n = len(store)
    picks = np.unique(np.linspace(0, n - 1, min(count, n)).round().astype(np.int64))
    cols = math.ceil(math.sqrt(len(picks)))
    rows = math.ceil(len(picks) / cols)
    sheet = Image.new("RGB", (cols * (thumb + gap) + gap, rows * (thumb + gap) + gap),
                      (40, 40, 40))
    for k, tile in enumerate(store.gather(picks)):
        image = Image.fromarray(tile)
        if image.width != thumb:
            image = image.resize((thumb, thumb), LANCZOS, reducing_gap=REDUCING_GAP)
        row, col = divmod(k, cols)
        sheet.paste(image, (gap + col * (thumb + gap), gap + row * (thumb + gap)))
    path = Path(path)
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")
    return path


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------
class _Bars:
    """tqdm progress bars per stage, for the CLI only."""

    LABELS: ClassVar[dict[str, str]] = {
        "scan": "checking images", "tile": "cutting tiles", "export": "writing PNGs",
    }

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bars: dict[str, Any] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        bar = self.bars.get(stage)
        if bar is None:
            unit = "tile" if stage == "export" else "img"
            bar = self.bars[stage] = tqdm(total=total, desc=self.LABELS.get(stage, stage),
                                          unit=unit, dynamic_ncols=True)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


@contextlib.contextmanager
def _progress_bars(enabled: bool) -> Iterator[_Bars]:
    from tqdm.contrib.logging import logging_redirect_tqdm

    bars = _Bars(enabled)
    with logging_redirect_tqdm():
        try:
            yield bars
        finally:
            bars.close()


def _cmd_build(args: argparse.Namespace) -> int:
    config = {
        "mode": args.mode,
        "size": args.size,
        "crops_per_image": args.crops_per_image,
        "seed": args.seed,
        "scale_range": args.scale_range,
        "min_side": args.min_side,
        "augment": args.augment or [],
        "background": args.background,
        "keep": args.keep,
        "remove": args.remove,
        "dedupe": args.dedupe,
        "near_threshold": args.near_threshold,
        "max_pixels": max(1, round(args.max_megapixels * 1e6)),
        "n_jobs": args.n_jobs,
        "tiles_per_shard": args.tiles_per_shard,
        "overwrite": args.overwrite,
        "keep_blank": args.keep_blank,
        "blank_tolerance": args.blank_tolerance,
        "blank_fraction": args.blank_fraction,
    }
    with _progress_bars(not args.quiet) as bars:
        report = build(args.src, args.out, config, progress=bars)
    counts = report["counts"]
    print(
        f"wrote {counts['tiles']} tiles of {args.size} px from {counts['images_used']} of "
        f"{counts['images']} images to {args.out} in {report['timing']['total_s']:.1f} s "
        f"({report['timing']['tiles_per_s']:.0f} tiles/s)"
    )
    if report["skipped"]:
        print(f"skipped {counts['skipped']}: " + ", ".join(
            f"{n} {reason}" for reason, n in report["skipped_by_reason"].items()))
        for item in report["skipped"][:10]:
            print(f"  {item['file']}: {item['reason']}: {item['detail']}")
        if len(report["skipped"]) > 10:
            print(f"  ... and {len(report['skipped']) - 10} more")
    if report["duplicates"]:
        print(f"duplicates: {counts['duplicates']} found, {counts['duplicates_dropped']} dropped")
        for dup in report["duplicates"][:10]:
            state = "dropped" if dup["dropped"] else "kept"
            print(f"  {dup['file']} ~ {dup['duplicate_of']} ({dup['kind']}, distance "
                  f"{dup['distance']}, {state})")
    if report["upscaled"]:
        print(f"upscaled (smaller than {args.size} px): {len(report['upscaled'])} images")
    blank = counts["blank_tiles"]
    if blank:
        share = blank / (counts["tiles"] + counts["blank_skipped"])
        state = "kept (--keep-blank)" if args.keep_blank else "skipped (--keep-blank keeps them)"
        print(f"near-blank tiles: {blank} of {counts['tiles'] + counts['blank_skipped']} "
              f"({share:.0%}) were almost one colour, {state}")
    for line in report["warnings"]:
        print(f"warning: {line}")
    print(f"report: {Path(args.out) / 'report.json'}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    with _progress_bars(not args.quiet) as bars:
        files = export(args.store, args.dir, overwrite=args.overwrite, n_jobs=args.n_jobs,
                       progress=bars)
    print(f"wrote {len(files)} PNGs and index.csv to {args.dir}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    store = TileStore(args.store)
    summary = summarize(store)
    sheet = None
    if not args.no_sheet:
        sheet = Path(args.sheet) if args.sheet else store.path / "contact_sheet.png"
        contact_sheet(store, sheet, count=args.count, thumb=args.thumb)
        summary["contact_sheet"] = str(sheet)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    per = summary["tiles_per_source"]
    options = summary["options"]
    lines = [
        f"store      {summary['store']}",
        f"tiles      {summary['tiles']} x {summary['size']}x{summary['size']} RGB uint8 in "
        f"{summary['shards']} shard(s), {summary['bytes'] / 2**20:.1f} MiB",
        f"sources    {summary['sources']} images, {per['min']}-{per['max']} tiles each "
        f"(median {per['median']:g})",
        f"transforms {', '.join(f'{k}: {v}' for k, v in summary['transforms'].items())}",
        f"built      {summary['created']}  mode={options.get('mode', '?')} "
        f"seed={options.get('seed', '?')}",
    ]
    build_info = summary.get("build")
    if build_info and build_info.get("counts"):
        c = build_info["counts"]
        skipped = build_info.get("skipped_by_reason") or {}
        lines.append(
            f"build      {c.get('images')} images found, {c.get('images_used')} used, "
            f"{c.get('skipped')} skipped"
            + (f" ({', '.join(f'{n} {r}' for r, n in skipped.items())})" if skipped else "")
            + f", {c.get('duplicates_dropped')} duplicates dropped"
            + (f", {c['blank_tiles']} near-blank tiles "
               f"{'skipped' if c.get('blank_skipped') else 'kept'}"
               if c.get("blank_tiles") else "")
        )
    if sheet is not None:
        lines.append(f"sheet      {sheet}")
    print("\n".join(lines))
    return 0


def parse_scale_range(text: str) -> tuple[float, float]:
    """``LO,HI`` (or one number) as argparse's ``type=`` for ``--scale-range``."""
    parts = text.split(",")
    try:
        if len(parts) == 1:
            return (float(parts[0]), float(parts[0]))
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI such as 1,4, got {text!r}") from None
    return (lo, hi)


def _augment_list(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m datasets.art",
        description="Art tile stores: cut a folder of artworks into square training tiles.",
        epilog="Run 'python -m datasets.art COMMAND --help' for the options of each command.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true",
                        help="log progress details (every skipped file)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    b = sub.add_parser(
        "build",
        parents=[common],
        help="build a tile store from a folder of images",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Build a tile store OUT from the images under SRC (searched recursively).\n"
        "Bad files, too-small images and duplicates are skipped and listed in OUT/report.json.",
        epilog="examples:\n"
        "  python -m datasets.art build art/ tiles512/                      # 100 random crops\n"
        "  python -m datasets.art build art/ tiles256/ --size 256 --scale-range 1,4\n"
        "  python -m datasets.art build art/ sq512/ --mode pad --augment rot90,flip\n"
        "  python -m datasets.art build art/ t/ --remove rejects.txt --dedupe near\n"
        "  python -m datasets.art build portraits/ p64/ --size 64 --mode pad --background black\n"
        "keep/remove lists: one path or glob per line, relative to SRC ('#' starts a comment);\n"
        "a name without '/' matches that file name in any folder.",
    )
    b.add_argument("src", metavar="SRC", help="folder of images (JPEG, PNG, WebP, TIFF, BMP, GIF)")
    b.add_argument("out", metavar="OUT", help="store folder to create")
    b.add_argument("--mode", choices=["random-crop", "pad", "center-crop"], default="random-crop",
                   help="random-crop (default): random squares; pad: whole work padded to a "
                   "square; center-crop: largest centred square")
    b.add_argument("--size", type=int, default=512, help="tile side in px (default 512)")
    b.add_argument("--crops-per-image", type=int, default=100, metavar="N",
                   help="random crops per image (random-crop; default 100)")
    b.add_argument("--seed", type=int, default=0, help="seed of crop positions (default 0)")
    b.add_argument("--scale-range", type=parse_scale_range, metavar="LO,HI",
                   help="random-crop: crop size*k source px, k log-uniform in [LO,HI] (LO >= 1),"
                   " downsampled to --size; default: native pixels")
    b.add_argument("--min-side", type=int, metavar="PX",
                   help="drop images whose shorter side is below PX (default: --size for the "
                   "crop modes, none for pad)")
    b.add_argument("--augment", type=_augment_list, metavar="LIST",
                   help="comma list of rot90 (x4), rot180 (x2), flip (x2), e.g. rot90,flip (x8)")
    b.add_argument("--background", default="white", metavar="COLOUR",
                   help="colour transparent areas are composited onto, and of pad borders: "
                   "a name (white, black, ...), #rrggbb or r,g,b (default white)")
    b.add_argument("--keep-blank", action="store_true",
                   help="keep near-blank tiles (almost one colour, e.g. a transparent "
                   "background); by default they are skipped, and counted either way")
    b.add_argument("--blank-tolerance", type=int, default=8, metavar="LEVELS",
                   help="a pixel matches the tile's median colour within this many levels "
                   "(0-255) in each of R, G, B (default 8)")
    b.add_argument("--blank-fraction", type=float, default=0.98, metavar="F",
                   help="a tile is near-blank when this share of its pixels match its median "
                   "colour (default 0.98)")
    b.add_argument("--keep", type=Path, metavar="FILE", help="use only the images listed")
    b.add_argument("--remove", type=Path, metavar="FILE", help="leave out the images listed")
    b.add_argument("--dedupe", choices=["none", "exact", "near"], default="exact",
                   help="drop exact copies (default), also near copies, or none; all are "
                   "reported either way")
    b.add_argument("--near-threshold", type=int, default=8, metavar="BITS",
                   help="pHash Hamming distance (of 64 bits) for near copies (default 8)")
    b.add_argument("--max-megapixels", type=float, default=DEFAULT_MAX_PIXELS / 1e6,
                   metavar="MP", help="skip larger images unread: decompression-bomb guard "
                   f"(default {DEFAULT_MAX_PIXELS / 1e6:g})")
    b.add_argument("--n-jobs", type=int, metavar="N",
                   help="worker processes (default: all cores)")
    b.add_argument("--tiles-per-shard", type=int, metavar="N",
                   help="tiles per .npy shard (default: about 512 MiB each)")
    b.add_argument("--overwrite", action="store_true", help="replace OUT if it is a tile store")
    b.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    b.set_defaults(handler=_cmd_build)

    e = sub.add_parser("export", parents=[common], help="write a store's tiles back as PNG files",
                       description="Write every tile of STORE as DIR/NNNNNN.png, plus "
                       "DIR/index.csv naming each tile's source file, crop box and transform.")
    e.add_argument("store", metavar="STORE", help="tile store folder")
    e.add_argument("dir", metavar="DIR", help="output folder (new or empty)")
    e.add_argument("--overwrite", action="store_true", help="write into a non-empty DIR")
    e.add_argument("--n-jobs", type=int, metavar="N", help="worker processes (default: all)")
    e.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    e.set_defaults(handler=_cmd_export)

    i = sub.add_parser("info", parents=[common], help="summarise a store and draw a contact sheet",
                       description="Print what a store holds and how it was built, and write "
                       "a contact sheet PNG of tiles spread evenly over it.")
    i.add_argument("store", metavar="STORE", help="tile store folder")
    i.add_argument("--sheet", metavar="PNG",
                   help="contact sheet path (default: STORE/contact_sheet.png)")
    i.add_argument("--no-sheet", action="store_true", help="do not write a contact sheet")
    i.add_argument("--count", type=int, default=64, help="tiles on the sheet (default 64)")
    i.add_argument("--thumb", type=int, default=128, help="thumbnail side in px (default 128)")
    i.add_argument("--json", action="store_true", help="print the summary as JSON")
    i.set_defaults(handler=_cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m datasets.art {build,export,info} ...``."""
    args = _parser().parse_args(argv)
    setup_logging("INFO" if args.verbose else "WARNING")
    return args.handler(args)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
