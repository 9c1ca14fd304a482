"""``python -m gan.train``: train a StyleGAN2-ADA (or the seeds' DCGAN) on a tile store.

The loop reads top to bottom as small functions: build the networks, one generator step,
one discriminator step, the lazy regularisers, the EMA, the ADA update, a snapshot. It
follows StyleGAN2-ADA (Karras et al. 2020): Adam with lazy-regularisation-corrected
hyper-parameters, R1 every 16 steps, path length every 4, generator EMA with a half-life in
kimg, and the augmentation probability adapted every 4 steps from sign(D(real)).

Everything a resumed run needs lives in each snapshot: the networks, the optimisers, the step
and image counters, the augmentation state, the running path-length mean, the RNG and the
data order. ``--resume auto`` continues from the run's latest snapshot, and the curve goes on
exactly as if the run had never stopped. Snapshots are written atomically, so ``kill -9`` at
any moment loses at most the work since the last one.

Several processes (``torchrun --nproc_per_node N -m gan.train ...``) split each batch; their
gradients are averaged with ``torch.distributed.all_reduce`` (gloo on CPU, NCCL on GPUs), so
every process holds the same weights after every step.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from gan.augment import AdaController, AugmentPipe
from gan.checkpoint import load_network, load_state, mark_latest, resolve_snapshot, save_snapshot
from gan.loss import StyleGAN2Loss
from gan.presets import Preset, get_preset
from neuropaint.atomic import atomic_path, write_text
from neuropaint.logs import run_cli, setup_logging
from neuropaint.validate import NeuropaintError, build_config

logger = logging.getLogger(__name__)


class TrainConfig(BaseModel):
    """Everything ``gan.train`` is told; saved in every snapshot."""

    model_config = ConfigDict(extra="forbid")

    data: str = Field(description="Tile store to train on (datasets.art build).")
    out: str = Field(description="Run folder: snapshots, stats.jsonl, pictures.")
    preset: str = Field("tiny", description="Preset name (gan.presets.list_presets()).")
    kimg: float = Field(10.0, gt=0, description="Train until this many thousand real images "
                        "have been shown.")
    batch: int | None = Field(None, ge=1, description="Total batch (None: the preset's).")
    gamma: float | None = Field(None, ge=0, description="R1 weight (None: the preset's).")
    aug: Literal["ada", "fixed", "none"] = Field("ada", description="Augmentation mode.")
    aug_p: float = Field(0.0, ge=0, le=1, description="Initial (ada) or fixed augmentation "
                         "probability.")
    aug_target: float = Field(0.6, gt=0, lt=1, description="ADA target for r_t.")
    ada_kimg: float = Field(500.0, gt=0, description="kimg for p to go from 0 to 1.")
    augpipe: str = Field("bgc", description="Augmentation preset (AugmentPipe.from_preset).")
    xflip: bool = Field(False, description="Also train on mirrored tiles.")
    snapshot_kimg: float = Field(4.0, gt=0, description="kimg between snapshots.")
    tick_kimg: float = Field(0.1, gt=0, description="kimg between stats lines.")
    seed: int = Field(0, ge=0, description="Random seed.")
    resume: str | None = Field(None, description="'auto' (the run's latest snapshot) or a "
                               "snapshot path.")
    device: str = Field("auto", description="'auto', 'cpu', 'cuda' or 'cuda:N'.")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="bf16 autocast on CUDA.")
    compile: bool = Field(False, description="torch.compile the networks (CUDA).")
    max_minutes: float | None = Field(None, gt=0, description="Stop (with a snapshot) after "
                                      "this many minutes.")
    collapse_steps: int = Field(300, ge=1, description="Steps with D loss below 1e-3 after "
                                "which a discriminator collapse is reported.")
    grid_size: int = Field(16, ge=1, le=64, description="Images in each snapshot's grid.")
    metrics: bool = Field(False, description="Compute SWD against the tiles at each snapshot "
                          "(metrics.jsonl).")
    metric_images: int = Field(1024, ge=64, description="Images per side for snapshot SWD.")


class TrainingDiverged(NeuropaintError):
    """A loss became NaN or infinite; the last good snapshot is kept."""


@dataclass
class Dist:
    """This process's place in a distributed run (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str) -> Dist:
    """Join the process group torchrun set up, if any; pick the device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local_rank)
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend=backend)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    return Dist(rank=rank, world=world, device=dev)


def build_networks(preset: Preset, *, c_dim: int = 0, batch_per_process: int = 8
                   ) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The generator and discriminator a preset describes."""
    if preset.arch == "dcgan":
        from gan.dcgan import DCGANDiscriminator, DCGANGenerator

        G = DCGANGenerator(z_dim=preset.z_dim, img_resolution=preset.resolution, img_channels=3,
                           base_channels=preset.channel_max,
                           batch_norm=preset.dcgan_batch_norm_g, c_dim=c_dim)
        D = DCGANDiscriminator(img_resolution=preset.resolution, img_channels=3,
                               batch_norm=preset.dcgan_batch_norm_d, c_dim=c_dim)
        return G, D
    from gan.networks import Discriminator, Generator

    G = Generator(z_dim=preset.z_dim, c_dim=c_dim, w_dim=preset.w_dim,
                  img_resolution=preset.resolution, img_channels=3,
                  mapping_kwargs={"num_layers": preset.mapping_layers},
                  synthesis_kwargs={"channel_base": preset.channel_base,
                                    "channel_max": preset.channel_max})
    D = Discriminator(c_dim=c_dim, img_resolution=preset.resolution, img_channels=3,
                      channel_base=preset.d_channel_base or preset.channel_base,
                      channel_max=preset.d_channel_max or preset.channel_max,
                      mbstd_group_size=min(preset.mbstd_group, batch_per_process))
    return G, D


def make_optimizer(net: torch.nn.Module, lr: float, betas: tuple[float, float],
                   reg_interval: int | None) -> torch.optim.Optimizer:
    """Adam, with lr and betas corrected for lazy regularisation (StyleGAN2 appendix B)."""
    if reg_interval:
        ratio = reg_interval / (reg_interval + 1)
        lr = lr * ratio
        betas = (betas[0] ** ratio, betas[1] ** ratio)
    return torch.optim.Adam(net.parameters(), lr=lr, betas=betas, eps=1e-8)


class TileSource:
    """Random real batches from a tile store, resized to the training resolution."""

    def __init__(self, store: str, resolution: int, *, xflip: bool, seed: int):
        from datasets.art import ArtTiles

        self.tiles = ArtTiles(store, xflip=xflip)
        size = self.tiles.img_resolution
        if size < resolution or size % resolution:
            raise NeuropaintError(
                f"the store's tiles are {size} px and the preset trains at {resolution} px: "
                f"build a store with --size {resolution} (or a multiple of it) or pick a "
                f"preset of at most {size} px.")
        self.factor = size // resolution
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.tiles)

    def batch(self, n: int) -> torch.Tensor:
        return self.sample_batch(n, self.generator)

    def sample_batch(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Random tiles [n, 3, R, R] in [-1, 1] at the training resolution."""
        images = self.tiles.sample_batch(n, generator)  # [n, 3, S, S] in [-1, 1]
        if self.factor > 1:
            images = F.avg_pool2d(images, self.factor)  # box filter: exact for 2^k factors
        return images

    @property
    def img_resolution(self) -> int:
        return self.tiles.img_resolution // self.factor


def sync_gradients(net: torch.nn.Module, dist: Dist) -> None:
    """Average the gradients of all processes (one all_reduce of one flat buffer)."""
    if dist.world == 1:
        return
    params = [p for p in net.parameters() if p.grad is not None]
    if not params:
        return
    flat = torch.cat([p.grad.flatten() for p in params])
    torch.distributed.all_reduce(flat)
    flat /= dist.world
    torch.nan_to_num_(flat, nan=0.0, posinf=1e5, neginf=-1e5)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
        offset += n


def broadcast_weights(nets: Sequence[torch.nn.Module], dist: Dist) -> None:
    """Make every process start from rank 0's weights and buffers."""
    if dist.world == 1:
        return
    for net in nets:
        for tensor in list(net.parameters()) + list(net.buffers()):
            torch.distributed.broadcast(tensor.data, src=0)


def optimizer_step(net, opt, loss, dist: Dist, *, phase: str) -> None:
    """Backward, gradient sync, step — stopping on a non-finite loss."""
    if not torch.isfinite(loss):
        raise TrainingDiverged(f"the {phase} loss became {loss.item()}; training stopped and "
                               f"the last good snapshot is kept (lower the learning rate or "
                               f"raise --gamma).")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    sync_gradients(net, dist)
    opt.step()


@torch.no_grad()
def update_ema(G_ema: torch.nn.Module, G: torch.nn.Module, preset: Preset, batch: int,
               nimg: int) -> None:
    """G_ema <- beta G_ema + (1 - beta) G, beta from the half-life in images (with ramp-up)."""
    ema_nimg = preset.ema_kimg * 1000
    if preset.ema_rampup is not None:
        ema_nimg = min(ema_nimg, nimg * preset.ema_rampup)
    beta = 0.5 ** (batch / max(ema_nimg, 1e-8)) if ema_nimg > 0 else 0.0
    for p_ema, p in zip(G_ema.parameters(), G.parameters(), strict=True):
        p_ema.copy_(p.detach().lerp(p_ema, beta))
    for b_ema, b in zip(G_ema.buffers(), G.buffers(), strict=True):
        b_ema.copy_(b)


@dataclass
class Counters:
    """Progress through the run, saved in every snapshot."""

    step: int = 0
    nimg: int = 0
    collapse_run: int = 0
    collapse_reported: bool = False


class Trainer:
    """One training run: networks, optimisers, data, loss, and the loop over steps."""

    def __init__(self, cfg: TrainConfig, dist: Dist | None = None):
        self.cfg = cfg
        self.dist = dist or setup_distributed(cfg.device)
        overrides = {}
        if cfg.batch is not None:
            overrides["batch"] = cfg.batch
        if cfg.gamma is not None:
            overrides["r1_gamma"] = cfg.gamma
        self.preset = get_preset(cfg.preset, **overrides)
        if self.preset.batch % self.dist.world:
            raise NeuropaintError(f"batch {self.preset.batch} does not split over "
                                  f"{self.dist.world} processes.")
        self.batch_per_process = self.preset.batch // self.dist.world
        self.run_dir = Path(cfg.out)
        self.device = self.dist.device
        torch.manual_seed(cfg.seed)
        self.data = TileSource(cfg.data, self.preset.resolution, xflip=cfg.xflip,
                               seed=cfg.seed * 1000 + self.dist.rank)
        self.G, self.D = build_networks(self.preset, batch_per_process=self.batch_per_process)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.augment_pipe = None
        if cfg.aug != "none":
            self.augment_pipe = AugmentPipe.from_preset(cfg.augpipe)
        self.ada = None
        if self.augment_pipe is not None:
            self.ada = AdaController(self.augment_pipe, target=cfg.aug_target,
                                     interval=4, ada_kimg=cfg.ada_kimg,
                                     batch_size=self.preset.batch, mode=cfg.aug, p=cfg.aug_p)
        for net in (self.G, self.D, self.G_ema):
            net.to(self.device)
        if self.augment_pipe is not None:
            self.augment_pipe.to(self.device)
        self.loss = StyleGAN2Loss(self.G, self.D, augment_pipe=self.augment_pipe,
                                  r1_gamma=self.preset.gamma,
                                  style_mixing=self.preset.style_mixing,
                                  pl_weight=self.preset.pl_weight,
                                  pl_batch_shrink=self.preset.pl_batch_shrink)
        self.G_opt = make_optimizer(self.G, self.preset.g_lr, self.preset.betas,
                                    self.preset.pl_interval if self.loss.pl_weight else None)
        self.D_opt = make_optimizer(self.D, self.preset.d_lr, self.preset.betas,
                                    self.preset.r1_interval if self.preset.gamma else None)
        self.counters = Counters()
        self.grid_z = torch.randn([cfg.grid_size, self.G.z_dim],
                                  generator=torch.Generator().manual_seed(123))
        self.history: list[dict] = []
        if cfg.resume:
            self.resume(cfg.resume)
        broadcast_weights([self.G, self.D, self.G_ema], self.dist)
        if cfg.compile and hasattr(self.G, "synthesis"):
            # The synthesis network is where the time goes; the DCGAN has none and stays eager.
            self.G.synthesis = torch.compile(self.G.synthesis)

    # ------------------------------------------------------------------ the steps
    def sample_z(self, n: int) -> torch.Tensor:
        return torch.randn([n, self.G.z_dim], device=self.device)

    def autocast(self):
        enabled = self.cfg.precision == "bf16" and self.device.type == "cuda"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def g_step(self, stats: dict) -> None:
        self.G.requires_grad_(True)
        self.D.requires_grad_(False)
        with self.autocast():
            loss, s = self.loss.g_main(self.sample_z(self.batch_per_process), None)
        optimizer_step(self.G, self.G_opt, loss, self.dist, phase="generator")
        stats.update(s)

    def g_regularise(self, stats: dict) -> None:
        if not self.loss.pl_weight or self.counters.step % self.preset.pl_interval:
            return
        self.G.requires_grad_(True)
        self.D.requires_grad_(False)
        loss, s = self.loss.g_path_length(self.sample_z(self.batch_per_process), None,
                                          gain=self.preset.pl_interval)
        optimizer_step(self.G, self.G_opt, loss, self.dist, phase="path-length")
        stats.update(s)

    def d_step(self, real: torch.Tensor, stats: dict) -> None:
        self.G.requires_grad_(False)
        self.D.requires_grad_(True)
        with self.autocast():
            loss, s, real_logits = self.loss.d_main(real, self.sample_z(len(real)), None)
        optimizer_step(self.D, self.D_opt, loss, self.dist, phase="discriminator")
        if self.ada is not None:
            self.ada.accumulate(real_logits)
        stats.update(s)
        self.watch_collapse(float(s["loss_d"]))

    def d_regularise(self, real: torch.Tensor, stats: dict) -> None:
        if not self.preset.gamma or self.counters.step % self.preset.r1_interval:
            return
        self.G.requires_grad_(False)
        self.D.requires_grad_(True)
        loss, s = self.loss.d_r1(real, None, gain=self.preset.r1_interval)
        optimizer_step(self.D, self.D_opt, loss, self.dist, phase="R1")
        stats.update(s)

    def watch_collapse(self, loss_d: float) -> None:
        """Report a discriminator that wins outright for many steps (the seeds' BN model)."""
        c = self.counters
        c.collapse_run = c.collapse_run + 1 if loss_d < 1e-3 else 0
        if c.collapse_run >= self.cfg.collapse_steps and not c.collapse_reported:
            c.collapse_reported = True
            logger.warning("discriminator collapse: D loss below 1e-3 for %d steps at kimg "
                           "%.2f; the generator no longer learns (try --aug ada, a larger "
                           "--gamma, or no batch norm in D)", c.collapse_run, c.nimg / 1000)

    def train_step(self) -> dict:
        """One full step: G, G reg, D, D reg, EMA, ADA."""
        stats: dict = {}
        real = self.data.batch(self.batch_per_process).to(self.device)
        self.g_step(stats)
        self.g_regularise(stats)
        self.d_step(real, stats)
        self.d_regularise(real, stats)
        self.counters.nimg += self.preset.batch
        self.counters.step += 1
        update_ema(self.G_ema, self.G, self.preset, self.preset.batch, self.counters.nimg)
        if self.ada is not None:
            self.ada.step(self.dist)
        return {k: float(v) for k, v in stats.items()}

    # ------------------------------------------------------------------ the loop
    def train(self, progress: bool = False) -> Path | None:
        """Run until ``kimg`` (or ``max_minutes``); return the last snapshot folder."""
        cfg, c = self.cfg, self.counters
        total = int(cfg.kimg * 1000)
        started = time.monotonic()
        tick_start, tick_nimg = time.monotonic(), c.nimg
        next_tick = (c.nimg // int(cfg.tick_kimg * 1000) + 1) * int(cfg.tick_kimg * 1000)
        snap_every = max(1, int(cfg.snapshot_kimg * 1000))
        next_snapshot = (c.nimg // snap_every + 1) * snap_every
        bar = None
        if progress and self.dist.main:
            from tqdm import tqdm

            bar = tqdm(total=total / 1000, initial=c.nimg / 1000, unit="kimg",
                       bar_format="{l_bar}{bar}| {n:.2f}/{total:.1f} kimg [{elapsed}<"
                       "{remaining}] {postfix}")
        last_snapshot = None
        tick_losses: list[dict] = []
        try:
            while c.nimg < total:
                stats = self.train_step()
                tick_losses.append(stats)
                if bar is not None:
                    bar.update(self.preset.batch / 1000)
                timed_out = (cfg.max_minutes is not None
                             and time.monotonic() - started > cfg.max_minutes * 60)
                if c.nimg >= next_tick or c.nimg >= total or timed_out:
                    line = self.tick_line(tick_losses, tick_start, tick_nimg)
                    tick_losses, tick_start, tick_nimg = [], time.monotonic(), c.nimg
                    next_tick += int(cfg.tick_kimg * 1000)
                    if bar is not None:
                        bar.set_postfix_str(
                            f"{line['kimg_per_s']:.3f} kimg/s G {line.get('loss_g', 0):.2f} "
                            f"D {line.get('loss_d', 0):.2f} p {line['aug_p']:.3f} "
                            f"rt {line['ada_rt'] if line['ada_rt'] is not None else '-'}")
                if c.nimg >= next_snapshot or c.nimg >= total or timed_out:
                    last_snapshot = self.snapshot()
                    next_snapshot += snap_every
                if timed_out:
                    logger.info("stopping after %.1f minutes (--max-minutes)", cfg.max_minutes)
                    break
        finally:
            if bar is not None:
                bar.close()
        return last_snapshot

    def tick_line(self, losses: list[dict], tick_start: float, tick_nimg: int) -> dict:
        """Average the tick's stats, append them to stats.jsonl (rank 0)."""
        c = self.counters
        keys = sorted({k for s in losses for k in s})
        line = {k: float(np.mean([s[k] for s in losses if k in s])) for k in keys}
        seconds = max(time.monotonic() - tick_start, 1e-9)
        line.update({
            "kimg": c.nimg / 1000,
            "step": c.step,
            "kimg_per_s": (c.nimg - tick_nimg) / 1000 / seconds,
            "sec_per_step": seconds / max(len(losses), 1),
            "aug_p": self.ada.p if self.ada is not None else 0.0,
            "ada_rt": None if self.ada is None or self.ada.rt is None else round(self.ada.rt, 4),
            "d_collapse": c.collapse_reported,
            "time": time.time(),
        })
        self.history.append(line)
        if self.dist.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            with open(self.run_dir / "stats.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(line) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        return line

    # ------------------------------------------------------------------ snapshots
    def training_state(self) -> dict:
        c = self.counters
        return {
            "step": c.step,
            "nimg": c.nimg,
            "collapse_run": c.collapse_run,
            "collapse_reported": c.collapse_reported,
            "G_opt": self.G_opt.state_dict(),
            "D_opt": self.D_opt.state_dict(),
            "ada": self.ada.state_dict() if self.ada is not None else {},
            "pl_mean": self.loss.pl_mean.detach().cpu(),
            "torch_rng": torch.get_rng_state(),
            "data_rng": self.data.generator.get_state(),
            "cuda_rng": (torch.cuda.get_rng_state(self.device)
                         if self.device.type == "cuda" else torch.zeros(0, dtype=torch.uint8)),
        }

    def snapshot(self) -> Path | None:
        """Write a snapshot (rank 0), its sample grid and the loss plot; mark it latest."""
        if not self.dist.main:
            return None
        c = self.counters
        folder = self.run_dir / "snapshots" / f"{c.nimg:012d}"
        config = {
            "arch": self.preset.arch,
            "preset": self.preset.model_dump(mode="json"),
            "train_config": self.cfg.model_dump(mode="json"),
            "stats": {"kimg": c.nimg / 1000, "step": c.step,
                      "aug_p": self.ada.p if self.ada is not None else 0.0,
                      "last": self.history[-1] if self.history else None},
            "img_resolution": self.preset.resolution,
            "num_ws": getattr(self.G, "num_ws", None),
        }
        save_snapshot(folder, {"G": self.G, "D": self.D, "G_ema": self.G_ema}, config,
                      self.training_state())
        write_grid(self.G_ema, self.grid_z.to(self.device), folder / "grid.png")
        if self.cfg.metrics:
            self.snapshot_metrics(folder)
        mark_latest(self.run_dir, folder)
        plot_history(self.history_from_disk(), self.run_dir / "training.png")
        logger.info("snapshot %s", folder)
        return folder

    def snapshot_metrics(self, folder: Path) -> dict:
        """SWD of the EMA generator against the tiles, appended to metrics.jsonl."""
        from gan.metrics import evaluate

        result = evaluate(self.G_ema, self.data, num_images=self.cfg.metric_images,
                          seed=self.cfg.seed)
        line = {"kimg": self.counters.nimg / 1000, "snapshot": folder.name,
                "swd": result["swd"], "swd_levels": result["swd_levels"]}
        with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")
        logger.info("kimg %.2f: SWD %.2f", line["kimg"], line["swd"])
        return line

    def history_from_disk(self) -> list[dict]:
        path = self.run_dir / "stats.jsonl"
        if not path.exists():
            return self.history
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def resume(self, source: str) -> None:
        """Restore networks, optimisers, counters, augmentation, RNG and data order."""
        if source == "auto":
            if not (self.run_dir / "latest").exists() and not (self.run_dir / "snapshots"
                                                                ).exists():
                logger.info("nothing to resume in %s: starting afresh", self.run_dir)
                return
            source = str(self.run_dir)
        folder = resolve_snapshot(source)
        for name, net in (("G", self.G), ("D", self.D), ("G_ema", self.G_ema)):
            loaded = load_network(folder, name)
            if type(loaded) is not type(net) or loaded.init_kwargs != net.init_kwargs:
                raise NeuropaintError(f"{folder} holds a different {name} than preset "
                                      f"{self.preset.name!r} builds; resume with the preset it "
                                      f"was trained with.")
            net.load_state_dict(loaded.state_dict())
        state = load_state(folder)
        self.G_opt.load_state_dict(state["G_opt"])
        self.D_opt.load_state_dict(state["D_opt"])
        if self.ada is not None and state["ada"]:
            self.ada.load_state_dict(state["ada"])
        self.loss.pl_mean = state["pl_mean"].to(self.device)
        self.counters = Counters(step=int(state["step"]), nimg=int(state["nimg"]),
                                 collapse_run=int(state["collapse_run"]),
                                 collapse_reported=bool(state["collapse_reported"]))
        torch.set_rng_state(state["torch_rng"])
        self.data.generator.set_state(state["data_rng"])
        if self.device.type == "cuda" and state["cuda_rng"].numel():
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        if self.dist.world > 1:
            # Each process continues its own random stream from the shared state.
            torch.manual_seed(self.cfg.seed * 1000 + self.dist.rank + self.counters.step)
        self.trim_stats(self.counters.nimg)
        logger.info("resumed from %s at kimg %.2f", folder, self.counters.nimg / 1000)

    def trim_stats(self, nimg: int) -> None:
        """Drop stats lines written after the snapshot we resume from: the curve continues."""
        path = self.run_dir / "stats.jsonl"
        if not path.exists() or not self.dist.main:
            return
        kept = [line for line in path.read_text().splitlines()
                if line.strip() and json.loads(line)["kimg"] <= nimg / 1000 + 1e-9]
        write_text(path, "".join(line + "\n" for line in kept))
        self.history = [json.loads(line) for line in kept]


@torch.no_grad()
def generate_images(G: torch.nn.Module, z: torch.Tensor, *, truncation_psi: float = 1.0,
                    noise_mode: str = "const", batch: int = 16) -> np.ndarray:
    """uint8 images [N, H, W, 3] for latents ``z``."""
    out = []
    for start in range(0, len(z), batch):
        img = G(z[start : start + batch], None, truncation_psi=truncation_psi,
                noise_mode=noise_mode)
        out.append(to_uint8(img))
    return np.concatenate(out)


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """Network images [N, 3, H, W] in [-1, 1] -> uint8 [N, H, W, 3]."""
    img = (img.float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    return img.permute(0, 2, 3, 1).cpu().numpy()


def image_grid(images: np.ndarray, cols: int | None = None) -> np.ndarray:
    """Tile uint8 images [N, H, W, 3] into one picture."""
    n, h, w, _ = images.shape
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.zeros((rows * h, cols * w, 3), dtype=np.uint8)
    for i, img in enumerate(images):
        r, col = divmod(i, cols)
        grid[r * h : (r + 1) * h, col * w : (col + 1) * w] = img
    return grid


def write_grid(G: torch.nn.Module, z: torch.Tensor, path: Path) -> Path:
    from PIL import Image

    grid = image_grid(generate_images(G, z))
    with atomic_path(path) as tmp:
        Image.fromarray(grid).save(tmp, format="PNG")
    return path


def plot_history(history: list[dict], path: Path) -> Path | None:
    """Losses and augmentation strength against kimg."""
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    kimg = [h["kimg"] for h in history]
    fig = Figure(figsize=(10, 4))
    ax_loss, ax_aug = fig.subplots(1, 2)
    for key in ("loss_g", "loss_d", "r1_penalty", "pl_penalty"):
        values = [h.get(key, np.nan) for h in history]
        if not all(np.isnan(v) for v in values):
            ax_loss.plot(kimg, values, label=key)
    ax_loss.set(xlabel="kimg", title="losses")
    ax_loss.legend()
    ax_aug.plot(kimg, [h.get("aug_p", 0) for h in history], label="p")
    ax_aug.plot(kimg, [h.get("ada_rt") if h.get("ada_rt") is not None else np.nan
                       for h in history], label="r_t")
    ax_aug.set(xlabel="kimg", title="augmentation", ylim=(-0.05, 1.05))
    ax_aug.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gan.train",
        description="Train a StyleGAN2-ADA (or the seeds' DCGAN) on a tile store.",
    )
    parser.add_argument("--data", required=True, help="tile store (python -m datasets.art "
                        "build)")
    parser.add_argument("--out", required=True, help="run folder")
    parser.add_argument("--preset", default="tiny", help="preset name (see --list-presets)")
    parser.add_argument("--arch", choices=["stylegan2", "dcgan"],
                        help="network family: dcgan picks the matching dcgan preset")
    parser.add_argument("--kimg", type=float, default=10.0, help="thousands of real images")
    parser.add_argument("--batch", type=int, help="total batch size")
    parser.add_argument("--gamma", type=float, help="R1 weight")
    parser.add_argument("--aug", nargs="+", default=["ada"], metavar="MODE",
                        help="'ada' (default), 'fixed P', or 'none'")
    parser.add_argument("--target", type=float, default=0.6, help="ADA target for r_t")
    parser.add_argument("--xflip", action="store_true", help="also use mirrored tiles")
    parser.add_argument("--snap", type=float, default=4.0, help="kimg between snapshots")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", help="'auto' or a snapshot folder")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--max-minutes", type=float, help="stop after this long")
    parser.add_argument("--metrics", action="store_true",
                        help="compute SWD against the tiles at each snapshot")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    setup_logging("INFO" if not args.quiet else "WARNING")

    aug_mode, aug_p = args.aug[0], 0.0
    if aug_mode == "fixed":
        if len(args.aug) != 2:
            raise NeuropaintError("'--aug fixed' needs a probability, e.g. --aug fixed 0.3.")
        aug_p = float(args.aug[1])
    elif aug_mode not in ("ada", "none") or len(args.aug) != 1:
        raise NeuropaintError(f"'--aug' must be 'ada', 'fixed P' or 'none', got "
                              f"{' '.join(args.aug)!r}.")
    preset = args.preset
    if args.arch == "dcgan" and not preset.startswith("dcgan"):
        preset = "dcgan64"
    cfg = build_config(TrainConfig, data=args.data, out=args.out, preset=preset,
                       kimg=args.kimg, batch=args.batch, gamma=args.gamma, aug=aug_mode,
                       aug_p=aug_p, aug_target=args.target, xflip=args.xflip,
                       snapshot_kimg=args.snap, seed=args.seed, resume=args.resume,
                       device=args.device, precision=args.precision, compile=args.compile,
                       max_minutes=args.max_minutes, metrics=args.metrics)
    trainer = Trainer(cfg)
    snapshot = trainer.train(progress=not args.quiet)
    if trainer.dist.main and snapshot is not None:
        print(f"done: {trainer.counters.nimg / 1000:.2f} kimg; latest snapshot {snapshot}")
    if trainer.dist.world > 1:
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
