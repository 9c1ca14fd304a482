"""Named training presets: a small registry, from the tests' ``tiny`` to the paper widths.

The paper presets follow StyleGAN2-ADA's published configurations (Karras et al. 2020,
"Training Generative Adversarial Networks with Limited Data", Table/appendix "paper256",
"paper512", "paper1024": widths, mapping depth, batch, learning rates, R1 gamma, EMA). The
CPU presets are designed for a 2-core machine (``benchmarks/gan_speed.py`` and
``benchmarks/train_speed.py`` measure their cost): narrower synthesis layers where the pixels
are many, a shallower mapping network, a smaller minibatch, and a cheaper training step
(a discriminator with half the generator's channels below the cap, and :data:`CPU_STEP`:
the discriminator step judging the generator step's images, path length every 8 steps).

A run records its preset in every snapshot and a resumed run keeps it (``gan.train``), so
changing a preset here never changes a run already under way.

>>> from gan.presets import get_preset, list_presets
>>> get_preset("tiny").resolution
16
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from neuropaint.validate import NeuropaintError


class Preset(BaseModel):
    """Architecture and optimisation settings of one training configuration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Registry name.")
    description: str = Field(description="What the preset is for.")
    arch: Literal["stylegan2", "dcgan"] = Field("stylegan2", description="Network family.")
    resolution: int = Field(description="Image resolution in pixels (square).")
    z_dim: int = Field(512, ge=1, description="Input latent (Z) dimensionality.")
    w_dim: int = Field(512, ge=1, description="Intermediate latent (W) dimensionality.")
    mapping_layers: int = Field(8, ge=1, description="Depth of the mapping network.")
    channel_base: int = Field(32768, ge=1, description="Feature maps at resolution r: "
                              "min(channel_base / r, channel_max).")
    channel_max: int = Field(512, ge=1, description="Maximum feature maps per layer.")
    d_channel_base: int | None = Field(None, description="Discriminator channel_base "
                                       "(None: same as the generator's).")
    d_channel_max: int | None = Field(None, description="Discriminator channel_max "
                                      "(None: same as the generator's).")
    batch: int = Field(32, ge=1, description="Total minibatch over all processes.")
    g_lr: float = Field(0.0025, gt=0, description="Generator learning rate.")
    d_lr: float = Field(0.0025, gt=0, description="Discriminator learning rate.")
    betas: tuple[float, float] = Field((0.0, 0.99), description="Adam betas.")
    r1_gamma: float | None = Field(None, ge=0, description="R1 weight; None: the ADA paper's "
                                   "heuristic 0.0002 * resolution² / batch.")
    r1_interval: int = Field(16, ge=1, description="Steps between lazy R1 regularisations.")
    pl_weight: float = Field(2.0, ge=0, description="Path-length regularisation weight "
                             "(0: off).")
    pl_interval: int = Field(4, ge=1, description="Steps between lazy path-length steps.")
    pl_batch_shrink: int = Field(2, ge=1, description="Path-length minibatch divisor.")
    style_mixing: float = Field(0.9, ge=0, le=1, description="Style-mixing probability.")
    reuse_fakes: bool = Field(False, description="The discriminator step judges the "
                              "generator step's images (drawn just before its update) "
                              "instead of drawing new ones: one generator pass a step "
                              "instead of two.")
    ema_kimg: float = Field(10.0, ge=0, description="Half-life of the generator EMA in kimg.")
    ema_rampup: float | None = Field(0.05, description="EMA ramp-up ratio (None: none).")
    mbstd_group: int = Field(4, ge=1, description="Minibatch-stddev group size.")
    canvas_channels: int = Field(0, ge=0, description="StyleGAN2 only: channels of the "
                                 "generator's learned canvas texture (gan.networks."
                                 "CanvasTexture; 0: none).")
    canvas_period: int = Field(0, ge=0, description="Side in px of the canvas texture's "
                               "repeated tile (0: one tile the size of the image).")
    dcgan_batch_norm_g: bool = Field(False, description="DCGAN only: batch norm in G "
                                     "(the seeds' extension 1).")
    dcgan_batch_norm_d: bool = Field(False, description="DCGAN only: batch norm in D "
                                     "(the seeds' extension 2).")

    @property
    def gamma(self) -> float:
        """R1 weight, the heuristic when not given."""
        if self.r1_gamma is not None:
            return self.r1_gamma
        return 0.0002 * self.resolution**2 / self.batch


_PRESETS: dict[str, Preset] = {}


def _register(**kwargs) -> None:
    preset = Preset(**kwargs)
    _PRESETS[preset.name] = preset


_register(name="tiny", description="Tests and smoke runs: 16 px, a few ms per step.",
          resolution=16, z_dim=32, w_dim=32, mapping_layers=2, channel_base=256,
          channel_max=32, batch=8, r1_gamma=0.05, ema_kimg=0.5, ema_rampup=None,
          pl_weight=0.0, g_lr=0.002, d_lr=0.002)
_register(name="tiny32", description="Tests: 32 px, still seconds per step.",
          resolution=32, z_dim=32, w_dim=32, mapping_layers=2, channel_base=512,
          channel_max=32, batch=8, r1_gamma=0.1, ema_kimg=0.5, ema_rampup=None,
          pl_weight=0.0, g_lr=0.002, d_lr=0.002)
# The CPU presets' training step (issue 16; benchmarks/train_speed.py and
# benchmarks/train_recipe_quality.py measure it against the step before): a discriminator with
# half the generator's channels below the cap, the D step judging the G step's images, and
# path length every 8 steps (with 8 times the weight, as lazy regularisation does).
CPU_STEP = {"reuse_fakes": True, "pl_interval": 8}
# The same fields as the CPU presets had before (demo64 included), for benchmarks comparing.
CPU_STEP_BEFORE = {"d_channel_base": None, "reuse_fakes": False, "pl_interval": 4}


def _register_cpu(**kwargs) -> None:
    """A CPU preset: :data:`CPU_STEP`, and a discriminator of half its generator's width."""
    _register(d_channel_base=kwargs["channel_base"] // 2, **CPU_STEP, **kwargs)
_register_cpu(name="cpu64", description="Trains and renders live on a 2-core CPU at 64 px.",
          resolution=64, z_dim=256, w_dim=256, mapping_layers=4, channel_base=4096,
          channel_max=256, batch=8, r1_gamma=0.1, ema_kimg=2.0, g_lr=0.002, d_lr=0.002)
_register_cpu(name="cpu128", description="2-core CPU at 128 px: trains overnight, renders live.",
          resolution=128, z_dim=256, w_dim=256, mapping_layers=4, channel_base=4096,
          channel_max=256, batch=8, r1_gamma=0.2, ema_kimg=2.0, g_lr=0.002, d_lr=0.002)
_register_cpu(name="cpu256", description="2-core CPU at 256 px: renders a few frames per second.",
          resolution=256, z_dim=256, w_dim=256, mapping_layers=4, channel_base=4096,
          channel_max=256, batch=8, r1_gamma=0.5, ema_kimg=5.0, g_lr=0.002, d_lr=0.002)
_register_cpu(name="demo64", description="The bundled live demo: a slim 64 px painter that "
          "trains in under an hour on a 2-core CPU and renders in a few ms.",
          resolution=64, z_dim=128, w_dim=128, mapping_layers=4, channel_base=2048,
          channel_max=128, batch=16, r1_gamma=0.1, ema_kimg=2.0, g_lr=0.0025, d_lr=0.0025,
          canvas_channels=4, canvas_period=16)
_register(name="paper256", description="StyleGAN2-ADA paper widths at 256 px (GPUs).",
          resolution=256, channel_base=16384, channel_max=512, batch=64, r1_gamma=1.0,
          ema_kimg=20.0, g_lr=0.0025, d_lr=0.0025)
_register(name="paper512", description="StyleGAN2-ADA paper widths at 512 px (GPUs).",
          resolution=512, channel_base=32768, channel_max=512, batch=64, r1_gamma=0.5,
          ema_kimg=20.0, g_lr=0.0025, d_lr=0.0025)
_register(name="paper1024", description="StyleGAN2-ADA paper widths at 1024 px (GPUs).",
          resolution=1024, channel_base=32768, channel_max=512, batch=32, r1_gamma=2.0,
          ema_kimg=10.0, g_lr=0.002, d_lr=0.002)
_register(name="dcgan64", description="The seeds' DCGAN baseline at 64 px (Keras era).",
          arch="dcgan", resolution=64, z_dim=100, w_dim=100, mapping_layers=1,
          channel_base=256, channel_max=256, batch=32, g_lr=0.0002, d_lr=0.0002,
          betas=(0.5, 0.999), r1_gamma=0.0, pl_weight=0.0, style_mixing=0.0, ema_kimg=0.0,
          ema_rampup=None)
_register(name="dcgan128", description="The seeds' DCGAN at 128 px.", arch="dcgan",
          resolution=128, z_dim=100, w_dim=100, mapping_layers=1, channel_base=256,
          channel_max=256, batch=32, g_lr=0.0002, d_lr=0.0002, betas=(0.5, 0.999),
          r1_gamma=0.0, pl_weight=0.0, style_mixing=0.0, ema_kimg=0.0, ema_rampup=None)
_register(name="dcgan_tiny", description="Tests: the DCGAN at 16 px.", arch="dcgan",
          resolution=16, z_dim=32, w_dim=32, mapping_layers=1, channel_base=64,
          channel_max=64, batch=8, g_lr=0.0002, d_lr=0.0002, betas=(0.5, 0.999),
          r1_gamma=0.0, pl_weight=0.0, style_mixing=0.0, ema_kimg=0.0, ema_rampup=None)


def list_presets() -> list[str]:
    """Names of the registered presets."""
    return list(_PRESETS)


def get_preset(name: str, **overrides) -> Preset:
    """A preset by name, optionally with some fields replaced (validated)."""
    if name not in _PRESETS:
        valid = ", ".join(_PRESETS)
        raise NeuropaintError(f"unknown preset {name!r}; valid presets: {valid}.")
    preset = _PRESETS[name]
    if overrides:
        preset = Preset.model_validate({**preset.model_dump(), **overrides})
    return preset
