"""Upscaling image files: ``python -m gan.upscale apply``.

Reads any image file :mod:`datasets.imageio` reads (RGBA is composited over white, greyscale
becomes RGB, with a note), upscales it in overlapping tiles (:mod:`gan.upscale.tiling`),
optionally denoises with non-local means (:mod:`gan.denoise`) before and/or after, and writes
``NAME_x4.png`` files atomically. Bad files are skipped and reported; an existing output is
kept unless ``overwrite``, so an interrupted run can simply be started again.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from gan.upscale.model import DENOISE_MODES, Upscaler
from gan.upscale.tiling import MIN_SIDE
from neuropaint.atomic import atomic_path
from neuropaint.validate import NeuropaintError, check_int, check_option

MAX_OUTPUT_PIXELS = 64_000_000  # apply() refuses larger outputs (768 MB of float32 RGB).


@dataclass
class ApplyResult:
    """What ``apply`` did with one input file."""

    file: str
    status: Literal["written", "kept", "skipped"]
    output: str | None = None
    reason: str | None = None
    note: str | None = None


def _expand_inputs(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Files as given; a folder stands for the image files directly inside it (sorted)."""
    from datasets.imageio import IMAGE_SUFFIXES, UNSUPPORTED_SUFFIXES

    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            wanted = set(IMAGE_SUFFIXES) | set(UNSUPPORTED_SUFFIXES)
            files.extend(sorted(p for p in path.iterdir()
                                if p.is_file() and p.suffix.lower() in wanted))
        else:
            files.append(path)
    return files


def _read_image(path: Path) -> tuple[np.ndarray, str | None]:
    """An image file as uint8 RGB, and a note when its mode was converted."""
    from datasets.imageio import UNSUPPORTED_SUFFIXES, BadImage, decode

    kind = UNSUPPORTED_SUFFIXES.get(path.suffix.lower())
    if kind is not None:
        raise BadImage("unsupported-format", f"{kind} files are not read: export the image as "
                       f"PNG or JPEG")
    data = path.read_bytes()
    image, _ = decode(data)
    note = None
    with Image.open(io.BytesIO(data)) as header:
        mode = header.mode
        alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in header.info
    if alpha:
        note = f"{mode} image: transparency composited over white, written as RGB"
    elif mode not in ("RGB", "P", "CMYK", "YCbCr"):
        note = f"{mode} image written as RGB"
    return np.asarray(image), note


def _output_name(path: Path, scale: int, taken: set[str]) -> str:
    name = f"{path.stem}_x{scale}.png"
    k = 2
    while name in taken:  # two inputs of one stem (a.jpg, a.png) keep two outputs
        name = f"{path.stem}-{k}_x{scale}.png"
        k += 1
    taken.add(name)
    return name


def apply_files(
    upscaler: Upscaler,
    inputs: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    denoise: str | None = None,
    tile: int = 128,
    overlap: int = 16,
    overwrite: bool = False,
    progress: Callable[[ApplyResult], None] | None = None,
) -> list[ApplyResult]:
    """Upscale image files into ``out`` as ``NAME_x{scale}.png``; one result per input.

    Bad, too small or too large files are skipped with a reason; an existing output is kept
    unless ``overwrite``; every PNG is written atomically the moment it is ready, so an
    interrupted run loses nothing already written. ``denoise`` None: the model's default.
    """
    from datasets.imageio import BadImage

    denoise = upscaler.default_denoise if denoise is None else denoise
    check_option(denoise, "denoise", DENOISE_MODES)
    tile = check_int(tile, "tile", minimum=MIN_SIDE)
    overlap = check_int(overlap, "overlap", minimum=0)
    if overlap > tile // 2:
        raise NeuropaintError(f"'overlap' must be at most half the tile ({tile // 2}), got "
                              f"{overlap}.")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NeuropaintError(f"'--out' must be a folder, got the file {out}.")
    files = _expand_inputs(inputs)
    if not files:
        raise NeuropaintError("no image files given (folders are searched for image files "
                              "directly inside them).")
    out.mkdir(parents=True, exist_ok=True)
    s = upscaler.scale
    taken: set[str] = set()
    results = []
    for path in files:
        name = _output_name(path, s, taken)
        target = out / name
        if target.exists() and not overwrite:
            result = ApplyResult(str(path), "kept", str(target),
                                 reason="output exists (pass --overwrite to replace it)")
        else:
            try:
                image, note = _read_image(path)
            except (BadImage, OSError) as exc:
                reason = f"{exc.reason}: {exc.detail}" if isinstance(exc, BadImage) \
                    else f"unreadable: {exc.strerror or exc}"
                result = ApplyResult(str(path), "skipped", reason=reason)
            else:
                h, w = image.shape[:2]
                if min(h, w) < MIN_SIDE:
                    result = ApplyResult(str(path), "skipped", reason=f"too-small: {w}x{h} px, "
                                         f"the upscaler needs at least {MIN_SIDE} px a side")
                elif h * w * s * s > MAX_OUTPUT_PIXELS:
                    result = ApplyResult(str(path), "skipped", reason=f"too-large: the output "
                                         f"would be {w * s}x{h * s} px, over "
                                         f"{MAX_OUTPUT_PIXELS / 1e6:g} MP")
                else:
                    big = upscaler.upscale_image(image, denoise=denoise, tile=tile,
                                                 overlap=overlap)
                    with atomic_path(target) as tmp:
                        Image.fromarray(big).save(tmp, format="PNG")
                    result = ApplyResult(str(path), "written", str(target), note=note)
        results.append(result)
        if progress is not None:
            progress(result)
    return results
