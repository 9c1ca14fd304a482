"""Training speed on a CPU: the step as issue 16 found it, today's, and each avenue alone.

    python benchmarks/train_speed.py [--presets demo64,cpu64] [--batches 8,16] [--steps 4]

For each preset and batch, one :class:`gan.train.Trainer` per variant (same seed, same data)
runs the real training step (G, D, lazy R1, path length, EMA, ADA) in rounds: every variant
``--steps`` steps, then the next, ``--rounds`` times, so a noisy neighbour slows them alike.
Prints one JSON line per case with images/s per variant (the median over rounds), the ratio
to ``before``, and how far each variant's generator weights drifted from ``before``'s after
the same steps (0 for settings that change only the speed, not the arithmetic; small for a
re-ordered sum or a changed recipe, whose quality per kimg
:mod:`benchmarks.train_recipe_quality` measures; meaningless where the discriminator's shape
changed, since the generator's random initialisation is then drawn after another one's).

Variants:

- ``before``: the step when issue 16 was filed: the generator's high-resolution blocks one
  sample at a time in training (as rendering does), a discriminator as wide as the
  generator, a fresh generator pass for the D step, path length every 4 steps
  (``gan.presets.CPU_STEP_BEFORE``);
- ``today``: the trainer and preset as they are (``today_again``: the same, for the noise);
- one avenue at a time on top of ``before``: ``batched_G`` (every generator block batched
  in training), ``light_D`` (half the discriminator's channels below the cap),
  ``reuse_fakes`` (the D step judges the G step's images), ``pl_every_8`` (lazy path length
  every 8 steps instead of 4, its weight scaled to match);
- on top of ``today``, avenues measured and not kept: ``fused_adam`` (Adam's fused CPU
  kernel), ``channels_last`` (networks and images in NHWC, oneDNN's native layout), and
  ``bf16`` (autocast to bfloat16, only on a CPU with AVX512-BF16 or AMX).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from datasets.procedural import write_store
from gan.precision import bf16_native, describe_precision
from gan.presets import CPU_STEP_BEFORE, get_preset
from gan.train import TrainConfig, Trainer


def _fused_adam(trainer: Trainer) -> None:
    for opt in [trainer.G_opt] + [critic.opt for critic in trainer.critics]:
        for group in opt.param_groups:
            group["fused"], group["foreach"] = True, False


def _channels_last(trainer: Trainer) -> None:
    trainer.G.to(memory_format=torch.channels_last)
    for critic in trainer.critics:
        critic.D.to(memory_format=torch.channels_last)


def _per_sample_G(trainer: Trainer) -> None:
    trainer.G.synthesis.per_sample_in_training = True  # the step as it was before


def _bf16(trainer: Trainer) -> None:
    trainer.precision = "bf16"


STEP_FIELDS = tuple(CPU_STEP_BEFORE)
# name -> (the step fields taken from today's preset, the rest as before; a change to the
# built trainer)
VARIANTS = {
    "before": ((), _per_sample_G),
    "today": (STEP_FIELDS, None),
    "today_again": (STEP_FIELDS, None),
    "batched_G": ((), None),
    "light_D": (("d_channel_base",), _per_sample_G),
    "reuse_fakes": (("reuse_fakes",), _per_sample_G),
    "pl_every_8": (("pl_interval",), _per_sample_G),
    "fused_adam": (STEP_FIELDS, _fused_adam),
    "channels_last": (STEP_FIELDS, _channels_last),
}


def run_case(store: Path, out: Path, preset: str, batch: int, steps: int, rounds: int) -> dict:
    variants = dict(VARIANTS)
    if bf16_native("cpu"):
        variants["bf16"] = (STEP_FIELDS, _bf16)
    trainers = {}
    for name, (today_fields, change) in variants.items():
        cfg = TrainConfig(data=str(store), out=str(out / name), preset=preset, batch=batch,
                          kimg=1e6, snapshot_kimg=1e6, tick_kimg=1e6, device="cpu", seed=0)
        before = {k: v for k, v in CPU_STEP_BEFORE.items() if k not in today_fields}
        trainer = Trainer(cfg, preset=get_preset(preset, **before))
        if change is not None:
            change(trainer)
        trainers[name] = trainer
    # Each trainer keeps its own random stream (latents, noise, augmentation), so that the
    # variants see the same numbers and their weights can be compared.
    rng = {name: torch.Generator().manual_seed(0).get_state() for name in trainers}
    seconds: dict[str, list[float]] = {name: [] for name in trainers}
    for round_index in range(rounds + 1):  # round 0 warms up (allocations, kernel choice)
        for name, trainer in trainers.items():
            torch.set_rng_state(rng[name])
            start = time.perf_counter()
            for _ in range(steps if round_index else 1):
                trainer.train_step()
            if round_index:
                seconds[name].append(time.perf_counter() - start)
            rng[name] = torch.get_rng_state()
    rate = {name: steps * batch / statistics.median(s) for name, s in seconds.items()}
    base_weights = torch.cat([p.detach().flatten() for p in trainers["before"].G.parameters()])
    drift = {}
    for name, trainer in trainers.items():
        weights = torch.cat([p.detach().flatten() for p in trainer.G.parameters()])
        drift[name] = float((weights - base_weights).abs().max())
    return {"case": "train_speed", "preset": preset, "batch": batch,
            "steps_per_round": steps, "rounds": rounds,
            "images_per_s": {k: round(v, 2) for k, v in rate.items()},
            "ratio_to_before": {k: round(v / rate["before"], 3) for k, v in rate.items()},
            "weight_drift_vs_before": drift, "threads": torch.get_num_threads(),
            "precision": describe_precision("fp32", "cpu")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="demo64,cpu64")
    parser.add_argument("--batches", default="8,16")
    parser.add_argument("--steps", type=int, default=4, help="steps per variant and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        store = write_store(folder / "paintings", 256, 64)
        for preset in args.presets.split(","):
            for batch in (int(b) for b in args.batches.split(",")):
                out = folder / f"{preset}_{batch}"
                print(json.dumps(run_case(store, out, preset, batch, args.steps, args.rounds)),
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
