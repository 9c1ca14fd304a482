"""Training an upscaler: ``python -m gan.upscale train``.

HR patches come from a tile store (:mod:`gan.upscale.patches`: split by source image) and are
degraded on the fly (:mod:`gan.upscale.degrade`). Phase one minimises the L1 pixel loss
(ESRGAN's PSNR-oriented pre-training). An optional phase two (``--adversarial-steps``) adds a
relativistic average GAN loss (ESRGAN's RaGAN, Jolicoeur-Martineau 2018) from the patch
discriminator, with L1 kept: "perceptual-free", since we ship no pretrained VGG. The
generator's exponential moving average (Real-ESRGAN keeps one, decay 0.999) is what
validation, snapshots and ``apply`` use.

Runs are folders like ``gan.train``'s and go through the same tick/snapshot loop
(:mod:`gan.loop`): ``snapshots/NNNNNNNNN/`` (``config.json``, the networks as safetensors,
``state.pt`` for exact resume, ``preview.png``: nearest | bicubic | upscaled | original for
held-out tiles), ``latest``, ``stats.jsonl``. ``--resume auto`` continues exactly; a snapshot
is written atomically.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, model_validator

from gan.checkpoint import (
    load_network,
    load_state,
    mark_latest,
    read_config,
    resolve_snapshot,
    save_snapshot,
)
from gan.distributed import Dist, optimizer_step, setup_distributed
from gan.images import image_grid, to_uint8
from gan.loop import Tick, TickLoop, has_snapshot, trim_log
from gan.upscale.degrade import degrade, get_degradation
from gan.upscale.metrics import bicubic_upscale, compare, nearest_upscale
from gan.upscale.model import MODEL_KIND, NETWORK_NAMES
from gan.upscale.networks import (
    PatchDiscriminator,
    build_upscaler_net,
    get_preset,
    list_presets,
)
from gan.upscale.patches import PatchSource
from neuropaint.atomic import append_json_line, atomic_path
from neuropaint.validate import NeuropaintError, check_option

logger = logging.getLogger(__name__)


class UpscaleTrainConfig(BaseModel):
    """Everything ``gan.upscale train`` is told; saved in every snapshot."""

    model_config = ConfigDict(extra="forbid")

    data: str = Field(description="Tile store of HR images (datasets.art build).")
    out: str = Field(description="Run folder: snapshots, stats.jsonl.")
    scale: Literal[2, 4, 8] = Field(4, description="Upscaling factor.")
    preset: str = Field("cpu", description="Preset name (gan.upscale.list_presets()).")
    steps: int | None = Field(20000, ge=0, description="L1 (pixel loss) steps; None: until "
                              "max_minutes.")
    adversarial_steps: int = Field(0, ge=0, description="GAN fine-tuning steps after the L1 "
                                   "steps (L1 kept).")
    adversarial_weight: float = Field(0.05, gt=0, description="Weight of the RaGAN loss "
                                      "against L1 (weight 1) in the fine-tuning.")
    batch: int | None = Field(None, ge=1, description="Patches per step (None: the preset's).")
    patch: int | None = Field(None, ge=8, description="HR patch side (None: the preset's).")
    lr: float | None = Field(None, gt=0, description="Learning rate (None: the preset's).")
    lr_schedule: Literal["cosine", "constant"] = Field(
        "cosine", description="L1 phase: cosine decay to 5 % of lr over the steps, or constant "
        "(always constant when only max_minutes bounds the run); the GAN phase uses lr / 2.")
    degradation: str = Field("light", description="Degradation setting: light, mixed, real "
                             "or bicubic (gan.upscale.DEGRADATIONS).")
    denoise: Literal["none", "before", "after", "both"] = Field(
        "none", description="Denoise step 'apply' uses by default with this model.")
    val_fraction: float = Field(0.1, ge=0, lt=1, description="Share of source images held "
                                "out (0: no validation).")
    val_tiles: int = Field(32, ge=1, description="Held-out tiles used for validation.")
    val_every: int = Field(500, ge=1, description="Steps between validations.")
    snapshot_every: int = Field(1000, ge=1, description="Steps between snapshots.")
    keep_snapshots: int = Field(3, ge=1, description="Newest snapshots kept (older ones are "
                                "removed).")
    tick_every: int = Field(50, ge=1, description="Steps between stats.jsonl lines.")
    seed: int = Field(0, ge=0, description="Random seed.")
    resume: str | None = Field(None, description="'auto' (the run's latest snapshot) or a "
                               "snapshot path.")
    device: str = Field("auto", description="'auto', 'cpu', 'cuda' or 'cuda:N'.")
    max_minutes: float | None = Field(None, gt=0, description="Stop (with a snapshot) after "
                                      "this many minutes.")

    @model_validator(mode="after")
    def _check_budget(self) -> UpscaleTrainConfig:
        if self.steps is None and self.max_minutes is None:
            raise ValueError("give steps, max_minutes or both")
        if self.steps is None and self.adversarial_steps:
            raise ValueError("adversarial steps follow the L1 steps: give steps too")
        if self.steps == 0 and self.adversarial_steps == 0:
            raise ValueError("steps and adversarial_steps are both 0: nothing to train")
        return self


def ragan_losses(real_logits: torch.Tensor, fake_logits: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Relativistic average GAN losses (ESRGAN eq. 1-2) as ``(loss_d, loss_g)``.

    ``D_Ra(a, b) = sigmoid(C(a) - mean C(b))``; D wants real more realistic than the average
    fake and fake less than the average real, G the opposite; each is the mean of the two
    binary cross-entropies.
    """
    real_rel = real_logits - fake_logits.mean()
    fake_rel = fake_logits - real_logits.mean()
    loss_d = (F.softplus(-real_rel).mean() + F.softplus(fake_rel).mean()) / 2
    loss_g = (F.softplus(real_rel).mean() + F.softplus(-fake_rel).mean()) / 2
    return loss_d, loss_g


@dataclass
class UpscaleCounters:
    """Progress through a run, saved in every snapshot."""

    step: int = 0
    nimg: int = 0


class UpscaleTrainer:
    """One upscaler training run: networks, optimisers, patches, degradations, the loop."""

    def __init__(self, cfg: UpscaleTrainConfig):
        self.cfg = cfg
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise NeuropaintError("gan.upscale train runs in one process; start it without "
                                  "torchrun.")
        check_option(cfg.preset, "preset", list_presets())
        overrides = {k: v for k, v in (("batch", cfg.batch), ("patch", cfg.patch),
                                       ("lr", cfg.lr)) if v is not None}
        self.preset = get_preset(cfg.preset, **overrides)
        self.degradation = get_degradation(cfg.degradation)
        self.dist: Dist = setup_distributed(cfg.device)
        self.device = self.dist.device
        self.run_dir = Path(cfg.out)
        torch.manual_seed(cfg.seed)
        self.data = PatchSource(cfg.data, patch=self.preset.patch, scale=cfg.scale,
                                val_fraction=cfg.val_fraction, seed=cfg.seed)
        p = self.preset
        self.net = build_upscaler_net(p, cfg.scale).to(self.device)
        self.net_ema = copy.deepcopy(self.net).eval().requires_grad_(False)
        self.D = PatchDiscriminator(channels=p.d_channels).to(self.device)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=p.lr, betas=p.betas)
        self.D_opt = torch.optim.Adam(self.D.parameters(), lr=p.d_lr, betas=p.betas)
        self.counters = UpscaleCounters()
        self.history: list[dict] = []
        # Held-out pairs, degraded once with their own fixed generator: the same every time.
        self.val_hr = self.data.validation_tiles(cfg.val_tiles)
        self.val_lr = (degrade(self.val_hr, cfg.scale, self.degradation,
                               torch.Generator().manual_seed(cfg.seed + 7919))
                       if len(self.val_hr) else self.val_hr)
        if cfg.resume:
            self.resume(cfg.resume)

    @property
    def l1_steps(self) -> float:
        """Steps of the L1 phase (infinite when only a time budget is given)."""
        return math.inf if self.cfg.steps is None else self.cfg.steps

    @property
    def total_steps(self) -> float:
        return self.l1_steps + self.cfg.adversarial_steps

    # ------------------------------------------------------------------ the steps
    def train_step(self) -> dict[str, float]:
        """One step: a degraded batch, L1 (and in phase two, RaGAN) for G, then D, then EMA."""
        cfg, c = self.cfg, self.counters
        hr = self.data.batch(self.preset.batch).to(self.device)
        lr = degrade(hr, cfg.scale, self.degradation, self.data.generator)
        adversarial = c.step >= self.l1_steps
        self.net.requires_grad_(True)
        self.D.requires_grad_(False)
        sr = self.net(lr)
        l1 = (sr - hr).abs().mean()
        stats = {"l1": float(l1.detach())}
        loss = l1
        if adversarial:
            _, loss_g = ragan_losses(self.D(hr), self.D(sr))
            loss = l1 + cfg.adversarial_weight * loss_g
            stats["loss_g"] = float(loss_g.detach())
        for group in self.opt.param_groups:
            group["lr"] = self.learning_rate(c.step)
        optimizer_step([(self.net, self.opt)], loss, self.dist, phase="upscaler")
        if adversarial:
            self.D.requires_grad_(True)
            loss_d, _ = ragan_losses(self.D(hr), self.D(sr.detach()))
            optimizer_step([(self.D, self.D_opt)], loss_d, self.dist, phase="discriminator")
            stats["loss_d"] = float(loss_d.detach())
        c.step += 1
        c.nimg += self.preset.batch
        self.update_ema()
        return stats

    def learning_rate(self, step: int) -> float:
        """The upscaler's learning rate at ``step`` (a function of the step: resumes exactly).

        ESRGAN trains its GAN phase at half the PSNR phase's rate; the L1 phase decays along a
        cosine to 5 % (one cycle of SGDR, Loshchilov & Hutter 2017), the usual way to let a long
        run settle. (In 600-step cpu-preset runs here it made no measurable difference.)
        """
        base = self.preset.lr
        if step >= self.l1_steps:
            return base / 2
        if self.cfg.lr_schedule == "constant" or math.isinf(self.l1_steps):
            return base
        return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / self.l1_steps)))

    @torch.no_grad()
    def update_ema(self) -> None:
        """EMA of the upscaler, its decay ramped up as ``(1 + step) / (10 + step)``."""
        step = self.counters.step
        beta = min(self.preset.ema_decay, (1 + step) / (10 + step))
        for p_ema, p in zip(self.net_ema.parameters(), self.net.parameters(), strict=True):
            p_ema.copy_(p.detach().lerp(p_ema, beta))

    @torch.inference_mode()
    def validate(self) -> dict[str, float]:
        """PSNR/SSIM of the EMA upscaler, bicubic and nearest on the held-out tiles."""
        if not len(self.val_hr):
            return {}
        result = compare(lambda x: self.net_ema(x.to(self.device)), self.val_lr, self.val_hr,
                         self.cfg.scale)
        return {k: round(v, 4) for k, v in result.items()}

    # ------------------------------------------------------------------ the loop
    def train(self, progress: bool = False) -> Path | None:
        """Run to ``steps + adversarial_steps`` (or ``max_minutes``); return the last snapshot."""
        cfg = self.cfg
        bar = None
        if progress:
            from tqdm import tqdm

            total = None if math.isinf(self.total_steps) else int(self.total_steps)
            bar = tqdm(total=total, initial=self.counters.step, unit="step", dynamic_ncols=True)
        loop = TickLoop(position=lambda: self.counters.step, total=self.total_steps,
                        tick_every=cfg.tick_every, snapshot_every=cfg.snapshot_every,
                        max_minutes=cfg.max_minutes, minutes_option="--minutes",
                        tick_also=lambda step: step % cfg.val_every == 0 and len(self.val_hr) > 0)
        return loop.run(self, bar).snapshot

    def postfix(self, line: dict) -> str:
        text = f"L1 {line.get('l1', float('nan')):.4f}"
        if "loss_d" in line:
            text += f" G {line['loss_g']:.2f} D {line['loss_d']:.2f}"
        if "psnr_model" in line:
            text += f" val PSNR {line['psnr_model']:.2f} (bicubic {line['psnr_bicubic']:.2f})"
        return text

    def tick_line(self, tick: Tick) -> dict:
        """Average the tick's losses, validate when due, append the line to stats.jsonl."""
        c = self.counters
        val = self.validate() if (c.step % self.cfg.val_every == 0 or tick.end) else {}
        line: dict[str, Any] = tick.mean()
        line.update({"step": c.step, "nimg": c.nimg,
                     "phase": "adversarial" if c.step > self.l1_steps else "l1",
                     "sec_per_step": tick.sec_per_step(), **val,
                     "time": time.time()})
        self.history.append(line)
        append_json_line(self.run_dir / "stats.jsonl", line)
        return line

    # ------------------------------------------------------------------ snapshots
    def training_state(self) -> dict:
        return {
            "step": self.counters.step,
            "nimg": self.counters.nimg,
            "opt": self.opt.state_dict(),
            "D_opt": self.D_opt.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "data_rng": self.data.generator.get_state(),
            "cuda_rng": (torch.cuda.get_rng_state(self.device)
                         if self.device.type == "cuda" else torch.zeros(0, dtype=torch.uint8)),
        }

    def snapshot(self) -> Path:
        """Write a snapshot with a preview; mark it latest; drop the oldest beyond the limit."""
        c = self.counters
        folder = self.run_dir / "snapshots" / f"{c.step:09d}"
        last_val = next((h for h in reversed(self.history) if "psnr_model" in h), None)
        config = {
            "model": MODEL_KIND,
            "scale": self.cfg.scale,
            "denoise": self.cfg.denoise,
            "preset": self.preset.model_dump(mode="json"),
            "degradation": self.degradation.model_dump(mode="json"),
            "train_config": self.cfg.model_dump(mode="json"),
            "split": {"train_tiles": len(self.data.train_idx),
                      "val_tiles": len(self.data.val_idx),
                      "train_sources": self.data.n_sources[0],
                      "val_sources": self.data.n_sources[1]},
            "stats": {"step": c.step, "nimg": c.nimg, "validation": last_val},
        }
        networks = {NETWORK_NAMES["net"]: self.net, NETWORK_NAMES["ema"]: self.net_ema,
                    NETWORK_NAMES["D"]: self.D}
        save_snapshot(folder, networks, config, self.training_state())
        if len(self.val_hr):
            self.write_preview(folder / "preview.png")
        mark_latest(self.run_dir, folder)
        snapshots = sorted(p for p in (self.run_dir / "snapshots").iterdir()
                           if p.is_dir() and not p.name.endswith(".partial"))
        for old in snapshots[: -self.cfg.keep_snapshots]:
            shutil.rmtree(old, ignore_errors=True)
        logger.info("snapshot %s", folder)
        return folder

    @torch.inference_mode()
    def write_preview(self, path: Path, count: int = 4) -> Path:
        """Rows of nearest | bicubic | upscaled (EMA) | original for held-out tiles."""
        lr, hr = self.val_lr[:count], self.val_hr[:count]
        sr = self.net_ema(lr.to(self.device)).clamp(-1, 1).cpu()
        s = self.cfg.scale
        columns = [nearest_upscale(lr, s), bicubic_upscale(lr, s), sr, hr]
        images = np.stack([to_uint8(col[i : i + 1])[0] for i in range(len(lr))
                           for col in columns])
        with atomic_path(path) as tmp:
            Image.fromarray(image_grid(images, cols=4)).save(tmp, format="PNG")
        return path

    def resume(self, source: str) -> None:
        """Restore networks, optimisers, counters, RNG and patch stream from a snapshot."""
        if source == "auto":
            if not has_snapshot(self.run_dir):
                logger.info("nothing to resume in %s: starting afresh", self.run_dir)
                return
            source = str(self.run_dir)
        folder = resolve_snapshot(source)
        config = read_config(folder)
        if config.get("model") != MODEL_KIND:
            raise NeuropaintError(f"{folder} is not an upscaler snapshot; cannot resume from it.")
        for key, net in (("net", self.net), ("ema", self.net_ema), ("D", self.D)):
            loaded = load_network(folder, NETWORK_NAMES[key])
            if type(loaded) is not type(net) or loaded.init_kwargs != net.init_kwargs:
                raise NeuropaintError(f"{folder} holds a different {NETWORK_NAMES[key]} than "
                                      f"preset {self.preset.name!r} at x{self.cfg.scale} "
                                      f"builds; resume with the settings it was trained with.")
            net.load_state_dict(loaded.state_dict())
        state = load_state(folder)
        self.opt.load_state_dict(state["opt"])
        self.D_opt.load_state_dict(state["D_opt"])
        self.counters = UpscaleCounters(step=int(state["step"]), nimg=int(state["nimg"]))
        torch.set_rng_state(state["torch_rng"])
        self.data.generator.set_state(state["data_rng"])
        if self.device.type == "cuda" and state["cuda_rng"].numel():
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.trim_stats(self.counters.step)
        logger.info("resumed from %s at step %d", folder, self.counters.step)

    def trim_stats(self, step: int) -> None:
        """Drop stats lines written after the snapshot we resume from: the curve continues."""
        self.history = trim_log(self.run_dir / "stats.jsonl", "step", step, f"step {step}")
