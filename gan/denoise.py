"""Classical image denoising for the upscaler: non-local means with an estimated noise level.

The seeds denoised their GAN outputs before and after upscaling; ``python -m gan.upscale apply
--denoise before|after|both`` does the same with this module. The denoiser is non-local means
(Buades, Coll & Morel 2005, "A non-local algorithm for image denoising"): each pixel becomes a
weighted mean of the pixels in a search window around it, weighted by how alike the small
patches around the two pixels are. We chose it over a bilateral filter because it removes
Gaussian and JPEG-like noise while keeping the flat fields, hard edges and canvas weave of
paintings, where a bilateral filter either leaves grain or melts texture; over a learned
denoiser because it needs no training data and cannot invent content.

Details, as scikit-image's ``denoise_nl_means(fast_mode=True)`` does them:

- the patch distance ``d²`` is the mean squared difference over the patch and the colour
  channels, and the weight is ``exp(-max(d² - 2σ², 0) / h²)`` (subtracting the expected
  distance of two noisy copies of the same patch, ``2σ²``), with ``h = strength * σ`` and
  ``strength = 0.8`` by default, patches of 5x5 and a 13x13 search window;
- the fast form (Darbon et al. 2008, "Fast nonlocal filtering applied to electron
  cryomicroscopy") loops over the search offsets instead of the pixels: for each offset the
  squared difference image is box-filtered once, so the cost is ``O(pixels * window²)``,
  independent of the patch size. :func:`nl_means_reference` spells the maths out pixel by
  pixel; ``tests/gan/test_upscale.py`` proves the two agree.

The noise level σ, when not given, is estimated per image and channel with Immerkær's method
(1996, "Fast noise variance estimation"): the image is convolved with a 3x3 mask that cancels
smooth content, ``σ = sqrt(π/2) / (6 (W-2)(H-2)) * Σ|I * M|``. On a clean image σ is near
zero and the filter leaves it (almost) unchanged, so ``--denoise`` is safe on clean inputs.

>>> import torch
>>> from gan.denoise import nl_means
>>> noisy = torch.zeros(1, 3, 32, 32) + 0.1 * torch.randn(1, 3, 32, 32)
>>> float(nl_means(noisy).std()) < float(noisy.std())
True
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from gan.ops import assert_shape
from neuropaint.validate import NeuropaintError, check_int, check_positive

__all__ = ["estimate_noise_sigma", "nl_means", "nl_means_reference"]

# Immerkær's mask: the difference of two Laplacians, blind to constant, linear and
# quadratic content, so what it measures is mostly noise.
_IMMERKAER = ((1.0, -2.0, 1.0), (-2.0, 4.0, -2.0), (1.0, -2.0, 1.0))


def estimate_noise_sigma(x: torch.Tensor) -> torch.Tensor:
    """Standard deviation of additive white noise in each image, Immerkær's estimate.

    Parameters
    ----------
    x : Tensor, shape (N, C, H, W)
        Images (any value range; σ comes out in the same units). H and W at least 3.

    Returns
    -------
    sigma : Tensor, shape (N,)
        The mean over channels of each channel's estimate.
    """
    assert_shape(x, [None, None, None, None], "x")
    c, h, w = x.shape[1:]
    if h < 3 or w < 3:
        raise NeuropaintError(f"noise estimation needs images of at least 3x3 px, got {w}x{h}.")
    mask = torch.tensor(_IMMERKAER, dtype=x.dtype, device=x.device)
    mask = mask.expand(c, 1, 3, 3).contiguous()  # depthwise [C, 1, 3, 3]
    response = F.conv2d(x, mask, groups=c)  # [N, C, H-2, W-2]
    per_channel = response.abs().sum(dim=(2, 3)) * (math.sqrt(math.pi / 2) / (6 * (h - 2) * (w - 2)))
    return per_channel.mean(dim=1)


def _check_args(x: torch.Tensor, patch: int, search: int, strength: float) -> tuple[int, int]:
    assert_shape(x, [None, None, None, None], "x")
    patch = check_int(patch, "patch", minimum=1)
    search = check_int(search, "search", minimum=1)
    if patch % 2 == 0 or search % 2 == 0:
        raise NeuropaintError(f"'patch' and 'search' must be odd, got {patch} and {search}.")
    check_positive(strength, "strength")
    return patch // 2, search // 2


def _sigmas(x: torch.Tensor, sigma: float | torch.Tensor | None) -> torch.Tensor:
    if sigma is None:
        return estimate_noise_sigma(x)
    sig = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).flatten()
    if sig.numel() == 1:
        sig = sig.expand(x.shape[0])
    if sig.numel() != x.shape[0] or not bool(torch.all(torch.isfinite(sig) & (sig >= 0))):
        raise NeuropaintError(f"'sigma' must be one non-negative number or one per image, "
                              f"got {sigma!r}.")
    return sig


def _box_mean(x: torch.Tensor, k: int) -> torch.Tensor:
    """Mean over every k x k window (valid positions), by two running sums.

    5-15x faster than ``avg_pool2d(x, k, stride=1)`` on a CPU, where the pooling is not
    vectorised. Each running sum spans one row or column only, so float32 stays accurate.
    """
    rows = F.pad(x, (1, 0)).cumsum(dim=3)  # [N, C, H, W+1]
    x = rows[..., k:] - rows[..., :-k]  # [N, C, H, W-k+1]: sums along W
    cols = F.pad(x, (0, 0, 1, 0)).cumsum(dim=2)  # [N, C, H+1, W-k+1]
    return (cols[:, :, k:] - cols[:, :, :-k]) / (k * k)  # [N, C, H-k+1, W-k+1]


def nl_means(
    x: torch.Tensor,
    sigma: float | torch.Tensor | None = None,
    *,
    strength: float = 0.8,
    patch: int = 5,
    search: int = 13,
    band_pixels: int = 1 << 20,
) -> torch.Tensor:
    """Non-local means denoising (the fast, offset-by-offset form).

    Parameters
    ----------
    x : Tensor, shape (N, C, H, W)
        Float images, any range (``[-1, 1]`` inside the project).
    sigma : float | Tensor of shape (N,) | None
        Noise standard deviation in the units of ``x``; None estimates it per image
        (:func:`estimate_noise_sigma`). A σ of 0 returns the image unchanged.
    strength : float
        ``h = strength * σ``: larger smooths more.
    patch, search : int
        Odd sides of the compared patches and of the search window.
    band_pixels : int
        Rows are processed in bands of about this many pixels (with the rows each band's
        windows reach beyond it), which bounds the working memory of large images; the result
        does not depend on it.

    Returns
    -------
    Tensor, shape (N, C, H, W)
    """
    patch_r, search_r = _check_args(x, patch, search, strength)
    band_pixels = check_int(band_pixels, "band_pixels", minimum=1)
    sig = _sigmas(x, sigma)
    h, w = x.shape[2:]
    out = x.clone()
    todo = (sig > 0).nonzero().flatten()
    if len(todo) == 0:
        return out
    sig2 = (sig[todo] ** 2).view(-1, 1, 1, 1)  # [n, 1, 1, 1]
    pad = search_r + patch_r
    # Replicate, not reflect: works for any image size, even smaller than the window.
    padded = F.pad(x[todo], (pad, pad, pad, pad), mode="replicate")  # [n, C, H+2p, W+2p]
    rows = max(1, band_pixels // (w * len(todo)))
    for top in range(0, h, rows):
        bottom = min(h, top + rows)
        band = padded[:, :, top : bottom + 2 * pad]  # the rows this band's windows reach
        out[todo, :, top:bottom] = _nl_means_band(band, sig2, strength**2 * sig2, patch_r,
                                                  search_r)
    return out


def _nl_means_band(padded: torch.Tensor, sig2: torch.Tensor, h2: torch.Tensor, patch_r: int,
                   search_r: int) -> torch.Tensor:
    """NL-means of the pixels ``pad`` inside a replicate-padded band ``[n, C, H+2p, W+2p]``."""
    pad = search_r + patch_r
    h, w = padded.shape[2] - 2 * pad, padded.shape[3] - 2 * pad
    # The region whose patches touch the output pixels: patch_r beyond them on each side.
    ref = padded[:, :, search_r : search_r + h + 2 * patch_r, search_r : search_r + w + 2 * patch_r]
    acc = torch.zeros(padded.shape[0], padded.shape[1], h, w, dtype=padded.dtype,
                      device=padded.device)
    total = torch.zeros(padded.shape[0], 1, h, w, dtype=padded.dtype, device=padded.device)
    kernel = 2 * patch_r + 1
    for dy in range(2 * search_r + 1):
        for dx in range(2 * search_r + 1):
            moved = padded[:, :, dy : dy + h + 2 * patch_r, dx : dx + w + 2 * patch_r]
            diff = (moved - ref).square().mean(dim=1, keepdim=True)  # [n, 1, H+2r, W+2r]
            dist = _box_mean(diff, kernel)  # [n, 1, H, W]: mean over the patch
            weight = torch.exp(-(dist - 2 * sig2).clamp_min(0) / h2)
            acc += weight * moved[:, :, patch_r : patch_r + h, patch_r : patch_r + w]
            total += weight
    return acc / total


def nl_means_reference(
    x: torch.Tensor,
    sigma: float | torch.Tensor | None = None,
    *,
    strength: float = 0.8,
    patch: int = 5,
    search: int = 13,
) -> torch.Tensor:
    """:func:`nl_means` pixel by pixel, as the paper writes it (slow: tiny images only)."""
    patch_r, search_r = _check_args(x, patch, search, strength)
    sig = _sigmas(x, sigma)
    pad = search_r + patch_r
    out = x.clone()
    for i in range(x.shape[0]):
        s2 = float(sig[i]) ** 2
        if s2 == 0:
            continue
        img = F.pad(x[i : i + 1], (pad, pad, pad, pad), mode="replicate")[0]  # [C, H+2p, W+2p]
        for yy in range(x.shape[2]):
            for xx in range(x.shape[3]):
                cy, cx = yy + pad, xx + pad
                here = img[:, cy - patch_r : cy + patch_r + 1, cx - patch_r : cx + patch_r + 1]
                num = torch.zeros(x.shape[1], dtype=x.dtype)
                den = 0.0
                for oy in range(-search_r, search_r + 1):
                    for ox in range(-search_r, search_r + 1):
                        qy, qx = cy + oy, cx + ox
                        there = img[:, qy - patch_r : qy + patch_r + 1,
                                    qx - patch_r : qx + patch_r + 1]
                        d2 = float((there - here).square().mean())
                        weight = math.exp(-max(d2 - 2 * s2, 0.0) / (strength**2 * s2))
                        num += weight * img[:, qy, qx]
                        den += weight
                out[i, :, yy, xx] = num / den
    return out
