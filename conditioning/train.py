"""``python -m conditioning.train``: fit an EEG -> W encoder for a generator.

Modes
-----
``align`` (default; the generator stays frozen; minutes on a CPU)
    The encoder is trained so that encoded EEG lands where the generator's own ``w`` live,
    keeps the EEG's information, and moves smoothly. Three losses, all scale-free (``w`` is
    measured in units of the generator's W spread, features are standardised):

    - **distribution** (weight ``--swd-weight``, 1.0): the sliced Wasserstein distance
      (Rabin et al. 2011; Deshpande et al. 2018) between each layer group's encoded ``w`` and
      a batch of ``w = mapping(z)``, over 128 random directions per step;
    - **whole code** (``--unmixed-weight``, 1.0): the same distance between the three group
      ``w`` taken together and the generator's own ``(w, w, w)``. The groups see different
      features (see :mod:`conditioning.encoder`), and group ws drawn independently are style
      mixing, which a generator may never have been trained to paint; this term ties them. It
      is a trade: for the bundled demo generator, on 8 held-out sessions painted live (10 s
      calibration, running baseline), weights 0, 0.25, 1 and 4 gave image coverage ratios of
      3.30, 2.87, 2.38 and 2.03 and responsiveness of 0.81, 0.80, 0.75 and 0.67
      (``benchmarks/fidelity.py --generator live/demo_model/generator --channels 32 --modes
      align --unmixed-weight 0,0.25,1,4 --calibration 10@0.003 --tau 0.6``); on the
      benchmark's own tiny generator weights 0 and 1 gave 6.30 and 1.92 at 0.82 and 0.79
      (``--modes align,joint --unmixed-weight 0,1``; joint: 8.08 and 5.93 at 0.79 and 0.77);
    - **information** (``--recon-weight``, 1.0): a small decoder, trained alongside and thrown
      away, must reconstruct the standardised features from the three group ``w`` (MSE; 1.0
      means nothing of the EEG survives);
    - **smoothness** (``--smooth-weight``, 1.0): the mean squared distance between the ``w`` of
      temporal neighbours of one recording (rows 1-5 hops apart) divided by that of random
      pairs, so that the painting holds still within a state and moves between states.

``pca`` (closed form, no training)
    GANSpace-style (Härkönen et al. 2020): principal directions of W are estimated from
    mapping-network samples, principal components of each layer group's standardised EEG
    features drive them. The encoder's linear path is set so that, per group,
    ``w = mean(w) + sum_k strength * score_k * sigma_k * d_k`` with ``score_k`` the unit-variance
    score of EEG component k, ``d_k`` and ``sigma_k`` W's k-th direction and its spread. A table
    tells which EEG component (its top-loading features) drives which direction.

``joint`` (the seed's way; the generator is fine-tuned too)
    Inside ``gan.train``'s loop (see :mod:`conditioning.joint`): the generator starts from
    ``--generator`` and keeps training on real tiles, a share (``--eeg-share``) of every batch
    rendered from ``ws = encoder(EEG row)`` and the rest from Gaussian ``z``; an auxiliary head
    on the discriminator's features must recover the standardised EEG row from the
    EEG-driven images (InfoGAN-style, ``--aux-weight``), and align's distribution term
    (``--swd-weight``) keeps the encoded w among the generator's. ``--kimg`` sets the length. The
    encoder is saved for the fine-tuned generator, which is copied to ``OUT/generator``; the
    ``gan.train`` run (``--run-dir``, default ``OUT.run``) resumes with ``--resume``. The
    fidelity figures of :func:`conditioning.metrics.evaluate_encoder` on the validation
    recordings are printed at the end.

With ``--output-map`` (off by default; see :mod:`conditioning.transport` for what it did and
did not do on the fidelity benchmark), the **output map**
(:mod:`conditioning.transport`) is fitted in closed form: the training recordings are painted
as the live loop paints them (motion-smoothed with ``--output-map-tau``), and each layer
group's painted ws are carried onto the generator's W distribution by the Gaussian
optimal-transport map. Training's distribution term matches single rows; the painting is a
smoothed path, whose spread is another one.

Splits are by recording (``EEGStore.split``): the validation recordings are never seen in
training, and the figures printed at the end (nearest-centroid state accuracy in W, the SWD
to the generator's W) are theirs. Features are standardised per recording ("per session", as
a live session calibrates its own baseline); ``--normalization live`` standardises each row
as the live loop will see it (the baseline of the first ``calibration`` seconds, then a running
update with a memory of ``baseline_memory`` seconds: train as you play); ``--normalization
global`` uses one baseline.

Outputs in ``--out``: the encoder (``config.json`` + ``encoder.safetensors``), ``loss.png``
(align, joint), ``states.png`` (one row of paintings per brain state of the validation
recordings: the state's mean features, then single moments), ``history.jsonl`` (align,
joint), for pca ``components.txt``, and for joint ``generator/`` and ``fidelity.json``.

Examples
--------
python -m conditioning.train --eeg stores/eeg --generator runs/cpu64 --out encoders/align
python -m conditioning.train --eeg stores/eeg --generator runs/cpu64 --mode pca --out enc/pca
python -m conditioning.train --eeg stores/eeg --generator runs/cpu64 --mode joint \\
    --out encoders/joint --kimg 20 --eeg-share 0.5 --aux-weight 1.0
python -m conditioning.render encoders/joint encoders/joint/generator session.fif --out out/
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from conditioning.encoder import GROUPS, Encoder, FeatureNormalizer
from datasets.eeg import EEGStore
from eeg.features import FeatureSpec
from neuropaint.atomic import atomic_path, write_text
from neuropaint.logs import run_cli, setup_logging
from neuropaint.validate import NeuropaintError, build_config, load_config_file

logger = logging.getLogger(__name__)

MODES = ("align", "pca", "joint")
W_POOL = 16384       # Mapping-network samples drawn once per run (W statistics, SWD batches).
MAX_EVAL_ROWS = 1024  # Validation rows per evaluation (a fixed, evenly spaced subset).


class EncoderTrainConfig(BaseModel):
    """Everything ``conditioning.train`` is told; saved in the encoder's training stats."""

    model_config = ConfigDict(extra="forbid")

    eeg: str = Field(description="EEG feature store (python -m datasets.eeg build).")
    generator: str = Field(description="Generator snapshot or run folder (gan.train).")
    out: str = Field(description="Encoder folder to write.")
    mode: Literal["align", "pca", "joint"] = Field("align", description="How to fit.")
    steps: int = Field(1500, ge=1, description="align: optimisation steps.")
    seed: int = Field(0, ge=0, description="Random seed (split, batches, W samples).")
    batch: int = Field(256, ge=8, description="align: feature rows per step.")
    lr: float = Field(1e-3, gt=0, description="align: Adam learning rate.")
    hidden: int = Field(256, ge=1, description="Width of each group's trunk.")
    code_dim: int = Field(32, ge=1, description="Code size of each group.")
    swd_weight: float = Field(1.0, ge=0, description="align, joint: distribution-matching "
                              "weight (encoded w among the generator's w).")
    unmixed_weight: float = Field(1.0, ge=0, description="align, joint: weight of the "
                                  "whole-code distribution term (the three group ws together "
                                  "against the generator's own, unmixed ws), which ties the "
                                  "groups together.")
    recon_weight: float = Field(1.0, ge=0, description="align: information (decoder) weight.")
    smooth_weight: float = Field(1.0, ge=0, description="align: smoothness weight.")
    n_projections: int = Field(128, ge=1, description="align: SWD directions per step.")
    feature_noise: float = Field(0.0, ge=0, description="align: Gaussian noise (in standard "
                                 "deviations) added to the encoder's input; the decoder must "
                                 "recover the clean features.")
    neighbour_hops: int = Field(5, ge=1, description="align: temporal neighbours are up to "
                                "this many hops apart.")
    val_fraction: float = Field(0.25, gt=0, lt=1, description="Share of recordings held out.")
    normalization: Literal["session", "live", "global"] = Field(
        "session", description="Standardise each recording by its own whole baseline, by the "
        "baseline the live loop would have at each row, or all by one.")
    calibration: float = Field(10.0, gt=0, description="live normalization: seconds of each "
                               "recording that set its first baseline (the live calibration).")
    baseline_memory: float | None = Field(60.0, gt=0, description="live normalization: memory "
                                          "in seconds of the running baseline update after "
                                          "calibration (the live engine's); None: fixed.")
    components: int = Field(5, ge=1, description="pca: EEG components (W directions) per "
                            "layer group.")
    strength: float = Field(1.0, gt=0, description="pca: w moves strength x sigma_k per "
                            "standard deviation of an EEG component.")
    init: str | None = Field(None, description="align, joint: an encoder folder to start "
                             "from.")
    kimg: float = Field(2.0, gt=0, description="joint: thousands of real images to fine-tune "
                        "the generator for.")
    eeg_share: float = Field(0.5, gt=0, le=1, description="joint: share of each batch "
                             "rendered from EEG (the rest from Gaussian z).")
    aux_weight: float = Field(1.0, ge=0, description="joint: weight of the auxiliary head's "
                              "EEG-recovery loss.")
    tiles: str | None = Field(None, description="joint: tile store of real images (None: the "
                              "one the generator was trained on).")
    run_dir: str | None = Field(None, description="joint: the gan.train run folder (None: "
                                "OUT.run).")
    snapshot_kimg: float = Field(1.0, gt=0, description="joint: kimg between snapshots.")
    resume: bool = Field(False, description="joint: continue the run in run_dir.")
    fidelity: bool = Field(True, description="joint: measure responsiveness, coverage and "
                           "smoothness on the validation recordings at the end.")
    spec: str | None = Field(None, description="FeatureSpec JSON the store must have been "
                             "built with.")
    output_map: bool = Field(False, description="Fit the output map that moves the painted "
                             "(motion-smoothed) ws onto the generator's W distribution "
                             "(conditioning.transport). Off by default: on the fidelity "
                             "benchmark it cost responsiveness and, with the live baseline, "
                             "coverage too. Not for pca: it would mix the components the "
                             "printed table names.")
    output_map_tau: float = Field(0.5, gt=0, description="The motion time constant (s) the "
                                  "output map is fitted for: the painting's (live.render "
                                  "--tau, conditioning.render --tau).")
    device: str = Field("cpu", description="'cpu', 'cuda' or 'cuda:N'.")
    eval_every: int | None = Field(None, ge=1, description="align: steps between validation "
                                   "losses (None: about 25 per run).")


# -- inputs ------------------------------------------------------------------------------------

def load_generator_for_encoding(path: str | Path, device: str = "cpu") -> torch.nn.Module:
    """The frozen generator of a snapshot, refused with one line if it has no W space."""
    from gan.checkpoint import load_generator, resolve_snapshot

    try:
        folder = resolve_snapshot(path)
    except NeuropaintError as exc:
        raise NeuropaintError(f"--generator: {exc}") from None
    G = load_generator(folder, device=device)
    if getattr(getattr(G, "mapping", None), "w_avg", None) is None:
        raise NeuropaintError(f"--generator: {folder} holds a {type(G).__name__}, which has no "
                              f"W space; the encoder needs a StyleGAN2 generator.")
    return G


def _spec_differences(a: FeatureSpec, b: FeatureSpec) -> str:
    da, db = a.model_dump(mode="json"), b.model_dump(mode="json")
    diffs = [f"{k} {da[k]!r} vs {db[k]!r}" for k in da if da[k] != db.get(k)]
    return "; ".join(diffs[:4]) or "no field differs"


def check_store_spec(store: EEGStore, spec: FeatureSpec, what: str) -> None:
    """Raise unless the store's features were computed with ``spec``."""
    if store.spec != spec:
        raise NeuropaintError(f"the EEG store {store.path} was built with a different "
                              f"FeatureSpec than {what} ({_spec_differences(store.spec, spec)}); "
                              f"rebuild the store with that spec.")


def load_spec_file(path: str | Path) -> FeatureSpec:
    return load_config_file(path, FeatureSpec)


@dataclass
class Rows:
    """The store's usable rows, standardised, with the split by recording."""

    raw: np.ndarray         # float32 [N, F], finite
    normalized: np.ndarray  # float32 [N, F], standardised (per session) and clipped
    recording: np.ndarray   # int [N]
    times: np.ndarray       # float64 [N]
    labels: np.ndarray      # object [N], "" = unlabelled
    train: np.ndarray       # bool [N]
    val: np.ndarray         # bool [N]
    pairs: np.ndarray       # int [P, 2], temporal neighbours among the training rows
    baseline: FeatureNormalizer  # pooled baseline of the training rows (saved with the encoder)
    report: dict[str, Any]


def prepare_rows(store: EEGStore, cfg: EncoderTrainConfig) -> Rows:
    """Valid, finite rows; split by recording; standardised; neighbour pairs for smoothness."""
    features = np.asarray(store.features, dtype=np.float32)
    n_total = len(features)
    valid = np.asarray(store.valid, dtype=bool)
    finite = np.isfinite(features).all(axis=1)
    n_flagged = int((~valid).sum())
    n_nan = int((valid & ~finite).sum())
    usable = valid & finite
    if not usable.any():
        why = (f"all {n_total} rows are flagged invalid" if n_flagged == n_total else
               f"{n_flagged} rows are flagged invalid and {n_nan} have non-finite features")
        raise NeuropaintError(f"the EEG store {store.path} has no usable rows: {why}.")
    if n_nan:
        logger.warning("skipped %d of %d rows with non-finite (NaN/inf) features", n_nan,
                       n_total)
    recording = np.asarray(store.recording)
    n_recordings = len(store.recordings)
    if n_recordings >= 2:
        train_idx, val_idx = stratified_split(store, cfg.val_fraction, seed=cfg.seed)
        train = np.zeros(n_total, dtype=bool)
        val = np.zeros(n_total, dtype=bool)
        train[train_idx] = True
        val[val_idx] = True
        train &= usable
        val &= usable
    else:
        logger.warning("the store has one recording: validation uses the training rows, so "
                       "its figures are not held out")
        train = val = usable.copy()
    if not train.any():
        raise NeuropaintError(f"the training recordings of {store.path} have no usable rows "
                              f"(flagged or non-finite); add clean recordings.")

    # Per-session baselines need a few rows; recordings with fewer are dropped.
    normalized = np.zeros_like(features)
    baseline = FeatureNormalizer(features.shape[1])
    baseline.calibrate(features[train])
    dropped = []
    for rec in np.unique(recording[usable]):
        rows = np.flatnonzero(usable & (recording == rec))
        if cfg.normalization == "live":
            if len(rows) < 2:
                dropped.append(int(rec))
                usable[rows] = False
                continue
            normalized[rows] = live_normalized(features[rows], np.asarray(store.times)[rows],
                                               cfg.calibration, cfg.baseline_memory,
                                               store.spec.hop)
            continue
        if cfg.normalization == "session":
            if len(rows) < 2:
                dropped.append(int(rec))
                usable[rows] = False
                continue
            norm = FeatureNormalizer(features.shape[1]).calibrate(features[rows])
        else:
            norm = baseline
        with torch.no_grad():
            normalized[rows] = norm(torch.from_numpy(features[rows])).numpy()
    train &= usable
    val &= usable
    if dropped:
        logger.warning("dropped recordings %s: fewer than 2 usable rows for a baseline",
                       dropped)
    if not val.any():
        logger.warning("the validation recordings have no usable rows: validation uses the "
                       "training rows")
        val = train.copy()

    keep = np.flatnonzero(usable)
    remap = np.full(n_total, -1)
    remap[keep] = np.arange(len(keep))
    pairs = _neighbour_pairs(recording[keep], np.asarray(store.times)[keep], train[keep],
                             store.spec.hop, cfg.neighbour_hops)
    sessions = [r["session"] for r in store.recordings]
    report = {
        "rows": n_total,
        "flagged": n_flagged,
        "skipped_non_finite": n_nan,
        "train_rows": int(train.sum()),
        "val_rows": int(val.sum()),
        "train_recordings": sorted({sessions[r] for r in recording[train]}),
        "val_recordings": sorted({sessions[r] for r in recording[val]}),
        "neighbour_pairs": len(pairs),
        "normalization": cfg.normalization,
    }
    return Rows(raw=features[keep], normalized=normalized[keep], recording=recording[keep],
                times=np.asarray(store.times)[keep], labels=np.asarray(store.labels)[keep],
                train=train[keep], val=val[keep], pairs=pairs, baseline=baseline, report=report)


def live_normalized(features: np.ndarray, times: np.ndarray, calibration: float,
                    memory: float | None, hop: float) -> np.ndarray:
    """One recording's rows standardised as the live loop would standardise them.

    The baseline is set from the rows of the first ``calibration`` seconds (at least 2); each
    later row is standardised by the baseline before it, then moves it with momentum
    ``hop / memory`` (:meth:`FeatureNormalizer.update`, as :class:`conditioning.follow.
    LatentFollower` does live). Rows inside the calibration period get its baseline.
    """
    order = np.argsort(times, kind="stable")
    feats, t = features[order], times[order] - times[order][0]
    n_cal = max(2, int(np.searchsorted(t, calibration, side="right")))
    norm = FeatureNormalizer(features.shape[1]).calibrate(feats[:n_cal])
    out = np.empty_like(feats)
    with torch.no_grad():
        out[:n_cal] = norm(torch.from_numpy(feats[:n_cal])).numpy()
        momentum = None if memory is None else min(1.0, hop / memory)
        for i in range(n_cal, len(feats)):
            out[i] = norm(torch.from_numpy(feats[i : i + 1])).numpy()[0]
            if momentum is not None:
                norm.update(feats[i : i + 1], momentum)
    result = np.empty_like(out)
    result[order] = out
    return result


def _neighbour_pairs(recording: np.ndarray, times: np.ndarray, train: np.ndarray, hop: float,
                     max_hops: int) -> np.ndarray:
    """Index pairs (i, j) of training rows of one recording, 1..max_hops hops apart."""
    idx = np.flatnonzero(train)
    order = idx[np.lexsort((times[idx], recording[idx]))]
    pairs = []
    for k in range(1, max_hops + 1):
        a, b = order[:-k], order[k:]
        dt = times[b] - times[a]
        ok = (recording[a] == recording[b]) & (dt > 0) & (dt <= max_hops * hop * 1.01 + 1e-9)
        pairs.append(np.stack([a[ok], b[ok]], axis=1))
    return np.concatenate(pairs) if pairs else np.zeros((0, 2), dtype=np.int64)


# -- W statistics ------------------------------------------------------------------------------

@torch.no_grad()
def sample_w(G: torch.nn.Module, n: int, *, seed: int, batch: int = 4096) -> torch.Tensor:
    """``w = mapping(z)`` for ``n`` seeded Gaussian ``z``: float32 ``[n, w_dim]`` on CPU."""
    gen = torch.Generator().manual_seed(seed)
    device = G.mapping.w_avg.device
    out = []
    for start in range(0, n, batch):
        m = min(batch, n - start)
        z = torch.randn([m, G.z_dim], generator=gen).to(device)
        c = None
        if getattr(G, "c_dim", 0):
            labels = torch.randint(G.c_dim, [m], generator=gen)
            c = F.one_hot(labels, G.c_dim).float().to(device)  # random class, one-hot
        out.append(G.mapping(z, c)[:, 0].float().cpu())  # [m, w_dim]; all ws are equal
    return torch.cat(out)


@dataclass
class WStats:
    """The generator's W distribution, from mapping samples."""

    pool: torch.Tensor        # [P, w_dim]
    mean: torch.Tensor        # [w_dim]
    scale: torch.Tensor       # scalar: RMS of the per-dimension std (W's unit here)

    @classmethod
    def of(cls, G: torch.nn.Module, *, seed: int, n: int = W_POOL) -> WStats:
        pool = sample_w(G, n, seed=seed)
        scale = pool.var(dim=0).mean().sqrt().clamp_min(1e-8)
        return cls(pool=pool, mean=pool.mean(dim=0), scale=scale)


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, directions: torch.Tensor
                       ) -> torch.Tensor:
    """Squared sliced 2-Wasserstein distance between equal-sized point sets, averaged.

    ``a`` is ``[N, D]`` or ``[N, G, D]`` (G sets compared with ``b`` at once, the mean over
    them returned), ``b`` is ``[N, D]``, ``directions`` ``[D, K]`` unit vectors; along each
    direction the sorted projections are matched.
    """
    pa = torch.sort(a @ directions, dim=0).values  # [N, (G,) K]
    pb = torch.sort(b @ directions, dim=0).values  # [N, K]
    if pa.ndim == 3:
        pb = pb.unsqueeze(1)  # [N, 1, K]
    return (pa - pb).square().mean()


def unmixed_swd(gw: torch.Tensor, wr: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """SWD of the whole code: group ws ``[N, 3, D]`` as one ``[N, 3D]`` vector against the
    generator's own ``[w, w, w]`` (``wr`` ``[N, D]``; ``directions`` ``[3D, K]``).

    The generator paints every layer from one ``w``; group ws that are each in W but drawn
    independently are style mixing, which moves the paintings off the generator's own
    (see :mod:`conditioning.transport`). Per-group matching cannot see this; this term can.
    """
    return sliced_wasserstein(gw.flatten(1), wr.repeat(1, gw.shape[1]), directions)


def random_directions(dim: int, n: int, gen: torch.Generator) -> torch.Tensor:
    d = torch.randn([dim, n], generator=gen)
    return d / d.norm(dim=0, keepdim=True)  # [dim, n], unit columns


# -- align ------------------------------------------------------------------------------------

class FeatureDecoder(nn.Module):
    """Reads the three group ``w`` back into standardised features (the information loss)."""

    def __init__(self, w_dim: int, n_features: int, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(len(GROUPS) * w_dim, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, n_features),
        )

    def forward(self, group_w: torch.Tensor) -> torch.Tensor:
        return self.net(group_w.flatten(1))  # [N, 3 * w_dim] -> [N, F]


def align_losses(encoder: Encoder, decoder: FeatureDecoder, x: torch.Tensor,
                 x_a: torch.Tensor, x_b: torch.Tensor, w_real: torch.Tensor, wstats: WStats,
                 directions: torch.Tensor, whole_directions: torch.Tensor,
                 noise: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The align losses on one batch (w in units of W's spread).

    ``directions`` ``[w_dim, K]`` are for the per-group distribution term,
    ``whole_directions`` ``[3 w_dim, K]`` for the whole code's (:func:`unmixed_swd`).

    ``noise`` (same shape as ``x``) is added to the encoder's input only: the decoder must
    still recover the clean features (denoising), so the code keeps what rows share.
    """
    x_in = x if noise is None else x + noise
    gw = (encoder.group_ws(x_in) - wstats.mean) / wstats.scale       # [B, 3, w_dim]
    wr = (w_real - wstats.mean) / wstats.scale                       # [B, w_dim]
    swd = sliced_wasserstein(gw, wr, directions)  # mean over the three groups
    unmixed = unmixed_swd(gw, wr, whole_directions)
    recon = F.mse_loss(decoder(gw), x)
    w_a = encoder.group_ws(x_a) / wstats.scale                       # [P, 3, w_dim]
    w_b = encoder.group_ws(x_b) / wstats.scale
    # Neighbours' squared distance over that of two random w of the generator (2 x W's total
    # variance, which is 2 w_dim in these units): 0 = frozen, 1 = as far as random paintings.
    # A fixed denominator, not the batch's own spread: at the start all w coincide and a
    # ratio to their spread would explode.
    smooth = (w_a - w_b).square().sum(-1).mean() / (2 * encoder.w_dim)
    return {"swd": swd, "unmixed": unmixed, "recon": recon, "smooth": smooth}


def _weighted(losses: dict[str, torch.Tensor], cfg: EncoderTrainConfig) -> torch.Tensor:
    return (cfg.swd_weight * losses["swd"] + cfg.unmixed_weight * losses["unmixed"]
            + cfg.recon_weight * losses["recon"]
            + cfg.smooth_weight * losses["smooth"])


def train_align(encoder: Encoder, G: torch.nn.Module, rows: Rows, cfg: EncoderTrainConfig,
                *, progress: bool = False) -> list[dict]:
    """Optimise the encoder (and a throw-away decoder) against the frozen generator's W."""
    device = torch.device(cfg.device)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed + 17)
    rng = np.random.default_rng(cfg.seed)
    wstats = WStats.of(G, seed=cfg.seed + 1)
    wstats = WStats(wstats.pool.to(device), wstats.mean.to(device), wstats.scale.to(device))
    encoder.to(device).train()
    decoder = FeatureDecoder(encoder.w_dim, len(encoder.feature_names), cfg.hidden).to(device)
    params = list(encoder.parameters()) + list(decoder.parameters())
    opt = torch.optim.Adam(params, lr=cfg.lr, betas=(0.9, 0.99))
    sched = torch.optim.lr_scheduler.LambdaLR(  # cosine decay to 10 % for a calm finish
        opt, lambda s: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s / cfg.steps, 1.0))))
    X = torch.from_numpy(rows.normalized).to(device)
    train_idx = np.flatnonzero(rows.train)
    pairs = rows.pairs if len(rows.pairs) else np.stack([train_idx, train_idx], axis=1)
    batch = min(cfg.batch, len(train_idx))
    eval_every = cfg.eval_every or max(1, cfg.steps // 25)
    val_eval = _eval_batch(rows, wstats, encoder.w_dim, cfg, device)

    history: list[dict] = []
    running: list[dict] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, desc="align", unit="step")
    started = time.perf_counter()
    try:
        for step in range(1, cfg.steps + 1):
            idx = torch.from_numpy(rng.choice(train_idx, batch, replace=len(train_idx) < batch))
            pair = pairs[rng.integers(len(pairs), size=batch)]
            w_real = wstats.pool[torch.randint(len(wstats.pool), [batch], generator=gen)
                                 .to(device)]
            directions = random_directions(encoder.w_dim, cfg.n_projections, gen).to(device)
            whole_directions = random_directions(len(GROUPS) * encoder.w_dim,
                                                 cfg.n_projections, gen).to(device)
            x = X[idx.to(device)]
            noise = None
            if cfg.feature_noise > 0:
                noise = cfg.feature_noise * torch.randn(x.shape, generator=gen).to(device)
            losses = align_losses(encoder, decoder, x,
                                  X[torch.from_numpy(pair[:, 0]).to(device)],
                                  X[torch.from_numpy(pair[:, 1]).to(device)], w_real, wstats,
                                  directions, whole_directions, noise)
            loss = _weighted(losses, cfg)
            if not torch.isfinite(loss):
                raise NeuropaintError(f"the align loss became {loss.item()} at step {step}; "
                                      f"lower --lr.")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running.append({k: float(v.detach()) for k, v in losses.items()}
                           | {"loss": float(loss.detach())})
            if step % eval_every == 0 or step == cfg.steps:
                line = {"step": step, "seconds": round(time.perf_counter() - started, 3)}
                line |= {k: float(np.mean([r[k] for r in running])) for k in running[0]}
                line |= {f"val_{k}": v for k, v in
                         _evaluate(encoder, decoder, val_eval, wstats, cfg).items()}
                history.append(line)
                running = []
                if bar is not None:
                    bar.set_postfix_str(f"loss {line['loss']:.3f} val {line['val_loss']:.3f}")
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    encoder.eval()
    return history


@dataclass
class _EvalBatch:
    x: torch.Tensor
    x_a: torch.Tensor
    x_b: torch.Tensor
    w_real: torch.Tensor
    directions: torch.Tensor
    whole_directions: torch.Tensor


def _eval_batch(rows: Rows, wstats: WStats, w_dim: int, cfg: EncoderTrainConfig,
                device: torch.device) -> _EvalBatch:
    """A fixed validation batch (rows, neighbour pairs, W samples, directions)."""
    val_idx = np.flatnonzero(rows.val)
    take = val_idx[np.linspace(0, len(val_idx) - 1, min(len(val_idx), MAX_EVAL_ROWS)).astype(int)]
    pairs = _neighbour_pairs(rows.recording, rows.times, rows.val, _hop_of(rows),
                             cfg.neighbour_hops)
    if not len(pairs):
        pairs = np.stack([take, take], axis=1)
    pairs = pairs[np.linspace(0, len(pairs) - 1, min(len(pairs), MAX_EVAL_ROWS)).astype(int)]
    gen = torch.Generator().manual_seed(cfg.seed + 99)
    w_real = wstats.pool[torch.randint(len(wstats.pool), [len(take)], generator=gen)
                         .to(wstats.pool.device)]
    X = torch.from_numpy(rows.normalized)
    return _EvalBatch(X[take].to(device), X[pairs[:, 0]].to(device), X[pairs[:, 1]].to(device),
                      w_real, random_directions(w_dim, 256, gen).to(device),
                      random_directions(len(GROUPS) * w_dim, 256, gen).to(device))


def _hop_of(rows: Rows) -> float:
    d = np.diff(rows.times)
    d = d[d > 0]
    return float(np.median(d)) if len(d) else 1.0


@torch.no_grad()
def _evaluate(encoder: Encoder, decoder: FeatureDecoder, b: _EvalBatch, wstats: WStats,
              cfg: EncoderTrainConfig) -> dict[str, float]:
    was_training = encoder.training
    encoder.eval()
    decoder.eval()
    losses = align_losses(encoder, decoder, b.x, b.x_a, b.x_b, b.w_real, wstats, b.directions,
                          b.whole_directions)
    out = {k: float(v) for k, v in losses.items()}
    out["loss"] = float(_weighted(losses, cfg))
    encoder.train(was_training)
    decoder.train(was_training)
    return out


# -- pca --------------------------------------------------------------------------------------

def w_principal_directions(G: torch.nn.Module, *, seed: int, n: int = W_POOL
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """PCA of mapping-network samples: mean ``[w_dim]``, directions ``[K, w_dim]`` (rows),
    spreads ``sigma`` ``[K]`` and explained-variance ratios ``[K]``, largest first."""
    pool = sample_w(G, n, seed=seed).double().numpy()
    mean = pool.mean(axis=0)
    cov = np.cov(pool - mean, rowvar=False).reshape(pool.shape[1], pool.shape[1])
    eigval, eigvec = np.linalg.eigh(cov)
    order = np.argsort(eigval)[::-1]
    eigval = np.maximum(eigval[order], 0.0)
    dirs = eigvec[:, order].T  # [K, w_dim]
    dirs *= np.sign(dirs[np.arange(len(dirs)), np.abs(dirs).argmax(axis=1)])[:, None]
    return mean, dirs, np.sqrt(eigval), eigval / max(eigval.sum(), 1e-12)


def fit_pca(encoder: Encoder, G: torch.nn.Module, rows: Rows, cfg: EncoderTrainConfig
            ) -> list[dict]:
    """Set the encoder in closed form (see the module notes); return the component table."""
    w_mean, w_dirs, w_sigma, w_ratio = w_principal_directions(G, seed=cfg.seed + 1)
    X = rows.normalized[rows.train].astype(np.float64)
    if len(X) < 3:
        raise NeuropaintError(f"pca needs at least 3 training rows, got {len(X)}.")
    w_avg = encoder.w_avg.double().cpu().numpy()
    table = []
    with torch.no_grad():
        for group in GROUPS:
            cols = encoder.feature_groups[group]
            Xg = X[:, cols]
            centre = Xg.mean(axis=0)
            _, s, vt = np.linalg.svd(Xg - centre, full_matrices=False)
            lam = s**2 / (len(Xg) - 1)
            ratio = lam / max(lam.sum(), 1e-12)
            n_comp = int(min(cfg.components, len(cols), encoder.w_dim, (lam > 1e-9).sum()))
            weight = np.zeros((encoder.w_dim, len(cols)))
            for k in range(n_comp):
                v = vt[k] * np.sign(vt[k][np.abs(vt[k]).argmax()])  # top loading positive
                gain = cfg.strength * w_sigma[k] / math.sqrt(lam[k])
                weight += gain * np.outer(w_dirs[k], v)
                top = np.argsort(-np.abs(v))[:3]
                table.append({
                    "group": group, "w_direction": k + 1, "w_sigma": float(w_sigma[k]),
                    "w_variance": float(w_ratio[k]), "eeg_component": k + 1,
                    "eeg_variance": float(ratio[k]),
                    "top_features": [(encoder.feature_names[cols[i]], float(v[i])) for i in top],
                })
            bias = w_mean - w_avg - weight @ centre
            encoder.skip[group].weight.copy_(torch.from_numpy(weight).float())
            encoder.head[group].weight.zero_()  # the nonlinear path is off: linear in closed form
            encoder.head[group].bias.copy_(torch.from_numpy(bias).float())
    return table


def format_components(table: list[dict], strength: float) -> str:
    """The component -> direction table a performer reads."""
    lines = [f"EEG component -> W direction (per standard deviation of the component, w moves "
             f"{strength:g} x sigma along the direction; + features raise the score):",
             f"{'group':<7} {'W dir':<6} {'sigma':>7} {'W var':>6}   {'EEG comp':<9} "
             f"{'EEG var':>7}  top-loading features"]
    slow_fast = {"coarse": "slow", "middle": "all", "fine": "fast"}
    for row in table:
        feats = ", ".join(f"{'+' if w >= 0 else '-'}{name}" for name, w in row["top_features"])
        eeg = f"{slow_fast[row['group']]}-PC{row['eeg_component']}"
        lines.append(
            f"{row['group']:<7} PC{row['w_direction']:<4} {row['w_sigma']:>7.3f} "
            f"{100 * row['w_variance']:>5.1f}% <- {eeg:<9}"
            f"{100 * row['eeg_variance']:>6.1f}%  {feats}")
    return "\n".join(lines)


# -- figures -----------------------------------------------------------------------------------

STRATIFY_TRIES = 64  # Splits by recording tried before the one that covers most states.


def stratified_split(store, fraction: float, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation rows split **by recording**, the validation recordings chosen
    among ``STRATIFY_TRIES`` seeded draws to hold as many of the training states as they can
    (the first draw that holds them all wins), so the held-out figures measure every state
    that can be measured. A held-out part that still lacks states is said in a warning."""
    labels = np.asarray(store.label_names)[np.asarray(store.label_index)]
    best = None
    for k in range(STRATIFY_TRIES):
        train_idx, val_idx = store.split(fraction, seed=seed + k)
        wanted = set(labels[train_idx]) - {""}
        covered = len(set(labels[val_idx]) & wanted)
        if best is None or covered > best[0]:
            best = (covered, train_idx, val_idx, wanted)
        if covered == len(wanted):
            break
    covered, train_idx, val_idx, wanted = best
    missing = sorted(wanted - set(labels[val_idx]))
    if missing:
        logger.warning("the held-out recordings lack the state(s) %s (no split by recording "
                       "holds them all): held-out figures leave them out",
                       ", ".join(missing))
    return train_idx, val_idx


@torch.no_grad()
def held_out_figures(encoder: Encoder, rows: Rows, wstats: WStats | None = None
                     ) -> dict[str, Any]:
    """Nearest-centroid state accuracy of encoded w on the validation rows, and their SWD."""
    X = torch.from_numpy(rows.normalized)
    w = encoder.group_ws(X.to(encoder.w_avg.device)).flatten(1).cpu().numpy()  # [N, 3*w_dim]
    out: dict[str, Any] = {}
    labelled = rows.labels != ""
    train, val = rows.train & labelled, rows.val & labelled
    states = sorted(set(rows.labels[train]) & set(rows.labels[val]))
    if len(states) >= 2:
        centroids = np.stack([w[train & (rows.labels == s)].mean(axis=0) for s in states])
        keep = val & np.isin(rows.labels, states)
        dist = ((w[keep][:, None, :] - centroids[None]) ** 2).sum(-1)  # [n_val, n_states]
        predicted = np.asarray(states, dtype=object)[dist.argmin(axis=1)]
        truth = rows.labels[keep]
        out["state_accuracy"] = float((predicted == truth).mean())
        out["balanced_state_accuracy"] = float(np.mean([np.mean(predicted[truth == s] == s)
                                                         for s in states]))
        out["chance"] = float(max(np.mean(truth == s) for s in states))  # the majority share
        out["states"] = states
    else:
        held = sorted(set(rows.labels[val]) - {""})
        out["state_accuracy_missing"] = (
            f"the held-out rows hold {len(held)} state(s) ({', '.join(held) or 'none'}) that "
            f"training also has; a state accuracy needs 2")
    if wstats is not None:
        val_idx = np.flatnonzero(rows.val)
        n = min(len(val_idx), 2048)
        take = val_idx[np.linspace(0, len(val_idx) - 1, n).astype(int)]
        gen = torch.Generator().manual_seed(5)
        dirs = random_directions(encoder.w_dim, 512, gen)
        ref = wstats.pool[torch.randint(len(wstats.pool), [n], generator=gen)].cpu()
        ref2 = wstats.pool[torch.randint(len(wstats.pool), [n], generator=gen)].cpu()
        gw = torch.from_numpy(w[take]).view(n, len(GROUPS), encoder.w_dim)
        mean, scale = wstats.mean.cpu(), wstats.scale.cpu()
        swd = sliced_wasserstein((gw - mean) / scale, (ref - mean) / scale, dirs)
        base = float(sliced_wasserstein((ref2 - mean) / scale, (ref - mean) / scale, dirs))
        out["w_swd"] = float(swd)
        out["w_swd_random"] = base  # two sets of mapping samples: the noise floor
    return out


def plot_losses(history: list[dict], path: Path) -> Path | None:
    """Training and validation losses against steps."""
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    steps = [h["step"] for h in history]
    fig = Figure(figsize=(13.5, 3.6))
    axes = fig.subplots(1, 5)
    for ax, key in zip(axes, ("loss", "swd", "unmixed", "recon", "smooth"), strict=True):
        ax.plot(steps, [h[key] for h in history], label="train")
        ax.plot(steps, [h[f"val_{key}"] for h in history], label="validation")
        ax.set(xlabel="step", title={"loss": "total", "swd": "distribution (SWD)",
                                     "unmixed": "whole code (SWD)",
                                     "recon": "information (MSE)",
                                     "smooth": "smoothness (neighbours/random)"}[key])
        ax.set_yscale("log")
    axes[0].legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    return path


@torch.no_grad()
def state_picture(encoder: Encoder, G: torch.nn.Module, rows: Rows, path: Path, *,
                  columns: int = 8) -> Path | None:
    """One row per brain state of the validation recordings: its mean, then single moments."""
    from gan.images import to_uint8

    val = rows.val & (rows.labels != "")
    states = sorted(set(rows.labels[val]))
    if not states:
        logger.warning("the validation recordings carry no state labels: no states.png")
        return None
    device = encoder.w_avg.device
    X = torch.from_numpy(rows.normalized)
    images = []
    for state in states:
        idx = np.flatnonzero(val & (rows.labels == state))
        moments = idx[np.linspace(0, len(idx) - 1, columns - 1).astype(int)]
        x = torch.cat([X[idx].mean(dim=0, keepdim=True), X[moments]]).to(device)  # [cols, F]
        ws = encoder.encode_normalized(x).to(G.mapping.w_avg.device)
        images.append(to_uint8(G.synthesis(ws, noise_mode="const")))  # [cols, H, W, 3]
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    size = 1.3
    fig = Figure(figsize=(columns * size + 1.2, len(states) * size + 0.5))
    axes = fig.subplots(len(states), columns, squeeze=False)
    for r, (state, row) in enumerate(zip(states, images, strict=True)):
        for c in range(columns):
            ax = axes[r][c]
            ax.imshow(row[c], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(state, fontsize=9)
            if r == 0:
                ax.set_title("state mean" if c == 0 else f"moment {c}", fontsize=8)
    fig.suptitle("validation recordings: one row per brain state", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path


# -- the run ------------------------------------------------------------------------------------

def run(cfg: EncoderTrainConfig, *, progress: bool = False) -> dict[str, Any]:
    """Fit an encoder as ``cfg`` says; write it and its pictures; return a summary dict."""
    started = time.perf_counter()
    if cfg.init is not None and cfg.mode == "pca":
        raise NeuropaintError("--init starts from an encoder with --mode align or joint; --mode "
                              "pca is fitted in closed form from scratch.")
    store = EEGStore(cfg.eeg)
    if cfg.spec is not None:
        check_store_spec(store, load_spec_file(cfg.spec), f"--spec {cfg.spec}")
    G = load_generator_for_encoding(cfg.generator, cfg.device)
    torch.manual_seed(cfg.seed)  # the encoder's initial weights
    if cfg.init is not None:
        encoder = Encoder.from_pretrained(cfg.init, generator_path=cfg.generator,
                                          device=cfg.device)
        check_store_spec(store, encoder.spec, f"the encoder {cfg.init}")
        if encoder.feature_names != store.names:
            missing = sorted(set(encoder.feature_names) - set(store.names))
            extra = sorted(set(store.names) - set(encoder.feature_names))
            raise NeuropaintError(f"the EEG store's features differ from the encoder's "
                                  f"(missing {missing[:4]}, extra {extra[:4]}); rebuild the "
                                  f"store with the same montage.")
        encoder.clear_output_map()  # trained bare; refitted at the end
    else:
        encoder = Encoder.for_generator(store.spec, store.names, G, cfg.generator,
                                        hidden=cfg.hidden, code_dim=cfg.code_dim)
    rows = prepare_rows(store, cfg)
    with torch.no_grad():  # the saved baseline: the pooled training rows
        encoder.normalizer.mean.copy_(rows.baseline.mean)
        encoder.normalizer.std.copy_(rows.baseline.std)
        encoder.normalizer.count.copy_(rows.baseline.count)

    fit_seconds = time.perf_counter()
    result: dict[str, Any] = {"mode": cfg.mode, "data": rows.report}
    history: list[dict] = []
    joint = None
    if cfg.mode == "align":
        history = train_align(encoder, G, rows, cfg, progress=progress)
        result["final"] = history[-1]
    elif cfg.mode == "joint":
        from conditioning.joint import train_joint

        joint = train_joint(encoder, rows, cfg, progress=progress)
        history = joint["history"]
        result["final_joint"] = joint["final"]
        G = load_generator_for_encoding(joint["snapshot"], cfg.device)  # the fine-tuned one
    else:
        table = fit_pca(encoder, G, rows, cfg)
        result["components"] = table
        result["table"] = format_components(table, cfg.strength)
    fit_seconds = time.perf_counter() - fit_seconds
    encoder.to("cpu").eval()
    G = G.to("cpu")
    wstats = WStats.of(G, seed=cfg.seed + 2, n=4096)
    if cfg.output_map:
        from conditioning.transport import fit_output_map

        train = rows.train
        result["output_map"] = fit_output_map(
            encoder, rows.normalized[train], rows.recording[train], rows.times[train],
            WStats.of(G, seed=cfg.seed + 3).pool.numpy(), tau=cfg.output_map_tau)
    result["held_out"] = held_out_figures(encoder, rows, wstats)
    result["fit_seconds"] = round(fit_seconds, 2)
    encoder.training_stats = {
        "mode": cfg.mode,
        "config": cfg.model_dump(mode="json"),
        "data": rows.report,
        "fit_seconds": result["fit_seconds"],
        "held_out": result["held_out"],
        "final": result.get("final") or result.get("final_joint"),
        "output_map": result.get("output_map"),
    }
    out = Path(cfg.out)
    encoder.save_pretrained(out)
    paths = {"encoder": out}
    if joint is not None:
        from conditioning.joint import PLOT_KEYS, copy_generator
        from gan.loop import plot_history

        paths["generator"] = copy_generator(joint["snapshot"], out)
        paths["run"] = joint["run_dir"]
    if history:
        write_text(out / "history.jsonl", "".join(json.dumps(h) + "\n" for h in history))
        paths["loss_plot"] = (plot_history(history, out / "loss.png", extra_keys=PLOT_KEYS)
                              if joint is not None else plot_losses(history, out / "loss.png"))
    if cfg.mode == "pca":
        write_text(out / "components.txt", result["table"] + "\n")
    paths["states"] = state_picture(encoder, G, rows, out / "states.png")
    if joint is not None and cfg.fidelity:
        result["fidelity"] = fidelity_figures(encoder, G, store, rows, seed=cfg.seed)
        if result["fidelity"] is not None:
            from conditioning.metrics import json_ready

            write_text(out / "fidelity.json", json.dumps(json_ready(result["fidelity"]),
                                                         indent=2) + "\n")
            paths["fidelity"] = out / "fidelity.json"
    result["paths"] = paths
    result["encoder"] = encoder
    result["history"] = history
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result


def fidelity_figures(encoder: Encoder, G: torch.nn.Module, store: EEGStore, rows: Rows, *,
                     seed: int = 0) -> dict[str, Any] | None:
    """Responsiveness, coverage and smoothness on the validation recordings of the store.

    Painted as :func:`conditioning.metrics.evaluate_encoder` paints (motion in W at 10 frames
    per second), with each recording's whole-session baseline, as training standardised it.
    None (with a warning) when the recordings carry no states to measure against.
    """
    from conditioning.metrics import evaluate_encoder

    val_recordings = sorted(int(r) for r in np.unique(rows.recording[rows.val]))
    try:
        return evaluate_encoder(encoder, G, store, store_recordings=val_recordings,
                                calibration_s=None, seed=seed)
    except NeuropaintError as exc:
        logger.warning("no fidelity figures: %s", exc)
        return None


def summary_lines(result: dict[str, Any]) -> list[str]:
    data, held = result["data"], result["held_out"]
    lines = [f"{result['mode']}: {data['train_rows']} training rows "
             f"({', '.join(data['train_recordings'])}), {data['val_rows']} validation rows "
             f"({', '.join(data['val_recordings'])}); fitted in {result['fit_seconds']:.1f} s"]
    if data["skipped_non_finite"]:
        lines.append(f"skipped {data['skipped_non_finite']} rows with non-finite features")
    if "final" in result:
        f = result["final"]
        lines.append(f"final losses: swd {f['swd']:.3f} (val {f['val_swd']:.3f}), whole code "
                     f"{f['unmixed']:.3f} (val {f['val_unmixed']:.3f}), recon "
                     f"{f['recon']:.3f} (val {f['val_recon']:.3f}), smooth {f['smooth']:.3f} "
                     f"(val {f['val_smooth']:.3f})")
    if result.get("final_joint"):
        f = result["final_joint"]
        lines.append(f"joint: {f['kimg']:.3f} kimg; last tick: G loss {f['loss_g']:.3f}, D loss "
                     f"{f['loss_d']:.3f}, aux (EEG recovery MSE, 1 = nothing recovered) G "
                     f"{f['aux_g']:.3f} D {f['aux_d']:.3f}")
    if result.get("fidelity"):
        from conditioning.metrics import summary_line

        lines.append("held-out fidelity: " + summary_line(result["fidelity"]))
    if "state_accuracy" in held:
        lines.append(f"held-out state accuracy in W (nearest centroid): "
                     f"{held['state_accuracy']:.3f}, balanced "
                     f"{held['balanced_state_accuracy']:.3f} (chance: the majority share "
                     f"{held['chance']:.3f}; states {', '.join(held['states'])})")
    elif "state_accuracy_missing" in held:
        lines.append(f"held-out state accuracy: not measured: {held['state_accuracy_missing']}")
    if result.get("output_map"):
        m = result["output_map"]
        spread = ", ".join(f"{g} {v:.2f}" for g, v in m["painted_to_w_variance"].items())
        lines.append(f"output map fitted for tau {m['tau']:g} s on {m['rows']} rows (painted/W "
                     f"variance before it: {spread})")
    if "w_swd" in held:
        lines.append(f"held-out SWD to the generator's W: {held['w_swd']:.3f} (two random W "
                     f"sets: {held['w_swd_random']:.3f})")
    for key, path in result["paths"].items():
        if path is not None:
            lines.append(f"{key}: {path}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m conditioning.train",
        description="Fit an EEG -> W encoder for a generator. 'align' trains it so "
        "that encoded EEG lands among the generator's own w, stays decodable and moves "
        "smoothly; 'pca' maps principal components of the EEG onto principal directions of "
        "W in closed form and prints which drives which; 'joint' fine-tunes the generator "
        "with EEG-derived latents and an auxiliary head on its discriminator that must read "
        "the EEG back from the paintings (the fine-tuned generator is saved in OUT/generator).",
        epilog="Example: python -m conditioning.train --eeg stores/eeg --generator runs/cpu64 "
        "--out encoders/cpu64-align; with --mode joint --kimg 20, render with "
        "python -m conditioning.render OUT OUT/generator session.fif --out painted/",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--eeg", required=True, help="EEG feature store (python -m "
                        "datasets.eeg build)")
    parser.add_argument("--generator", required=True, help="generator snapshot or run folder "
                        "(python -m gan.train)")
    parser.add_argument("--mode", choices=MODES, default="align", help="align (default), pca "
                        "or joint")
    parser.add_argument("--out", required=True, help="encoder folder to write")
    parser.add_argument("--steps", type=int, default=1500, help="align: optimisation steps")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--val-fraction", type=float, default=0.25,
                        help="share of recordings held out for validation (at least one; "
                             "chosen so the held-out ones hold as many states as they can)")
    parser.add_argument("--batch", type=int, default=256, help="align: rows per step")
    parser.add_argument("--lr", type=float, default=1e-3, help="align: learning rate")
    parser.add_argument("--swd-weight", type=float, default=1.0,
                        help="align, joint: distribution-matching weight")
    parser.add_argument("--unmixed-weight", type=float, default=1.0,
                        help="align, joint: weight of the whole-code distribution term (the "
                        "group ws together against the generator's unmixed ws)")
    parser.add_argument("--recon-weight", type=float, default=1.0,
                        help="align: information (decoder) weight")
    parser.add_argument("--smooth-weight", type=float, default=1.0,
                        help="align: smoothness weight")
    parser.add_argument("--components", type=int, default=5,
                        help="pca: EEG components per layer group")
    parser.add_argument("--strength", type=float, default=1.0,
                        help="pca: w moves strength x sigma per std of a component")
    parser.add_argument("--normalization", choices=["session", "live", "global"],
                        default="session",
                        help="standardise each recording by its own baseline (default), as "
                        "the live loop will (calibration, then a running baseline), or all "
                        "by one")
    parser.add_argument("--init", help="align, joint: an encoder folder to start from")
    parser.add_argument("--kimg", type=float, default=2.0,
                        help="joint: thousands of real images to fine-tune the generator for")
    parser.add_argument("--eeg-share", type=float, default=0.5,
                        help="joint: share of each batch rendered from EEG (0.5)")
    parser.add_argument("--aux-weight", type=float, default=1.0,
                        help="joint: weight of the auxiliary EEG-recovery loss (1.0)")
    parser.add_argument("--tiles", help="joint: tile store of real images (default: the one "
                        "the generator was trained on)")
    parser.add_argument("--run-dir", help="joint: the gan.train run folder (default: OUT.run)")
    parser.add_argument("--snap", type=float, default=1.0,
                        help="joint: kimg between snapshots")
    parser.add_argument("--resume", action="store_true",
                        help="joint: continue the run in the run folder")
    parser.add_argument("--no-fidelity", action="store_true",
                        help="joint: skip the fidelity figures at the end")
    parser.add_argument("--spec", help="FeatureSpec JSON the store must have been built with")
    parser.add_argument("--output-map", action=argparse.BooleanOptionalAction, default=False,
                        help="fit the output map that moves the painted ws onto the "
                        "generator's W distribution (conditioning.transport; default off)")
    parser.add_argument("--output-map-tau", type=float, default=0.5,
                        help="the painting's motion time constant the map is fitted for (s)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    setup_logging("INFO" if not args.quiet else "WARNING")
    cfg = build_config(EncoderTrainConfig, eeg=args.eeg, generator=args.generator,
                       mode=args.mode, out=args.out, steps=args.steps, seed=args.seed,
                       batch=args.batch, lr=args.lr, swd_weight=args.swd_weight,
                       unmixed_weight=args.unmixed_weight,
                       recon_weight=args.recon_weight, smooth_weight=args.smooth_weight,
                       components=args.components, strength=args.strength,
                       normalization=args.normalization, init=args.init, spec=args.spec,
                       device=args.device, kimg=args.kimg, eeg_share=args.eeg_share,
                       aux_weight=args.aux_weight, tiles=args.tiles, run_dir=args.run_dir,
                       snapshot_kimg=args.snap, resume=args.resume,
                       fidelity=not args.no_fidelity, output_map=args.output_map,
                       output_map_tau=args.output_map_tau, val_fraction=args.val_fraction)
    result = run(cfg, progress=not args.quiet)
    if cfg.mode == "pca":
        print(result["table"])
    for line in summary_lines(result):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
