"""EEG features of each moment: band powers, relative powers, alpha asymmetry, spectral entropy.

One definition serves the offline and the live path. A :class:`FeatureSpec` (bands, window,
hop, level, filter and reference) fixes everything; :func:`extract` runs the streaming
processor of :mod:`eeg.online` over a whole recording, so offline features are, by
construction, the ones a live session computes from the same samples.

Spectra follow Welch (1967): each window of ``window`` seconds is covered by ``n_segments``
Hann-tapered segments with about 50 % overlap, whose periodograms are averaged. Segment ends
lie on the hop grid, so each hop computes one new periodogram and reuses the others.

Features (per channel or per scalp region, see :mod:`eeg.channels`):

- ``log_power``: log10 of the absolute band power in µV².
- ``relative_power``: band power over the power from the lowest to the highest band edge.
- ``alpha_asymmetry``: ln(alpha right) - ln(alpha left) over homologous frontal sites, the
  frontal alpha asymmetry index of Davidson (1992); F4-F3 style pairs at channel level,
  frontal_right - frontal_left at region level.
- ``spectral_entropy``: Shannon entropy of the normalised spectrum between the band edges,
  divided by its maximum (Inouye et al. 1991), 0 (one line) to 1 (flat).
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field
from typing import Literal

import mne
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from scipy import fft as sp_fft
from scipy import signal

from eeg.channels import REGIONS, channel_regions, normalize_label, region_from_label
from neuropaint.validate import NeuropaintError, check_positive, check_unique

logger = logging.getLogger(__name__)

FeatureKind = Literal["log_power", "relative_power", "alpha_asymmetry", "spectral_entropy"]
FEATURE_KINDS: tuple[str, ...] = ("log_power", "relative_power", "alpha_asymmetry",
                                  "spectral_entropy")
DEFAULT_BANDS: dict[str, tuple[float, float]] = {
    "delta": (1.0, 4.0),
    "theta": (4.0, 8.0),
    "alpha": (8.0, 13.0),
    "beta": (13.0, 30.0),
    "gamma": (30.0, 40.0),
}
WHOLE_HEAD = "whole_head"
_UV2 = 1e12  # V² -> µV²
# Powers are floored here before logs: 1e-20 V² (1e-8 µV²) is far below any amplifier's
# noise, so a flat channel gives a finite, recognisably low value instead of -inf.
_POWER_FLOOR = 1e-20


class FeatureUnfitWarning(UserWarning):
    """A feature had to fall back (unplaceable channels, no frontal pair)."""


class FeatureSpec(BaseModel):
    """Everything that defines the features; saved inside every encoder checkpoint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bands: dict[str, tuple[float, float]] = Field(
        default_factory=lambda: dict(DEFAULT_BANDS),
        description="Frequency bands as name -> (low, high) in Hz; a bin f belongs to a band "
        "when low <= f < high.",
    )
    window: float = Field(2.0, gt=0, description="Length of the analysis window in seconds.")
    hop: float = Field(0.1, gt=0, description="Time between successive feature rows in seconds.")
    n_segments: int = Field(3, ge=1, le=16, description="Welch segments averaged per window "
                            "(about 50 % overlap); 1 is a single Hann periodogram.")
    level: Literal["channels", "regions"] = Field(
        "regions", description="Features per channel, or per scalp region (plus whole head)."
    )
    features: tuple[FeatureKind, ...] = Field(
        FEATURE_KINDS, description="Which feature kinds to compute, in this order."
    )
    l_freq: float | None = Field(1.0, gt=0, description="High-pass edge of the causal filter "
                                 "in Hz (None: no high-pass).")
    h_freq: float | None = Field(40.0, gt=0, description="Low-pass edge of the causal filter "
                                 "in Hz (None: no low-pass).")
    notch_freqs: tuple[float, ...] = Field(
        (50.0, 60.0), description="Line frequencies to notch; both by default so one spec "
        "works on either mains; those above Nyquist are skipped.",
    )
    filter_order: int = Field(4, ge=1, le=8, description="Butterworth order of each filter edge.")
    reference: Literal["average", "none"] = Field(
        "average", description="Re-reference to the average of the good channels, or keep."
    )

    @field_validator("bands")
    @classmethod
    def _check_bands(cls, bands: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        if not bands:
            raise ValueError("at least one band is needed")
        for name, (low, high) in bands.items():
            if not (math.isfinite(low) and math.isfinite(high)) or low < 0 or high <= low:
                raise ValueError(f"band {name!r} must have 0 <= low < high, got ({low}, {high})")
        return bands

    @field_validator("features")
    @classmethod
    def _check_features(cls, features: tuple[str, ...]) -> tuple[str, ...]:
        if not features:
            raise ValueError("at least one feature kind is needed")
        if len(set(features)) != len(features):
            raise ValueError(f"feature kinds must be unique, got {list(features)}")
        return features

    @model_validator(mode="after")
    def _check_consistency(self) -> FeatureSpec:
        if self.hop > self.window:
            raise ValueError(f"'hop' ({self.hop} s) must not exceed 'window' ({self.window} s)")
        if "alpha_asymmetry" in self.features and "alpha" not in self.bands:
            raise ValueError("'alpha_asymmetry' needs a band named 'alpha'")
        if self.l_freq is not None and self.h_freq is not None and self.l_freq >= self.h_freq:
            raise ValueError(f"'l_freq' ({self.l_freq}) must be below 'h_freq' ({self.h_freq})")
        return self

    @property
    def f_min(self) -> float:
        """Lowest band edge in Hz."""
        return min(low for low, _ in self.bands.values())

    @property
    def f_max(self) -> float:
        """Highest band edge in Hz."""
        return max(high for _, high in self.bands.values())


@dataclass
class FeatureFrame:
    """Feature rows in time order.

    Attributes
    ----------
    values : ndarray, shape (n_windows, n_features)
    names : list of str, length n_features
        ``kind:band:unit`` (e.g. ``log_power:alpha:occipital_midline``), ``kind:unit`` for
        entropy and asymmetry.
    times : ndarray, shape (n_windows,)
        Time of the newest sample in each window (seconds; recording time or LSL time).
    valid : ndarray of bool, shape (n_windows,)
        False when the window held non-finite samples (they were held at the last good value)
        or, for a Raw passed to :func:`extract`, overlaps a ``BAD*`` annotation.
    """

    values: np.ndarray
    names: list[str]
    times: np.ndarray
    valid: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.valid is None:
            self.valid = np.ones(len(self.times), dtype=bool)

    def __len__(self) -> int:
        return len(self.times)

    def __getitem__(self, index: slice) -> FeatureFrame:
        """The rows in a slice, as a new frame: ``frame[10:20]``."""
        if not isinstance(index, slice):
            raise TypeError("a FeatureFrame is sliced by rows only: frame[start:stop]")
        return FeatureFrame(self.values[index], list(self.names), self.times[index],
                            self.valid[index])

    @property
    def n_features(self) -> int:
        return len(self.names)

    def column(self, name: str) -> np.ndarray:
        """The values of one feature, shape (n_windows,)."""
        try:
            return self.values[:, self.names.index(name)]
        except ValueError:
            raise KeyError(f"no feature named {name!r}; see .names") from None

    @classmethod
    def concatenate(cls, frames: list[FeatureFrame], names: list[str]) -> FeatureFrame:
        """Join frames in time order (all with ``names``)."""
        if not frames:
            return cls(np.zeros((0, len(names))), list(names), np.zeros(0), np.zeros(0, bool))
        return cls(
            np.concatenate([f.values for f in frames]),
            list(names),
            np.concatenate([f.times for f in frames]),
            np.concatenate([f.valid for f in frames]),
        )


# Homologous frontal pairs for channel-level asymmetry, as (left, right).
_FRONTAL_PAIRS = (("F3", "F4"), ("F7", "F8"), ("Fp1", "Fp2"), ("AF3", "AF4"), ("F1", "F2"),
                  ("F5", "F6"), ("AF7", "AF8"))


@dataclass
class FeatureLayout:
    """How one spec applies to one channel set at one sampling rate (sample counts, groups).

    Built once per recording or stream; :class:`eeg.online.OnlineProcessor` holds one.
    """

    spec: FeatureSpec
    sfreq: float
    ch_names: list[str]
    hop_n: int          # Samples between rows.
    seg_n: int          # Samples per Welch segment.
    seg_spacing: int    # Hops between the starts of successive segments of one window.
    window_n: int       # Samples covered by one window (segments and spacing together).
    freqs: np.ndarray   # Frequencies of the kept bins (up to the highest band edge).
    band_matrix: np.ndarray     # [n_bins, n_bands], bin width where a bin is in a band.
    total_mask: np.ndarray      # [n_bins], bins between the lowest and highest band edge.
    unit_names: list[str]       # Channels or regions the features are computed for.
    unit_matrix: np.ndarray     # [n_units, n_channels], averaging weights.
    asym_pairs: list[tuple[str, int, int]]  # (name, left unit, right unit) for asymmetry.
    names: list[str]
    good: np.ndarray            # [n_channels] bool, channels used by the reference.
    taper: np.ndarray           # [seg_n] float32 Hann window, PSD scaling folded in.

    @property
    def n_features(self) -> int:
        return len(self.names)


def build_layout(
    spec: FeatureSpec,
    sfreq: float,
    ch_names: list[str],
    *,
    bads: list[str] | tuple[str, ...] = (),
    info: mne.Info | None = None,
) -> FeatureLayout:
    """Check ``spec`` against a channel set and a rate, and fix all sample counts and groups."""
    sfreq = check_positive(sfreq, "sfreq")
    ch_names = check_unique([str(c) for c in ch_names], "ch_names")
    if not ch_names:
        raise NeuropaintError("'ch_names' must name at least one channel, got none.")
    unknown_bads = sorted(set(bads) - set(ch_names))
    if unknown_bads:
        raise NeuropaintError(f"'bads' names channels that are not there: {unknown_bads}.")
    nyquist = sfreq / 2.0
    for band, (low, high) in spec.bands.items():
        if high > nyquist:
            raise NeuropaintError(
                f"band {band!r} ({low:g}-{high:g} Hz) needs sfreq above {2 * high:g} Hz "
                f"(Nyquist), got sfreq={sfreq:g} Hz; lower its edge or drop it from 'bands'."
            )
    hop_n = max(1, round(spec.hop * sfreq))
    full_n = round(spec.window * sfreq)
    n_seg = spec.n_segments
    seg_n = max(8, round(2 * full_n / (n_seg + 1)))  # 50 % overlap: window = seg * (S + 1) / 2
    seg_spacing = max(1, round(seg_n / 2 / hop_n)) if n_seg > 1 else 0
    window_n = seg_n + (n_seg - 1) * seg_spacing * hop_n

    all_freqs = np.fft.rfftfreq(seg_n, 1.0 / sfreq)
    df = sfreq / seg_n
    n_bins = int(np.searchsorted(all_freqs, spec.f_max, side="left"))
    freqs = all_freqs[:n_bins]
    band_matrix = np.zeros((n_bins, len(spec.bands)))
    for b, (band, (low, high)) in enumerate(spec.bands.items()):
        mask = (freqs >= low) & (freqs < high)
        if not mask.any():
            raise NeuropaintError(
                f"band {band!r} ({low:g}-{high:g} Hz) holds no frequency bin at the "
                f"{df:g} Hz resolution of a {seg_n / sfreq:g} s segment; widen the band or "
                f"lengthen 'window'."
            )
        band_matrix[mask, b] = df
    total_mask = (freqs >= spec.f_min) & (freqs < spec.f_max)

    good = np.array([c not in set(bads) for c in ch_names])
    if not good.any():
        raise NeuropaintError(f"all {len(ch_names)} channels are marked bad: {sorted(bads)}.")
    unit_names, unit_matrix = _units(spec, ch_names, good, info)
    asym_pairs = _asymmetry_pairs(spec, ch_names, good, unit_names)
    names = _feature_names(spec, unit_names, asym_pairs)
    hann = signal.windows.hann(seg_n, sym=False)  # periodic, as Welch
    # The one-sided PSD scaling (2 / (sfreq * sum(w²)), V²/Hz) is folded into the taper, so
    # that |rfft|² is the PSD without another pass; the DC bin is halved afterwards.
    taper = (hann * np.sqrt(2.0 / (sfreq * np.sum(hann**2)))).astype(np.float32)
    return FeatureLayout(
        spec=spec, sfreq=sfreq, ch_names=ch_names, hop_n=hop_n, seg_n=seg_n,
        seg_spacing=seg_spacing, window_n=window_n, freqs=freqs, band_matrix=band_matrix,
        total_mask=total_mask, unit_names=unit_names, unit_matrix=unit_matrix,
        asym_pairs=asym_pairs, names=names, good=good, taper=taper,
    )


def _units(spec, ch_names, good, info) -> tuple[list[str], np.ndarray]:
    n_ch = len(ch_names)
    if spec.level == "channels":
        return list(ch_names), np.eye(n_ch)
    regions = channel_regions(info, ch_names)
    unplaced = [c for c in ch_names if regions[c] is None]
    if unplaced:
        warnings.warn(
            f"{len(unplaced)} channel(s) can be placed neither by label nor by position "
            f"({unplaced[:8]}{'...' if len(unplaced) > 8 else ''}); they count only in "
            f"the whole-head features.",
            FeatureUnfitWarning,
            stacklevel=3,
        )
    unit_names: list[str] = []
    rows = []
    for region in REGIONS:
        members = np.array([regions[c] == region for c in ch_names]) & good
        if members.any():
            unit_names.append(region)
            rows.append(members / members.sum())
    unit_names.append(WHOLE_HEAD)
    rows.append(good / good.sum())
    return unit_names, np.array(rows)


def _asymmetry_pairs(spec, ch_names, good, unit_names) -> list[tuple[str, int, int]]:
    if "alpha_asymmetry" not in spec.features:
        return []
    if spec.level == "regions":
        if "frontal_left" in unit_names and "frontal_right" in unit_names:
            return [("frontal", unit_names.index("frontal_left"),
                     unit_names.index("frontal_right"))]
        warnings.warn("no frontal channels on both sides: 'alpha_asymmetry' is left out.",
                      FeatureUnfitWarning, stacklevel=3)
        return []
    lookup = {normalize_label(c): i for i, c in enumerate(ch_names) if good[i]}
    pairs = [(f"{right}-{left}", lookup[left], lookup[right])
             for left, right in _FRONTAL_PAIRS if left in lookup and right in lookup]
    if not pairs:
        # Any left/right frontal pair by the numbering rule, when the classic ones are absent.
        frontal = {c: region_from_label(c) for c in lookup}
        for c, region in frontal.items():
            if region == "frontal_left":
                mirror = c[:-1] + str(int(c[-1]) + 1) if c[-1].isdigit() else None
                if mirror in lookup:
                    pairs.append((f"{mirror}-{c}", lookup[c], lookup[mirror]))
    if not pairs:
        warnings.warn("no homologous frontal channel pair: 'alpha_asymmetry' is left out.",
                      FeatureUnfitWarning, stacklevel=3)
    return pairs


def _feature_names(spec, unit_names, asym_pairs) -> list[str]:
    names: list[str] = []
    for kind in spec.features:
        if kind in ("log_power", "relative_power"):
            names += [f"{kind}:{band}:{unit}" for band in spec.bands for unit in unit_names]
        elif kind == "spectral_entropy":
            names += [f"{kind}:{unit}" for unit in unit_names]
        elif kind == "alpha_asymmetry":
            names += [f"{kind}:{pair}" for pair, _, _ in asym_pairs]
    return names


def periodograms(layout: FeatureLayout, segments: np.ndarray) -> np.ndarray:
    """One-sided Hann periodograms of segments, kept bins only.

    Parameters
    ----------
    segments : ndarray of float32, shape (n_segments, n_channels, seg_n)
        Often a strided view of the sample buffer.

    Returns
    -------
    psd : ndarray of float32, shape (n_segments, n_channels, n_bins), V²/Hz
    """
    # float32 FFTs run ~4x faster than float64 here and keep 7 significant digits, far more
    # than the variance of any EEG spectrum estimate.
    tapered = np.multiply(segments, layout.taper, dtype=np.float32)  # one copy, contiguous
    spectrum = sp_fft.rfft(tapered, axis=-1, overwrite_x=True)[..., : len(layout.freqs)]
    power = np.square(spectrum.real)
    power += np.square(spectrum.imag)
    power[..., 0] *= np.float32(0.5)  # one-sided: every bin but DC counts twice
    return power


def welch_average(layout: FeatureLayout, history: np.ndarray, n_rows: int) -> np.ndarray:
    """Average the segment periodograms of the last ``n_rows`` windows.

    ``history`` holds consecutive segment periodograms ``[n_hist, n_channels, n_bins]``; row r
    uses segments ``r_end, r_end - spacing, ...``. The sum runs in one fixed order so that any
    batching gives the same numbers.
    """
    spec_n = layout.spec.n_segments
    span = (spec_n - 1) * layout.seg_spacing
    start = history.shape[0] - n_rows
    acc = history[start - span : start - span + n_rows].astype(np.float64)
    for s in range(1, spec_n):
        offset = start - span + s * layout.seg_spacing
        acc += history[offset : offset + n_rows]
    acc /= spec_n
    return acc  # [n_rows, n_channels, n_bins]


def features_from_psd(layout: FeatureLayout, psd: np.ndarray) -> np.ndarray:
    """Feature rows from window spectra.

    Parameters
    ----------
    psd : ndarray, shape (n_rows, n_channels, n_bins), V²/Hz

    Returns
    -------
    values : ndarray, shape (n_rows, n_features)
    """
    spec = layout.spec
    n_rows = psd.shape[0]
    unit_psd = layout.unit_matrix @ psd                          # [rows, units, bins]
    band_power = unit_psd @ layout.band_matrix                   # [rows, units, bands]
    tiny = _POWER_FLOOR
    blocks = []
    for kind in spec.features:
        if kind == "log_power":
            block = np.log10(np.maximum(band_power, tiny) * _UV2)
            blocks.append(block.transpose(0, 2, 1).reshape(n_rows, -1))  # [rows, bands*units]
        elif kind == "relative_power":
            total = unit_psd[..., layout.total_mask].sum(axis=-1) * (layout.sfreq / layout.seg_n)
            block = band_power / np.maximum(total, tiny)[..., None]
            blocks.append(block.transpose(0, 2, 1).reshape(n_rows, -1))
        elif kind == "spectral_entropy":
            part = unit_psd[..., layout.total_mask]
            prob = part / np.maximum(part.sum(axis=-1, keepdims=True), tiny)
            entropy = -np.sum(prob * np.log(np.maximum(prob, tiny)), axis=-1)
            blocks.append(entropy / math.log(part.shape[-1]) if part.shape[-1] > 1 else entropy)
        elif kind == "alpha_asymmetry":
            alpha = list(spec.bands).index("alpha")
            cols = [np.log(np.maximum(band_power[:, right, alpha], tiny))
                    - np.log(np.maximum(band_power[:, left, alpha], tiny))
                    for _, left, right in layout.asym_pairs]
            blocks.append(np.stack(cols, axis=1) if cols else np.zeros((n_rows, 0)))
    return np.concatenate(blocks, axis=1)


def extract(
    inst: mne.io.BaseRaw | np.ndarray,
    spec: FeatureSpec | None = None,
    *,
    sfreq: float | None = None,
    ch_names: list[str] | None = None,
    picks: str | list | None = "eeg",
    apply_filter: bool | None = None,
    reject_by_annotation: bool = True,
    chunk_duration: float = 60.0,
) -> FeatureFrame:
    """Features of a whole recording, computed exactly as a live stream would compute them.

    Parameters
    ----------
    inst : Raw | ndarray, shape (n_channels, n_times)
        A recording (volts). An array needs ``sfreq`` and ``ch_names``.
    spec : FeatureSpec | None
        The feature definition (default: ``FeatureSpec()``).
    sfreq, ch_names : float, list of str
        Only for an array input.
    picks : str | list | None
        Channels of a Raw to use (MNE picks; default all EEG). ``info['bads']`` are left out
        of the reference and of the region averages.
    apply_filter : bool | None
        Run the spec's causal band-pass and notches. None (default): skip it when a Raw's
        ``info`` shows it is already filtered to the spec's band (e.g. by
        :func:`eeg.preprocess.clean`), apply it otherwise.
    reject_by_annotation : bool
        Flag (``valid=False``) the rows whose window overlaps a Raw's ``BAD*`` annotations, as
        MNE's ``reject_by_annotation`` does. Rows are flagged, never dropped.
    chunk_duration : float
        Seconds pushed at a time (bounds memory; the result does not depend on it).

    Returns
    -------
    FeatureFrame
        Times are relative to the first sample (``raw.times``).
    """
    from eeg.online import OnlineProcessor  # eeg.online builds on this module

    spec = spec or FeatureSpec()
    info = None
    bads: list[str] = []
    if isinstance(inst, mne.io.BaseRaw):
        pick_idx = mne.pick_types(inst.info, eeg=True, exclude=[]) if picks == "eeg" else (
            mne.io.pick._picks_to_idx(inst.info, picks, exclude=()))
        if len(pick_idx) == 0:
            raise NeuropaintError("the recording has no EEG channels to compute features from.")
        info = mne.pick_info(inst.info, pick_idx)
        ch_names = list(info["ch_names"])
        sfreq = float(info["sfreq"])
        bads = [b for b in info["bads"] if b in ch_names]
        n_times = inst.n_times

        def read(start: int, stop: int) -> np.ndarray:
            # Chunk by chunk: no copy of the whole recording is ever made.
            return inst.get_data(picks=pick_idx, start=start, stop=stop)
        if apply_filter is None:
            apply_filter = not _already_filtered(info, spec)
            if not apply_filter:
                logger.info("recording already filtered to %s-%s Hz: the spec's filter is "
                            "skipped", info["highpass"], info["lowpass"])
    else:
        data = np.asarray(inst)
        if data.ndim != 2:
            raise NeuropaintError(
                f"data must have shape (n_channels, n_times), got {data.shape}.")
        if sfreq is None or ch_names is None:
            raise NeuropaintError("an array input needs 'sfreq' and 'ch_names'.")
        if len(ch_names) != data.shape[0]:
            raise NeuropaintError(
                f"'ch_names' has {len(ch_names)} names for {data.shape[0]} channels.")
        apply_filter = True if apply_filter is None else apply_filter
        n_times = data.shape[1]

        def read(start: int, stop: int) -> np.ndarray:
            return data[:, start:stop]

    processor = OnlineProcessor(spec, sfreq, ch_names, bads=bads, info=info,
                                apply_filter=apply_filter)
    if n_times < processor.layout.window_n:
        raise NeuropaintError(
            f"the recording is {n_times / sfreq:.3g} s long, shorter than one feature window "
            f"({processor.layout.window_n / sfreq:.3g} s); record longer or shorten 'window'."
        )
    step = max(1, round(check_positive(chunk_duration, "chunk_duration") * sfreq))
    times = np.arange(n_times) / sfreq
    frames = [processor.push(read(i, min(i + step, n_times)), times[i : i + step])
              for i in range(0, n_times, step)]
    frame = FeatureFrame.concatenate(frames, processor.names)
    if isinstance(inst, mne.io.BaseRaw) and reject_by_annotation:
        flag_bad_annotations(frame, inst, processor.layout.window_n)
    return frame


def flag_bad_annotations(frame: FeatureFrame, raw: mne.io.BaseRaw, window_n: int) -> None:
    """Set ``valid`` False for rows whose window overlaps a ``BAD*`` annotation."""
    annotations = raw.annotations
    bad = np.array([d.upper().startswith("BAD") for d in annotations.description], dtype=bool)
    if not bad.any():
        return
    sfreq = raw.info["sfreq"]
    onsets = raw.time_as_index(annotations.onset[bad], use_rounding=True,
                               origin=annotations.orig_time)
    stops = onsets + np.round(annotations.duration[bad] * sfreq).astype(int)  # exclusive
    newest = np.round(frame.times * sfreq).astype(int)  # [n_rows] newest sample of each row
    oldest = newest - (window_n - 1)
    for start, stop in zip(onsets, np.maximum(stops, onsets + 1), strict=True):
        frame.valid &= ~((oldest < stop) & (newest >= start))


def _already_filtered(info: mne.Info, spec: FeatureSpec) -> bool:
    high_ok = spec.l_freq is None or info["highpass"] >= spec.l_freq - 1e-9
    low_ok = spec.h_freq is None or info["lowpass"] <= spec.h_freq + 1e-9
    return bool(high_ok and low_ok)
