"""Degradations: how the upscaler's HR training patches become LR inputs, on the fly.

In the spirit of Real-ESRGAN's first-order degradation model (Wang et al. 2021, "Real-ESRGAN:
Training Real-World Blind Super-Resolution with Pure Synthetic Data"): Gaussian blur with a
random isotropic or anisotropic kernel, downscaling with a random kernel (area, bilinear or
bicubic), Gaussian noise (colour or grey), JPEG re-compression with Pillow, 8-bit
quantisation. Each step is applied with a probability, so that some inputs stay clean, as
generator outputs are: ``light`` (the default) applies each 30 % of the time with mild
ranges, ``mixed`` half the time, ``real`` always with Real-ESRGAN's ranges; ``bicubic`` is the
classic clean downscale. Because some inputs are noisy, the upscaler learns to denoise as it
upscales (more so with ``mixed`` and ``real``, at a small cost on clean inputs).
"""

from __future__ import annotations

import io
import math
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, model_validator

from gan.images import to_uint8
from gan.ops import assert_shape
from neuropaint.validate import NeuropaintError, check_option


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
