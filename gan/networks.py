"""StyleGAN2 generator and discriminator, written from the papers.

Follows Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN" (StyleGAN2,
config F: weight demodulation, skip generator, residual discriminator, lazy regularisation is
the training loop's business) with the network details of "Training Generative Adversarial
Networks with Limited Data" (ADA, Karras et al. 2020): mapping with a 0.01 learning-rate
multiplier, conditioning by an embedded label in G and a projection discriminator,
``channels = min(channel_base // resolution, channel_max)``.

At 256 px with ``channel_base=16384``, ``channel_max=512``, 8 mapping layers and
``z_dim = w_dim = 512`` the networks have 24,767,458 (G) and 24,001,089 (D) parameters, as the
original implementation; ``tests/gan/test_networks.py`` holds this.

Each network keeps its constructor arguments in ``init_kwargs``, a JSON-serialisable dict, so
that a checkpoint's ``config.json`` rebuilds it without pickled code:
``type(net)(**net.init_kwargs)``.

One addition of ours, off unless ``canvas_channels`` > 0: a learned canvas texture that shades
the finished image (:class:`CanvasTexture`; the ``demo64`` preset uses four channels).

Forward passes take ``reference=True`` to run every op through its plain reference twin (see
:mod:`gan.ops`); the default fast path is what training and rendering use.
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Sequence

import torch
from torch import nn

from gan.ops import (
    Conv2dLayer,
    FullyConnectedLayer,
    assert_shape,
    bias_act,
    bias_act_reference,
    modulated_conv2d,
    modulated_conv2d_reference,
    normalize_2nd_moment,
    setup_filter,
    upsample2d,
)
from neuropaint.validate import NeuropaintError, check_int, check_option, check_positive

__all__ = [
    "NOISE_MODES",
    "CanvasTexture",
    "Discriminator",
    "Generator",
    "MappingNetwork",
    "SynthesisNetwork",
    "channels_per_resolution",
    "count_parameters",
]

NOISE_MODES = ("random", "const", "none")
MIN_RESOLUTION = 16
MAX_RESOLUTION = 1024


# -- helpers --------------------------------------------------------------------------------------

def _check_resolution(value: object, name: str = "img_resolution") -> int:
    value = check_int(value, name)
    if not MIN_RESOLUTION <= value <= MAX_RESOLUTION or value & (value - 1):
        raise NeuropaintError(
            f"'{name}' must be a power of two from {MIN_RESOLUTION} to {MAX_RESOLUTION}, "
            f"got {value}."
        )
    return value


def _check_channels(channel_base, channel_max, img_resolution) -> None:
    check_int(channel_base, "channel_base", minimum=1)
    check_int(channel_max, "channel_max", minimum=1)
    if channel_base // img_resolution < 1:
        raise NeuropaintError(
            f"'channel_base' must be at least img_resolution ({img_resolution}) so that every "
            f"resolution has a channel, got {channel_base}."
        )


def _check_clamp(conv_clamp) -> float | None:
    return None if conv_clamp is None else check_positive(conv_clamp, "conv_clamp")


def _jsonable(kwargs: dict) -> dict:
    """A deep, JSON-safe copy of constructor arguments (tuples become lists)."""
    try:
        return json.loads(json.dumps(kwargs))
    except TypeError as exc:
        raise NeuropaintError(f"network arguments must be JSON-serialisable: {exc}.") from None


def _check_kwargs(kwargs: dict | None, target, name: str) -> dict:
    """Copy ``kwargs`` and reject keys that ``target``'s constructor does not take."""
    kwargs = dict(kwargs or {})
    params = inspect.signature(target).parameters
    unknown = sorted(k for k in kwargs if k not in params)
    if unknown:
        raise NeuropaintError(f"'{name}' has unknown arguments {unknown} for {target.__name__}.")
    return kwargs


def channels_per_resolution(
    img_resolution: int, channel_base: int = 32768, channel_max: int = 512
) -> dict[int, int]:
    """Feature maps at each resolution from 4 to ``img_resolution``: ``min(base // res, max)``."""
    log2 = int(math.log2(img_resolution))
    return {2**i: min(channel_base // 2**i, channel_max) for i in range(2, log2 + 1)}


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters (buffers such as ``w_avg`` and ``noise_const`` excluded)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _block_dtype(use_fp16: bool, force_fp32: bool, device: torch.device) -> torch.dtype:
    # Half precision only where the hardware makes it pay (CUDA); CPUs stay in fp32.
    return torch.float16 if use_fp16 and not force_fp32 and device.type == "cuda" else torch.float32


def _memory_format(
    device: torch.device, dtype: torch.dtype, grouped: bool = False
) -> torch.memory_format:
    # Channels-last is oneDNN's native layout: faster on CPU at every layer shape measured
    # (up to 2.4x for wide, shallow layers); on CUDA it pays with fp16 (tensor cores). A grouped
    # convolution over the batch needs the batch folded into channels, so it keeps the default.
    if (device.type == "cpu" or dtype == torch.float16) and not grouped:
        return torch.channels_last
    return torch.contiguous_format


# -- mapping --------------------------------------------------------------------------------

class MappingNetwork(nn.Module):
    """z (and an optional conditioning vector c) -> w, broadcast to ``num_ws`` copies.

    The W-space bookkeeping lives here: ``w_avg`` (a running mean of w, updated when
    ``update_emas=True``) and the truncation trick toward it.
    """

    def __init__(
        self,
        z_dim: int,                          # Input latent (Z) dimensionality, 0 = no latent.
        c_dim: int,                          # Conditioning label (C) dimensionality, 0 = no label.
        w_dim: int,                          # Intermediate latent (W) dimensionality.
        num_ws: int | None,                  # Number of ws to output, None = do not broadcast.
        num_layers: int = 8,                 # Number of mapping layers.
        lr_multiplier: float = 0.01,         # Learning-rate multiplier of the mapping layers.
        w_avg_beta: float | None = 0.998,    # Decay of the running mean of w, None = do not track.
        embed_features: int | None = None,   # Label embedding dimensionality, None = w_dim.
        layer_features: int | None = None,   # Hidden layer width, None = w_dim.
        activation: str = "lrelu",           # Activation of the mapping layers.
    ):
        super().__init__()
        self.init_kwargs = _jsonable(dict(
            z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=num_ws, num_layers=num_layers,
            lr_multiplier=lr_multiplier, w_avg_beta=w_avg_beta, embed_features=embed_features,
            layer_features=layer_features, activation=activation,
        ))
        self.z_dim = check_int(z_dim, "z_dim", minimum=0)
        self.c_dim = check_int(c_dim, "c_dim", minimum=0)
        self.w_dim = check_int(w_dim, "w_dim", minimum=1)
        if self.z_dim + self.c_dim == 0:
            raise NeuropaintError("'z_dim' and 'c_dim' cannot both be 0: the mapping needs input.")
        self.num_ws = None if num_ws is None else check_int(num_ws, "num_ws", minimum=1)
        self.num_layers = check_int(num_layers, "num_layers", minimum=1)
        check_positive(lr_multiplier, "lr_multiplier")
        if w_avg_beta is not None and not 0 <= w_avg_beta < 1:
            raise NeuropaintError(f"'w_avg_beta' must be in [0, 1) or None, got {w_avg_beta!r}.")
        self.w_avg_beta = w_avg_beta
        check_option(activation, "activation", ("linear", "lrelu"))
        embed_features = self.w_dim if embed_features is None else embed_features
        layer_features = self.w_dim if layer_features is None else layer_features
        if self.c_dim == 0:
            embed_features = 0
        else:
            check_int(embed_features, "embed_features", minimum=1)
        check_int(layer_features, "layer_features", minimum=1)

        features = [self.z_dim + embed_features, *[layer_features] * (num_layers - 1), self.w_dim]
        if self.c_dim > 0:
            self.embed = FullyConnectedLayer(self.c_dim, embed_features)
        for idx in range(num_layers):
            layer = FullyConnectedLayer(
                features[idx], features[idx + 1], activation=activation, lr_multiplier=lr_multiplier
            )
            setattr(self, f"fc{idx}", layer)
        if self.num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([self.w_dim]))
        else:
            self.w_avg = None

    def forward(
        self,
        z: torch.Tensor | None,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_emas: bool = False,
    ) -> torch.Tensor:
        """Map ``z`` ``[N, z_dim]`` (and ``c`` ``[N, c_dim]``) to ws ``[N, num_ws, w_dim]``.

        ``truncation_psi`` < 1 pulls w toward ``w_avg`` (0 gives ``w_avg`` itself);
        ``truncation_cutoff`` limits that to the first ``truncation_cutoff`` ws (the coarse
        layers). Without ``num_ws`` the output is ``[N, w_dim]``.
        """
        parts = []
        if self.z_dim > 0:
            if z is None:
                raise NeuropaintError(f"'z' is required: this mapping takes z_dim={self.z_dim}.")
            assert_shape(z, [None, self.z_dim], "z")
            parts.append(normalize_2nd_moment(z.to(torch.float32)))
        if self.c_dim > 0:
            if c is None:
                raise NeuropaintError(
                    f"'c' is required: this network is conditioned (c_dim={self.c_dim})."
                )
            assert_shape(c, [None if not parts else parts[0].shape[0], self.c_dim], "c")
            parts.append(normalize_2nd_moment(self.embed(c.to(torch.float32))))
        elif c is not None and c.numel() > 0:
            raise NeuropaintError(
                f"'c' was given, but this network is unconditioned (c_dim=0): got {list(c.shape)}."
            )
        x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)

        if update_emas and self.w_avg is not None:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        if self.num_ws is None:
            return x
        x = x.unsqueeze(1).expand(-1, self.num_ws, -1)  # [N, num_ws, w_dim]
        if truncation_psi != 1:
            if self.w_avg is None:
                raise NeuropaintError("truncation needs 'w_avg', which this mapping lacks.")
            cutoff = self.num_ws if truncation_cutoff is None else check_int(
                truncation_cutoff, "truncation_cutoff", minimum=0
            )
            cutoff = min(cutoff, self.num_ws)
            truncated = self.w_avg.lerp(x[:, :cutoff], truncation_psi)
            x = torch.cat([truncated, x[:, cutoff:]], dim=1)
        return x.contiguous()

    def extra_repr(self) -> str:
        return f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}"


# -- synthesis ------------------------------------------------------------------------------

class SynthesisLayer(nn.Module):
    """Modulated 3x3 convolution (optionally upsampling), noise, bias and lrelu."""

    def __init__(
        self,
        in_channels: int,                                # Number of input channels.
        out_channels: int,                               # Number of output channels.
        w_dim: int,                                      # Intermediate latent (W) dimensionality.
        resolution: int,                                 # Resolution of this layer's output.
        kernel_size: int = 3,                            # Convolution kernel size.
        up: int = 1,                                     # Integer upsampling factor.
        use_noise: bool = True,                          # Add per-pixel noise inputs?
        resample_filter: Sequence[float] = (1, 3, 3, 1), # Low-pass filter for upsampling.
        conv_clamp: float | None = None,                 # Clamp the output to ±this, or None.
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.conv_clamp = conv_clamp
        self.padding = kernel_size // 2
        self.act_gain = math.sqrt(2)
        self.register_buffer("resample_filter", setup_filter(resample_filter), persistent=False)
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        shape = [out_channels, in_channels, kernel_size, kernel_size]
        self.weight = nn.Parameter(torch.randn(shape))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self._cache: tuple | None = None

    def _prepared(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The weight in the layout its shared convolution takes, and ``sum_k w^2`` ``[O, I]``.

        Outside autograd (rendering) both are cached while the weight is unchanged.
        Channels-last activations want channels-last weights, and oneDNN would otherwise copy
        the weight on every call, which at low resolution costs as much as the convolution.
        The cache is checked against the weight's storage, its version counter (bumped by
        every in-place update: optimiser steps, ``load_state_dict``, EMA ``copy_``) and a
        sample of its values (which also catches writes through ``.data``, invisible to the
        version counter). Under autograd the plain weight goes in.
        """
        w = self.weight
        if torch.is_grad_enabled() and w.requires_grad:
            return w, None
        w = w.detach()
        flat = w.reshape(-1)
        probe = flat[:: max(flat.numel() // 16, 1)]  # 16 or so values spread over the weight
        key = (w.data_ptr(), w._version, w.device, w.dtype)
        cache = self._cache
        if cache is None or cache[0] != key or not torch.equal(cache[1], probe):
            if self.up == 1:
                laid_out = w.contiguous(memory_format=torch.channels_last)
            else:  # conv_transpose2d reads w.transpose(0, 1): make that one channels-last
                laid_out = w.permute(1, 2, 3, 0).contiguous().permute(3, 0, 1, 2)  # [O, I, kh, kw]
            cache = self._cache = (key, probe.clone(), laid_out, w.square().sum(dim=[2, 3]))
        return cache[2], cache[3]

    def _noise(self, x: torch.Tensor, noise_mode: str) -> torch.Tensor | None:
        if not self.use_noise or noise_mode == "none":
            return None
        if noise_mode == "const":
            return self.noise_const.to(x.dtype) * self.noise_strength.to(x.dtype)  # [H, W]
        N = x.shape[0]
        shape = [N, 1, self.resolution, self.resolution]
        return torch.randn(shape, device=x.device, dtype=x.dtype) * self.noise_strength.to(x.dtype)

    def weight_is_smaller(self) -> bool:
        """Is this layer's weight smaller than one sample's input and output activations?

        Then modulating the weight (fused) costs less memory traffic than scaling the
        activations before and after a shared convolution; at low resolutions it is the reverse.
        """
        in_res = self.resolution // self.up
        acts = self.in_channels * in_res**2 + self.out_channels * self.resolution**2
        return self.weight.numel() <= acts

    def forward(self, x, w, noise_mode="random", fused_modconv=None, reference=False):
        if fused_modconv is None:
            fused_modconv = x.shape[0] == 1 and self.weight_is_smaller()
        styles = self.affine(w)  # [N, I]
        noise = self._noise(x, noise_mode)
        bias = self.bias.to(x.dtype)
        if reference:
            x = modulated_conv2d_reference(
                x, self.weight.to(x.dtype), styles, up=self.up, padding=self.padding,
                resample_filter=self.resample_filter,
            )
            if noise is not None:
                x = x + noise
            return bias_act_reference(x, bias, "lrelu", gain=self.act_gain, clamp=self.conv_clamp)
        # lrelu(v) * g == lrelu(v * g) for g > 0: the gain rides in the demodulation
        # coefficients, the bias in the convolution, and only noise and lrelu are left.
        g = self.act_gain
        weight, weight_sq = self._prepared()
        on_cpu = x.device.type == "cpu"
        x = modulated_conv2d(
            x, self.weight if fused_modconv or not on_cpu else weight, styles, up=self.up,
            padding=self.padding, resample_filter=self.resample_filter, fused=fused_modconv,
            gain=g, bias=bias * g, weight_sq=weight_sq,
        )
        if noise is not None:
            x = x.add_(noise * g)
        return bias_act(x, None, "lrelu", gain=1.0, clamp=self.conv_clamp, inplace=True)

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
            f"resolution={self.resolution}, up={self.up}"
        )


class ToRGBLayer(nn.Module):
    """Modulated 1x1 convolution to image channels, without demodulation (StyleGAN2, fig. 7)."""

    def __init__(
        self,
        in_channels: int,                  # Number of input channels.
        out_channels: int,                 # Number of image channels.
        w_dim: int,                        # Intermediate latent (W) dimensionality.
        kernel_size: int = 1,              # Convolution kernel size.
        conv_clamp: float | None = None,   # Clamp the output to ±this, or None.
    ):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        shape = [out_channels, in_channels, kernel_size, kernel_size]
        self.weight = nn.Parameter(torch.randn(shape))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        # Without demodulation the equalised-lr gain must be applied; it rides on the styles.
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size * kernel_size)

    def forward(self, x, w, fused_modconv=None, reference=False):
        if fused_modconv is None:
            fused_modconv = x.shape[0] == 1  # the weight is always the smaller here
        styles = self.affine(w) * self.weight_gain  # [N, I]
        bias = self.bias.to(x.dtype)
        if reference:
            x = modulated_conv2d_reference(x, self.weight.to(x.dtype), styles, demodulate=False)
            return bias_act_reference(x, bias, clamp=self.conv_clamp)
        x = modulated_conv2d(
            x, self.weight, styles, demodulate=False, fused=fused_modconv, bias=bias
        )
        return bias_act(x, None, clamp=self.conv_clamp, inplace=True)


class SynthesisBlock(nn.Module):
    """One resolution of the skip generator: (const or upsampling conv0), conv1, toRGB."""

    def __init__(
        self,
        in_channels: int,                                # Input channels, 0 = the 4x4 constant.
        out_channels: int,                               # Output channels.
        w_dim: int,                                      # Intermediate latent (W) dimensionality.
        resolution: int,                                 # Resolution of this block.
        img_channels: int,                               # Number of output image channels.
        resample_filter: Sequence[float] = (1, 3, 3, 1), # Low-pass filter for upsampling.
        conv_clamp: float | None = None,                 # Clamp convolution outputs to ±this.
        use_fp16: bool = False,                          # Run this block in fp16 (on CUDA)?
    ):
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.use_fp16 = use_fp16
        self.register_buffer("resample_filter", setup_filter(resample_filter), persistent=False)
        self.num_conv = 0
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(
                in_channels, out_channels, w_dim, resolution, up=2,
                resample_filter=resample_filter, conv_clamp=conv_clamp,
            )
            self.num_conv += 1
        self.conv1 = SynthesisLayer(
            out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp
        )
        self.num_conv += 1
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
        self.num_torgb = 1

    def per_sample_is_faster(self) -> bool:
        """On CPU, run this block one sample at a time (see :meth:`SynthesisNetwork.forward`)."""
        return self.conv1.weight_is_smaller()

    def forward(self, x, img, ws, noise_mode="random", fused_modconv=None, reference=False,
                force_fp32=False):
        ws = ws.unbind(dim=1)  # num_conv + num_torgb tensors [N, w_dim]
        N = ws[0].shape[0]
        dtype = _block_dtype(self.use_fp16, force_fp32, ws[0].device)
        grouped = fused_modconv is True and N > 1 and not reference
        fmt = _memory_format(ws[0].device, dtype, grouped=grouped)
        if self.in_channels == 0:
            x = self.const.to(dtype).unsqueeze(0).expand(N, -1, -1, -1)  # [N, C, 4, 4]
            x = x.contiguous(memory_format=fmt)
        else:
            x = x.to(dtype=dtype, memory_format=fmt)
        kwargs = dict(noise_mode=noise_mode, fused_modconv=fused_modconv, reference=reference)
        if self.in_channels == 0:
            x = self.conv1(x, ws[0], **kwargs)
        else:
            x = self.conv0(x, ws[0], **kwargs)
            x = self.conv1(x, ws[1], **kwargs)
        # Skip architecture: every resolution adds its own RGB to the upsampled sum so far.
        y = self.torgb(x, ws[self.num_conv], fused_modconv=fused_modconv, reference=reference)
        y = y.to(torch.float32)
        if img is None:
            return x, y
        img = upsample2d(img, self.resample_filter, reference=reference)
        return x, img.add_(y)


class CanvasTexture(nn.Module):
    """A learned canvas relief, a tile repeated over the output, that shades the painted image.

    Canvas weave is a texture of threads about two pixels apart at 64 px, in a random place
    in each training painting, and Laplacian-pyramid SWD at the finest level is mostly this
    weave (the same paintings on a smooth canvas measure 6.5x the floor there:
    ``benchmarks/swd_weave.py``). A stack of 3x3 convolutions of a few channels paints it
    poorly from white noise; here it is a parameter instead. The relief stays put while the
    paint changes, as a real canvas does under a live painting; each sample's last w sets how
    strongly each relief channel shows in each colour, and it shades brightness (light paint
    shows it more than dark). It starts blank, so a generator grown from one without it
    paints the same images until training fills it in. A tile smaller than the image
    (``period``) shares each texel's gradient among its repeats: one texel per pixel
    gathered the adversarial gradient's noise into dark scars.
    """

    def __init__(self, channels: int, img_channels: int, w_dim: int, resolution: int,
                 period: int = 0):
        super().__init__()
        # A relief tile of ``period`` px repeated over the image (0: one tile, the whole image).
        period = period or resolution
        if resolution % period:
            raise NeuropaintError(f"'canvas_period' must divide the resolution {resolution}, "
                                  f"got {period}.")
        self.repeats = resolution // period
        self.texture = nn.Parameter(torch.zeros([channels, period, period]))
        self.affine = FullyConnectedLayer(w_dim, channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([img_channels, channels]))
        self.weight_gain = 1 / math.sqrt(channels)

    def forward(self, img: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w.to(torch.float32)) * self.weight_gain  # [N, K]
        mix = self.weight.unsqueeze(0) * styles.unsqueeze(1)  # [N, C, K]
        texture = self.texture.repeat(1, self.repeats, self.repeats)
        relief = torch.einsum("nck,khw->nchw", mix, texture)
        # Shading multiplies brightness (img + 1) / 2: img' = 2 b (1 + relief) - 1.
        return img + (img + 1) * relief


class SynthesisNetwork(nn.Module):
    """ws ``[N, num_ws, w_dim]`` -> image ``[N, img_channels, H, W]`` (skip architecture)."""

    def __init__(
        self,
        w_dim: int,                                      # Intermediate latent (W) dimensionality.
        img_resolution: int,                             # Output resolution, power of 2, 16-1024.
        img_channels: int,                               # Number of output colour channels.
        channel_base: int = 32768,                       # Channels: channel_base // resolution,
        channel_max: int = 512,                          # ...capped at channel_max.
        num_fp16_res: int = 0,                           # Top resolutions in fp16 (CUDA only).
        conv_clamp: float | None = None,                 # Clamp conv outputs to ±this (fp16).
        resample_filter: Sequence[float] = (1, 3, 3, 1), # Low-pass filter for upsampling.
        canvas_channels: int = 0,                        # CanvasTexture channels (0: none).
        canvas_period: int = 0,                          # Its tile in px (0: the whole image).
    ):
        super().__init__()
        self.init_kwargs = _jsonable(dict(
            w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels,
            channel_base=channel_base, channel_max=channel_max, num_fp16_res=num_fp16_res,
            conv_clamp=conv_clamp, resample_filter=list(resample_filter),
        ))
        # Recorded only when used, so generators without one keep the config they always had.
        self.canvas_channels = check_int(canvas_channels, "canvas_channels", minimum=0)
        canvas_period = check_int(canvas_period, "canvas_period", minimum=0)
        if self.canvas_channels:
            self.init_kwargs["canvas_channels"] = self.canvas_channels
            if canvas_period:
                self.init_kwargs["canvas_period"] = canvas_period
        # The eval-mode choice in training too (the step before 2026-12-06; benchmarks measure
        # the old step with it).
        self.per_sample_in_training = False
        self.w_dim = check_int(w_dim, "w_dim", minimum=1)
        self.img_resolution = _check_resolution(img_resolution)
        self.img_channels = check_int(img_channels, "img_channels", minimum=1)
        _check_channels(channel_base, channel_max, img_resolution)
        num_fp16_res = check_int(num_fp16_res, "num_fp16_res", minimum=0)
        conv_clamp = _check_clamp(conv_clamp)
        log2 = int(math.log2(img_resolution))
        self.block_resolutions = [2**i for i in range(2, log2 + 1)]
        channels = channels_per_resolution(img_resolution, channel_base, channel_max)
        fp16_resolution = max(2 ** (log2 + 1 - num_fp16_res), 8)

        self.num_ws = 0
        for res in self.block_resolutions:
            block = SynthesisBlock(
                channels[res // 2] if res > 4 else 0, channels[res], w_dim, res, img_channels,
                resample_filter=resample_filter, conv_clamp=conv_clamp,
                use_fp16=res >= fp16_resolution,
            )
            self.num_ws += block.num_conv
            setattr(self, f"b{res}", block)
        self.num_ws += 1  # the last toRGB; every other one shares the next block's first w
        if self.canvas_channels:
            self.canvas = CanvasTexture(self.canvas_channels, img_channels, w_dim,
                                        self.img_resolution, canvas_period)

    def forward(
        self, ws, noise_mode="random", fused_modconv=None, reference=False, force_fp32=False
    ):
        """Render ``ws`` ``[N, num_ws, w_dim]`` to float images ``[N, img_channels, H, W]``.

        ``noise_mode``: 'random' (fresh noise), 'const' (the stored noise maps: deterministic),
        'none'. ``fused_modconv``: True/False force one form of modulated convolution (see
        :func:`gan.ops.modulated_conv2d`); None (the default) picks the faster one per layer:
        at batch 1 by comparing weight and activation sizes; for a batch on CPU in eval mode
        (rendering) the low-resolution blocks run batched with shared weights and the
        high-resolution ones one sample at a time (their activations then stay in cache); in
        training mode on CPU every block runs batched with shared weights, since backward
        through per-sample convolutions costs more than the cache saves (the training step is
        1.19x / 1.43x faster at ``demo64`` batch 8 / 16, 1.08x / 1.02x at ``cpu64``:
        ``benchmarks/train_speed.py``, variant ``batched_G``); on CUDA, as in the original, fused for inference and shared
        for training. ``reference=True`` runs the plain reference twin of every op.
        """
        assert_shape(ws, [None, self.num_ws, self.w_dim], "ws")
        check_option(noise_mode, "noise_mode", NOISE_MODES)
        ws = ws.to(torch.float32)
        N = ws.shape[0]
        split = (fused_modconv is None and N > 1 and ws.device.type == "cpu" and not reference
                 and (not self.training or self.per_sample_in_training))
        if fused_modconv is None and N > 1 and not split:
            fused_modconv = ws.device.type == "cuda" and not self.training
        kwargs = dict(noise_mode=noise_mode, reference=reference, force_fp32=force_fp32)
        x = img = None
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            block_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            w_idx += block.num_conv
            if split and block.per_sample_is_faster():
                if not isinstance(x, list):
                    x = [None] * N if x is None else list(x.split(1))
                    img = [None] * N if img is None else list(img.split(1))
                for n in range(N):
                    w_n = block_ws[n : n + 1]
                    x[n], img[n] = block(x[n], img[n], w_n, fused_modconv=None, **kwargs)
            else:
                if isinstance(x, list):
                    x = torch.cat(x)
                    img = torch.cat(img)
                fused = False if split else fused_modconv
                x, img = block(x, img, block_ws, fused_modconv=fused, **kwargs)
        if isinstance(img, list):
            img = torch.cat(img)
        if self.canvas_channels:
            img = self.canvas(img, ws[:, -1])
        return img.contiguous()

    def extra_repr(self) -> str:
        return (
            f"w_dim={self.w_dim}, num_ws={self.num_ws}, img_resolution={self.img_resolution}, "
            f"img_channels={self.img_channels}"
        )


class Generator(nn.Module):
    """StyleGAN2 generator: ``mapping`` (z, c -> ws) followed by ``synthesis`` (ws -> image)."""

    def __init__(
        self,
        z_dim: int,                           # Input latent (Z) dimensionality.
        c_dim: int,                           # Conditioning label (C) dimensionality, 0 = none.
        w_dim: int,                           # Intermediate latent (W) dimensionality.
        img_resolution: int,                  # Output resolution, a power of 2 (16-1024).
        img_channels: int,                    # Number of output colour channels.
        mapping_kwargs: dict | None = None,   # Arguments for MappingNetwork.
        synthesis_kwargs: dict | None = None, # Arguments for SynthesisNetwork.
    ):
        super().__init__()
        mapping_kwargs = _check_kwargs(mapping_kwargs, MappingNetwork, "mapping_kwargs")
        synthesis_kwargs = _check_kwargs(synthesis_kwargs, SynthesisNetwork, "synthesis_kwargs")
        for fixed in ("z_dim", "c_dim", "w_dim", "num_ws"):
            if fixed in mapping_kwargs:
                raise NeuropaintError(f"'mapping_kwargs' must not set {fixed!r}: Generator does.")
        for fixed in ("w_dim", "img_resolution", "img_channels"):
            if fixed in synthesis_kwargs:
                raise NeuropaintError(
                    f"'synthesis_kwargs' must not set {fixed!r}: the Generator does."
                )
        self.init_kwargs = _jsonable(dict(
            z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=img_resolution,
            img_channels=img_channels, mapping_kwargs=mapping_kwargs,
            synthesis_kwargs=synthesis_kwargs,
        ))
        self.z_dim = check_int(z_dim, "z_dim", minimum=1)
        self.c_dim = check_int(c_dim, "c_dim", minimum=0)
        self.w_dim = check_int(w_dim, "w_dim", minimum=1)
        self.img_resolution = _check_resolution(img_resolution)
        self.img_channels = check_int(img_channels, "img_channels", minimum=1)
        self.synthesis = SynthesisNetwork(w_dim, img_resolution, img_channels, **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, self.num_ws, **mapping_kwargs)

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "random",
        update_emas: bool = False,
        **synthesis_kwargs,
    ) -> torch.Tensor:
        """z ``[N, z_dim]`` (and c ``[N, c_dim]``) -> images ``[N, img_channels, H, W]``."""
        ws = self.mapping(z, c, truncation_psi, truncation_cutoff, update_emas=update_emas)
        return self.synthesis(ws, noise_mode=noise_mode, **synthesis_kwargs)


# -- discriminator --------------------------------------------------------------------------------

class DiscriminatorBlock(nn.Module):
    """Residual block: (fromRGB), conv0, conv1 with 2x FIR downsampling, 1x1 skip, sum / sqrt(2)."""

    def __init__(
        self,
        in_channels: int,                                # Input channels, 0 = top block (fromRGB).
        tmp_channels: int,                               # Channels of the inner activations.
        out_channels: int,                               # Output channels (at half resolution).
        resolution: int,                                 # Resolution of this block's input.
        img_channels: int,                               # Number of input colour channels.
        resample_filter: Sequence[float] = (1, 3, 3, 1), # Low-pass filter for downsampling.
        conv_clamp: float | None = None,                 # Clamp convolution outputs to ±this.
        use_fp16: bool = False,                          # Run this block in fp16 (on CUDA)?
    ):
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.img_channels = img_channels
        self.use_fp16 = use_fp16
        if in_channels == 0:
            self.fromrgb = Conv2dLayer(
                img_channels, tmp_channels, kernel_size=1, activation="lrelu", conv_clamp=conv_clamp
            )
        self.conv0 = Conv2dLayer(
            tmp_channels, tmp_channels, kernel_size=3, activation="lrelu", conv_clamp=conv_clamp
        )
        self.conv1 = Conv2dLayer(
            tmp_channels, out_channels, kernel_size=3, activation="lrelu", down=2,
            resample_filter=resample_filter, conv_clamp=conv_clamp,
        )
        self.skip = Conv2dLayer(
            tmp_channels, out_channels, kernel_size=1, bias=False, down=2,
            resample_filter=resample_filter,
        )

    def forward(self, x, img, reference=False, force_fp32=False):
        device = img.device if x is None else x.device
        dtype = _block_dtype(self.use_fp16, force_fp32, device)
        fmt = _memory_format(device, dtype)
        if self.in_channels == 0:
            img = img.to(dtype=dtype, memory_format=fmt)
            x = self.fromrgb(img, reference=reference)
        else:
            x = x.to(dtype=dtype, memory_format=fmt)
        # Both branches carry gain sqrt(1/2) so that their sum keeps unit variance.
        gain = math.sqrt(0.5)
        y = self.skip(x, gain=gain, reference=reference)
        x = self.conv0(x, reference=reference)
        x = self.conv1(x, gain=gain, reference=reference)
        return y.add_(x)


class MinibatchStdLayer(nn.Module):
    """Appends the mean standard deviation across groups of samples as extra feature maps.

    Samples ``m, m + N/G, m + 2N/G, ...`` form group ``m``. ``G`` is ``min(group_size, N)``,
    lowered to the largest divisor of ``N`` so that any batch size works.
    """

    def __init__(
        self,
        group_size: int | None,   # Samples per group, None = the whole batch.
        num_channels: int = 1,    # Number of statistics channels (features split into this many).
    ):
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        N, C, H, W = x.shape
        G = N if self.group_size is None else min(self.group_size, N)
        while N % G:
            G -= 1
        F = self.num_channels
        y = x.reshape(G, -1, F, C // F, H, W)  # [G, M, F, C/F, H, W]
        y = y - y.mean(dim=0)  # deviation from the group mean
        y = (y.square().mean(dim=0) + 1e-8).sqrt()  # [M, F, C/F, H, W] standard deviation
        y = y.mean(dim=[2, 3, 4])  # [M, F]
        y = y.reshape(-1, F, 1, 1).repeat(G, 1, H, W)  # [N, F, H, W]
        return torch.cat([x, y.to(x.dtype)], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"


class DiscriminatorEpilogue(nn.Module):
    """The 4x4 end of D: minibatch stddev, conv, fc (the features), out (logit or projection)."""

    def __init__(
        self,
        in_channels: int,              # Number of input channels.
        cmap_dim: int,                 # Projection dimensionality, 0 = unconditional.
        resolution: int,               # Resolution of the input (4).
        mbstd_group_size: int | None,  # Minibatch-stddev group size, None = whole batch.
        mbstd_num_channels: int,       # Minibatch-stddev channels, 0 = disable.
        conv_clamp: float | None = None, # Clamp convolution outputs to ±this.
    ):
        super().__init__()
        self.in_channels = in_channels
        self.cmap_dim = cmap_dim
        self.resolution = resolution
        self.mbstd = None
        if mbstd_num_channels > 0:
            self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels)
        self.conv = Conv2dLayer(
            in_channels + mbstd_num_channels, in_channels, kernel_size=3, activation="lrelu",
            conv_clamp=conv_clamp,
        )
        self.fc = FullyConnectedLayer(in_channels * resolution**2, in_channels, activation="lrelu")
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x, cmap=None, reference=False):
        x = x.to(torch.float32)
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x, reference=reference)
        features = self.fc(x.flatten(1))  # [N, C*4*4] -> [N, C]
        x = self.out(features)
        if self.cmap_dim > 0:
            # Projection discriminator (Miyato & Koyama 2018): the logit is <out, embed(c)>.
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / math.sqrt(self.cmap_dim))
        return x, features


class Discriminator(nn.Module):
    """StyleGAN2 residual discriminator with optional projection conditioning."""

    def __init__(
        self,
        c_dim: int,                                      # Label (C) dimensionality, 0 = none.
        img_resolution: int,                             # Input resolution, a power of 2 (16-1024).
        img_channels: int,                               # Number of input colour channels.
        channel_base: int = 32768,                       # Channels: channel_base // resolution,
        channel_max: int = 512,                          # ...capped at channel_max.
        mbstd_group_size: int | None = 4,                # Minibatch-stddev group, None = batch.
        mbstd_num_channels: int = 1,                     # Minibatch-stddev channels, 0 = disable.
        cmap_dim: int | None = None,                     # Projection dim, None = channels at 4x4.
        conv_clamp: float | None = None,                 # Clamp conv outputs to ±this (fp16).
        num_fp16_res: int = 0,                           # Top resolutions in fp16 (CUDA only).
        resample_filter: Sequence[float] = (1, 3, 3, 1), # Low-pass filter for downsampling.
        mapping_kwargs: dict | None = None,              # Arguments for the label embedding.
    ):
        super().__init__()
        mapping_kwargs = _check_kwargs(mapping_kwargs, MappingNetwork, "mapping_kwargs")
        for fixed in ("z_dim", "c_dim", "w_dim", "num_ws", "w_avg_beta"):
            if fixed in mapping_kwargs:
                raise NeuropaintError(
                    f"'mapping_kwargs' must not set {fixed!r}: the Discriminator does."
                )
        self.init_kwargs = _jsonable(dict(
            c_dim=c_dim, img_resolution=img_resolution, img_channels=img_channels,
            channel_base=channel_base, channel_max=channel_max, mbstd_group_size=mbstd_group_size,
            mbstd_num_channels=mbstd_num_channels, cmap_dim=cmap_dim, conv_clamp=conv_clamp,
            num_fp16_res=num_fp16_res, resample_filter=list(resample_filter),
            mapping_kwargs=mapping_kwargs,
        ))
        self.c_dim = check_int(c_dim, "c_dim", minimum=0)
        self.img_resolution = _check_resolution(img_resolution)
        self.img_channels = check_int(img_channels, "img_channels", minimum=1)
        _check_channels(channel_base, channel_max, img_resolution)
        if mbstd_group_size is not None:
            check_int(mbstd_group_size, "mbstd_group_size", minimum=1)
        check_int(mbstd_num_channels, "mbstd_num_channels", minimum=0)
        num_fp16_res = check_int(num_fp16_res, "num_fp16_res", minimum=0)
        conv_clamp = _check_clamp(conv_clamp)
        log2 = int(math.log2(img_resolution))
        self.block_resolutions = [2**i for i in range(log2, 2, -1)]
        channels = channels_per_resolution(img_resolution, channel_base, channel_max)
        if mbstd_num_channels > 0 and channels[4] % mbstd_num_channels:
            raise NeuropaintError(
                f"'mbstd_num_channels' must divide the channels at 4x4 ({channels[4]}), "
                f"got {mbstd_num_channels}."
            )
        if self.c_dim == 0:
            cmap_dim = 0
        elif cmap_dim is None:
            cmap_dim = channels[4]
        else:
            cmap_dim = check_int(cmap_dim, "cmap_dim", minimum=1)
        self.cmap_dim = cmap_dim
        fp16_resolution = max(2 ** (log2 + 1 - num_fp16_res), 8)

        for res in self.block_resolutions:
            block = DiscriminatorBlock(
                channels[res] if res < img_resolution else 0, channels[res], channels[res // 2],
                res, img_channels, resample_filter=resample_filter, conv_clamp=conv_clamp,
                use_fp16=res >= fp16_resolution,
            )
            setattr(self, f"b{res}", block)
        if self.c_dim > 0:
            self.mapping = MappingNetwork(
                z_dim=0, c_dim=self.c_dim, w_dim=cmap_dim, num_ws=None, w_avg_beta=None,
                **mapping_kwargs,
            )
        self.b4 = DiscriminatorEpilogue(
            channels[4], cmap_dim=cmap_dim, resolution=4, mbstd_group_size=mbstd_group_size,
            mbstd_num_channels=mbstd_num_channels, conv_clamp=conv_clamp,
        )

    def forward(self, img, c=None, return_features=False, reference=False, force_fp32=False):
        """Logits ``[N, 1]`` for images ``[N, img_channels, H, W]`` (and labels ``[N, c_dim]``).

        With ``return_features`` also the epilogue's penultimate activations ``[N, F]``
        (F = channels at 4x4), for auxiliary heads.
        """
        res = self.img_resolution
        assert_shape(img, [None, self.img_channels, res, res], "img")
        x = None
        for res in self.block_resolutions:
            x = getattr(self, f"b{res}")(x, img, reference=reference, force_fp32=force_fp32)
        cmap = None
        if self.c_dim > 0:
            if c is None:
                raise NeuropaintError(
                    f"'c' is required: this network is conditioned (c_dim={self.c_dim})."
                )
            assert_shape(c, [img.shape[0], self.c_dim], "c")
            cmap = self.mapping(None, c)
        elif c is not None and c.numel() > 0:
            raise NeuropaintError(
                f"'c' was given, but this network is unconditioned (c_dim=0): got {list(c.shape)}."
            )
        logits, features = self.b4(x, cmap, reference=reference)
        return (logits, features) if return_features else logits

    def extra_repr(self) -> str:
        return (
            f"c_dim={self.c_dim}, img_resolution={self.img_resolution}, "
            f"img_channels={self.img_channels}"
        )
