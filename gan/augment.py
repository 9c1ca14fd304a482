"""Adaptive discriminator augmentation (ADA): a differentiable, non-leaking augmentation pipeline.

Follows Karras et al. 2020, "Training Generative Adversarial Networks with Limited Data"
(NeurIPS), section 2 and appendix B, written here from the paper. Every image the
discriminator sees, real or generated, passes through :class:`AugmentPipe`; each transform
is applied to each image independently with probability ``p * multiplier``, and
:class:`AdaController` tunes ``p`` from the overfitting heuristic ``r_t = E[sign(D(real))]``.

Why the augmentations do not leak into the generator (paper, section 2.2): while p < 1 every
image keeps a chance of passing untouched, so the augmented distribution is an invertible
function of the clean one, and the only way for G to match augmented reals is to match the
reals themselves. Parameters are drawn as in the paper, including its discrete ones: an
applied x-flip or luma flip flips with i ~ U{0, 1} and an applied 90° rotation turns by
i ~ U{0, 1, 2, 3} quarters, so x-flip at p = 1 flips *half* the images, not all of them.
Flipping every selected image instead would make p = 0.5 a perfectly symmetric mixture, in
which a generator producing mirror images is indistinguishable from one producing the reals.

Geometry. The blit transforms (x-flip, 90° rotations, integer translation) and the general
ones (isotropic scaling, rotation, anisotropic scaling, fractional translation) are composed
into one 3x3 homogeneous matrix per image (pixel units, origin at the image centre) and
applied once:

- an image whose matrix maps pixel centres onto pixel centres (only blits were drawn, or
  nothing) is copied exactly with an integer gather; reflected indices fill the borders;
- every other image is resampled once, with 2x supersampling as in the paper: upsample the
  image 2x with a low-pass filter, sample the transformed 2x-rate grid bilinearly, low-pass
  filter and decimate back. Borders come from reflection (mirror about the edge pixel
  centres), done on the sampling coordinates rather than by padding: for symmetric filters
  this equals resampling an infinitely reflect-padded image, so no transform, however far it
  zooms out or shifts, leaves an empty border, and the work does not grow with the margin.
  The paper uses Symlet-6 wavelet filters for the 2x steps; we use a 16-tap Kaiser-windowed
  (beta = 5) half-band sinc designed here, which passes 0.6 of the Nyquist frequency within
  0.3 % and attenuates everything above 1.4x Nyquist below 0.3 %. Bilinear sampling of the
  2x-oversampled, band-limited image keeps interpolation artefacts small, and the final
  low-pass removes content that a zoom-out pushes above the output Nyquist frequency instead
  of aliasing it. Both matter for ADA: artefacts that only augmentation creates are visible
  to D, and a generator can learn to reproduce them (the "leaks" of a cheap resampler).

Colour. Brightness, contrast, luma flip, hue rotation and saturation are composed into one
(C+1)x(C+1) homogeneous colour matrix per image, with luma axis v = [1, 1, 1] / sqrt(3) as in
the paper. One deliberate difference: contrast scales around the image's mean colour (the
paper scales around 0, mid-grey in [-1, 1]), so it changes spread but not the average colour.
Hue rotation needs three channels; for C = 1 it is the identity, luma flip negates the
image and saturation is the identity.
"""

from __future__ import annotations

import math
from numbers import Real

import torch
import torch.nn.functional as F

from neuropaint.validate import NeuropaintError, check_int, check_option, check_positive

__all__ = ["PRESETS", "AdaController", "AugmentPipe", "apply_color_matrices",
           "list_presets", "transform_images"]

_BLIT = ("xflip", "rotate90", "xint")
_GEOM = ("scale", "rotate", "aniso", "xfrac")
_COLOR = ("brightness", "contrast", "lumaflip", "hue", "saturation")
_SPREADS = ("xint_max", "scale_std", "rotate_max", "aniso_std", "xfrac_std", "brightness_std",
            "contrast_std", "hue_max", "saturation_std")

# Named multiplier sets; 'bgc' is the paper's default pipeline.
PRESETS: dict[str, tuple[str, ...]] = {
    "none": (),
    "blit": _BLIT,
    "geom": _GEOM,
    "color": _COLOR,
    "bg": _BLIT + _GEOM,
    "bgc": _BLIT + _GEOM + _COLOR,
}


def list_presets() -> list[str]:
    """Names accepted by :meth:`AugmentPipe.from_preset`."""
    return list(PRESETS)


# ----------------------------------------------------------------------------------------------
# Resampling filter: 16-tap Kaiser-windowed half-band sinc at the 2x rate (see module docstring).

_FILTER_TAPS = 16
_FILTER_BETA = 5.0


def _design_lowpass(taps: int = _FILTER_TAPS, beta: float = _FILTER_BETA) -> torch.Tensor:
    t = torch.arange(taps, dtype=torch.float64) - (taps - 1) / 2  # half-integer tap positions
    window = torch.special.i0(beta * torch.sqrt(1 - (t / (taps / 2)) ** 2))  # Kaiser
    h = torch.sinc(t / 2) * window  # cut-off at half the 2x-rate Nyquist
    return h / h.sum()


_LOWPASS = _design_lowpass()
_REACH = _FILTER_TAPS // 4  # reach of each upsampling branch, in input samples (4 for 16 taps)
_PAD = _REACH + 1  # reflect padding before upsampling: the filter's reach plus bilinear's
_DECIM_PAD = (_FILTER_TAPS - 2) // 2  # extra 2x-rate samples each side for the decimation


def _polyphase_branches() -> torch.Tensor:
    """The two phases of 2x low-pass upsampling, [2, 2 * _REACH + 1] (cross-correlation taps).

    At the 2x rate, input sample i sits at position 2i and output 2j + b at 2j + b - 0.5, so
    output 2j + b takes input j + d with tap h at offset 2j + b - 0.5 - 2(j + d).
    """
    centre = (_FILTER_TAPS - 1) / 2
    branches = torch.zeros(2, 2 * _REACH + 1, dtype=torch.float64)
    for b in range(2):
        for k, d in enumerate(range(-_REACH, _REACH + 1)):
            index = b - 0.5 - 2 * d + centre
            if 0 <= index < _FILTER_TAPS:
                branches[b, k] = 2 * _LOWPASS[int(index)]  # gain 2 for the inserted zeros
    return branches


_UP_BRANCHES = _polyphase_branches()


def _reflect_index(index: torch.Tensor, n: int) -> torch.Tensor:
    """Map any integer index onto 0..n-1 by mirroring about the edge pixels (no repeat)."""
    if n == 1:
        return torch.zeros_like(index)
    period = 2 * (n - 1)
    index = index.remainder(period)
    return torch.where(index >= n, period - index, index)


def _upsample2x(x: torch.Tensor) -> torch.Tensor:
    """Low-pass 2x upsampling of [1, B, H, W], valid part only: [1, B, 2(H - 2R), 2(W - 2R)].

    Output sample 2j + b (b = 0, 1) of the result sits at input position j + R - 0.25 + b / 2.
    Depthwise convolutions (channels = images x colours) run far faster on CPU than a
    one-channel batch.
    """
    _, B, H, W = x.shape
    weight = _UP_BRANCHES.to(x).repeat(B, 1)  # [2B, 2R+1]: channel c feeds outputs 2c, 2c+1
    Wo = W - 2 * _REACH
    x = F.conv2d(x, weight.view(2 * B, 1, 1, -1), groups=B)  # [1, 2B, H, Wo]
    x = x.view(1, B, 2, H, Wo).permute(0, 1, 3, 4, 2).reshape(1, B, H, 2 * Wo)  # interleave
    Ho = H - 2 * _REACH
    x = F.conv2d(x, weight.view(2 * B, 1, -1, 1), groups=B)  # [1, 2B, Ho, 2Wo]
    return x.view(1, B, 2, Ho, 2 * Wo).permute(0, 1, 3, 2, 4).reshape(1, B, 2 * Ho, 2 * Wo)


def _downsample2x(x: torch.Tensor) -> torch.Tensor:
    """Low-pass 2x decimation of [1, B, 2H + 2P, 2W + 2P] to [1, B, H, W] (P = _DECIM_PAD)."""
    B = x.shape[1]
    h = _LOWPASS.to(x).repeat(B, 1)  # [B, taps]
    x = F.conv2d(x, h.view(B, 1, 1, -1), stride=(1, 2), groups=B)
    return F.conv2d(x, h.view(B, 1, -1, 1), stride=(2, 1), groups=B)


def _resample(images: torch.Tensor, inv: torch.Tensor) -> torch.Tensor:
    """Filtered 2x-supersampled resampling of images [n, C, H, W] by inverse matrices [n, 3, 3].

    Reflection is done on the sampling coordinates (continuous mirror about the edge pixel
    centres), which for a symmetric filter equals resampling an infinitely reflect-padded
    image; so only a thin fixed pad is needed, whatever the transform, and shapes stay fixed.
    """
    n, C, H, W = images.shape
    rows = _reflect_index(torch.arange(-_PAD, H + _PAD, device=images.device), H)
    cols = _reflect_index(torch.arange(-_PAD, W + _PAD, device=images.device), W)
    x = images.index_select(2, rows).index_select(3, cols)  # [n, C, H+2P, W+2P]
    x = _upsample2x(x.reshape(1, n * C, H + 2 * _PAD, W + 2 * _PAD))  # [1, nC, 2H+4, 2W+4]
    # The upsampled image covers input positions -1.5 .. W + 0.5 (pixel edges), W + 2 pixels.
    x = x.reshape(n, C, 2 * H + 4, 2 * W + 4)

    # 2x-rate output grid, widened by _DECIM_PAD samples a side for the decimation filter.
    # affine_grid's normalised coordinate g maps to centred output pixels g * S / 4 (S = the
    # 2x-rate size); the inverse matrix takes those to centred source pixels, and a shift by
    # (size - 1) / 2 to source pixel indices.
    Sh = 2 * H + 2 * _DECIM_PAD
    Sw = 2 * W + 2 * _DECIM_PAD
    out_scale = torch.diag(torch.tensor([Sw / 4, Sh / 4, 1.0], dtype=torch.float64))
    to_index = torch.tensor([[1, 0, (W - 1) / 2], [0, 1, (H - 1) / 2], [0, 0, 1]],
                            dtype=torch.float64)
    theta = to_index.to(inv.device) @ inv.double() @ out_scale.to(inv.device)  # [n, 3, 3]
    grid = F.affine_grid(theta[:, :2, :].float(), [n, C, Sh, Sw], align_corners=False)
    # Mirror about pixel centres 0 and L = size - 1: x -> L - |L - |x|| is exact on
    # [-2L, 2L], which holds all but extreme draws; those are first folded by the period 2L.
    last = torch.tensor([W - 1, H - 1], dtype=grid.dtype, device=grid.device)
    if bool((grid.abs() > 2 * last).any()):
        grid = grid.remainder(torch.clamp(2 * last, min=1))
    grid = grid.abs_().sub_(last).abs_().neg_().add_(last)
    grid = grid.add_(1.5).mul_(2 / (last + 3)).sub_(1)  # to the upsampled image's [-1, 1]
    x = F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="border",
                      align_corners=False)  # [n, C, Sh, Sw]
    return _downsample2x(x.reshape(1, n * C, Sh, Sw)).reshape(n, C, H, W)


def _source_pixels(inv: torch.Tensor, H: int, W: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Source pixel indices (float64, [n, H*W] each) of every output pixel centre."""
    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float64, device=inv.device),
                            torch.arange(W, dtype=torch.float64, device=inv.device),
                            indexing="ij")
    u = (xs - (W - 1) / 2).reshape(1, -1)  # centred output coordinates, [1, HW]
    v = (ys - (H - 1) / 2).reshape(1, -1)
    sx = inv[:, 0, 0:1] * u + inv[:, 0, 1:2] * v + inv[:, 0, 2:3] + (W - 1) / 2  # [n, HW]
    sy = inv[:, 1, 0:1] * u + inv[:, 1, 1:2] * v + inv[:, 1, 2:3] + (H - 1) / 2
    return sx, sy


def _is_blit(inv: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """Per image [n]: does the inverse matrix map output pixel centres onto pixel centres?"""
    # An integer linear part moves the pixel lattice by whole steps, so checking the source
    # of one pixel centre (the top-left one) settles the whole image.
    linear = inv[:, :2, :2]
    integral = (linear - linear.round()).abs().amax(dim=(1, 2)) < 1e-9
    corner = inv[:, :2, :] @ torch.tensor([-(W - 1) / 2, -(H - 1) / 2, 1.0],
                                          dtype=inv.dtype, device=inv.device)
    corner = corner + torch.tensor([(W - 1) / 2, (H - 1) / 2], dtype=inv.dtype,
                                   device=inv.device)
    aligned = (corner - corner.round()).abs().amax(dim=1) < 1e-9
    return integral & aligned


def _blit(images: torch.Tensor, inv: torch.Tensor) -> torch.Tensor:
    """Exact copy of images [n, C, H, W] by pixel-aligned inverse matrices [n, 3, 3] (a gather)."""
    n, C, H, W = images.shape
    sx, sy = _source_pixels(inv, H, W)
    sx = _reflect_index(sx.round().long(), W)
    sy = _reflect_index(sy.round().long(), H)
    index = (sy * W + sx).unsqueeze(1).expand(n, C, H * W)  # [n, C, HW]
    return images.reshape(n, C, H * W).gather(2, index).reshape(n, C, H, W)


def transform_images(images: torch.Tensor, inv_matrices: torch.Tensor) -> torch.Tensor:
    """Warp each image by its own inverse homogeneous matrix, with one resampling at most.

    Parameters
    ----------
    images : Tensor, shape (N, C, H, W)
        Float images.
    inv_matrices : Tensor, shape (N, 3, 3)
        For each image, the map from output pixel positions to source pixel positions, in pixel
        units with the origin at the image centre (x right, y down).

    Returns
    -------
    Tensor, shape (N, C, H, W)
        Identity matrices return their image untouched, matrices that move pixel centres onto
        pixel centres (flips, 90° rotations of square images, integer shifts) are exact
        gathers, and all others go through the filtered 2x-supersampled resampler. Borders are
        filled by reflection; the result is differentiable with respect to ``images``.
    """
    if images.ndim != 4 or inv_matrices.shape != (len(images), 3, 3):
        raise NeuropaintError(f"'inv_matrices' must be [N, 3, 3] for images [N, C, H, W], got "
                              f"{list(inv_matrices.shape)} for {list(images.shape)}.")
    H, W = images.shape[-2:]
    inv = inv_matrices.to(device=images.device, dtype=torch.float64)
    eye = torch.eye(3, dtype=torch.float64, device=images.device)
    identity = (inv - eye).abs().amax(dim=(1, 2)) < 1e-9
    blit = _is_blit(inv, H, W) & ~identity
    warp = ~identity & ~blit
    out = images
    blit_idx = blit.nonzero().flatten()
    if blit_idx.numel():
        out = out.index_copy(0, blit_idx, _blit(images[blit_idx], inv[blit_idx]))
    warp_idx = warp.nonzero().flatten()
    if warp_idx.numel():
        out = out.index_copy(0, warp_idx, _resample(images[warp_idx], inv[warp_idx]))
    return out


def apply_color_matrices(images: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """Apply one homogeneous colour matrix per image: [N, C, H, W] x [N, C+1, C+1]."""
    N, C, H, W = images.shape
    M = matrices.to(images.dtype)
    x = images.reshape(N, C, H * W)  # [N, C, HW]
    x = M[:, :C, :C] @ x + M[:, :C, C:]
    return x.reshape(N, C, H, W)


# ----------------------------------------------------------------------------------------------
# Elementary homogeneous matrices, batched: every argument is a float64 tensor of shape [n].


def _coin(n: int, prob: float, device: torch.device) -> torch.Tensor:
    """Bool [n], each True with probability ``prob`` (clamped to [0, 1])."""
    return torch.rand(n, dtype=torch.float64, device=device) < min(prob, 1.0)


def _eye(n: int, size: int, device: torch.device) -> torch.Tensor:
    return torch.eye(size, dtype=torch.float64, device=device).repeat(n, 1, 1)


def _scale2d(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    m = _eye(len(sx), 3, sx.device)
    m[:, 0, 0] = sx
    m[:, 1, 1] = sy
    return m


def _translate2d(tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    m = _eye(len(tx), 3, tx.device)
    m[:, 0, 2] = tx
    m[:, 1, 2] = ty
    return m


def _rotate2d(cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    m = _eye(len(cos), 3, cos.device)
    m[:, 0, 0] = cos
    m[:, 0, 1] = -sin
    m[:, 1, 0] = sin
    m[:, 1, 1] = cos
    return m


class AugmentPipe(torch.nn.Module):
    """The ADA augmentation pipeline: blit, general geometric and colour transforms.

    Each transform is applied to each image independently with probability
    ``p * multiplier`` (``p`` is the buffer :attr:`p`, set by :class:`AdaController`); an
    applied transform draws its parameter as in the paper, from a distribution that includes
    the identity. Input and output are float ``[N, C, H, W]`` in ``[-1, 1]``; the pipe is
    differentiable with respect to the images. See the module docstring for the resampling.
    """

    def __init__(
        self,
        xflip: float = 0,  # Strength of x-flip (flip with i ~ U{0, 1}).
        rotate90: float = 0,  # Strength of rotation by i * 90°, i ~ U{0, 1, 2, 3}.
        xint: float = 0,  # Strength of integer translation.
        scale: float = 0,  # Strength of isotropic scaling.
        rotate: float = 0,  # Strength of arbitrary rotation.
        aniso: float = 0,  # Strength of anisotropic scaling.
        xfrac: float = 0,  # Strength of fractional translation.
        brightness: float = 0,  # Strength of brightness offset.
        contrast: float = 0,  # Strength of contrast scaling.
        lumaflip: float = 0,  # Strength of luma flip (with i ~ U{0, 1}).
        hue: float = 0,  # Strength of hue rotation.
        saturation: float = 0,  # Strength of saturation scaling.
        xint_max: float = 0.125,  # Integer translation range, fraction of the image size.
        scale_std: float = 0.2,  # Log2 standard deviation of isotropic scaling.
        rotate_max: float = 1.0,  # Rotation range, fraction of a half turn (1 = ±180°).
        aniso_std: float = 0.2,  # Log2 standard deviation of anisotropic scaling.
        xfrac_std: float = 0.125,  # Fractional translation std, fraction of the image size.
        brightness_std: float = 0.2,  # Standard deviation of the brightness offset.
        contrast_std: float = 0.5,  # Log2 standard deviation of contrast scaling.
        hue_max: float = 1.0,  # Hue rotation range, fraction of a half turn (1 = ±180°).
        saturation_std: float = 1.0,  # Log2 standard deviation of saturation scaling.
    ) -> None:
        super().__init__()
        values = dict(locals())
        for name in _BLIT + _GEOM + _COLOR + _SPREADS:
            setattr(self, name, check_positive(values[name], name, allow_zero=True))
        self.register_buffer("p", torch.zeros([]))  # Overall augmentation probability.

    @classmethod
    def from_preset(cls, name: str, **kwargs: float) -> AugmentPipe:
        """Build a named pipe ('none', 'blit', 'geom', 'color', 'bg', 'bgc'); kwargs override."""
        check_option(name, "preset", PRESETS)
        values = {key: 1.0 for key in PRESETS[name]}
        values.update(kwargs)
        return cls(**values)

    @staticmethod
    def list_presets() -> list[str]:
        return list_presets()

    def extra_repr(self) -> str:
        active = [f"{n}={getattr(self, n):g}" for n in _BLIT + _GEOM + _COLOR if getattr(self, n)]
        return f"p={float(self.p):.4f}, " + (", ".join(active) or "no transforms")

    # ------------------------------------------------------------------------------------------

    def _chance(self, n: int, multiplier: float, device: torch.device) -> torch.Tensor:
        """Bool [n]: which images apply a transform of this strength (probability p * it)."""
        return _coin(n, float(self.p) * multiplier, device)

    def geometric_matrices(self, n: int, height: int, width: int,
                           device: torch.device | str = "cpu") -> torch.Tensor:
        """Draw inverse geometric matrices [n, 3, 3] (output -> source, centred pixel units)."""
        device = torch.device(device)
        inv = _eye(n, 3, device)
        size = torch.tensor([width, height], dtype=torch.float64, device=device)

        def rand(*shape: int) -> torch.Tensor:
            return torch.rand(*shape, dtype=torch.float64, device=device)

        def randn(*shape: int) -> torch.Tensor:
            return torch.randn(*shape, dtype=torch.float64, device=device)

        # The inverse of the composed forward map is the product of the inverse steps in
        # forward order; each step's inverse has the same distribution as the step itself,
        # except where noted, so we write the steps' inverses directly.
        if self.xflip:
            flip = (rand(n) < 0.5) & self._chance(n, self.xflip, device)
            inv = inv @ _scale2d(1 - 2 * flip.double(), torch.ones(n, dtype=torch.float64,
                                                                    device=device))
        if self.rotate90:
            quarter = torch.randint(4, (n,), device=device)
            quarter = torch.where(self._chance(n, self.rotate90, device), quarter, 0)
            # Exact integer cos/sin of multiples of 90°.
            cos = torch.tensor([1.0, 0.0, -1.0, 0.0], dtype=torch.float64, device=device)[quarter]
            sin = torch.tensor([0.0, 1.0, 0.0, -1.0], dtype=torch.float64, device=device)[quarter]
            inv = inv @ _rotate2d(cos, -sin)
        if self.xint:
            t = (rand(n, 2) * 2 - 1) * self.xint_max * size  # [n, 2] pixels
            t = torch.where(self._chance(n, self.xint, device)[:, None], t.round(), 0.0)
            inv = inv @ _translate2d(-t[:, 0], -t[:, 1])
        if self.scale:
            s = torch.exp2(randn(n) * self.scale_std)
            s = torch.where(self._chance(n, self.scale, device), s, 1.0)
            inv = inv @ _scale2d(1 / s, 1 / s)
        # Two rotations around the anisotropic scaling, each with probability 1 - sqrt(1 - p),
        # so that some rotation happens with probability p (paper, appendix B).
        p_rot = 1 - math.sqrt(max(0.0, 1 - min(float(self.p) * self.rotate, 1.0)))
        if self.rotate:
            theta = (rand(n) * 2 - 1) * math.pi * self.rotate_max
            theta = torch.where(_coin(n, p_rot, device), theta, 0.0)
            inv = inv @ _rotate2d(torch.cos(theta), -torch.sin(theta))
        if self.aniso:
            s = torch.exp2(randn(n) * self.aniso_std)
            s = torch.where(self._chance(n, self.aniso, device), s, 1.0)
            inv = inv @ _scale2d(1 / s, s)
        if self.rotate:
            theta = (rand(n) * 2 - 1) * math.pi * self.rotate_max
            theta = torch.where(_coin(n, p_rot, device), theta, 0.0)
            inv = inv @ _rotate2d(torch.cos(theta), -torch.sin(theta))
        if self.xfrac:
            t = randn(n, 2) * self.xfrac_std * size
            t = torch.where(self._chance(n, self.xfrac, device)[:, None], t, 0.0)
            inv = inv @ _translate2d(-t[:, 0], -t[:, 1])
        return inv

    def color_matrices(self, images: torch.Tensor) -> torch.Tensor:
        """Draw homogeneous colour matrices [N, C+1, C+1] for ``images`` [N, C, H, W]."""
        N, C = images.shape[:2]
        device = images.device
        M = _eye(N, C + 1, device)
        v = torch.full((C,), 1 / math.sqrt(C), dtype=torch.float64, device=device)  # luma axis
        vv = torch.outer(v, v)
        eye_c = torch.eye(C, dtype=torch.float64, device=device)

        def linear(m: torch.Tensor) -> torch.Tensor:  # [n, C, C] -> [n, C+1, C+1]
            out = _eye(len(m), C + 1, device)
            out[:, :C, :C] = m
            return out

        if self.brightness:
            b = torch.randn(N, dtype=torch.float64, device=device) * self.brightness_std
            b = torch.where(self._chance(N, self.brightness, device), b, 0.0)
            step = _eye(N, C + 1, device)
            step[:, :C, C] = b[:, None]
            M = step @ M
        if self.contrast:
            c = torch.exp2(torch.randn(N, dtype=torch.float64, device=device) * self.contrast_std)
            c = torch.where(self._chance(N, self.contrast, device), c, 1.0)
            # Centre: the image's mean colour after the steps so far (affine maps keep means).
            # Not detached: the generator's gradient sees the true function of its images.
            mean = images.mean(dim=(2, 3)).double()  # [N, C]
            centre = (M[:, :C, :C] @ mean[:, :, None])[:, :, 0] + M[:, :C, C]
            step = linear(c[:, None, None] * eye_c)
            step[:, :C, C] = (1 - c[:, None]) * centre
            M = step @ M
        if self.lumaflip:
            flip = (torch.rand(N, device=device) < 0.5) & self._chance(N, self.lumaflip, device)
            M = linear(eye_c - 2 * vv * flip.double()[:, None, None]) @ M
        if self.hue and C == 3:
            theta = (torch.rand(N, dtype=torch.float64, device=device) * 2 - 1) * math.pi
            theta = torch.where(self._chance(N, self.hue, device), theta * self.hue_max, 0.0)
            cross = torch.tensor([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]],
                                 dtype=torch.float64, device=device)  # [v]x
            cos = torch.cos(theta)[:, None, None]
            sin = torch.sin(theta)[:, None, None]
            M = linear(cos * eye_c + sin * cross + (1 - cos) * vv) @ M  # Rodrigues rotation
        if self.saturation:
            s = torch.exp2(torch.randn(N, dtype=torch.float64, device=device)
                           * self.saturation_std)
            s = torch.where(self._chance(N, self.saturation, device), s, 1.0)
            M = linear(vv + (eye_c - vv) * s[:, None, None]) @ M
        return M

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Augment float images [N, C, H, W]; returns the same shape, dtype and device."""
        if images.ndim != 4 or not images.is_floating_point():
            raise NeuropaintError(f"'images' must be a float tensor [N, C, H, W], got "
                                  f"{images.dtype} of shape {list(images.shape)}.")
        N, C, H, W = images.shape
        if float(self.p) <= 0 or N == 0:
            return images
        out = images
        if any(getattr(self, name) for name in _BLIT + _GEOM):
            out = transform_images(out, self.geometric_matrices(N, H, W, images.device))
        if any(getattr(self, name) for name in _COLOR):
            M = self.color_matrices(out)
            eye = torch.eye(C + 1, dtype=M.dtype, device=M.device)
            changed = ((M - eye).abs().amax(dim=(1, 2)) > 0).nonzero().flatten()
            if changed.numel():
                out = out.index_copy(0, changed, apply_color_matrices(out[changed], M[changed]))
        return out


# ----------------------------------------------------------------------------------------------


def _reduce_if_distributed(values: torch.Tensor, dist: object | None = None) -> torch.Tensor:
    """Sum a small CPU tensor over all ranks when torch.distributed runs with several."""
    import torch.distributed as tdist

    if not (tdist.is_available() and tdist.is_initialized() and tdist.get_world_size() > 1):
        return values
    # NCCL reduces CUDA tensors only; gloo (CPU) takes them as they are.
    device = getattr(dist, "device", None)
    if device is None:
        device = torch.device("cuda", torch.cuda.current_device()) \
            if tdist.get_backend() == "nccl" else values.device
    values = values.to(device)
    tdist.all_reduce(values)
    return values.cpu()


class AdaController:
    """Adapts :attr:`AugmentPipe.p` from the overfitting heuristic r_t = E[sign(D(real))].

    Call :meth:`accumulate` with the discriminator's logits on the real images of each step and
    :meth:`step` once per training step. Every ``interval`` steps, r_t is computed over the
    accumulated logits and, in 'ada' mode, ``p`` moves by
    ``sign(r_t - target) * batch_size * interval / (ada_kimg * 1000)`` (so it can go from 0
    to 1 in ``ada_kimg`` thousand images), clamped to [0, 1]. Under ``torch.distributed``
    the sums are all-reduced, so every rank keeps the same ``p``: pass the global batch size.
    'fixed' keeps ``p`` as given; 'none' holds it at 0. r_t is tracked in every mode.
    """

    MODES = ("ada", "fixed", "none")

    def __init__(
        self,
        pipe: AugmentPipe,  # The pipe whose p this controller sets.
        target: float = 0.6,  # Target value of r_t.
        interval: int = 4,  # Steps between adjustments.
        ada_kimg: float = 500,  # Thousands of images for p to go from 0 to 1.
        batch_size: int | None = None,  # Images per step over all ranks (required for 'ada').
        mode: str = "ada",  # 'ada', 'fixed' or 'none'.
        p: float = 0.0,  # Initial (or fixed) probability.
    ) -> None:
        check_option(mode, "mode", self.MODES)
        ok = isinstance(target, Real) and not isinstance(target, bool) and 0 < target < 1
        if not ok:
            raise NeuropaintError(f"'target' must be a number in (0, 1), got {target!r}.")
        self.interval = check_int(interval, "interval", minimum=1)
        self.ada_kimg = check_positive(ada_kimg, "ada_kimg")
        if batch_size is None and mode == "ada":
            raise NeuropaintError("'batch_size' must be given in 'ada' mode, got None.")
        self.batch_size = None if batch_size is None else check_int(batch_size, "batch_size",
                                                                     minimum=1)
        p = check_positive(p, "p", allow_zero=True)
        if p > 1:
            raise NeuropaintError(f"'p' must be in [0, 1], got {p!r}.")
        self.pipe = pipe
        self.target = float(target)
        self.mode = mode
        self._p = 0.0 if mode == "none" else p
        self.rt: float | None = None
        self._sum = 0.0  # running sum of sign(D(real)) since the last adjustment
        self._count = 0  # number of logits in that sum
        self._pending: list[torch.Tensor] = []  # device-side sums not yet synchronised
        self._steps = 0
        self._write_p()

    @property
    def p(self) -> float:
        return self._p

    @property
    def adjustment(self) -> float:
        """The size of one adjustment of p."""
        if self.batch_size is None:
            return 0.0
        return self.batch_size * self.interval / (self.ada_kimg * 1000)

    def _write_p(self) -> None:
        self.pipe.p.copy_(torch.as_tensor(self._p, dtype=self.pipe.p.dtype))

    def accumulate(self, real_logits: torch.Tensor) -> None:
        """Add the discriminator's logits on real images (any shape) to the running r_t."""
        logits = real_logits.detach()
        # Kept on the device until step() needs it, so a GPU step does not wait here.
        self._pending.append(torch.stack([logits.sign().sum().double(),
                                          torch.tensor(float(logits.numel()), dtype=torch.float64,
                                                       device=logits.device)]))

    def _flush(self) -> None:
        if self._pending:
            total = torch.stack(self._pending).sum(0).cpu()
            self._sum += float(total[0])
            self._count += int(total[1])
            self._pending = []

    def step(self, dist: object | None = None) -> None:
        """Advance one training step; every ``interval`` steps update r_t and (in 'ada') p.

        Under ``torch.distributed`` every rank must call this on the same steps: the sums are
        all-reduced there. ``dist`` is optional; if it has a ``device`` attribute, the
        reduction runs on that device (the training loop passes its ``Dist``).
        """
        self._steps += 1
        if self._steps % self.interval:
            return
        self._flush()
        totals = _reduce_if_distributed(torch.tensor([self._sum, float(self._count)],
                                                     dtype=torch.float64), dist)
        total, count = float(totals[0]), float(totals[1])
        self._sum = 0.0
        self._count = 0
        if count == 0:
            return
        self.rt = total / count
        if self.mode == "ada":
            direction = (self.rt > self.target) - (self.rt < self.target)
            self._p = min(max(self._p + direction * self.adjustment, 0.0), 1.0)
            self._write_p()

    def state_dict(self) -> dict:
        """Everything needed to resume exactly (plain Python values)."""
        self._flush()
        return {"mode": self.mode, "p": self._p, "rt": self.rt, "sum": self._sum,
                "count": self._count, "steps": self._steps, "target": self.target,
                "interval": self.interval, "ada_kimg": self.ada_kimg,
                "batch_size": self.batch_size}

    def load_state_dict(self, state: dict) -> None:
        """Restore p, r_t, the accumulators and the step phase from :meth:`state_dict`."""
        missing = {"p", "rt", "sum", "count", "steps"} - set(state)
        if missing:
            raise NeuropaintError(f"AdaController state is missing {sorted(missing)}.")
        # The configured mode wins: 'fixed' and 'none' keep their own p, only 'ada' resumes it
        # (so a run resumed with a different '--aug fixed P' uses that P).
        if self.mode == "ada":
            self._p = float(state["p"])
        self.rt = None if state["rt"] is None else float(state["rt"])
        self._sum = float(state["sum"])
        self._count = int(state["count"])
        self._steps = int(state["steps"])
        self._pending = []
        self._write_p()
