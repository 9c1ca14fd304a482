"""The performer profile: one person's calibrated instrument, saved as a folder.

A :class:`PerformerProfile` is the other EEG -> W mapping beside :class:`conditioning.encoder.
Encoder`. Where an encoder is a network trained on many sessions, a profile is fitted in
seconds on one performer's guided calibration (:mod:`conditioning.calibrate`) and holds:

- the :class:`eeg.features.FeatureSpec` (the live path rebuilds its processor from it);
- the performer's **robust baseline** per feature (median and MAD-based spread of the
  calibration), a :class:`conditioning.encoder.FeatureNormalizer`;
- a **state model** (:mod:`conditioning.statemodel`: shrinkage LDA with calibrated posteriors)
  as one affine map to state scores;
- **continuous controls**: each a linear expression of features (``relax`` = relative alpha,
  ``focus`` = log beta - log theta, ``asymmetry`` = frontal alpha asymmetry by default),
  scaled to the performer's own calibrated range (5th percentile -> 0, 95th -> 1);
- **targets**: the ``ws`` each state paints (:mod:`conditioning.targets`), and one latent
  direction per control;
- the identity of its generator (refused with another, as the encoder refuses), how its
  states are played (:class:`conditioning.player.PlayerConfig`), and its honest accuracy.

It answers the same questions as an encoder (``spec``, ``feature_names``, ``num_ws``,
``w_dim``, ``normalizer``, ``match_features``, ``take_features``), so the one follower
(:class:`conditioning.follow.LatentFollower`) drives the live loop and offline rendering from
either; :meth:`PerformerProfile.read` gives posteriors and controls and
:meth:`PerformerProfile.new_player` the per-session :class:`conditioning.player.StatePlayer`.

Folder: ``config.json`` (written last: it marks a complete profile) + ``profile.safetensors``;
``accuracy.png`` and ``targets.png`` beside them when calibration drew them.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from conditioning.encoder import (
    FeatureNormalizer,
    check_generator_identity,
    folder_kind,
    match_feature_names,
    take_features,
)
from conditioning.player import PlayerConfig, StatePlayer
from eeg.features import FeatureSpec
from gan.checkpoint import load_weights, save_weights
from neuropaint import __version__
from neuropaint.atomic import atomic_folder, write_json
from neuropaint.validate import NeuropaintError, check_unique, read_manifest

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_CONTROLS", "PerformerProfile", "parse_controls", "read_profile_config"]

FORMAT_VERSION = 1
KIND = "neuropaint.profile"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "profile.safetensors"
# The default continuous controls: name -> expression over feature names.
DEFAULT_CONTROLS: dict[str, str] = {
    "relax": "relative_power:alpha:whole_head",
    "focus": "log_power:beta:whole_head - log_power:theta:whole_head",
    "asymmetry": "alpha_asymmetry:frontal",
}


def parse_controls(items: Sequence[str] | Mapping[str, str]) -> dict[str, str]:
    """``["relax=relative_power:alpha:whole_head", ...]`` -> ``{name: expression}``."""
    if isinstance(items, Mapping):
        return {str(k): str(v) for k, v in items.items()}
    out: dict[str, str] = {}
    for item in items:
        name, sep, expr = str(item).partition("=")
        name, expr = name.strip(), expr.strip()
        if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name) or not expr:
            raise NeuropaintError(f"a control must read NAME=FEATURE or NAME=FEATURE - FEATURE "
                                  f"(NAME a plain word), got {item!r}.")
        if name in out:
            raise NeuropaintError(f"control {name!r} is given twice.")
        out[name] = expr
    return out


def control_weights(expression: str, feature_names: Sequence[str]) -> np.ndarray | None:
    """Weights ``[n_features]`` of ``"a - b + c"`` over ``feature_names``; None when a feature
    of the expression is not among them. A malformed expression is an error."""
    text = re.sub(r"\s+", "", expression)
    if not re.fullmatch(r"[+-]?[^+-]+([+-][^+-]+)*", text):
        raise NeuropaintError(f"a control expression must be feature names joined by + and -, "
                              f"got {expression!r}.")
    index = {n: i for i, n in enumerate(feature_names)}
    weights = np.zeros(len(feature_names))
    for sign, name in re.findall(r"([+-]?)([^+-]+)", text):
        if name not in index:
            return None
        weights[index[name]] += -1.0 if sign == "-" else 1.0
    return weights


class PerformerProfile(nn.Module):
    """A performer's baseline, state model, controls and targets for one generator.

    Parameters
    ----------
    spec : FeatureSpec
    feature_names : list of str
        The profile's feature columns.
    states : list of str
        State names, in the order of posteriors and targets.
    controls : dict of str to str
        Control name -> feature expression.
    num_ws, w_dim : int
        The generator's latent shape.
    generator : dict | None
        The generator's identity (:func:`conditioning.encoder.generator_identity`).
    player : PlayerConfig | None
        How the states are played (smoothing, hysteresis, control amount).
    """

    def __init__(self, spec: FeatureSpec, feature_names: Sequence[str], states: Sequence[str],
                 controls: Mapping[str, str], num_ws: int, w_dim: int, *,
                 generator: dict | None = None, player: PlayerConfig | None = None):
        super().__init__()
        self.spec = spec
        self.feature_names = check_unique(list(feature_names), "feature_names")
        self.states = check_unique(list(states), "states")
        self.control_expressions = dict(controls)
        self.controls = list(self.control_expressions)
        self.num_ws, self.w_dim = int(num_ws), int(w_dim)
        self.generator_info = generator
        self.player_config = player or PlayerConfig()
        self.accuracy: dict[str, Any] = {}
        self.target_sources: dict[str, str] = {}
        self.calibration: dict[str, Any] = {}
        f, k, c = len(self.feature_names), len(self.states), len(self.controls)
        self.normalizer = FeatureNormalizer(f)
        self.register_buffer("state_weight", torch.zeros(f, k, dtype=torch.float64))
        self.register_buffer("state_offset", torch.zeros(k, dtype=torch.float64))
        self.register_buffer("control_weight", torch.zeros(c, f, dtype=torch.float64))
        self.register_buffer("control_low", torch.zeros(c, dtype=torch.float64))
        self.register_buffer("control_high", torch.ones(c, dtype=torch.float64))
        self.register_buffer("targets", torch.zeros(k, self.num_ws, self.w_dim))
        self.register_buffer("directions", torch.zeros(c, self.num_ws, self.w_dim))

    # ---------------------------------------------------------------- per row
    def read(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Feature rows ``(n, n_features)`` in this profile's columns -> posteriors
        ``(n, n_states)`` and controls ``(n, n_controls)`` in 0..1 (0.5 where undefined)."""
        values = np.asarray(values, dtype=np.float64)
        with torch.no_grad():
            z = self.normalizer(torch.from_numpy(values).float()).double().numpy()  # [n, F]
        scores = z @ self.state_weight.numpy() + self.state_offset.numpy()  # [n, K]
        scores -= scores.max(axis=1, keepdims=True)
        post = np.exp(scores)
        post /= post.sum(axis=1, keepdims=True)
        raw = np.nan_to_num(values, nan=0.0) @ self.control_weight.numpy().T  # [n, C]
        low, high = self.control_low.numpy(), self.control_high.numpy()
        controls = np.clip((raw - low) / np.maximum(high - low, 1e-12), 0.0, 1.0)
        used = self.control_weight.numpy() != 0  # [C, F]
        undefined = (~np.isfinite(values))[:, None, :] & used[None]  # [n, C, F]
        controls[undefined.any(axis=2)] = 0.5
        return post, controls

    def recentre(self, rows: np.ndarray, momentum: float | None = None) -> None:
        """Move the baseline's centre to a session's rows, keeping the performer's spread.

        The live loop's session calibration (``--calibration S``) and running update call
        this instead of re-estimating the whole baseline: the state model was fitted on the
        calibration's spread, and a few seconds of one state would shrink it. ``momentum``
        None: the median of ``rows``; else an exponential average, ``momentum`` per row.
        """
        rows = np.asarray(rows, dtype=np.float64)
        rows = rows[np.isfinite(rows).all(axis=1)]
        if not len(rows):
            return
        mean = self.normalizer.mean.double().numpy()
        if momentum is None:
            new = np.median(rows, axis=0)
        else:
            weights = momentum * (1.0 - momentum) ** np.arange(len(rows) - 1, -1, -1)
            new = (1.0 - momentum) ** len(rows) * mean + weights @ rows
        self.normalizer.mean.copy_(torch.from_numpy(new))

    def new_player(self, config: PlayerConfig | None = None) -> StatePlayer:
        """A fresh :class:`StatePlayer` for one session (``config`` overrides the profile's)."""
        return StatePlayer(self.targets.numpy(), self.directions.numpy(), self.states,
                           self.controls, config or self.player_config)

    # ---------------------------------------------------------------- encoder-like helpers
    def match_features(self, frame_names: Sequence[str]) -> np.ndarray:
        """Stream feature names -> this profile's columns (see
        :func:`conditioning.encoder.match_feature_names`); refuses a stream with none."""
        index = match_feature_names(self.feature_names, frame_names, what="profile")
        if not (index >= 0).any():
            raise NeuropaintError(f"none of the profile's {len(self.feature_names)} features "
                                  f"are in the stream (e.g. {self.feature_names[0]}): it was "
                                  f"calibrated on other channels; calibrate on this headset.")
        return index

    def take_features(self, values: np.ndarray, index: np.ndarray) -> np.ndarray:
        """Stream rows -> this profile's columns; a missing feature reads as the baseline."""
        return take_features(values, index, fill=self.normalizer.mean.detach().cpu().numpy())

    def check_generator(self, generator_path: str | Path) -> None:
        """Raise a one-line error unless ``generator_path`` holds this profile's generator."""
        check_generator_identity(self.generator_info, generator_path, what="profile",
                                 verb="calibrated")

    # ---------------------------------------------------------------- save / load
    def config(self) -> dict[str, Any]:
        """The JSON that rebuilds this profile (weights aside)."""
        return {
            "format_version": FORMAT_VERSION,
            "kind": KIND,
            "neuropaint_version": __version__,
            "feature_spec": self.spec.model_dump(mode="json"),
            "feature_names": list(self.feature_names),
            "states": list(self.states),
            "controls": dict(self.control_expressions),
            "num_ws": self.num_ws,
            "w_dim": self.w_dim,
            "generator": self.generator_info,
            "player": self.player_config.model_dump(mode="json"),
            "targets": dict(self.target_sources),
            "accuracy": json.loads(json.dumps(self.accuracy)),
            "calibration": json.loads(json.dumps(self.calibration)),
        }

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json`` + ``profile.safetensors`` into ``directory`` atomically.

        An existing profile folder is replaced (with the files beside it kept), any other
        non-empty folder is refused.
        """
        folder = Path(directory)
        if folder.exists() and any(folder.iterdir()):
            kind = folder_kind(folder)
            if kind != KIND:
                raise NeuropaintError(f"{folder} exists and is not a profile folder (kind "
                                      f"{kind!r}); refusing to replace it.")
        with atomic_folder(folder) as partial:
            if folder.exists():  # keep the pictures of the last calibration
                for extra in folder.glob("*.png"):
                    (partial / extra.name).write_bytes(extra.read_bytes())
            save_weights(self, partial / WEIGHTS_NAME, metadata={"kind": KIND})
            write_json(partial / CONFIG_NAME, self.config())  # last: marks completeness
        return folder

    @classmethod
    def from_pretrained(cls, directory: str | Path, *, generator_path: str | Path | None = None
                        ) -> PerformerProfile:
        """Load a profile folder (no code is executed); optionally check its generator.

        A profile stays on the CPU whatever the generator's device: its arithmetic costs
        microseconds per row, and its targets go to the generator as numpy arrays.
        """
        folder = Path(directory)
        if not folder.exists():
            raise FileNotFoundError(f"no such profile: {folder}")
        config = read_profile_config(folder)
        try:
            profile = cls(FeatureSpec.model_validate(config["feature_spec"]),
                          config["feature_names"], config["states"], config["controls"],
                          config["num_ws"], config["w_dim"], generator=config.get("generator"),
                          player=PlayerConfig.model_validate(config.get("player") or {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise NeuropaintError(f"{folder / CONFIG_NAME} is incomplete or invalid "
                                  f"({str(exc).splitlines()[0]}).") from None
        load_weights(profile, folder / WEIGHTS_NAME, what="its config")
        profile.target_sources = dict(config.get("targets") or {})
        profile.accuracy = dict(config.get("accuracy") or {})
        profile.calibration = dict(config.get("calibration") or {})
        if generator_path is not None:
            profile.check_generator(generator_path)
        return profile.eval()

    def extra_repr(self) -> str:
        return (f"states={self.states}, controls={self.controls}, "
                f"features={len(self.feature_names)}, num_ws={self.num_ws}, w_dim={self.w_dim}")


def read_profile_config(directory: str | Path) -> dict:
    """A profile folder's config.json, checked for kind and version."""
    return read_manifest(directory, CONFIG_NAME, kind=KIND, format_version=FORMAT_VERSION,
                         what="a performer profile", verb="save")
