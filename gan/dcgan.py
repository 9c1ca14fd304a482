"""The seeds' DCGAN: the baseline the project started from, kept as ``--arch dcgan``.

Follows Radford et al. 2016, "Unsupervised Representation Learning with Deep Convolutional
Generative Adversarial Networks" (DCGAN), as the seeds used it:

- Generator: a dense layer projects ``z`` to a ``4 x 4 x base_channels`` map, then stride-2
  transposed convolutions double the resolution up to ``img_resolution`` (64 px, or 128 px),
  halving the channels each time; LeakyReLU(0.2) between layers and ``tanh`` at the output.
- Discriminator: stride-2 convolutions halve the resolution down to 4 x 4, doubling the
  channels, each followed by LeakyReLU(0.2) and dropout; flatten; a dense layer gives one
  logit. (The seeds ended D with a sigmoid: see :meth:`DCGANDiscriminator.forward`.)
- Batch normalisation is optional in G (the seeds' "extension 1") and in D ("extension 2"),
  placed as in the paper: everywhere except the generator's output layer and the
  discriminator's input layer.
- Weights start from N(0, 0.02) as in the paper (batch-norm scales from N(1, 0.02)).

Both networks share the call signatures of the StyleGAN2 networks in :mod:`gan.networks`, so
one training loop drives either. There is no W space here: the generator ignores the
truncation and noise arguments it accepts for that reason.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from neuropaint.validate import NeuropaintError, check_int, check_option

__all__ = ["RESOLUTIONS", "DCGANDiscriminator", "DCGANGenerator"]

RESOLUTIONS = (16, 32, 64, 128)  # 64 and 128 are the seeds'; 16 and 32 serve tests.
KERNEL_SIZES = (4, 5)  # 4 tiles the stride-2 grid evenly; 5 is the Keras tutorials' choice.
MIN_CHANNELS = 8  # Floor for the generator's halving widths (only small bases reach it).
MAX_CHANNELS_FACTOR = 8  # The discriminator's doubling widths stop at 8 * base_channels.
LRELU_SLOPE = 0.2
INIT_STD = 0.02


def _check_common(img_resolution: int, img_channels: int, base_channels: int, c_dim: int,
                  kernel_size: int) -> None:
    check_option(img_resolution, "img_resolution", RESOLUTIONS)
    check_int(img_channels, "img_channels", minimum=1)
    check_int(base_channels, "base_channels", minimum=1)
    check_int(c_dim, "c_dim", minimum=0)
    check_option(kernel_size, "kernel_size", KERNEL_SIZES)


def _init_weights(module: nn.Module) -> None:
    """DCGAN paper: every weight from a zero-centred normal with standard deviation 0.02."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.normal_(m.weight, 0.0, INIT_STD)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            # A scale drawn around 0 would silence the layer; around 1 keeps the paper's spread.
            nn.init.normal_(m.weight, 1.0, INIT_STD)
            nn.init.zeros_(m.bias)


def _check_images(img: torch.Tensor, channels: int, resolution: int) -> None:
    expected = [channels, resolution, resolution]
    if img.ndim != 4 or list(img.shape[1:]) != expected:
        raise NeuropaintError(
            f"images must be [N, {channels}, {resolution}, {resolution}], got {list(img.shape)}."
        )


def _check_c(c: torch.Tensor | None, c_dim: int, n: int) -> torch.Tensor | None:
    """The conditioning vector ``[N, c_dim]``, or None for an unconditional network."""
    if c_dim == 0:
        if c is not None and c.numel() != 0:
            raise NeuropaintError(
                f"this network is unconditional (c_dim=0), got c {list(c.shape)}."
            )
        return None
    if c is None or list(c.shape) != [n, c_dim]:
        got = None if c is None else list(c.shape)
        raise NeuropaintError(
            f"c must be [{n}, {c_dim}] for this network (c_dim={c_dim}), got {got}."
        )
    return c


class _UpBlock(nn.Module):
    """Transposed conv, stride 2: ``[N, in, H, W] -> [N, out, 2H, 2W]`` (+ BN, LeakyReLU)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *,
                 batch_norm: bool, last: bool):
        super().__init__()
        # Output size (H - 1) * 2 - 2 * padding + kernel + output_padding = 2H for both kernels.
        padding = 1 if kernel_size == 4 else 2
        output_padding = 0 if kernel_size == 4 else 1
        use_bn = batch_norm and not last  # The paper keeps BN off the generator's output.
        self.conv = nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride=2,
                                       padding=padding, output_padding=output_padding,
                                       bias=not use_bn)  # BN's shift makes a bias redundant.
        self.norm = nn.BatchNorm2d(out_channels) if use_bn else nn.Identity()
        self.last = last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.conv(x))
        return torch.tanh(x) if self.last else F.leaky_relu(x, LRELU_SLOPE)


class _DownBlock(nn.Module):
    """Conv, stride 2: ``[N, in, H, W] -> [N, out, H/2, W/2]`` (+ BN), LeakyReLU, dropout."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *,
                 batch_norm: bool, dropout: float):
        super().__init__()
        padding = 1 if kernel_size == 4 else 2  # floor((H + 2p - k) / 2) + 1 = H / 2, H even.
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=2, padding=padding,
                              bias=not batch_norm)
        self.norm = nn.BatchNorm2d(out_channels) if batch_norm else nn.Identity()
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(F.leaky_relu(self.norm(self.conv(x)), LRELU_SLOPE))


class DCGANGenerator(nn.Module):
    """DCGAN generator: ``z [N, z_dim] -> img [N, img_channels, R, R]`` in ``[-1, 1]``.

    Parameters
    ----------
    z_dim : int
        Input latent (Z) dimensionality.
    img_resolution : int
        Output resolution: 64 or 128 (the seeds'), or 16 or 32 (small, for tests).
    img_channels : int
        Number of output colour channels.
    base_channels : int
        Channels of the 4 x 4 map the dense layer makes; each upsampling halves them
        (down to at least 8), and the last one outputs ``img_channels``.
    batch_norm : bool
        Batch normalisation after the dense layer and every hidden transposed conv (the
        seeds' "extension 1"). With it, ``eval()`` uses running statistics.
    c_dim : int
        Conditioning vector dimensionality (0 = unconditional); ``c`` is concatenated to
        ``z`` before the dense layer, as in conditional GANs.
    kernel_size : int
        Transposed-conv kernel, 4 (the DCGAN paper's stride-2 grid) or 5 (the Keras
        tutorials'); both double the resolution exactly.

    Notes
    -----
    Layer names follow the resolution they produce: ``fc`` (4 x 4), ``b8``, ``b16``, ... For a
    64 px image with the defaults the widths are 256 (4) -> 128 (8) -> 64 (16) -> 32 (32) -> 3
    (64).
    """

    def __init__(
        self,
        z_dim: int = 100,           # Input latent (Z) dimensionality.
        img_resolution: int = 64,   # Output resolution.
        img_channels: int = 3,      # Number of output colour channels.
        base_channels: int = 256,   # Channels at 4 x 4, halved at each doubling.
        batch_norm: bool = False,   # Batch norm in G (the seeds' extension 1).
        c_dim: int = 0,             # Conditioning vector dimensionality, 0 = none.
        kernel_size: int = 4,       # Transposed-conv kernel: 4 or 5.
    ):
        super().__init__()
        check_int(z_dim, "z_dim", minimum=1)
        _check_common(img_resolution, img_channels, base_channels, c_dim, kernel_size)
        self.z_dim = int(z_dim)
        self.c_dim = int(c_dim)
        self.img_resolution = int(img_resolution)
        self.img_channels = int(img_channels)
        self.init_kwargs: dict[str, Any] = {
            "z_dim": self.z_dim, "img_resolution": self.img_resolution,
            "img_channels": self.img_channels, "base_channels": int(base_channels),
            "batch_norm": bool(batch_norm), "c_dim": self.c_dim, "kernel_size": int(kernel_size),
        }
        self.base_channels = int(base_channels)
        self.fc = nn.Linear(self.z_dim + self.c_dim, 4 * 4 * self.base_channels,
                            bias=not batch_norm)
        self.fc_norm = nn.BatchNorm2d(self.base_channels) if batch_norm else nn.Identity()
        self.block_resolutions = [2**i for i in range(3, int(math.log2(img_resolution)) + 1)]
        in_ch = self.base_channels
        for res in self.block_resolutions:
            last = res == self.img_resolution
            out_ch = self.img_channels if last else max(in_ch // 2, min(MIN_CHANNELS, in_ch))
            setattr(self, f"b{res}", _UpBlock(in_ch, out_ch, kernel_size, batch_norm=batch_norm,
                                              last=last))
            in_ch = out_ch
        _init_weights(self)

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "random",
        update_emas: bool = False,
    ) -> torch.Tensor:
        """Images ``[N, img_channels, R, R]`` in ``[-1, 1]`` from latents ``z [N, z_dim]``.

        ``truncation_psi``, ``truncation_cutoff``, ``noise_mode`` and ``update_emas`` are
        accepted so that the StyleGAN2 loop and CLIs can call either network the same way, and
        ignored: a DCGAN has no W space to truncate toward, no noise inputs and no tracked
        averages (batch-norm statistics follow ``train()`` / ``eval()`` as usual).
        """
        del truncation_psi, truncation_cutoff, noise_mode, update_emas  # No W space: see above.
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise NeuropaintError(f"z must be [N, {self.z_dim}], got {list(z.shape)}.")
        c = _check_c(c, self.c_dim, z.shape[0])
        x = z if c is None else torch.cat([z, c.to(z.dtype)], dim=1)  # [N, z_dim + c_dim]
        x = self.fc(x).view(-1, self.base_channels, 4, 4)  # [N, C, 4, 4]
        x = F.leaky_relu(self.fc_norm(x), LRELU_SLOPE)
        for res in self.block_resolutions:
            x = getattr(self, f"b{res}")(x)
        return x

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.init_kwargs.items())


class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator: ``img [N, img_channels, R, R] -> logit [N, 1]``.

    Parameters
    ----------
    img_resolution : int
        Input resolution: 64 or 128 (the seeds'), or 16 or 32 (small, for tests).
    img_channels : int
        Number of input colour channels.
    base_channels : int
        Channels of the first convolution; each following one doubles them, up to
        ``8 * base_channels``.
    batch_norm : bool
        Batch normalisation after every convolution but the first (the seeds' "extension 2").
    dropout : float
        Dropout probability after every convolution (active in ``train()`` only).
    c_dim : int
        Conditioning vector dimensionality (0 = unconditional); conditioning enters as a
        projection term ``<features, embed(c)> / sqrt(F)`` added to the logit (Miyato &
        Koyama 2018), as the StyleGAN2 discriminator does.
    kernel_size : int
        Convolution kernel, 4 or 5; both halve the resolution exactly.

    Notes
    -----
    Layer names follow the resolution they read: ``b64``, ``b32``, ..., ``b8``, then ``fc``.
    """

    def __init__(
        self,
        img_resolution: int = 64,   # Input resolution.
        img_channels: int = 3,      # Number of input colour channels.
        base_channels: int = 64,    # Channels of the first conv, doubled at each halving.
        batch_norm: bool = False,   # Batch norm in D (the seeds' extension 2).
        dropout: float = 0.25,      # Dropout probability after each conv.
        c_dim: int = 0,             # Conditioning vector dimensionality, 0 = none.
        kernel_size: int = 4,       # Conv kernel: 4 or 5.
    ):
        super().__init__()
        _check_common(img_resolution, img_channels, base_channels, c_dim, kernel_size)
        if isinstance(dropout, bool) or not isinstance(dropout, int | float) \
                or not 0.0 <= dropout < 1.0:
            raise NeuropaintError(f"'dropout' must be a number in [0, 1), got {dropout!r}.")
        self.c_dim = int(c_dim)
        self.img_resolution = int(img_resolution)
        self.img_channels = int(img_channels)
        self.init_kwargs: dict[str, Any] = {
            "img_resolution": self.img_resolution, "img_channels": self.img_channels,
            "base_channels": int(base_channels), "batch_norm": bool(batch_norm),
            "dropout": float(dropout), "c_dim": self.c_dim, "kernel_size": int(kernel_size),
        }
        top = int(math.log2(img_resolution))
        self.block_resolutions = [2**i for i in range(top, 2, -1)]  # [R, R/2, ..., 8]
        in_ch = self.img_channels
        out_ch = int(base_channels)
        for i, res in enumerate(self.block_resolutions):
            # The paper keeps BN off the discriminator's input layer.
            block = _DownBlock(in_ch, out_ch, kernel_size, batch_norm=batch_norm and i > 0,
                               dropout=float(dropout))
            setattr(self, f"b{res}", block)
            in_ch = out_ch
            out_ch = min(out_ch * 2, MAX_CHANNELS_FACTOR * int(base_channels))
        self.feature_dim = in_ch * 4 * 4
        self.fc = nn.Linear(self.feature_dim, 1)
        self.embed = nn.Linear(self.c_dim, self.feature_dim, bias=False) if self.c_dim else None
        _init_weights(self)

    def forward(
        self,
        img: torch.Tensor,
        c: torch.Tensor | None = None,
        return_features: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The real-vs-fake logit ``[N, 1]``, and with ``return_features`` also the flattened
        last feature map ``[N, F]``.

        The seeds' discriminator ended with a sigmoid and trained on binary cross-entropy.
        Here the sigmoid is left to the loss: the training loop's logistic loss,
        ``softplus(-logit)`` for reals and ``softplus(logit)`` for fakes, is the same
        cross-entropy computed from the logit, which stays finite where ``log(sigmoid(x))``
        underflows to ``-inf``. :meth:`validity` gives the seeds' sigmoid score.
        """
        _check_images(img, self.img_channels, self.img_resolution)
        c = _check_c(c, self.c_dim, img.shape[0])
        x = img
        for res in self.block_resolutions:
            x = getattr(self, f"b{res}")(x)
        features = x.flatten(1)  # [N, C * 4 * 4]
        logits = self.fc(features)  # [N, 1]
        if self.embed is not None:
            proj = (features * self.embed(c.to(features.dtype))).sum(dim=1, keepdim=True)
            logits = logits + proj / math.sqrt(self.feature_dim)
        return (logits, features) if return_features else logits

    def validity(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """The seeds' "validity": ``sigmoid(logit)`` in (0, 1), ``[N, 1]``; 1 = looks real.

        Call ``eval()`` first for a score without dropout (and with running BN statistics).
        """
        return torch.sigmoid(self.forward(img, c))

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.init_kwargs.items())
