"""``python -m gan.upscale``: an ESRGAN-style ×2/×4 super-resolution upscaler that also denoises.

The seeds upscaled their 64 px GAN outputs ×2 and ×4 and denoised them before and after; this
module does that with a network trained here, on the project's own tile stores.

Examples
--------
python -m gan.upscale train tiles256/ --scale 4 --out runs/sr4                  # cpu preset
python -m gan.upscale train tiles256/ --scale 4 --out runs/sr4 --minutes 30 --resume auto
python -m gan.upscale train tiles256/ --scale 2 --out runs/sr2 --steps 4000 --adversarial-steps 2000
python -m gan.upscale train tiles512/ --scale 4 --out runs/big --preset full --device cuda
python -m gan.upscale apply runs/sr4 out/*.png --out big/ --denoise before
python -m gan.upscale apply runs/sr4 photos/ --out big/ --tile 128 --overlap 16

From Python (the live engine puts it after the generator, 64 -> 256 px)::

    up = Upscaler.from_pretrained("runs/sr4", device="cpu")
    big = up(images)                   # [N, 3, H, W] in [-1, 1] -> [N, 3, 4H, 4W] in [-1, 1]
    png = up.upscale_image(rgb_uint8)  # uint8 [H, W, 3] -> uint8 [4H, 4W, 3], tiled

Network
-------
The generator is ESRGAN's RRDBNet (Wang et al. 2018, "ESRGAN: Enhanced Super-Resolution
Generative Adversarial Networks"): a trunk of residual-in-residual dense blocks (RRDB: three
dense blocks of five 3x3 convolutions each, every block's output scaled by 0.2 before it is
added back: "residual scaling"), no batch norm, small initialisation (Kaiming x 0.1), then an
upsampler. Two upsamplers:

- ``nearest-conv`` (ESRGAN's): per factor 2, nearest-neighbour upsampling and a convolution,
  then two convolutions at the output resolution. The ``full`` preset (the paper's 23 RRDBs x
  64 channels, 32 growth channels, 16.7 M parameters) uses it; it is for GPUs.
- ``pixel-shuffle`` (ESPCN, Shi et al. 2016; as Real-ESRGAN's compact model does): one
  convolution at the input resolution to ``3 * scale²`` channels, rearranged into the output.
  Every convolution then runs on input pixels, which is what makes the ``cpu`` preset fast.

The network predicts a residual over the bicubic upscale of its input, and its last
convolution starts at zero, so an untrained upscaler is exactly bicubic and training only has
to learn the missing detail (the global skip of VDSR, Kim et al. 2016).

Training
--------
HR patches are cut from the training tiles of a tile store (random crops, flips and
transposes); the held-out tiles (a split **by source image**, so no crop of a held-out
painting is ever trained on) validate. Each batch is degraded on the fly, in the spirit of
Real-ESRGAN's first-order degradation model (Wang et al. 2021, "Real-ESRGAN: Training
Real-World Blind Super-Resolution with Pure Synthetic Data"): Gaussian blur with a random
isotropic or anisotropic kernel, downscaling with a random kernel (area, bilinear or bicubic),
Gaussian noise (colour or grey), JPEG re-compression with Pillow, 8-bit quantisation. Each
step is applied with a probability, so that some inputs stay clean, as generator outputs are:
``--degradation light`` (the default) applies each 30 % of the time with mild ranges,
``mixed`` half the time, ``real`` always with Real-ESRGAN's ranges; ``bicubic`` is the
classic clean downscale. Because some inputs are noisy, the upscaler learns to denoise as it
upscales (more so with ``mixed`` and ``real``, at a small cost on clean inputs).

Phase one minimises the L1 pixel loss (ESRGAN's PSNR-oriented pre-training). An optional
phase two (``--adversarial-steps``) adds a relativistic average GAN loss (ESRGAN's RaGAN,
Jolicoeur-Martineau 2018) from a small spectrally normalised (Miyato et al. 2018) patch
discriminator (PatchGAN, Isola et al. 2017), with L1 kept: "perceptual-free", since we ship no
pretrained VGG. The generator's exponential moving average (Real-ESRGAN keeps one, decay
0.999) is what validation, snapshots and ``apply`` use.

Runs are folders like ``gan.train``'s: ``snapshots/NNNNNNNNN/`` (``config.json``, the
networks as safetensors, ``state.pt`` for exact resume, ``preview.png``: nearest | bicubic |
upscaled | original for held-out tiles), ``latest``, ``stats.jsonl``. ``--resume auto``
continues exactly; a snapshot is written atomically.

Applying
--------
``apply`` reads any image file :mod:`datasets.imageio` reads (RGBA is composited over white,
greyscale becomes RGB, with a note), upscales large images in overlapping tiles whose seams
are feathered (linear ramps across each overlap, so no seam shows), optionally denoises with
non-local means (:mod:`gan.denoise`) before and/or after, and writes ``NAME_x4.png`` files
atomically. Bad files are skipped and reported; an existing output is kept unless
``--overwrite``, so an interrupted run can simply be started again.

Quality is measured by ``benchmarks/upscale_quality.py``: PSNR (RGB, 0-255) and SSIM (Wang et
al. 2004: 11x11 Gaussian window, σ = 1.5, K1 = 0.01, K2 = 0.03, mean over the RGB channels),
both with ``scale`` border pixels cropped as SR papers do, against bicubic and nearest.
"""

from __future__ import annotations

import argparse
import copy
import io
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from gan.checkpoint import (
    load_network,
    load_state,
    mark_latest,
    read_config,
    resolve_snapshot,
    save_snapshot,
)
from gan.denoise import nl_means
from gan.ops import assert_shape
from gan.train import Dist, image_grid, optimizer_step, setup_distributed, to_uint8
from neuropaint.atomic import append_json_line, atomic_path, trim_json_lines, write_json
from neuropaint.logs import run_cli, setup_logging
from neuropaint.validate import (
    NeuropaintError,
    build_config,
    check_int,
    check_option,
)

logger = logging.getLogger(__name__)

__all__ = [
    "DEGRADATIONS",
    "DENOISE_MODES",
    "SCALES",
    "Degradation",
    "PatchDiscriminator",
    "RRDBNet",
    "UpscaleTrainConfig",
    "UpscaleTrainer",
    "Upscaler",
    "UpscalerPreset",
    "apply_files",
    "bicubic_upscale",
    "degrade",
    "get_degradation",
    "get_preset",
    "list_presets",
    "nearest_upscale",
    "psnr",
    "ssim",
    "upscale_tiled",
]

SCALES = (2, 4)
DENOISE_MODES = ("none", "before", "after", "both")
MODEL_KIND = "upscaler"  # config.json "model": tells an upscaler snapshot from a GAN's.
NETWORK_NAMES = {"net": "upscaler", "ema": "upscaler_ema", "D": "D"}
MIN_SIDE = 8  # Smallest input side apply() accepts: below it there is nothing to upscale.
MAX_OUTPUT_PIXELS = 64_000_000  # apply() refuses larger outputs (768 MB of float32 RGB).
RES_SCALE = 0.2  # ESRGAN's residual scaling.


# --------------------------------------------------------------------------------------------
# Presets
# --------------------------------------------------------------------------------------------
class UpscalerPreset(BaseModel):
    """Architecture and optimisation settings of one upscaler configuration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Registry name.")
    description: str = Field(description="What the preset is for.")
    num_feat: int = Field(ge=1, description="Feature maps of the RRDB trunk.")
    num_block: int = Field(ge=1, description="Number of RRDBs.")
    num_grow_ch: int = Field(ge=1, description="Growth channels of each dense block.")
    upsampler: Literal["nearest-conv", "pixel-shuffle"] = Field(
        description="nearest-conv (ESRGAN) or pixel-shuffle (ESPCN: all convolutions at the "
        "input resolution).")
    d_channels: int = Field(ge=1, description="Discriminator width of its first layer.")
    batch: int = Field(ge=1, description="Patches per step.")
    patch: int = Field(ge=8, description="HR patch side in pixels.")
    lr: float = Field(gt=0, description="Adam learning rate of the upscaler.")
    d_lr: float = Field(gt=0, description="Adam learning rate of the discriminator.")
    betas: tuple[float, float] = Field((0.9, 0.99), description="Adam betas (ESRGAN's).")
    ema_decay: float = Field(0.999, ge=0, lt=1, description="EMA decay of the upscaler "
                             "(ramped up over the first steps).")


_PRESETS: dict[str, UpscalerPreset] = {}


def _register(**kwargs: Any) -> None:
    preset = UpscalerPreset(**kwargs)
    _PRESETS[preset.name] = preset


_register(name="tiny", description="Tests: one narrow RRDB, trains in seconds.",
          num_feat=16, num_block=1, num_grow_ch=8, upsampler="pixel-shuffle", d_channels=16,
          batch=8, patch=32, lr=2e-3, d_lr=1e-3, ema_decay=0.99)
_register(name="cpu", description="Default: fast on a 2-core CPU (64 -> 256 px live).",
          num_feat=32, num_block=2, num_grow_ch=16, upsampler="pixel-shuffle", d_channels=32,
          batch=16, patch=64, lr=1e-3, d_lr=2e-4)
_register(name="full", description="ESRGAN's generator (23 RRDBs x 64 channels), for GPUs.",
          num_feat=64, num_block=23, num_grow_ch=32, upsampler="nearest-conv", d_channels=64,
          batch=16, patch=128, lr=2e-4, d_lr=1e-4)


def list_presets() -> list[str]:
    """Names of the registered upscaler presets."""
    return list(_PRESETS)


def get_preset(name: str, **overrides: Any) -> UpscalerPreset:
    """An upscaler preset by name, optionally with some fields replaced (validated)."""
    if name not in _PRESETS:
        raise NeuropaintError(f"unknown upscaler preset {name!r}; valid presets: "
                              f"{', '.join(_PRESETS)}.")
    preset = _PRESETS[name]
    if overrides:
        preset = build_config(UpscalerPreset, {**preset.model_dump(), **overrides})
    return preset


# --------------------------------------------------------------------------------------------
# Networks
# --------------------------------------------------------------------------------------------
def _small_init(*convs: nn.Conv2d, scale: float = 0.1) -> None:
    """Kaiming-normal weights times ``scale``, zero biases: ESRGAN's "smaller initialisation"."""
    for conv in convs:
        nn.init.kaiming_normal_(conv.weight, a=0.2)
        conv.weight.data.mul_(scale)
        nn.init.zeros_(conv.bias)


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convolutions; the output is scaled by 0.2 and added back."""

    def __init__(self, num_feat: int, num_grow_ch: int):
        super().__init__()
        self.convs = nn.ModuleList([
            nn.Conv2d(num_feat + i * num_grow_ch, num_grow_ch if i < 4 else num_feat, 3, 1, 1)
            for i in range(5)
        ])
        _small_init(*self.convs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for conv in self.convs[:-1]:
            features.append(F.leaky_relu(conv(torch.cat(features, dim=1)), 0.2))
        return x + RES_SCALE * self.convs[-1](torch.cat(features, dim=1))


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks inside a scaled residual."""

    def __init__(self, num_feat: int, num_grow_ch: int):
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + RES_SCALE * self.rdb3(self.rdb2(self.rdb1(x)))


class RRDBNet(nn.Module):
    """ESRGAN's generator: ``[N, C, H, W]`` in ``[-1, 1]`` -> ``[N, C, sH, sW]``.

    The output is the bicubic upscale of the input plus what the network adds (not clamped:
    training sees the raw values; :class:`Upscaler` clamps).
    """

    def __init__(
        self,
        scale: int = 4,                    # Upscaling factor, 2 or 4.
        num_feat: int = 64,                # Feature maps of the trunk.
        num_block: int = 23,               # Number of RRDBs.
        num_grow_ch: int = 32,             # Growth channels of each dense block.
        upsampler: str = "nearest-conv",   # 'nearest-conv' (ESRGAN) or 'pixel-shuffle' (ESPCN).
        img_channels: int = 3,             # Image channels in and out.
    ):
        super().__init__()
        check_option(scale, "scale", SCALES)
        check_option(upsampler, "upsampler", ("nearest-conv", "pixel-shuffle"))
        self.init_kwargs = {
            "scale": int(scale), "num_feat": check_int(num_feat, "num_feat", minimum=1),
            "num_block": check_int(num_block, "num_block", minimum=1),
            "num_grow_ch": check_int(num_grow_ch, "num_grow_ch", minimum=1),
            "upsampler": upsampler,
            "img_channels": check_int(img_channels, "img_channels", minimum=1),
        }
        self.scale = int(scale)
        self.upsampler = upsampler
        self.img_channels = img_channels
        self.conv_first = nn.Conv2d(img_channels, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(num_feat, num_grow_ch) for _ in range(num_block)])
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        if upsampler == "nearest-conv":
            self.conv_up = nn.ModuleList([nn.Conv2d(num_feat, num_feat, 3, 1, 1)
                                          for _ in range(int(math.log2(scale)))])
            self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
            self.conv_last = nn.Conv2d(num_feat, img_channels, 3, 1, 1)
        else:
            self.conv_last = nn.Conv2d(num_feat, img_channels * scale * scale, 3, 1, 1)
        # Start as plain bicubic: the residual branch adds nothing until it has learnt something.
        nn.init.zeros_(self.conv_last.weight)
        nn.init.zeros_(self.conv_last.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert_shape(x, [None, self.img_channels, None, None], "x")
        base = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        if self.upsampler == "nearest-conv":
            for conv in self.conv_up:
                feat = F.leaky_relu(conv(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
            out = self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))
        else:
            out = F.pixel_shuffle(self.conv_last(feat), self.scale)  # [N, C, sH, sW]
        return base + out

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.init_kwargs.items())


class PatchDiscriminator(nn.Module):
    """A small spectrally normalised patch discriminator: ``[N, C, H, W]`` -> logits
    ``[N, 1, H/4, W/4]``, one per overlapping patch (PatchGAN, Isola et al. 2017)."""

    def __init__(
        self,
        img_channels: int = 3,   # Image channels.
        channels: int = 64,      # Width of the first layer; doubled after each downsampling.
    ):
        super().__init__()
        self.init_kwargs = {"img_channels": check_int(img_channels, "img_channels", minimum=1),
                            "channels": check_int(channels, "channels", minimum=1)}
        sn = nn.utils.parametrizations.spectral_norm
        c = channels
        self.convs = nn.ModuleList([
            sn(nn.Conv2d(img_channels, c, 3, 1, 1)),
            sn(nn.Conv2d(c, 2 * c, 4, 2, 1)),
            sn(nn.Conv2d(2 * c, 4 * c, 4, 2, 1)),
            sn(nn.Conv2d(4 * c, 4 * c, 3, 1, 1)),
        ])
        self.conv_out = sn(nn.Conv2d(4 * c, 1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)
        return self.conv_out(x)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.init_kwargs.items())


# --------------------------------------------------------------------------------------------
# Degradations
# --------------------------------------------------------------------------------------------
class Degradation(BaseModel):
    """How HR patches are turned into LR inputs; each step is applied with its probability.

    Blur sigmas are in LR pixels (multiplied by the scale for the HR kernel), so one setting
    means the same softness at ×2 and ×4; Real-ESRGAN's HR range 0.2-3 px at ×4 is 0.05-0.75.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    blur_prob: float = Field(0.5, ge=0, le=1, description="Chance of a Gaussian blur.")
    blur_sigma: tuple[float, float] = Field((0.05, 0.5), description="Blur sigma range "
                                            "(LR px).")
    anisotropic_prob: float = Field(0.5, ge=0, le=1, description="Chance a blur kernel is "
                                    "anisotropic (two sigmas, random angle).")
    resize_modes: tuple[Literal["area", "bilinear", "bicubic"], ...] = Field(
        ("area", "bilinear", "bicubic"), min_length=1, description="Downscaling kernels, one "
        "drawn per image (bilinear and bicubic antialiased).")
    noise_prob: float = Field(0.5, ge=0, le=1, description="Chance of Gaussian noise.")
    noise_sigma: tuple[float, float] = Field((1.0, 15.0), description="Noise sigma range in "
                                             "0-255 levels.")
    gray_noise_prob: float = Field(0.4, ge=0, le=1, description="Chance noise is the same in "
                                   "all channels (Real-ESRGAN's grey noise).")
    jpeg_prob: float = Field(0.5, ge=0, le=1, description="Chance of JPEG re-compression.")
    jpeg_quality: tuple[int, int] = Field((50, 95), description="JPEG quality range.")

    @model_validator(mode="after")
    def _check_ranges(self) -> Degradation:
        for name in ("blur_sigma", "noise_sigma", "jpeg_quality"):
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                raise ValueError(f"{name} must be a range 0 <= low <= high, got {low}, {high}")
        if self.blur_sigma[0] <= 0 < self.blur_prob:
            raise ValueError("blur_sigma must be > 0 when blur_prob > 0")
        if self.jpeg_quality[1] > 100 or self.jpeg_quality[0] < 1:
            raise ValueError("jpeg_quality must lie in 1..100")
        return self


DEGRADATIONS: dict[str, Degradation] = {
    # Most inputs clean or nearly: generator outputs are clean, some images a user brings are
    # not. The default: it beats bicubic on clean and on degraded inputs (benchmark).
    "light": Degradation(blur_prob=0.3, noise_prob=0.3, noise_sigma=(1.0, 10.0), jpeg_prob=0.3,
                         jpeg_quality=(60, 95)),
    # Each step half the time: denoises more, at a small cost on clean inputs.
    "mixed": Degradation(),
    # Real-ESRGAN's first-order ranges (blur 0.2-3 HR px at x4, noise 1-30, JPEG 30-95).
    "real": Degradation(blur_prob=1.0, blur_sigma=(0.05, 0.75), noise_prob=1.0,
                        noise_sigma=(1.0, 30.0), jpeg_prob=1.0, jpeg_quality=(30, 95)),
    # The classic SR setting: an antialiased bicubic downscale and nothing else.
    "bicubic": Degradation(blur_prob=0.0, noise_prob=0.0, jpeg_prob=0.0,
                           resize_modes=("bicubic",)),
}


def get_degradation(name: str) -> Degradation:
    """A named degradation setting (see :data:`DEGRADATIONS`)."""
    check_option(name, "degradation", DEGRADATIONS)
    return DEGRADATIONS[name]


def _uniform(low: float, high: float, n: int, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64)


def _blur_kernels(sigma_x: torch.Tensor, sigma_y: torch.Tensor, theta: torch.Tensor,
                  size: int) -> torch.Tensor:
    """Normalised (rotated) Gaussian kernels ``[n, size, size]``; sigma 0 gives a delta."""
    r = torch.arange(size, dtype=torch.float64) - size // 2
    yy, xx = torch.meshgrid(r, r, indexing="ij")  # [size, size]
    cos, sin = theta.cos().view(-1, 1, 1), theta.sin().view(-1, 1, 1)
    u = cos * xx + sin * yy  # [n, size, size]: coordinates along the kernel's own axes
    v = -sin * xx + cos * yy
    sx = sigma_x.clamp_min(1e-6).view(-1, 1, 1)
    sy = sigma_y.clamp_min(1e-6).view(-1, 1, 1)
    k = torch.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2))
    return k / k.sum(dim=(1, 2), keepdim=True)


def _jpeg(image: torch.Tensor, quality: int) -> torch.Tensor:
    """One ``[3, H, W]`` image in [-1, 1] through Pillow's JPEG encoder and decoder."""
    array = to_uint8(image[None])[0]  # [H, W, 3]
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=int(quality))
    decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    out = torch.from_numpy(decoded.transpose(2, 0, 1).astype(np.float32)) / 127.5 - 1
    return out.to(image.device)


def degrade(hr: torch.Tensor, scale: int, config: Degradation,
            generator: torch.Generator) -> torch.Tensor:
    """HR images ``[N, 3, H, W]`` in [-1, 1] -> degraded LR ``[N, 3, H/s, W/s]``, 8-bit values.

    Blur, downscale, noise, JPEG, quantisation, in that order (Real-ESRGAN's first order).
    Every random draw comes from ``generator`` (a CPU generator), so a run is reproducible
    and resumes exactly.
    """
    assert_shape(hr, [None, 3, None, None], "hr")
    n, _, height, width = hr.shape
    if height % scale or width % scale:
        raise NeuropaintError(f"HR size {width}x{height} is not a multiple of the scale {scale}.")
    device = hr.device
    x = hr
    # Blur: one kernel per image, all of one size (the largest needed), deltas where unblurred.
    blurred = torch.rand(n, generator=generator) < config.blur_prob
    sigma = _uniform(*config.blur_sigma, n, generator) * scale
    sigma2 = _uniform(*config.blur_sigma, n, generator) * scale
    theta = _uniform(0.0, math.pi, n, generator)
    aniso = torch.rand(n, generator=generator) < config.anisotropic_prob
    if blurred.any():
        sigma_x = torch.where(blurred, sigma, torch.zeros_like(sigma))
        sigma_y = torch.where(blurred & aniso, sigma2, sigma_x)
        radius = math.ceil(3 * float(torch.maximum(sigma_x, sigma_y).max()))
        radius = max(1, min(radius, 10, min(height, width) // 2 - 1))  # 21 px at most
        kernels = _blur_kernels(sigma_x, sigma_y, theta, 2 * radius + 1)  # [n, k, k]
        kernels = kernels.to(device, x.dtype).repeat_interleave(3, dim=0)[:, None]  # [3n, 1, k, k]
        flat = F.pad(x.reshape(1, n * 3, height, width), [radius] * 4, mode="reflect")
        x = F.conv2d(flat, kernels, groups=n * 3).view(n, 3, height, width)
    # Downscale: a kernel drawn per image.
    modes = torch.randint(len(config.resize_modes), (n,), generator=generator)
    lr = torch.empty(n, 3, height // scale, width // scale, dtype=x.dtype, device=device)
    for m, mode in enumerate(config.resize_modes):
        pick = (modes == m).nonzero().flatten().tolist()
        if pick:
            kwargs = {} if mode == "area" else {"antialias": True, "align_corners": False}
            lr[pick] = F.interpolate(x[pick], size=lr.shape[2:], mode=mode, **kwargs)
    # Noise, in 0-255 levels (127.5 levels per unit of our [-1, 1] range).
    noisy = torch.rand(n, generator=generator) < config.noise_prob
    noise_sigma = _uniform(*config.noise_sigma, n, generator).float() / 127.5
    gray = torch.rand(n, generator=generator) < config.gray_noise_prob
    colour_noise = torch.randn(lr.shape, generator=generator)
    gray_noise = torch.randn((n, 1, *lr.shape[2:]), generator=generator).expand_as(colour_noise)
    noise = torch.where(gray.view(-1, 1, 1, 1), gray_noise, colour_noise)
    noise = noise * (noise_sigma * noisy).view(-1, 1, 1, 1)
    lr = (lr + noise.to(device, lr.dtype)).clamp(-1, 1)
    # JPEG through Pillow (a real codec, on the CPU), then 8-bit quantisation for everyone.
    compressed = torch.rand(n, generator=generator) < config.jpeg_prob
    quality = torch.randint(config.jpeg_quality[0], config.jpeg_quality[1] + 1, (n,),
                            generator=generator)
    for i in compressed.nonzero().flatten().tolist():
        lr[i] = _jpeg(lr[i], int(quality[i]))
    return (lr * 127.5 + 127.5).round().clamp(0, 255) / 127.5 - 1


# --------------------------------------------------------------------------------------------
# Quality metrics and baselines
# --------------------------------------------------------------------------------------------
def _levels(x: torch.Tensor, crop: int) -> torch.Tensor:
    """[-1, 1] images -> 0-255 float64 levels (rounded like the saved 8-bit image), cropped."""
    x = (x.detach().double() * 127.5 + 127.5).round().clamp(0, 255)
    if crop:
        x = x[:, :, crop:-crop, crop:-crop]
    return x


def psnr(a: torch.Tensor, b: torch.Tensor, *, crop: int = 0) -> torch.Tensor:
    """PSNR in dB of each image pair ``[N, C, H, W]`` in [-1, 1], on 8-bit RGB levels.

    ``crop`` border pixels are left out (SR papers crop ``scale`` pixels).
    """
    x, y = _levels(a, crop), _levels(b, crop)
    mse = (x - y).square().mean(dim=(1, 2, 3)).clamp_min(1e-10)
    return 10 * torch.log10(255.0**2 / mse)


def ssim(a: torch.Tensor, b: torch.Tensor, *, crop: int = 0) -> torch.Tensor:
    """SSIM of each image pair ``[N, C, H, W]`` in [-1, 1] (Wang et al. 2004).

    An 11x11 Gaussian window (σ = 1.5), K1 = 0.01, K2 = 0.03 on 0-255 levels, "valid" windows
    only; the SSIM map is averaged over positions and channels.
    """
    x, y = _levels(a, crop), _levels(b, crop)
    if min(x.shape[2:]) < 11:
        raise NeuropaintError(f"SSIM needs images of at least 11 px, got {list(x.shape[2:])}.")
    g = torch.exp(-0.5 * ((torch.arange(11, dtype=torch.float64) - 5) / 1.5) ** 2)
    g = (g / g.sum()).tolist()

    def blur(t: torch.Tensor) -> torch.Tensor:
        # The 2-D window is the outer product of g with itself: two 1-D passes of shifted
        # slices (exact, and 10x faster in float64 than a depthwise 11x11 conv2d on a CPU).
        h, w = t.shape[2] - 10, t.shape[3] - 10
        rows = sum(g[i] * t[:, :, i : i + h] for i in range(11))  # [N, C, H-10, W]
        return sum(g[i] * rows[:, :, :, i : i + w] for i in range(11))  # [N, C, H-10, W-10]

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim_map.mean(dim=(1, 2, 3))


def _pil_upscale(lr: torch.Tensor, scale: int, resample: Image.Resampling) -> torch.Tensor:
    images = to_uint8(lr)  # [N, H, W, 3]
    h, w = images.shape[1:3]
    out = np.stack([np.asarray(Image.fromarray(im).resize((w * scale, h * scale), resample))
                    for im in images])
    return torch.from_numpy(out.transpose(0, 3, 1, 2).astype(np.float32)) / 127.5 - 1


def bicubic_upscale(lr: torch.Tensor, scale: int) -> torch.Tensor:
    """The bicubic baseline: Pillow's bicubic (a = -0.5, as MATLAB's imresize) on 8-bit images."""
    return _pil_upscale(lr, scale, Image.Resampling.BICUBIC).to(lr.device)


def nearest_upscale(lr: torch.Tensor, scale: int) -> torch.Tensor:
    """The nearest-neighbour baseline (pixel replication)."""
    return lr.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)


def compare(upscale: Callable[[torch.Tensor], torch.Tensor], lr: torch.Tensor,
            hr: torch.Tensor, scale: int, *, batch: int = 16) -> dict[str, float]:
    """Mean PSNR and SSIM of ``upscale(lr)``, bicubic and nearest against ``hr``."""
    sr = torch.cat([upscale(lr[i : i + batch]).float().cpu() for i in range(0, len(lr), batch)])
    hr, lr = hr.cpu(), lr.cpu()
    result = {}
    for name, images in (("model", sr.clamp(-1, 1)), ("bicubic", bicubic_upscale(lr, scale)),
                         ("nearest", nearest_upscale(lr, scale))):
        result[f"psnr_{name}"] = float(psnr(images, hr, crop=scale).mean())
        result[f"ssim_{name}"] = float(ssim(images, hr, crop=scale).mean())
    return result


# --------------------------------------------------------------------------------------------
# Tiled inference and the Upscaler
# --------------------------------------------------------------------------------------------
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


class Upscaler:
    """A trained upscaler, ready to apply: ``Upscaler.from_pretrained(path)(x)``.

    Parameters
    ----------
    net : RRDBNet
        The network (its EMA weights, for a trained one).
    info : dict | None
        What the checkpoint says about it (preset, training stats, defaults).
    """

    def __init__(self, net: RRDBNet, info: dict | None = None):
        # channels_last: measured 34 -> 22 ms per 64 -> 256 px frame on one CPU thread
        # (oneDNN's convolutions need no layout reorders); training measured no difference.
        self.net = net.eval().requires_grad_(False).to(memory_format=torch.channels_last)
        self.info = dict(info or {})

    @property
    def scale(self) -> int:
        """The upscaling factor (2 or 4)."""
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


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------
class UpscaleTrainConfig(BaseModel):
    """Everything ``gan.upscale train`` is told; saved in every snapshot."""

    model_config = ConfigDict(extra="forbid")

    data: str = Field(description="Tile store of HR images (datasets.art build).")
    out: str = Field(description="Run folder: snapshots, stats.jsonl.")
    scale: Literal[2, 4] = Field(4, description="Upscaling factor.")
    preset: str = Field("cpu", description="Preset name (gan.upscale.list_presets()).")
    steps: int | None = Field(20000, ge=0, description="L1 (pixel loss) steps; None: until "
                              "max_minutes.")
    adversarial_steps: int = Field(0, ge=0, description="GAN fine-tuning steps after the L1 "
                                   "steps (L1 kept).")
    adversarial_weight: float = Field(0.05, gt=0, description="Weight of the RaGAN loss "
                                      "against L1 (weight 1) in the fine-tuning.")
    batch: int | None = Field(None, ge=1, description="Patches per step (None: the preset's).")
    patch: int | None = Field(None, ge=8, description="HR patch side (None: the preset's).")
    lr: float | None = Field(None, gt=0, description="Learning rate (None: the preset's).")
    lr_schedule: Literal["cosine", "constant"] = Field(
        "cosine", description="L1 phase: cosine decay to 5 % of lr over the steps, or constant "
        "(always constant when only max_minutes bounds the run); the GAN phase uses lr / 2.")
    degradation: str = Field("light", description="Degradation setting: light, mixed, real "
                             "or bicubic (gan.upscale.DEGRADATIONS).")
    denoise: Literal["none", "before", "after", "both"] = Field(
        "none", description="Denoise step 'apply' uses by default with this model.")
    val_fraction: float = Field(0.1, ge=0, lt=1, description="Share of source images held "
                                "out (0: no validation).")
    val_tiles: int = Field(32, ge=1, description="Held-out tiles used for validation.")
    val_every: int = Field(500, ge=1, description="Steps between validations.")
    snapshot_every: int = Field(1000, ge=1, description="Steps between snapshots.")
    keep_snapshots: int = Field(3, ge=1, description="Newest snapshots kept (older ones are "
                                "removed).")
    tick_every: int = Field(50, ge=1, description="Steps between stats.jsonl lines.")
    seed: int = Field(0, ge=0, description="Random seed.")
    resume: str | None = Field(None, description="'auto' (the run's latest snapshot) or a "
                               "snapshot path.")
    device: str = Field("auto", description="'auto', 'cpu', 'cuda' or 'cuda:N'.")
    max_minutes: float | None = Field(None, gt=0, description="Stop (with a snapshot) after "
                                      "this many minutes.")

    @model_validator(mode="after")
    def _check_budget(self) -> UpscaleTrainConfig:
        if self.steps is None and self.max_minutes is None:
            raise ValueError("give steps, max_minutes or both")
        if self.steps is None and self.adversarial_steps:
            raise ValueError("adversarial steps follow the L1 steps: give steps too")
        if self.steps == 0 and self.adversarial_steps == 0:
            raise ValueError("steps and adversarial_steps are both 0: nothing to train")
        return self


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


def ragan_losses(real_logits: torch.Tensor, fake_logits: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Relativistic average GAN losses (ESRGAN eq. 1-2) as ``(loss_d, loss_g)``.

    ``D_Ra(a, b) = sigmoid(C(a) - mean C(b))``; D wants real more realistic than the average
    fake and fake less than the average real, G the opposite; each is the mean of the two
    binary cross-entropies.
    """
    real_rel = real_logits - fake_logits.mean()
    fake_rel = fake_logits - real_logits.mean()
    loss_d = (F.softplus(-real_rel).mean() + F.softplus(fake_rel).mean()) / 2
    loss_g = (F.softplus(real_rel).mean() + F.softplus(-fake_rel).mean()) / 2
    return loss_d, loss_g


@dataclass
class UpscaleCounters:
    """Progress through a run, saved in every snapshot."""

    step: int = 0
    nimg: int = 0


class UpscaleTrainer:
    """One upscaler training run: networks, optimisers, patches, degradations, the loop."""

    def __init__(self, cfg: UpscaleTrainConfig):
        self.cfg = cfg
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise NeuropaintError("gan.upscale train runs in one process; start it without "
                                  "torchrun.")
        check_option(cfg.preset, "preset", _PRESETS)
        overrides = {k: v for k, v in (("batch", cfg.batch), ("patch", cfg.patch),
                                       ("lr", cfg.lr)) if v is not None}
        self.preset = get_preset(cfg.preset, **overrides)
        self.degradation = get_degradation(cfg.degradation)
        self.dist: Dist = setup_distributed(cfg.device)
        self.device = self.dist.device
        self.run_dir = Path(cfg.out)
        torch.manual_seed(cfg.seed)
        self.data = PatchSource(cfg.data, patch=self.preset.patch, scale=cfg.scale,
                                val_fraction=cfg.val_fraction, seed=cfg.seed)
        p = self.preset
        self.net = RRDBNet(scale=cfg.scale, num_feat=p.num_feat, num_block=p.num_block,
                           num_grow_ch=p.num_grow_ch, upsampler=p.upsampler).to(self.device)
        self.net_ema = copy.deepcopy(self.net).eval().requires_grad_(False)
        self.D = PatchDiscriminator(channels=p.d_channels).to(self.device)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=p.lr, betas=p.betas)
        self.D_opt = torch.optim.Adam(self.D.parameters(), lr=p.d_lr, betas=p.betas)
        self.counters = UpscaleCounters()
        self.history: list[dict] = []
        # Held-out pairs, degraded once with their own fixed generator: the same every time.
        self.val_hr = self.data.validation_tiles(cfg.val_tiles)
        self.val_lr = (degrade(self.val_hr, cfg.scale, self.degradation,
                               torch.Generator().manual_seed(cfg.seed + 7919))
                       if len(self.val_hr) else self.val_hr)
        if cfg.resume:
            self.resume(cfg.resume)

    @property
    def l1_steps(self) -> float:
        """Steps of the L1 phase (infinite when only a time budget is given)."""
        return math.inf if self.cfg.steps is None else self.cfg.steps

    @property
    def total_steps(self) -> float:
        return self.l1_steps + self.cfg.adversarial_steps

    # ------------------------------------------------------------------ the steps
    def train_step(self) -> dict[str, float]:
        """One step: a degraded batch, L1 (and in phase two, RaGAN) for G, then D, then EMA."""
        cfg, c = self.cfg, self.counters
        hr = self.data.batch(self.preset.batch).to(self.device)
        lr = degrade(hr, cfg.scale, self.degradation, self.data.generator)
        adversarial = c.step >= self.l1_steps
        self.net.requires_grad_(True)
        self.D.requires_grad_(False)
        sr = self.net(lr)
        l1 = (sr - hr).abs().mean()
        stats = {"l1": float(l1.detach())}
        loss = l1
        if adversarial:
            _, loss_g = ragan_losses(self.D(hr), self.D(sr))
            loss = l1 + cfg.adversarial_weight * loss_g
            stats["loss_g"] = float(loss_g.detach())
        for group in self.opt.param_groups:
            group["lr"] = self.learning_rate(c.step)
        optimizer_step([(self.net, self.opt)], loss, self.dist, phase="upscaler")
        if adversarial:
            self.D.requires_grad_(True)
            loss_d, _ = ragan_losses(self.D(hr), self.D(sr.detach()))
            optimizer_step([(self.D, self.D_opt)], loss_d, self.dist, phase="discriminator")
            stats["loss_d"] = float(loss_d.detach())
        c.step += 1
        c.nimg += self.preset.batch
        self.update_ema()
        return stats

    def learning_rate(self, step: int) -> float:
        """The upscaler's learning rate at ``step`` (a function of the step: resumes exactly).

        ESRGAN trains its GAN phase at half the PSNR phase's rate; the L1 phase decays along a
        cosine to 5 % (one cycle of SGDR, Loshchilov & Hutter 2017), the usual way to let a long
        run settle. (In 600-step cpu-preset runs here it made no measurable difference.)
        """
        base = self.preset.lr
        if step >= self.l1_steps:
            return base / 2
        if self.cfg.lr_schedule == "constant" or math.isinf(self.l1_steps):
            return base
        return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / self.l1_steps)))

    @torch.no_grad()
    def update_ema(self) -> None:
        """EMA of the upscaler, its decay ramped up as ``(1 + step) / (10 + step)``."""
        step = self.counters.step
        beta = min(self.preset.ema_decay, (1 + step) / (10 + step))
        for p_ema, p in zip(self.net_ema.parameters(), self.net.parameters(), strict=True):
            p_ema.copy_(p.detach().lerp(p_ema, beta))

    @torch.inference_mode()
    def validate(self) -> dict[str, float]:
        """PSNR/SSIM of the EMA upscaler, bicubic and nearest on the held-out tiles."""
        if not len(self.val_hr):
            return {}
        result = compare(lambda x: self.net_ema(x.to(self.device)), self.val_lr, self.val_hr,
                         self.cfg.scale)
        return {k: round(v, 4) for k, v in result.items()}

    # ------------------------------------------------------------------ the loop
    def train(self, progress: bool = False) -> Path | None:
        """Run to ``steps + adversarial_steps`` (or ``max_minutes``); return the last snapshot."""
        cfg, c = self.cfg, self.counters
        started = time.monotonic()
        bar = None
        if progress:
            from tqdm import tqdm

            total = None if math.isinf(self.total_steps) else int(self.total_steps)
            bar = tqdm(total=total, initial=c.step, unit="step", dynamic_ncols=True)
        last_snapshot = None
        tick: list[dict] = []
        tick_start = time.monotonic()
        try:
            while c.step < self.total_steps:
                tick.append(self.train_step())
                if bar is not None:
                    bar.update(1)
                timed_out = (cfg.max_minutes is not None
                             and time.monotonic() - started > cfg.max_minutes * 60)
                end = c.step >= self.total_steps or timed_out
                val = self.validate() if (c.step % cfg.val_every == 0 or end) else {}
                if c.step % cfg.tick_every == 0 or end or val:
                    line = self.tick_line(tick, tick_start, val)
                    tick, tick_start = [], time.monotonic()
                    if bar is not None:
                        bar.set_postfix_str(self.postfix(line))
                if c.step % cfg.snapshot_every == 0 or end:
                    last_snapshot = self.snapshot()
                if timed_out:
                    logger.info("stopping after %.1f minutes (--minutes)", cfg.max_minutes)
                    break
        finally:
            if bar is not None:
                bar.close()
        return last_snapshot

    def postfix(self, line: dict) -> str:
        text = f"L1 {line.get('l1', float('nan')):.4f}"
        if "loss_d" in line:
            text += f" G {line['loss_g']:.2f} D {line['loss_d']:.2f}"
        if "psnr_model" in line:
            text += f" val PSNR {line['psnr_model']:.2f} (bicubic {line['psnr_bicubic']:.2f})"
        return text

    def tick_line(self, losses: list[dict], tick_start: float, val: dict) -> dict:
        """Average the tick's losses, add validation figures, append to stats.jsonl."""
        c = self.counters
        keys = sorted({k for s in losses for k in s})
        line: dict[str, Any] = {k: float(np.mean([s[k] for s in losses if k in s]))
                                for k in keys}
        seconds = max(time.monotonic() - tick_start, 1e-9)
        line.update({"step": c.step, "nimg": c.nimg,
                     "phase": "adversarial" if c.step > self.l1_steps else "l1",
                     "sec_per_step": seconds / max(len(losses), 1), **val,
                     "time": time.time()})
        self.history.append(line)
        append_json_line(self.run_dir / "stats.jsonl", line)
        return line

    # ------------------------------------------------------------------ snapshots
    def training_state(self) -> dict:
        return {
            "step": self.counters.step,
            "nimg": self.counters.nimg,
            "opt": self.opt.state_dict(),
            "D_opt": self.D_opt.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "data_rng": self.data.generator.get_state(),
            "cuda_rng": (torch.cuda.get_rng_state(self.device)
                         if self.device.type == "cuda" else torch.zeros(0, dtype=torch.uint8)),
        }

    def snapshot(self) -> Path:
        """Write a snapshot with a preview; mark it latest; drop the oldest beyond the limit."""
        c = self.counters
        folder = self.run_dir / "snapshots" / f"{c.step:09d}"
        last_val = next((h for h in reversed(self.history) if "psnr_model" in h), None)
        config = {
            "model": MODEL_KIND,
            "scale": self.cfg.scale,
            "denoise": self.cfg.denoise,
            "preset": self.preset.model_dump(mode="json"),
            "degradation": self.degradation.model_dump(mode="json"),
            "train_config": self.cfg.model_dump(mode="json"),
            "split": {"train_tiles": len(self.data.train_idx),
                      "val_tiles": len(self.data.val_idx),
                      "train_sources": self.data.n_sources[0],
                      "val_sources": self.data.n_sources[1]},
            "stats": {"step": c.step, "nimg": c.nimg, "validation": last_val},
        }
        networks = {NETWORK_NAMES["net"]: self.net, NETWORK_NAMES["ema"]: self.net_ema,
                    NETWORK_NAMES["D"]: self.D}
        save_snapshot(folder, networks, config, self.training_state())
        if len(self.val_hr):
            self.write_preview(folder / "preview.png")
        mark_latest(self.run_dir, folder)
        snapshots = sorted(p for p in (self.run_dir / "snapshots").iterdir()
                           if p.is_dir() and not p.name.endswith(".partial"))
        for old in snapshots[: -self.cfg.keep_snapshots]:
            shutil.rmtree(old, ignore_errors=True)
        logger.info("snapshot %s", folder)
        return folder

    @torch.inference_mode()
    def write_preview(self, path: Path, count: int = 4) -> Path:
        """Rows of nearest | bicubic | upscaled (EMA) | original for held-out tiles."""
        lr, hr = self.val_lr[:count], self.val_hr[:count]
        sr = self.net_ema(lr.to(self.device)).clamp(-1, 1).cpu()
        s = self.cfg.scale
        columns = [nearest_upscale(lr, s), bicubic_upscale(lr, s), sr, hr]
        images = np.stack([to_uint8(col[i : i + 1])[0] for i in range(len(lr))
                           for col in columns])
        with atomic_path(path) as tmp:
            Image.fromarray(image_grid(images, cols=4)).save(tmp, format="PNG")
        return path

    def resume(self, source: str) -> None:
        """Restore networks, optimisers, counters, RNG and patch stream from a snapshot."""
        if source == "auto":
            if not (self.run_dir / "latest").exists() and not (self.run_dir / "snapshots"
                                                                ).exists():
                logger.info("nothing to resume in %s: starting afresh", self.run_dir)
                return
            source = str(self.run_dir)
        folder = resolve_snapshot(source)
        config = read_config(folder)
        if config.get("model") != MODEL_KIND:
            raise NeuropaintError(f"{folder} is not an upscaler snapshot; cannot resume from it.")
        for key, net in (("net", self.net), ("ema", self.net_ema), ("D", self.D)):
            loaded = load_network(folder, NETWORK_NAMES[key])
            if type(loaded) is not type(net) or loaded.init_kwargs != net.init_kwargs:
                raise NeuropaintError(f"{folder} holds a different {NETWORK_NAMES[key]} than "
                                      f"preset {self.preset.name!r} at x{self.cfg.scale} "
                                      f"builds; resume with the settings it was trained with.")
            net.load_state_dict(loaded.state_dict())
        state = load_state(folder)
        self.opt.load_state_dict(state["opt"])
        self.D_opt.load_state_dict(state["D_opt"])
        self.counters = UpscaleCounters(step=int(state["step"]), nimg=int(state["nimg"]))
        torch.set_rng_state(state["torch_rng"])
        self.data.generator.set_state(state["data_rng"])
        if self.device.type == "cuda" and state["cuda_rng"].numel():
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.trim_stats(self.counters.step)
        logger.info("resumed from %s at step %d", folder, self.counters.step)

    def trim_stats(self, step: int) -> None:
        """Drop stats lines written after the snapshot we resume from: the curve continues."""
        self.history, dropped = trim_json_lines(self.run_dir / "stats.jsonl", "step", step)
        if dropped:
            logger.info("stats.jsonl: dropped %d lines written after step %d", dropped, step)


# --------------------------------------------------------------------------------------------
# Applying to files
# --------------------------------------------------------------------------------------------
@dataclass
class ApplyResult:
    """What ``apply`` did with one input file."""

    file: str
    status: Literal["written", "kept", "skipped"]
    output: str | None = None
    reason: str | None = None
    note: str | None = None


def _expand_inputs(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Files as given; a folder stands for the image files directly inside it (sorted)."""
    from datasets.imageio import IMAGE_SUFFIXES, UNSUPPORTED_SUFFIXES

    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            wanted = set(IMAGE_SUFFIXES) | set(UNSUPPORTED_SUFFIXES)
            files.extend(sorted(p for p in path.iterdir()
                                if p.is_file() and p.suffix.lower() in wanted))
        else:
            files.append(path)
    return files


def _read_image(path: Path) -> tuple[np.ndarray, str | None]:
    """An image file as uint8 RGB, and a note when its mode was converted."""
    from datasets.imageio import UNSUPPORTED_SUFFIXES, BadImage, decode

    kind = UNSUPPORTED_SUFFIXES.get(path.suffix.lower())
    if kind is not None:
        raise BadImage("unsupported-format", f"{kind} files are not read: export the image as "
                       f"PNG or JPEG")
    data = path.read_bytes()
    image, _ = decode(data)
    note = None
    with Image.open(io.BytesIO(data)) as header:
        mode = header.mode
        alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in header.info
    if alpha:
        note = f"{mode} image: transparency composited over white, written as RGB"
    elif mode not in ("RGB", "P", "CMYK", "YCbCr"):
        note = f"{mode} image written as RGB"
    return np.asarray(image), note


def _output_name(path: Path, scale: int, taken: set[str]) -> str:
    name = f"{path.stem}_x{scale}.png"
    k = 2
    while name in taken:  # two inputs of one stem (a.jpg, a.png) keep two outputs
        name = f"{path.stem}-{k}_x{scale}.png"
        k += 1
    taken.add(name)
    return name


def apply_files(
    upscaler: Upscaler,
    inputs: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    denoise: str | None = None,
    tile: int = 128,
    overlap: int = 16,
    overwrite: bool = False,
    progress: Callable[[ApplyResult], None] | None = None,
) -> list[ApplyResult]:
    """Upscale image files into ``out`` as ``NAME_x{scale}.png``; one result per input.

    Bad, too small or too large files are skipped with a reason; an existing output is kept
    unless ``overwrite``; every PNG is written atomically the moment it is ready, so an
    interrupted run loses nothing already written. ``denoise`` None: the model's default.
    """
    from datasets.imageio import BadImage

    denoise = upscaler.default_denoise if denoise is None else denoise
    check_option(denoise, "denoise", DENOISE_MODES)
    tile = check_int(tile, "tile", minimum=MIN_SIDE)
    overlap = check_int(overlap, "overlap", minimum=0)
    if overlap > tile // 2:
        raise NeuropaintError(f"'overlap' must be at most half the tile ({tile // 2}), got "
                              f"{overlap}.")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NeuropaintError(f"'--out' must be a folder, got the file {out}.")
    files = _expand_inputs(inputs)
    if not files:
        raise NeuropaintError("no image files given (folders are searched for image files "
                              "directly inside them).")
    out.mkdir(parents=True, exist_ok=True)
    s = upscaler.scale
    taken: set[str] = set()
    results = []
    for path in files:
        name = _output_name(path, s, taken)
        target = out / name
        if target.exists() and not overwrite:
            result = ApplyResult(str(path), "kept", str(target),
                                 reason="output exists (pass --overwrite to replace it)")
        else:
            try:
                image, note = _read_image(path)
            except (BadImage, OSError) as exc:
                reason = f"{exc.reason}: {exc.detail}" if isinstance(exc, BadImage) \
                    else f"unreadable: {exc.strerror or exc}"
                result = ApplyResult(str(path), "skipped", reason=reason)
            else:
                h, w = image.shape[:2]
                if min(h, w) < MIN_SIDE:
                    result = ApplyResult(str(path), "skipped", reason=f"too-small: {w}x{h} px, "
                                         f"the upscaler needs at least {MIN_SIDE} px a side")
                elif h * w * s * s > MAX_OUTPUT_PIXELS:
                    result = ApplyResult(str(path), "skipped", reason=f"too-large: the output "
                                         f"would be {w * s}x{h * s} px, over "
                                         f"{MAX_OUTPUT_PIXELS / 1e6:g} MP")
                else:
                    big = upscaler.upscale_image(image, denoise=denoise, tile=tile,
                                                 overlap=overlap)
                    with atomic_path(target) as tmp:
                        Image.fromarray(big).save(tmp, format="PNG")
                    result = ApplyResult(str(path), "written", str(target), note=note)
        results.append(result)
        if progress is not None:
            progress(result)
    return results


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------
def _cmd_train(args: argparse.Namespace) -> int:
    check_option(args.scale, "scale", SCALES)
    if args.preset not in _PRESETS:
        raise NeuropaintError(f"unknown upscaler preset {args.preset!r}; valid presets: "
                              f"{', '.join(_PRESETS)}.")
    if args.steps is None and args.minutes is None:
        args.steps = 20000
    cfg = build_config(UpscaleTrainConfig, data=args.store, out=args.out, scale=args.scale,
                       preset=args.preset, steps=args.steps,
                       adversarial_steps=args.adversarial_steps,
                       adversarial_weight=args.adversarial_weight, batch=args.batch,
                       patch=args.patch, lr=args.lr, degradation=args.degradation,
                       denoise=args.denoise, val_fraction=args.val_fraction,
                       val_every=args.val_every, snapshot_every=args.snapshot_every,
                       seed=args.seed, resume=args.resume, device=args.device,
                       max_minutes=args.minutes)
    trainer = UpscaleTrainer(cfg)
    if not args.quiet:
        train_sources, val_sources = trainer.data.n_sources
        print(f"x{cfg.scale} upscaler, preset {trainer.preset.name} "
              f"({sum(p.numel() for p in trainer.net.parameters()):,} parameters) on "
              f"{trainer.device}; {len(trainer.data.train_idx)} training tiles from "
              f"{train_sources} images, {len(trainer.data.val_idx)} held-out tiles from "
              f"{val_sources}")
    snapshot = trainer.train(progress=not args.quiet) or resolve_snapshot(trainer.run_dir)
    last = next((h for h in reversed(trainer.history) if "psnr_model" in h), None)
    summary = f"done: step {trainer.counters.step}; latest snapshot {snapshot}"
    if last:
        summary += (f"; held-out PSNR {last['psnr_model']:.2f} dB (bicubic "
                    f"{last['psnr_bicubic']:.2f}), SSIM {last['ssim_model']:.4f} (bicubic "
                    f"{last['ssim_bicubic']:.4f})")
    print(summary)
    return 0


def _cmd_apply(args: argparse.Namespace) -> int:
    device = setup_distributed(args.device).device
    upscaler = Upscaler.from_pretrained(args.model, device=device)
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=len(_expand_inputs(args.images)), unit="img", dynamic_ncols=True)

    def report(result: ApplyResult) -> None:
        if bar is not None:
            bar.update(1)
        if result.status == "skipped":
            logger.warning("skipped %s: %s", result.file, result.reason)
        elif result.note:
            logger.info("%s: %s", result.file, result.note)

    try:
        results = apply_files(upscaler, args.images, args.out, denoise=args.denoise,
                              tile=args.tile, overlap=args.overlap, overwrite=args.overwrite,
                              progress=report)
    finally:
        if bar is not None:
            bar.close()
    counts = {k: sum(r.status == k for r in results) for k in ("written", "kept", "skipped")}
    write_json(Path(args.out) / "upscale_report.json", {
        "model": upscaler.info.get("path"), "scale": upscaler.scale,
        "denoise": args.denoise or upscaler.default_denoise, "tile": args.tile,
        "overlap": args.overlap, "counts": counts,
        "files": [r.__dict__ for r in results]})
    print(f"x{upscaler.scale}: wrote {counts['written']}, kept {counts['kept']} existing, "
          f"skipped {counts['skipped']} of {len(results)} images into {args.out}")
    for r in results:
        if r.status == "skipped":
            print(f"  skipped {r.file}: {r.reason}")
        elif r.note:
            print(f"  note {r.file}: {r.note}")
    if counts["written"] + counts["kept"] == 0:
        raise NeuropaintError(f"none of the {len(results)} images could be upscaled.")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gan.upscale",
        description="Train an ESRGAN-style x2/x4 upscaler on a tile store, or apply one to "
        "image files (with optional non-local-means denoising before and/or after).",
        epilog="Run 'python -m gan.upscale COMMAND --help' for the options of each command.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser(
        "train", help="train an upscaler on a tile store",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train on HR patches cut from STORE's tiles, degraded on the fly (blur, "
        "downscale, noise, JPEG); held-out source images validate (PSNR/SSIM against "
        "bicubic). L1 first, then optionally RaGAN fine-tuning with L1 kept.",
        epilog="examples:\n"
        "  python -m gan.upscale train tiles256/ --scale 4 --out runs/sr4 --minutes 30\n"
        "  python -m gan.upscale train tiles256/ --scale 4 --out runs/sr4 --resume auto\n"
        "  python -m gan.upscale train tiles512/ --scale 2 --out runs/sr2 --preset full "
        "--device cuda\n"
        f"presets: {', '.join(f'{n} ({p.description})' for n, p in _PRESETS.items())}")
    t.add_argument("store", metavar="STORE", help="tile store (python -m datasets.art build)")
    t.add_argument("--scale", type=int, default=4, help="upscaling factor, 2 or 4 (default 4)")
    t.add_argument("--out", required=True, help="run folder (snapshots, stats.jsonl)")
    t.add_argument("--preset", default="cpu", help="network size: cpu (default), full, tiny")
    t.add_argument("--steps", type=int, help="L1 steps (default 20000, or until --minutes)")
    t.add_argument("--minutes", type=float, help="stop (with a snapshot) after this long")
    t.add_argument("--adversarial-steps", type=int, default=0, metavar="N",
                   help="RaGAN fine-tuning steps after the L1 steps (default 0)")
    t.add_argument("--adversarial-weight", type=float, default=0.05, metavar="W",
                   help="weight of the GAN loss against L1 (default 0.05)")
    t.add_argument("--batch", type=int, help="patches per step (default: the preset's)")
    t.add_argument("--patch", type=int, help="HR patch side in px (default: the preset's)")
    t.add_argument("--lr", type=float, help="learning rate (default: the preset's)")
    t.add_argument("--degradation", default="light", choices=list(DEGRADATIONS),
                   help="light (default): blur, noise, JPEG each 30%% of the time, mild; mixed: "
                   "each half the time; real: all, Real-ESRGAN's ranges; bicubic: clean "
                   "downscale only")
    t.add_argument("--denoise", default="none", choices=DENOISE_MODES,
                   help="the denoise step 'apply' uses by default with this model")
    t.add_argument("--val-fraction", type=float, default=0.1, metavar="F",
                   help="share of source images held out for validation (default 0.1)")
    t.add_argument("--val-every", type=int, default=500, metavar="N",
                   help="steps between validations (default 500)")
    t.add_argument("--snapshot-every", type=int, default=1000, metavar="N",
                   help="steps between snapshots (default 1000)")
    t.add_argument("--seed", type=int, default=0,
                   help="random seed of the initialisation, patches and degradations "
                   "(default 0)")
    t.add_argument("--resume", help="'auto' (the run's latest snapshot) or a snapshot folder")
    t.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    t.set_defaults(handler=_cmd_train)

    a = sub.add_parser(
        "apply", help="upscale image files with a trained upscaler",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Upscale IMAGES (files, or folders of image files) into OUT as "
        "NAME_x4.png. Large images are processed in overlapping tiles with feathered seams. "
        "Bad files are skipped and reported; existing outputs are kept unless --overwrite.",
        epilog="examples:\n"
        "  python -m gan.upscale apply runs/sr4 frames/*.png --out big/\n"
        "  python -m gan.upscale apply runs/sr4 scans/ --out big/ --denoise before\n"
        "denoise: non-local means with the noise level estimated per image; 'before' cleans "
        "the input, 'after' the upscaled result.")
    a.add_argument("model", metavar="MODEL", help="upscaler run folder or snapshot")
    a.add_argument("images", metavar="IMAGES", nargs="+", help="image files or folders")
    a.add_argument("--out", required=True, help="output folder")
    a.add_argument("--tile", type=int, default=128, help="tile side in input px (default 128)")
    a.add_argument("--overlap", type=int, default=16,
                   help="overlap of neighbouring tiles in input px (default 16)")
    a.add_argument("--denoise", choices=DENOISE_MODES,
                   help="none, before, after or both (default: the model's, usually none)")
    a.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    a.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    a.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    a.set_defaults(handler=_cmd_apply)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m gan.upscale {train,apply} ...``."""
    args = _parser().parse_args(argv)
    setup_logging("WARNING" if args.quiet else "INFO")
    return args.handler(args)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
