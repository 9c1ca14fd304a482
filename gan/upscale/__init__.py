"""``gan.upscale``: an ESRGAN-style ×2/×4/×8 super-resolution upscaler that also denoises.

The seeds upscaled their 64 px GAN outputs ×2 and ×4 and denoised them before and after; this
package does that with a network trained here, on the project's own tile stores.

One idea per file:

- :mod:`~gan.upscale.networks`: ESRGAN's RRDBNet (Wang et al. 2018) with an ESRGAN or ESPCN
  upsampler, the cheaper CompactNet, the patch discriminator, and the presets (``tiny``, ``cpu``,
  ``compact``, ``full``).
- :mod:`~gan.upscale.degrade`: Real-ESRGAN-style degradations (blur, downscale, noise, JPEG)
  that turn HR patches into LR inputs on the fly.
- :mod:`~gan.upscale.metrics`: PSNR and SSIM (the project's one definition) and the bicubic
  and nearest baselines.
- :mod:`~gan.upscale.tiling`: inference in overlapping, feathered tiles.
- :mod:`~gan.upscale.model`: :class:`Upscaler`, a trained network ready to apply
  (``from_pretrained`` / ``save_pretrained``: config.json + safetensors).
- :mod:`~gan.upscale.patches`: HR patches and held-out tiles from a tile store, split by
  source image.
- :mod:`~gan.upscale.train`: the trainer (L1, then optionally RaGAN), on the tick/snapshot
  loop it shares with ``gan.train`` (:mod:`gan.loop`).
- :mod:`~gan.upscale.apply`: upscaling image files.
- :mod:`~gan.upscale.cli`: ``python -m gan.upscale train|apply``.

Quality is measured by ``benchmarks/upscale_quality.py``: PSNR and SSIM against bicubic and
nearest on held-out tiles.

Examples
--------
python -m gan.upscale train tiles256/ --scale 4 --out runs/sr4 --minutes 30 --resume auto
python -m gan.upscale apply runs/sr4 out/*.png --out big/ --denoise before

From Python (the live engine puts it after the generator, 64 -> 256 px)::

    up = Upscaler.from_pretrained("runs/sr4", device="cpu")
    big = up(images)                   # [N, 3, H, W] in [-1, 1] -> [N, 3, 4H, 4W] in [-1, 1]
"""

from gan.upscale.apply import MAX_OUTPUT_PIXELS, ApplyResult, _expand_inputs, apply_files
from gan.upscale.cli import main
from gan.upscale.degrade import DEGRADATIONS, Degradation, degrade, get_degradation
from gan.upscale.metrics import bicubic_upscale, compare, nearest_upscale, psnr, ssim
from gan.upscale.model import DENOISE_MODES, MODEL_KIND, NETWORK_NAMES, Upscaler
from gan.upscale.networks import (
    RRDB,
    SCALES,
    BicubicPhases,
    CompactNet,
    PatchDiscriminator,
    ResidualDenseBlock,
    RRDBNet,
    UpscalerPreset,
    build_upscaler_net,
    get_preset,
    list_presets,
)
from gan.upscale.patches import PatchSource
from gan.upscale.tiling import MIN_SIDE, upscale_tiled
from gan.upscale.train import UpscaleCounters, UpscaleTrainConfig, UpscaleTrainer, ragan_losses

__all__ = [
    "DEGRADATIONS",
    "DENOISE_MODES",
    "MAX_OUTPUT_PIXELS",
    "MIN_SIDE",
    "MODEL_KIND",
    "NETWORK_NAMES",
    "RRDB",
    "SCALES",
    "ApplyResult",
    "BicubicPhases",
    "CompactNet",
    "Degradation",
    "PatchDiscriminator",
    "PatchSource",
    "RRDBNet",
    "ResidualDenseBlock",
    "UpscaleCounters",
    "UpscaleTrainConfig",
    "UpscaleTrainer",
    "Upscaler",
    "UpscalerPreset",
    "_expand_inputs",
    "apply_files",
    "bicubic_upscale",
    "build_upscaler_net",
    "compare",
    "degrade",
    "get_degradation",
    "get_preset",
    "list_presets",
    "main",
    "nearest_upscale",
    "psnr",
    "ragan_losses",
    "ssim",
    "upscale_tiled",
]
