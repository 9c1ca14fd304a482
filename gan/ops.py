"""Building blocks of StyleGAN2: equalised learning rate, FIR resampling, modulated convolution.

Follows Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN" (StyleGAN2)
and the ProGAN paper for the equalised learning rate: weights are stored as N(0, 1) and scaled
at run time by ``lr_multiplier / sqrt(fan_in)``, so that every layer learns at the same speed
under Adam.

Every fast op has a plain reference twin (``*_reference``) that spells the maths out as
directly as possible; ``tests/gan/test_ops.py`` proves each pair agrees. The fast twins are
written for a 2-core CPU first (oneDNN underneath; figures measured on the project's 2-core
machine) and run unchanged on CUDA:

- FIR filters are depthwise ``conv2d`` / ``conv_transpose2d`` calls; one 2-D pass of a 4x4
  filter measured faster than two separable 1-D passes or shifted-slice sums (0.2 vs 0.35 ms
  and 0.45 ms for 512 channels at 32x32).
- Upsampling convolutions are ``conv_transpose2d`` (stride 2) followed by the FIR filter: a
  quarter of the multiply-adds of "upsample, then convolve", and 1.5-3x faster measured.
- Modulated convolution has three forms with identical maths: ``fused=True`` folds each
  sample's styles into its own weight (one grouped convolution over the batch; at batch 1 one
  plain ``conv2d``), ``fused=False`` scales the activations instead and shares one weight across
  the batch, and the reference loops over the samples. On CPU a grouped convolution is slow
  (about 3x slower than the shared form at batch 8), so :mod:`gan.networks` uses the fused form
  one sample at a time where weights are smaller than activations and the shared form elsewhere.
- Gains, biases and demodulation coefficients are folded into the convolution's weight or
  bias where the maths allows (``lrelu(x) * g == lrelu(x * g)`` for ``g > 0``), so a layer
  makes as few passes over its activations as possible.

Filters follow the ``upfirdn2d`` convention: upsample by inserting zeros, pad (negative padding
crops), convolve with the FIR filter, keep every ``down``-th sample. Padding is given as
``[x0, x1, y0, y1]`` (the order of ``torch.nn.functional.pad``) or one int for all four sides.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from neuropaint.validate import NeuropaintError, check_option

__all__ = [
    "ACTIVATIONS",
    "Conv2dLayer",
    "FullyConnectedLayer",
    "assert_shape",
    "bias_act",
    "bias_act_reference",
    "conv2d_resample",
    "conv2d_resample_reference",
    "downsample2d",
    "filter2d",
    "modulated_conv2d",
    "modulated_conv2d_reference",
    "normalize_2nd_moment",
    "setup_filter",
    "upfirdn2d",
    "upfirdn2d_reference",
    "upsample2d",
]

# Activation -> (function, default gain). The lrelu gain sqrt(2) keeps the signal's second
# moment unchanged through a layer (He et al. 2015), as in StyleGAN2.
ACTIVATIONS = {
    "linear": (None, 1.0),
    "lrelu": (0.2, math.sqrt(2)),
}


# -- shapes -------------------------------------------------------------------------------------

def assert_shape(x: torch.Tensor, shape: Sequence[int | None], name: str = "tensor") -> None:
    """Raise a one-line error unless ``x`` matches ``shape`` dim by dim (None = any size)."""
    if x.ndim != len(shape) or any(
        want is not None and int(got) != want for got, want in zip(x.shape, shape, strict=False)
    ):
        want_text = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
        raise NeuropaintError(f"'{name}' must have shape {want_text}, got {list(x.shape)}.")


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scale ``x`` to unit mean square along ``dim`` (the mapping network's input norm)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def _padding4(padding: int | Sequence[int]) -> list[int]:
    if isinstance(padding, int):
        return [padding] * 4
    padding = [int(p) for p in padding]
    if len(padding) == 2:  # [px, py]
        return [padding[0], padding[0], padding[1], padding[1]]
    if len(padding) != 4:
        raise NeuropaintError(f"'padding' must be an int or 2 or 4 ints, got {padding!r}.")
    return padding


# -- FIR filters ----------------------------------------------------------------------------------

def setup_filter(
    f: Sequence[float] | torch.Tensor | None = (1, 3, 3, 1),
    normalize: bool = True,
    flip_filter: bool = False,
    gain: float = 1.0,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Turn a 1-D or 2-D list of taps into a 2-D float32 FIR filter ``[fh, fw]``.

    A 1-D filter becomes its outer product (a separable 2-D filter). With ``normalize`` the taps
    sum to 1, so the filter keeps the mean of a signal; ``gain`` then scales all taps. ``None``
    gives the identity ``[[1]]``. The default ``[1, 3, 3, 1]`` is StyleGAN2's binomial filter.
    """
    if f is None:
        f = [1]
    f = torch.as_tensor(f, dtype=torch.float32, device=device)
    if f.ndim == 0:
        f = f[None]
    if f.ndim == 1:
        f = f[:, None] * f[None, :]  # [fh, fw]
    if f.ndim != 2 or f.numel() == 0:
        raise NeuropaintError(
            f"'f' must be a non-empty 1-D or 2-D filter, got shape {list(f.shape)}."
        )
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip([0, 1])
    return f * gain


def _check_image(x: torch.Tensor) -> None:
    if x.ndim != 4:
        raise NeuropaintError(f"'x' must have shape [N, C, H, W], got {list(x.shape)}.")


def upfirdn2d_reference(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up: int = 1,
    down: int = 1,
    padding: int | Sequence[int] = 0,
    flip_filter: bool = False,
    gain: float = 1.0,
) -> torch.Tensor:
    """Plain twin of :func:`upfirdn2d`: zero insertion, padding, a loop over the taps, stride."""
    _check_image(x)
    f = setup_filter(None, device=x.device) if f is None else f.to(x.device, x.dtype)
    px0, px1, py0, py1 = _padding4(padding)
    N, C, H, W = x.shape
    if up > 1:
        u = x.new_zeros([N, C, H * up, W * up])
        u[:, :, ::up, ::up] = x
        x = u
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0) : x.shape[2] - max(-py1, 0), max(-px0, 0) : x.shape[3] - max(-px1, 0)]
    fh, fw = f.shape
    taps = f if flip_filter else f.flip([0, 1])  # a true convolution flips the filter
    out_h = x.shape[2] - fh + 1
    out_w = x.shape[3] - fw + 1
    y = x.new_zeros([N, C, out_h, out_w])
    for i in range(fh):
        for j in range(fw):
            y = y + taps[i, j] * x[:, :, i : i + out_h, j : j + out_w]
    return (y * gain)[:, :, ::down, ::down]


def _depthwise(f: torch.Tensor, channels: int, like: torch.Tensor) -> torch.Tensor:
    return f.to(like.device, like.dtype)[None, None].expand(channels, 1, *f.shape)  # [C, 1, fh, fw]


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up: int = 1,
    down: int = 1,
    padding: int | Sequence[int] = 0,
    flip_filter: bool = False,
    gain: float = 1.0,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Upsample (zero insertion), pad, FIR-filter and downsample ``x`` ``[N, C, H, W]``.

    The fast twin: one depthwise ``conv2d`` (stride ``down``) or, when upsampling, one
    depthwise ``conv_transpose2d`` (stride ``up``, which inserts the zeros for free). An
    optional per-channel ``bias`` is added by the same call.
    """
    _check_image(x)
    if f is None:
        f = setup_filter(None)
    px0, px1, py0, py1 = _padding4(padding)
    C = x.shape[1]
    fh, fw = f.shape
    if up > 1 and down == 1:
        # conv_transpose2d scatters each input sample through the taps: a full convolution of
        # the zero-inserted signal, of which the reference keeps samples [f - 1 - p0, ...). Its
        # `padding` crops both ends alike; any other difference is sliced or zero-padded after.
        k = _depthwise(f if not flip_filter else f.flip([0, 1]), C, x) * gain
        H, W = x.shape[2], x.shape[3]
        out_h = H * up + py0 + py1 - fh + 1
        out_w = W * up + px0 + px1 - fw + 1
        start_y, start_x = fh - 1 - py0, fw - 1 - px0
        end_y = (H - 1) * up + fh - (start_y + out_h)  # samples to drop at the far end
        end_x = (W - 1) * up + fw - (start_x + out_w)
        crop_y = max(min(start_y, end_y), 0)
        crop_x = max(min(start_x, end_x), 0)
        start_y -= crop_y
        start_x -= crop_x
        size_y = (H - 1) * up + fh - 2 * crop_y
        size_x = (W - 1) * up + fw - 2 * crop_x
        exact = start_y == 0 and start_x == 0 and size_y == out_h and size_x == out_w
        y = F.conv_transpose2d(
            x, k, bias if exact else None, stride=up, padding=(crop_y, crop_x), groups=C
        )
        if not exact:
            # F.pad with negative amounts crops, so one call covers every remaining case.
            y = F.pad(y, [-start_x, out_w + start_x - size_x, -start_y, out_h + start_y - size_y])
            if bias is not None:
                y = y + bias.view(1, -1, 1, 1)
        return y[:, :, ::down, ::down] if down > 1 else y
    k = _depthwise(f.flip([0, 1]) if not flip_filter else f, C, x) * gain
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return F.conv2d(x, k, bias, stride=down, padding=(py0, px0), groups=C)
    x = F.pad(x, [px0, px1, py0, py1])  # negative padding crops
    return F.conv2d(x, k, bias, stride=down, groups=C)


def filter2d(x, f, padding=0, flip_filter=False, gain=1.0, reference=False):
    """Filter ``x`` with ``f``; by default padded so that the output keeps the input's size."""
    fh, fw = f.shape
    p = _padding4(padding)
    p = [p[0] + fw // 2, p[1] + (fw - 1) // 2, p[2] + fh // 2, p[3] + (fh - 1) // 2]
    op = upfirdn2d_reference if reference else upfirdn2d
    return op(x, f, padding=p, flip_filter=flip_filter, gain=gain)


def upsample2d(x, f, up=2, padding=0, flip_filter=False, gain=1.0, reference=False):
    """Upsample ``x`` by ``up`` with FIR filter ``f``: ``[N, C, H, W] -> [N, C, H*up, W*up]``.

    The filter gets gain ``up**2`` so that the inserted zeros do not darken the image.
    """
    fh, fw = f.shape
    p = _padding4(padding)
    p = [
        p[0] + (fw + up - 1) // 2,
        p[1] + (fw - up) // 2,
        p[2] + (fh + up - 1) // 2,
        p[3] + (fh - up) // 2,
    ]
    op = upfirdn2d_reference if reference else upfirdn2d
    return op(x, f, up=up, padding=p, flip_filter=flip_filter, gain=gain * up * up)


def downsample2d(x, f, down=2, padding=0, flip_filter=False, gain=1.0, reference=False):
    """Low-pass ``x`` with FIR filter ``f`` and keep every ``down``-th sample."""
    fh, fw = f.shape
    p = _padding4(padding)
    p = [
        p[0] + (fw - down + 1) // 2,
        p[1] + (fw - down) // 2,
        p[2] + (fh - down + 1) // 2,
        p[3] + (fh - down) // 2,
    ]
    op = upfirdn2d_reference if reference else upfirdn2d
    return op(x, f, down=down, padding=p, flip_filter=flip_filter, gain=gain)


# -- convolution with resampling ------------------------------------------------------------------

def _resample_padding(f, kw, kh, up, down, padding):
    """FIR padding around a ``kh x kw`` convolution that up- or downsamples by 2 (or more)."""
    px0, px1, py0, py1 = _padding4(padding)
    fh, fw = (1, 1) if f is None else f.shape
    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
        py0 += (fh + up - 1) // 2
        py1 += (fh - up) // 2
    if down > 1:
        px0 += (fw - down + 1) // 2
        px1 += (fw - down) // 2
        py0 += (fh - down + 1) // 2
        py1 += (fh - down) // 2
    return [px0, px1, py0, py1]


def _check_resample(w, up, down):
    if up > 1 and down > 1:
        raise NeuropaintError(f"up and down at once is not supported, got up={up}, down={down}.")
    if w.ndim != 4:
        raise NeuropaintError(f"'w' must have shape [O, I, kh, kw], got {list(w.shape)}.")


def conv2d_resample_reference(x, w, f=None, up=1, down=1, padding=0, groups=1, bias=None):
    """Plain twin of :func:`conv2d_resample`: FIR-resample with the reference filter, convolve.

    Upsampling: zero insertion and the FIR filter first, then a valid convolution with the
    kernel flipped (the convention of ``conv_transpose2d``, which the fast twin uses).
    Downsampling: the FIR filter first, then a convolution with stride ``down``.
    """
    _check_resample(w, up, down)
    kh, kw = w.shape[2:]
    if up == 1 and down == 1:
        px0, px1, py0, py1 = _padding4(padding)
        y = F.conv2d(F.pad(x, [px0, px1, py0, py1]), w, groups=groups)
    elif up > 1:
        p = _resample_padding(f, kw, kh, up, 1, padding)
        x = upfirdn2d_reference(x, f, up=up, padding=p, gain=up * up)
        y = F.conv2d(x, w.flip([2, 3]), groups=groups)
    else:
        p = _resample_padding(f, kw, kh, 1, down, padding)
        x = upfirdn2d_reference(x, f, padding=p)
        y = F.conv2d(x, w, stride=down, groups=groups)
    return y if bias is None else y + bias.view(1, -1, 1, 1)


def _conv_transpose_fir(x, wt, f, up, padding, groups, bias):
    """Upsampling convolution from a weight already in transposed layout ``[G*I, O/G, kh, kw]``."""
    kh, kw = wt.shape[2:]
    p = _resample_padding(f, kw, kh, up, 1, padding)
    # The transposed convolution already produces kw - 1 (left) and kw - up (right) of the
    # samples the FIR padding asks for; what is left (or, if negative, cut) is the FIR's own.
    p = [p[0] - (kw - 1), p[1] - (kw - up), p[2] - (kh - 1), p[3] - (kh - up)]
    crop_x = max(min(-p[0], -p[1]), 0)
    crop_y = max(min(-p[2], -p[3]), 0)
    y = F.conv_transpose2d(x, wt, stride=up, padding=(crop_y, crop_x), groups=groups)
    p = [p[0] + crop_x, p[1] + crop_x, p[2] + crop_y, p[3] + crop_y]
    return upfirdn2d(y, f, padding=p, gain=up * up, bias=bias)


def conv2d_resample(x, w, f=None, up=1, down=1, padding=0, groups=1, bias=None):
    """Convolve ``x`` ``[N, I*groups, H, W]`` with ``w`` ``[O, I, kh, kw]``, resampling by FIR.

    ``up > 1``: the output is ``up`` times larger, as if ``x`` were upsampled with filter ``f``
    (gain ``up**2``) before the convolution; computed as ``conv_transpose2d`` (stride ``up``)
    followed by the filter. ``down > 1``: ``f`` low-passes before a strided convolution (a 1x1
    kernel filters and decimates in one depthwise call first). ``bias`` ``[O]`` rides along
    in the last call.
    """
    _check_resample(w, up, down)
    kh, kw = w.shape[2:]
    px0, px1, py0, py1 = _padding4(padding)
    if up == 1 and down == 1:
        if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
            return F.conv2d(x, w, bias, padding=(py0, px0), groups=groups)
        return F.conv2d(F.pad(x, [px0, px1, py0, py1]), w, bias, groups=groups)
    if up > 1:
        Co, Ci = w.shape[:2]
        if groups == 1:
            wt = w.transpose(0, 1)  # [I, O, kh, kw]
        else:
            wt = w.reshape(groups, Co // groups, Ci, kh, kw)  # [G, O/G, I, kh, kw]
            wt = wt.transpose(1, 2).reshape(groups * Ci, Co // groups, kh, kw)  # [G*I, O/G, kh, kw]
        return _conv_transpose_fir(x, wt, f, up, padding, groups, bias)
    p = _resample_padding(f, kw, kh, 1, down, padding)
    if kw == 1 and kh == 1 and groups == 1:
        x = upfirdn2d(x, f, down=down, padding=p)
        return F.conv2d(x, w, bias)
    x = upfirdn2d(x, f, padding=p)
    return F.conv2d(x, w, bias, stride=down, groups=groups)


# -- bias and activation --------------------------------------------------------------------------

def _check_act(act: str) -> None:
    check_option(act, "activation", ACTIVATIONS)


def bias_act_reference(x, b=None, act="linear", gain=None, clamp=None, dim=1):
    """Plain twin of :func:`bias_act`: add ``b`` along ``dim``, activate, scale, clamp."""
    _check_act(act)
    slope, default_gain = ACTIVATIONS[act]
    gain = default_gain if gain is None else float(gain)
    if b is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        x = x + b.view(shape)
    if slope is not None:
        x = torch.where(x >= 0, x, x * slope)
    x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


def bias_act(x, b=None, act="linear", gain=None, clamp=None, dim=1, inplace=False):
    """Add bias ``b`` ``[C]`` along ``dim``, apply ``act``, scale by ``gain``, clamp to ±``clamp``.

    ``gain`` defaults to the activation's own (sqrt(2) for lrelu); ``clamp`` (``conv_clamp``)
    bounds activations so that fp16 cannot overflow. With ``inplace=True`` the caller hands
    over ``x`` (a temporary it owns) and the op reuses its memory; autograd stays correct,
    because the in-place steps only overwrite values that no backward needs.
    """
    _check_act(act)
    slope, default_gain = ACTIVATIONS[act]
    gain = default_gain if gain is None else float(gain)
    if b is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        x = x.add_(b.view(shape)) if inplace else x + b.view(shape)
        inplace = True  # from here on x is a temporary of our own
    if gain != 1 and gain > 0:
        # lrelu(x) * g == lrelu(x * g) for g > 0, and scaling first keeps every later step
        # in place (leaky_relu_ saves its result for backward, so nothing may follow it in place).
        x = x.mul_(gain) if inplace else x * gain
        inplace = True
    if slope is not None:
        x = F.leaky_relu_(x, slope) if inplace else F.leaky_relu(x, slope)
    if gain <= 0:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


# -- modulated convolution ------------------------------------------------------------------------

def _check_modconv(x, weight, styles):
    N, Ci = x.shape[:2]
    if weight.ndim != 4 or weight.shape[1] != Ci:
        raise NeuropaintError(
            f"'weight' must have shape [O, {Ci}, kh, kw], got {list(weight.shape)}."
        )
    assert_shape(styles, [N, Ci], "styles")


def modulated_conv2d_reference(
    x, weight, styles, demodulate=True, up=1, padding=None, resample_filter=None, eps=1e-8
):
    """Plain twin of :func:`modulated_conv2d`: one sample at a time, the paper's equations.

    For sample n: w'_oik = s_i w_oik (modulation); with ``demodulate``,
    w''_oik = w'_oik / sqrt(sum_ik w'_oik^2 + eps) (StyleGAN2, eq. 1-3); then a convolution.
    """
    _check_modconv(x, weight, styles)
    padding = weight.shape[-1] // 2 if padding is None else padding
    out = []
    for n in range(x.shape[0]):
        w = weight * styles[n].view(1, -1, 1, 1)  # [O, I, kh, kw]
        if demodulate:
            w = w / (w.square().sum(dim=[1, 2, 3], keepdim=True) + eps).sqrt()
        y = conv2d_resample_reference(x[n : n + 1], w, resample_filter, up=up, padding=padding)
        out.append(y)
    return torch.cat(out)


def _product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a * b`` laid out contiguously in the broadcast shape's own dimension order.

    An elementwise product otherwise inherits the memory order of a permuted input, which
    would hand the convolution a weight in the wrong layout and make it copy.
    """
    shape = torch.broadcast_shapes(a.shape, b.shape)
    if torch.is_grad_enabled() and (a.requires_grad or b.requires_grad):
        return (a * b).contiguous()
    out = torch.empty(shape, dtype=torch.result_type(a, b), device=a.device)
    return torch.mul(a, b, out=out)


def modulated_conv2d(
    x,
    weight,
    styles,
    demodulate=True,
    up=1,
    padding=None,
    resample_filter=None,
    fused=True,
    gain=1.0,
    bias=None,
    weight_sq=None,
    eps=1e-8,
):
    """Modulated (demodulated) convolution of ``x`` ``[N, I, H, W]`` by ``weight`` ``[O, I, k, k]``.

    ``styles`` ``[N, I]`` scale the input channels per sample. ``fused=True`` builds each
    sample's weight and runs one grouped convolution over the batch (at batch 1, a single
    ``conv2d``); ``fused=False`` scales the activations before, and the output channels after,
    one shared convolution. ``gain`` scales the output and ``bias`` ``[O]`` is added after it
    (both folded into the convolution where possible); ``weight_sq`` ``[O, I]`` may pass a cached
    ``weight.square().sum([2, 3])``. Upsampling (``up=2``) follows :func:`conv2d_resample`.
    """
    _check_modconv(x, weight, styles)
    N, Ci = x.shape[:2]
    Co, _, kh, kw = weight.shape
    padding = kw // 2 if padding is None else padding
    dtype = x.dtype
    weight = weight.to(dtype)
    styles = styles.to(dtype)
    if dtype == torch.float16 and demodulate:
        # Demodulation cancels any scale of the weight and the styles: bring both to max 1 so
        # that the sums of squares below cannot overflow in half precision.
        peak = weight.abs().amax(dim=[1, 2, 3], keepdim=True)
        weight = weight * (1 / math.sqrt(Ci * kh * kw) / peak)
        styles = styles / styles.abs().amax(dim=1, keepdim=True)
        weight_sq = None
    scale = None  # [N, O] output scale: demodulation coefficients times gain
    if demodulate:
        if weight_sq is None:
            weight_sq = weight.square().sum(dim=[2, 3])  # [O, I]
        # sum_ik (s_i w_oik)^2 = sum_i s_i^2 sum_k w_oik^2: a matrix product, no weight copy.
        scale = (styles.square() @ weight_sq.to(dtype).t() + eps).rsqrt() * gain  # [N, O]
    elif gain != 1:
        scale = styles.new_full([N, Co], float(gain))

    if not fused:
        x = x * styles.view(N, Ci, 1, 1)
        y = conv2d_resample(x, weight, resample_filter, up=up, padding=padding)
        if scale is not None and bias is not None:
            return torch.addcmul(bias.to(dtype).view(1, -1, 1, 1), y, scale.view(N, Co, 1, 1))
        if scale is not None:
            y = y * scale.view(N, Co, 1, 1)
        return y if bias is None else y + bias.to(dtype).view(1, -1, 1, 1)

    # Per-sample weights, built straight into the layout their convolution takes, so that it
    # does not copy them again: at batch 1 (the rendering case) channels-last like the
    # activations; for the grouped convolution over a batch, the default layout.
    b = None if bias is None else bias.to(dtype)
    if scale is None:
        mod = styles.view(N, 1, Ci)  # [N, 1, I]
    else:
        mod = scale.view(N, Co, 1) * styles.view(N, 1, Ci)  # [N, O, I]
    if N == 1 and up == 1:
        w = _product(weight.permute(0, 2, 3, 1), mod.view(-1, 1, 1, Ci))  # [O, kh, kw, I]
        return conv2d_resample(x, w.permute(0, 3, 1, 2), padding=padding, bias=b)
    if N == 1:
        mod = mod.view(-1, Ci).t().reshape(Ci, 1, 1, -1)  # [I, 1, 1, O or 1]
        w = _product(weight.permute(1, 2, 3, 0), mod)  # [I, kh, kw, O]
        return _conv_transpose_fir(x, w.permute(0, 3, 1, 2), resample_filter, up, padding, 1, b)
    x = x.reshape(1, N * Ci, *x.shape[2:])  # [1, N*I, H, W]
    b = None if b is None else b.repeat(N)
    if up == 1:
        w = _product(weight.unsqueeze(0), mod.view(N, -1, Ci, 1, 1))  # [N, O, I, kh, kw]
        w = w.reshape(N * Co, Ci, kh, kw)  # [N*O, I, kh, kw]
        y = conv2d_resample(x, w, padding=padding, groups=N, bias=b)
    else:
        mod = mod.transpose(1, 2).reshape(N, Ci, -1, 1, 1)  # [N, I, O or 1, 1, 1]
        w = _product(weight.transpose(0, 1).unsqueeze(0), mod)  # [N, I, O, kh, kw]
        w = w.reshape(N * Ci, Co, kh, kw)  # [N*I, O, kh, kw]
        y = _conv_transpose_fir(x, w, resample_filter, up, padding, N, b)
    return y.reshape(N, Co, *y.shape[2:])  # [N, O, H', W']


# -- layers with equalised learning rate ----------------------------------------------------------

class FullyConnectedLayer(nn.Module):
    """Dense layer with equalised learning rate: ``y = act(x (w g)^T + b * lr_multiplier)``.

    ``weight`` is stored as N(0, 1) / ``lr_multiplier`` and scaled at run time by
    ``g = lr_multiplier / sqrt(in_features)``; the mapping network's 0.01 multiplier slows its
    effective learning rate a hundredfold (StyleGAN, section 2).
    """

    def __init__(
        self,
        in_features: int,             # Number of input features.
        out_features: int,            # Number of output features.
        bias: bool = True,            # Learn an additive bias?
        lr_multiplier: float = 1.0,   # Learning-rate multiplier of this layer.
        bias_init: float = 0.0,       # Initial value of the bias.
        activation: str = "linear",   # 'linear' or 'lrelu'.
    ):
        super().__init__()
        _check_act(activation)
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Scale the product, not the weight: at small batches the weight is by far the larger.
        w = self.weight.to(x.dtype).t()
        if self.bias is not None and x.ndim == 2:
            b = self.bias.to(x.dtype)
            x = torch.addmm(b, x, w, beta=self.bias_gain, alpha=self.weight_gain)
        else:
            x = (x @ w) * self.weight_gain
            if self.bias is not None:
                x = x + self.bias.to(x.dtype) * self.bias_gain
        if self.activation == "linear":
            return x
        return bias_act(x, None, act=self.activation, inplace=True)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"activation={self.activation}"
        )


class Conv2dLayer(nn.Module):
    """Convolution with equalised learning rate, FIR up/downsampling, bias and activation."""

    def __init__(
        self,
        in_channels: int,                                # Number of input channels.
        out_channels: int,                               # Number of output channels.
        kernel_size: int,                                # Width and height of the kernel.
        bias: bool = True,                               # Learn an additive bias?
        activation: str = "linear",                      # 'linear' or 'lrelu'.
        up: int = 1,                                     # Integer upsampling factor.
        down: int = 1,                                   # Integer downsampling factor.
        resample_filter: Sequence[float] = (1, 3, 3, 1), # Low-pass filter for resampling.
        conv_clamp: float | None = None,                 # Clamp the output to ±this, or None.
    ):
        super().__init__()
        _check_act(activation)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.activation = activation
        self.up = up
        self.down = down
        self.conv_clamp = conv_clamp
        self.padding = kernel_size // 2
        self.register_buffer("resample_filter", setup_filter(resample_filter), persistent=False)
        shape = [out_channels, in_channels, kernel_size, kernel_size]
        self.weight = nn.Parameter(torch.randn(shape))
        self.bias = nn.Parameter(torch.zeros([out_channels])) if bias else None
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.act_gain = ACTIVATIONS[activation][1]

    def forward(self, x: torch.Tensor, gain: float = 1.0, reference: bool = False) -> torch.Tensor:
        act_gain = self.act_gain * gain
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        b = None if self.bias is None else self.bias.to(x.dtype)
        f = self.resample_filter
        if reference:
            w = self.weight.to(x.dtype) * self.weight_gain
            x = conv2d_resample_reference(x, w, f, self.up, self.down, self.padding)
            return bias_act_reference(x, b, self.activation, gain=act_gain, clamp=clamp)
        # lrelu(z) * g == lrelu(z * g) for g > 0: fold the gain into the weight and the bias so
        # that the convolution's own bias add does the rest and only the activation is left.
        w = self.weight.to(x.dtype) * (self.weight_gain * act_gain)
        b = None if b is None else b * act_gain
        x = conv2d_resample(x, w, f, self.up, self.down, self.padding, bias=b)
        return bias_act(x, None, self.activation, gain=1.0, clamp=clamp, inplace=True)

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
            f"kernel_size={self.weight.shape[-1]}, activation={self.activation}, "
            f"up={self.up}, down={self.down}"
        )
