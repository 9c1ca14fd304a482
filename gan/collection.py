"""Unique collections: N images guaranteed distinct, each with token metadata, plus a manifest.

Examples
--------
python -m gan.generate runs/cpu64 --collection 100 --trunc 0.7 --out drops/first
python -m gan.generate runs/cpu64 --collection 250 --trunc 0.7 --out drops/first --extend
python -m gan.generate runs/cpu64 --collection 100 --min-distance 0.5 --pixel-distance 0.05 \\
    --name "Colour fields" --description "Painted by neuropaint" --out drops/wide
python -m gan.generate runs/cpu64 --collection-dir drops/first --interpolate-items 3,7,12 \\
    --format gif --out out/                  # a loop through items 3, 7 and 12 in W

How uniqueness is guaranteed
----------------------------
Candidates are the seeds ``first_seed, first_seed + 1, ...`` in that order, each mapped to its
ws (with the collection's truncation) and rendered with the generator's constant noise. A
candidate is kept when it is far enough from every item kept before it:

- in W: the L2 distance between the mean over layers of the two ws must exceed
  ``min_distance * w_scale``, where ``w_scale`` is the median distance between the ws of 256
  random latents of this generator at this truncation (a fixed reference set, recorded in the
  manifest). So ``--min-distance 0.25`` means "a quarter of the typical distance between two
  random images", whatever the generator's W scale or the truncation;
- in pixels: the root-mean-square difference of 16 x 16 thumbnails (area averages, values in
  [0, 1]) must exceed ``pixel_distance``: it catches images that look alike from different
  ws, which a collapsed or barely trained generator makes.

Seeds only grow, so no seed repeats. Each decision depends only on the seeds before it, so the
same arguments give the same collection byte for byte, and ``--extend`` to a larger N keeps
the first items and adds exactly what a fresh run of the larger N would (seeds are mapped and
rendered in aligned blocks of :data:`BLOCK`, so the floating-point work does not depend on
where a run starts). When the candidate budget (``--max-candidates``) runs out first, nothing
is written and the error names the limit reached.

Layout of a collection folder (written with :func:`neuropaint.atomic.atomic_folder`: an
interrupted run leaves the previous collection as it was)::

    collection.json      manifest: generator and its weights hash, arguments, w_scale,
                         candidates tried and rejected, items
    0001.png 0001.json   item 1: the image, and its token metadata (ERC-721 / OpenSea layout:
    ...                  name, description, image, attributes as trait_type / value pairs;
                         plus seed, truncation_psi, w_sha256, generator_sha256)
    ws.npy               float32 [N, num_ws, w_dim]: each item's ws (``w_sha256`` is the
                         SHA-256 of its float32 bytes), for interpolation videos
    contact_sheet.jpg    all items in a grid

Token metadata points ``image`` at the file name beside it; a marketplace upload replaces it
with the final URI (for example ``ipfs://<cid>/0001.png``).
"""

from __future__ import annotations

import hashlib
import logging
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from gan.checkpoint import load_generator, read_config, resolve_snapshot, weights_hash
from gan.generate import render_ws, save_png, seed_z, w_loop
from gan.images import image_grid
from neuropaint import __version__
from neuropaint.atomic import atomic_folder, atomic_path, write_json
from neuropaint.validate import NeuropaintError, build_config, read_manifest

logger = logging.getLogger(__name__)

KIND = "neuropaint.collection"
FORMAT_VERSION = 1
MANIFEST = "collection.json"
BLOCK = 16              # Seeds are mapped and rendered in aligned blocks of this many.
REFERENCE_COUNT = 256   # Random latents whose ws set the typical distance (w_scale).
REFERENCE_SEED = 2020   # Their random stream, separate from the candidates' seeds.
THUMBNAIL = 16          # Side of the thumbnails compared for pixel near-duplicates.
# Arguments that define which items a collection holds: --extend refuses to change them.
FIXED_ARGUMENTS = ("truncation_psi", "min_distance", "pixel_distance", "first_seed", "name",
                   "description")


class CollectionConfig(BaseModel):
    """What ``--collection`` is asked for; stored in the manifest."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(ge=1, description="Number of unique images.")
    truncation_psi: float = Field(1.0, gt=0, le=2, description="Truncation toward w_avg.")
    min_distance: float = Field(0.25, ge=0, description="Minimum W distance to every earlier "
                                "item, as a fraction of the typical distance (w_scale).")
    pixel_distance: float = Field(0.02, ge=0, description="Minimum RMS difference of 16 px "
                                  "thumbnails (values in [0, 1]) to every earlier item.")
    first_seed: int = Field(0, ge=0, description="The first candidate seed.")
    max_candidates: int | None = Field(None, ge=1, description="Seeds tried at most (None: "
                                       "max(10000, 10 * count)).")
    name: str = Field("neuropaint", min_length=1, description="Collection name; item k is "
                      "'NAME #k'.")
    description: str = Field("", description="Description given to every item.")

    @property
    def candidate_budget(self) -> int:
        return self.max_candidates or max(10_000, 10 * self.count)


@dataclass
class Found:
    """Items accepted so far (existing and new) and the search's progress."""

    seeds: list[int] = field(default_factory=list)
    ws: list[np.ndarray] = field(default_factory=list)        # each [num_ws, w_dim] float32
    images: list[np.ndarray] = field(default_factory=list)    # each [H, W, 3] uint8
    next_seed: int = 0
    rejected_w: int = 0
    rejected_pixels: int = 0


# -- measures ------------------------------------------------------------------------------------

def w_hash(ws: np.ndarray) -> str:
    """SHA-256 of one item's ws as little-endian float32 bytes."""
    return hashlib.sha256(np.ascontiguousarray(ws, dtype="<f4").tobytes()).hexdigest()


def thumbnails(images: np.ndarray) -> np.ndarray:
    """Area-averaged thumbnails, float64 [N, THUMBNAIL * THUMBNAIL * 3] in [0, 1]."""
    n, h, w, _ = images.shape
    if h % THUMBNAIL or w % THUMBNAIL:
        raise NeuropaintError(f"images must be a multiple of {THUMBNAIL} px, got {h}x{w}.")
    x = images.reshape(n, THUMBNAIL, h // THUMBNAIL, THUMBNAIL, w // THUMBNAIL, 3)
    return (x.mean(axis=(2, 4)) / 255.0).reshape(n, -1)


@torch.no_grad()
def typical_w_distance(G: torch.nn.Module, truncation_psi: float) -> float:
    """Median L2 distance between the mean ws of :data:`REFERENCE_COUNT` random latents."""
    z = np.random.RandomState(REFERENCE_SEED).standard_normal((REFERENCE_COUNT, G.z_dim))
    w = G.mapping(torch.from_numpy(z.astype(np.float32)), None,
                  truncation_psi=truncation_psi).mean(1)  # [R, w_dim]
    d = torch.cdist(w.double(), w.double())
    pairs = d[torch.triu(torch.ones_like(d, dtype=torch.bool), diagonal=1)]
    return float(pairs.median())


# Hue names and the upper edge of their range in degrees.
HUES = (("Red", 15), ("Orange", 45), ("Yellow", 70), ("Green", 165), ("Cyan", 195),
        ("Blue", 255), ("Purple", 290), ("Magenta", 345), ("Red", 360))


def image_traits(image: np.ndarray) -> list[dict]:
    """Descriptive attributes of an image: dominant hue, brightness, contrast."""
    hsv = np.asarray(Image.fromarray(image).convert("HSV"), dtype=np.float64) / 255.0
    hue, sat, val = hsv[..., 0] * 360, hsv[..., 1], hsv[..., 2]
    coloured = (sat > 0.25) & (val > 0.2)
    palette = "Neutral"
    if coloured.mean() >= 0.1:
        edges = np.array([edge for _, edge in HUES])  # upper edge of each hue's range
        bins = np.minimum(np.searchsorted(edges, hue[coloured], side="right"), len(HUES) - 1)
        votes: dict[str, int] = {}
        for (name, _), count in zip(HUES, np.bincount(bins, minlength=len(HUES)), strict=True):
            votes[name] = votes.get(name, 0) + int(count)  # red spans both ends of the circle
        palette = max(votes, key=votes.__getitem__)
    luma = (image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])) / 255.0
    brightness = "Dark" if luma.mean() < 1 / 3 else "Light" if luma.mean() > 2 / 3 else "Medium"
    contrast = "Low" if luma.std() < 0.08 else "High" if luma.std() > 0.18 else "Medium"
    return [{"trait_type": "Palette", "value": palette},
            {"trait_type": "Brightness", "value": brightness},
            {"trait_type": "Contrast", "value": contrast}]


# -- search --------------------------------------------------------------------------------------

@torch.no_grad()
def _render_block(G: torch.nn.Module, start: int, truncation_psi: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """ws [BLOCK, num_ws, w_dim] and uint8 images of the seeds start .. start + BLOCK - 1."""
    ws = G.mapping(seed_z(G, range(start, start + BLOCK)), None,
                   truncation_psi=truncation_psi)
    return ws.numpy(), render_ws(G, ws)


def search(G: torch.nn.Module, cfg: CollectionConfig, found: Found, w_scale: float) -> Found:
    """Extend ``found`` to ``cfg.count`` items, trying seeds from ``found.next_seed`` on.

    Raises a :class:`NeuropaintError` naming the limit when the candidate budget runs out.
    """
    w_limit = cfg.min_distance * w_scale
    limit = cfg.first_seed + cfg.candidate_budget
    # Preallocated: the checks below compare each candidate with every item kept so far.
    kept_w = np.empty((cfg.count, G.w_dim))
    kept_thumbs = np.empty((cfg.count, THUMBNAIL * THUMBNAIL * 3))
    n = len(found.seeds)
    if n:
        kept_w[:n] = np.stack(found.ws).mean(1, dtype=np.float64)
        kept_thumbs[:n] = thumbnails(np.stack(found.images))
    seed = found.next_seed
    while n < cfg.count and seed < limit:
        start = seed // BLOCK * BLOCK
        ws, images = _render_block(G, start, cfg.truncation_psi)
        thumbs = thumbnails(images)
        stop = min(start + BLOCK, limit)
        while seed < stop and n < cfg.count:
            i = seed - start
            seed += 1
            w = ws[i].mean(0, dtype=np.float64)
            if n and np.linalg.norm(kept_w[:n] - w, axis=1).min() <= w_limit:
                found.rejected_w += 1
                continue
            if n and np.sqrt(((kept_thumbs[:n] - thumbs[i]) ** 2).mean(1)).min() \
                    <= cfg.pixel_distance:
                found.rejected_pixels += 1
                continue
            found.seeds.append(start + i)
            found.ws.append(ws[i])
            found.images.append(images[i])
            kept_w[n] = w
            kept_thumbs[n] = thumbs[i]
            n += 1
    found.next_seed = seed
    if len(found.seeds) < cfg.count:
        raise NeuropaintError(
            f"found {len(found.seeds)} unique image{'' if len(found.seeds) == 1 else 's'} of "
            f"{cfg.count} within "
            f"{cfg.candidate_budget} candidates (--max-candidates) at --min-distance "
            f"{cfg.min_distance:g} and --pixel-distance {cfg.pixel_distance:g}; lower them or "
            f"ask for fewer (nothing was written).")
    return found


# -- writing -------------------------------------------------------------------------------------

def item_name(index: int) -> str:
    """File stem of item ``index`` (1-based): 0001, 0002, ..."""
    return f"{index:04d}"


def item_metadata(cfg: CollectionConfig, index: int, seed: int, ws: np.ndarray,
                  image: np.ndarray, generator_sha256: str) -> dict:
    """Token metadata of one item (ERC-721 / OpenSea layout plus neuropaint's fields)."""
    return {
        "name": f"{cfg.name} #{index}",
        "description": cfg.description,
        "image": f"{item_name(index)}.png",
        "attributes": [*image_traits(image),
                       {"trait_type": "Seed", "value": seed},
                       {"trait_type": "Truncation", "value": cfg.truncation_psi}],
        "seed": seed,
        "truncation_psi": cfg.truncation_psi,
        "w_sha256": w_hash(ws),
        "generator_sha256": generator_sha256,
    }


def read_collection(folder: str | Path) -> dict:
    """The manifest of a collection folder (checked for kind and version)."""
    return read_manifest(folder, MANIFEST, kind=KIND, format_version=FORMAT_VERSION,
                         what="a collection")


def _previous(out: Path, cfg: CollectionConfig, generator_sha256: str, extend: bool
              ) -> dict | None:
    """The collection already at ``out`` that --extend continues (None: start afresh)."""
    if out.exists() and not out.is_dir():
        raise NeuropaintError(f"'--out' must be a folder, got the file {out}.")
    is_collection = (out / MANIFEST).exists()
    if out.exists() and any(out.iterdir()) and not is_collection:
        raise NeuropaintError(f"{out} exists and is not a collection (no {MANIFEST}); pick a "
                              f"new --out folder.")
    if not extend:
        return None
    if not is_collection:
        raise NeuropaintError(f"--extend needs an existing collection in {out}, and there is "
                              f"none; leave out --extend to make one.")
    old = read_collection(out)
    if old["generator"]["weights_sha256"] != generator_sha256:
        raise NeuropaintError(f"{out} was made by another generator ({old['generator']['path']}"
                              f"); extend it with that one.")
    for key in FIXED_ARGUMENTS:
        if old["arguments"][key] != getattr(cfg, key):
            raise NeuropaintError(f"{out} was made with {key}={old['arguments'][key]!r}; "
                                  f"--extend keeps it (got {getattr(cfg, key)!r}).")
    if len(old["items"]) > cfg.count:
        raise NeuropaintError(f"{out} already holds {len(old['items'])} items; --extend needs "
                              f"a count of at least that, got {cfg.count}.")
    return old


def export_collection(generator: str | Path, out: str | Path, cfg: CollectionConfig, *,
                      extend: bool = False, ema: bool = True) -> dict:
    """Find ``cfg.count`` unique images and write them as a collection folder.

    Parameters
    ----------
    generator : path-like
        StyleGAN2 snapshot folder, or a run folder (its latest snapshot).
    out : path-like
        The collection folder; an existing collection there is replaced (atomically) or, with
        ``extend``, kept and continued.
    cfg : CollectionConfig
        Count, truncation, distances, names.
    extend : bool
        Keep the items already in ``out`` and add new ones up to ``cfg.count``.
    ema : bool
        Render with G_ema (the default) or G.

    Returns
    -------
    manifest : dict
        What ``collection.json`` holds.
    """
    out = Path(out)
    folder = resolve_snapshot(generator)
    network = "G_ema" if ema else "G"
    spec = read_config(folder)["networks"].get(network, {})
    if spec.get("class") != "Generator":
        raise NeuropaintError(f"--collection needs a StyleGAN2 generator (its distances are "
                              f"measured in W); {folder} holds a {spec.get('class')}.")
    G = load_generator(folder, ema=ema)
    generator_sha256 = weights_hash(folder, network)
    old = _previous(out, cfg, generator_sha256, extend)

    found = Found(next_seed=cfg.first_seed)
    if old is not None:
        w_scale = float(old["w_scale"])
        all_ws = np.load(out / old["ws"], allow_pickle=False)
        for i, item in enumerate(old["items"]):
            found.seeds.append(int(item["seed"]))
            found.ws.append(all_ws[i])
            with Image.open(out / item["image"]) as img:
                found.images.append(np.asarray(img.convert("RGB")))
        found.next_seed = int(old["candidates"]["next_seed"])
        found.rejected_w = int(old["candidates"]["rejected_w"])
        found.rejected_pixels = int(old["candidates"]["rejected_pixels"])
    else:
        w_scale = typical_w_distance(G, cfg.truncation_psi)
    kept = len(found.seeds)
    search(G, cfg, found, w_scale)

    items = []
    with atomic_folder(out) as partial:
        for i, (seed, ws, image) in enumerate(zip(found.seeds, found.ws, found.images,
                                                  strict=True)):
            stem = item_name(i + 1)
            if i < kept:  # carried over byte for byte
                for suffix in (".png", ".json"):
                    shutil.copyfile(out / f"{stem}{suffix}", partial / f"{stem}{suffix}")
            else:
                save_png(image, partial / f"{stem}.png")
                write_json(partial / f"{stem}.json",
                           item_metadata(cfg, i + 1, seed, ws, image, generator_sha256))
            items.append({"index": i + 1, "seed": seed, "image": f"{stem}.png",
                          "metadata": f"{stem}.json", "w_sha256": w_hash(ws)})
        with atomic_path(partial / "ws.npy") as tmp:
            np.save(tmp, np.stack(found.ws).astype(np.float32), allow_pickle=False)
        sheet = image_grid(np.stack(found.images), cols=math.ceil(math.sqrt(len(items))))
        with atomic_path(partial / "contact_sheet.jpg") as tmp:
            Image.fromarray(sheet).save(tmp, format="JPEG", quality=90)
        manifest = {
            "kind": KIND,
            "format_version": FORMAT_VERSION,
            "neuropaint_version": __version__,
            "name": cfg.name,
            "description": cfg.description,
            "generator": {"path": str(folder), "network": network, "class": spec["class"],
                          "img_resolution": G.img_resolution, "weights_sha256": generator_sha256},
            "arguments": {**cfg.model_dump(mode="json"),
                          "max_candidates": cfg.candidate_budget},
            "w_scale": w_scale,
            "w_threshold": cfg.min_distance * w_scale,
            "candidates": {"first_seed": cfg.first_seed, "next_seed": found.next_seed,
                           "tried": found.next_seed - cfg.first_seed,
                           "rejected_w": found.rejected_w,
                           "rejected_pixels": found.rejected_pixels},
            "ws": "ws.npy",
            "contact_sheet": "contact_sheet.jpg",
            "items": items,
        }
        write_json(partial / MANIFEST, manifest)  # last: its presence marks a collection
    logger.info("collection of %d items in %s (%d kept from before)", len(items), out, kept)
    return manifest


# -- interpolation between items -----------------------------------------------------------------

def parse_items(text: str) -> list[int]:
    """'3,7,12' -> [3, 7, 12] (1-based item numbers)."""
    try:
        items = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        items = []
    if len(items) < 2 or min(items) < 1:
        raise NeuropaintError(f"'--interpolate-items' must name at least 2 item numbers "
                              f"(from 1), e.g. 3,7,12; got {text!r}.")
    return items


def item_ws(folder: str | Path, items: Sequence[int]) -> tuple[torch.Tensor, dict]:
    """The stored ws [K, num_ws, w_dim] of 1-based ``items``, checked against their hashes."""
    folder = Path(folder)
    manifest = read_collection(folder)
    n = len(manifest["items"])
    bad = [i for i in items if not 1 <= i <= n]
    if bad:
        raise NeuropaintError(f"{folder} holds items 1 to {n}; there is no item {bad[0]}.")
    all_ws = np.load(folder / manifest["ws"], allow_pickle=False)
    picked = []
    for i in items:
        ws = all_ws[i - 1]
        if w_hash(ws) != manifest["items"][i - 1]["w_sha256"]:
            raise NeuropaintError(f"{folder / manifest['ws']} does not match item {i}'s w_sha256: "
                                  f"the collection was altered.")
        picked.append(ws)
    return torch.from_numpy(np.stack(picked)), manifest


def interpolate_items(G: torch.nn.Module, folder: str | Path, items: Sequence[int], *,
                      frames: int = 30, generator_sha256: str | None = None) -> np.ndarray:
    """A looping walk in W through chosen items: uint8 frames [len(items) * frames, H, W, 3]."""
    ws, manifest = item_ws(folder, items)
    made_by = manifest["generator"]["weights_sha256"]
    if generator_sha256 is not None and generator_sha256 != made_by:
        raise NeuropaintError(f"{folder} was made by the generator {manifest['generator']['path']}"
                              f" (weights {made_by[:12]}...), not this one; pass that one.")
    if ws.shape[1:] != (G.num_ws, G.w_dim):
        raise NeuropaintError(f"{folder} holds ws of shape {list(ws.shape[1:])}; this generator "
                              f"takes [{G.num_ws}, {G.w_dim}].")
    return render_ws(G, w_loop(ws, frames))


def collection_config(**kwargs) -> CollectionConfig:
    """A validated :class:`CollectionConfig` (one-line errors naming the field)."""
    return build_config(CollectionConfig, kwargs)
