"""``python -m gan.blend``: layer-swap blending of two StyleGAN2 generators.

Examples
--------
python -m gan.blend runs/rothko runs/davis --out runs/blend
python -m gan.blend runs/rothko runs/davis --out runs/blend --swap-resolution 16 \\
    --crossover-width 2
python -m gan.generate runs/blend --seeds 0-15 --out out/blend/      # render it like any other

Follows Pinkney & Adler 2020, "Resolution Dependent GAN Interpolation for Controllable Image
Synthesis Between Domains" (arXiv:2010.05334): two generators fine-tuned from one base model
keep their layers aligned, so their weights can be mixed layer by layer. The synthesis layers at
resolutions up to ``--swap-resolution`` come from A (the coarse layers: pose and structure),
the finer ones from B (texture and colour), and the mapping network from A (``--mapping b``
for B's). Instead of a hard switch, the weights cross over along a logistic curve:

- every synthesis layer has a position in octaves, ``log2(resolution)`` of its block, with the
  block's layers spread inside the octave in the order they run (``conv0`` at ``k - 2/3``,
  ``const`` and ``conv1`` at ``k - 1/3``, ``torgb`` at ``k``, for block ``2**k``);
- B's share of a layer at position ``p`` is 0 up to ``s = log2(swap_resolution)``, 1 from
  ``s + crossover_width`` on, and in between ``sigma(6 (t - 1/2))`` with
  ``t = (p - s) / crossover_width``, rescaled to run exactly from 0 to 1 over the band. So
  layers outside the band are exactly A's or exactly B's; ``--crossover-width 0`` is the
  paper's hard swap, ``1`` spreads the change over the block above the swap point.

Blended layer weights are ``(1 - share) * A + share * B``, parameters and buffers alike (the
stored noise maps too). The result is an ordinary generator snapshot (``G_ema``, and ``G``
when both inputs have one) that :func:`gan.checkpoint.load_generator`, ``gan.generate`` and
the live engine load like a trained one; its config.json records both sources, their weights
hashes, and B's share per layer.

Only StyleGAN2 generators of the same architecture blend: a DCGAN has no per-resolution
styles, and a different config, parameter name or shape is refused, naming the first
difference. Whether A and B really share a base model shows in their weights: the cosine
similarity of their mapping networks is near 1 after fine-tuning (the mapping learns at 1/100 of
the rate; StyleGAN, section 2) and near 0 for two independent initialisations, and a warning
is given below :data:`MIN_SIMILARITY`; the blend is still written, since a user may mean it.
"""

from __future__ import annotations

import argparse
import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from gan.checkpoint import (
    build_network,
    load_network,
    read_config,
    resolve_snapshot,
    save_snapshot,
    weights_hash,
)
from neuropaint.logs import run_cli, setup_logging
from neuropaint.validate import NeuropaintError, build_config

logger = logging.getLogger(__name__)

# Below this cosine similarity of their mapping networks, A and B are taken not to share a base.
MIN_SIMILARITY = 0.5
# Steepness of the logistic crossover over its band (t in [0, 1]): 6 gives B shares of 0.25 and
# 0.75 at the band's first and second thirds, a gentle S that still ends flat.
STEEPNESS = 6.0
# The generator networks a snapshot may hold; D is never blended.
GENERATORS = ("G_ema", "G")
_LAYER = re.compile(r"^synthesis\.b(\d+)\.(const|conv0|conv1|torgb)(\.|$)")
_OFFSET = {"conv0": -2 / 3, "const": -1 / 3, "conv1": -1 / 3, "torgb": 0.0}


class BlendConfig(BaseModel):
    """How two generators are blended; stored in the blend's config.json."""

    model_config = ConfigDict(extra="forbid")

    swap_resolution: int = Field(16, description="Synthesis layers up to this resolution "
                                 "(px) come from A, the finer ones from B.")
    crossover_width: float = Field(1.0, ge=0, description="Octaves above the swap resolution "
                                   "over which the weights move from A's to B's (0: hard swap).")
    mapping: Literal["a", "b"] = Field("a", description="Which generator's mapping network "
                                       "(and w_avg) the blend keeps.")


def layer_position(key: str) -> float | None:
    """Position in octaves of the synthesis layer a state-dict key belongs to (None: not one).

    The canvas texture (:class:`gan.networks.CanvasTexture`) is finer than every block: it
    comes with the fine layers.
    """
    if key.startswith("synthesis.canvas."):
        return math.inf
    match = _LAYER.match(key)
    if match is None:
        return None
    return math.log2(int(match.group(1))) + _OFFSET[match.group(2)]


def share_of_b(position: float, swap_resolution: int, crossover_width: float) -> float:
    """B's share of a layer at ``position`` octaves (see the module docstring)."""
    start = math.log2(swap_resolution)
    if position <= start:
        return 0.0
    if crossover_width == 0 or position >= start + crossover_width:
        return 1.0
    t = (position - start) / crossover_width

    def sigmoid(x: float) -> float:
        return 1 / (1 + math.exp(-x))

    low, high = sigmoid(-STEEPNESS / 2), sigmoid(STEEPNESS / 2)
    return (sigmoid(STEEPNESS * (t - 0.5)) - low) / (high - low)


def crossover_table(keys: Iterable[str], img_resolution: int, swap_resolution: int,
                    crossover_width: float) -> dict[str, float]:
    """B's share per synthesis layer, e.g. ``{"b4.conv1": 0.0, ..., "b32.torgb": 1.0}``."""
    check_swap(swap_resolution, img_resolution)
    table: dict[str, float] = {}
    for key in keys:
        position = layer_position(key)
        if position is not None:
            # synthesis.b8.conv0.weight -> b8.conv0; synthesis.canvas.texture -> canvas
            layer = "canvas" if position == math.inf else ".".join(key.split(".")[1:3])
            table[layer] = round(share_of_b(position, swap_resolution, crossover_width), 6)
    return table


def check_swap(swap_resolution: int, img_resolution: int) -> int:
    """The swap resolution must name a block below the output resolution."""
    valid = [2**k for k in range(2, int(math.log2(img_resolution)))]
    if swap_resolution not in valid:
        raise NeuropaintError(f"'--swap-resolution' must be one of {valid} for "
                              f"{img_resolution} px generators (a block below the output), "
                              f"got {swap_resolution}.")
    return swap_resolution


def _first_difference(a: object, b: object, where: str) -> str | None:
    """``where: a vs b`` for the first place two JSON values differ, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            if key not in a or key not in b:
                side = "A" if key in a else "B"
                return f"{where}.{key} only in {side}"
            found = _first_difference(a[key], b[key], f"{where}.{key}")
            if found:
                return found
        return None
    return None if a == b else f"{where}: {a!r} (A) vs {b!r} (B)"


def check_compatible(spec_a: dict, spec_b: dict, state_a: Mapping[str, torch.Tensor],
                     state_b: Mapping[str, torch.Tensor]) -> None:
    """Refuse two generators that are not StyleGAN2 of one architecture, naming the difference."""
    for side, spec in (("A", spec_a), ("B", spec_b)):
        if spec.get("class") != "Generator":
            raise NeuropaintError(
                f"gan.blend blends StyleGAN2 generators; {side} is a {spec.get('class')}, "
                f"which has no per-resolution layers to swap (train with a StyleGAN2 preset).")
    difference = _first_difference(spec_a["init_kwargs"], spec_b["init_kwargs"], "config")
    if difference:
        raise NeuropaintError(f"A and B do not share an architecture: {difference}.")
    for key in list(state_a) + [k for k in state_b if k not in state_a]:
        if key not in state_a or key not in state_b:
            side = "A" if key in state_a else "B"
            raise NeuropaintError(f"A and B do not share an architecture: parameter {key} only "
                                  f"in {side}.")
        if state_a[key].shape != state_b[key].shape:
            raise NeuropaintError(f"A and B do not share an architecture: {key} is "
                                  f"{list(state_a[key].shape)} in A, {list(state_b[key].shape)} "
                                  f"in B.")


def _cosine(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    flat_a = torch.cat([t.flatten().double() for t in a])
    flat_b = torch.cat([t.flatten().double() for t in b])
    return float(flat_a @ flat_b / (flat_a.norm() * flat_b.norm()).clamp_min(1e-30))


def base_similarity(state_a: Mapping[str, torch.Tensor], state_b: Mapping[str, torch.Tensor]
                    ) -> dict[str, float]:
    """Cosine similarity of A's and B's weight matrices, mapping and synthesis separately.

    Two generators fine-tuned from one base keep a mapping similarity near 1; independent
    initialisations give about 0 (random Gaussian weights are nearly orthogonal).
    """
    def weights(state: Mapping[str, torch.Tensor], prefix: str) -> list[torch.Tensor]:
        return [v for k, v in state.items()
                if k.startswith(prefix) and k.endswith(".weight") and v.ndim >= 2]

    return {part: round(_cosine(weights(state_a, part), weights(state_b, part)), 4)
            for part in ("mapping", "synthesis")}


def blend_state_dicts(state_a: Mapping[str, torch.Tensor], state_b: Mapping[str, torch.Tensor],
                      cfg: BlendConfig) -> dict[str, torch.Tensor]:
    """The blended state dict: synthesis layers by B's share, everything else from ``mapping``."""
    keep = state_a if cfg.mapping == "a" else state_b
    out: dict[str, torch.Tensor] = {}
    for key, a in state_a.items():
        b = state_b[key]
        position = layer_position(key)
        if position is None:
            out[key] = keep[key].clone()
            continue
        share = share_of_b(position, cfg.swap_resolution, cfg.crossover_width)
        if share == 0.0:
            out[key] = a.clone()
        elif share == 1.0:
            out[key] = b.clone()
        else:
            out[key] = torch.lerp(a.float(), b.float(), share).to(a.dtype)
    return out


def blend_generators(G_a: torch.nn.Module, G_b: torch.nn.Module, cfg: BlendConfig
                     ) -> torch.nn.Module:
    """A new generator of A's architecture holding the blend of ``G_a`` and ``G_b``."""
    from gan.checkpoint import network_spec

    spec_a, spec_b = network_spec(G_a), network_spec(G_b)
    state_a, state_b = G_a.state_dict(), G_b.state_dict()
    check_compatible(spec_a, spec_b, state_a, state_b)
    check_swap(cfg.swap_resolution, G_a.img_resolution)
    G = build_network(spec_a)
    G.load_state_dict(blend_state_dicts(state_a, state_b, cfg))
    return G.eval().requires_grad_(False)


def blend_snapshots(path_a: str | Path, path_b: str | Path, out: str | Path,
                    *, swap_resolution: int = 16, crossover_width: float = 1.0,
                    mapping: str = "a") -> Path:
    """Blend two generator snapshots (or runs: their latest) into a new snapshot at ``out``.

    Parameters
    ----------
    path_a, path_b : path-like
        Snapshot folders, or run folders (their latest snapshot). A gives the coarse layers.
    out : path-like
        The blend's snapshot folder, written atomically (replaced if it exists).
    swap_resolution, crossover_width, mapping
        See :class:`BlendConfig`.

    Returns
    -------
    out : Path
        The snapshot folder, loadable with :func:`gan.checkpoint.load_generator`.
    """
    cfg = build_config(BlendConfig, swap_resolution=swap_resolution,
                       crossover_width=crossover_width, mapping=mapping)
    folders = [resolve_snapshot(path_a), resolve_snapshot(path_b)]
    configs = [read_config(folder) for folder in folders]
    names = [n for n in GENERATORS if all(n in c["networks"] for c in configs)]
    if "G_ema" not in names:
        raise NeuropaintError(f"both snapshots need a G_ema generator; {folders[0]} has "
                              f"{', '.join(configs[0]['networks'])} and {folders[1]} has "
                              f"{', '.join(configs[1]['networks'])}.")
    # Class and config first, before any weights are read.
    check_compatible(configs[0]["networks"]["G_ema"], configs[1]["networks"]["G_ema"], {}, {})
    networks = {}
    similarity: dict[str, float] = {}
    for name in names:
        G_a, G_b = (load_network(folder, name) for folder in folders)
        networks[name] = blend_generators(G_a, G_b, cfg)
        if name == "G_ema":
            similarity = base_similarity(G_a.state_dict(), G_b.state_dict())
    if similarity["mapping"] < MIN_SIMILARITY:
        logger.warning(
            "A and B do not look fine-tuned from a common base (mapping similarity %.2f < "
            "%.2f): layer swapping needs aligned layers, expect a poor blend",
            similarity["mapping"], MIN_SIMILARITY)
    G = networks["G_ema"]
    config = {
        "arch": "stylegan2",
        # The architecture's preset (A's and B's are the same); there is no training config.
        **({"preset": configs[0]["preset"]} if "preset" in configs[0] else {}),
        "img_resolution": G.img_resolution,
        "num_ws": G.num_ws,
        "blend": {
            "method": "layer swap (Pinkney & Adler 2020)",
            **cfg.model_dump(mode="json"),
            "a": {"path": str(folders[0]), "weights_sha256": weights_hash(folders[0])},
            "b": {"path": str(folders[1]), "weights_sha256": weights_hash(folders[1])},
            "similarity": similarity,
            "share_of_b": crossover_table(G.state_dict().keys(), G.img_resolution,
                                          cfg.swap_resolution, cfg.crossover_width),
        },
    }
    return save_snapshot(out, networks, config)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gan.blend",
        description="Blend two StyleGAN2 generators fine-tuned from a common base (Pinkney & "
        "Adler 2020): coarse layers from A, fine layers from B, with a smooth crossover. The "
        "result is a generator snapshot like any other.",
    )
    parser.add_argument("a", metavar="GEN_A", help="snapshot or run folder: the coarse layers "
                        "(structure)")
    parser.add_argument("b", metavar="GEN_B", help="snapshot or run folder: the fine layers "
                        "(texture, colour)")
    parser.add_argument("--out", required=True, help="the blended snapshot folder")
    parser.add_argument("--swap-resolution", type=int, default=16,
                        help="layers up to this resolution come from A (default: 16)")
    parser.add_argument("--crossover-width", type=float, default=1.0,
                        help="octaves over which A's weights give way to B's; 0 = hard swap "
                        "(default: 1)")
    parser.add_argument("--mapping", choices=["a", "b"], default="a",
                        help="whose mapping network (and w_avg) to keep (default: a)")
    args = parser.parse_args(argv)
    setup_logging("WARNING")
    out = blend_snapshots(args.a, args.b, args.out, swap_resolution=args.swap_resolution,
                          crossover_width=args.crossover_width, mapping=args.mapping)
    blend = read_config(out)["blend"]
    shares = ", ".join(f"{k} {v:.2f}" for k, v in blend["share_of_b"].items()
                       if 0 < v < 1) or "none (hard swap)"
    print(f"blend: {out} (mapping similarity {blend['similarity']['mapping']:.2f}; layers "
          f"between A and B: {shares})")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
