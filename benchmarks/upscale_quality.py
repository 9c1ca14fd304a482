"""Does the upscaler beat bicubic, and how fast is it? ``cpu``-preset x4 and x2 on paintings.

Prints one JSON line. Run: ``python benchmarks/upscale_quality.py`` (``--minutes 3.5`` of
training per scale by default, about 9 minutes in all on a 2-core CPU), or
``--model-x4 RUN --model-x2 RUN`` to measure trained upscalers without training (``--save
DIR`` keeps the ones it trains).

- Data: procedural colour-field paintings (``datasets.procedural.write_store``) at 256 px;
  10 % of the paintings are held out (``gan.upscale.PatchSource``, split by source image) and
  never trained on.
- Quality, on up to ``--val-tiles`` held-out 256 px tiles, for two kinds of input:
  ``clean`` (antialiased bicubic downscale only, the classic SR benchmark setting) and
  ``degraded`` (the degradations the model was trained with, ``light`` by default: blur,
  noise, JPEG, each 30 % of the time, with a fixed seed). PSNR (dB,
  RGB 0-255) and SSIM (11x11 Gaussian, σ = 1.5, K1 = 0.01, K2 = 0.03, mean over RGB), with
  ``scale`` border pixels cropped, for the upscaler, bicubic (Pillow's, a = -0.5) and
  nearest. ``beats_bicubic`` is true when the upscaler's PSNR and SSIM are both higher on
  both kinds of input.
- Speed: ms per frame at batch 1, 64 -> 256 px (x4) and 64 -> 128 px (x2), the median of
  ``--repeats`` (>= 20) calls of ``Upscaler.__call__`` after 3 warm-up calls, on this CPU with
  torch's default threads (``--threads N`` to choose); also with ``--denoise before``
  (non-local means on the 64 px input).

On a shared, oversubscribed machine pass ``--threads 1``: there, two OpenMP threads were
measured 20-25x slower per training step than one, as they spin while other processes hold
the cores. The thread count used is in the output.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from gan_speed import median_seconds  # this folder: the one timing rule of the benchmarks

from datasets.procedural import write_store
from gan.upscale import (
    Degradation,
    PatchSource,
    Upscaler,
    UpscaleTrainConfig,
    UpscaleTrainer,
    compare,
    degrade,
    get_degradation,
)


def train(store: Path, out: Path, scale: int, minutes: float, seed: int) -> tuple[Upscaler, dict]:
    cfg = UpscaleTrainConfig(data=str(store), out=str(out), scale=scale, preset="cpu",
                             steps=None, max_minutes=minutes, val_every=10**9, val_tiles=4,
                             snapshot_every=10**9, tick_every=100, device="cpu", seed=seed)
    trainer = UpscaleTrainer(cfg)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    info = {"train_minutes": round(seconds / 60, 2), "steps": trainer.counters.step,
            "sec_per_step": round(seconds / max(trainer.counters.step, 1), 3)}
    return Upscaler.from_pretrained(out), info


def evaluate(upscaler: Upscaler, source: PatchSource, count: int, seed: int) -> dict:
    hr = source.validation_tiles(count)
    s = upscaler.scale
    result: dict = {"val_tiles": len(hr)}
    trained_on = upscaler.info.get("degradation")
    degraded = Degradation.model_validate(trained_on) if trained_on else get_degradation("light")
    for name in ("clean", "degraded"):
        degradation = get_degradation("bicubic") if name == "clean" else degraded
        lr = degrade(hr, s, degradation, torch.Generator().manual_seed(seed + 7919))
        figures = compare(upscaler, lr, hr, s)
        result[name] = {k: round(v, 4) for k, v in figures.items()}
    result["beats_bicubic"] = all(
        result[k]["psnr_model"] > result[k]["psnr_bicubic"]
        and result[k]["ssim_model"] > result[k]["ssim_bicubic"] for k in ("clean", "degraded"))
    return result


def speed(upscaler: Upscaler, repeats: int) -> dict:
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    return {"frame": f"64->{64 * upscaler.scale}",
            "ms_per_frame": round(median_seconds(lambda: upscaler(x), repeats) * 1000, 2),
            "ms_per_frame_denoise_before": round(
                median_seconds(lambda: upscaler(x, denoise="before"), repeats) * 1000, 2),
            "params": sum(p.numel() for p in upscaler.net.parameters())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.5, help="training time per scale")
    parser.add_argument("--paintings", type=int, default=300, help="procedural paintings")
    parser.add_argument("--val-tiles", type=int, default=30, help="held-out tiles measured")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls (>= 20)")
    parser.add_argument("--scales", default="4,2", help="scales to measure, e.g. 4 or 4,2")
    parser.add_argument("--model-x4", help="measure this x4 upscaler instead of training one")
    parser.add_argument("--model-x2", help="measure this x2 upscaler instead of training one")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--save", type=Path, metavar="DIR",
                        help="keep the trained upscalers in DIR/x4, DIR/x2 (for --model-x4)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.repeats < 20:
        parser.error("--repeats must be at least 20")
    scales = [int(s) for s in args.scales.split(",")]
    result: dict = {"benchmark": "upscale_quality", "preset": "cpu", "size": 256,
                    "paintings": args.paintings, "threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        store = write_store(folder / "paintings", args.paintings, 256, seed=args.seed)
        for scale in scales:
            given = args.model_x4 if scale == 4 else args.model_x2
            if given:
                upscaler, info = Upscaler.from_pretrained(given), {"model": given}
            else:
                upscaler, info = train(store, folder / f"run{scale}", scale, args.minutes,
                                       args.seed)
                if args.save:
                    upscaler.save_pretrained(args.save / f"x{scale}")
            source = PatchSource(store, patch=64, scale=scale, val_fraction=0.1, seed=args.seed)
            info.update(evaluate(upscaler, source, args.val_tiles, args.seed))
            info.update(speed(upscaler, args.repeats))
            result[f"x{scale}"] = info
    result["goal"] = "beats_bicubic (PSNR and SSIM, clean and degraded inputs)"
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
