"""Joint mode of ``conditioning.train``: fine-tune the generator on EEG-derived latents.

The seed's way ("instead of generating the images from Gaussian noise, conditioned it on the
artist's brain activity ... mapped into a latent space ... which was then used to train the
generator"), done inside ``gan.train``'s one loop through its extension points
(:class:`gan.extensions.Extension`); there is no second training loop:

- the generator, its discriminator and G_ema start from the ``--generator`` snapshot
  (``gan.train --init``) and keep training on real tiles (by default the store that
  generator was trained on; ``--tiles`` for another, e.g. an artist's own works);
- for a share (``--eeg-share``, 0.5) of every batch, in both phases, the latents are
  ``ws = encoder(EEG feature row)``, rows drawn from the training recordings of the EEG store
  (standardised per recording, as in the other modes); the rest of the batch is Gaussian
  ``z`` through the mapping network, so the generator keeps covering its whole W space;
- the encoder (:class:`conditioning.encoder.Encoder`, built as in align mode, or from
  ``--init ENCODER``) is a trainable module updated with the generator;
- an auxiliary head on the discriminator's penultimate features must recover the
  standardised EEG feature row from the EEG-driven fakes (an InfoGAN-style mutual-information
  term with a Gaussian posterior, i.e. a mean squared error; Chen et al. 2016, "InfoGAN",
  section 5). Its loss, weighted by ``--aux-weight``, is added to the generator phase (so G
  and the encoder put the brain state where D can see it) and to the discriminator phase
  (so the head and D's trunk learn to read it);
- align mode's distribution terms (``--swd-weight`` per group, ``--unmixed-weight`` for the
  three groups together) keep the encoded ``w`` among the generator's own ``w = mapping(z)``:
  without them the encoder, free to move its latents wherever D is least suspicious, drifts
  out of W and the EEG paintings stop looking like the generator's other paintings
  (``benchmarks/fidelity.py``'s coverage figure).

Everything resumes exactly (the encoder, the head, their optimisers and the EEG sampling
order travel in each snapshot's ``state.pt``). The run itself is a normal ``gan.train`` run
folder (``--run-dir``, default ``OUT.run``: snapshots, ``stats.jsonl`` with ``aux_g`` and
``aux_d``, ``training.png``); ``--resume`` continues it. At the end the encoder is written to
``OUT`` for the fine-tuned generator, which is copied to ``OUT/generator`` (a normal snapshot):

    python -m conditioning.render OUT OUT/generator session.fif --out painted/
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from conditioning.encoder import GROUPS, Encoder, generator_identity
from eeg.features import FeatureSpec
from gan.extensions import Extension, Phase
from gan.loss import FakeBatch, Latents
from gan.train import TrainConfig, Trainer
from neuropaint.atomic import atomic_folder
from neuropaint.validate import NeuropaintError

if TYPE_CHECKING:
    from conditioning.train import EncoderTrainConfig, Rows

logger = logging.getLogger(__name__)

GENERATOR_FOLDER = "generator"  # The fine-tuned generator inside the encoder folder.
AUX_KEYS = ("aux_g", "aux_d")
# What loss.png and training.png show beside the GAN losses.
PLOT_KEYS = (*AUX_KEYS, "w_swd", "w_unmixed")


class AuxiliaryHead(nn.Module):
    """D's penultimate features ``[N, C]`` -> the standardised EEG feature row ``[N, F]``."""

    def __init__(self, in_features: int, out_features: int, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, out_features),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features.float())


class EEGConditioning(Extension):
    """The joint mode as a :class:`gan.extensions.Extension`: EEG latents, encoder, auxiliary head.

    Parameters
    ----------
    encoder : Encoder
        Maps standardised feature rows to ``ws``; trained with the generator. Its FeatureSpec
        is the store's (a resumed run must have been trained with the same).
    rows : ndarray, shape (n_rows, n_features)
        Standardised training rows (the training recordings only).
    share : float
        Share of each batch driven by EEG (at least one image when > 0).
    aux_weight : float
        Weight of the auxiliary loss in both phases.
    swd_weight : float
        Weight of align mode's distribution term in the generator phase: the sliced
        Wasserstein distance between ``swd_batch`` encoded rows (each layer group's ``w``) and
        as many ``w = mapping(z)`` of the current generator, in units of W's spread. Without
        it nothing keeps the EEG latents among the generator's own (0: off).
    unmixed_weight : float
        Weight of align's whole-code term (:func:`conditioning.train.unmixed_swd`): the three
        group ws together against the generator's ``(w, w, w)`` (0: off).
    lr : float
        Adam learning rate of the encoder and the head.
    hidden : int
        Width of the head.
    seed : int
        Seeds the row sampling (its own generator, resumed with the run).
    store_path : str
        The EEG store's path, for messages.
    """

    name = "eeg"
    stats_keys = PLOT_KEYS

    def __init__(self, encoder: Encoder, rows: np.ndarray, *, share: float = 0.5,
                 aux_weight: float = 1.0, swd_weight: float = 1.0, unmixed_weight: float = 0.0,
                 swd_batch: int = 256, n_projections: int = 128, lr: float = 1e-3,
                 hidden: int = 256, seed: int = 0, store_path: str = "the EEG store"):
        if not 0.0 < share <= 1.0:
            raise NeuropaintError(f"'eeg_share' must be in (0, 1], got {share!r}.")
        self.encoder = encoder
        self.store_path = store_path
        self.rows = torch.from_numpy(np.ascontiguousarray(rows, dtype=np.float32))
        self.share = float(share)
        self.aux_weight = float(aux_weight)
        self.swd_weight = float(swd_weight)
        self.unmixed_weight = float(unmixed_weight)
        self.swd_batch = int(swd_batch)
        self.n_projections = int(n_projections)
        self.lr = float(lr)
        self.hidden = int(hidden)
        self.gen = torch.Generator().manual_seed(seed + 4242)
        self.head: AuxiliaryHead | None = None

    def attach(self, trainer: Trainer) -> None:
        G = trainer.G
        if not hasattr(G, "mapping"):
            raise NeuropaintError(f"joint mode needs a StyleGAN2 generator with a W space, got "
                                  f"a {type(G).__name__}.")
        if (self.encoder.num_ws, self.encoder.w_dim) != (G.num_ws, G.w_dim):
            raise NeuropaintError(f"the encoder outputs ws [{self.encoder.num_ws}, "
                                  f"{self.encoder.w_dim}] but the generator takes "
                                  f"[{G.num_ws}, {G.w_dim}].")
        self.trainer = trainer
        res = trainer.preset.resolution
        with torch.no_grad():  # D's feature width, whatever the architecture
            _, features = trainer.D(torch.zeros([2, 3, res, res], device=trainer.device), None,
                                    return_features=True)
        self.head = AuxiliaryHead(features.shape[1], self.rows.shape[1], self.hidden)
        betas = (0.9, 0.99)
        trainer.add_trainable("encoder", self.encoder,
                              torch.optim.Adam(self.encoder.parameters(), self.lr, betas),
                              phases=["G"])
        trainer.add_trainable("aux_head", self.head,
                              torch.optim.Adam(self.head.parameters(), self.lr, betas),
                              phases=["G", "D"])
        self.rows = self.rows.to(trainer.device)

    def n_eeg(self, n: int) -> int:
        return min(n, max(1, round(self.share * n)))

    def latents(self, n: int, phase: Phase) -> Latents:
        k = self.n_eeg(n)
        idx = torch.randint(len(self.rows), [k], generator=self.gen)
        x = self.rows[idx.to(self.rows.device)]  # [k, F]
        with torch.set_grad_enabled(phase == "G"):  # the encoder learns in the G phase only
            ws = self.encoder.encode_normalized(x)  # [k, num_ws, w_dim]
        z = self.trainer.sample_z(n - k) if n > k else None
        return Latents(z=z, ws=ws, extra={"eeg": x})

    def _aux(self, fake: FakeBatch, key: str) -> tuple[torch.Tensor, dict]:
        x = fake.latents.extra["eeg"]
        predicted = self.head(fake.features["D"][: len(x)])  # [k, F]
        loss = F.mse_loss(predicted, x)
        return self.aux_weight * loss, {key: loss.detach()}

    def g_loss(self, fake: FakeBatch) -> tuple[torch.Tensor, dict]:
        loss, stats = self._aux(fake, "aux_g")
        if self.swd_weight > 0 or self.unmixed_weight > 0:
            swd, unmixed = self._w_distribution()
            loss = loss + self.swd_weight * swd + self.unmixed_weight * unmixed
            stats["w_swd"] = swd.detach()
            stats["w_unmixed"] = unmixed.detach()
        return loss, stats

    def _w_distribution(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Align's SWDs between encoded rows and the current generator's ``w``: per group,
        and of the whole code against ``(w, w, w)``."""
        from conditioning.train import random_directions, sliced_wasserstein, unmixed_swd

        G, n, device = self.trainer.G, self.swd_batch, self.rows.device
        idx = torch.randint(len(self.rows), [n], generator=self.gen).to(device)
        z = torch.randn([n, G.z_dim], generator=self.gen).to(device)
        directions = random_directions(G.w_dim, self.n_projections, self.gen).to(device)
        whole = random_directions(len(GROUPS) * G.w_dim, self.n_projections, self.gen).to(device)
        with torch.no_grad():
            w = G.mapping(z, None)[:, 0]  # [n, w_dim]: all ws of a row are equal
            mean, scale = w.mean(dim=0), w.var(dim=0).mean().sqrt().clamp_min(1e-8)
        gw = (self.encoder.group_ws(self.rows[idx]) - mean) / scale  # [n, 3, w_dim]
        wr = (w - mean) / scale
        return sliced_wasserstein(gw, wr, directions), unmixed_swd(gw, wr, whole)

    def d_loss(self, fake: FakeBatch) -> tuple[torch.Tensor, dict]:
        return self._aux(fake, "aux_d")

    def state_dict(self) -> dict:
        return {"rows_rng": self.gen.get_state(),
                "spec": json.dumps(self.encoder.spec.model_dump(mode="json")),
                "feature_names": list(self.encoder.feature_names),
                "n_rows": len(self.rows)}

    def load_state_dict(self, state: dict) -> None:
        from conditioning.train import check_store_spec

        spec = FeatureSpec.model_validate(json.loads(state["spec"]))
        check_store_spec(_StoreView(self.store_path, self.encoder.spec), spec,
                         "the joint run being resumed")
        if list(state["feature_names"]) != list(self.encoder.feature_names):
            raise NeuropaintError("the run was trained on other EEG features than this store's; "
                                  "resume it with the EEG store it was started with.")
        if int(state["n_rows"]) != len(self.rows):
            raise NeuropaintError(f"the run was trained on {state['n_rows']} EEG rows, this "
                                  f"store's training split has {len(self.rows)}; resume it with "
                                  f"the EEG store (and --seed, --val-fraction) it was started "
                                  f"with.")
        self.gen.set_state(state["rows_rng"])

    def snapshot_config(self) -> dict:
        return {"eeg_share": self.share, "aux_weight": self.aux_weight,
                "swd_weight": self.swd_weight, "unmixed_weight": self.unmixed_weight,
                "features": len(self.encoder.feature_names), "training_rows": len(self.rows)}


@dataclass
class _StoreView:
    """What :func:`conditioning.train.check_store_spec` reads of a store."""

    path: str
    spec: FeatureSpec


def _generator_settings(generator: str | Path) -> tuple[Path, dict]:
    from gan.checkpoint import read_config, resolve_snapshot

    folder = resolve_snapshot(generator)
    return folder, read_config(folder)


def joint_train_config(cfg: EncoderTrainConfig) -> TrainConfig:
    """The ``gan.train`` settings of a joint run: the generator's own, plus ``--init`` it."""
    folder, config = _generator_settings(cfg.generator)
    trained = config.get("train_config") or {}
    if cfg.tiles is not None and not Path(cfg.tiles).exists():
        raise NeuropaintError(f"--tiles: no such tile store: {cfg.tiles}")
    tiles = cfg.tiles or trained.get("data")
    if not tiles or not Path(tiles).exists():
        raise NeuropaintError(f"--generator {folder} was trained on {tiles!r}, which is not "
                              f"there: joint mode keeps training on real images; pass a tile "
                              f"store with --tiles STORE (python -m datasets.art build, or "
                              f"python -m datasets.procedural for the demo's kind).")
    run_dir = Path(cfg.run_dir) if cfg.run_dir else Path(str(cfg.out) + ".run")
    aug = trained.get("aug", "ada")
    return TrainConfig(
        data=str(tiles), out=str(run_dir), preset=config["preset"]["name"],
        batch=trained.get("batch"), gamma=trained.get("gamma"), kimg=cfg.kimg,
        aug=aug, aug_p=float(config.get("stats", {}).get("aug_p", 0.0)) if aug != "none" else 0,
        aug_target=trained.get("aug_target", 0.6), augpipe=trained.get("augpipe", "bgc"),
        xflip=trained.get("xflip", False), seed=cfg.seed, device=cfg.device,
        snapshot_kimg=cfg.snapshot_kimg,
        tick_kimg=max(min(cfg.snapshot_kimg, cfg.kimg) / 4, 0.008),
        init=str(folder), resume="auto" if cfg.resume else None)


def train_joint(encoder: Encoder, rows: Rows, cfg: EncoderTrainConfig, *,
                progress: bool = False) -> dict[str, Any]:
    """Fine-tune generator and encoder together; return the run's history and snapshot.

    The encoder's weights on return are those of the final snapshot, and its recorded
    generator is that snapshot's G_ema, as it will be copied to ``OUT/generator``.
    """
    from gan.checkpoint import load_state, resolve_snapshot

    train_cfg = joint_train_config(cfg)
    run_dir = Path(train_cfg.out)
    if (run_dir / "snapshots").exists() and not cfg.resume:
        raise NeuropaintError(f"{run_dir} already holds a joint run: pass --resume to continue "
                              f"it, or choose another --out (or --run-dir).")
    ext = EEGConditioning(encoder, rows.normalized[rows.train], share=cfg.eeg_share,
                          aux_weight=cfg.aux_weight, swd_weight=cfg.swd_weight,
                          unmixed_weight=cfg.unmixed_weight, n_projections=cfg.n_projections,
                          lr=cfg.lr, hidden=cfg.hidden, seed=cfg.seed, store_path=cfg.eeg)
    trainer = Trainer(train_cfg, extensions=[ext])
    trainer.train(progress=progress)
    snapshot = resolve_snapshot(run_dir)
    weights = load_state(snapshot)["trainables"]["encoder"]["weights"]
    encoder.load_state_dict(weights)
    identity = generator_identity(snapshot)
    identity["path"] = str(Path(cfg.out) / GENERATOR_FOLDER)
    encoder.generator_info = identity
    history = trainer.history_from_disk()
    return {"history": history, "snapshot": snapshot, "run_dir": run_dir,
            "final": {k: history[-1].get(k) for k in ("kimg", "loss_g", "loss_d", *AUX_KEYS)}
            if history else None}


def copy_generator(snapshot: Path, out: Path) -> Path:
    """Copy a snapshot's files into ``OUT/generator`` atomically (a normal snapshot folder)."""
    target = out / GENERATOR_FOLDER
    with atomic_folder(target) as partial:
        for file in snapshot.iterdir():
            if file.is_file():
                shutil.copy2(file, partial / file.name)
    return target
