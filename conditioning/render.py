"""``python -m conditioning.render``: paint a recorded EEG session offline, as the live loop would.

Examples
--------
python -m conditioning.render runs/enc runs/gan session.fif --out out/session
python -m conditioning.render runs/enc runs/gan rec.xdf --out out/hd --size 512 --format mp4

The recording (any file :func:`eeg.io.read_raw` reads, a recorded live session included) is
pushed through :class:`eeg.online.OnlineProcessor`, built from the encoder's FeatureSpec, in the
chunks a live loop would see: at each output frame time ``t`` (``fps`` frames per second) the
samples up to ``t`` are pushed, and the newest feature row with time <= ``t`` is the one the
frame shows. Then, exactly as live:

- a calibration period (default the first 10 s) sets the session baseline of the encoder's
  normaliser; the painting rests at ``w_avg`` meanwhile (``--calibration session`` takes
  the whole recording's baseline instead, which only an offline render can);
- a clean row is encoded to a target ``ws``; a row that is not clean (non-finite samples in
  its window, or a ``BAD*`` annotation over it) gives no target, so the last good latent is
  held (artifact gating);
- :class:`conditioning.motion.WMotion` (the one implementation of motion in W) follows the target;
- ``generator.synthesis(ws, noise_mode='const')`` paints the frame.

Outputs in ``OUT``: the frames (PNG files, or an animated GIF/WebP, or an mp4 when ffmpeg is
installed), ``frames.csv`` (per frame: index, time, state annotation at that time, whether
the row shown was clean, the time of its newest EEG sample, whether calibration was still
running, and the feature values of the row), and optionally ``ws.npy``.

:func:`session_latents` (EEG -> per-frame ``ws``) and :func:`render_recording` (-> frames) are
the reusable pieces: ``live.replay`` and :mod:`conditioning.metrics` call them.
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import mne
import numpy as np
import torch
from PIL import Image

from conditioning.encoder import Encoder
from conditioning.follow import MIN_CALIBRATION_ROWS, LatentFollower
from conditioning.motion import MotionConfig
from conditioning.player import PlayerConfig
from datasets.eeg import row_labels
from eeg.artifacts import ArtifactConfig, OnlineArtifacts
from eeg.features import FeatureFrame, flag_bad_annotations
from eeg.io import UNITS_CHOICES, read_raw
from eeg.online import OnlineProcessor
from gan.checkpoint import load_generator
from gan.generate import render_ws, save_animation
from neuropaint.atomic import atomic_open, atomic_path
from neuropaint.logs import run_cli, setup_logging
from neuropaint.validate import NeuropaintError, build_config, check_int, check_positive

logger = logging.getLogger(__name__)

__all__ = [
    "FORMATS",
    "SessionLatents",
    "as_raw",
    "check_encoder",
    "follow_rows",
    "main",
    "render_recording",
    "resize_frames",
    "save_outputs",
    "session_latents",
    "stream_features",
    "write_table",
]

FORMATS = ("gif", "webp", "frames", "mp4")
TABLE_COLUMNS = ("frame", "time", "state", "valid", "eeg_time", "calibrating")


@dataclass
class SessionLatents:
    """What a session's EEG makes of each output frame (everything but the pixels).

    Attributes
    ----------
    times : ndarray, shape (n_frames,)
        Frame times in seconds from the recording's first sample.
    ws : ndarray of float32, shape (n_frames, num_ws, w_dim)
        The latents painted, after motion.
    states : list of str, length n_frames
        Annotated state at each frame time ("" where none).
    valid : ndarray of bool, shape (n_frames,)
        The frame's newest feature row was clean (False before the first row, too).
    eeg_times : ndarray, shape (n_frames,)
        Time of the newest EEG sample behind the frame (NaN before the first row).
    calibrating : ndarray of bool, shape (n_frames,)
        The baseline was not set yet: the painting rests.
    features : ndarray, shape (n_frames, n_features)
        The feature row shown, in the encoder's feature order (NaN before the first row).
    feature_names : list of str
    """

    times: np.ndarray
    ws: np.ndarray
    states: list[str]
    valid: np.ndarray
    eeg_times: np.ndarray
    calibrating: np.ndarray
    features: np.ndarray
    feature_names: list[str]
    instrument: list[dict | None] | None = None  # with a profile: posteriors, committed, controls

    def __len__(self) -> int:
        return len(self.times)

    def table(self) -> list[dict]:
        """One dict per frame: the columns of ``frames.csv``."""
        rows = []
        for i in range(len(self)):
            row = {
                "frame": i,
                "time": float(self.times[i]),
                "state": self.states[i],
                "valid": bool(self.valid[i]),
                "eeg_time": float(self.eeg_times[i]),
                "calibrating": bool(self.calibrating[i]),
            }
            if self.instrument is not None:
                row.update(_instrument_columns(self.instrument[i], self.instrument[-1]))
            row.update(zip(self.feature_names, self.features[i].tolist(), strict=True))
            rows.append(row)
        return rows


def _instrument_columns(state: dict | None, last: dict | None) -> dict:
    """``committed_state``, ``posterior:STATE`` and ``control:NAME`` of one frame (blank before
    the first clean row; ``last`` gives the column names)."""
    state = state or {}
    names = (last or state or {})
    out = {"committed_state": state.get("committed") or ""}
    for s in names.get("states", []):
        out[f"posterior:{s}"] = float(state.get("posteriors", {}).get(s, math.nan))
    for c in names.get("controls", {}):
        out[f"control:{c}"] = float(state.get("controls", {}).get(c, math.nan))
    return out


def is_profile_mapping(mapping) -> bool:
    """True for a performer profile (it has a state player), False for an encoder."""
    return hasattr(mapping, "new_player")


def default_calibration(mapping, calibration_s: float | str | None) -> float | None:
    """``"auto"``: 0 for a profile (it brings the performer's baseline), 10 s for an encoder."""
    if calibration_s == "auto":
        return 0.0 if is_profile_mapping(mapping) else 10.0
    return calibration_s


def frame_times(duration: float, fps: float) -> np.ndarray:
    """``floor(duration * fps)`` frame times ``i / fps`` (seconds)."""
    n = math.floor(duration * fps + 1e-9)
    return np.arange(n) / fps


def _eeg_picks(raw: mne.io.BaseRaw) -> np.ndarray:
    picks = mne.pick_types(raw.info, eeg=True, exclude=[])
    if len(picks) == 0:
        raise NeuropaintError("the recording has no EEG channels to compute features from.")
    return picks


def stream_features(raw: mne.io.BaseRaw, spec, times: np.ndarray, *,
                    reject_by_annotation: bool = True,
                    artifacts: ArtifactConfig | None = None) -> FeatureFrame:
    """Feature rows of a recording, pushed in the chunks a live loop at ``times`` would see.

    At each frame time ``t`` the samples with time <= ``t`` not pushed yet go to one
    :class:`eeg.online.OnlineProcessor` (always filtering, as on a live stream). Rows whose
    window overlaps a ``BAD*`` annotation are flagged invalid, as non-finite samples are.
    With ``artifacts`` the live loop's own artifact detector (:class:`eeg.artifacts.
    OnlineArtifacts`: blinks, saturation, flat signal, gaps) flags the rows it spoils too,
    exactly as live.

    Returns
    -------
    FeatureFrame
        Rows in time order, times from the recording's first sample, the processor's names.
    """
    picks = _eeg_picks(raw)
    info = mne.pick_info(raw.info, picks)
    ch_names = list(info["ch_names"])
    bads = [b for b in info["bads"] if b in ch_names]
    sfreq = float(info["sfreq"])
    processor = OnlineProcessor(spec, sfreq, ch_names, bads=bads, info=info)
    detector = None if artifacts is None else OnlineArtifacts(
        artifacts, processor.ch_names, processor.layout.window_n / processor.sfreq)
    # The last sample each frame may use: time <= t.
    stops = np.minimum(np.floor(np.asarray(times) * sfreq + 1e-6).astype(int) + 1, raw.n_times)
    sample_times = raw.times
    parts = []
    start = 0
    for stop in stops:
        if stop <= start:
            continue
        chunk = raw.get_data(picks=picks, start=start, stop=stop)  # (n_channels, n_new)
        rows = processor.push(chunk, sample_times[start:stop])
        if detector is not None:
            detector.update(processor.last_filtered, sample_times[start:stop], chunk)
            if len(rows):
                spoiled = np.array([k is not None for k in detector.spoiled(rows.times)])
                if spoiled.any():
                    rows = FeatureFrame(rows.values, rows.names, rows.times,
                                        np.asarray(rows.valid, dtype=bool) & ~spoiled)
        parts.append(rows)
        start = stop
    frame = FeatureFrame.concatenate(parts, processor.names)
    if reject_by_annotation and len(frame):
        flag_bad_annotations(frame, raw, processor.layout.window_n)
    return frame


def check_encoder(encoder, G=None) -> None:
    """A conditioning Encoder, and (when given) a StyleGAN2 generator of its shape, or an error."""
    for attr in ("spec", "feature_names", "num_ws", "w_dim", "normalizer", "match_features",
                 "take_features"):
        if not hasattr(encoder, attr):
            raise NeuropaintError(f"'encoder' must be a conditioning Encoder, got "
                                  f"{type(encoder).__name__} (no {attr!r}).")
    if G is None:
        return
    if not hasattr(G, "mapping") or not hasattr(G, "synthesis"):
        raise NeuropaintError("rendering needs a StyleGAN2 generator (with a mapping and a "
                              "synthesis network); this one has no W space.")
    if (encoder.num_ws, encoder.w_dim) != (G.num_ws, G.w_dim):
        raise NeuropaintError(
            f"the encoder outputs ws [{encoder.num_ws}, {encoder.w_dim}] but the generator "
            f"takes [{G.num_ws}, {G.w_dim}]: it was trained for another generator.")


def follow_rows(
    encoder,
    rows: FeatureFrame,
    times: np.ndarray,
    *,
    motion: MotionConfig | None = None,
    calibration_s: float | str | None = "auto",
    update_momentum: float | None = None,
    w_avg: np.ndarray | None = None,
    seed: int = 0,
    player: PlayerConfig | None = None,
) -> tuple[np.ndarray, dict]:
    """Per-frame ``ws`` from feature rows, as the live loop makes them.

    Parameters
    ----------
    encoder : conditioning.encoder.Encoder | conditioning.profile.PerformerProfile
        Its normaliser is calibrated here (a session baseline): pass a fresh copy to keep it.
    rows : FeatureFrame
        Rows in time order, any feature order (matched by name to the encoder's).
    times : ndarray, shape (n_frames,)
        Frame times, on the rows' clock.
    motion : MotionConfig | None
        Motion in W (default ``MotionConfig()``).
    calibration_s : float | "auto" | None
        The baseline is set from the clean rows up to this time, as live (0: keep the
        encoder's own); if there are fewer than 5 by then, as soon as there are 5. None:
        from all clean rows of the session, before the first frame (offline only: it looks
        ahead, as training's per-session standardisation does). "auto": 10 s for an
        encoder, 0 for a profile (its calibration set the performer's baseline).
    update_momentum : float | None
        After calibration, each new clean row also updates the baseline with this momentum
        (the live running update); None: off.
    w_avg : ndarray, shape (w_dim,) | None
        Where the painting rests before any target (usually the generator's ``w_avg``).
    seed : int
        Seed of the motion's drift.
    player : PlayerConfig | None
        With a profile: how its states are played (default: the profile's own).

    Returns
    -------
    ws : ndarray of float32, shape (n_frames, num_ws, w_dim)
    info : dict
        ``valid``, ``eeg_times``, ``calibrating``, ``features`` per frame (see
        :class:`SessionLatents`), ``instrument`` (a profile's per-frame state, else None)
        and ``n_clean`` (clean rows available in all).
    """
    check_encoder(encoder)
    calibration_s = default_calibration(encoder, calibration_s)
    whole_session = calibration_s is None
    if not whole_session:
        calibration_s = check_positive(calibration_s, "calibration_s", allow_zero=True)
    times = np.asarray(times, dtype=np.float64)
    if len(rows) == 0:
        raise NeuropaintError("the recording gave no feature rows: it is shorter than one "
                              f"feature window ({encoder.spec.window:g} s).")
    follower = LatentFollower(encoder, rows.names, motion=motion,
                              calibration_s=0.0 if whole_session else calibration_s,
                              update_momentum=update_momentum, w_avg=w_avg, seed=seed,
                              player=player)
    clean = follower.clean_mask(rows)
    n_clean = int(clean.sum())
    if n_clean == 0:
        raise NeuropaintError(f"the recording has no clean feature rows (all {len(rows)} "
                              f"overlap bad spans or non-finite samples): nothing to paint from.")
    if (whole_session or calibration_s > 0) and n_clean < MIN_CALIBRATION_ROWS:
        raise NeuropaintError(f"the recording has only {n_clean} clean feature row(s); the "
                              f"calibration needs {MIN_CALIBRATION_ROWS}.")
    if whole_session:
        session_rows = follower.take(np.asarray(rows.values)[clean])
        if follower.player is not None:
            encoder.recentre(session_rows)  # a profile keeps the performer's spread
        else:
            encoder.normalizer.calibrate(session_rows)

    # Newest row with time <= t for each frame (-1: none yet).
    newest = np.searchsorted(rows.times, times, side="right") - 1  # [n_frames]
    n_frames = len(times)
    ws = np.empty((n_frames, encoder.num_ws, encoder.w_dim), dtype=np.float32)
    valid = np.zeros(n_frames, dtype=bool)
    calibrating = np.zeros(n_frames, dtype=bool)
    eeg_times = np.full(n_frames, np.nan)
    features = np.full((n_frames, len(encoder.feature_names)), np.nan, dtype=np.float32)
    instrument: list[dict | None] = []
    seen = -1  # rows up to this index have been pushed
    previous_t = times[0] if n_frames else 0.0
    for i, t in enumerate(times):
        if newest[i] > seen:
            follower.push(rows[seen + 1 : newest[i] + 1])
            seen = newest[i]
        state = follower.step(t, t - previous_t)
        previous_t = t
        ws[i], valid[i], calibrating[i] = state.ws, state.valid, state.calibrating
        eeg_times[i] = state.eeg_time
        if state.row is not None:
            features[i] = state.row
        instrument.append(state.instrument)
    if not follower.calibrated:
        logger.warning("the session ended before calibration finished (%.1f s): the painting "
                       "rested at w_avg throughout", calibration_s)
    return ws, {"valid": valid, "eeg_times": eeg_times, "calibrating": calibrating,
                "features": features, "n_clean": n_clean,
                "instrument": instrument if follower.player is not None else None}


def as_raw(raw, units: str = "auto") -> mne.io.BaseRaw:
    if isinstance(raw, str | Path):
        return read_raw(raw, units=units, verbose="error")
    if not isinstance(raw, mne.io.BaseRaw):
        raise NeuropaintError(f"'raw' must be an MNE Raw or a recording's path, got "
                              f"{type(raw).__name__}.")
    return raw


def session_latents(
    encoder,
    raw: mne.io.BaseRaw | str | Path,
    *,
    fps: float = 15.0,
    tau: float = 0.5,
    motion: MotionConfig | None = None,
    calibration_s: float | str | None = "auto",
    update_momentum: float | None = None,
    w_avg: np.ndarray | None = None,
    seed: int = 0,
    player: PlayerConfig | None = None,
    artifacts: ArtifactConfig | None = None,
    labels: dict | None = None,
) -> SessionLatents:
    """A recording's per-frame latents: online features -> encoder -> motion (no pixels).

    ``motion`` (when given) replaces ``tau``; other parameters as in :func:`follow_rows`.
    The encoder's normaliser is calibrated on this session. ``artifacts``: the live artifact
    detector's settings (a profile always uses it, ``ArtifactConfig()`` by default, so its
    offline frames are the live ones); None for an encoder keeps to ``BAD`` spans and
    non-finite samples. ``labels``: how the ``state`` column reads the recording's
    annotations (``events``, ``event_window``, ``states`` of :func:`eeg.labels.labels_at`).
    """
    check_encoder(encoder)
    raw = as_raw(raw)
    fps = check_positive(fps, "fps")
    motion = motion or MotionConfig(tau=check_positive(tau, "tau"))
    duration = raw.n_times / raw.info["sfreq"]
    times = frame_times(duration, fps)
    if len(times) == 0:
        raise NeuropaintError(f"the recording ({duration:.3g} s) is shorter than one frame "
                              f"at {fps:g} fps.")
    if artifacts is None and is_profile_mapping(encoder):
        artifacts = ArtifactConfig()
    rows = stream_features(raw, encoder.spec, times, artifacts=artifacts)
    ws, info = follow_rows(encoder, rows, times, motion=motion, calibration_s=calibration_s,
                           update_momentum=update_momentum, w_avg=w_avg, seed=seed,
                           player=player)
    return SessionLatents(
        times=times, ws=ws, states=row_labels(raw, times, **(labels or {})),
        valid=info["valid"],
        eeg_times=info["eeg_times"], calibrating=info["calibrating"],
        features=info["features"], feature_names=list(encoder.feature_names),
        instrument=info["instrument"],
    )


def resize_frames(frames: np.ndarray, size: int | None) -> np.ndarray:
    """uint8 ``[N, H, W, 3]`` frames resized to ``size`` x ``size`` (PIL Lanczos)."""
    if size is None or frames.shape[1:3] == (size, size):
        return frames
    size = check_int(size, "size", minimum=1)
    return np.stack([np.asarray(Image.fromarray(f).resize((size, size), Image.Resampling.LANCZOS))
                     for f in frames])


def synthesize(G: torch.nn.Module, ws: np.ndarray, *, size: int | None = None,
               batch: int = 8, progress: bool = False) -> np.ndarray:
    """Paint ``ws`` ``[N, num_ws, w_dim]``: uint8 frames ``[N, S, S, 3]`` (constant noise)."""
    batch = check_int(batch, "batch", minimum=1)
    ws_t = torch.from_numpy(np.ascontiguousarray(ws, dtype=np.float32))
    starts = range(0, len(ws_t), batch)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="painting", unit="batch")
    parts = [resize_frames(render_ws(G, ws_t[i : i + batch], batch=batch), size) for i in starts]
    return np.concatenate(parts) if parts else np.zeros((0, size or 0, size or 0, 3), np.uint8)


def render_recording(
    encoder,
    G: torch.nn.Module,
    raw: mne.io.BaseRaw | str | Path,
    *,
    fps: float = 15.0,
    size: int | None = None,
    tau: float = 0.5,
    calibration_s: float | str | None = "auto",
    motion: MotionConfig | None = None,
    update_momentum: float | None = None,
    seed: int = 0,
    player: PlayerConfig | None = None,
    labels: dict | None = None,
    batch: int = 8,
    progress: bool = False,
    return_latents: bool = False,
):
    """Paint a recorded session as the live loop would.

    Parameters
    ----------
    encoder : conditioning.encoder.Encoder
        For ``G``; its normaliser gets this session's baseline.
    G : Generator
        A StyleGAN2 generator (``mapping.w_avg`` is where the painting rests).
    raw : Raw | path
        The recording (a path is read with :func:`eeg.io.read_raw`).
    fps : float
        Output frames per second; ``floor(duration * fps)`` frames are painted.
    size : int | None
        Output side in px (Lanczos resampling); None: the generator's resolution.
    tau, calibration_s, motion, update_momentum, seed
        See :func:`follow_rows` (``motion`` replaces ``tau`` when given).
    batch : int
        Frames per synthesis call.
    return_latents : bool
        Also return the :class:`SessionLatents`.

    Returns
    -------
    frames : ndarray of uint8, shape (n_frames, S, S, 3)
    table : list of dict
        One per frame: the columns of ``frames.csv``.
    latents : SessionLatents
        Only with ``return_latents``.
    """
    check_encoder(encoder, G)
    if size is not None:
        size = check_int(size, "size", minimum=8)
    w_avg = getattr(G.mapping, "w_avg", None)
    latents = session_latents(
        encoder, raw, fps=fps, tau=tau, motion=motion, calibration_s=calibration_s,
        update_momentum=update_momentum,
        w_avg=None if w_avg is None else w_avg.detach().cpu().numpy(), seed=seed,
        player=player, labels=labels)
    frames = synthesize(G, latents.ws, size=size, batch=batch, progress=progress)
    if return_latents:
        return frames, latents.table(), latents
    return frames, latents.table()


def save_outputs(frames: np.ndarray, table: list[dict], out: Path, fmt: str, fps: float, *,
                 name: str, detail: str = "") -> tuple[Path, Path]:
    """Frames (or an animation named ``name``) and ``frames.csv`` into ``out``; print where.

    ``detail`` is added to the summary line (e.g. ", 420 from clean EEG").
    """
    written = save_animation(frames, out, fmt, fps, name=name)
    csv_path = write_table(table, out / "frames.csv")
    print(f"{len(frames)} frames ({frames.shape[2]}x{frames.shape[1]} px, {fps:g} fps"
          f"{detail}) -> {written}")
    print(f"per-frame table -> {csv_path}")
    return written, csv_path


def write_table(table: list[dict], path: Path) -> Path:
    """``frames.csv`` (atomically): one row per frame, floats to 6 significant digits."""
    if not table:
        raise NeuropaintError("no frames to write.")
    columns = list(table[0])
    with atomic_open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for row in table:
            writer.writerow([_cell(row[c]) for c in columns])
    return path


def _cell(value) -> str:
    if isinstance(value, bool | np.bool_):
        return str(int(value))
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def _animation_name(path: Path) -> str:
    """A file name for the recording's animation: its name without EEG suffixes."""
    from datasets.eeg import session_name

    return session_name(path)


def _parse_calibration(text: str) -> float | None:
    if text.strip().lower() == "session":
        return None
    try:
        return check_positive(float(text), "--calibration", allow_zero=True)
    except ValueError:
        raise NeuropaintError(f"'--calibration' must be seconds or 'session', got {text!r}.") \
            from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m conditioning.render",
        description="Paint a recorded EEG session offline with a trained encoder and "
        "generator, exactly as the live loop would (same online features, calibration, "
        "artifact gating and motion): frames or an animation, plus frames.csv with each "
        "frame's time, state annotation and features.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", metavar="[ENCODER] GENERATOR RECORDING",
                        help="the encoder folder (from python -m conditioning.train; left out "
                        "with --profile), the generator snapshot or run it was made for, and "
                        "the EEG recording: EDF/BDF/GDF/FIF/BrainVision/EEGLAB/XDF, or a "
                        "recorded live session")
    parser.add_argument("--profile", help="paint with a performer profile (python -m "
                        "live.calibrate or conditioning.calibrate) instead of an encoder")
    parser.add_argument("--hold", type=float, help="profile: seconds a state must lead "
                        "before the painting commits to it (default: the profile's)")
    parser.add_argument("--events", help="the state column from event codes, e.g. "
                        "769=left_hand,770=right_hand (with --event-window)")
    parser.add_argument("--event-window", help="span after each cue in seconds, e.g. 0.5,4.5")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--fps", type=float, default=15.0, help="frames per second")
    parser.add_argument("--size", type=int, help="output side in px (default: the "
                        "generator's resolution); Lanczos resampling")
    parser.add_argument("--format", choices=FORMATS, default="gif",
                        help="gif, webp, frames (PNG files) or mp4 (needs ffmpeg)")
    parser.add_argument("--calibration", metavar="SECONDS",
                        help="baseline period at the start, as live (default 10 with an "
                        "encoder, 0 with a profile: 0 keeps the mapping's own baseline), or "
                        "'session': the whole recording's baseline")
    parser.add_argument("--tau", type=float, default=0.5, help="motion time constant in "
                        "seconds")
    parser.add_argument("--drift", type=float, default=0.0, help="slow wander in W (0: off)")
    parser.add_argument("--adapt", type=float, metavar="MOMENTUM", help="running update of "
                        "the baseline after calibration, per feature row (e.g. 0.003, a ~30 s "
                        "memory at 10 rows/s; default off)")
    parser.add_argument("--stream", help="XDF only: the EEG stream's name or type")
    parser.add_argument("--units", choices=UNITS_CHOICES, default="auto",
                        help="unit of the recording's numbers: auto trusts the file unless its "
                        "amplitude cannot be EEG in that unit, then rescales and says so; V, uV "
                        "or mV override the file (default: auto)")
    parser.add_argument("--save-ws", action="store_true", help="also write ws.npy [N, num_ws, "
                        "w_dim]")
    parser.add_argument("--seed", type=int, default=0, help="seed of the drift")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress bars on stderr (warnings only)")
    args = parser.parse_args(argv)
    setup_logging("WARNING")

    if args.format == "mp4" and shutil.which("ffmpeg") is None:
        raise NeuropaintError("mp4 needs ffmpeg, which is not installed; use --format gif, "
                              "webp or frames (or install ffmpeg).")
    wanted = 2 if args.profile else 3
    if len(args.paths) != wanted:
        raise NeuropaintError(
            "give GENERATOR RECORDING with --profile" if args.profile else
            "give ENCODER GENERATOR RECORDING (or --profile PROFILE GENERATOR RECORDING)")
    generator, recording = args.paths[-2], args.paths[-1]
    calibration = "auto" if args.calibration is None else _parse_calibration(args.calibration)
    motion = build_config(MotionConfig, tau=args.tau, drift=args.drift)
    player = None
    if args.profile:
        from conditioning.profile import PerformerProfile

        encoder = PerformerProfile.from_pretrained(args.profile, generator_path=generator)
        if args.hold is not None:
            player = build_config(PlayerConfig, encoder.player_config.model_dump(),
                                  hold=args.hold)
    else:
        encoder = Encoder.from_pretrained(args.paths[0], generator_path=generator)
    G = load_generator(generator)
    from eeg.labels import check_label_options, parse_event_map, parse_event_window

    if bool(args.events) != bool(args.event_window):
        raise NeuropaintError("--events and --event-window go together (codes, and the span "
                              "after each cue).")
    labels = None
    if args.events:
        labels = check_label_options(events=parse_event_map(args.events),
                                     event_window=parse_event_window(args.event_window))
    raw = read_raw(recording, stream=args.stream, units=args.units, verbose="error")
    frames, table, latents = render_recording(
        encoder, G, raw, fps=args.fps, size=args.size, motion=motion,
        calibration_s=calibration, update_momentum=args.adapt, seed=args.seed,
        player=player, labels=labels, progress=not args.quiet, return_latents=True)
    out = Path(args.out)
    save_outputs(frames, table, out, args.format, args.fps,
                 name=_animation_name(Path(recording)),
                 detail=f", {int(latents.valid.sum())} from clean EEG")
    if args.save_ws:
        with atomic_path(out / "ws.npy") as tmp:
            np.save(tmp, latents.ws)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
