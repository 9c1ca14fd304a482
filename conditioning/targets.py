"""What each state paints: target latents for a performer profile, and the controls' directions.

A target is given per state as

- ``auto``: a distinct, typical painting of the generator. Many random latents are drawn with
  the truncation trick (``psi`` 0.7: typical, away from W's thin edges; Karras et al. 2019,
  sec. 3), painted small; the half nearest the mean painting is kept (typical, not the
  generator's extremes), and farthest-point sampling among those picks paintings as
  different from each other as it allows (Gonzalez 1985's greedy k-centre, started from
  the most typical one);
- ``seed:N``: the truncated latent of the generator's random seed N (as ``gan.generate``);
- an image path: one of the artist's works, projected into the generator (:mod:`gan.project`).

The continuous controls move the painting within its target along the principal directions
of W (Härkönen et al. 2020, "GANSpace": PCA of sampled w finds the generator's main modes of
variation), each scaled to one standard deviation of W along it, on the middle and fine
layers only (colour and texture; the composition stays the state's).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from neuropaint.validate import NeuropaintError, check_int

logger = logging.getLogger(__name__)

__all__ = ["AUTO_CANDIDATES", "TRUNCATION_PSI", "auto_targets", "control_directions",
           "parse_targets", "resolve_targets", "seed_target"]

TRUNCATION_PSI = 0.7     # Typical latents: pulled 30 % toward w_avg.
AUTO_CANDIDATES = 256    # Random paintings auto-targets choose from.
_AUTO_SIDE = 16          # They are compared at this size (composition and colour, not noise).


def parse_targets(items: Sequence[str], states: Sequence[str] | None) -> dict[str, str]:
    """``["eyes_closed=art/a.png", "focused=seed:3"]`` -> ``{state: spec}`` (others: auto).

    With ``states`` None any state name is taken (checked later against the recordings')."""
    out = {s: "auto" for s in states or ()}
    for item in items:
        state, sep, spec = str(item).partition("=")
        state, spec = state.strip(), spec.strip()
        if not sep or not state or not spec:
            raise NeuropaintError(f"a target must read STATE=IMAGE, STATE=seed:N or "
                                  f"STATE=auto, got {item!r}.")
        if states is not None and state not in out:
            raise NeuropaintError(f"a target for unknown state {state!r}; the states are "
                                  f"{', '.join(states)}.")
        out[state] = spec
    return out


@torch.no_grad()
def _paint_small(G: torch.nn.Module, ws: np.ndarray, batch: int = 8) -> np.ndarray:
    """Paintings of ``ws`` ``[N, num_ws, w_dim]`` as float ``[N, 3 * s * s]`` in [-1, 1]."""
    out = []
    for i in range(0, len(ws), batch):
        x = torch.from_numpy(np.ascontiguousarray(ws[i : i + batch], dtype=np.float32))
        img = G.synthesis(x, noise_mode="const")  # [n, 3, H, W]
        img = F.adaptive_avg_pool2d(img.float(), min(_AUTO_SIDE, img.shape[-1]))  # [n, 3, s, s]
        out.append(img.reshape(len(img), -1).numpy())
    return np.concatenate(out)


@torch.no_grad()
def seed_target(G: torch.nn.Module, seed: int, psi: float = TRUNCATION_PSI) -> np.ndarray:
    """The truncated ``ws`` ``[num_ws, w_dim]`` of random seed ``seed`` (as gan.generate)."""
    gen = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    z = torch.randn(1, G.z_dim, generator=gen)
    return G.mapping(z, None, truncation_psi=psi)[0].numpy()


@torch.no_grad()
def auto_targets(G: torch.nn.Module, count: int, *, seed: int = 0,
                 candidates: int = AUTO_CANDIDATES, psi: float = TRUNCATION_PSI
                 ) -> tuple[np.ndarray, float]:
    """``count`` distinct typical ``ws`` ``[count, num_ws, w_dim]`` and their smallest
    pairwise distance (RMS pixel difference of the small paintings, [-1, 1] scale)."""
    count = check_int(count, "count", minimum=1)
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(max(candidates, count), G.z_dim, generator=gen)
    ws = G.mapping(z, None, truncation_psi=psi).numpy()  # [n, num_ws, w_dim]
    pixels = _paint_small(G, ws)  # [n, P]
    # Typical: the half nearest the mean painting (farthest-point sampling alone would pick
    # the generator's extremes: a black field, a flat wash).
    spread = ((pixels - pixels.mean(axis=0)) ** 2).mean(axis=1)
    typical = np.argsort(spread)[: max(count, len(pixels) // 2)]
    ws, pixels = ws[typical], pixels[typical]
    chosen = [0]  # the most typical painting
    nearest = ((pixels - pixels[chosen[0]]) ** 2).mean(axis=1)
    while len(chosen) < count:
        pick = int(np.argmax(nearest))
        chosen.append(pick)
        nearest = np.minimum(nearest, ((pixels - pixels[pick]) ** 2).mean(axis=1))
    picked = pixels[chosen]
    gaps = [np.sqrt(((picked[i] - picked[j]) ** 2).mean())
            for i in range(count) for j in range(i + 1, count)]
    return ws[chosen].astype(np.float32), float(min(gaps)) if gaps else 0.0


def _image_target(G: torch.nn.Module, path: Path) -> np.ndarray:
    """An artwork projected into ``G`` (centre-cropped square, resized to its resolution)."""
    from PIL import Image

    from datasets.imageio import BadImage, decode
    from gan.project import project

    if not path.is_file():
        raise NeuropaintError(f"target image {path} does not exist.")
    try:
        im, _ = decode(path.read_bytes())
    except BadImage as exc:
        raise NeuropaintError(f"target {path} is not a usable image ({exc.detail}).") from None
    side = min(im.size)
    left, top = (im.width - side) // 2, (im.height - side) // 2
    im = im.crop((left, top, left + side, top + side))
    res = int(G.img_resolution)
    image = np.asarray(im.resize((res, res), Image.Resampling.LANCZOS))
    result = project(G, image)
    logger.info("projected %s into the generator: PSNR %.1f dB", path, result.psnr)
    return np.asarray(result.ws, dtype=np.float32)


def resolve_targets(G: torch.nn.Module, targets: Mapping[str, str], states: Sequence[str], *,
                    seed: int = 0, base: Path | None = None) -> tuple[np.ndarray, dict]:
    """Target ``ws`` ``[n_states, num_ws, w_dim]`` in ``states`` order, and what each came from.

    ``auto`` states share one farthest-point draw that avoids the explicitly chosen targets.
    """
    out: dict[str, np.ndarray] = {}
    sources: dict[str, str] = {}
    for state in states:
        spec = targets.get(state, "auto")
        if spec == "auto":
            continue
        if spec.startswith("seed:"):
            try:
                number = int(spec[len("seed:"):])
            except ValueError:
                raise NeuropaintError(f"target {state}={spec}: seed must be a whole number."
                                      ) from None
            out[state] = seed_target(G, number)
        else:
            path = Path(spec) if base is None or Path(spec).is_absolute() else base / spec
            out[state] = _image_target(G, path)
        sources[state] = spec
    auto = [s for s in states if s not in out]
    if auto:
        chosen, _ = auto_targets(G, len(auto) + len(out), seed=seed)
        # Keep the auto picks that lie farthest from the explicit targets.
        if out:
            fixed = np.stack(list(out.values()))[:, 0]  # [m, w_dim]
            dist = np.linalg.norm(chosen[:, 0, None] - fixed[None], axis=-1).min(axis=1)
            chosen = chosen[np.argsort(-dist)[: len(auto)]]
        for state, ws in zip(auto, chosen, strict=False):
            out[state] = ws
            sources[state] = "auto"
    return np.stack([out[s] for s in states]).astype(np.float32), sources


@torch.no_grad()
def control_directions(G: torch.nn.Module, count: int, *, samples: int = 4096, seed: int = 0
                       ) -> np.ndarray:
    """The ``count`` principal directions of W, each one standard deviation long, on the
    middle and fine layers only: ``[count, num_ws, w_dim]``.

    The coarse layers (the composition, :func:`conditioning.encoder.layer_groups`) are left
    alone, so a control changes the colour and texture of the state's painting, never which
    painting it is (GANSpace's layer-restricted edits, Härkönen et al. 2020, sec. 3.2).
    """
    from conditioning.encoder import layer_groups

    if count == 0:
        return np.zeros((0, G.num_ws, G.w_dim), dtype=np.float32)
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(samples, G.z_dim, generator=gen)
    w = G.mapping(z, None)[:, 0].double().numpy()  # [samples, w_dim]
    w = w - w.mean(axis=0)
    _, s, vt = np.linalg.svd(w, full_matrices=False)
    std = s[:count] / np.sqrt(len(w) - 1)
    dirs = vt[:count] * std[:, None]  # [count, w_dim]
    out = np.repeat(dirs[:, None, :], G.num_ws, axis=1)  # [count, num_ws, w_dim]
    out[:, layer_groups(G.num_ws)["coarse"]] = 0.0
    return out.astype(np.float32)
