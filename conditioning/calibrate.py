"""``python -m conditioning.calibrate``: fit a performer profile from labelled recordings.

Examples
--------
python -m conditioning.calibrate sessions/calib --generator runs/gan --out me/
python -m conditioning.calibrate rec.gdf --generator runs/gan --out me/ \\
    --events 769=left_hand,770=right_hand --event-window 0.5,4.5
python -m conditioning.calibrate a.edf b.edf --generator runs/gan --out me/ \\
    --states eyes_closed,eyes_open --target eyes_closed=art/night.png --target eyes_open=seed:7

Each recording (any file :func:`eeg.io.read_raw` reads; a ``live.calibrate`` session is one)
gives state spans, from its annotations (``--states`` picks which) or from event codes with a
window after each cue (``--events``, ``--event-window``): :func:`eeg.labels.state_annotations`.
Every span is one **block**. Features are computed as the live loop computes them (the online
processor, in live-sized chunks, with the live artifact detector: a row spoiled by a blink,
saturation, a flat signal or a gap is left out), and a row counts for a state only when its
whole window lies inside the span.

Then, in seconds: the performer's robust baseline, the state model with its block-wise
accuracy and chance level (:mod:`conditioning.statemodel`), the controls' calibrated ranges,
the targets (:mod:`conditioning.targets`), and the profile folder
(:class:`conditioning.profile.PerformerProfile`) with ``accuracy.png`` and ``targets.png``.
"""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import mne
import numpy as np
import torch

from conditioning.encoder import generator_identity
from conditioning.player import PlayerConfig
from conditioning.playertune import RESPONSE_S, PlayerRehearsal, Timeline, tune_player
from conditioning.profile import (
    DEFAULT_CONTROLS,
    PerformerProfile,
    control_weights,
    parse_controls,
)
from conditioning.render import as_raw, stream_features
from conditioning.statemodel import (
    StateAccuracy,
    check_training_rows,
    fit_state_model,
    state_accuracy,
)
from conditioning.targets import control_directions, parse_targets, resolve_targets
from eeg.artifacts import ArtifactConfig
from eeg.features import FeatureSpec
from neuropaint.logs import run_cli, setup_logging
from neuropaint.validate import NeuropaintError, build_config, check_int

logger = logging.getLogger(__name__)

__all__ = ["CalibrationReport", "LabelledRows", "calibrate", "labelled_rows", "main",
           "window_labels"]

CHUNK_S = 1.0 / 16  # Samples reach the processor in chunks this long, as a live stream's do.
# A profile's feature window. Shorter than the encoders' 2 s: each row is noisier (block-CV
# accuracy per row 0.72 against 0.82 on the synthetic calibration), but its errors are short
# and nearly independent, so the player's filter outvotes them, and a change of state shows
# in the rows sooner. Against 2 s, on the same scored frames (benchmarks/instrument.py
# --window): synthetic committed state 0.936 vs 0.895 with the commit after 1.95 vs 2.5 s
# (p50); BioSig motor imagery paintings 0.93 vs 0.82; aeon eyes open/closed 0.86 vs 0.84.
PROFILE_WINDOW = 0.75
WHOLE_BLOCK_S = 30.0  # Blocks a recording of one state is cut into (--recording-states).
CONTROL_RANGE = (5.0, 95.0)  # Percentiles of the calibration that map to 0 and 1.


@dataclass
class LabelledRows:
    """Clean feature rows of labelled blocks, in time order per recording.

    Attributes
    ----------
    values : ndarray, shape (n_rows, n_features)
    names : list of str
    labels : list of str
    blocks : ndarray of int, shape (n_rows,)
        Block number, unique across recordings.
    skipped : dict of str to int
        Rows of each state left out because an artifact spoiled them.
    """

    values: np.ndarray
    names: list[str]
    labels: list[str]
    blocks: np.ndarray
    skipped: dict[str, int] = field(default_factory=dict)
    block_seconds: list[float] = field(default_factory=list)  # length of every state span
    block_starts: list[float] = field(default_factory=list)  # its start, its recording's clock
    # Every clean row of each recording in time order, labelled or not, as the player would
    # meet them live: (times, values, block of each row, -1 between blocks).
    timelines: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)


def state_spans(raw: mne.io.BaseRaw, annotations: mne.Annotations
                ) -> list[tuple[float, float, str]]:
    """(start, stop, state) in seconds from the first sample."""
    if len(annotations) == 0:
        return []
    sfreq = raw.info["sfreq"]
    onsets = raw.time_as_index(annotations.onset, use_rounding=True,
                               origin=annotations.orig_time) / sfreq
    return [(float(o), float(o + d), str(s)) for o, d, s in
            zip(onsets, annotations.duration, annotations.description, strict=True)]


def window_labels(times: np.ndarray, spans: Sequence[tuple[float, float, str]],
                  window: float) -> list[str]:
    """The state of each time whose whole feature window (``window`` seconds ending at it)
    lies inside a span, else ``""``: the rows a calibration learns from, and the frames a
    benchmark scores."""
    times = np.asarray(times, dtype=np.float64)
    labels = [""] * len(times)
    for start, stop, state in spans:
        for i in np.flatnonzero((times >= start + window - 1e-9) & (times <= stop + 1e-9)):
            labels[i] = state
    return labels


def labelled_rows(recordings: Sequence, spec: FeatureSpec, *, states: Sequence[str] | None = None,
                  events: Mapping[str, str] | None = None,
                  event_window: tuple[float, float] | None = None,
                  artifacts: ArtifactConfig | None = None, units: str = "auto",
                  recording_states: Sequence[str] | None = None,
                  block_seconds: float = WHOLE_BLOCK_S) -> LabelledRows:
    """The clean, labelled feature rows of ``recordings`` (paths or MNE Raw objects).

    ``recording_states``: one state per recording, each recording that state throughout, cut
    into blocks of ``block_seconds`` (:func:`eeg.labels.whole_recording_blocks`); None: the
    spans come from each recording's annotations or cues.
    """
    from eeg.labels import state_annotations, whole_recording_blocks

    if recording_states is not None and len(recording_states) != len(recordings):
        raise NeuropaintError(f"{len(recording_states)} recording states for "
                              f"{len(recordings)} recordings: give one state per recording, "
                              f"in the same order.")
    if recording_states is not None and events is not None:
        raise NeuropaintError("give recording states or event codes, not both.")

    artifacts = artifacts or ArtifactConfig()
    values, labels, blocks = [], [], []
    skipped: dict[str, int] = {}
    seconds: list[float] = []
    starts: list[float] = []
    timelines: list = []
    names: list[str] | None = None
    block = 0
    described: set[str] = set()
    for number, recording in enumerate(recordings):
        raw = as_raw(recording, units=units)
        described.update(str(d) for d in raw.annotations.description)
        if recording_states is not None:
            blocks_of = whole_recording_blocks(raw, recording_states[number], block_seconds)
            spans = state_spans(raw, blocks_of)
        else:
            spans = state_spans(raw, state_annotations(raw, events=events,
                                                      event_window=event_window,
                                                      states=states))
        duration = raw.n_times / raw.info["sfreq"]
        chunks = np.arange(CHUNK_S, duration + CHUNK_S, CHUNK_S)
        rows = stream_features(raw, spec, chunks, artifacts=artifacts)
        if names is None:
            names = list(rows.names)
        elif list(rows.names) != names:
            raise NeuropaintError(f"{recording} gives other features than the first recording "
                                  f"(other channels?): calibrate from one headset's recordings.")
        times = np.asarray(rows.times)
        valid = np.asarray(rows.valid, dtype=bool) & np.isfinite(rows.values).all(axis=1)
        in_span = np.array(window_labels(times, spans, spec.window), dtype=object)
        row_block = np.full(len(times), -1)
        for start, stop, state in spans:
            seconds.append(stop - start)
            starts.append(start)
            # A row counts when its whole window lies inside the span.
            inside = (in_span == state) & (times >= start) & (times <= stop + 1e-9)
            skipped[state] = skipped.get(state, 0) + int((inside & ~valid).sum())
            take = inside & valid
            if take.any():
                values.append(np.asarray(rows.values)[take])
                labels.extend([state] * int(take.sum()))
                blocks.append(np.full(int(take.sum()), block))
                row_block[take] = block
            block += 1
        timelines.append((times[valid], np.asarray(rows.values)[valid], row_block[valid]))
    if names is None:
        raise NeuropaintError("no recordings given.")
    if not starts:
        found = ", ".join(sorted(described)[:8]) or "none"
        raise NeuropaintError(f"these recordings name no states (their annotations: {found}): "
                              f"label them with --events CODE=STATE --event-window TMIN,TMAX, "
                              f"or, when each recording is one state throughout, with "
                              f"--recording-states STATE,STATE,... (one per recording).")
    if not values:
        raise NeuropaintError("no clean rows inside any state span: the spans are shorter than "
                              f"one feature window ({spec.window:g} s), or every row is spoiled.")
    return LabelledRows(np.concatenate(values), names, labels, np.concatenate(blocks), skipped,
                        seconds, starts, timelines)


def profile_spec(window: float = PROFILE_WINDOW) -> FeatureSpec:
    """The feature spec of a profile: the defaults with a ``window`` s window (0.1 s hop)."""
    return build_config(FeatureSpec, window=window, hop=min(0.1, window))


def player_for(rows: LabelledRows) -> PlayerConfig:
    """The default way to play a calibration: states are expected to last about as long as
    its blocks did (a 20 s guided block: a change every 20 s; a 3.5 s motor-imagery trial:
    every 3.5 s), so the filter is as sticky as the performance will be."""
    typical = float(np.median(rows.block_seconds)) if rows.block_seconds else 10.0
    return PlayerConfig(switch_rate=float(np.clip(1.0 / max(typical, 1e-3), 0.02, 2.0)))


def _rehearsal_timelines(rows: LabelledRows, profile: PerformerProfile, model, scores,
                         order: Sequence[str]) -> list[Timeline]:
    """Each recording's clean rows with the posteriors a rehearsal should see: out-of-block
    ones for labelled rows (``scores`` are in ``rows``' order), the model's between blocks."""
    cv_post = np.exp(model.temperature_log_posteriors(scores))
    state_of = {int(b): order.index(s) for b, s in zip(rows.blocks, rows.labels, strict=True)}
    out = []
    for times, values, blocks in rows.timelines:
        with torch.no_grad():
            z = profile.normalizer(torch.from_numpy(values).float()).double().numpy()
        post = model.posteriors(z)
        for b in np.unique(blocks[blocks >= 0]):
            mine, theirs = np.flatnonzero(blocks == b), np.flatnonzero(rows.blocks == b)
            if len(mine) == len(theirs):  # (overlapping spans keep the full model's)
                post[mine] = cv_post[theirs]
        starts = {int(b): rows.block_starts[b] for b in np.unique(blocks[blocks >= 0])}
        labels = np.array([state_of.get(int(b), -1) for b in blocks], dtype=int)
        out.append(Timeline(times, post, labels, np.where(labels >= 0, blocks, -1), starts))
    return out


@dataclass
class CalibrationReport:
    """What a calibration measured; :meth:`summary` is what the CLIs print."""

    accuracy: StateAccuracy
    controls: dict[str, tuple[float, float]]
    targets: dict[str, str]
    skipped: dict[str, int]
    out: Path | None = None
    rehearsal: PlayerRehearsal | None = None

    def summary(self) -> str:
        lines = [self.accuracy.summary()]
        if self.controls:
            lines.append("controls (0..1 over this performer's 5th-95th percentiles): " + ", ".join(
                f"{n} {lo:.3g}..{hi:.3g}" for n, (lo, hi) in self.controls.items()))
        lines.append("targets: " + ", ".join(f"{s}={t}" for s, t in self.targets.items()))
        if self.rehearsal is not None:
            lines.append(self.rehearsal.summary())
        spoiled = {s: n for s, n in self.skipped.items() if n}
        if spoiled:
            lines.append("rows left out for artifacts: " + ", ".join(
                f"{s} {n}" for s, n in spoiled.items()))
        if self.out is not None:
            lines.append(f"profile written to {self.out}")
        return "\n".join(lines)


def _fit_controls(rows: LabelledRows, controls: Mapping[str, str]
                  ) -> tuple[dict[str, str], np.ndarray, np.ndarray, np.ndarray]:
    kept, weights, lows, highs, dropped = {}, [], [], [], []
    for name, expression in controls.items():
        w = control_weights(expression, rows.names)
        if w is None:
            dropped.append(name)
            continue
        values = rows.values @ w
        low, high = np.percentile(values[np.isfinite(values)], CONTROL_RANGE)
        kept[name] = expression
        weights.append(w)
        lows.append(low)
        highs.append(high if high > low else low + 1e-6)
    if dropped:
        logger.warning("controls %s use features these recordings do not give; left out",
                       ", ".join(dropped))
    n = len(rows.names)
    return (kept, np.array(weights).reshape(-1, n), np.array(lows), np.array(highs))


def calibrate(recordings: Sequence, generator: str | Path, out: str | Path | None = None, *,
              states: Sequence[str] | None = None, events: Mapping[str, str] | None = None,
              event_window: tuple[float, float] | None = None,
              targets: Mapping[str, str] | None = None,
              controls: Mapping[str, str] | None = None, spec: FeatureSpec | None = None,
              player: PlayerConfig | None = None, permutations: int = 100, seed: int = 0,
              units: str = "auto", response: float | None = RESPONSE_S,
              recording_states: Sequence[str] | None = None,
              block_seconds: float = WHOLE_BLOCK_S
              ) -> tuple[PerformerProfile, CalibrationReport]:
    """Fit a :class:`PerformerProfile` for ``generator`` from labelled recordings.

    Parameters
    ----------
    recordings : sequence of path or mne.io.Raw
    generator : path
        A ``gan.train`` snapshot or run: the painter the targets belong to.
    out : path | None
        Where to save the profile folder (None: not saved).
    states : sequence of str | None
        Which annotated states to use (None: every state span found).
    events, event_window
        Event code -> state, and the span after each cue (see :mod:`eeg.labels`).
    targets : mapping of state to ``auto`` | ``seed:N`` | image path
        What each state paints (default: ``auto`` for each).
    controls : mapping of name to feature expression (default :data:`DEFAULT_CONTROLS`).
    spec : FeatureSpec (default :func:`profile_spec`, a :data:`PROFILE_WINDOW` s window).
    player : PlayerConfig (default: :func:`player_for` the calibration's blocks).
        The player's settings are chosen by rehearsing the calibration
        (:mod:`conditioning.playertune`); fields set explicitly in ``player`` are kept.
    recording_states, block_seconds
        One state per recording, each that state throughout, cut into blocks of
        ``block_seconds`` (see :func:`labelled_rows`).
    response : float | None
        The median seconds from a new state to its commit the chosen setting must keep to
        in the rehearsal, when any setting can (None: no such condition).
    permutations : int
        Block-label permutations for the chance level.
    """
    from gan.checkpoint import load_generator

    spec = spec or profile_spec()
    permutations = check_int(permutations, "permutations", minimum=0)
    rows = labelled_rows(recordings, spec, states=states, events=events,
                         event_window=event_window, units=units,
                         recording_states=recording_states, block_seconds=block_seconds)
    found = list(dict.fromkeys(rows.labels))
    order = list(states) if states else sorted(found)
    if states:
        for s in states:
            if s not in found:
                raise NeuropaintError(f"state {s!r} has no clean calibration data (every row of "
                                      f"its blocks is spoiled by blinks, saturation, gaps or "
                                      f"bad spans, or its blocks are shorter than one "
                                      f"{spec.window:g} s window).")
    check_training_rows(rows.labels, rows.blocks, order)
    chosen_targets = parse_targets([f"{k}={v}" for k, v in (targets or {}).items()], order)

    G = load_generator(generator)
    identity = generator_identity(generator)
    kept, cweights, lows, highs = _fit_controls(rows, dict(controls or DEFAULT_CONTROLS))
    auto = player_for(rows)
    given = set() if player is None else set(player.model_fields_set)
    if player is None:
        player = auto
    elif "switch_rate" not in given:  # the rest given, the rate from here
        player = player.model_copy(update={"switch_rate": auto.switch_rate})
    profile = PerformerProfile(spec, rows.names, order, kept, G.num_ws, G.w_dim,
                               generator=identity, player=player)
    profile.normalizer.calibrate(rows.values, robust=True)
    with torch.no_grad():
        z = profile.normalizer(torch.from_numpy(rows.values).float()).double().numpy()
    model, scores = fit_state_model(z, rows.labels, rows.blocks, order)
    accuracy = state_accuracy(scores, rows.labels, rows.blocks, order, z,
                              permutations=permutations, shrinkage=model.shrinkage, seed=seed)
    for line in accuracy.warnings:
        logger.warning("%s", line)
    timelines = _rehearsal_timelines(rows, profile, model, scores, order)
    rehearsal, tried = tune_player(timelines, order, player, spec.hop, fixed=sorted(given),
                                   response=response)
    profile.player_config = rehearsal.config
    logger.info("player chosen from %d settings rehearsed on the calibration", tried)
    profile.state_weight.copy_(torch.from_numpy(model.weight))
    profile.state_offset.copy_(torch.from_numpy(model.offset))
    profile.control_weight.copy_(torch.from_numpy(cweights))
    profile.control_low.copy_(torch.from_numpy(lows))
    profile.control_high.copy_(torch.from_numpy(highs))
    target_ws, sources = resolve_targets(G, chosen_targets, order, seed=seed)
    profile.targets.copy_(torch.from_numpy(target_ws))
    profile.directions.copy_(torch.from_numpy(control_directions(G, len(kept), seed=seed)))
    profile.target_sources = sources
    profile.accuracy = accuracy.to_dict() | {"shrinkage": model.shrinkage,
                                             "temperature": model.temperature}
    profile.accuracy["player_rehearsal"] = rehearsal.to_dict()
    profile.calibration = {
        "recordings": [str(r) if isinstance(r, str | Path) else "<Raw>" for r in recordings],
        "rows": {s: accuracy.n_rows[s] for s in order},
        "blocks": {s: accuracy.n_blocks[s] for s in order},
        "skipped_rows": rows.skipped,
    }
    report = CalibrationReport(accuracy, {n: (float(lo), float(hi)) for n, lo, hi in
                                          zip(kept, lows, highs, strict=True)}, sources,
                               rows.skipped, rehearsal=rehearsal)
    if out is not None:
        report.out = profile.save_pretrained(out)
        _plots(Path(out), profile, accuracy, G)
    return profile, report


def _plots(folder: Path, profile: PerformerProfile, accuracy: StateAccuracy, G) -> None:
    """accuracy.png (confusion and recall against chance) and targets.png (each state's
    painting). A failed plot is a warning: the profile is already saved."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from conditioning.render import synthesize
        from neuropaint.atomic import atomic_path

        k = len(accuracy.states)
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(4 + 1.2 * k, 3 + 0.4 * k))
        conf = np.asarray(accuracy.confusion, dtype=float)
        share = conf / np.maximum(conf.sum(axis=1, keepdims=True), 1)
        ax1.imshow(share, vmin=0, vmax=1, cmap="Blues")
        for i in range(k):
            for j in range(k):
                ax1.text(j, i, f"{share[i, j]:.2f}", ha="center", va="center",
                         color="white" if share[i, j] > 0.5 else "black", fontsize=8)
        ax1.set_xticks(range(k), accuracy.states, rotation=45, ha="right")
        ax1.set_yticks(range(k), accuracy.states)
        ax1.set_xlabel("read as")
        ax1.set_ylabel("true state")
        ax1.set_title(f"balanced accuracy {accuracy.balanced_accuracy:.2f}")
        ax2.bar(range(k), [accuracy.recall[s] for s in accuracy.states], color="#4878a8")
        ax2.axhline(accuracy.chance_p95, color="#c44", ls="--", label="chance (95th pct)")
        ax2.axhline(accuracy.chance_mean, color="#c44", ls=":", label="chance (mean)")
        ax2.set_xticks(range(k), accuracy.states, rotation=45, ha="right")
        ax2.set_ylim(0, 1)
        ax2.set_ylabel("recall (by block CV)")
        ax2.legend(fontsize=7)
        fig.tight_layout()
        with atomic_path(folder / "accuracy.png") as tmp:
            fig.savefig(tmp, dpi=100, format="png")
        plt.close(fig)
        images = synthesize(G, profile.targets.numpy(), size=128)  # [K, 128, 128, 3]
        from PIL import Image, ImageDraw

        sheet = Image.new("RGB", (128 * k, 148), "black")
        draw = ImageDraw.Draw(sheet)
        for i, (state, img) in enumerate(zip(profile.states, images, strict=True)):
            sheet.paste(Image.fromarray(img), (128 * i, 20))
            draw.text((128 * i + 4, 4), state, fill="white")
        with atomic_path(folder / "targets.png") as tmp:
            sheet.save(tmp, format="PNG")
    except Exception as exc:  # the profile is saved; a picture is not worth failing for
        logger.warning("could not draw the calibration plots: %s", exc)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m conditioning.calibrate",
        description="Fit a performer profile (baseline, states, controls, targets) from "
                    "labelled EEG recordings.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("recordings", nargs="+", help="EEG recordings (EDF/BDF/GDF/FIF/BrainVision/"
                   "EEGLAB/XDF, or a live.calibrate / --record session folder)")
    p.add_argument("--generator", required=True, help="the generator the profile paints with "
                   "(gan.train snapshot or run; the bundled demo's is live/demo_model/generator)")
    p.add_argument("--out", required=True, help="profile folder to write")
    p.add_argument("--states", help="comma-separated states to use (default: every annotated "
                   "state span)")
    p.add_argument("--events", help="event codes as states, e.g. 769=left_hand,770=right_hand")
    p.add_argument("--event-window", help="span after each cue in seconds, e.g. 0.5,4.5 "
                   "(with --events)")
    p.add_argument("--recording-states", metavar="STATE,STATE,...",
                   help="one state per recording, in order, for recordings that are one state "
                        "throughout (e.g. a resting eyes-open run and an eyes-closed run); each "
                        "is cut into blocks of --block-seconds")
    p.add_argument("--block-seconds", type=float, default=WHOLE_BLOCK_S,
                   help="with --recording-states: the block length for cross-validation")
    p.add_argument("--target", action="append", default=[], metavar="STATE=WHAT",
                   help="what a state paints: an image (projected into the generator), "
                        "seed:N, or auto (repeatable; default auto for every state)")
    p.add_argument("--control", action="append", default=[], metavar="NAME=EXPR",
                   help="a continuous control: NAME=FEATURE or NAME=FEATURE - FEATURE "
                        "(repeatable; default: " + ", ".join(
                            f"{k}={v}" for k, v in DEFAULT_CONTROLS.items()) + ")")
    p.add_argument("--window", type=float, default=PROFILE_WINDOW,
                   help="feature window in seconds (shorter answers faster, longer is surer)")
    p.add_argument("--hold", type=float,
                   help="seconds a state must lead before the painting commits to it "
                        "(default: chosen by rehearsing the calibration)")
    p.add_argument("--switch-rate", type=float,
                   help="expected state changes per second (lower holds states more "
                        "firmly, higher answers faster; default: chosen by rehearsing the "
                        "calibration, around one per block)")
    p.add_argument("--crossfade", type=float, default=PlayerConfig().crossfade,
                   help="least seconds a move between the two closest targets takes (0: no "
                        "limit)")
    p.add_argument("--permutations", type=int, default=100,
                   help="block-label permutations for the chance level")
    p.add_argument("--seed", type=int, default=0, help="seed of auto targets and permutations")
    p.add_argument("--units", choices=("auto", "V", "uV", "mV"), default="auto",
                   help="unit of the recordings' numbers: auto trusts each file unless its "
                   "amplitude cannot be EEG in that unit, then rescales and says so; V, uV or mV "
                   "override the files (default: auto)")
    p.add_argument("-q", "--quiet", action="store_true", help="warnings only")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging("WARNING" if args.quiet else "INFO")
    from eeg.labels import (
        parse_event_map,
        parse_event_window,
        parse_recording_states,
        parse_states,
    )

    if args.event_window and not args.events:
        raise NeuropaintError("--event-window needs --events (which codes start a span).")
    events = parse_event_map(args.events) if args.events else None
    window = parse_event_window(args.event_window) if args.event_window else None
    if events is not None and window is None:
        raise NeuropaintError("--events needs --event-window TMIN,TMAX (the span after each "
                              "cue that is the state, e.g. 0.5,4.5).")
    states = parse_states(args.states) if args.states else None
    recording_states = (parse_recording_states(args.recording_states)
                        if args.recording_states else None)
    if not math.isfinite(args.window) or args.window <= 0:
        raise NeuropaintError(f"'--window' must be a positive number of seconds, got "
                              f"{args.window}.")
    spec = profile_spec(args.window)
    given = {k: v for k, v in (("hold", args.hold), ("switch_rate", args.switch_rate),
                               ("crossfade", args.crossfade)) if v is not None}
    player = build_config(PlayerConfig, **given)
    targets = parse_targets(args.target, states)
    _, report = calibrate(args.recordings, Path(args.generator), args.out, states=states,
                          events=events, event_window=window, targets=targets,
                          controls=parse_controls(args.control) if args.control else None,
                          spec=spec, player=player, permutations=args.permutations,
                          seed=args.seed, units=args.units, recording_states=recording_states,
                          block_seconds=args.block_seconds)
    print(report.summary(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
