"""Reading artists' image files as upright 8-bit sRGB, safely, plus a perceptual hash.

One place decides how any file an artist may drop in a folder becomes ``uint8 [H, W, 3]``:

- formats: JPEG, PNG, WebP, TIFF, BMP, GIF, also JPEG 2000 and AVIF (where PIL has it); the
  first frame of animations and multi-page files; HEIC, PSD, camera raw and the like are
  reported as unsupported with a hint, not silently ignored;
- EXIF orientation (the camera's rotation flag) is applied, as viewers do;
- colour: palette, grayscale, bilevel, CMYK (through its embedded ICC profile when there is
  one), 16-bit and float grayscale (scaled, not clipped as ``Image.convert`` would), other
  embedded ICC profiles converted to sRGB; transparency composited on a background colour;
- big JPEGs are decoded at a reduced scale (libjpeg's DCT scaling, PIL's ``draft``) when the
  caller only needs fewer pixels, which is several times faster than a full decode;
- safety: a pixel-count limit (decompression bombs) is checked from the header before any
  pixel is decoded, truncated files are errors (never silently grey-filled), and every way a
  file can fail becomes :class:`BadImage` with a short reason code and a readable detail.

The perceptual hash is the DCT hash ("pHash", Zauner 2010, *Implementation and Benchmarking of
Perceptual Image Hash Functions*): 32x32 grayscale, 2-D DCT, the 8x8 lowest frequencies
compared with their median give 64 bits; near-identical images (resized, recompressed,
slightly recoloured) differ in a few bits, unrelated ones in about 32.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.fft
from PIL import Image, ImageFile, UnidentifiedImageError, features

logger = logging.getLogger(__name__)

# Suffixes looked at (case-insensitive); anything else in a folder is ignored and counted.
IMAGE_SUFFIXES = (
    ".jpg", ".jpeg", ".jpe", ".jfif", ".mpo", ".png", ".apng", ".webp", ".tif", ".tiff", ".bmp",
    ".dib", ".gif", ".jp2", ".j2k", ".jpx",
) + ((".avif",) if features.check("avif") else ())
# Image files artists often have that PIL cannot read (or not faithfully): reported as
# skipped with a hint, rather than silently ignored.
UNSUPPORTED_SUFFIXES = {
    ".heic": "HEIC", ".heif": "HEIF", ".jxl": "JPEG XL", ".psd": "Photoshop", ".psb": "Photoshop",
    ".xcf": "GIMP", ".kra": "Krita", ".svg": "SVG", ".dng": "camera raw", ".cr2": "camera raw",
    ".cr3": "camera raw", ".nef": "camera raw", ".arw": "camera raw", ".raf": "camera raw",
    ".orf": "camera raw", ".rw2": "camera raw",
    **({} if features.check("avif") else {".avif": "AVIF"}),
}
# 200 megapixels: a 16k x 12k museum scan still passes; PIL's own default (89 MP) rejects some
# real scans. Decoded, such an image is 600 MB of RGB per worker.
DEFAULT_MAX_PIXELS = 200_000_000

# EXIF orientation -> the transpose that makes the image upright (the EXIF 2.3 table).
_ORIENTATION_FIX = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_EXIF_ORIENTATION = 0x0112
_PROBE_SIDE = 128  # Short side (px) at least, of the reduced decode that probe() hashes.
_HIGH_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


class BadImage(Exception):
    """A file that cannot be used; ``reason`` is a short code, ``detail`` a readable line.

    Reason codes: ``empty-file``, ``not-an-image``, ``truncated``, ``decompression-bomb``,
    ``unsupported-format`` (HEIC, PSD, raw...), ``unsupported`` (a colour mode we cannot
    convert), ``corrupt`` (any other decoder error).
    """

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

    def __reduce__(self):  # Travels back from worker processes intact.
        return (type(self), (self.reason, self.detail))


@dataclass(frozen=True)
class Probe:
    """What a cheap look at one file tells: upright size, format, hashes."""

    width: int  # Upright (EXIF orientation applied) width in pixels.
    height: int  # Upright height in pixels.
    format: str  # PIL's format name, e.g. 'JPEG'.
    mode: str  # PIL's mode as stored, e.g. 'CMYK', 'I;16', 'P'.
    orientation: int  # EXIF orientation 1-8 (1: none).
    n_frames: int  # Frames or pages; only the first is used.
    nbytes: int  # File size.
    sha256: str  # Hash of the file's bytes: exact duplicates.
    phash: int  # 64-bit DCT perceptual hash of the upright image: near duplicates.


@contextlib.contextmanager
def _decoding_policy(max_pixels: int) -> Iterator[None]:
    # PIL's bomb check and truncation handling are module globals; pin both for this decode
    # (another library may have relaxed them) and make its bomb *warning* an error too.
    saved_limit = Image.MAX_IMAGE_PIXELS
    saved_truncated = ImageFile.LOAD_TRUNCATED_IMAGES
    Image.MAX_IMAGE_PIXELS = max_pixels
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved_limit
        ImageFile.LOAD_TRUNCATED_IMAGES = saved_truncated


def _classify(exc: BaseException) -> BadImage:
    """Turn a PIL/decoder exception into a :class:`BadImage` with a reason code."""
    if isinstance(exc, BadImage):
        return exc
    if isinstance(exc, Image.DecompressionBombError | Image.DecompressionBombWarning):
        return BadImage("decompression-bomb", str(exc))
    if isinstance(exc, UnidentifiedImageError):
        return BadImage("not-an-image", "no image format recognised in the file's contents")
    text = str(exc) or type(exc).__name__
    if isinstance(exc, EOFError) or "truncated" in text.lower():
        return BadImage("truncated", f"the file ends early ({text})")
    return BadImage("corrupt", f"{type(exc).__name__}: {text}")


def _megapixels(n: int) -> str:
    return f"{n / 1e6:.1f} MP"


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Open from bytes, reading the header only, and enforce the pixel limit."""
    if not data:
        raise BadImage("empty-file", "the file is 0 bytes")
    # The header alone is safe to parse: PIL's own check is held back so that our message,
    # with the image's dimensions, is the one reported; the limit is back on for decoding.
    saved_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        im = Image.open(io.BytesIO(data))
    finally:
        Image.MAX_IMAGE_PIXELS = saved_limit
    width, height = im.size
    if width * height > max_pixels:
        raise BadImage(
            "decompression-bomb",
            f"{width}x{height} = {_megapixels(width * height)} exceeds the limit of "
            f"{_megapixels(max_pixels)} (max_pixels)",
        )
    if width < 1 or height < 1:
        raise BadImage("corrupt", f"the header declares a {width}x{height} image")
    return im


def _orientation(im: Image.Image) -> int:
    # A broken EXIF block must not cost the whole image: fall back to "as stored".
    try:
        value = int(im.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # any EXIF parsing failure means "unknown"
        return 1
    return value if value in _ORIENTATION_FIX else 1


def _upright_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    width, height = size
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _apply_icc(im: Image.Image) -> Image.Image:
    """Convert an image with a non-sRGB embedded ICC profile (RGB or CMYK) to sRGB."""
    icc = im.info.get("icc_profile")
    if not icc or im.mode not in ("RGB", "RGBA", "CMYK"):
        return im
    try:
        from PIL import ImageCms

        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if im.mode != "CMYK" and "srgb" in ImageCms.getProfileDescription(src).lower():
            return im  # Already sRGB: nothing to do.
        alpha = im.getchannel("A") if im.mode == "RGBA" else None
        base = im.convert("RGB") if alpha is not None else im
        out = ImageCms.profileToProfile(base, src, ImageCms.createProfile("sRGB"),
                                        outputMode="RGB")
        if alpha is not None:
            out.putalpha(alpha)
        return out
    except Exception as exc:  # a bad profile falls back to PIL's conversion
        logger.debug("ignoring unusable ICC profile: %s", exc)
        return im


def _high_bit_to_l(im: Image.Image) -> Image.Image:
    # Image.convert('L') clips 16-bit values at 255; scale the full range instead.
    arr = np.asarray(im)
    if im.mode == "F":
        arr = np.nan_to_num(arr.astype(np.float64), nan=0.0)
        top = 1.0 if arr.max(initial=0.0) <= 1.0 else 255.0
    else:
        top = 255.0 if arr.max(initial=0) <= 255 else 65535.0
    scaled = np.clip(np.rint(arr.astype(np.float64) * (255.0 / top)), 0, 255)
    return Image.fromarray(scaled.astype(np.uint8), "L")


def to_rgb(im: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """Any PIL mode -> 8-bit RGB; transparency is composited over ``background``."""
    im = _apply_icc(im)
    if im.mode in _HIGH_BIT_MODES:
        return _high_bit_to_l(im).convert("RGB")
    has_alpha = im.mode in _ALPHA_MODES or "transparency" in im.info
    if not has_alpha:
        if im.mode == "RGB":
            return im
        try:
            return im.convert("RGB")
        except ValueError as exc:  # e.g. LAB: PIL has no direct path
            raise BadImage("unsupported", f"colour mode {im.mode} ({exc})") from None
    rgba = im.convert("RGBA")
    canvas = Image.new("RGBA", rgba.size, (*background, 255))
    return Image.alpha_composite(canvas, rgba).convert("RGB")


def decode(
    data: bytes,
    *,
    background: tuple[int, int, int] = (255, 255, 255),
    max_pixels: int = DEFAULT_MAX_PIXELS,
    scale: float = 1.0,
) -> tuple[Image.Image, tuple[int, int]]:
    """Decode file bytes to an upright 8-bit RGB PIL image.

    Parameters
    ----------
    data : bytes
        The file's contents.
    background : tuple of int
        RGB colour transparent areas are composited over.
    max_pixels : int
        Images with more pixels than this (per the header) are refused before decoding.
    scale : float
        The caller needs at least this fraction of the full resolution (0 < scale <= 1). A JPEG
        is then decoded at 1/2, 1/4 or 1/8 scale where that still gives enough pixels.

    Returns
    -------
    image : PIL.Image.Image, mode 'RGB'
        Upright (EXIF orientation applied). Its size may be smaller than the file's.
    full_size : tuple of int
        ``(width, height)`` of the upright image at full resolution; full-resolution
        coordinates times ``image.width / width`` are coordinates in ``image``.

    Raises
    ------
    BadImage
        With a reason code; see :class:`BadImage`.
    """
    try:
        with _decoding_policy(max_pixels):
            im = _open(data, max_pixels)
            orientation = _orientation(im)
            full_size = _upright_size(im.size, orientation)
            im.seek(0)
            if scale < 1.0 and im.format in ("JPEG", "MPO"):
                want = (math.ceil(im.width * scale), math.ceil(im.height * scale))
                im.draft(im.mode, want)
            im.load()
            rgb = to_rgb(im, background)
            if orientation != 1:
                rgb = rgb.transpose(_ORIENTATION_FIX[orientation])
    except Exception as exc:  # every failure of one file is reported, not raised
        raise _classify(exc) from None
    return rgb, full_size


def phash(image: Image.Image) -> int:
    """64-bit DCT perceptual hash of an RGB image (see the module docstring)."""
    gray = image.convert("L").resize((32, 32), Image.Resampling.LANCZOS, reducing_gap=2.0)
    pixels = np.asarray(gray, dtype=np.float64)
    coeffs = scipy.fft.dctn(pixels, type=2, norm="ortho")[:8, :8]
    # The DC term is the mean brightness: left out of the median so it cannot skew the split.
    median = np.median(coeffs.ravel()[1:])
    bits = (coeffs.ravel() > median).astype(np.uint8)
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two hashes."""
    return (a ^ b).bit_count()


def probe(
    path: str | Path,
    *,
    background: tuple[int, int, int] = (255, 255, 255),
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Probe:
    """Read a file once: validate it (a full, possibly reduced-scale decode), hash it.

    A big JPEG is decoded at reduced scale (down to 1/8, keeping >= 128 px on the short side
    for the hash), which still reads the whole stream, so a truncated file fails here, but
    costs a fraction of a full decode.

    Raises
    ------
    BadImage
        With a reason code; see :class:`BadImage`.
    """
    path = Path(path)
    kind = UNSUPPORTED_SUFFIXES.get(path.suffix.lower())
    if kind is not None:
        raise BadImage("unsupported-format",
                       f"{kind} files are not read: export the work as JPEG, PNG or TIFF")
    data = path.read_bytes()
    try:
        with _decoding_policy(max_pixels):
            header = _open(data, max_pixels)
            orientation = _orientation(header)
            width, height = _upright_size(header.size, orientation)
            info = (header.format or "unknown", header.mode, getattr(header, "n_frames", 1))
    except Exception as exc:  # reported per file
        raise _classify(exc) from None
    scale = min(1.0, _PROBE_SIDE / min(width, height))
    image, _ = decode(data, background=background, max_pixels=max_pixels, scale=scale)
    return Probe(
        width=width,
        height=height,
        format=info[0],
        mode=info[1],
        orientation=orientation,
        n_frames=int(info[2]),
        nbytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        phash=phash(image),
    )
