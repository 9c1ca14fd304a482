"""The live render engine: EEG chunks in, paintings out, at a steady frame rate.

One frame of the loop (:meth:`Engine.render_frame`)::

    source.read()                      everything that arrived since the last frame (never waits)
      -> eeg.online.OnlineProcessor    causal filters and features, built from the encoder's spec
      -> conditioning.follow.LatentFollower
                                       calibration, artifact gating, encoder -> target ws,
                                       conditioning.motion.WMotion (a smooth path through W)
      -> generator.synthesis           the painting (constant noise: a still EEG, a still image)
      -> upscale                       to the output size (bicubic, or a gan.upscale model)
      -> sinks                         viewer, numbered frames, session recording, OSC out

The loop runs at a target frame rate and never waits for EEG: each frame paints the newest
feature row there is (latest-value semantics); a frame that cannot be painted in time is
dropped (counted), never queued. Every frame carries the LSL time of the newest EEG sample it
reflects (the end of the newest feature row's window), so its latency is measured:
``age = local_clock() - eeg_time`` when the frame is ready.

Feature rows are computed more often live than the encoder's training hop
(``feature_rate``, default 64 rows/s, i.e. the spec's hop divided by a whole number): the
window, bands and normalisation stay the encoder's, only the rows come more often, so the
newest row is at most about 15 ms older than the newest sample.

Signal states shown to the performer: ``waiting`` (no sample yet), ``calibrating`` (the first
``calibration`` seconds set the session baseline; the painting rests at ``w_avg``), ``ok``,
``artifact`` (the newest row saw non-finite samples or a gap: the last good latent is held),
``stalled`` (no sample for over a second: the last image is held until the stream returns).
When the signal is ``calibrating``, or ``artifact`` for more than ``REASON_AFTER_S``, the
status carries a ``reason`` in words, from running counts of feature rows by what spoiled
them (e.g. "calibrating: 0 clean rows in 40 s — every row over 500 µV; is the stream in µV
labelled as V?"): a few dictionary look-ups per frame.

Stage controls (OSC in, or any thread through :meth:`Engine.submit`) are
:mod:`live.stage`'s: at most ``commands_per_frame`` are applied at the start of each frame,
so a flood costs bounded work; the commands and what they do are listed there.

Sinks with ``write_rows(batch)`` (OSC out) receive each frame's new feature rows as a
:class:`RowBatch` as soon as they are computed, before the profile reads them and before the
painting, so what they send waits for neither; the profile's reading travels with the frame
(:attr:`Frame.instrument`).
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from pylsl import local_clock

from conditioning.follow import MIN_CALIBRATION_ROWS, LatentFollower
from conditioning.motion import MotionConfig
from conditioning.player import PlayerConfig
from conditioning.render import check_encoder
from eeg.artifacts import ArtifactConfig, OnlineArtifacts
from eeg.features import FeatureFrame, FeatureSpec
from eeg.online import OnlineProcessor
from gan.images import to_uint8
from gan.precision import autocast, resolve_precision
from live.stage import COMMAND_QUEUE, StageControls
from neuropaint.validate import NeuropaintError

logger = logging.getLogger(__name__)

__all__ = ["Engine", "EngineConfig", "EngineStats", "Frame",
           "RowBatch", "Sink", "band_meters", "check_output_size", "live_spec"]

STAT_FRAMES = 600  # Frames kept for the age percentiles.
REASON_AFTER_S = 2.0  # An artifact held this long gets a reason in the status.
AGE_BINS = 10_000  # 1 ms bins of the whole session's ages (10 s; older ages share the last).


class EngineConfig(BaseModel):
    """How the live loop paints."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fps: float = Field(15.0, gt=0, le=240, description="Target frames per second.")
    size: int | None = Field(256, ge=8, le=4096, description="Output side in pixels (the "
                             "generator's output is upscaled to it); None: the generator's.")
    calibration: float = Field(10.0, ge=0, description="Seconds of EEG that set the session "
                               "baseline before the painting follows the brain.")
    baseline_memory: float | None = Field(60.0, gt=0, description="After calibration, the "
                                          "baseline keeps following the signal's slow drifts "
                                          "with this memory in seconds (an exponential "
                                          "average); None: the calibration baseline stays.")
    feature_rate: float = Field(64.0, gt=0, le=1000, description="Feature rows per second "
                                "computed live (the spec's hop divided by a whole number).")
    motion: MotionConfig = Field(default_factory=lambda: MotionConfig(tau=0.6, drift=0.15),
                                 description="Motion in W.")
    player: PlayerConfig | None = Field(None, description="With a performer profile: how its "
                                        "states are played (None: the profile's own).")
    seed: int = Field(0, ge=0, description="Seed of the motion's drift.")
    artifacts: ArtifactConfig = Field(default_factory=ArtifactConfig, description="Which "
                                      "samples are not brain activity (blinks, saturation, "
                                      "flat signal, gaps): rows they spoil are not painted.")
    threads: int | None = Field(1, ge=1, le=256, description="torch CPU threads while the "
                                "loop runs (restored after). 1 is fastest for small models on "
                                "a small CPU: more threads spin against the LSL, viewer and "
                                "simulator threads (a 2-core machine measured 1.9 ms vs 110 ms "
                                "per 16 px frame under load). None: leave torch as it is.")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="Number format of the generator and upscaler: auto is bf16 where "
        "the hardware computes it (a CUDA GPU, a CPU with AVX512-BF16 or AMX), else fp32; "
        "bf16 where it would be emulated is refused.")
    commands_per_frame: int = Field(16, ge=1, le=COMMAND_QUEUE, description="Most stage "
                                    "commands (OSC in) applied at the start of one frame; "
                                    "the rest wait for the next frames.")


@dataclass
class Frame:
    """One painted frame and what it was made of."""

    index: int
    image: np.ndarray          # uint8 [H, W, 3]
    ws: np.ndarray             # float32 [num_ws, w_dim]
    time: float                # local_clock() when the frame was ready
    eeg_time: float            # LSL time of the newest EEG sample it reflects (NaN: none yet)
    signal: str                # waiting | calibrating | ok | artifact | stalled
    valid: bool
    calibrating: bool
    bands: dict[str, float] = field(default_factory=dict)
    render_ms: float = 0.0
    artifact: str | None = None  # blink | amplitude | flat | gap | nan, when signal is artifact
    instrument: dict | None = None  # a profile's posteriors, committed state and controls
    reason: str | None = None  # why the signal is calibrating (or artifact for long), in words

    @property
    def age(self) -> float:
        """Seconds between the newest EEG sample reflected and the frame being ready."""
        return self.time - self.eeg_time


@dataclass
class RowBatch:
    """The feature rows one frame read, as sinks with ``write_rows`` receive them."""

    names: list[str]           # feature names, the live processor's column order
    values: np.ndarray         # float32 [n_rows, n_features]
    times: np.ndarray          # float64 [n_rows]: LSL time of each row's newest sample
    kinds: list[str | None]    # what spoils each row (blink, amplitude, ..., nan); None: clean
    computed: float            # local_clock() when the rows were computed


class Sink(Protocol):
    """Where frames go: the viewer, a folder of frames, a session recording, OSC out.

    A sink that also has ``write_eeg(data, times)`` receives every chunk of raw EEG (volts,
    LSL times) as it arrives, before the frame it feeds; one with ``write_rows(batch)``
    receives each frame's new feature rows (a :class:`RowBatch`) before the painting.
    """

    def write(self, frame: Frame, status: dict) -> None: ...

    def close(self) -> None: ...


class EngineStats:
    """Frame rate, frame ages, dropped frames: what the status line and benchmark print."""

    def __init__(self) -> None:
        self.frames = 0
        self.dropped = 0
        self.stalled_frames = 0
        self._ages: deque[float] = deque(maxlen=STAT_FRAMES)
        self._times: deque[float] = deque(maxlen=STAT_FRAMES)
        self.all_ages: list[float] = []  # every fresh frame's age (the benchmark's figures)
        # The whole session, in constant memory: first/last frame times and a histogram of
        # ages in 1 ms bins (the last bin holds everything from AGE_BINS ms on).
        self.first_time: float | None = None
        self.last_time: float | None = None
        self._age_hist = np.zeros(AGE_BINS, dtype=np.int64)

    def add(self, frame: Frame, *, keep_all: bool = False) -> None:
        self.frames += 1
        self._times.append(frame.time)
        if self.first_time is None:
            self.first_time = frame.time
        self.last_time = frame.time
        if frame.signal == "stalled":
            self.stalled_frames += 1
        elif math.isfinite(frame.eeg_time):
            self._ages.append(frame.age)
            self._age_hist[min(max(int(frame.age * 1000.0), 0), AGE_BINS - 1)] += 1
            if keep_all:
                self.all_ages.append(frame.age)

    def fps(self, span: float = 2.0) -> float:
        """Frames per second over the last ``span`` seconds."""
        if len(self._times) < 2:
            return 0.0
        last = self._times[-1]
        recent = [t for t in self._times if t >= last - span]
        if len(recent) < 2 or recent[-1] <= recent[0]:
            return 0.0
        return (len(recent) - 1) / (recent[-1] - recent[0])

    def age_ms(self) -> dict[str, float]:
        """Percentiles of recent frame ages in milliseconds (empty before the first row)."""
        if not self._ages:
            return {}
        p50, p95, p99 = np.percentile(np.asarray(self._ages) * 1000.0, [50, 95, 99])
        return {"p50": round(float(p50), 1), "p95": round(float(p95), 1),
                "p99": round(float(p99), 1)}

    def session(self) -> dict:
        """The whole session so far (not the recent window): frames, seconds between the
        first and last frame, mean fps, dropped and stalled frames, age p50/p95 in ms (to
        the millisecond; empty before the first row)."""
        seconds = 0.0 if self.first_time is None else self.last_time - self.first_time
        mean_fps = (self.frames - 1) / seconds if seconds > 0 else 0.0
        out = {"frames": self.frames, "seconds": round(seconds, 2),
               "fps": round(mean_fps, 2), "dropped": self.dropped,
               "stalled_frames": self.stalled_frames, "age_ms": {}}
        counts = np.cumsum(self._age_hist)
        if counts[-1]:
            # The bin where the running count first reaches q of all; its middle, in ms.
            out["age_ms"] = {f"p{q}": float(np.searchsorted(counts, q / 100 * counts[-1]))
                             + 0.5 for q in (50, 95)}
        return out


def check_output_size(G: torch.nn.Module, upscaler, size: int | None) -> int:
    """The side the network paints (the generator's, times the upscaler's factor); a one-line
    error when ``size`` asks an upscaler for more than it paints (bicubic stretching is what
    ``--no-upscaler`` is for, and the viewer fits the painting to the screen anyway)."""
    painted = int(G.img_resolution) * (upscaler.scale if upscaler is not None else 1)
    if upscaler is not None and size is not None and size > painted:
        raise NeuropaintError(
            f"--size {size}: the generator paints {G.img_resolution} px and the x"
            f"{upscaler.scale} upscaler reaches {painted} px; choose --size {painted} or "
            f"less, an upscaler that reaches {size} px, or --no-upscaler to stretch with "
            "bicubic.")
    return painted


def live_spec(spec: FeatureSpec, feature_rate: float) -> FeatureSpec:
    """The encoder's spec with its hop divided by the whole number that reaches ``feature_rate``."""
    k = max(1, math.ceil(spec.hop * feature_rate - 1e-9))
    return spec if k == 1 else spec.model_copy(update={"hop": spec.hop / k})


def band_meters(row: np.ndarray | None, names: Sequence[str], bands: Sequence[str]
                ) -> dict[str, float]:
    """Relative band power (0..1, summing to 1) from a row's whole-head features.

    Uses ``relative_power:BAND:whole_head`` when the row has it, else
    ``log_power:BAND:whole_head`` (log10 µV²) turned into shares of the total.
    """
    if row is None:
        return {}
    index = {name: i for i, name in enumerate(names)}
    for kind in ("relative_power", "log_power"):
        cols = [index.get(f"{kind}:{band}:whole_head") for band in bands]
        if any(c is None for c in cols):
            continue
        values = np.asarray([row[c] for c in cols], dtype=np.float64)
        if not np.isfinite(values).all():
            return {}
        power = values if kind == "relative_power" else 10.0 ** (values - values.max())
        total = power.sum()
        if total <= 0:
            return {}
        return {band: round(float(p / total), 4) for band, p in zip(bands, power, strict=True)}
    return {}


class Engine:
    """EEG source -> features -> encoder -> motion -> generator -> sinks.

    Parameters
    ----------
    encoder : conditioning.encoder.Encoder | conditioning.profile.PerformerProfile
        Made for ``G`` (its normaliser gets this session's baseline unless
        ``config.calibration`` is 0, as it is for a profile).
    G : Generator
        A StyleGAN2 generator in eval mode.
    source : live.source.LSLSource
        Opened; anything with ``meta`` (``sfreq``, ``ch_names``), ``read()`` and ``stalled``.
    config : EngineConfig
    sinks : sequence of Sink
    upscaler : torch.nn.Module | None
        A ``gan.upscale`` model (``[N, 3, H, W]`` in [-1, 1] -> ``scale`` x larger) applied
        before the final resize; None: bicubic only.
    keep_ages : bool
        Keep every frame's age (:attr:`EngineStats.all_ages`, for benchmarks).
    snapshots : live.sinks.SnapshotWriter | None
        Where the ``snapshot`` command writes (anything with ``save(index, image, ws,
        name)``); None: the command is refused (logged).
    """

    def __init__(self, encoder, G: torch.nn.Module, source, config: EngineConfig | None = None,
                 *, sinks: Sequence[Sink] = (), upscaler: torch.nn.Module | None = None,
                 keep_ages: bool = False, snapshots=None):
        self.config = config or EngineConfig()
        check_encoder(encoder, G)
        self.encoder, self.G, self.source = encoder, G, source
        self.sinks = list(sinks)
        # Sinks that also keep the raw EEG (a session recording) have write_eeg(data, times).
        self._eeg_sinks = [s for s in self.sinks if hasattr(s, "write_eeg")]
        self._row_sinks = [s for s in self.sinks if hasattr(s, "write_rows")]
        self.snapshots = snapshots
        self.upscaler = upscaler
        self.keep_ages = keep_ages
        self.device = next(G.parameters()).device
        self.painted_size = check_output_size(G, upscaler, self.config.size)
        self.precision = resolve_precision(self.config.precision, self.device,
                                           what="'precision'")
        meta = source.meta
        self.spec = live_spec(encoder.spec, self.config.feature_rate)
        # Sensor positions (a stream's channels/channel/location) place non-standard labels.
        self.processor = OnlineProcessor(self.spec, float(meta.sfreq), list(meta.ch_names),
                                         info=meta.info() if hasattr(meta, "info") else None)
        self.window_s = self.processor.layout.window_n / self.processor.sfreq
        w_avg = G.mapping.w_avg.detach().cpu().numpy() if hasattr(G.mapping, "w_avg") else None
        memory = self.config.baseline_memory
        momentum = None if memory is None else min(1.0, self.spec.hop / memory)  # per row
        self.follower = LatentFollower(
            encoder, self.processor.names, motion=self.config.motion,
            calibration_s=self.config.calibration, update_momentum=momentum,
            w_avg=w_avg, seed=self.config.seed, player=self.config.player)
        self.bands = list(self.spec.bands)
        self.stats = EngineStats()
        self.artifacts = OnlineArtifacts(self.config.artifacts, self.processor.ch_names,
                                         self.window_s)
        self.artifact_kind: str | None = None  # what spoils the newest row
        self.row_kinds: dict[str, int] = {}  # feature rows spoiled, by artifact kind (reason)
        self._artifact_since: float | None = None  # when the signal turned artifact
        self._artifact_counts: tuple[int, dict[str, int]] = (0, {})  # rows, kinds then
        self.first_sample: float | None = None  # local clock of the first sample
        self.last_frame: Frame | None = None
        self._last_step: float | None = None
        self._stop = threading.Event()
        self._last_show: float | None = None  # when the last frame started (fades)
        self._painted: tuple[np.ndarray, np.ndarray] | None = None  # (ws, image) last painted
        self.stage = StageControls(self.follower, self._painted_now, snapshots,
                                   per_frame=self.config.commands_per_frame)

    # ------------------------------------------------------------------ EEG
    def _take_eeg(self) -> None:
        data, times = self.source.read()
        if len(times) == 0:
            return
        if self.first_sample is None:
            self.first_sample = float(times[0])
        for sink in self._eeg_sinks:
            sink.write_eeg(data, times)
        rows = self.processor.push(data, times)
        self.artifacts.update(self.processor.last_filtered, times, data)
        if len(rows):
            # What spoils each row: an artifact span, or non-finite samples in its window.
            kinds = [kind or (None if ok else "nan") for kind, ok in
                     zip(self.artifacts.spoiled(rows.times), rows.valid, strict=True)]
            clean = np.array([kind is None for kind in kinds])
            if not clean.all():
                rows = FeatureFrame(rows.values, rows.names, rows.times, clean)
            self.artifact_kind = kinds[-1]
            for kind in kinds:
                if kind is not None:
                    self.row_kinds[kind] = self.row_kinds.get(kind, 0) + 1
            if self._row_sinks:
                self._send_rows(RowBatch(list(rows.names), np.asarray(rows.values),
                                         np.asarray(rows.times, dtype=np.float64), kinds,
                                         local_clock()))
            self.follower.push(rows)

    # ------------------------------------------------------------------ pixels
    @torch.inference_mode()
    def paint(self, ws: np.ndarray) -> np.ndarray:
        """uint8 ``[S, S, 3]`` from one ``ws`` ``[num_ws, w_dim]``."""
        x = torch.from_numpy(np.ascontiguousarray(ws, dtype=np.float32))[None].to(self.device)
        with autocast(self.precision, self.device):
            img = self.G.synthesis(x, noise_mode="const")  # [1, 3, H, W]
            if self.upscaler is not None:
                img = self.upscaler(img)
        size = self.config.size
        if size is not None and img.shape[-1] != size:
            img = F.interpolate(img, size=(size, size), mode="bicubic", align_corners=False,
                                antialias=img.shape[-1] > size)
        return to_uint8(img)[0]

    def _paint_once(self, ws: np.ndarray) -> np.ndarray:
        """:meth:`paint`, or the last image when ``ws`` is unchanged (a frozen painting)."""
        if self._painted is not None and np.array_equal(self._painted[0], ws):
            return self._painted[1]
        image = self.paint(ws)
        self._painted = (ws, image)
        return image

    def _send_rows(self, batch: RowBatch) -> None:
        for sink in self._row_sinks:
            try:
                sink.write_rows(batch)
            except Exception as exc:  # a sink must never stop the painting
                self.stage.log_once(f"rows:{type(sink).__name__}",
                                    f"{type(sink).__name__}.write_rows failed: {exc}")

    def render_frame(self) -> Frame:
        """Paint one frame from whatever EEG has arrived; send it to the sinks."""
        start = local_clock()
        self.stage.apply()
        self._take_eeg()
        stalled = bool(getattr(self.source, "stalled", False))
        index = self.stats.frames
        dt_real = 0.0 if self._last_step is None else start - self._last_step
        dt_show = 0.0 if self._last_show is None else start - self._last_show  # fades
        self._last_show = start
        if stalled and self.last_frame is not None:
            # The outlet is gone: hold the last image (and the motion) until it returns.
            image = self._painted[1] if self._painted is not None else self.last_frame.image
            frame = Frame(index=index, image=self.stage.shown(image, dt_show), ws=self.last_frame.ws,
                          time=local_clock(), eeg_time=self.last_frame.eeg_time,
                          signal="stalled", valid=False, calibrating=self.last_frame.calibrating,
                          bands=self.last_frame.bands, instrument=self.last_frame.instrument)
            self._last_step = None
        else:
            t = 0.0 if self.first_sample is None else start - self.first_sample
            self._last_step = start
            # Frozen: the motion (and its drift) stand still; the EEG is still read.
            state = self.follower.step(t, 0.0 if self.stage.frozen else dt_real)
            painting = self._paint_once(state.ws)
            image = self.stage.shown(painting, dt_show)
            if self.first_sample is None:
                signal = "waiting"
            elif state.calibrating:
                signal = "calibrating"
            elif not state.valid:
                signal = "artifact"
            else:
                signal = "ok"
            frame = Frame(index=index, image=image, ws=state.ws, time=local_clock(),
                          eeg_time=state.eeg_time, signal=signal, valid=state.valid,
                          calibrating=state.calibrating,
                          bands=band_meters(state.row, self.encoder.feature_names, self.bands),
                          artifact=self.artifact_kind if signal == "artifact" else None,
                          instrument=state.instrument, reason=self._reason(signal, t, start))
        frame.render_ms = (frame.time - start) * 1000.0
        self.stats.add(frame, keep_all=self.keep_ages)
        self.last_frame = frame
        status = self.status(frame)
        for sink in self.sinks:
            sink.write(frame, status)
        return frame

    def status(self, frame: Frame | None = None) -> dict:
        """The status the viewer shows and the status line prints."""
        frame = frame or self.last_frame
        out = {"fps": round(self.stats.fps(), 2), "age_ms": self.stats.age_ms(),
               "dropped": self.stats.dropped, "frames": self.stats.frames,
               "stalled_frames": self.stats.stalled_frames}
        out["stage"] = self.stage.status()
        if frame is not None:
            out.update({"frame": frame.index, "signal": frame.signal, "bands": frame.bands,
                        "eeg_time": (float(frame.eeg_time) if math.isfinite(frame.eeg_time)
                                     else None),
                        "artifact": frame.artifact,
                        "size": list(frame.image.shape[:2]),
                        "render_ms": round(frame.render_ms, 1)})
            if frame.instrument is not None:
                out["instrument"] = frame.instrument
            if frame.reason is not None:
                out["reason"] = frame.reason
        return out

    # ------------------------------------------------------------------ stage controls
    def submit(self, command: str, *args) -> bool:
        """Queue a stage command from any thread (never waits); see :mod:`live.stage`."""
        return self.stage.submit(command, *args)

    def _painted_now(self) -> tuple[int, np.ndarray, np.ndarray] | None:
        if self._painted is None:
            return None
        index = self.last_frame.index if self.last_frame is not None else 0
        return index, self._painted[0], self._painted[1]

    # ------------------------------------------------------------------ the reason
    def _reason(self, signal: str, t: float, now: float) -> str | None:
        """Why the signal is calibrating, or has been artifact for long; None otherwise."""
        follower = self.follower
        if signal != "artifact":
            self._artifact_since = None
        if signal == "artifact":
            if self._artifact_since is None:
                self._artifact_since = now
                self._artifact_counts = (follower.rows_seen, dict(self.row_kinds))
            held = now - self._artifact_since
            if held < REASON_AFTER_S:
                return None
            rows0, kinds0 = self._artifact_counts
            kinds = {k: n - kinds0.get(k, 0) for k, n in self.row_kinds.items()}
            return f"artifact for {held:.0f} s: {self._spoiled(kinds, follower.rows_seen - rows0)}"
        if signal != "calibrating":
            return None
        clean = follower.clean_rows_seen
        text = f"calibrating: {clean} clean row{'' if clean == 1 else 's'} in {t:.0f} s"
        if follower.rows_seen == 0:
            return text + f" (the first row comes after a {self.window_s:g} s window)"
        if t < follower.calibration_s and clean >= follower.rows_seen // 2:
            return text + f" (baseline at {follower.calibration_s:g} s)"
        if clean >= MIN_CALIBRATION_ROWS:
            return text
        return text + " — " + self._spoiled(self.row_kinds, follower.rows_seen, hint=True)

    def _spoiled(self, kinds: dict[str, int], rows: int, *, hint: bool = False) -> str:
        """What spoiled most of ``rows`` feature rows, from rows per kind; ``hint``: with a
        guess at the cause when it is every row from the start (units, electrodes)."""
        if rows <= 0 or not any(n > 0 for n in kinds.values()):
            return "no rows spoiled by artifacts"
        kind, n = max(kinds.items(), key=lambda item: item[1])
        share = min(1.0, n / rows)
        who = "every row" if share >= 0.95 else f"{100 * share:.0f}% of rows"
        cfg = self.config.artifacts
        what = {
            "amplitude": f"over {cfg.amplitude_uv or 0:g} µV",
            "blink": "with blinks on the frontal channels",
            "flat": f"flat (under {cfg.flat_uv or 0:g} µV peak to peak)",
            "gap": "in gaps of the stream",
            "nan": "with non-finite samples",
        }.get(kind, kind)
        text = f"{who} {what}"
        if hint and share >= 0.95 and kind == "amplitude":
            text += "; is the stream in µV labelled as V?"
        elif hint and share >= 0.95 and kind == "flat":
            text += "; are the electrodes on (or the stream in V labelled as µV)?"
        return text

    # ------------------------------------------------------------------ the loop
    def stop(self) -> None:
        """Ask :meth:`run` to return after the current frame (thread-safe)."""
        self._stop.set()

    def run(self, duration: float | None = None, *, on_frame=None) -> EngineStats:
        """Paint at ``config.fps`` until :meth:`stop` or ``duration`` seconds.

        ``on_frame(frame)`` is called after each frame (the status line uses it). A frame
        whose slot has passed is dropped and counted, never painted late.
        """
        threads = torch.get_num_threads()
        if self.config.threads is not None and self.device.type == "cpu":
            torch.set_num_threads(self.config.threads)
        try:
            return self._run(duration, on_frame)
        finally:
            torch.set_num_threads(threads)

    def _run(self, duration: float | None, on_frame) -> EngineStats:
        if self.last_frame is None:
            self.paint(self.follower.motion.ws)  # warm-up: the first call is the slowest
        period = 1.0 / self.config.fps
        begin = local_clock()
        deadline = math.inf if duration is None else begin + duration
        next_slot = begin
        while not self._stop.is_set():
            now = local_clock()
            if now >= deadline:
                break
            if now < next_slot:
                self._stop.wait(min(next_slot, deadline) - now)
                continue
            frame = self.render_frame()
            if on_frame is not None:
                on_frame(frame)
            next_slot += period
            late = local_clock() - next_slot
            if late > 0:
                missed = int(late // period) + 1
                self.stats.dropped += missed
                next_slot += missed * period
        return self.stats

    def close(self) -> None:
        """Close every sink and the snapshot writer (the source belongs to the caller)."""
        for sink in [*self.sinks, *([self.snapshots] if self.snapshots is not None else [])]:
            try:
                sink.close()
            except Exception as exc:
                logger.warning("closing %s failed: %s", type(sink).__name__, exc)
