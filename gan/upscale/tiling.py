"""Tiled inference: run an upscaler over an image of any size in overlapping, feathered windows."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from neuropaint.validate import NeuropaintError, check_int

MIN_SIDE = 8  # Smallest input side apply() accepts: below it there is nothing to upscale.


def _tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Window starts covering ``length`` with windows of ``tile``, neighbours overlapping by at
    least ``overlap``, spread evenly."""
    if length <= tile:
        return [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def _ramp(length: int, fade_in: int, fade_out: int, device: torch.device) -> torch.Tensor:
    """Weights ``[length]``: linear ramps over ``fade_in`` first and ``fade_out`` last pixels."""
    t = torch.arange(length, dtype=torch.float32, device=device) + 0.5
    w = torch.ones(length, dtype=torch.float32, device=device)
    if fade_in:
        w = torch.minimum(w, t / fade_in)
    if fade_out:
        w = torch.minimum(w, (length - t) / fade_out)
    return w


def upscale_tiled(net: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, scale: int, *,
                  tile: int = 128, overlap: int = 16) -> torch.Tensor:
    """Run ``net`` over ``x`` ``[N, C, H, W]`` in overlapping ``tile`` x ``tile`` windows.

    Neighbouring windows overlap by at least ``overlap`` input pixels. Each window is run with
    ``overlap`` pixels of extra context on its inner sides (cropped off again), so the network
    sees past the window's edge; its output is then weighted by a feathered mask (linear ramps
    across the overlap on inner sides) and the weighted outputs are normalised by the summed
    weights. What differs from an untiled run is only what the network would have seen beyond
    the context, blended smoothly: no seam. An image no larger than ``tile`` is one window,
    exactly ``net(x)``.
    """
    tile = check_int(tile, "tile", minimum=MIN_SIDE)
    overlap = check_int(overlap, "overlap", minimum=0)
    if overlap > tile // 2:
        raise NeuropaintError(f"'overlap' must be at most half the tile ({tile // 2}), got "
                              f"{overlap}.")
    n, height, width = x.shape[0], x.shape[2], x.shape[3]
    if height <= tile and width <= tile:
        return net(x)
    rows, cols = _tile_starts(height, tile, overlap), _tile_starts(width, tile, overlap)
    out = None
    total = torch.zeros(1, 1, height * scale, width * scale, device=x.device)
    fade = overlap * scale
    for i, top in enumerate(rows):
        bottom = min(top + tile, height)
        above, below = min(overlap, top), min(overlap, height - bottom)  # context rows
        wy = _ramp((bottom - top) * scale, fade if i > 0 else 0,
                   fade if i < len(rows) - 1 else 0, x.device)
        for j, left in enumerate(cols):
            right = min(left + tile, width)
            before, after = min(overlap, left), min(overlap, width - right)  # context columns
            window = x[:, :, top - above : bottom + below, left - before : right + after]
            piece = net(window).float()  # [N, C, s*(th+context), s*(tw+context)]
            piece = piece[:, :, above * scale : (above + bottom - top) * scale,
                          before * scale : (before + right - left) * scale]  # [N, C, s*th, s*tw]
            if out is None:
                out = torch.zeros(n, piece.shape[1], height * scale, width * scale,
                                  device=x.device)
            wx = _ramp((right - left) * scale, fade if j > 0 else 0,
                       fade if j < len(cols) - 1 else 0, x.device)
            weight = wy[:, None] * wx[None, :]  # [s*th, s*tw]
            ys = slice(top * scale, bottom * scale)
            xs = slice(left * scale, right * scale)
            out[:, :, ys, xs] += piece * weight
            total[:, :, ys, xs] += weight
    return out / total
