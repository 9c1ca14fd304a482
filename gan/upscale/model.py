"""The :class:`Upscaler`: a trained network ready to apply, saved and loaded as config.json +
safetensors (``save_pretrained`` / ``from_pretrained``; nothing in the files is executed).

From Python (the live engine puts it after the generator, 64 -> 256 px)::

    up = Upscaler.from_pretrained("runs/sr4", device="cpu")
    big = up(images)                   # [N, 3, H, W] in [-1, 1] -> [N, 3, 4H, 4W] in [-1, 1]
    png = up.upscale_image(rgb_uint8)  # uint8 [H, W, 3] -> uint8 [4H, 4W, 3], tiled
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from gan.checkpoint import load_network, read_config, resolve_snapshot, save_snapshot
from gan.denoise import nl_means
from gan.images import to_uint8
from gan.ops import assert_shape
from gan.upscale.tiling import upscale_tiled
from neuropaint.validate import NeuropaintError, check_option

DENOISE_MODES = ("none", "before", "after", "both")
MODEL_KIND = "upscaler"  # config.json "model": tells an upscaler snapshot from a GAN's.
NETWORK_NAMES = {"net": "upscaler", "ema": "upscaler_ema", "D": "D"}


class Upscaler:
    """A trained upscaler, ready to apply: ``Upscaler.from_pretrained(path)(x)``.

    Parameters
    ----------
    net : RRDBNet or CompactNet
        The network (its EMA weights, for a trained one).
    info : dict | None
        What the checkpoint says about it (preset, training stats, defaults).
    """

    def __init__(self, net: torch.nn.Module, info: dict | None = None):
        # channels_last: measured 34 -> 22 ms per 64 -> 256 px frame on one CPU thread
        # (oneDNN's convolutions need no layout reorders); training measured no difference.
        self.net = net.eval().requires_grad_(False).to(memory_format=torch.channels_last)
        self.info = dict(info or {})

    @property
    def scale(self) -> int:
        """The upscaling factor (2, 4 or 8)."""
        return self.net.scale

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @property
    def default_denoise(self) -> str:
        """The denoise mode the model was trained to be applied with (``train --denoise``)."""
        return self.info.get("denoise", "none")

    def to(self, device: str | torch.device) -> Upscaler:
        self.net.to(device)
        return self

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str | torch.device = "cpu"
                        ) -> Upscaler:
        """Load the EMA upscaler of a snapshot, a run folder (its latest snapshot) or a folder
        written by :meth:`save_pretrained`. Nothing in the files is executed."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no such upscaler: {path}")
        try:
            folder = resolve_snapshot(path)
            config = read_config(folder)
        except NeuropaintError as exc:
            raise NeuropaintError(f"{path} is not an upscaler checkpoint: {exc}") from None
        if config.get("model") != MODEL_KIND:
            nets = ", ".join(f"{k} ({v.get('class')})" for k, v in config["networks"].items())
            raise NeuropaintError(f"{path} is not an upscaler checkpoint: it holds {nets}; "
                                  f"train one with 'python -m gan.upscale train'.")
        net = load_network(folder, NETWORK_NAMES["ema"], device=device)
        info = {"path": str(folder), "preset": config.get("preset", {}).get("name"),
                "denoise": config.get("denoise", "none"), "stats": config.get("stats", {}),
                "degradation": config.get("degradation")}
        return cls(net, info)

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write the network alone (config.json + safetensors, no training state)."""
        config = {"model": MODEL_KIND, "scale": self.scale, "denoise": self.default_denoise,
                  "preset": {"name": self.info.get("preset")},
                  "stats": self.info.get("stats", {}),
                  "degradation": self.info.get("degradation")}
        return save_snapshot(folder, {NETWORK_NAMES["ema"]: self.net}, config)

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor, *, denoise: str = "none", tile: int | None = None,
                 overlap: int = 16) -> torch.Tensor:
        """Upscale ``x`` ``[N, 3, H, W]`` in [-1, 1] to ``[N, 3, sH, sW]`` in [-1, 1].

        Parameters
        ----------
        denoise : str
            Non-local means (:func:`gan.denoise.nl_means`, noise level estimated per image)
            'before', 'after', 'both' or 'none'.
        tile, overlap : int
            Process in ``tile`` px windows (input pixels) overlapping by ``overlap``
            (:func:`upscale_tiled`); None runs the whole image at once.
        """
        check_option(denoise, "denoise", DENOISE_MODES)
        assert_shape(x, [None, 3, None, None], "x")
        x = x.to(self.device, torch.float32).contiguous(memory_format=torch.channels_last)
        if denoise in ("before", "both"):
            x = nl_means(x)
        if tile is None:
            y = self.net(x)
        else:
            y = upscale_tiled(self.net, x, self.scale, tile=tile, overlap=overlap)
        y = y.clamp(-1, 1)
        if denoise in ("after", "both"):
            y = nl_means(y).clamp(-1, 1)
        return y

    def upscale_image(self, image: np.ndarray, *, denoise: str = "none", tile: int | None = 128,
                      overlap: int = 16) -> np.ndarray:
        """``uint8 [H, W, 3]`` -> ``uint8 [sH, sW, 3]`` (tiled, so any size fits in memory)."""
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise NeuropaintError(f"'image' must be uint8 [H, W, 3], got {image.dtype} "
                                  f"{list(image.shape)}.")
        x = torch.from_numpy(image.transpose(2, 0, 1).astype(np.float32))[None] / 127.5 - 1
        return to_uint8(self(x, denoise=denoise, tile=tile, overlap=overlap))[0]
