"""Procedural colour-field paintings: the project's own license-free art.

Five styles in the spirit of the seeds' dataset, each a small recipe of soft, noisy masks
composited on a painted ground, then given canvas weave and brush noise:

- ``rothko``: two to four stacked soft-edged rectangles floating on a ground, with haloes.
- ``newman``: one dominant field crossed by one to three thin vertical "zips".
- ``louis``: overlapping translucent poured veils (multiplicative stains with tide lines and
  rivulets) on raw canvas, or "unfurled" diagonal rivulets down both sides.
- ``noland``: a target of concentric stained rings, sometimes with a frayed corona.
- ``davis``: many vertical hand-painted stripes of a few colours in a repeating beat.

Palettes are sampled in OKLCH (Björn Ottosson, "A perceptual color space for image
processing", 2020) with analogous, complementary, split-complementary, triadic or
monochrome hue rules and a controlled lightness contrast, then mapped into the sRGB gamut by
lowering chroma. Everything is vectorised numpy: smooth noise is white noise on a coarse grid
resampled to the image with two small Gaussian-interpolation matrix products, and the canvas
weave is built once per size and reused at a random offset, so a 256 px painting takes a few
milliseconds on one core.

``paint(style, size, seed)`` is deterministic; the composition and the coarse noise depend only
on ``(style, seed)`` and the aspect ratio, so the same seed at 256 px and 1024 px is the same
painting at two resolutions (only the fine canvas grain differs).

Examples
--------
python -m datasets.procedural art/ --count 500 --size 256
python -m datasets.procedural art/ --count 30 --size 256 --style rothko,louis --seed 3 \\
    --contact-sheet sheet.png
python -m datasets.procedural store/ --count 2000 --size 256 --store
"""

from __future__ import annotations

import argparse
import functools
import logging
import math
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from neuropaint.atomic import atomic_path
from neuropaint.logs import run_cli, setup_logging
from neuropaint.validate import NeuropaintError, check_int, check_option

logger = logging.getLogger(__name__)

STYLES = ("rothko", "newman", "louis", "noland", "davis")
MIN_SIZE = 16

_PAD = 2  # Coarse-grid cells beyond each image edge, so noise is as smooth at the border.
# OpenBLAS runs a product with m * n * k <= 4 * 65536 on one thread. Threads do not pay for
# products as small as ours, and on a busy two-core machine they halve the speed.
_GEMM_ONE_THREAD = 4 * 65536
_TEXTURE_MARGIN = 64  # The cached canvas weave is this much larger than the image, for offsets.

Size = int | tuple[int, int]


# --------------------------------------------------------------------------------------------
# Colour: OKLCH -> sRGB and harmonious palettes.

_LMS_TO_LINEAR_SRGB = np.array([
    [+4.0767416621, -3.3077115913, +0.2309699292],
    [-1.2684380046, +2.6097574011, -0.3413193965],
    [-0.0041960863, -0.7034186147, +1.7076147010],
])
_OKLAB_TO_LMS = np.array([
    [1.0, +0.3963377774, +0.2158037573],
    [1.0, -0.1055613458, -0.0638541728],
    [1.0, -0.0894841775, -1.2914855480],
])


def _oklch_to_linear(lightness, chroma, hue_deg) -> np.ndarray:
    hue = np.deg2rad(hue_deg)
    lab = np.stack(np.broadcast_arrays(lightness, chroma * np.cos(hue), chroma * np.sin(hue)), -1)
    lms = (lab @ _OKLAB_TO_LMS.T) ** 3
    return lms @ _LMS_TO_LINEAR_SRGB.T


def _encode_srgb(linear: np.ndarray) -> np.ndarray:
    linear = np.clip(linear, 0.0, 1.0)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)


def oklch(lightness, chroma, hue_deg) -> np.ndarray:
    """sRGB colours in ``[0, 1]`` from OKLCH, lowering chroma until each is inside the gamut.

    Parameters
    ----------
    lightness, chroma, hue_deg : float or ndarray, broadcastable, shape (n,)
        OKLCH lightness (0..1), chroma (0..~0.3) and hue in degrees.

    Returns
    -------
    rgb : ndarray, shape (n, 3), float32
    """
    lightness, chroma, hue_deg = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v, float))
                                                       for v in (lightness, chroma, hue_deg)))
    scales = np.linspace(1.0, 0.0, 41)[:, None]  # Candidate chroma scales, best first.
    linear = _oklch_to_linear(lightness[None], chroma[None] * scales, hue_deg[None])  # [41, n, 3]
    inside = np.all((linear >= -1e-4) & (linear <= 1 + 1e-4), axis=-1)  # [41, n]
    first = np.argmax(inside, axis=0)  # Chroma 0 (a grey) is always inside for 0 <= L <= 1.
    best = linear[first, np.arange(linear.shape[1])]
    return _encode_srgb(best).astype(np.float32)


# Hue offsets (degrees) of each scheme's anchor colours; colour i takes anchor i mod len.
_SCHEMES: dict[str, tuple[float, ...]] = {
    "analogous": (0.0, 28.0, -24.0, 50.0),
    "complementary": (0.0, 180.0, 15.0, 195.0),
    "split": (0.0, 150.0, 210.0),
    "triadic": (0.0, 120.0, 240.0),
    "monochrome": (0.0, 8.0, -8.0),
}


def sample_hues(rng: np.random.Generator, n: int, scheme: str | None = None,
                base: float | None = None, jitter: float = 7.0) -> np.ndarray:
    """``n`` hues (degrees) following a harmony ``scheme`` (random if None) around ``base``."""
    scheme = scheme or rng.choice(list(_SCHEMES))
    base = rng.uniform(0, 360) if base is None else base
    anchors = np.array(_SCHEMES[scheme])
    hues = base + anchors[np.arange(n) % len(anchors)] + rng.normal(0, jitter, n)
    return hues % 360


def _raw_canvas(rng: np.random.Generator) -> np.ndarray:
    """Unprimed cotton duck: a light, warm, low-chroma beige."""
    return oklch(rng.uniform(0.86, 0.93), rng.uniform(0.015, 0.035), rng.uniform(70, 95))[0]


# --------------------------------------------------------------------------------------------
# Noise: white noise on a coarse grid, resampled with Gaussian-interpolation matrices.

@functools.lru_cache(maxsize=128)
def _resample_matrix(n_out: int, n_cells: int) -> np.ndarray:
    """``[n_out, n_cells + 2 * _PAD]`` Gaussian interpolation weights, rows at unit power.

    Unit power per row makes the resampled white noise unit-variance everywhere, whatever
    the ratio of cells to pixels.
    """
    step = n_out / n_cells
    centres = (np.arange(n_cells + 2 * _PAD) - _PAD + 0.5) * step
    pixels = np.arange(n_out) + 0.5
    weights = np.exp(-0.5 * ((pixels[:, None] - centres[None, :]) / (0.75 * step)) ** 2)
    weights /= np.sqrt((weights ** 2).sum(1, keepdims=True))
    weights = weights.astype(np.float32)
    weights.setflags(write=False)
    return weights


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` in blocks of rows, each small enough for OpenBLAS to keep on one thread."""
    m, k = a.shape[-2:]
    n = b.shape[-1]
    rows = max(1, _GEMM_ONE_THREAD // (k * n))
    if rows >= m:
        return a @ b
    out = np.empty((*np.broadcast_shapes(a.shape[:-2], b.shape[:-2]), m, n), np.float32)
    for start in range(0, m, rows):
        block = slice(start, start + rows)
        np.matmul(a[..., block, :], b, out=out[..., block, :])
    return out


class _Canvas:
    """One painting being made, or a window onto it: random stream, pixel grid, noise helpers.

    Sizes (feathers, displacements) are given as fractions of the short side ``s`` and noise
    frequencies as cells per short side, so the composition does not depend on resolution.
    A window (:meth:`window`) sees the same noise grid as the whole painting, cropped, so a
    shape can be painted on the rows or columns it covers only.
    """

    def __init__(self, rng: np.random.Generator, height: int, width: int,
                 rows: slice = slice(None), cols: slice = slice(None)):
        self.rng = rng
        self.full_h = height
        self.full_w = width
        self.rows = slice(*rows.indices(height))
        self.cols = slice(*cols.indices(width))
        self.h = self.rows.stop - self.rows.start
        self.w = self.cols.stop - self.cols.start
        self.s = min(height, width)
        self.weave = True  # False: a smooth canvas (paint(..., weave=False))
        self.x = (np.arange(self.cols.start, self.cols.stop, dtype=np.float32) + 0.5)[None, :]
        self.y = (np.arange(self.rows.start, self.rows.stop, dtype=np.float32) + 0.5)[:, None]

    def window(self, top: float = 0, bottom: float | None = None, left: float = 0,
               right: float | None = None) -> _Canvas:
        """The part of the painting between these pixel bounds (clipped to the image)."""
        bottom = self.full_h if bottom is None else bottom
        right = self.full_w if right is None else right
        rows = slice(max(0, math.floor(top)), min(self.full_h, max(1, math.ceil(bottom))))
        cols = slice(max(0, math.floor(left)), min(self.full_w, max(1, math.ceil(right))))
        return _Canvas(self.rng, self.full_h, self.full_w, rows, cols)

    def cells(self, k: float, axis_scale: tuple[float, float] = (1.0, 1.0)) -> tuple[int, int]:
        ky = max(1, round(k * axis_scale[0] * self.full_h / self.s))
        kx = max(1, round(k * axis_scale[1] * self.full_w / self.s))
        return ky, kx

    def noise(self, k: float, *, stretch: tuple[float, float] = (1.0, 1.0),
              channels: int = 0) -> np.ndarray:
        """Unit-variance smooth noise with ``k`` cells per short side, ``[H, W]`` or ``[C, H, W]``.

        ``stretch`` multiplies the cell count per axis: ``(8, 0.25)`` makes horizontal streaks.
        """
        ky, kx = self.cells(k, stretch)
        ry = _resample_matrix(self.full_h, ky)[self.rows]
        rx = _resample_matrix(self.full_w, kx)[self.cols]
        grid = self.rng.standard_normal((max(channels, 1), ky + 2 * _PAD, kx + 2 * _PAD),
                                        dtype=np.float32)
        # Contract the smaller coarse axis last, in the big [H, W] product.
        if ry.shape[1] <= rx.shape[1]:
            out = _matmul(ry, _matmul(grid, rx.T))  # [C, ky', W] -> [C, H, W]
        else:
            out = _matmul(_matmul(ry, grid), rx.T)  # [C, H, kx'] -> [C, H, W]
        return out if channels else out[0]

    def fbm(self, k: float, octaves: int = 3, gain: float = 0.5, *,
            stretch: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
        """Fractal (multi-octave) noise, unit variance, ``[H, W]``."""
        total = self.noise(k, stretch=stretch)
        amp, power = 1.0, 1.0
        for octave in range(1, octaves):
            amp *= gain
            power += amp * amp
            total += amp * self.noise(k * 2 ** octave, stretch=stretch)
        total *= 1.0 / math.sqrt(power)
        return total

    def profile(self, k: float, axis: str) -> np.ndarray:
        """Smooth 1-D noise along ``axis`` ("x": ``[1, W]``, "y": ``[H, 1]``), unit variance."""
        length, part = (self.full_w, self.cols) if axis == "x" else (self.full_h, self.rows)
        cells = max(1, round(k * length / self.s))
        r = _resample_matrix(length, cells)[part]  # [n, cells']
        grid = self.rng.standard_normal(cells + 2 * _PAD, dtype=np.float32)
        # A multiply-sum, not a matrix-vector product: OpenBLAS threads those from 10 k entries.
        out = (r * grid).sum(axis=1)  # [n]
        return out[None, :] if axis == "x" else out[:, None]

    def field_colour(self, colour: np.ndarray, *, tone: float = 0.05, tint: float = 0.015,
                     k: float = 3.0, streaks: float = 0.0,
                     streak_dir: str = "h") -> np.ndarray:
        """``colour`` painted by hand: uneven tone, slight tint drift, optional brush streaks.

        Returns ``[H, W, 3]``.
        """
        light = self.fbm(k, 3) * tone
        if streaks:
            light += self.streaks(streak_dir) * streaks
        out = colour[None, None, :] * (1.0 + light[..., None])
        if tint:
            out += self.noise(k * 0.7, channels=3).transpose(1, 2, 0) * tint
        return out

    def streaks(self, direction: str = "h", k: float = 70.0) -> np.ndarray:
        """Directional brush streaks: fine across the stroke, long along it, ``[H, W]``."""
        fine = (1.0, 1 / 12) if direction == "h" else (1 / 12, 1.0)  # cells (y, x) per k
        broad = (1.0, 1 / 6) if direction == "h" else (1 / 6, 1.0)
        # Two widths of stroke, so the marks do not look like one repeated comb.
        out = self.noise(k, stretch=fine)
        out += 0.6 * self.noise(k / 2, stretch=broad)
        out *= 1 / math.hypot(1.0, 0.6)
        return out


def _soft(distance: np.ndarray, feather: float) -> np.ndarray:
    """Smoothstep of a signed distance (pixels, positive inside) over ``2 * feather`` pixels."""
    t = distance * (0.5 / feather)
    t += 0.5
    np.clip(t, 0.0, 1.0, out=t)
    return t * t * (3.0 - 2.0 * t)


def _over(canvas: np.ndarray, colour: np.ndarray, alpha: np.ndarray) -> None:
    """Paint ``colour`` (``[3]`` or ``[H, W, 3]``) over ``canvas`` by ``alpha [H, W]``."""
    canvas += alpha[..., None] * (colour - canvas)


def _stain(canvas: np.ndarray, colour: np.ndarray, alpha: np.ndarray) -> None:
    """A translucent stain: multiply ``canvas`` towards ``colour`` (subtractive mixing)."""
    canvas *= 1.0 - alpha[..., None] * (1.0 - colour)


# --------------------------------------------------------------------------------------------
# Canvas weave, built once per size.

@functools.lru_cache(maxsize=8)
def _canvas_weave(height: int, width: int) -> np.ndarray:
    """A plain-weave canvas relief, zero mean and unit std, ``[H + margin, W + margin]``.

    Warp and weft threads with irregular spacing and thickness pass over and under each
    other; the relief is lit from the top left so the threads read as bumps.
    """
    rng = np.random.default_rng(20240917)
    h, w = height + _TEXTURE_MARGIN, width + _TEXTURE_MARGIN
    pitch = 2.2 + min(height, width) / 400  # Thread spacing in pixels: fine grain at any size.

    def threads(n: int) -> tuple[np.ndarray, np.ndarray]:
        wander = rng.standard_normal(n // 8 + 4 + 2 * _PAD) @ _resample_matrix(n, n // 8 + 4).T
        phase = 2 * np.pi * (np.arange(n) / pitch) + 0.5 * wander  # Uneven thread spacing.
        index = np.floor(phase / (2 * np.pi)).astype(int)
        thickness = 1.0 + 0.3 * rng.standard_normal(index.max() - index.min() + 1)
        profile = (0.5 + 0.5 * np.cos(phase)) ** 0.8 * thickness[index - index.min()]
        return phase, profile

    phase_x, warp = threads(w)
    phase_y, weft = threads(h)
    warp_index = np.floor(phase_x / (2 * np.pi))
    weft_index = np.floor(phase_y / (2 * np.pi))
    # A warp thread rises over every other weft thread, its neighbour over the others.
    warp_up = 0.5 + 0.5 * np.cos(phase_y[:, None] / 2 + np.pi * warp_index[None, :])
    weft_up = 0.5 + 0.5 * np.cos(phase_x[None, :] / 2 + np.pi * (weft_index[:, None] + 1))
    relief = warp[None, :] * (0.35 + 0.65 * warp_up) + weft[:, None] * (0.35 + 0.65 * weft_up)
    relief += 0.25 * rng.standard_normal((h, w))  # Fibre fuzz.
    lit = relief - 0.5 * (np.roll(relief, 1, 0) + np.roll(relief, 1, 1))  # Light from top left.
    texture = 0.6 * relief + 0.8 * lit
    texture -= texture.mean()
    texture /= texture.std()
    texture = texture.astype(np.float32)
    texture.setflags(write=False)
    return texture


def _finish(c: _Canvas, canvas: np.ndarray, *, weave: float, grain: float = 0.006,
            light: float = 0.035) -> np.ndarray:
    """Canvas weave, uneven light and grain over the paint; ``uint8 [H, W, 3]``."""
    texture = _canvas_weave(c.h, c.w)
    oy = int(c.rng.integers(0, _TEXTURE_MARGIN))
    ox = int(c.rng.integers(0, _TEXTURE_MARGIN))
    relief = texture[oy:oy + c.h, ox:ox + c.w] if c.weave else np.zeros((c.h, c.w), np.float32)
    shade = 1.0 + light * c.noise(1.5)  # Light falling unevenly on the canvas.
    # Fainter in small images, where a thread is a large part of the picture.
    shade += weave * min(1.0, math.sqrt(c.s / 256)) * relief
    canvas *= shade[..., None]
    canvas += (grain * relief)[..., None]  # The weave shows a little even in dark paint.
    canvas *= 255.0
    canvas += 0.5
    np.clip(canvas, 0.0, 255.0, out=canvas)
    return canvas.astype(np.uint8)


# --------------------------------------------------------------------------------------------
# The styles.

def _soft_box(c: _Canvas, box: tuple[float, float, float, float], feather: float,
              wobble: np.ndarray) -> np.ndarray:
    """A soft rectangle ``(x0, y0, x1, y1)`` in pixels whose border is displaced by ``wobble``."""
    x0, y0, x1, y1 = box
    inside_x = np.minimum(c.x - x0, x1 - c.x)  # [1, W] distance to the nearer side
    inside_y = np.minimum(c.y - y0, y1 - c.y)  # [H, 1]
    # The product of two soft steps rounds the corners the way a brush does.
    return _soft(inside_x + wobble, feather) * _soft(inside_y + wobble, feather)


def _rothko(c: _Canvas) -> np.ndarray:
    rng, s = c.rng, c.s
    n_rect = int(rng.choice([2, 3, 4], p=[0.5, 0.4, 0.1]))
    mood = rng.choice(["warm", "dark", "free"], p=[0.4, 0.2, 0.4])
    if mood == "warm":  # The reds, oranges and yellows of the classic period.
        base = rng.uniform(10, 85)
    elif mood == "dark":  # The Seagram and Houston maroons, plums and blacks.
        base = rng.uniform(340, 400) % 360
    else:
        base = rng.uniform(0, 360)
    scheme = str(rng.choice(["analogous", "complementary", "monochrome", "split"],
                            p=[0.45, 0.25, 0.15, 0.15]))
    hues = sample_hues(rng, n_rect + 1, scheme, base)
    if mood == "dark":
        ground_l = rng.uniform(0.22, 0.36)
        light = ground_l + rng.uniform(-0.1, 0.18, n_rect)
    else:
        ground_l = rng.uniform(0.4, 0.72)
        light = ground_l + rng.choice([-1, 1], n_rect) * rng.uniform(0.1, 0.28, n_rect)
    light = np.clip(light, 0.15, 0.9)
    ground = oklch(ground_l, rng.uniform(0.06, 0.17), hues[0])[0]
    colours = oklch(light, rng.uniform(0.05, 0.18, n_rect), hues[1:])

    canvas = c.field_colour(ground, tone=0.07, tint=0.012, k=2.5, streaks=0.03,
                            streak_dir=str(rng.choice(["h", "v"])))
    # Layout: side margins, a top and a bottom margin, gaps, and heights that share the rest.
    left = rng.uniform(0.06, 0.12) * c.w
    right = c.w - rng.uniform(0.06, 0.12) * c.w
    top = rng.uniform(0.04, 0.09) * c.h
    bottom = c.h - rng.uniform(0.05, 0.11) * c.h
    gaps = rng.uniform(0.025, 0.06, n_rect - 1) * c.h
    heights = rng.dirichlet(np.full(n_rect, 2.5)) * (bottom - top - gaps.sum())
    y0 = top
    for i in range(n_rect):
        y1 = y0 + heights[i]
        # Paint only the rows this rectangle and its halo can reach.
        win = c.window(y0 - 0.1 * s, y1 + 0.1 * s)
        part = canvas[win.rows]
        box = (left + rng.normal(0, 0.006) * c.w, y0, right + rng.normal(0, 0.006) * c.w, y1)
        wobble = 0.010 * s * win.fbm(3.0, 3)
        wobble += 0.003 * s * win.noise(30.0)
        # The halo: a thin wider wash of the colour bleeding into the ground.
        halo = _soft_box(win, box, 0.03 * s, wobble + 0.018 * s)
        _over(part, 0.5 * (colours[i] + ground), 0.55 * halo)
        # The body: scrubbed on, so its density varies with the brushwork.
        body = _soft_box(win, box, rng.uniform(0.008, 0.02) * s, wobble)
        density = 0.86 + 0.08 * win.fbm(4.0, 2)
        density += 0.04 * win.streaks("h")
        np.clip(density, 0.0, 1.0, out=density)
        paint = win.field_colour(colours[i], tone=0.06, tint=0.012, k=3.0, streaks=0.025)
        _over(part, paint, body * density)
        # An inner glow: a lighter or darker layer under the surface of the larger fields.
        if heights[i] > 0.2 * c.h and rng.random() < 0.6:
            inset = rng.uniform(0.04, 0.08) * s
            glow_colour = colours[i] * rng.uniform(0.85, 1.15)
            glow = _soft_box(win, box, 0.05 * s, wobble - inset)
            _over(part, glow_colour, 0.35 * glow)
        y0 = y1 + (gaps[i] if i < n_rect - 1 else 0.0)
    return _finish(c, canvas, weave=0.035)


def _newman(c: _Canvas) -> np.ndarray:
    rng, s = c.rng, c.s
    hue = rng.choice([rng.uniform(15, 40), rng.uniform(240, 275), rng.uniform(0, 360)],
                     p=[0.4, 0.25, 0.35])
    field_l = rng.uniform(0.3, 0.62)
    field_c = rng.uniform(0.1, 0.22)
    field = oklch(field_l, field_c, hue)[0]
    canvas = c.field_colour(field, tone=0.04, tint=0.008, k=2.0, streaks=0.02,
                            streak_dir=str(rng.choice(["h", "v"])))
    n_zip = int(rng.choice([1, 2, 3], p=[0.45, 0.3, 0.25]))
    if n_zip == 1:
        centres = np.array([rng.choice([0.5, 0.382, 0.618]) + rng.normal(0, 0.03)])
    else:
        centres = np.sort(rng.uniform(0.12, 0.88, n_zip))
        while np.min(np.diff(centres)) < 0.15:
            centres = np.sort(rng.uniform(0.12, 0.88, n_zip))
    # A secondary field: Newman sometimes let the field change value on one side of a zip.
    if rng.random() < 0.3:
        side = rng.choice([-1.0, 1.0])
        second = oklch(field_l + rng.choice([-1, 1]) * rng.uniform(0.02, 0.04), field_c,
                       hue + rng.normal(0, 4))[0]
        part = _soft(side * (c.x - centres[0] * c.w) + 0.002 * s * c.profile(25.0, "y"),
                     0.004 * s)
        _over(canvas, second, np.broadcast_to(part, (c.h, c.w)))
    for centre in centres * c.w:
        kind = rng.choice(["light", "dark", "contrast"])
        if kind == "light":
            colour = oklch(rng.uniform(0.85, 0.97), rng.uniform(0.0, 0.06), hue + 40)[0]
        elif kind == "dark":
            colour = oklch(rng.uniform(0.12, 0.25), rng.uniform(0.0, 0.06), hue)[0]
        else:
            colour = oklch(np.clip(field_l + rng.choice([-0.3, 0.3]), 0.15, 0.9),
                           rng.uniform(0.08, 0.18), hue + 180 + rng.normal(0, 20))[0]
        half = max(0.5 * rng.uniform(0.006, 0.035) * c.w, 0.8)
        ragged = rng.random() < 0.5  # Onement's hand-painted edge, or a taped edge.
        feather = max((0.003 if ragged else 0.0012) * s, 0.5)
        rough = (0.002 if ragged else 0.0007) * s
        win = c.window(left=centre - half - 0.03 * s, right=centre + half + 0.03 * s)
        meander = 0.002 * s * win.profile(3.0, "y")  # [H, 1] the hand is never quite plumb
        left = centre - half + meander + rough * win.profile(90.0, "y")
        right = centre + half + meander + rough * win.profile(90.0, "y")
        right = np.maximum(right, left + 1.2 * half)  # Ragged, but never broken.
        zip_mask = _soft(win.x - left, feather) * _soft(right - win.x, feather)
        paint = win.field_colour(colour, tone=0.05, tint=0.01, k=4.0, streaks=0.05,
                                 streak_dir="v")
        _over(canvas[:, win.cols], paint, zip_mask * (0.93 + 0.05 * win.noise(20.0)))
    return _finish(c, canvas, weave=0.03)


def _louis_veils(c: _Canvas, canvas: np.ndarray) -> None:
    rng, s = c.rng, c.s
    n_veil = int(rng.integers(5, 10))
    scheme = str(rng.choice(["analogous", "triadic", "split", "complementary"]))
    hues = sample_hues(rng, n_veil, scheme, jitter=20.0)
    colours = oklch(rng.uniform(0.55, 0.85, n_veil), rng.uniform(0.1, 0.2, n_veil), hues)
    # The veils share one bell: a common top, a span that widens as the paint runs down.
    centre = (0.5 + rng.normal(0, 0.04)) * c.w
    span_top = rng.uniform(0.22, 0.38) * c.w
    span_bottom = min(span_top * rng.uniform(1.15, 1.7), 0.49 * c.w)
    span = span_top + (span_bottom - span_top) * (c.y / c.h)  # [H, 1] half-width of the bell
    top = rng.uniform(0.06, 0.25) * c.h
    rivulets = c.noise(110.0, stretch=(1 / 20, 1.0))  # Fine across x, long down the pour.
    drips = c.noise(50.0, stretch=(1 / 8, 1.0))
    for i in range(n_veil):
        place = (i + 0.5) / n_veil - 0.5 + rng.normal(0, 0.08)  # -0.5..0.5 across the bell
        cx = centre + 1.1 * place * span + 0.025 * s * c.profile(3.0, "y")  # [H, 1]
        half = rng.uniform(0.35, 0.65) * span * (1.0 + 0.12 * c.profile(2.5, "y"))  # [H, 1]
        across = (c.x - cx) / half  # [H, W] -1..1 across this veil
        # The crest: an arch over the veil, broken into flame-like lobes.
        crest = top + rng.uniform(0.0, 0.12) * c.h + rng.uniform(0.03, 0.1) * c.h * across ** 2
        crest = crest + 0.03 * s * c.profile(12.0, "x") + 0.008 * s * c.profile(40.0, "x")
        head = _soft(c.y - crest, 0.01 * s)
        side = _soft(half - np.abs(c.x - cx) + 0.006 * s * drips, 0.01 * s)
        if rng.random() < 0.7:  # Run off the bottom edge, or dry before it in drips.
            mask = side * head
        else:
            foot = rng.uniform(0.85, 0.97) * c.h + 0.04 * s * np.abs(drips)
            mask = side * head * _soft(foot - c.y, 0.01 * s)
        # Pigment gathers at the drying edge of a pour (a tide line) and runs in rivulets.
        alpha = mask * (1.0 + rng.uniform(0.4, 0.9) * 4.0 * mask * (1.0 - mask))
        alpha *= rng.uniform(0.3, 0.5) * (1.0 + 0.15 * np.roll(rivulets, 11 * i, axis=1))
        _stain(canvas, colours[i], alpha)


def _louis_unfurled(c: _Canvas, canvas: np.ndarray) -> None:
    rng, s = c.rng, c.s
    n_side = int(rng.integers(4, 9))
    hues = rng.permutation(np.linspace(0, 360, 2 * n_side, endpoint=False) + rng.uniform(0, 360))
    colours = oklch(rng.uniform(0.45, 0.8, 2 * n_side), rng.uniform(0.12, 0.2, 2 * n_side), hues)
    wander = 0.003 * s * c.noise(12.0)  # The stream bends a little as it runs.
    wander += 0.0015 * s * c.noise(80.0)  # Its edges are ragged where the canvas drank it.
    for side in (-1.0, 1.0):
        angle = np.deg2rad(rng.uniform(50, 70))  # From horizontal, running down and inward.
        dx, dy = math.cos(angle), math.sin(angle)
        for j in range(n_side):
            # Each rivulet starts on the side edge and runs towards the bottom centre.
            y_start = (0.02 + 0.7 * j / n_side + rng.normal(0, 0.02)) * c.h
            x_start = 0.0 if side < 0 else float(c.w)
            along = (c.x - x_start) * (-side * dx) + (c.y - y_start) * dy
            across = (c.x - x_start) * dy + (c.y - y_start) * (side * dx)
            length = rng.uniform(0.45, 0.85) * c.h
            # The stream thins as it runs and pools a little where it stops.
            half = rng.uniform(0.012, 0.025) * c.w * (1.1 - 0.4 * np.clip(along / length, 0, 1))
            mask = _soft(half - np.abs(across + wander), 0.004 * s)
            mask *= _soft(length - along, 0.03 * s)
            alpha = mask * rng.uniform(0.7, 0.9)
            _over(canvas, colours[j + (0 if side < 0 else n_side)], alpha)


def _louis(c: _Canvas) -> np.ndarray:
    canvas = c.field_colour(_raw_canvas(c.rng), tone=0.02, tint=0.005, k=2.0)
    if c.rng.random() < 0.3:
        _louis_unfurled(c, canvas)
    else:
        _louis_veils(c, canvas)
    return _finish(c, canvas, weave=0.045)


def _noland(c: _Canvas) -> np.ndarray:
    rng, s = c.rng, c.s
    raw = rng.random() < 0.7
    n_ring = int(rng.integers(3, 7))
    scheme = str(rng.choice(["complementary", "triadic", "split", "analogous"]))
    hues = sample_hues(rng, n_ring, scheme, jitter=12.0)
    light = rng.uniform(0.35, 0.82, n_ring)
    colours = oklch(light, rng.uniform(0.1, 0.2, n_ring), hues)
    if raw:
        ground = _raw_canvas(rng)
    else:
        ground = oklch(rng.choice([rng.uniform(0.2, 0.32), rng.uniform(0.82, 0.92)]),
                       rng.uniform(0.0, 0.05), rng.uniform(0, 360))[0]
    canvas = c.field_colour(ground, tone=0.025, tint=0.005, k=2.0)
    cx = (0.5 + rng.normal(0, 0.01)) * c.w
    cy = (0.5 + rng.normal(0, 0.01)) * c.h
    radius = np.hypot(c.x - cx, c.y - cy)  # [H, W]
    radius += 0.003 * s * c.fbm(6.0, 2)
    radius += 0.0025 * s * c.noise(60.0)
    outer = rng.uniform(0.3, 0.47) * s
    inner = rng.uniform(0.05, 0.13) * s
    bounds = np.sort(rng.dirichlet(np.full(n_ring - 1, 3.0)).cumsum()[:-1])
    radii = np.concatenate([[outer], outer - bounds[::-1] * (outer - inner), [inner]])
    radii = np.sort(radii)[::-1][:n_ring]  # Outer edge of each ring, outside in.
    frayed = rng.random() < 0.4
    # Thin paint soaked into raw canvas: the stain is mottled where the weave drank more.
    density = 0.84 + 0.07 * c.fbm(5.0, 3)
    density += 0.04 * c.noise(40.0)
    np.clip(density, 0.0, 1.0, out=density)
    tone = (1.0 + 0.05 * c.fbm(3.0, 2))[..., None]
    for i in range(n_ring):
        edge = radius
        feather = rng.uniform(0.004, 0.01) * s
        if frayed and i == 0:  # The frayed, splashed corona of the early targets.
            edge = radius + 0.018 * s * c.fbm(25.0, 2)
            feather = 0.01 * s
        ring = _soft(radii[i] - edge, feather)
        if 0 < i < n_ring - 1 and rng.random() < 0.25:  # Bare canvas between two colours.
            _over(canvas, ground, ring)
        else:
            _over(canvas, colours[i] * tone, ring * density)
    return _finish(c, canvas, weave=0.045 if raw else 0.035)


def _davis(c: _Canvas) -> np.ndarray:
    rng, s = c.rng, c.s
    n_colour = int(rng.integers(4, 8))
    hues = (np.linspace(0, 360, n_colour, endpoint=False) + rng.uniform(0, 360)
            + rng.normal(0, 12, n_colour))
    light = rng.uniform(0.4, 0.8, n_colour)
    palette = oklch(light, rng.uniform(0.12, 0.22, n_colour), hues)
    if rng.random() < 0.5:  # Davis's neutrals: a black, a white or a grey in the beat.
        neutral = oklch(rng.choice([0.15, 0.95, 0.6]), 0.01, rng.uniform(0, 360))
        palette = np.concatenate([palette, neutral])
    n_stripe = int(rng.integers(10, 33))
    # The beat: a motif repeated with substitutions, never the same colour twice in a row.
    motif = rng.permutation(len(palette))[:int(rng.integers(3, len(palette) + 1))]
    sequence = [int(motif[i % len(motif)]) for i in range(n_stripe)]
    for i in range(n_stripe):
        if rng.random() < 0.25:
            sequence[i] = int(rng.integers(len(palette)))
        while i > 0 and sequence[i] == sequence[i - 1]:
            sequence[i] = int(rng.integers(len(palette)))
    stripe_colours = palette[sequence]  # [n_stripe, 3]
    stripe_colours *= 1.0 + 0.04 * rng.standard_normal((n_stripe, 1)).astype(np.float32)
    if rng.random() < 0.7:
        widths = np.ones(n_stripe)
    else:
        widths = rng.gamma(4.0, 1.0, n_stripe)
    edges = np.concatenate([[0.0], np.cumsum(widths) / widths.sum()]) * c.w
    # Each point's position in stripe units; the nearest boundary and the signed distance
    # to it (in pixels) decide the colour, so one soft step blends the two neighbours.
    wobble = 0.0012 * s * c.noise(60.0, stretch=(1.0, 0.5)) + 0.001 * s * c.noise(5.0)
    position = np.interp(c.x + wobble, edges, np.arange(n_stripe + 1)).astype(np.float32)
    nearest = np.rint(position).astype(np.intp)
    widths_px = np.diff(edges).astype(np.float32)
    local_width = widths_px[np.clip(np.floor(position).astype(np.intp), 0, n_stripe - 1)]
    offset = (position - nearest) * local_width  # Pixels past the nearest boundary.
    blend = _soft(offset, max(0.5, 0.0025 * s))
    padded = np.concatenate([stripe_colours[:1], stripe_colours, stripe_colours[-1:]])
    before = padded[nearest]  # [H, W, 3]
    canvas = padded[nearest + 1]
    canvas -= before
    canvas *= blend[..., None]
    canvas += before
    # Where two hand-painted stripes meet the paint overlaps a little and darkens.
    overlap = blend * (1.0 - blend)
    light_var = 0.035 * c.fbm(3.0, 2) + 0.03 * c.streaks("v") - 0.25 * overlap
    canvas *= 1.0 + light_var[..., None]
    return _finish(c, canvas, weave=0.035)


_PAINTERS: dict[str, Callable[[_Canvas], np.ndarray]] = {
    "rothko": _rothko,
    "newman": _newman,
    "louis": _louis,
    "noland": _noland,
    "davis": _davis,
}
assert tuple(_PAINTERS) == STYLES


# --------------------------------------------------------------------------------------------
# Public API.

def _check_size(size: object) -> tuple[int, int]:
    if isinstance(size, Sequence) and not isinstance(size, str):
        if len(size) != 2:
            raise NeuropaintError(f"'size' must be an integer or (height, width), got {size!r}.")
        height = check_int(size[0], "size", minimum=MIN_SIZE)
        width = check_int(size[1], "size", minimum=MIN_SIZE)
        return height, width
    side = check_int(size, "size", minimum=MIN_SIZE)
    return side, side


def _check_styles(styles: str | Sequence[str] | None) -> list[str]:
    if styles is None:
        return list(STYLES)
    if isinstance(styles, str):
        styles = [styles]
    names = [str(name).strip().lower() for name in styles]
    if not names:
        raise NeuropaintError(f"'style' must name at least one of {', '.join(STYLES)}.")
    for name in names:
        check_option(name, "style", STYLES)
    return list(dict.fromkeys(names))


def paint(style: str, size: Size = 256, seed: int = 0, *, weave: bool = True) -> np.ndarray:
    """Paint one colour-field painting.

    Parameters
    ----------
    style : str
        One of :data:`STYLES`.
    size : int or (int, int)
        Side of the square image, or ``(height, width)``; at least 16.
    seed : int
        Non-negative; the same ``(style, size, seed)`` gives the same image.
    weave : bool
        False: the same painting on a smooth canvas (no weave relief, in light or dark
        paint), to measure what the weave means to a metric (``benchmarks/swd_weave.py``).

    Returns
    -------
    image : ndarray, shape (height, width, 3), uint8 RGB
    """
    check_option(style, "style", STYLES)
    height, width = _check_size(size)
    seed = check_int(seed, "seed", minimum=0)
    # crc32, not hash(): Python salts string hashes per process.
    rng = np.random.default_rng([seed, zlib.crc32(style.encode())])
    canvas = _Canvas(rng, height, width)
    canvas.weave = bool(weave)
    return _PAINTERS[style](canvas)


def paint_many(count: int, size: Size = 256, *, styles: str | Sequence[str] | None = None,
               seed: int = 0, weave: bool = True) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``count`` paintings as ``(name, image)``, cycling through ``styles``.

    The ``k``-th painting of a style is named ``f"{style}_{k:04d}"`` and is
    ``paint(style, size, seed + k)``, so any file can be remade from its name.
    """
    # Check everything now, not at the first next(): a bad argument fails where it is passed.
    count = check_int(count, "count", minimum=1)
    names = _check_styles(styles)
    _check_size(size)
    seed = check_int(seed, "seed", minimum=0)

    def generate() -> Iterator[tuple[str, np.ndarray]]:
        for i in range(count):
            style = names[i % len(names)]
            k = i // len(names)
            yield f"{style}_{k:04d}", paint(style, size, seed + k, weave=weave)

    return generate()


def contact_sheet(rows: Sequence[Sequence[np.ndarray]], *, labels: Sequence[str] | None = None,
                  pad: int = 8, background: tuple[int, int, int] = (30, 30, 30)) -> np.ndarray:
    """Lay images out in rows (one row per list), with an optional label left of each row.

    Returns
    -------
    sheet : ndarray, shape (height, width, 3), uint8
    """
    from PIL import Image, ImageDraw, ImageFont

    rows = [list(row) for row in rows if len(row)]
    if not rows:
        raise NeuropaintError("'rows' must hold at least one image.")
    tile_h = max(img.shape[0] for row in rows for img in row)
    tile_w = max(img.shape[1] for row in rows for img in row)
    n_col = max(len(row) for row in rows)
    label_w = 0
    font = None
    if labels is not None:
        try:
            font = ImageFont.load_default(size=max(12, tile_h // 12))
        except (TypeError, OSError):  # Pillow without FreeType: the small bitmap font.
            font = ImageFont.load_default()
        measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
        label_w = math.ceil(max(measure.textlength(str(label), font=font) for label in labels))
        label_w += 2 * pad
    height = pad + len(rows) * (tile_h + pad)
    width = label_w + pad + n_col * (tile_w + pad)
    sheet = np.empty((height, width, 3), np.uint8)
    sheet[:] = background
    for r, row in enumerate(rows):
        top = pad + r * (tile_h + pad)
        for col, img in enumerate(row):
            left = label_w + pad + col * (tile_w + pad)
            sheet[top:top + img.shape[0], left:left + img.shape[1]] = img
    if labels is not None:
        picture = Image.fromarray(sheet)
        draw = ImageDraw.Draw(picture)
        for r, label in enumerate(labels[:len(rows)]):
            top = pad + r * (tile_h + pad) + tile_h // 2
            draw.text((pad, top), str(label), fill=(225, 225, 225), font=font, anchor="lm")
        sheet = np.asarray(picture)
    return sheet


def save_png(path: str | Path, image: np.ndarray, *, compress_level: int = 1) -> Path:
    """Write ``image`` as a PNG atomically; level 1 is ~2x faster than PIL's 6, ~5 % larger."""
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG", compress_level=compress_level)
    return Path(path)


# --------------------------------------------------------------------------------------------
# Command line.

def _parse_styles(values: Sequence[str] | None) -> list[str] | None:
    if not values:
        return None
    return [name for value in values for name in value.split(",") if name.strip()]


def _write_store(out: Path, paintings: Iterator[tuple[str, np.ndarray]], size: int,
                 options: dict, overwrite: bool) -> None:
    try:
        from datasets.art import TileStoreWriter
    except ImportError as exc:
        raise NeuropaintError(f"'--store' needs datasets.art, which cannot be imported: "
                              f"{exc}.") from None
    with TileStoreWriter(out, size=size, options=options, overwrite=overwrite) as writer:
        for name, image in paintings:
            writer.add(image, source=f"procedural/{name}", box=(0, 0, size, size))


def write_store(out: str | Path, count: int, size: int, *,
                styles: str | Sequence[str] | None = None, seed: int = 0,
                overwrite: bool = False) -> Path:
    """Paint ``count`` paintings straight into a tile store at ``out`` (for demos and tests)."""
    paintings = paint_many(count, size, styles=styles, seed=seed)
    options = {"source": "datasets.procedural", "count": count, "size": size, "seed": seed,
               "styles": _check_styles(styles)}
    _write_store(Path(out), paintings, size, options, overwrite)
    return Path(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m datasets.procedural",
        description="Paint license-free colour-field paintings (Rothko, Newman, Louis, Noland, "
        "Davis styles) into a folder of PNGs, named like rothko_0007.png, or into a tile store.",
        epilog="Painting k of a style from --seed S is datasets.procedural.paint(style, size, "
        "S + k), so any file can be remade from its name.",
    )
    parser.add_argument("out", type=Path, help="output folder (PNGs, or the store with --store)")
    parser.add_argument("--count", type=int, default=100,
                        help="number of paintings, shared in turn by the styles (default: 100)")
    parser.add_argument("--size", type=int, default=256,
                        help=f"side of each square painting in pixels, >= {MIN_SIZE} "
                        "(default: 256)")
    parser.add_argument("--style", action="append", metavar="NAMES",
                        help=f"comma-separated styles from {','.join(STYLES)} (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="first seed (default: 0)")
    parser.add_argument("--store", action="store_true",
                        help="write a tile store (datasets.art) instead of PNGs")
    parser.add_argument("--overwrite", action="store_true",
                        help="with --store: replace an existing store (PNGs are always replaced)")
    parser.add_argument("--contact-sheet", type=Path, metavar="PNG",
                        help="also write a sheet of up to 8 paintings per style here")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    args = parser.parse_args(argv)
    setup_logging("INFO" if args.verbose else "WARNING")

    from tqdm import tqdm

    count = check_int(args.count, "count", minimum=1)
    size = check_int(args.size, "size", minimum=MIN_SIZE)
    seed = check_int(args.seed, "seed", minimum=0)
    styles = _check_styles(_parse_styles(args.style))
    if args.out.exists() and not args.out.is_dir():
        raise NeuropaintError(f"'out' must be a folder, got the file {args.out}.")

    sheet_rows: dict[str, list[np.ndarray]] = {name: [] for name in styles}

    def generate() -> Iterator[tuple[str, np.ndarray]]:
        bar = tqdm(paint_many(count, size, styles=styles, seed=seed), total=count,
                   unit="img", desc="painting")
        for name, image in bar:
            row = sheet_rows[name.rsplit("_", 1)[0]]
            if args.contact_sheet and len(row) < 8:
                row.append(image)
            yield name, image

    start = time.perf_counter()
    if args.store:
        options = {"generator": "datasets.procedural", "styles": styles, "seed": seed,
                   "count": count}
        _write_store(args.out, generate(), size, options, args.overwrite)
    else:
        args.out.mkdir(parents=True, exist_ok=True)
        for name, image in generate():
            save_png(args.out / f"{name}.png", image)
    elapsed = time.perf_counter() - start
    what = "tile store" if args.store else "folder"
    print(f"wrote {count} paintings of {size} px to the {what} {args.out} "
          f"({count / elapsed:.1f} images/s)")
    if args.contact_sheet:
        rows = [sheet_rows[name] for name in styles if sheet_rows[name]]
        labels = [name for name in styles if sheet_rows[name]]
        save_png(args.contact_sheet, contact_sheet(rows, labels=labels), compress_level=6)
        print(f"contact sheet: {args.contact_sheet}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
