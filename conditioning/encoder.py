"""The EEG -> W encoder: feature rows from `eeg.features` in, StyleGAN ``ws`` out.

An :class:`Encoder` belongs to one generator and one feature definition. It carries both: the
:class:`eeg.features.FeatureSpec` its features were computed with (the live path rebuilds its
``OnlineProcessor`` from it) and the identity of its generator (class, constructor arguments
and a SHA-256 of the weights), and refuses another generator with a one-line message.

Architecture (one small network per StyleGAN layer group)::

    features [N, F] -> FeatureNormalizer (per-session baseline, clipped to ±5, NaN -> 0)
        coarse: slow-band features  -> trunk (MLP) -> code [N, code_dim] -> head -> w_coarse
        middle: all features        -> trunk (MLP) -> code [N, code_dim] -> head -> w_middle
        fine:   fast-band features  -> trunk (MLP) -> code [N, code_dim] -> head -> w_fine
        (+ a linear skip from each group's features to its w: PCA mode's closed form uses it)
    w_group = w_avg + offset; then, once fitted, w_group <- A_g w_group + b_g (the output map)
    ws [N, num_ws, w_dim] = w_group of the layer's group

The output map (:mod:`conditioning.transport`) is fitted after training, in closed form: it
moves the motion-smoothed ws that the live loop paints onto the generator's own W distribution
(matching mean and covariance per group).

Layer groups follow the StyleGAN paper's split (Karras et al. 2019, "A Style-Based Generator
Architecture", section 3.1: coarse = 4²-8², middle = 16²-32², fine = 64²-1024²): in ``ws``
index terms coarse is ``ws[0:4]``, middle ``ws[4:8]`` and fine ``ws[8:]``. Generators below
64 px have no fine layers in that sense, so for fewer than 10 ws the ws are cut into three
consecutive, near-equal thirds instead (16 px, 6 ws: ``[0, 1] [2, 3] [4, 5]``).

Feature routing, so that a performer can learn the instrument: **slow rhythms move the
composition, fast ones the texture and colour**. The coarse group sees only features of bands
that end at or below 13 Hz (delta, theta, alpha) and the frontal alpha asymmetry; the fine
group only features of bands that start at or above 13 Hz (beta, gamma) and spectral entropy
(broadband "roughness"); the middle group sees every feature. A group whose subset is empty
under a custom FeatureSpec falls back to all features. Separate trunks, not one shared trunk
with per-group heads, make this routing structural: no training can leak alpha into texture.

Each group outputs one ``w`` shared by its layers, as StyleGAN's own style mixing does, and
the output is ``w_avg + offset``: with its heads initialised to zero, an untrained encoder
sits exactly at the centre of W.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from eeg.features import WHOLE_HEAD, FeatureSpec
from gan.checkpoint import load_weights, save_weights
from neuropaint import __version__
from neuropaint.atomic import atomic_folder, write_json
from neuropaint.validate import NeuropaintError, check_int, check_unique, read_manifest

logger = logging.getLogger(__name__)

__all__ = [
    "GROUPS",
    "Encoder",
    "FeatureMismatchWarning",
    "FeatureNormalizer",
    "check_generator_identity",
    "feature_groups",
    "folder_kind",
    "generator_identity",
    "layer_groups",
    "match_feature_names",
    "take_features",
]

FORMAT_VERSION = 1
KIND = "neuropaint.encoder"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "encoder.safetensors"
GROUPS = ("coarse", "middle", "fine")
SLOW_FAST_SPLIT_HZ = 13.0  # Alpha's upper edge: below it "slow" (composition), above "fast".
CLIP = 5.0                 # Normalised features are clipped to ±CLIP standard deviations.
_PAPER_COARSE_END = 4      # ws[0:4] = 4²-8², ws[4:8] = 16²-32², ws[8:] = 64² and up.
_PAPER_MIDDLE_END = 8


class FeatureMismatchWarning(UserWarning):
    """Incoming feature names do not all match the encoder's; the missing ones are filled."""


# -- normaliser ---------------------------------------------------------------------------------

class FeatureNormalizer(nn.Module):
    """Per-feature baseline (mean, std): features are standardised, clipped and NaN-safe.

    Parameters
    ----------
    n_features : int
        Number of feature columns.
    clip : float
        Standardised values are clipped to ``[-clip, clip]``.
    min_std : float
        Relative floor on the std (``min_std * |mean| + 1e-6``), so a feature that was flat
        during calibration does not divide by zero.

    Notes
    -----
    Buffers ``mean``, ``std`` (``[n_features]``) and ``count`` (rows seen; 0 = never
    calibrated) travel with the encoder's weights. Call :meth:`calibrate` on a baseline period
    of a session (its first minute, or the whole recording offline) and :meth:`update` on each
    new chunk of a live session to follow slow drifts.
    """

    def __init__(self, n_features: int, *, clip: float = CLIP, min_std: float = 1e-3):
        super().__init__()
        self.n_features = check_int(n_features, "n_features", minimum=1)
        self.clip = float(clip)
        self.min_std = float(min_std)
        self.register_buffer("mean", torch.zeros(self.n_features))
        self.register_buffer("std", torch.ones(self.n_features))
        self.register_buffer("count", torch.zeros(()))

    @property
    def calibrated(self) -> bool:
        return bool(self.count > 0)

    def _finite_rows(self, rows) -> np.ndarray:
        if isinstance(rows, torch.Tensor):
            rows = rows.detach().cpu().numpy()
        rows = np.asarray(rows, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != self.n_features:
            raise NeuropaintError(f"'rows' must have shape (n_rows, {self.n_features}), got "
                                  f"{rows.shape}.")
        return rows[np.isfinite(rows).all(axis=1)]

    def _floor(self, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
        return np.maximum(std, self.min_std * np.abs(mean) + 1e-6)

    def calibrate(self, rows: np.ndarray, *, robust: bool = False) -> FeatureNormalizer:
        """Set the baseline from feature rows ``(n_rows, n_features)``; non-finite rows ignored.

        ``robust``: the median and 1.4826 x the median absolute deviation (the std of a normal
        distribution with that MAD) instead of mean and std, so that a few artifacts or a
        state held far from the others do not set the scale; where the MAD is 0 the std
        is used.
        """
        good = self._finite_rows(rows)
        if len(good) < 2:
            raise NeuropaintError(f"calibration needs at least 2 finite feature rows, got "
                                  f"{len(good)} of {len(np.asarray(rows))}.")
        if robust:
            mean = np.median(good, axis=0)
            spread = 1.4826 * np.median(np.abs(good - mean), axis=0)
            spread = np.where(spread > 0, spread, good.std(axis=0))
        else:
            mean = good.mean(axis=0)
            spread = good.std(axis=0)
        std = self._floor(mean, spread)
        self.mean.copy_(torch.from_numpy(mean))
        self.std.copy_(torch.from_numpy(std))
        self.count.fill_(float(len(good)))
        return self

    def update(self, rows: np.ndarray, momentum: float = 0.01) -> FeatureNormalizer:
        """Move the baseline toward new rows: an exponential average, ``momentum`` per row.

        The result does not depend on how rows are chunked: n rows at once move the baseline
        as n single-row updates would (weights ``momentum * (1 - momentum)^age``). Before any
        calibration the first rows calibrate it.
        """
        if not 0.0 < momentum <= 1.0:
            raise NeuropaintError(f"'momentum' must be in (0, 1], got {momentum!r}.")
        good = self._finite_rows(rows)
        if len(good) == 0:
            return self
        if not self.calibrated:
            return self.calibrate(good) if len(good) >= 2 else self
        n = len(good)
        keep = (1.0 - momentum) ** n
        weights = momentum * (1.0 - momentum) ** np.arange(n - 1, -1, -1)  # newest weighs most
        old_mean = self.mean.double().numpy()
        old_var = self.std.double().numpy() ** 2
        new_mean = keep * old_mean + weights @ good
        # Variance of the mixture about the new mean: the old spread (shifted) and the rows'.
        new_var = (keep * (old_var + (old_mean - new_mean) ** 2)
                   + weights @ (good - new_mean) ** 2)
        self.mean.copy_(torch.from_numpy(new_mean))
        self.std.copy_(torch.from_numpy(self._floor(new_mean, np.sqrt(new_var))))
        self.count.add_(float(n))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Standardise ``x`` ``[N, F]``: ``(x - mean) / std`` clipped; non-finite -> 0."""
        x = torch.as_tensor(x, dtype=torch.float32, device=self.mean.device)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise NeuropaintError(f"features must have shape [N, {self.n_features}], got "
                                  f"{list(x.shape)}.")
        z = (x - self.mean) / self.std
        z = torch.where(torch.isfinite(z), z, torch.zeros_like(z))  # missing = the baseline
        return z.clamp(-self.clip, self.clip)

    def extra_repr(self) -> str:
        return f"n_features={self.n_features}, clip={self.clip}, calibrated={self.calibrated}"


# -- layer groups and feature routing ----------------------------------------------------------

def layer_groups(num_ws: int) -> dict[str, list[int]]:
    """Which ``ws`` indices form the coarse, middle and fine groups (see the module notes)."""
    num_ws = check_int(num_ws, "num_ws", minimum=3)
    if num_ws > _PAPER_MIDDLE_END + 1:  # >= 64 px: the paper's split by resolution
        return {"coarse": list(range(_PAPER_COARSE_END)),
                "middle": list(range(_PAPER_COARSE_END, _PAPER_MIDDLE_END)),
                "fine": list(range(_PAPER_MIDDLE_END, num_ws))}
    thirds = np.array_split(np.arange(num_ws), 3)
    return {name: [int(i) for i in part] for name, part in zip(GROUPS, thirds, strict=True)}


def _band_of(name: str) -> str | None:
    parts = name.split(":")
    return parts[1] if parts[0] in ("log_power", "relative_power") and len(parts) == 3 else None


def feature_groups(spec: FeatureSpec, feature_names: Sequence[str]) -> dict[str, list[int]]:
    """Column indices of the features each layer group sees (see the module notes)."""
    slow = {b for b, (_, high) in spec.bands.items() if high <= SLOW_FAST_SPLIT_HZ}
    fast = {b for b, (low, _) in spec.bands.items() if low >= SLOW_FAST_SPLIT_HZ}
    coarse, fine = [], []
    for i, name in enumerate(feature_names):
        kind, band = name.split(":")[0], _band_of(name)
        if band in slow or kind == "alpha_asymmetry":
            coarse.append(i)
        if band in fast or kind == "spectral_entropy":
            fine.append(i)
    every = list(range(len(feature_names)))
    groups = {"coarse": coarse or every, "middle": every, "fine": fine or every}
    for name in ("coarse", "fine"):
        if not (coarse if name == "coarse" else fine):
            logger.info("no %s-band features in this spec: the %s group sees all features",
                        "slow" if name == "coarse" else "fast", name)
    return groups


def take_features(values: np.ndarray, index: np.ndarray,
                  fill: float | np.ndarray = np.nan) -> np.ndarray:
    """Columns of ``values`` ``(n_rows, n_in)`` in the encoder's order (see match_features).

    ``index`` entries of -1 (features the stream lacks) are set to ``fill``: a scalar, or one
    value per encoder feature. NaN (the default) becomes 0, the baseline, in the normaliser;
    :meth:`Encoder.take_features` fills the baseline's raw value instead, so rows stay finite.
    """
    values = np.asarray(values, dtype=np.float32)
    index = np.asarray(index, dtype=np.int64)
    if values.ndim != 2:
        raise NeuropaintError(f"'values' must have shape (n_rows, n_features), got "
                              f"{values.shape}.")
    out = values[:, np.maximum(index, 0)]  # [n_rows, n_encoder_features]
    missing = index < 0
    if missing.any():
        fill = np.broadcast_to(np.asarray(fill, dtype=np.float32), index.shape)
        out[:, missing] = fill[missing]
    return out


# -- generator identity -------------------------------------------------------------------------

def generator_identity(generator_path: str | Path) -> dict[str, Any]:
    """What identifies a generator snapshot: class, constructor arguments, weights hash.

    Read from the snapshot's ``config.json`` and its ``G_ema.safetensors`` (the network that
    :func:`gan.checkpoint.load_generator` loads); nothing is built or executed.
    """
    from gan.checkpoint import read_config, resolve_snapshot, weights_hash

    folder = resolve_snapshot(generator_path)
    config = read_config(folder)
    spec = config.get("networks", {}).get("G_ema")
    if spec is None:
        raise NeuropaintError(f"{folder} has no G_ema network to condition.")
    return {
        "arch": spec["class"],
        "init_kwargs": spec["init_kwargs"],
        "weights_sha256": weights_hash(folder),
        "path": str(folder),
    }


def match_feature_names(feature_names: Sequence[str], frame_names: Sequence[str], *,
                        what: str = "encoder") -> np.ndarray:
    """Map a stream's feature names onto the ``feature_names`` of an encoder or profile.

    Returns
    -------
    index : ndarray of int64, shape (n_features,)
        For each of the encoder's features, the column of ``frame_names`` to take, or -1
        where there is none. A missing regional feature (``log_power:alpha:occipital_left``
        on a headset without occipital channels) takes the whole-head feature of the same
        kind and band when the stream has one; otherwise it is -1 and
        :meth:`take_features` fills the baseline there. Always select columns with
        ``encoder.take_features(values, index)``, never ``values[:, index]`` (-1 would
        pick the last column). A warning lists what was filled; the encoder never refuses
        to play.
    """
    lookup = {str(n): i for i, n in enumerate(frame_names)}
    index = np.full(len(feature_names), -1, dtype=np.int64)
    from_whole_head, missing = [], []
    for i, name in enumerate(feature_names):
        if name in lookup:
            index[i] = lookup[name]
            continue
        parts = name.split(":")
        whole = ":".join([*parts[:-1], WHOLE_HEAD]) if len(parts) >= 2 else None
        if whole is not None and whole in lookup:
            index[i] = lookup[whole]
            from_whole_head.append(name)
        else:
            missing.append(name)
    if from_whole_head or missing:
        def _few(names: list[str]) -> str:
            return ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6
                                           else "")

        parts = []
        if from_whole_head:
            parts.append(f"{len(from_whole_head)} filled from whole-head features "
                         f"({_few(from_whole_head)})")
        if missing:
            parts.append(f"{len(missing)} held at the baseline ({_few(missing)})")
        message = (f"{len(from_whole_head) + len(missing)} of {len(feature_names)} "
                   f"{what} features are not in the stream: " + "; ".join(parts) + ".")
        warnings.warn(message, FeatureMismatchWarning, stacklevel=3)
    return index


def check_generator_identity(recorded: dict | None, generator_path: str | Path, *,
                             what: str = "encoder", verb: str = "trained") -> None:
    """Raise a one-line error unless ``generator_path`` holds the generator ``recorded``
    (class, constructor arguments and weights hash, as :func:`generator_identity` gives)."""
    if recorded is None:
        warnings.warn(f"this {what} records no generator: it cannot be checked against "
                      f"{generator_path}.", UserWarning, stacklevel=2)
        return
    given = generator_identity(generator_path)
    if given["arch"] != recorded.get("arch"):
        raise NeuropaintError(
            f"the {what} was {verb} for a {recorded.get('arch')} generator, and "
            f"{given['path']} holds a {given['arch']}: use the generator it was {verb} "
            f"for, or make one for this generator.")
    diffs = _differences(_jsonable(recorded.get("init_kwargs")),
                         _jsonable(given["init_kwargs"]))
    if diffs:
        raise NeuropaintError(
            f"the {what} was {verb} for a generator of another shape than {given['path']}"
            f" (recorded vs given: {'; '.join(diffs[:4])}): use the generator it was "
            f"{verb} for, or make one for this generator.")
    if given["weights_sha256"] != recorded.get("weights_sha256"):
        raise NeuropaintError(
            f"the {what} was {verb} for other generator weights: sha256 "
            f"{str(recorded.get('weights_sha256'))[:12]}… recorded, "
            f"{given['weights_sha256'][:12]}… in {given['path']} (same architecture); use "
            f"the generator it was {verb} for, or make one for this generator.")


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj))


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Flat ``key: a vs b`` descriptions of where two JSON values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            out += _differences(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [f"{prefix.rstrip('.')}={a!r} vs {b!r}"]


def _has_w_space(G: nn.Module) -> bool:
    mapping = getattr(G, "mapping", None)
    return (mapping is not None and getattr(mapping, "w_avg", None) is not None
            and hasattr(G, "num_ws") and hasattr(G, "synthesis"))


# -- the encoder -------------------------------------------------------------------------------

def _mlp(in_features: int, hidden: int, out_features: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_features, hidden), nn.LeakyReLU(0.2),
        nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
        nn.Linear(hidden, out_features), nn.LeakyReLU(0.2),
    )


class Encoder(nn.Module):
    """EEG feature rows ``[N, F]`` -> StyleGAN ``ws`` ``[N, num_ws, w_dim]``.

    Build one for a generator with :meth:`for_generator`; load a trained one with
    :meth:`from_pretrained`. See the module docstring for the architecture.

    Attributes
    ----------
    spec : FeatureSpec
    feature_names : list of str
    num_ws, w_dim : int
    normalizer : FeatureNormalizer
    generator_info : dict | None
        ``{"arch", "init_kwargs", "weights_sha256", "path"}`` of the generator it belongs to.
    layer_groups : dict
        Group name -> ``ws`` indices.
    feature_groups : dict
        Group name -> feature column indices.
    training_stats : dict
        How it was trained (mode, steps, losses, held-out figures); saved in config.json.
    """

    def __init__(
        self,
        spec: FeatureSpec,                  # Feature definition the rows were computed with.
        feature_names: list[str],           # Feature columns, in order (FeatureFrame.names).
        num_ws: int,                        # Number of ws the generator's synthesis takes.
        w_dim: int,                         # Intermediate latent (W) dimensionality.
        *,
        hidden: int = 256,                  # Width of each group's trunk.
        code_dim: int = 32,                 # Code each trunk hands to its group's head.
        generator: dict | None = None,      # Identity of the generator (generator_identity).
    ):
        super().__init__()
        if not isinstance(spec, FeatureSpec):
            raise NeuropaintError(f"'spec' must be a FeatureSpec, got {type(spec).__name__}.")
        feature_names = check_unique([str(n) for n in feature_names], "feature_names")
        if not feature_names:
            raise NeuropaintError("'feature_names' must name at least one feature, got none.")
        self.spec = spec
        self.feature_names = feature_names
        self.num_ws = check_int(num_ws, "num_ws", minimum=3)
        self.w_dim = check_int(w_dim, "w_dim", minimum=1)
        self.hidden = check_int(hidden, "hidden", minimum=1)
        self.code_dim = check_int(code_dim, "code_dim", minimum=1)
        self.generator_info = _jsonable(generator) if generator is not None else None
        self.init_kwargs = {"num_ws": self.num_ws, "w_dim": self.w_dim, "hidden": self.hidden,
                            "code_dim": self.code_dim}
        self.training_stats: dict[str, Any] = {}

        self.normalizer = FeatureNormalizer(len(feature_names))
        self.register_buffer("w_avg", torch.zeros(self.w_dim))
        self.layer_groups = layer_groups(self.num_ws)
        self.feature_groups = feature_groups(spec, feature_names)
        ws_group = torch.zeros(self.num_ws, dtype=torch.long)
        for g, name in enumerate(GROUPS):
            ws_group[self.layer_groups[name]] = g
            self.register_buffer(f"_cols_{name}", torch.tensor(self.feature_groups[name]),
                                 persistent=False)
        self.register_buffer("_ws_group", ws_group, persistent=False)
        self.trunk = nn.ModuleDict({
            g: _mlp(len(self.feature_groups[g]), self.hidden, self.code_dim) for g in GROUPS})
        self.head = nn.ModuleDict({g: nn.Linear(self.code_dim, self.w_dim) for g in GROUPS})
        self.skip = nn.ModuleDict({
            g: nn.Linear(len(self.feature_groups[g]), self.w_dim, bias=False) for g in GROUPS})
        with torch.no_grad():  # zero offsets: an untrained encoder outputs w_avg
            for g in GROUPS:
                self.head[g].weight.zero_()
                self.head[g].bias.zero_()
                self.skip[g].weight.zero_()

    # ---------------------------------------------------------------- construction
    @classmethod
    def for_generator(cls, spec: FeatureSpec, feature_names: list[str], G: nn.Module,
                      generator_path: str | Path, **kwargs) -> Encoder:
        """A fresh encoder for generator ``G`` loaded from ``generator_path``.

        Takes ``num_ws``, ``w_dim`` and ``w_avg`` from ``G`` and records its identity.
        """
        if not _has_w_space(G):
            raise NeuropaintError(f"the generator is a {type(G).__name__}, which has no W space "
                                  f"(mapping with w_avg, num_ws): the encoder needs a StyleGAN2 "
                                  f"generator.")
        identity = generator_identity(generator_path)
        if (identity["arch"] != type(G).__name__
                or _jsonable(identity["init_kwargs"]) != _jsonable(G.init_kwargs)):
            raise NeuropaintError(f"the generator passed is not the one at {generator_path} "
                                  f"({type(G).__name__} vs {identity['arch']}, or other "
                                  f"arguments).")
        encoder = cls(spec, feature_names, G.num_ws, G.w_dim, generator=identity, **kwargs)
        with torch.no_grad():
            encoder.w_avg.copy_(G.mapping.w_avg.detach().float().cpu())
        return encoder

    # ---------------------------------------------------------------- forward
    def group_ws(self, normalized: torch.Tensor) -> torch.Tensor:
        """One w per layer group from normalised features: ``[N, 3, w_dim]`` (coarse first)."""
        out = []
        for g in GROUPS:
            x = normalized.index_select(1, getattr(self, f"_cols_{g}"))  # [N, F_g]
            offset = self.head[g](self.trunk[g](x)) + self.skip[g](x)   # [N, w_dim]
            out.append(self.w_avg + offset)
        ws = torch.stack(out, dim=1)  # [N, 3, w_dim]
        if self.has_output_map:  # w' = A w + b per group (conditioning.transport)
            ws = torch.einsum("ngi,goi->ngo", ws, self.output_matrix) + self.output_shift
        return ws

    # ---------------------------------------------------------------- output map
    @property
    def has_output_map(self) -> bool:
        """Whether an output map (:mod:`conditioning.transport`) follows the heads."""
        return hasattr(self, "output_matrix")

    def set_output_map(self, matrix: np.ndarray | torch.Tensor,
                       shift: np.ndarray | torch.Tensor) -> None:
        """Follow each group's w with ``w' = matrix[g] @ w + shift[g]``.

        ``matrix`` is ``[3, w_dim, w_dim]``, ``shift`` ``[3, w_dim]`` (coarse, middle, fine).
        """
        matrix = torch.as_tensor(np.asarray(matrix), dtype=torch.float32)
        shift = torch.as_tensor(np.asarray(shift), dtype=torch.float32)
        n, d = len(GROUPS), self.w_dim
        if matrix.shape != (n, d, d) or shift.shape != (n, d):
            raise NeuropaintError(f"an output map needs a [{n}, {d}, {d}] matrix and a "
                                  f"[{n}, {d}] shift, got {list(matrix.shape)} and "
                                  f"{list(shift.shape)}.")
        if not (torch.isfinite(matrix).all() and torch.isfinite(shift).all()):
            raise NeuropaintError("the output map has non-finite values.")
        device = self.w_avg.device
        self.clear_output_map()
        self.register_buffer("output_matrix", matrix.to(device))
        self.register_buffer("output_shift", shift.to(device))

    def clear_output_map(self) -> None:
        """Drop the output map: the heads' ws are the output again."""
        for name in ("output_matrix", "output_shift"):
            if hasattr(self, name):
                delattr(self, name)

    def expand(self, group_ws: torch.Tensor) -> torch.Tensor:
        """Group ws ``[N, 3, w_dim]`` -> ``ws`` ``[N, num_ws, w_dim]`` (each layer its group's)."""
        return group_ws.index_select(1, self._ws_group)  # [N, num_ws, w_dim]

    def encode_normalized(self, normalized: torch.Tensor) -> torch.Tensor:
        """``ws`` from features already standardised (training standardises per session)."""
        return self.expand(self.group_ws(normalized))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Raw feature rows ``[N, F]`` (this encoder's columns) -> ``ws`` ``[N, num_ws, w_dim]``.

        The normaliser is applied here; NaN features count as the baseline.
        """
        return self.encode_normalized(self.normalizer(features))

    # ---------------------------------------------------------------- live helpers
    def match_features(self, frame_names: Sequence[str]) -> np.ndarray:
        """Map a stream's feature names onto this encoder's, by name (see
        :func:`match_feature_names`)."""
        return match_feature_names(self.feature_names, frame_names, what="encoder")

    def take_features(self, values: np.ndarray, index: np.ndarray) -> np.ndarray:
        """Rows of a stream ``(n_rows, n_in)`` -> this encoder's columns ``(n_rows, F)``.

        ``index`` comes from :meth:`match_features`; a missing feature (-1) is filled with the
        normaliser's current baseline mean, so it reads as 0 (no change) after normalisation
        and the row stays finite. Do not index ``values[:, index]`` directly: -1 would pick
        the last column.
        """
        return take_features(values, index, fill=self.normalizer.mean.detach().cpu().numpy())

    # ---------------------------------------------------------------- generator identity
    def check_generator(self, generator_path: str | Path) -> None:
        """Raise a one-line error unless ``generator_path`` holds this encoder's generator."""
        check_generator_identity(self.generator_info, generator_path, what="encoder")

    # ---------------------------------------------------------------- save / load
    def config(self) -> dict[str, Any]:
        """The JSON that rebuilds this encoder (weights aside)."""
        return {
            "format_version": FORMAT_VERSION,
            "kind": KIND,
            "neuropaint_version": __version__,
            "class": type(self).__name__,
            "init_kwargs": dict(self.init_kwargs),
            "feature_spec": self.spec.model_dump(mode="json"),
            "feature_names": list(self.feature_names),
            "generator": self.generator_info,
            "layer_groups": self.layer_groups,
            "feature_groups": {g: [self.feature_names[i] for i in cols]
                               for g, cols in self.feature_groups.items()},
            "normalizer": {"calibrated_rows": int(self.normalizer.count)},
            "output_map": self.has_output_map,
            "training_stats": _jsonable(self.training_stats),
        }

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json`` + ``encoder.safetensors`` into ``directory`` atomically.

        Everything goes into ``DIR.partial`` first, which is renamed when complete; an existing
        encoder folder is replaced, any other non-empty folder is refused.
        """
        folder = Path(directory)
        if folder.exists() and any(folder.iterdir()):
            kind = folder_kind(folder)
            if kind != KIND:
                raise NeuropaintError(f"{folder} exists and is not an encoder folder "
                                      f"(kind {kind!r}); refusing to replace it.")
        with atomic_folder(folder) as partial:
            save_weights(self, partial / WEIGHTS_NAME, metadata={"kind": KIND})
            write_json(partial / CONFIG_NAME, self.config())  # last: marks completeness
        return folder

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, generator_path: str | Path | None = None,
                        device: str | torch.device = "cpu") -> Encoder:
        """Load an encoder folder (no code is executed); optionally check its generator.

        With ``generator_path`` the generator's class, constructor arguments and weights hash
        must equal the recorded ones, or a one-line NeuropaintError names what differs.
        """
        folder = Path(directory)
        if not folder.exists():
            raise FileNotFoundError(f"no such encoder: {folder}")
        config = read_encoder_config(folder)
        try:
            spec = FeatureSpec.model_validate(config["feature_spec"])
            kwargs = dict(config["init_kwargs"])
            names = list(config["feature_names"])
        except (KeyError, TypeError, ValueError) as exc:
            raise NeuropaintError(f"{folder / CONFIG_NAME} is incomplete or invalid "
                                  f"({str(exc).splitlines()[0]}).") from None
        unknown = sorted(set(kwargs) - {"num_ws", "w_dim", "hidden", "code_dim"})
        if unknown or config.get("class") != cls.__name__:
            raise NeuropaintError(f"{folder / CONFIG_NAME} describes a {config.get('class')!r} "
                                  f"with arguments {sorted(kwargs)}; expected an Encoder.")
        encoder = cls(spec, names, generator=config.get("generator"), **kwargs)
        if config.get("output_map"):  # the buffers the weights file then holds
            d = encoder.w_dim
            encoder.set_output_map(np.tile(np.eye(d), (len(GROUPS), 1, 1)),
                                   np.zeros((len(GROUPS), d)))
        load_weights(encoder, folder / WEIGHTS_NAME, what="its config")
        encoder.training_stats = dict(config.get("training_stats") or {})
        if generator_path is not None:
            encoder.check_generator(generator_path)
        return encoder.to(device).eval()

    def extra_repr(self) -> str:
        sizes = ", ".join(f"{g}: ws {self.layer_groups[g]} <- {len(self.feature_groups[g])} "
                          f"features" for g in GROUPS)
        return f"features={len(self.feature_names)}, num_ws={self.num_ws}, " \
               f"w_dim={self.w_dim}, {sizes}"


def folder_kind(folder: Path) -> str | None:
    """The ``kind`` a model folder's config.json declares (None: no readable config)."""
    try:
        return json.loads((folder / CONFIG_NAME).read_text()).get("kind")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None


def read_encoder_config(directory: str | Path) -> dict:
    """An encoder folder's config.json, checked for kind and version."""
    return read_manifest(directory, CONFIG_NAME, kind=KIND, format_version=FORMAT_VERSION,
                         what="an encoder folder", verb="save")
