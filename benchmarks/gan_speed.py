"""GAN room speed: cost and speed of each preset's generator, and training throughput.

Prints one JSON line per case. Run: ``python benchmarks/gan_speed.py`` (a few minutes here;
``--quick`` for the CPU presets only).

- ``peak``: this machine's dense-convolution ceiling, measured in the same run: the best rate
  of fp32 3x3 convolutions over four shapes a generator uses (128-512 channels, 32-128 px).
- ``generator``: for each StyleGAN2 preset's widths at 64, 256 and 512 px: GFLOP per image
  (forward, counted with ``torch.utils.flop_counter.FlopCounterMode``, whose forward counts
  are right), ms per image at batch 1 and 8 (median of repeats, ``noise_mode='const'``), and
  achieved GFLOP/s as a fraction of the measured peak; where the CPU computes bf16 natively
  (AVX512-BF16 or AMX), the same at batch 1 under bf16 autocast with the speed-up and the
  painting's PSNR against fp32, else why bf16 is not measured.
- ``training``: images/s of the real training step (G, D, lazy R1 every 16 steps, EMA; ADA
  on) at 64 and 128 px, batch 8, over 16 steps (one R1 cycle), with and without R1, on a
  store of procedural paintings; peak RSS.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from datasets.procedural import write_store
from gan.networks import Generator
from gan.precision import autocast, describe_precision, resolve_precision
from gan.presets import get_preset
from gan.train import TrainConfig, Trainer


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up (allocations, kernel selection)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


def conv_peak_gflops() -> float:
    """The best dense 3x3 convolution rate over a few shapes a generator uses (fp32)."""
    best_rate = 0.0
    for batch, channels, size in ((8, 256, 32), (1, 512, 64), (1, 256, 128), (8, 128, 64)):
        x = torch.randn(batch, channels, size, size)
        w = torch.randn(channels, channels, 3, 3)
        flops = 2 * batch * channels * channels * 9 * size * size
        with torch.no_grad():
            seconds = min(median_seconds(lambda x=x, w=w: torch.nn.functional.conv2d(
                x, w, padding=1), 3) for _ in range(3))
        best_rate = max(best_rate, flops / seconds / 1e9)
    return best_rate


def generator_case(preset_name: str, resolution: int, peak: float, repeats: int) -> dict:
    preset = get_preset(preset_name)
    G = Generator(z_dim=preset.z_dim, c_dim=0, w_dim=preset.w_dim, img_resolution=resolution,
                  img_channels=3, mapping_kwargs={"num_layers": preset.mapping_layers},
                  synthesis_kwargs={"channel_base": preset.channel_base,
                                    "channel_max": preset.channel_max}).eval()
    params = sum(p.numel() for p in G.parameters())
    z1 = torch.randn(1, preset.z_dim)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        G(z1, None, noise_mode="const")
    gflop = counter.get_total_flops() / 1e9
    result = {"case": "generator", "preset": preset_name, "resolution": resolution,
              "params": params, "gflop_per_image": round(gflop, 3)}
    for batch in (1, 8):
        z = torch.randn(batch, preset.z_dim)
        with torch.no_grad():
            seconds = median_seconds(lambda z=z: G(z, None, noise_mode="const"), repeats)
        ms = seconds / batch * 1000
        achieved = gflop / (ms / 1000)
        result[f"ms_per_image_b{batch}"] = round(ms, 2)
        result[f"gflops_b{batch}"] = round(achieved, 1)
        result[f"of_peak_b{batch}"] = round(achieved / peak, 3)
    result.update(bf16_figures(G, z1, repeats, result["ms_per_image_b1"]))
    result["peak_gflops"] = round(peak, 1)
    result["rss_mb"] = round(rss_mb())
    return result


def bf16_figures(G: Generator, z: torch.Tensor, repeats: int, fp32_ms: float) -> dict:
    """bf16 autocast at batch 1 where this CPU computes bf16 natively: ms, the speed-up over
    fp32 and the painting's PSNR against fp32; elsewhere why it is not measured (emulated
    bf16 is slower than fp32 and says nothing about bf16 hardware)."""
    if resolve_precision("auto", "cpu") != "bf16":
        return {"bf16": f"not measured: {describe_precision('fp32', 'cpu')}"}
    with torch.no_grad():
        reference = G(z, None, noise_mode="const")
        with autocast("bf16", "cpu"):
            seconds = median_seconds(lambda: G(z, None, noise_mode="const"), repeats)
            low = G(z, None, noise_mode="const").float()
    mse = float(((low - reference) ** 2).mean()) / 4.0  # images in [-1, 1]: peak-to-peak 2
    return {"ms_per_image_b1_bf16": round(seconds * 1000, 2),
            "bf16_speedup_b1": round(fp32_ms / (seconds * 1000), 2),
            "bf16_psnr_vs_fp32_db": round(10 * math.log10(1 / max(mse, 1e-12)), 1)}


def training_case(preset_name: str, store: Path, out: Path, *, r1: bool, steps: int) -> dict:
    preset = get_preset(preset_name)
    cfg = TrainConfig(data=str(store), out=str(out), preset=preset_name, kimg=1e6, batch=8,
                      gamma=None if r1 else 0.0, device="cpu", snapshot_kimg=1e6, aug="ada")
    trainer = Trainer(cfg)
    trainer.train_step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    seconds = time.perf_counter() - start
    return {"case": "training", "preset": preset_name, "resolution": preset.resolution,
            "batch": 8, "r1": r1, "steps": steps,
            "r1_interval": preset.r1_interval if r1 else None,
            "images_per_s": round(steps * 8 / seconds, 2),
            "sec_per_step": round(seconds / steps, 3), "rss_mb": round(rss_mb())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CPU presets only, fewer repeats")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    peak = conv_peak_gflops()
    print(json.dumps({"case": "peak", "dense_conv_gflops": round(peak, 1),
                      "threads": torch.get_num_threads(), "torch": torch.__version__,
                      "python": platform.python_version()}), flush=True)
    presets = ["cpu64", "cpu128", "cpu256"] + ([] if args.quick else ["paper256", "paper512"])
    for name in presets:
        for resolution in (64, 256, 512):
            if args.quick and resolution == 512:
                continue
            repeats = 5 if resolution <= 64 else 3
            print(json.dumps(generator_case(name, resolution, peak, repeats)), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for preset_name, size in (("cpu64", 64), ("cpu128", 128)):
            store = write_store(folder / f"paintings{size}", 64, size)
            for r1 in (False, True):
                # 16 steps = one full lazy-R1 cycle, so the R1 cost is included once.
                print(json.dumps(training_case(preset_name, store, folder / f"run{size}{r1}",
                                               r1=r1, steps=16)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
