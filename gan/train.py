"""``python -m gan.train``: train a StyleGAN2-ADA (or the seeds' DCGAN) on a tile store.

The loop reads top to bottom as small functions: build the networks, one generator step,
one discriminator step, the lazy regularisers, the EMA, the ADA update, a snapshot (the
tick/snapshot loop around them is :mod:`gan.loop`, the processes and the optimiser step are
:mod:`gan.distributed`; ``gan.upscale train`` shares both). It follows StyleGAN2-ADA (Karras
et al. 2020): Adam with lazy-regularisation-corrected hyper-parameters, R1 every 16 steps,
path length every 4, generator EMA with a half-life in kimg, and the augmentation probability
adapted every 4 steps from sign(D(real)). The CPU presets make the step cheaper
(``gan.presets.CPU_STEP``): a lighter discriminator, path length every 8 steps, and a
discriminator step that judges the images the generator step just drew instead of drawing
new ones (``Preset.reuse_fakes``), as DCGAN-era loops did.

Everything a resumed run needs lives in each snapshot: the networks, the optimisers, the step
and image counters, the augmentation state, the running path-length mean, the RNG and the
data order. ``--resume auto`` continues from the run's latest snapshot, and the curve goes on
exactly as if the run had never stopped (stats lines written after the resumed snapshot are
dropped, so the curve does not loop back). Snapshots are written atomically, so ``kill -9`` at
any moment loses at most the work since the last one; that is at most ``--snap`` kimg or
``--snap-minutes`` of wall-clock time (10 by default), whichever comes first. Ctrl-C (SIGINT)
or SIGTERM finishes the current step and writes a snapshot before exiting; a second Ctrl-C
quits at once without one.

``--init SNAPSHOT`` starts a new run from a snapshot's weights (G, D and G_ema) with fresh
optimisers, counters, augmentation and data: fine-tuning a generator on an artist's small
collection, or the common base that layer-swap blending (Pinkney & Adler 2020) needs. When
``--resume auto`` finds something to resume, it wins over ``--init``, so the same command
both starts and continues a fine-tuning run.

Several processes (``torchrun --nproc_per_node N -m gan.train ...``) split each batch; their
gradients are averaged with ``torch.distributed.all_reduce`` (gloo on CPU, NCCL on GPUs), so
every process holds the same weights after every step.

Extension points
----------------
Other ways of training a generator run in this one loop, through a
:class:`gan.extensions.Extension` passed to :class:`Trainer` (``Trainer(cfg,
extensions=[...])``). An extension may

- supply the latents of each batch (:meth:`Extension.latents`): ready-made ``ws`` for a share
  of the batch and Gaussian ``z`` for the rest (:class:`gan.loss.Latents`);
- add trainable modules with their own optimisers (:meth:`Trainer.add_trainable`): an EEG
  encoder updated with the generator, an auxiliary head on D's features updated in both
  phases; their weights and optimiser state are saved in every snapshot's resume state;
- add loss terms to the generator and discriminator phases (:meth:`Extension.g_loss`,
  :meth:`Extension.d_loss`), computed from the phase's :class:`gan.loss.FakeBatch` (images,
  and each discriminator's logits and penultimate features);
- add real-data sources, each judged by its own discriminator (:meth:`Trainer.add_critic`)
  with its own augmentation pipe, ADA controller, R1 and optimiser. The generator's loss per
  image is then the maximum (or mean) of the critics' losses.

Snapshots keep ``G``, ``D`` and ``G_ema`` (a plain generator: ``gan.checkpoint.
load_generator`` reads it) plus one network per extra critic (``D_B``); an extension's
modules and state travel in ``state.pt``.

Blending two collections (the seeds' idea, done with StyleGAN2): ``--data-b B --blend max``
adds a second discriminator on collection B (:class:`TwoCollectionBlend`); every generated
image must convince both judges.

Examples
--------
python -m gan.train --data stores/paintings --out runs/tiny --preset tiny --kimg 10
python -m gan.train --data stores/paintings --out runs/tiny --kimg 20 --resume auto
python -m gan.train --data stores/artist --out runs/artist --init runs/base --kimg 5
python -m gan.train --data stores/rothko --data-b stores/davis --blend max --out runs/blend
"""

from __future__ import annotations

import _thread
import argparse
import contextlib
import copy
import json
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from gan.augment import AdaController, AugmentPipe
from gan.checkpoint import (
    load_network,
    load_state,
    mark_latest,
    read_config,
    resolve_snapshot,
    save_snapshot,
)
from gan.distributed import (
    Dist,
    broadcast_weights,
    optimizer_step,
    setup_distributed,
)
from gan.extensions import Critic, Extension, Phase, Trainable, TwoCollectionBlend
from gan.images import write_grid
from gan.loop import (
    Tick,
    TickLoop,
    has_snapshot,
    plot_history,
    restore_rng,
    rng_state,
    trim_log,
)
from gan.loss import FakeBatch, Latents, StyleGAN2Loss, stat_suffix
from gan.precision import autocast, describe_precision, resolve_precision
from gan.presets import Preset, get_preset
from gan.widen import widen_discriminator
from neuropaint.atomic import append_json_line
from neuropaint.logs import run_cli, setup_logging
from neuropaint.signals import stop_on_signals
from neuropaint.validate import NeuropaintError, build_config

logger = logging.getLogger(__name__)

BASE_NETWORKS = ("G", "D", "G_ema")


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
    lr: float | None = Field(None, gt=0, description="Learning rate of G and D (None: the "
                             "preset's); on a resume it replaces the saved optimisers' rate.")
    ema_kimg: float | None = Field(None, ge=0, description="Half-life of G_ema in kimg (None: "
                                   "the preset's).")
    aug: Literal["ada", "fixed", "none"] = Field("ada", description="Augmentation mode.")
    aug_p: float = Field(0.0, ge=0, le=1, description="Initial (ada) or fixed augmentation "
                         "probability.")
    aug_target: float = Field(0.6, gt=0, lt=1, description="ADA target for r_t.")
    ada_kimg: float = Field(500.0, gt=0, description="kimg for p to go from 0 to 1.")
    augpipe: str = Field("bgc", description="Augmentation preset (AugmentPipe.from_preset).")
    xflip: bool = Field(False, description="Also train on mirrored tiles.")
    snapshot_kimg: float = Field(4.0, gt=0, description="kimg between snapshots.")
    snapshot_minutes: float | None = Field(10.0, gt=0, description="Also snapshot when this "
                                           "many minutes of wall-clock time have passed since "
                                           "the last one (None: by kimg only).")
    tick_kimg: float = Field(0.1, gt=0, description="kimg between stats lines.")
    seed: int = Field(0, ge=0, description="Random seed.")
    resume: str | None = Field(None, description="'auto' (the run's latest snapshot) or a "
                               "snapshot path.")
    init: str | None = Field(None, description="Start from this snapshot's weights (G, D, "
                             "G_ema) with fresh optimisers, counters and data; a resume "
                             "found by 'resume' wins.")
    data_b: str | None = Field(None, description="Blend: a second tile store, judged by a "
                               "second discriminator D_B.")
    blend: Literal["max", "mean"] | None = Field(None, description="Blend: the generator's "
                                                 "per-image loss over the two "
                                                 "discriminators.")
    device: str = Field("auto", description="'auto', 'cpu', 'cuda' or 'cuda:N'.")
    precision: Literal["fp32", "bf16", "auto"] = Field(
        "fp32", description="bf16: autocast to bfloat16 (CUDA, or a CPU with AVX512-BF16/AMX; "
        "refused where it would be emulated); auto: bf16 where native, else fp32.")
    compile: bool = Field(False, description="torch.compile the networks (CUDA).")
    max_minutes: float | None = Field(None, gt=0, description="Stop (with a snapshot) after "
                                      "this many minutes.")
    collapse_steps: int = Field(300, ge=1, description="Steps with D loss below 1e-3 after "
                                "which a discriminator collapse is reported.")
    grid_size: int = Field(16, ge=1, le=64, description="Images in each snapshot's grid.")
    metrics: bool = Field(False, description="Compute SWD against the tiles at each snapshot "
                          "(metrics.jsonl).")
    metric_images: int = Field(1024, ge=64, description="Images per side for snapshot SWD.")


def resume_folder(source: str, run_dir: Path) -> Path | None:
    """The snapshot ``--resume source`` names: 'auto' is the run's latest (None when it has
    none yet), anything else a snapshot or run folder."""
    if source == "auto":
        return resolve_snapshot(run_dir) if has_snapshot(run_dir) else None
    return resolve_snapshot(source)


def resumed_settings(resume: str | None, out: str | Path) -> dict:
    """The preset name, kimg target and mirroring that the snapshot ``--resume`` names began
    with, so that a resume need not repeat them; ``{}`` when there is nothing to resume (or it cannot
    be read: :meth:`Trainer.resume` then says what is wrong with it)."""
    if not resume:
        return {}
    try:
        folder = resume_folder(resume, Path(out))
        config = read_config(folder) if folder is not None else {}
    except (OSError, ValueError, NeuropaintError):
        return {}
    recorded = config.get("train_config") or {}
    began = {"preset": (config.get("preset") or {}).get("name"), "kimg": recorded.get("kimg"),
             "xflip": recorded.get("xflip")}
    return {k: v for k, v in began.items() if v is not None}


def run_preset(cfg: TrainConfig, overrides: dict) -> Preset:
    """The preset a run trains with: the registry's, or the one its snapshot recorded.

    A resumed run keeps the preset it began with, so that a preset changed since (a lighter
    discriminator, say) goes on training old runs exactly as they started.
    """
    preset = get_preset(cfg.preset, **overrides)
    if not cfg.resume:
        return preset
    try:
        folder = resume_folder(cfg.resume, Path(cfg.out))
        if folder is None:
            return preset
        saved = read_config(folder).get("preset")
    except (OSError, ValueError, NeuropaintError):
        return preset  # resume() says what is wrong with the snapshot
    if not saved or saved.get("name") != preset.name:
        return preset  # another preset: resume() refuses its networks by name
    recorded = Preset.model_validate({**saved, **overrides})
    changed = sorted(k for k, v in recorded.model_dump().items()
                     if v != preset.model_dump()[k])
    if changed:
        logger.info("resuming with preset %r as this run began (today's differs in %s)",
                    preset.name, ", ".join(changed))
    return recorded


def build_networks(preset: Preset, *, c_dim: int = 0, batch_per_process: int = 8
                   ) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The generator and discriminator a preset describes."""
    D = build_discriminator(preset, c_dim=c_dim, batch_per_process=batch_per_process)
    if preset.arch == "dcgan":
        from gan.dcgan import DCGANGenerator

        G = DCGANGenerator(z_dim=preset.z_dim, img_resolution=preset.resolution, img_channels=3,
                           base_channels=preset.channel_max,
                           batch_norm=preset.dcgan_batch_norm_g, c_dim=c_dim)
        return G, D
    from gan.networks import Generator

    synthesis_kwargs = {"channel_base": preset.channel_base, "channel_max": preset.channel_max}
    if preset.canvas_channels:  # named only when used: older snapshots' configs stay equal
        synthesis_kwargs["canvas_channels"] = preset.canvas_channels
        if preset.canvas_period:
            synthesis_kwargs["canvas_period"] = preset.canvas_period
    G = Generator(z_dim=preset.z_dim, c_dim=c_dim, w_dim=preset.w_dim,
                  img_resolution=preset.resolution, img_channels=3,
                  mapping_kwargs={"num_layers": preset.mapping_layers},
                  synthesis_kwargs=synthesis_kwargs)
    return G, D


def adds_canvas(saved: dict, built: dict) -> bool:
    """True when generator config ``built`` is ``saved`` with a canvas texture added."""
    syn_saved = dict(saved.get("synthesis_kwargs") or {})
    syn_built = dict(built.get("synthesis_kwargs") or {})
    if syn_saved.get("canvas_channels") or not syn_built.pop("canvas_channels", 0):
        return False
    syn_built.pop("canvas_period", None)
    return {**saved, "synthesis_kwargs": syn_saved} == {**built, "synthesis_kwargs": syn_built}


def build_discriminator(preset: Preset, *, c_dim: int = 0, batch_per_process: int = 8
                        ) -> torch.nn.Module:
    """The discriminator a preset describes (every critic of a run is one of these)."""
    if preset.arch == "dcgan":
        from gan.dcgan import DCGANDiscriminator

        return DCGANDiscriminator(img_resolution=preset.resolution, img_channels=3,
                                  batch_norm=preset.dcgan_batch_norm_d, c_dim=c_dim)
    from gan.networks import Discriminator

    return Discriminator(c_dim=c_dim, img_resolution=preset.resolution, img_channels=3,
                         channel_base=preset.d_channel_base or preset.channel_base,
                         channel_max=preset.d_channel_max or preset.channel_max,
                         mbstd_group_size=min(preset.mbstd_group, batch_per_process))


def _lazy_ratio(reg_interval: int | None) -> float:
    return reg_interval / (reg_interval + 1) if reg_interval else 1.0


def make_optimizer(net: torch.nn.Module, lr: float, betas: tuple[float, float],
                   reg_interval: int | None) -> torch.optim.Optimizer:
    """Adam, with lr and betas corrected for lazy regularisation (StyleGAN2 appendix B)."""
    ratio = _lazy_ratio(reg_interval)
    return torch.optim.Adam(net.parameters(), lr=lr * ratio,
                            betas=(betas[0] ** ratio, betas[1] ** ratio), eps=1e-8)


def set_learning_rate(opt: torch.optim.Optimizer, lr: float, reg_interval: int | None) -> bool:
    """Give a (loaded) optimiser the rate ``make_optimizer`` would; True when it changed."""
    lr = lr * _lazy_ratio(reg_interval)
    changed = any(abs(group["lr"] - lr) > 1e-12 for group in opt.param_groups)
    for group in opt.param_groups:
        group["lr"] = lr
    return changed


class TileSource:
    """Random real batches from a tile store, resized to the training resolution."""

    def __init__(self, store: str, resolution: int, *, xflip: bool, seed: int):
        from datasets.art import ArtTiles

        self.path = str(store)
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

    def __init__(self, cfg: TrainConfig, dist: Dist | None = None, *,
                 extensions: Sequence[Extension] = (), preset: Preset | None = None):
        """``preset``: train with this one instead of ``cfg.preset``'s from the registry (a
        benchmark comparing recipes); it is recorded in the snapshots like any other."""
        self.cfg = cfg
        if (cfg.data_b is None) != (cfg.blend is None):
            raise NeuropaintError("a blend needs both --data-b (the second collection) and "
                                  "--blend max|mean (how the two discriminators' losses "
                                  "combine); got only " + ("--data-b." if cfg.data_b else
                                                           "--blend."))
        self.dist = dist or setup_distributed(cfg.device)
        overrides = {}
        if cfg.batch is not None:
            overrides["batch"] = cfg.batch
        if cfg.gamma is not None:
            overrides["r1_gamma"] = cfg.gamma
        if cfg.lr is not None:
            overrides["g_lr"] = overrides["d_lr"] = cfg.lr
        if cfg.ema_kimg is not None:
            overrides["ema_kimg"] = cfg.ema_kimg
        self.preset = (run_preset(cfg, overrides) if preset is None
                       else Preset.model_validate({**preset.model_dump(), **overrides}))
        if self.preset.batch % self.dist.world:
            raise NeuropaintError(f"batch {self.preset.batch} does not split over "
                                  f"{self.dist.world} processes.")
        self.batch_per_process = self.preset.batch // self.dist.world
        self.run_dir = Path(cfg.out)
        self.device = self.dist.device
        self.precision = resolve_precision(cfg.precision, self.device)
        logger.info("precision: %s", describe_precision(self.precision, self.device))
        torch.manual_seed(cfg.seed)
        self.G, D = build_networks(self.preset, batch_per_process=self.batch_per_process)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.G.to(self.device)
        self.G_ema.to(self.device)
        self.critics: list[Critic] = []
        self.trainables: list[Trainable] = []
        self.reduce: Literal["max", "mean"] = "max"  # How several critics' G losses combine.
        self.add_critic("D", cfg.data, D=D)
        self.loss = StyleGAN2Loss(self.G, self.D, augment_pipe=self.augment_pipe,
                                  r1_gamma=self.preset.gamma,
                                  style_mixing=self.preset.style_mixing,
                                  pl_weight=self.preset.pl_weight,
                                  pl_batch_shrink=self.preset.pl_batch_shrink)
        self.G_opt = make_optimizer(self.G, self.preset.g_lr, self.preset.betas,
                                    self.g_reg_interval)
        self.extensions = list(extensions)
        if cfg.data_b is not None:
            self.extensions.insert(0, TwoCollectionBlend(cfg.data_b, cfg.blend))
        names = [ext.name for ext in self.extensions]
        if len(set(names)) != len(names):
            raise NeuropaintError(f"extension names must be unique, got {names}.")
        for ext in self.extensions:
            ext.attach(self)
        self.counters = Counters()
        self._fakes_for_D: FakeBatch | None = None  # The G step's batch, when D reuses it.
        self.grid_z = torch.randn([cfg.grid_size, self.G.z_dim],
                                  generator=torch.Generator().manual_seed(123))
        self.history: list[dict] = []
        self.stop_requested = threading.Event()  # Set by request_stop(), from any thread.
        self.interrupted: dict | None = None     # Where and how a requested stop ended.
        resumed = self.resume(cfg.resume) if cfg.resume else False
        if not resumed:
            if not cfg.resume and (self.run_dir / "snapshots").is_dir() and self.dist.main:
                logger.warning("%s already holds snapshots; this run starts fresh (add "
                               "--resume auto to continue them instead) and its stats start "
                               "again from kimg 0", self.run_dir)
            self.trim_stats(0)  # A fresh run in an old folder: its curve starts at 0.
        if cfg.init and not resumed:
            self.init_from(cfg.init)
        broadcast_weights([self.G, self.G_ema] + [c.D for c in self.critics]
                          + [t.module for t in self.trainables], self.dist)
        if cfg.compile and hasattr(self.G, "synthesis"):
            # The synthesis network is where the time goes; the DCGAN has none and stays eager.
            self.G.synthesis = torch.compile(self.G.synthesis)

    # ------------------------------------------------------------------ the main critic
    @property
    def D(self) -> torch.nn.Module:
        return self.critics[0].D

    @property
    def D_opt(self) -> torch.optim.Optimizer:
        return self.critics[0].opt

    @property
    def data(self) -> TileSource:
        return self.critics[0].data

    @property
    def augment_pipe(self) -> AugmentPipe | None:
        return self.critics[0].augment_pipe

    @property
    def ada(self) -> AdaController | None:
        return self.critics[0].ada

    # ------------------------------------------------------------------ extension points
    def add_critic(self, name: str, data: str, *, D: torch.nn.Module | None = None,
                   what: str = "--data") -> Critic:
        """A discriminator on its own tile store, with its own ADA pipe, R1 and optimiser.

        Saved in snapshots as network ``name``; its resume state (optimiser, augmentation,
        data order) travels in state.pt.
        """
        if (name in {c.name for c in self.critics} | {"G", "G_ema"}
                or (name == "D") != (not self.critics)):
            raise NeuropaintError(f"critic name {name!r} is taken or reserved: the first "
                                  f"critic is 'D', the others have names like 'D_B'.")
        cfg, index = self.cfg, len(self.critics)
        try:
            source = TileSource(data, self.preset.resolution, xflip=cfg.xflip,
                                seed=cfg.seed * 1000 + self.dist.rank + 7919 * index)
        except NeuropaintError as exc:
            raise NeuropaintError(f"{what}: {exc}" if index else str(exc)) from None
        if D is None:
            D = build_discriminator(self.preset, batch_per_process=self.batch_per_process)
        D.to(self.device)
        pipe = ada = None
        if cfg.aug != "none":
            pipe = AugmentPipe.from_preset(cfg.augpipe).to(self.device)
            ada = AdaController(pipe, target=cfg.aug_target, interval=4, ada_kimg=cfg.ada_kimg,
                                batch_size=self.preset.batch, mode=cfg.aug, p=cfg.aug_p)
        opt = make_optimizer(D, self.preset.d_lr, self.preset.betas, self.d_reg_interval)
        critic = Critic(name=name, D=D, data=source, opt=opt, augment_pipe=pipe, ada=ada,
                        gamma=self.preset.gamma)
        self.critics.append(critic)
        return critic

    def add_trainable(self, name: str, module: torch.nn.Module, opt: torch.optim.Optimizer,
                      phases: Sequence[Phase]) -> Trainable:
        """An extra module updated in ``phases`` ("G", "D" or both) by its own optimiser.

        The module is moved to the training device; its weights and optimiser state are saved
        in every snapshot's resume state and restored on resume.
        """
        if any(t.name == name for t in self.trainables):
            raise NeuropaintError(f"a trainable named {name!r} already exists.")
        bad = [p for p in phases if p not in ("G", "D")]
        if bad or not phases:
            raise NeuropaintError(f"'phases' must be a non-empty subset of ('G', 'D'), got "
                                  f"{list(phases)}.")
        module.to(self.device)
        trainable = Trainable(name=name, module=module, opt=opt, phases=tuple(phases))
        self.trainables.append(trainable)
        return trainable

    def latents(self, n: int, phase: Phase) -> Latents:
        """The latents of ``n`` generated images: an extension's, or Gaussian ``z``."""
        for ext in self.extensions:
            latents = ext.latents(n, phase)
            if latents is not None:
                if len(latents) != n:
                    raise NeuropaintError(f"extension {ext.name!r} gave {len(latents)} latents "
                                          f"for a batch of {n}.")
                return latents
        return Latents(z=self.sample_z(n))

    def _extension_losses(self, hook: str, fake: FakeBatch, stats: dict) -> torch.Tensor | None:
        total = None
        for ext in self.extensions:
            term, s = getattr(ext, hook)(fake)
            stats.update(s)
            if term is not None:
                total = term if total is None else total + term
        return total

    def _phase_nets(self, phase: Phase) -> list[tuple[torch.nn.Module, torch.optim.Optimizer]]:
        nets = [(self.G, self.G_opt)] if phase == "G" else [(c.D, c.opt) for c in self.critics]
        return nets + [(t.module, t.opt) for t in self.trainables if phase in t.phases]

    def _set_phase(self, phase: Phase) -> None:
        self.G.requires_grad_(phase == "G")
        for critic in self.critics:
            critic.D.requires_grad_(phase == "D")
        for t in self.trainables:
            t.module.requires_grad_(phase in t.phases)

    # ------------------------------------------------------------------ the steps
    def sample_z(self, n: int) -> torch.Tensor:
        return torch.randn([n, self.G.z_dim], device=self.device)

    def autocast(self):
        return autocast(self.precision, self.device)

    def g_step(self, stats: dict) -> None:
        self._set_phase("G")
        reuse = self.preset.reuse_fakes
        with self.autocast():
            latents = self.latents(self.batch_per_process, "G")
            loss, s, fake = self.loss.g_main(latents, None, self.critics, reduce=self.reduce,
                                             update_emas=reuse)
            extra = self._extension_losses("g_loss", fake, s)
            if extra is not None:
                loss = loss + extra
        optimizer_step(self._phase_nets("G"), loss, self.dist, phase="generator")
        self._fakes_for_D = fake if reuse else None
        stats.update(s)

    def g_regularise(self, stats: dict) -> None:
        if not self.loss.pl_weight or self.counters.step % self.preset.pl_interval:
            return
        self._set_phase("G")
        loss, s = self.loss.g_path_length(self.sample_z(self.batch_per_process), None,
                                          gain=self.preset.pl_interval)
        optimizer_step([(self.G, self.G_opt)], loss, self.dist, phase="path-length")
        stats.update(s)

    def d_step(self, reals: dict[str, torch.Tensor], stats: dict) -> None:
        self._set_phase("D")
        shared, self._fakes_for_D = self._fakes_for_D, None
        with self.autocast():
            latents = None if shared else self.latents(self.batch_per_process, "D")
            loss, s, real_logits, fake = self.loss.d_main(reals, latents, None, self.critics,
                                                          fake=shared)
            extra = self._extension_losses("d_loss", fake, s)
            if extra is not None:
                loss = loss + extra
        optimizer_step(self._phase_nets("D"), loss, self.dist, phase="discriminator")
        for critic in self.critics:
            if critic.ada is not None:
                critic.ada.accumulate(real_logits[critic.name])
        stats.update(s)
        self.watch_collapse(float(s["loss_d"]))

    def d_regularise(self, reals: dict[str, torch.Tensor], stats: dict) -> None:
        if not self.preset.gamma or self.counters.step % self.preset.r1_interval:
            return
        self._set_phase("D")
        loss = torch.zeros([], device=self.device)
        for critic in self.critics:
            term, s = self.loss.d_r1(reals[critic.name], None, gain=self.preset.r1_interval,
                                     critic=critic, r1_gamma=critic.gamma)
            loss = loss + term
            stats.update(s)
        optimizer_step([(c.D, c.opt) for c in self.critics], loss, self.dist, phase="R1")

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
        reals = {c.name: c.data.batch(self.batch_per_process).to(self.device)
                 for c in self.critics}
        self.g_step(stats)
        self.g_regularise(stats)
        self.d_step(reals, stats)
        self.d_regularise(reals, stats)
        self.counters.nimg += self.preset.batch
        self.counters.step += 1
        update_ema(self.G_ema, self.G, self.preset, self.preset.batch, self.counters.nimg)
        for critic in self.critics:
            if critic.ada is not None:
                critic.ada.step(self.dist)
        return {k: float(v) for k, v in stats.items()}

    # ------------------------------------------------------------------ the loop
    def request_stop(self) -> None:
        """Ask :meth:`train` to stop after the current step, with a snapshot.

        Safe from any thread (a signal watcher, a GUI); never call it inside a signal handler
        itself: use :func:`neuropaint.signals.stop_on_signals`.
        """
        self.stop_requested.set()

    def _should_stop(self, timed_out: bool) -> tuple[bool, bool]:
        """(interrupted, timed out), agreed by every process so that none waits on the rest."""
        interrupted = self.stop_requested.is_set()
        if self.dist.world > 1:
            flags = torch.tensor([float(interrupted), float(timed_out)], device=self.device)
            torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
            interrupted, timed_out = bool(flags[0]), bool(flags[1])
        return interrupted, timed_out

    def train(self, progress: bool = False) -> Path | None:
        """Run until ``kimg`` (or ``max_minutes``, or :meth:`request_stop`).

        Returns the last snapshot folder. After a requested stop, ``self.interrupted`` says
        where it stopped, which snapshot holds it and how long writing it took.
        """
        cfg = self.cfg
        total = int(cfg.kimg * 1000)
        bar = None
        if progress and self.dist.main:
            from tqdm import tqdm

            bar = tqdm(total=total / 1000, initial=self.counters.nimg / 1000, unit="kimg",
                       bar_format="{l_bar}{bar}| {n:.2f}/{total:g} kimg [{elapsed}<"
                       "{remaining}] {postfix}")
        loop = TickLoop(position=lambda: self.counters.nimg, total=total,
                        tick_every=int(cfg.tick_kimg * 1000),
                        snapshot_every=int(cfg.snapshot_kimg * 1000),
                        max_minutes=cfg.max_minutes, snapshot_minutes=cfg.snapshot_minutes,
                        should_stop=self._should_stop)
        end = loop.run(self, bar, bar_scale=1000)
        if end.interrupted:
            self.interrupted = {"kimg": self.counters.nimg / 1000, "snapshot": end.snapshot,
                                "seconds": end.snapshot_seconds}
        return end.snapshot

    def postfix(self, line: dict) -> str:
        return (f"{line['kimg_per_s']:.3f} kimg/s G {line.get('loss_g', 0):.2f} "
                f"D {line.get('loss_d', 0):.2f} p {line['aug_p']:.3f} "
                f"rt {line['ada_rt'] if line['ada_rt'] is not None else '-'}")

    def tick_line(self, tick: Tick) -> dict:
        """Average the tick's stats, append them to stats.jsonl (rank 0)."""
        c = self.counters
        line = tick.mean()
        line.update({
            "kimg": c.nimg / 1000,
            "step": c.step,
            "kimg_per_s": (c.nimg - tick.start) / 1000 / tick.seconds(),
            "sec_per_step": tick.sec_per_step(),
        })
        for critic in self.critics:
            ada, suffix = critic.ada, stat_suffix(critic.name)
            line["aug_p" + suffix] = ada.p if ada is not None else 0.0
            line["ada_rt" + suffix] = None if ada is None or ada.rt is None else round(ada.rt, 4)
        line.update({"d_collapse": c.collapse_reported, "time": time.time()})
        self.history.append(line)
        if self.dist.main:
            append_json_line(self.run_dir / "stats.jsonl", line)
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
            **rng_state(self.device),
            "data_rng": self.data.generator.get_state(),
            "critics": {k.name: {"opt": k.opt.state_dict(),
                                 "ada": k.ada.state_dict() if k.ada is not None else {},
                                 "data_rng": k.data.generator.get_state()}
                        for k in self.critics[1:]},
            "trainables": {t.name: {"weights": {n: v.detach().cpu() for n, v
                                                in t.module.state_dict().items()},
                                    "opt": t.opt.state_dict()} for t in self.trainables},
            "extensions": {ext.name: ext.state_dict() for ext in self.extensions},
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
            "critics": {k.name: {"data": k.data.path,
                                 "aug_p": k.ada.p if k.ada is not None else 0.0}
                        for k in self.critics},
            "extensions": {ext.name: ext.snapshot_config() for ext in self.extensions},
        }
        networks = {"G": self.G, "D": self.D, "G_ema": self.G_ema}
        networks |= {k.name: k.D for k in self.critics[1:]}
        save_snapshot(folder, networks, config, self.training_state())
        write_grid(self.G_ema, self.grid_z.to(self.device), folder / "grid.png")
        if self.cfg.metrics:
            self.snapshot_metrics(folder)
        mark_latest(self.run_dir, folder)
        plot_history(self.history_from_disk(), self.run_dir / "training.png",
                     extra_keys=self.plot_keys())
        logger.info("snapshot %s", folder)
        return folder

    def plot_keys(self) -> list[str]:
        """Stats beyond the base losses that training.png plots."""
        keys = [f"{k}{stat_suffix(c.name)}" for c in self.critics[1:]
                for k in ("loss_d", "r1_penalty")]
        return keys + [k for ext in self.extensions for k in ext.stats_keys]

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

    def _load_weights(self, folder: Path, name: str, net: torch.nn.Module, how: str,
                      grow: bool = False) -> None:
        """Fill ``net`` from network ``name`` of a snapshot, refusing another architecture.

        ``grow``: a generator without a canvas texture may fill one that has it; the texture
        starts blank (:class:`gan.networks.CanvasTexture`), so the images stay the same.
        """
        loaded = load_network(folder, name)
        if (grow and type(loaded) is type(net)
                and adds_canvas(loaded.init_kwargs, net.init_kwargs)):
            missing, unexpected = net.load_state_dict(loaded.state_dict(), strict=False)
            if unexpected or not all(k.startswith("synthesis.canvas.") for k in missing):
                raise NeuropaintError(f"{folder}: {name} does not fit preset "
                                      f"{self.preset.name!r} even with a canvas texture added "
                                      f"(missing {missing[:3]}, unexpected {unexpected[:3]}).")
            logger.info("%s of %s has no canvas texture: %s starts with a blank one", name,
                        folder, name)
            return
        if type(loaded) is not type(net) or loaded.init_kwargs != net.init_kwargs:
            trained = read_config(folder).get("preset", {}).get("name", "?")
            raise NeuropaintError(f"{folder} holds a different {name} than preset "
                                  f"{self.preset.name!r} builds; {how} with the preset it was "
                                  f"trained with ({trained!r}).")
        net.load_state_dict(loaded.state_dict())

    @property
    def g_reg_interval(self) -> int | None:
        """Steps between G's lazy path-length regularisations (None: none); sets its Adam."""
        return self.preset.pl_interval if self.loss.pl_weight else None

    @property
    def d_reg_interval(self) -> int | None:
        """Steps between the critics' lazy R1 regularisations (None: none); sets their Adam."""
        return self.preset.r1_interval if self.preset.gamma else None

    def apply_learning_rate(self) -> None:
        """The preset's rates (``--lr`` included) over those a resumed snapshot's optimisers
        kept: lowering the rate late in a run is how a user anneals it."""
        changed = set_learning_rate(self.G_opt, self.preset.g_lr, self.g_reg_interval)
        for critic in self.critics:
            changed |= set_learning_rate(critic.opt, self.preset.d_lr, self.d_reg_interval)
        if changed:
            logger.info("learning rate now G %g, D %g (the snapshot's optimisers had another)",
                        self.preset.g_lr, self.preset.d_lr)

    def resume(self, source: str) -> bool:
        """Restore networks, optimisers, counters, augmentation, RNG and data order.

        Returns False when ``source`` is 'auto' and the run has nothing to resume.
        """
        folder = resume_folder(source, self.run_dir)
        if folder is None:
            if (self.run_dir / "stats.jsonl").exists():
                # A run that stopped before its first snapshot: say so, loudly.
                logger.warning("--resume auto: %s has no snapshot to resume (its earlier "
                               "run stopped before writing one): starting fresh from "
                               "kimg 0", self.run_dir)
            else:
                logger.info("--resume auto: no snapshot in %s yet: starting fresh",
                            self.run_dir)
            return False
        saved = set(read_config(folder)["networks"])
        extra = sorted(saved - set(BASE_NETWORKS) - {k.name for k in self.critics})
        if extra:
            raise NeuropaintError(f"{folder} also trained discriminators {extra}: resume it "
                                  f"with the same --data-b and --blend.")
        missing = sorted({k.name for k in self.critics} - saved)
        if missing:
            raise NeuropaintError(f"{folder} has no {', '.join(missing)}: it was not trained "
                                  f"as a blend; start one from it with --init instead.")
        for name, net in (("G", self.G), ("G_ema", self.G_ema)):
            self._load_weights(folder, name, net, "resume")
        for critic in self.critics:
            self._load_weights(folder, critic.name, critic.D, "resume")
        state = load_state(folder)
        self.G_opt.load_state_dict(state["G_opt"])
        self.D_opt.load_state_dict(state["D_opt"])
        if self.ada is not None and state["ada"]:
            self.ada.load_state_dict(state["ada"])
        self.data.generator.set_state(state["data_rng"])
        for critic in self.critics[1:]:
            saved_critic = state["critics"][critic.name]
            critic.opt.load_state_dict(saved_critic["opt"])
            if critic.ada is not None and saved_critic["ada"]:
                critic.ada.load_state_dict(saved_critic["ada"])
            critic.data.generator.set_state(saved_critic["data_rng"])
        for ext in self.extensions:  # first: an extension names a mismatch best
            saved_ext = state.get("extensions", {}).get(ext.name)
            if saved_ext is None:
                raise NeuropaintError(f"{folder} was trained without {ext.name!r}; start from "
                                      f"it with --init instead.")
            ext.load_state_dict(saved_ext)
        for t in self.trainables:
            saved_t = state.get("trainables", {}).get(t.name)
            if saved_t is None:
                raise NeuropaintError(f"{folder} has no trainable {t.name!r}: it was trained "
                                      f"without it; start from it with --init instead.")
            try:
                t.module.load_state_dict(saved_t["weights"])
            except RuntimeError as exc:
                raise NeuropaintError(f"{folder}: the saved {t.name!r} does not fit this run's "
                                      f"({str(exc).splitlines()[0]}).") from None
            t.opt.load_state_dict(saved_t["opt"])
        self.apply_learning_rate()
        self.loss.pl_mean = state["pl_mean"].to(self.device)
        self.counters = Counters(step=int(state["step"]), nimg=int(state["nimg"]),
                                 collapse_run=int(state["collapse_run"]),
                                 collapse_reported=bool(state["collapse_reported"]))
        restore_rng(state, self.device)
        if self.dist.world > 1:
            # Each process continues its own random stream from the shared state.
            torch.manual_seed(self.cfg.seed * 1000 + self.dist.rank + self.counters.step)
        self.trim_stats(self.counters.nimg)
        logger.info("resumed from %s at kimg %.2f", folder, self.counters.nimg / 1000)
        return True

    def init_from(self, source: str) -> None:
        """Weights of G, D and G_ema from a snapshot; optimisers, counters, data stay fresh.

        Extra critics take the snapshot's network of their name if it has one, else a copy of
        its D (a judge that already knows images, as in transfer learning).
        """
        try:
            folder = resolve_snapshot(source)
        except FileNotFoundError:
            raise NeuropaintError(f"--init: no such snapshot or run: {source}") from None
        except NeuropaintError as exc:
            raise NeuropaintError(f"--init: {exc}") from None
        saved = set(read_config(folder)["networks"])
        if "G_ema" in saved and not {"G", "D"} <= saved:
            # A snapshot without G (the bundled demo keeps G_ema and D, a gan.blend result
            # G_ema only): G starts as its G_ema; a missing D starts fresh and learns the
            # images in the first ticks.
            logger.warning("%s keeps %s only: G starts from G_ema%s", folder,
                           ", ".join(sorted(saved)),
                           "" if "D" in saved else " and D starts fresh (untrained)")
            for net in (self.G, self.G_ema):
                self._load_weights(folder, "G_ema", net, "use --init", grow=True)
        else:
            for name, net in (("G", self.G), ("G_ema", self.G_ema)):
                self._load_weights(folder, name, net, "use --init", grow=True)
        if "D" in saved:
            try:
                self._load_weights(folder, "D", self.D, "use --init")
            except NeuropaintError:
                self._widen_or_fresh_d(folder)
        for critic in self.critics[1:]:
            if critic.name in saved:
                self._load_weights(folder, critic.name, critic.D, "use --init")
            else:
                critic.D.load_state_dict(self.D.state_dict())
        logger.info("initialised from %s (fresh optimisers, counters and augmentation)", folder)

    def _widen_or_fresh_d(self, folder: Path) -> None:
        """D for a preset whose discriminator has another shape than the snapshot's: the
        snapshot's, widened so that it judges as before, when the preset's is it with more
        channels (:mod:`gan.widen`); otherwise a fresh one, as the generator is what
        fine-tuning needs."""
        try:
            widened = widen_discriminator(load_network(folder, "D"), self.D)
        except NeuropaintError as exc:
            logger.warning("%s has a discriminator of another shape than preset %r builds: "
                           "D starts fresh (untrained; %s)", folder, self.preset.name, exc)
            return
        logger.info("D of %s is narrower than preset %r builds: widened (%d layers) with "
                    "new channels that nothing reads yet, so it judges as before",
                    folder, self.preset.name, len(widened))

    def trim_stats(self, nimg: int) -> None:
        """Drop stats (and metrics) lines written after the snapshot we resume from.

        The curve in training.png then continues from the resumed point instead of looping
        back; ``nimg`` 0 (a fresh run in an old folder) clears them.
        """
        if not self.dist.main:
            return
        where = f"kimg {nimg / 1000:.3f}"
        trim_log(self.run_dir / "metrics.jsonl", "kimg", nimg / 1000, where)
        self.history = trim_log(self.run_dir / "stats.jsonl", "kimg", nimg / 1000, where)


class _ListPresets(argparse.Action):
    """``--list-presets``: print the registry, one preset a line, and exit (like --version)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        from gan.presets import list_presets

        for name in list_presets():
            preset = get_preset(name)
            print(f"{name:<11} {preset.arch:<9} {preset.resolution:>4} px  "
                  f"{preset.description}")
        parser.exit()


@contextlib.contextmanager
def snapshot_on_interrupt(trainer: Trainer) -> Iterator[None]:
    """Within the block, Ctrl-C or SIGTERM finishes the step and writes a snapshot
    (``trainer.interrupted`` says where); a second one quits at once, without it."""
    signalled = threading.Event()

    def on_stop() -> None:  # on stop_on_signals' watcher thread, never in the handler
        if signalled.is_set():
            logger.warning("second interrupt: quitting without a snapshot")
            _thread.interrupt_main()  # KeyboardInterrupt in the loop; run_cli reports it
            return
        signalled.set()
        if trainer.dist.main:
            logger.warning("interrupt: finishing this step and writing a snapshot "
                           "(Ctrl-C again to quit without one)")
        trainer.request_stop()

    with stop_on_signals(on_stop):
        yield


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gan.train",
        description="Train a StyleGAN2-ADA (or the seeds' DCGAN) on a tile store; with "
        "--data-b and --blend, one generator judged by two discriminators (one per "
        "collection). Ctrl-C writes a snapshot before exiting (a second Ctrl-C quits at "
        "once); --resume auto continues from it.",
        epilog="Examples: python -m gan.train --data stores/art --out runs/art --kimg 10; "
        "python -m gan.train --data stores/art --out runs/art --kimg 20 --resume auto; "
        "python -m gan.train --data stores/artist --out runs/artist --init runs/art --kimg 2; "
        "python -m gan.train --data stores/A --data-b stores/B --blend max --out runs/blend",
    )
    parser.add_argument("--data", required=True, help="tile store (python -m datasets.art "
                        "build)")
    parser.add_argument("--out", required=True, help="run folder")
    parser.add_argument("--list-presets", action=_ListPresets,
                        help="print the presets (name, network, resolution, purpose) and exit")
    parser.add_argument("--preset",
                        help="preset name, see --list-presets (default: the run's own when "
                        "--resume finds a snapshot, else tiny)")
    parser.add_argument("--arch", choices=["stylegan2", "dcgan"],
                        help="network family: dcgan picks the matching dcgan preset "
                        "(default: the preset's)")
    parser.add_argument("--kimg", type=float,
                        help="train until this many thousand real images have been shown "
                        "(default: the run's own target when --resume finds a snapshot, "
                        "else 10)")
    parser.add_argument("--batch", type=int, help="total batch size (default: the preset's)")
    parser.add_argument("--gamma", type=float, help="R1 weight (default: the preset's)")
    parser.add_argument("--lr", type=float, help="learning rate of G and D (default: the "
                        "preset's); with --resume it replaces the snapshot's, to anneal a "
                        "long run")
    parser.add_argument("--ema-kimg", type=float, help="half-life of G_ema in kimg (default: "
                        "the preset's); longer smooths a late run")
    parser.add_argument("--aug", nargs="+", default=["ada"], metavar="MODE",
                        help="'ada', 'fixed P', or 'none' (default: ada)")
    parser.add_argument("--target", type=float, default=0.6,
                        help="ADA target for r_t (default: %(default)s)")
    parser.add_argument("--xflip", action=argparse.BooleanOptionalAction,
                        help="also use mirrored tiles (default: as the run began when --resume "
                        "finds a snapshot, else no)")
    parser.add_argument("--snap", type=float, default=4.0,
                        help="kimg between snapshots (default: %(default)s)")
    parser.add_argument("--snap-minutes", type=float, default=10.0, metavar="MIN",
                        help="also snapshot after this many minutes of wall-clock time since "
                        "the last one; 0: by kimg only (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0,
                        help="random seed of the networks' initialisation, latents, "
                        "augmentation and data order (default: %(default)s)")
    parser.add_argument("--resume",
                        help="'auto' (the run's latest snapshot; starts fresh, saying so, "
                        "when there is none) or a snapshot folder (default: start fresh)")
    parser.add_argument("--init", metavar="SNAPSHOT",
                        help="start from a snapshot's (or run's) weights with fresh optimisers, "
                        "counters and this --data: fine-tuning")
    parser.add_argument("--data-b", metavar="STORE",
                        help="blend: a second tile store, judged by a second discriminator")
    parser.add_argument("--blend", choices=["max", "mean"],
                        help="blend: the generator's per-image loss is the max (the seeds') or "
                        "mean of the two discriminators'")
    parser.add_argument("--device", default="auto",
                        help="auto (cuda if available, else cpu), cpu, cuda or cuda:N "
                        "(default: %(default)s)")
    parser.add_argument("--precision", choices=["fp32", "bf16", "auto"], default="fp32",
                        help="bf16: bfloat16 autocast on a CUDA GPU or a CPU with "
                        "AVX512-BF16/AMX (refused where it would be emulated, i.e. slower); "
                        "auto: bf16 where native, else fp32 (default: %(default)s)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the synthesis network (CUDA; the first steps "
                        "are slow while it compiles)")
    parser.add_argument("--max-minutes", type=float,
                        help="stop, with a snapshot, after this long (default: no limit)")
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
    if args.snap_minutes < 0:
        raise NeuropaintError(f"'--snap-minutes' must be 0 (off) or positive, got "
                              f"{args.snap_minutes}.")
    began = resumed_settings(args.resume, args.out)
    preset = args.preset or began.get("preset") or "tiny"
    if args.arch == "dcgan" and not preset.startswith("dcgan"):
        preset = "dcgan64"
    kimg = args.kimg if args.kimg is not None else began.get("kimg") or 10.0
    xflip = args.xflip if args.xflip is not None else bool(began.get("xflip"))
    taken = [f"--{name} {began[name]}" for name, given in (("preset", args.preset),
                                                          ("kimg", args.kimg))
             if given is None and name in began]
    if args.xflip is None and began.get("xflip"):
        taken.append("--xflip")
    if taken:
        logger.info("resuming as the run began: %s", " ".join(taken))
    cfg = build_config(TrainConfig, data=args.data, out=args.out, preset=preset,
                       kimg=kimg, batch=args.batch, gamma=args.gamma, lr=args.lr,
                       ema_kimg=args.ema_kimg, aug=aug_mode,
                       aug_p=aug_p, aug_target=args.target, xflip=xflip,
                       snapshot_kimg=args.snap, snapshot_minutes=args.snap_minutes or None,
                       seed=args.seed, resume=args.resume,
                       init=args.init, data_b=args.data_b, blend=args.blend,
                       device=args.device, precision=args.precision, compile=args.compile,
                       max_minutes=args.max_minutes, metrics=args.metrics)
    trainer = Trainer(cfg)
    # Log lines (snapshots, the interrupt) go above the progress bar instead of into it.
    from tqdm.contrib.logging import logging_redirect_tqdm

    with snapshot_on_interrupt(trainer), logging_redirect_tqdm():
        snapshot = trainer.train(progress=not args.quiet)
    if trainer.dist.world > 1:
        torch.distributed.destroy_process_group()
    stopped = trainer.interrupted
    if stopped is not None:
        if trainer.dist.main:
            print(f"interrupted at {stopped['kimg']:.3f} kimg: snapshot {stopped['snapshot']} "
                  f"written in {stopped['seconds']:.1f} s; continue with --resume auto")
        return 130
    if trainer.dist.main and snapshot is not None:
        print(f"done: {trainer.counters.nimg / 1000:.2f} kimg; latest snapshot {snapshot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
