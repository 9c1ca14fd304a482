"""Building an art tile store: find, curate, check, deduplicate and cut a folder of artworks.

The engine behind ``python -m datasets.art build`` (see :mod:`datasets.art` for the command
and the modes). Two passes over the images, both in worker processes:

1. *scan*: every file is decoded once at reduced scale (:func:`datasets.imageio.probe`): a
   bad file is caught here with its reason, and its upright size, byte hash and perceptual
   hash decide what is used (duplicates, ``min_side``);
2. *tile*: each image that is used is decoded at the resolution its crops need (big JPEGs at
   1/2-1/8 scale when the crops are downsampled anyway), cut, and sent back; the main process
   adds the augmented copies and writes the store in source order.

Near-blank tiles (almost one colour: the transparent or empty background around a portrait)
are found per tile (:func:`near_blank`), counted in the report and, unless ``keep_blank``,
not written. Random crops much smaller than the works are reported as a warning.

Crop positions come from a generator seeded by the build seed and the file's path relative to
``src`` (:func:`image_rng`), and results are consumed in source order, so the store is the same
for any number of workers, and adding an image does not move the crops of the others.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fnmatch
import hashlib
import logging
import math
import multiprocessing
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from PIL import Image, ImageColor
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from datasets.art_store import TileStoreWriter, check_out_dir
from datasets.imageio import (
    DEFAULT_MAX_PIXELS,
    IMAGE_SUFFIXES,
    UNSUPPORTED_SUFFIXES,
    BadImage,
    Probe,
    decode,
    probe,
)
from neuropaint.validate import NeuropaintError, build_config

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]  # (stage, done, total); stages: scan, tile, export
LANCZOS = Image.Resampling.LANCZOS
REDUCING_GAP = 3.0  # PIL: box-reduce first, then Lanczos; >= 3 is indistinguishable from it.
_LOOKED_AT = IMAGE_SUFFIXES + tuple(UNSUPPORTED_SUFFIXES)  # Unsupported: reported, skipped.
_SKIP_DIRS = {"__MACOSX"}  # macOS zip residue: resource forks named like the images.
_BLANK_GRID = 64  # near_blank() looks at most at a 64x64 grid of each tile's pixels.
# A native-resolution random crop that sees less than this fraction of a work's shorter side
# is a fragment (a hand, a cloak): the build warns and suggests --scale-range or --mode pad.
SMALL_CROP = 0.25

Channel = Annotated[int, Field(ge=0, le=255)]


def parse_colour(value: object) -> tuple[int, int, int]:
    """A colour as a name ('white'), '#rrggbb', 'r,g,b' or a sequence of 3 ints -> RGB."""
    if isinstance(value, str):
        text = value.strip()
        if "," in text:
            parts = text.split(",")
            if len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
                raise ValueError(f"colour must be a name, #rrggbb or r,g,b, got {value!r}")
            return tuple(int(p) for p in parts)  # type: ignore[return-value]
        try:
            return tuple(ImageColor.getrgb(text)[:3])  # type: ignore[return-value]
        except ValueError:
            raise ValueError(f"unknown colour {value!r} (a name, #rrggbb or r,g,b)") from None
    return value  # type: ignore[return-value]


class ArtBuildConfig(BaseModel):
    """Settings of :func:`build` (``python -m datasets.art build``)."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["random-crop", "pad", "center-crop"] = Field(
        "random-crop",
        description="random-crop: random squares; pad: whole work padded to a square; "
        "center-crop: the largest centred square.",
    )
    size: int = Field(512, ge=8, description="Tile side in pixels.")
    crops_per_image: int = Field(
        100, ge=1, description="Random crops per source image (random-crop only)."
    )
    seed: int = Field(0, ge=0, description="Seed of the crop positions and scales.")
    scale_range: tuple[float, float] | None = Field(
        None,
        description="random-crop only: each crop covers size*k source pixels, k log-uniform "
        "in [lo, hi] (lo >= 1), then is downsampled to size; None: k = 1 (native pixels).",
    )
    min_side: int | None = Field(
        None,
        ge=1,
        description="Drop images whose shorter side is below this (px). None: the tile size "
        "for random-crop and center-crop, no limit for pad. Images kept below the tile size "
        "are upscaled and listed in the report.",
    )
    augment: list[Literal["rot90", "rot180", "flip"]] = Field(
        default_factory=list,
        description="Extra copies of every tile: rot90 adds 90/180/270 degree rotations "
        "(x4), rot180 adds the half turn (x2), flip adds the left-right mirror (x2).",
    )
    background: tuple[Channel, Channel, Channel] = Field(
        (255, 255, 255),
        description="RGB colour under transparent pixels and of the padding in pad mode.",
    )
    keep: Path | None = Field(
        None, description="Text file: only these images (paths/globs relative to src)."
    )
    remove: Path | None = Field(
        None, description="Text file: leave out these images (paths/globs relative to src)."
    )
    dedupe: Literal["none", "exact", "near"] = Field(
        "exact",
        description="Duplicates are always reported; this drops none, exact copies (same "
        "bytes), or also near copies (perceptual hash within near_threshold). Of a group, "
        "the largest image is kept.",
    )
    near_threshold: int = Field(
        8, ge=0, le=32, description="Max Hamming distance of 64-bit pHashes for a near copy."
    )
    max_pixels: int = Field(
        DEFAULT_MAX_PIXELS,
        ge=1,
        description="Images with more pixels are skipped unread (decompression bombs).",
    )
    n_jobs: int | None = Field(
        None, description="Worker processes; None or -1: all available cores."
    )
    tiles_per_shard: int | None = Field(
        None, ge=1, description="Tiles per .npy shard; None: about 512 MiB per shard."
    )
    overwrite: bool = Field(False, description="Replace a complete store at out.")
    keep_blank: bool = Field(
        False,
        description="Keep near-blank tiles (see blank_tolerance, blank_fraction); by default "
        "they are skipped. Either way they are counted in the report.",
    )
    blank_tolerance: int = Field(
        8, ge=0, le=255,
        description="A pixel matches a tile's colour when each of R, G, B is within this many "
        "levels (0-255) of the tile's median colour.",
    )
    blank_fraction: float = Field(
        0.98, gt=0.5, le=1.0,
        description="A tile is near-blank when at least this fraction of its pixels match its "
        "median colour (empty or transparent background, plain canvas).",
    )

    @field_validator("background", mode="before")
    @classmethod
    def _parse_background(cls, value: object) -> object:
        return parse_colour(value)

    @field_validator("augment", mode="before")
    @classmethod
    def _split_augment(cls, value: object) -> object:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        return list(dict.fromkeys(value)) if isinstance(value, list | tuple) else value

    @field_validator("scale_range", mode="before")
    @classmethod
    def _split_scale_range(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(","))
        return value

    @field_validator("scale_range")
    @classmethod
    def _check_scale_range(cls, value: tuple[float, float] | None) -> object:
        if value is not None and not 1.0 <= value[0] <= value[1] <= 64.0:
            raise ValueError(f"must satisfy 1 <= lo <= hi <= 64, got {value[0]:g},{value[1]:g}")
        return value

    @field_validator("n_jobs")
    @classmethod
    def _check_jobs(cls, value: int | None) -> int | None:
        if value is not None and value != -1 and value < 1:
            raise ValueError(f"must be a positive integer or -1 (all cores), got {value}")
        return value

    @model_validator(mode="after")
    def _scale_range_mode(self) -> ArtBuildConfig:
        if self.scale_range is not None and self.mode != "random-crop":
            raise ValueError(f"scale_range applies to mode 'random-crop' only, not {self.mode!r}")
        return self

    def resolved_min_side(self) -> int:
        if self.min_side is not None:
            return self.min_side
        return 1 if self.mode == "pad" else self.size


# --------------------------------------------------------------------------------------------
# Finding and curating source files
# --------------------------------------------------------------------------------------------
def _check_src(src: str | os.PathLike) -> Path:
    src = Path(src)
    if not src.exists():
        raise NeuropaintError(f"'src' folder '{src}' does not exist.")
    if not src.is_dir():
        raise NeuropaintError(f"'src' must be a folder of images, got a file: '{src}'.")
    return src


def scan_folder(src: Path) -> tuple[list[str], list[str]]:
    """Walk ``src``: (image files, other files), as sorted POSIX paths relative to ``src``.

    Hidden files and folders (``.DS_Store``, AppleDouble ``._x.jpg``) and ``__MACOSX`` count as
    other files. Symbolic links to folders are followed once (no loops).
    """
    images: list[str] = []
    others: list[str] = []
    seen: set[str] = set()
    for root, dirs, files in os.walk(src, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        rel_root = Path(root).relative_to(src)
        hidden_dirs = [d for d in dirs if d.startswith(".") or d in _SKIP_DIRS]
        for d in hidden_dirs:
            others.append((rel_root / d).as_posix() + "/")
        dirs[:] = sorted(d for d in dirs if d not in hidden_dirs)
        for name in files:
            rel = (rel_root / name).as_posix()
            hidden = name.startswith(".")
            if not hidden and name.lower().endswith(_LOOKED_AT):
                images.append(rel)
            else:
                others.append(rel)
    return sorted(images), sorted(others)


def _read_list(path: Path, name: str) -> list[str]:
    if not path.is_file():
        raise NeuropaintError(f"'{name}' list '{path}' does not exist.")
    entries = []
    for line in path.read_text(encoding="utf-8-sig").splitlines():
        entry = line.strip().replace("\\", "/")
        if entry and not entry.startswith("#"):
            entries.append(entry.removeprefix("./"))
    return entries


def _matches(rel: str, pattern: str) -> bool:
    # A pattern without a folder part also matches the bare file name anywhere in src.
    if fnmatch.fnmatchcase(rel, pattern):
        return True
    return "/" not in pattern and fnmatch.fnmatchcase(rel.rsplit("/", 1)[-1], pattern)


def curate(images: list[str], keep: Path | None, remove: Path | None) -> tuple[list[str], dict]:
    """Apply the ``keep`` then the ``remove`` list; returns the images left and a report."""
    report: dict[str, Any] = {}
    if keep is not None:
        patterns = _read_list(keep, "keep")
        kept = [rel for rel in images if any(_matches(rel, p) for p in patterns)]
        report["keep"] = str(keep)
        report["not_kept"] = len(images) - len(kept)
        report["keep_unmatched"] = [p for p in patterns if not any(_matches(r, p) for r in images)]
        images = kept
    if remove is not None:
        patterns = _read_list(remove, "remove")
        removed = [rel for rel in images if any(_matches(rel, p) for p in patterns)]
        report["remove"] = str(remove)
        report["removed"] = removed
        report["remove_unmatched"] = [
            p for p in patterns if not any(_matches(r, p) for r in removed)
        ]
        gone = set(removed)
        images = [rel for rel in images if rel not in gone]
    for key in ("keep_unmatched", "remove_unmatched"):
        if report.get(key):
            logger.warning("%s entries that match no image: %s", key.split("_")[0],
                           ", ".join(report[key][:10]))
    return images, report


# --------------------------------------------------------------------------------------------
# Worker processes
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _TileParams:
    mode: str
    size: int
    crops_per_image: int
    seed: int
    scale_range: tuple[float, float] | None
    background: tuple[int, int, int]
    max_pixels: int
    blank_tolerance: int
    blank_fraction: float


@dataclass(frozen=True)
class _TileResult:
    tiles: np.ndarray  # uint8 [n, size, size, 3]
    boxes: list[tuple[int, int, int, int]]
    upscaled: bool
    blank: np.ndarray  # bool [n]: near_blank(tiles)


def _probe_job(args: tuple[Path, tuple[int, int, int], int]) -> Probe | BadImage:
    path, background, max_pixels = args
    try:
        return probe(path, background=background, max_pixels=max_pixels)
    except BadImage as bad:
        return bad
    except OSError as exc:  # unreadable file (permissions, vanished)
        return BadImage("unreadable", f"{type(exc).__name__}: {exc}")


def image_rng(seed: int, rel: str) -> np.random.Generator:
    """The crop generator of one image: from the build seed and the path relative to src."""
    # surrogateescape: file names that are not valid UTF-8 still get their own seed.
    digest = hashlib.blake2b(rel.encode("utf-8", "surrogateescape"), digest_size=16).digest()
    words = np.frombuffer(digest, dtype="<u4").tolist()
    return np.random.default_rng(np.random.SeedSequence([seed, *words]))


def plan_boxes(
    params: _TileParams, width: int, height: int, rng: np.random.Generator
) -> list[tuple[int, int, int, int]]:
    """Crop boxes ``(left, top, right, bottom)`` in upright source pixels, one per tile."""
    size = params.size
    short = min(width, height)
    if params.mode == "pad":
        side = max(width, height)
        left = -((side - width) // 2)
        top = -((side - height) // 2)
        return [(left, top, left + side, top + side)]
    if params.mode == "center-crop":
        left = (width - short) // 2
        top = (height - short) // 2
        return [(left, top, left + short, top + short)]
    n = params.crops_per_image
    if params.scale_range is None:
        sides = np.full(n, size, dtype=np.int64)
    else:
        lo, hi = np.log(params.scale_range)
        sides = np.rint(size * np.exp(rng.uniform(lo, hi, n))).astype(np.int64)
    sides = np.minimum(sides, short)  # Small images: the whole short side (upscaled).
    lefts = rng.integers(0, width - sides + 1)
    tops = rng.integers(0, height - sides + 1)
    return [
        (int(x), int(y), int(x + s), int(y + s)) for x, y, s in zip(lefts, tops, sides, strict=True)
    ]


def _cut(image: Image.Image, boxes: list, params: _TileParams, full: tuple[int, int]) -> np.ndarray:
    """Cut ``boxes`` (full-resolution coordinates) from a possibly reduced decode."""
    size = params.size
    fx = image.width / full[0]
    fy = image.height / full[1]
    if params.mode == "pad":
        ((left, top, right, _),) = boxes
        side = right - left
        fit = (max(1, round(full[0] * size / side)), max(1, round(full[1] * size / side)))
        canvas = Image.new("RGB", (size, size), params.background)
        fitted = image.resize(fit, LANCZOS, reducing_gap=REDUCING_GAP)
        canvas.paste(fitted, ((size - fit[0]) // 2, (size - fit[1]) // 2))
        return np.asarray(canvas)[None]
    tiles = np.empty((len(boxes), size, size, 3), dtype=np.uint8)
    native = fx == 1.0 and fy == 1.0
    for i, (left, top, right, bottom) in enumerate(boxes):
        if native and right - left == size:
            tiles[i] = np.asarray(image.crop((left, top, right, bottom)))  # A plain copy.
            continue
        box = (left * fx, top * fy, min(right * fx, image.width), min(bottom * fy, image.height))
        tiles[i] = np.asarray(image.resize((size, size), LANCZOS, box=box,
                                           reducing_gap=REDUCING_GAP))
    return tiles


def near_blank(tiles: np.ndarray, *, tolerance: int = 8, fraction: float = 0.98) -> np.ndarray:
    """Which tiles are near-blank: almost one colour (empty or transparent background).

    A tile is near-blank when at least ``fraction`` of its pixels lie within ``tolerance``
    levels, in each of R, G and B, of the tile's per-channel median colour. Tiles larger than
    64 px are judged on an evenly strided grid of at most 64x64 of their pixels, so the cost
    per tile is fixed (a 1 px line in a big tile may fall between the grid's pixels).

    Parameters
    ----------
    tiles : ndarray, shape (n_tiles, size, size, 3), uint8
    tolerance : int
        Levels (0-255) per channel.
    fraction : float
        Share of pixels, in (0.5, 1].

    Returns
    -------
    blank : ndarray, shape (n_tiles,), bool
    """
    n = len(tiles)
    step = max(1, tiles.shape[1] // _BLANK_GRID)
    grid = tiles[:, ::step, ::step].reshape(n, -1, 3).astype(np.int16)  # [n, P, 3]
    median = np.median(grid, axis=1)  # [n, 3]
    close = (np.abs(grid - median[:, None, :]) <= tolerance).all(axis=2)  # [n, P]
    return close.mean(axis=1) >= fraction


def _tile_job(args: tuple[Path, str, tuple[int, int], _TileParams]) -> _TileResult | BadImage:
    path, rel, full, params = args
    try:
        boxes = plan_boxes(params, full[0], full[1], image_rng(params.seed, rel))
        smallest = min(b[2] - b[0] for b in boxes)
        # The decode need not be sharper than the smallest box needs: big JPEGs decode faster.
        scale = min(1.0, params.size / smallest)
        image, decoded_full = decode(
            path.read_bytes(), background=params.background, max_pixels=params.max_pixels,
            scale=scale,
        )
        if decoded_full != full:
            return BadImage("changed", "the file changed while the build was running")
        tiles = _cut(image, boxes, params, full)
        upscaled = (max(full) if params.mode == "pad" else smallest) < params.size
        blank = near_blank(tiles, tolerance=params.blank_tolerance,
                           fraction=params.blank_fraction)
        return _TileResult(tiles=tiles, boxes=boxes, upscaled=upscaled, blank=blank)
    except BadImage as bad:
        return bad
    except OSError as exc:
        return BadImage("unreadable", f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # one file never ends the build; reported instead
        logger.exception("unexpected error on %s", rel)
        return BadImage("error", f"{type(exc).__name__}: {exc}")


def resolve_jobs(n_jobs: int | None) -> int:
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 1
    return available if n_jobs in (None, -1) else int(n_jobs)


@contextlib.contextmanager
def process_pool(n_jobs: int) -> Iterator[concurrent.futures.Executor | None]:
    if n_jobs <= 1:
        yield None
        return
    # fork starts workers in milliseconds and shares the imported modules; elsewhere use
    # the platform default.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    pool = concurrent.futures.ProcessPoolExecutor(max_workers=n_jobs, mp_context=context)
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def ordered_map(
    executor: concurrent.futures.Executor | None,
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    *,
    stage: str,
    progress: Progress | None,
    window: int,
) -> Iterator[Any]:
    """``map`` in input order, with at most ``window`` tasks in flight (bounded memory)."""
    total = len(items)
    if progress is not None:
        progress(stage, 0, total)
    if executor is None:
        for done, item in enumerate(items, 1):
            result = fn(item)
            if progress is not None:
                progress(stage, done, total)
            yield result
        return
    pending: deque[concurrent.futures.Future] = deque()
    queue = iter(items)
    try:
        for item in queue:
            pending.append(executor.submit(fn, item))
            if len(pending) >= window:
                break
        done = 0
        while pending:
            result = pending.popleft().result()
            item = next(queue, _END)
            if item is not _END:
                pending.append(executor.submit(fn, item))
            done += 1
            if progress is not None:
                progress(stage, done, total)
            yield result
    finally:
        for future in pending:
            future.cancel()


_END = object()


# --------------------------------------------------------------------------------------------
# Selection: duplicates and size
# --------------------------------------------------------------------------------------------
def find_duplicates(probes: dict[str, Probe], near_threshold: int) -> list[dict[str, Any]]:
    """Exact (same bytes) and near (pHash) duplicates among ``probes`` (path -> Probe).

    Of identical files the first path is the original; of near copies, the largest image
    (then the first path). Each duplicate names its original and the hash distance.
    """
    duplicates: list[dict[str, Any]] = []
    by_sha: dict[str, str] = {}
    unique: list[str] = []
    for rel in sorted(probes):
        original = by_sha.setdefault(probes[rel].sha256, rel)
        if original != rel:
            duplicates.append({"file": rel, "duplicate_of": original, "kind": "exact",
                               "distance": 0})
        else:
            unique.append(rel)
    # Largest first, so a thumbnail points at the full-size work, not the other way round.
    order = sorted(unique, key=lambda r: (-probes[r].width * probes[r].height, r))
    kept_hashes = np.empty(len(order), dtype=np.uint64)
    kept: list[str] = []
    for rel in order:
        h = np.uint64(probes[rel].phash)
        if kept:
            distances = np.bitwise_count(kept_hashes[: len(kept)] ^ h)
            best = int(np.argmin(distances))
            if distances[best] <= near_threshold:
                duplicates.append({"file": rel, "duplicate_of": kept[best], "kind": "near",
                                   "distance": int(distances[best])})
                continue
        kept_hashes[len(kept)] = h
        kept.append(rel)
    return sorted(duplicates, key=lambda d: d["file"])


def augment_variants(
    tiles: np.ndarray, augment: Iterable[str]
) -> Iterator[tuple[str, np.ndarray]]:
    """(transform name, tiles) for each variant; rotations are counter-clockwise."""
    augment = set(augment)
    turns = [0, 1, 2, 3] if "rot90" in augment else [0, 2] if "rot180" in augment else [0]
    for flip in [False, True] if "flip" in augment else [False]:
        base = tiles[:, :, ::-1] if flip else tiles  # [n, H, W, 3] mirrored along W
        for k in turns:
            name = "+".join(p for p in ("flip" if flip else "", f"rot{90 * k}" if k else "") if p)
            yield name or "none", np.rot90(base, k, axes=(1, 2))


# --------------------------------------------------------------------------------------------
# Build
# --------------------------------------------------------------------------------------------
def select_images(
    probes: dict[str, Probe], cfg: ArtBuildConfig, skip: Callable[[str, BadImage], None]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Duplicates (each marked dropped or not, per ``cfg.dedupe``) and the images to cut, in
    path order; images below ``min_side`` go to ``skip``."""
    duplicates = find_duplicates(probes, cfg.near_threshold)
    droppable = {"none": (), "exact": ("exact",), "near": ("exact", "near")}[cfg.dedupe]
    for dup in duplicates:
        dup["dropped"] = dup["kind"] in droppable
    dropped = {d["file"] for d in duplicates if d["dropped"]}
    min_side = cfg.resolved_min_side()
    chosen = []
    for rel, p in probes.items():
        if rel in dropped:
            continue
        short = min(p.width, p.height)
        if short < min_side:
            detail = f"{p.width}x{p.height}: shorter side {short} < min_side {min_side}"
            skip(rel, BadImage("too-small", detail))
        else:
            chosen.append(rel)
    return duplicates, chosen


def _n_variants(augment: Iterable[str]) -> int:
    """Tiles written per crop: 1, or the copies ``augment`` adds."""
    return sum(1 for _ in augment_variants(np.zeros((0, 1, 1, 3), np.uint8), augment))


def _coverage_summary(coverage: list[float]) -> dict[str, float] | None:
    """Median, min and max over images of the share of a work's shorter side a crop sees."""
    if not coverage:
        return None
    values = np.asarray(coverage)
    return {"median": round(float(np.median(values)), 3), "min": round(float(values.min()), 3),
            "max": round(float(values.max()), 3)}


def _warnings(cfg: ArtBuildConfig, coverage: list[float], used: list[Probe]) -> list[str]:
    """One-line warnings for the build summary: crops that are fragments of the works.

    Only for random crops at the works' own resolution (no ``scale_range``): a scale range is
    the user's own choice of how much of a work a crop sees.
    """
    if cfg.mode != "random-crop" or cfg.scale_range is not None or not coverage:
        return []
    if float(np.median(coverage)) >= SMALL_CROP:
        return []
    share = float(np.median(coverage))
    short = int(np.median([min(p.width, p.height) for p in used]))
    crop = round(share * short)
    hi = min(64.0, max(2.0, math.floor(10 * short / cfg.size) / 10))
    return [
        f"crops are small for these works: a crop sees a median {share:.0%} of a work's "
        f"shorter side ({crop} of {short} px), so tiles are fragments; for whole works use "
        f"--mode pad, for wider views --scale-range 1,{hi:g} (crops of {cfg.size}-"
        f"{round(cfg.size * hi)} px, downsampled to {cfg.size})"
    ]


def _config_from(config: ArtBuildConfig | dict | None, kwargs: dict) -> ArtBuildConfig:
    if isinstance(config, ArtBuildConfig):
        config = config.model_dump()
    return build_config(ArtBuildConfig, config, **kwargs)


def _summarise_reasons(skipped: list[dict]) -> str:
    counts = Counter(s["reason"] for s in skipped)
    return ", ".join(f"{n} {reason}" for reason, n in counts.most_common())


def build(
    src: str | os.PathLike,
    out: str | os.PathLike,
    config: ArtBuildConfig | dict | None = None,
    /,
    *,
    progress: Progress | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Build a tile store at ``out`` from the images under ``src``.

    Parameters
    ----------
    src : path-like
        Folder of images (searched recursively).
    out : path-like
        Store folder to create; see :class:`datasets.art_store.TileStoreWriter`.
    config : ArtBuildConfig or dict or None
        Settings; keyword arguments override single fields (``build(src, out, size=256)``).
    progress : callable or None
        Called as ``progress(stage, done, total)`` after each image; stages 'scan', 'tile'.

    Returns
    -------
    report : dict
        What was read, skipped (with reasons), deduplicated and written; also saved as
        ``out/report.json``. ``counts['blank_tiles']`` counts near-blank tiles (see
        :func:`near_blank`), ``counts['blank_skipped']`` those left out (all unless
        ``keep_blank``; an image whose tiles are all blank is skipped with reason 'blank'),
        ``blank['by_source']`` the near-blank crops per image (before augmented copies);
        ``crop_coverage`` is the share of a work's shorter side a crop sees (median over
        images), and ``warnings`` holds one-line warnings such as crops far smaller than the
        works (below :data:`SMALL_CROP` of the shorter side; native-resolution random crops
        only, not with a ``scale_range``).
    """
    start = time.perf_counter()
    cfg = _config_from(config, kwargs)
    src = _check_src(src)
    out = Path(out)
    src_real = src.resolve()
    out_real = out.resolve()
    if out_real == src_real or src_real in out_real.parents:
        raise NeuropaintError(f"'out' must not be inside 'src': '{out}' is in '{src}'.")
    check_out_dir(out, overwrite=cfg.overwrite)

    images, others = scan_folder(src)
    if not images:
        if not others:
            raise NeuropaintError(f"'src' folder '{src}' is empty.")
        raise NeuropaintError(
            f"'src' folder '{src}' holds no images ({len(others)} other files; looked for "
            ".jpg, .png, .webp, .tif, .bmp, .gif and the like)."
        )
    candidates, curation = curate(images, cfg.keep, cfg.remove)
    if not candidates:
        raise NeuropaintError(
            f"no images left in '{src}' after the --keep/--remove lists ({len(images)} found)."
        )
    n_jobs = max(1, min(resolve_jobs(cfg.n_jobs), len(candidates)))
    logger.info("%d images in %s (%d other files ignored); %d worker(s)", len(candidates), src,
                len(others), n_jobs)
    params = _TileParams(
        mode=cfg.mode, size=cfg.size, crops_per_image=cfg.crops_per_image, seed=cfg.seed,
        scale_range=cfg.scale_range, background=cfg.background, max_pixels=cfg.max_pixels,
        blank_tolerance=cfg.blank_tolerance, blank_fraction=cfg.blank_fraction,
    )
    skipped: list[dict[str, str]] = []

    def skip(rel: str, bad: BadImage) -> None:
        skipped.append({"file": rel, "reason": bad.reason, "detail": bad.detail})
        logger.info("skipping %s: %s", rel, bad)

    with process_pool(n_jobs) as pool:
        # Pass 1: validate and hash every file (reduced-scale decode), to decide what to use.
        probes: dict[str, Probe] = {}
        jobs = [(src / rel, cfg.background, cfg.max_pixels) for rel in candidates]
        results = ordered_map(pool, _probe_job, jobs, stage="scan", progress=progress,
                               window=4 * n_jobs)
        for rel, result in zip(candidates, results, strict=True):
            if isinstance(result, BadImage):
                skip(rel, result)
            else:
                probes[rel] = result
        scan_s = time.perf_counter() - start

        duplicates, chosen = select_images(probes, cfg, skip)
        dropped = {d["file"] for d in duplicates if d["dropped"]}
        if not chosen:
            raise NeuropaintError(
                f"no usable images in '{src}': {len(candidates)} looked at, "
                f"{_summarise_reasons(skipped) or 'none skipped'}, {len(dropped)} duplicates "
                "dropped."
            )

        # Pass 2: decode at the needed scale, cut, write in source order.
        options = {"src": str(src_real), **cfg.model_dump(mode="json")}
        upscaled: list[str] = []
        used: list[str] = []
        blank_by_source: dict[str, int] = {}  # Near-blank crops per image (before augmenting).
        coverage: list[float] = []  # Per image: median crop side / the work's shorter side.
        variants = _n_variants(cfg.augment)
        tile_start = time.perf_counter()
        with TileStoreWriter(out, size=cfg.size, options=options, overwrite=cfg.overwrite,
                             tiles_per_shard=cfg.tiles_per_shard) as writer:
            jobs = [(src / rel, rel, (probes[rel].width, probes[rel].height), params)
                    for rel in chosen]
            results = ordered_map(pool, _tile_job, jobs, stage="tile", progress=progress,
                                   window=2 * n_jobs)
            for rel, result in zip(chosen, results, strict=True):
                if isinstance(result, BadImage):
                    skip(rel, result)
                    continue
                n_blank = int(result.blank.sum())
                if n_blank:
                    blank_by_source[rel] = n_blank
                keep = np.ones_like(result.blank) if cfg.keep_blank else ~result.blank
                if not keep.any():
                    skip(rel, BadImage("blank", f"all {n_blank} tiles are near-blank "
                                       "(one colour: empty or transparent)"))
                    continue
                boxes = [box for box, k in zip(result.boxes, keep, strict=True) if k]
                for transform, tiles in augment_variants(result.tiles[keep], cfg.augment):
                    writer.add_many(tiles, source=rel, boxes=boxes,
                                    transforms=[transform] * len(tiles))
                short = min(probes[rel].width, probes[rel].height)
                sides = [right - left for left, _, right, _ in result.boxes]
                coverage.append(min(1.0, float(np.median(sides)) / short))
                used.append(rel)
                if result.upscaled:
                    upscaled.append(rel)
            if writer.count == 0:
                hint = " (keep_blank / --keep-blank keeps them)" if blank_by_source else ""
                raise NeuropaintError(
                    f"no tiles written from '{src}': {_summarise_reasons(skipped)}{hint}."
                )
            tile_s = time.perf_counter() - tile_start
            total_s = time.perf_counter() - start
            blank_tiles = sum(blank_by_source.values()) * variants
            warnings = _warnings(cfg, coverage, [probes[rel] for rel in used])
            for line in warnings:
                logger.info("warning: %s", line)
            report = {
                "src": str(src_real),
                "out": str(out_real),
                "options": options,
                "n_jobs": n_jobs,
                "counts": {
                    "files": len(images) + len(others),
                    "ignored": len(others),
                    "images": len(images),
                    "curated_out": len(images) - len(candidates),
                    "skipped": len(skipped),
                    "duplicates": len(duplicates),
                    "duplicates_dropped": len(dropped),
                    "upscaled": len(upscaled),
                    "images_used": len(used),
                    "tiles": writer.count,
                    "blank_tiles": blank_tiles,
                    "blank_skipped": 0 if cfg.keep_blank else blank_tiles,
                },
                "blank": {
                    "criterion": f"at least {cfg.blank_fraction:g} of the pixels within "
                    f"{cfg.blank_tolerance} levels (each of R, G, B) of the tile's median colour",
                    "kept": cfg.keep_blank,
                    "by_source": blank_by_source,
                },
                "crop_coverage": _coverage_summary(coverage),
                "warnings": warnings,
                "skipped_by_reason": dict(Counter(s["reason"] for s in skipped).most_common()),
                "skipped": sorted(skipped, key=lambda s: s["file"]),
                "duplicates": duplicates,
                "upscaled": upscaled,
                "curation": curation,
                "ignored": others,
                "timing": {
                    "scan_s": round(scan_s, 3),
                    "tile_s": round(tile_s, 3),
                    "total_s": round(total_s, 3),
                    "tiles_per_s": round(writer.count / max(total_s, 1e-9), 1),
                },
            }
            writer.write_json("report.json", report)
    return report
