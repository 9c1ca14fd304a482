"""The upscaler's networks: ESRGAN's RRDBNet and a patch discriminator, and their presets.

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

A third, cheaper shape for big live frames: ``compact`` (:class:`CompactNet`, the plain
convolution stack of Real-ESRGAN's SRVGGNetCompact, Wang et al. 2021): a few 3x3
convolutions with PReLU at the input resolution and a pixel-shuffle. At x8 from a 64 px
painting it costs a fraction of one RRDB (measured in ``benchmarks/upscale_quality.py``).

Every network predicts a residual over the bicubic upscale of its input, and its last
convolution starts at zero, so an untrained upscaler is exactly bicubic and training only has
to learn the missing detail (the global skip of VDSR, Kim et al. 2016).

The discriminator of the optional GAN phase is a small spectrally normalised (Miyato et al.
2018) patch discriminator (PatchGAN, Isola et al. 2017).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from gan.ops import assert_shape
from neuropaint.validate import NeuropaintError, build_config, check_int, check_option

SCALES = (2, 4, 8)
ARCHS = ("rrdb", "compact")
RES_SCALE = 0.2  # ESRGAN's residual scaling.


# --------------------------------------------------------------------------------------------
# Presets
# --------------------------------------------------------------------------------------------
class UpscalerPreset(BaseModel):
    """Architecture and optimisation settings of one upscaler configuration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Registry name.")
    description: str = Field(description="What the preset is for.")
    arch: Literal["rrdb", "compact"] = Field("rrdb", description="rrdb (ESRGAN's RRDBNet) or "
                                             "compact (a plain convolution stack, CompactNet).")
    num_feat: int = Field(ge=1, description="Feature maps of the trunk.")
    num_block: int = Field(ge=1, description="rrdb: number of RRDBs; compact: number of "
                           "hidden 3x3 convolutions.")
    num_grow_ch: int = Field(ge=1, description="rrdb: growth channels of each dense block "
                             "(compact: unused).")
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
_register(name="compact", description="Big live frames: four 3x3 convolutions x 32 "
          "channels at the input's resolution (x8: 64 -> 512 px live).", arch="compact",
          num_feat=32, num_block=4, num_grow_ch=1, upsampler="pixel-shuffle", d_channels=32,
          batch=16, patch=128, lr=1e-3, d_lr=2e-4)
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


class BicubicPhases(nn.Module):
    """Bicubic upscaling by ``scale`` as a fixed convolution at the input's resolution:
    ``pixel_shuffle(self(x), scale)`` equals ``F.interpolate(x, scale_factor=scale,
    mode="bicubic", align_corners=False)`` (its reference twin, held equal by a test).

    Each of the ``scale²`` output phases is a 4x4 bicubic stencil inside a 5x5 window, one
    depthwise convolution for all of them; the border is replicated, as ``interpolate``
    clamps. Added to a network's pixel-shuffle input it costs a third of ``interpolate``
    plus the addition at full size (x8, 64 -> 512 px: 3.3 vs 10.8 ms on one CPU thread).
    The weights are a buffer computed here, never saved in checkpoints.
    """

    def __init__(self, scale: int, channels: int = 3):
        super().__init__()
        self.scale, self.channels = int(scale), int(channels)
        centre = 4  # an impulse in a 9 x 9 image: its response is the stencil of every phase
        impulse = torch.zeros(1, 1, 9, 9)
        impulse[0, 0, centre, centre] = 1.0
        response = F.interpolate(impulse, scale_factor=self.scale, mode="bicubic",
                                 align_corners=False)[0, 0]  # [9s, 9s]
        # Output pixel s*i + r reads inputs i + k - 2 (k = 0..4): the impulse at `centre`
        # reaches it with weight response[s * (centre - k + 2) + r].
        taps = self.scale * (centre + 2 - torch.arange(5))  # [5]
        phases = torch.stack([response[taps + ry][:, taps + rx]
                              for ry in range(self.scale) for rx in range(self.scale)])
        weight = phases[:, None].repeat(channels, 1, 1, 1)  # [C * s², 1, 5, 5]
        self.register_buffer("weight", weight, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (2, 2, 2, 2), mode="replicate")
        return F.conv2d(x, self.weight.to(x.dtype), groups=self.channels)  # [N, C*s², H, W]


class RRDBNet(nn.Module):
    """ESRGAN's generator: ``[N, C, H, W]`` in ``[-1, 1]`` -> ``[N, C, sH, sW]``.

    The output is the bicubic upscale of the input plus what the network adds (not clamped:
    training sees the raw values; :class:`Upscaler` clamps).
    """

    def __init__(
        self,
        scale: int = 4,                    # Upscaling factor, 2, 4 or 8.
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
            self.base = BicubicPhases(scale, img_channels)
        # Start as plain bicubic: the residual branch adds nothing until it has learnt something.
        nn.init.zeros_(self.conv_last.weight)
        nn.init.zeros_(self.conv_last.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert_shape(x, [None, self.img_channels, None, None], "x")
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        if self.upsampler == "nearest-conv":
            base = F.interpolate(x, scale_factor=self.scale, mode="bicubic",
                                 align_corners=False)
            for conv in self.conv_up:
                feat = F.leaky_relu(conv(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
            return base + self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))
        # The bicubic base joins the residual before the shuffle: one full-size tensor.
        return F.pixel_shuffle(self.conv_last(feat) + self.base(x), self.scale)  # [N, C, sH, sW]

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.init_kwargs.items())


class CompactNet(nn.Module):
    """A plain stack of 3x3 convolutions at the input's resolution, then a pixel-shuffle:
    ``[N, C, H, W]`` in ``[-1, 1]`` -> ``[N, C, sH, sW]`` (Real-ESRGAN's SRVGGNetCompact
    shape). Like :class:`RRDBNet` it adds a residual to the bicubic upscale, and its last
    convolution starts at zero, so an untrained one is exactly bicubic.
    """

    def __init__(
        self,
        scale: int = 8,          # Upscaling factor, 2, 4 or 8.
        num_feat: int = 32,      # Feature maps of every hidden convolution.
        num_conv: int = 4,       # Hidden 3x3 convolutions after the first.
        img_channels: int = 3,   # Image channels in and out.
    ):
        super().__init__()
        check_option(scale, "scale", SCALES)
        self.init_kwargs = {
            "scale": int(scale), "num_feat": check_int(num_feat, "num_feat", minimum=1),
            "num_conv": check_int(num_conv, "num_conv", minimum=0),
            "img_channels": check_int(img_channels, "img_channels", minimum=1),
        }
        self.scale = int(scale)
        self.img_channels = img_channels
        layers: list[nn.Module] = [nn.Conv2d(img_channels, num_feat, 3, 1, 1), nn.PReLU(num_feat)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.PReLU(num_feat)]
        self.body = nn.Sequential(*layers)
        self.conv_last = nn.Conv2d(num_feat, img_channels * scale * scale, 3, 1, 1)
        nn.init.zeros_(self.conv_last.weight)
        nn.init.zeros_(self.conv_last.bias)
        self.base = BicubicPhases(scale, img_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert_shape(x, [None, self.img_channels, None, None], "x")
        out = self.conv_last(self.body(x)) + self.base(x)  # [N, C*s², H, W]: residual + bicubic
        return F.pixel_shuffle(out, self.scale)  # [N, C, sH, sW]

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.init_kwargs.items())


def build_upscaler_net(preset: UpscalerPreset, scale: int) -> nn.Module:
    """The network a preset describes, at ``scale``."""
    if preset.arch == "compact":
        return CompactNet(scale=scale, num_feat=preset.num_feat, num_conv=preset.num_block)
    return RRDBNet(scale=scale, num_feat=preset.num_feat, num_block=preset.num_block,
                   num_grow_ch=preset.num_grow_ch, upsampler=preset.upsampler)


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
