"""Online artifact gating: which feature rows a blink, a saturated amplifier or a dead signal spoils.

The live loop holds the last good latent while the EEG is not brain activity. Non-finite samples
are already flagged by :class:`eeg.online.OnlineProcessor`; :class:`OnlineArtifacts` adds the
artifacts that look like numbers, judged on the processor's own filtered, re-referenced chunk
(:attr:`eeg.online.OnlineProcessor.last_filtered`, so no second filter runs):

- ``blink``: a frontal-polar channel (Fp1, Fp2, Fpz, AF7, AF8) beyond ``blink_uv``. Blinks are
  100-200 µV deflections at Fp1/Fp2 lasting a few hundred ms; after the 1 Hz high-pass about
  half of that is left, while scalp EEG at Fp stays well below it. The rows are held for
  ``blink_hold`` seconds after the blink, not for the whole window: a blink every few seconds
  (15 per minute is normal) must not freeze the painting, and once it is in the past of a 2 s
  window it weighs little;
- ``amplitude``: any channel beyond ``amplitude_uv`` (saturation, a loose electrode, movement);
- ``flat``: every channel's raw samples within ``flat_uv`` peak to peak over a whole chunk (a
  disconnected or shorted cap; judged before the filter, whose ringing would hide it);
- ``gap``: the stream's timestamps jump by more than ``gap_s`` (samples went missing).

The last three spoil every row whose window contains them (a window's length). Measured on
``eeg.synthetic`` recordings (5 min, 32 channels, seed 1): at the default 60 µV, 33 of 38
annotated blinks are caught, and 0.02 % of the samples outside blinks are flagged.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from eeg.channels import normalize_label
from eeg.npeeg import GAP_S

__all__ = ["FRONTAL_POLAR", "ArtifactConfig", "OnlineArtifacts"]

FRONTAL_POLAR = ("FP1", "FP2", "FPZ", "AF7", "AF8")


class ArtifactConfig(BaseModel):
    """Thresholds of the online artifact gate (microvolts on the filtered, referenced signal)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    blink_uv: float | None = Field(60.0, gt=0, description="A frontal-polar channel beyond "
                                   "this is a blink; None: no blink gating.")
    blink_hold: float = Field(0.5, ge=0, description="Seconds after a blink during which "
                              "rows are not used.")
    amplitude_uv: float | None = Field(500.0, gt=0, description="Any channel beyond this is "
                                       "not brain activity (saturation, movement); None: off.")
    flat_uv: float | None = Field(0.1, gt=0, description="Every channel's raw samples within "
                                  "this peak to peak over a chunk is a dead signal; None: off.")
    gap_s: float = Field(GAP_S, gt=0, description="A jump between successive timestamps "
                         "longer than this is a gap (the same rule as eeg.npeeg's BAD_gap).")


class OnlineArtifacts:
    """Artifact spans of a stream, fed chunk by chunk; asks which rows they spoil.

    Parameters
    ----------
    config : ArtifactConfig
    ch_names : list of str
        The processor's channels, in order.
    window_s : float
        The feature window: how long an amplitude, flat or gap artifact spoils rows.
    """

    def __init__(self, config: ArtifactConfig, ch_names: list[str], window_s: float):
        self.config = config
        self.window_s = float(window_s)
        labels = [normalize_label(c).upper() for c in ch_names]
        self.frontal = np.array([i for i, c in enumerate(labels) if c in FRONTAL_POLAR],
                                dtype=np.int64)
        self._spans: deque[tuple[float, float, str]] = deque()  # (start, end, kind)
        self._last_time = -math.inf
        self.counts = {"blink": 0, "amplitude": 0, "flat": 0, "gap": 0}

    def _add(self, start: float, end: float, kind: str) -> None:
        for i in range(len(self._spans) - 1, -1, -1):
            s0, e0, k0 = self._spans[i]
            if k0 == kind:
                if start <= e0:  # the same artifact goes on: extend its span
                    self._spans[i] = (s0, max(e0, end), kind)
                    return
                break
        self._spans.append((start, end, kind))
        self.counts[kind] += 1

    def update(self, filtered: np.ndarray, times: np.ndarray, raw: np.ndarray) -> None:
        """A chunk: ``filtered`` and ``raw`` (n_channels, n) in volts, its ``times`` (n,)."""
        times = np.asarray(times, dtype=np.float64)
        if len(times) == 0:
            return
        cfg = self.config
        if times[0] - self._last_time > cfg.gap_s and math.isfinite(self._last_time):
            self._add(float(times[0]), float(times[0]) + self.window_s, "gap")
        self._last_time = float(times[-1])
        with np.errstate(invalid="ignore"):
            uv = np.abs(filtered) * 1e6  # [n_channels, n]
            if cfg.amplitude_uv is not None:
                hit = np.flatnonzero((uv > cfg.amplitude_uv).any(axis=0))
                if len(hit):
                    self._add(float(times[hit[0]]), float(times[hit[-1]]) + self.window_s,
                              "amplitude")
            if cfg.blink_uv is not None and len(self.frontal):
                hit = np.flatnonzero((uv[self.frontal] > cfg.blink_uv).any(axis=0))
                if len(hit):
                    self._add(float(times[hit[0]]), float(times[hit[-1]]) + cfg.blink_hold,
                              "blink")
            if cfg.flat_uv is not None and len(times) > 1:
                span = np.ptp(np.asarray(raw, dtype=np.float64), axis=1) * 1e6
                if np.isfinite(span).all() and (span < cfg.flat_uv).all():
                    self._add(float(times[0]), float(times[-1]) + self.window_s, "flat")
        # Spans over before the oldest row still to come are no longer needed.
        horizon = self._last_time - self.window_s
        while self._spans and self._spans[0][1] < horizon:
            self._spans.popleft()

    def spoiled(self, row_times: np.ndarray) -> list[str | None]:
        """For each row time: the kind of artifact that spoils it, or None."""
        out: list[str | None] = []
        for t in np.asarray(row_times, dtype=np.float64):
            kind = None
            for start, end, k in self._spans:
                if start <= t < end:
                    kind = k
                    break
            out.append(kind)
        return out
