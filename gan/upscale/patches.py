"""Training data of the upscaler: HR patches from a tile store, and held-out tiles.

Patches are random crops of the training tiles, with flips and transposes; the held-out tiles
(a split **by source image**, so no crop of a held-out painting is ever trained on) validate.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from neuropaint.validate import NeuropaintError


class PatchSource:
    """HR training patches and fixed held-out tiles from a tile store, split by source image.

    Parameters
    ----------
    store : path
        Tile store.
    patch, scale : int
        HR patch side (a multiple of ``scale``, at most the tile size).
    val_fraction : float
        Share of the store's source images whose tiles are held out.
    seed : int
        Seed of the split and of the patch stream.
    """

    def __init__(self, store: str | os.PathLike, *, patch: int, scale: int,
                 val_fraction: float, seed: int):
        from datasets.art import ArtTiles

        self.tiles = ArtTiles(store)
        size = self.tiles.img_resolution
        if patch > size:
            raise NeuropaintError(f"the patch ({patch} px) is larger than the store's {size} px "
                                  f"tiles: pass --patch {size - size % scale} or less.")
        if patch % scale:
            raise NeuropaintError(f"the patch ({patch} px) must be a multiple of the scale "
                                  f"{scale}.")
        self.patch, self.scale = patch, scale
        sources = [t["source"] for t in self.tiles.store.tiles]
        names = sorted(set(sources))
        held: set[str] = set()
        if val_fraction > 0:
            if len(names) < 2:
                raise NeuropaintError(f"a held-out split needs tiles from at least 2 source "
                                      f"images; {store} has 1 (pass --val-fraction 0 to train "
                                      f"without validation).")
            order = np.random.default_rng(seed).permutation(len(names))
            n_val = min(len(names) - 1, max(1, round(val_fraction * len(names))))
            held = {names[i] for i in order[:n_val]}
        is_val = np.array([s in held for s in sources])
        self.train_idx = np.flatnonzero(~is_val)
        self.val_idx = np.flatnonzero(is_val)
        self.n_sources = (len(names) - len(held), len(held))
        self.generator = torch.Generator().manual_seed(seed)

    def batch(self, n: int) -> torch.Tensor:
        """``n`` random HR patches ``[n, 3, P, P]`` in [-1, 1]: crop, flips, transpose."""
        g = self.generator
        pick = torch.randint(len(self.train_idx), (n,), generator=g)
        tiles = self.tiles.gather(self.train_idx[pick.numpy()])  # [n, 3, S, S]
        size, p = tiles.shape[-1], self.patch
        offsets = torch.randint(size - p + 1, (n, 2), generator=g).tolist()
        flips = (torch.rand(n, 3, generator=g) < 0.5).tolist()
        out = torch.empty(n, 3, p, p)
        for i, ((top, left), (flip_x, flip_y, transpose)) in enumerate(zip(offsets, flips,
                                                                           strict=True)):
            crop = tiles[i, :, top : top + p, left : left + p]
            if flip_x:
                crop = crop.flip(2)
            if flip_y:
                crop = crop.flip(1)
            if transpose:
                crop = crop.transpose(1, 2)
            out[i] = crop
        return out

    def validation_tiles(self, count: int) -> torch.Tensor:
        """Up to ``count`` held-out tiles ``[n, 3, S', S']``, evenly spread, cropped to a
        multiple of the scale."""
        if len(self.val_idx) == 0:
            return torch.empty(0, 3, self.patch, self.patch)
        pick = self.val_idx[np.unique(np.linspace(0, len(self.val_idx) - 1,
                                                  min(count, len(self.val_idx))).round()
                                      .astype(np.int64))]
        tiles = self.tiles.gather(pick)
        side = tiles.shape[-1] - tiles.shape[-1] % self.scale
        return tiles[:, :, :side, :side]
