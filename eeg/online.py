"""The online (causal, chunked) feature processor: the live path's half of `eeg.features`.

``push`` accepts chunks of any size and returns the feature rows completed by that chunk.
State carried between chunks: the causal filter's sections, the last ``seg_n`` samples, and
the last few segment periodograms (Welch segments of successive windows overlap, so each hop
computes one new periodogram). :func:`eeg.features.extract` is this class run over a whole
recording, so offline and online features agree for any chunking (a test holds them
together).
"""

from __future__ import annotations

import logging

import mne
import numpy as np

from eeg.features import (
    FeatureFrame,
    FeatureSpec,
    build_layout,
    features_from_psd,
    periodograms,
    welch_average,
)
from eeg.filters import CausalFilter, design_sos
from neuropaint.validate import NeuropaintError

logger = logging.getLogger(__name__)

# Segment periodograms computed per batch when a long chunk completes many rows at once;
# bounds memory (64 channels x 256 rows x 512 samples x 4 bytes = 32 MB).
_ROWS_PER_BATCH = 256


class OnlineProcessor:
    """Causal filtering, re-referencing and features, one chunk at a time.

    Parameters
    ----------
    spec : FeatureSpec
        The feature definition (for a trained encoder: the one saved inside it).
    sfreq : float
        Sampling rate of the stream in Hz.
    ch_names : list of str
        Channel labels, in the order of the rows pushed.
    bads : sequence of str
        Channels left out of the reference and of the region averages.
    info : mne.Info | None
        Optional, for sensor positions of channels whose labels are not standard.
    apply_filter : bool
        Run the spec's causal band-pass and notches (False when the data is filtered already).

    Examples
    --------
    >>> proc = OnlineProcessor(FeatureSpec(), 256.0, ["Fz", "Cz", "Pz", "Oz"])
    >>> frame = proc.push(chunk, timestamps)  # chunk: (4, n_times) volts  # doctest: +SKIP
    """

    def __init__(
        self,
        spec: FeatureSpec,
        sfreq: float,
        ch_names: list[str],
        *,
        bads: list[str] | tuple[str, ...] = (),
        info: mne.Info | None = None,
        apply_filter: bool = True,
    ):
        if not isinstance(spec, FeatureSpec):
            raise NeuropaintError(f"'spec' must be a FeatureSpec, got {type(spec).__name__}.")
        self.spec = spec
        self.layout = build_layout(spec, sfreq, list(ch_names), bads=bads, info=info)
        self.sfreq = self.layout.sfreq
        self.ch_names = self.layout.ch_names
        notches = spec.notch_freqs if apply_filter else ()
        sos = design_sos(self.sfreq, spec.l_freq if apply_filter else None,
                         spec.h_freq if apply_filter else None, notches,
                         order=spec.filter_order)
        self._filter = CausalFilter(sos, len(self.ch_names))
        self.reset()

    @property
    def names(self) -> list[str]:
        """Feature names, in column order."""
        return self.layout.names

    @property
    def n_features(self) -> int:
        return self.layout.n_features

    @property
    def n_samples(self) -> int:
        """Samples pushed since the last reset."""
        return self._n_pushed

    def reset(self) -> None:
        """Start afresh (a new stream, or after a long gap): all state is dropped."""
        lay = self.layout
        n_ch, n_bins = len(self.ch_names), len(lay.freqs)
        self._filter.reset()
        self.last_filtered = np.zeros((len(self.ch_names), 0))
        self._n_pushed = 0
        self._n_segments = 0  # segment periodograms computed so far
        self._tail = np.zeros((n_ch, 0), dtype=np.float32)
        self._tail_bad = np.zeros(0, dtype=bool)
        self._tail_times = np.zeros(0)
        span = (self.spec.n_segments - 1) * lay.seg_spacing
        self._history = np.zeros((0, n_ch, n_bins), dtype=np.float32)
        self._history_bad = np.zeros(0, dtype=bool)
        self._span = span

    def push(self, data: np.ndarray, timestamps: np.ndarray | None = None) -> FeatureFrame:
        """Process one chunk; return the feature rows it completes (often none).

        Parameters
        ----------
        data : ndarray, shape (n_channels, n_times)
            New samples in volts, channels in ``ch_names`` order. NaN/inf are allowed: they
            are held at the channel's last good value and the rows that saw them are flagged
            invalid; the processor recovers once they leave the window.
        timestamps : ndarray, shape (n_times,) | None
            Time of each sample (e.g. LSL time). None: sample index / sfreq.

        Returns
        -------
        FeatureFrame
            Each row is stamped with the time of its newest sample.
        """
        lay = self.layout
        data = np.asarray(data, dtype=np.float64)
        if data.ndim != 2 or data.shape[0] != len(self.ch_names):
            raise NeuropaintError(
                f"chunk must have shape ({len(self.ch_names)}, n_times), got {data.shape}.")
        n_new = data.shape[1]
        if timestamps is None:
            timestamps = (self._n_pushed + np.arange(n_new)) / self.sfreq
        else:
            timestamps = np.asarray(timestamps, dtype=np.float64)
            if timestamps.shape != (n_new,):
                raise NeuropaintError(
                    f"'timestamps' must have shape ({n_new},), got {timestamps.shape}.")
        if n_new == 0:
            return self._empty()

        filtered = self._filter.process(data)
        bad = self._filter.last_bad.any(axis=0)  # [n_times]
        if self.spec.reference == "average":
            filtered -= filtered[lay.good].mean(axis=0, keepdims=True)
        self.last_filtered = filtered  # For artifact checks (eeg.artifacts), volts.

        # Absolute sample index of the first kept sample.
        # Spectra are computed in float32 (see eeg.features.periodograms); the buffer holds
        # the filtered, referenced samples already converted.
        buf = np.concatenate([self._tail, filtered.astype(np.float32)], axis=1)
        buf_bad = np.concatenate([self._tail_bad, bad])
        buf_times = np.concatenate([self._tail_times, timestamps])
        buf_start = self._n_pushed - self._tail.shape[1]
        self._n_pushed += n_new

        # Segment j ends at sample seg_n - 1 + j * hop_n (inclusive).
        first_end = lay.seg_n - 1 + self._n_segments * lay.hop_n
        ends = np.arange(first_end, self._n_pushed, lay.hop_n)
        frames = []
        for b in range(0, len(ends), _ROWS_PER_BATCH):
            frames.append(self._rows_for(ends[b : b + _ROWS_PER_BATCH], buf, buf_bad,
                                         buf_times, buf_start))

        keep = min(lay.seg_n - 1, buf.shape[1])
        self._tail = buf[:, buf.shape[1] - keep :].copy()
        self._tail_bad = buf_bad[len(buf_bad) - keep :].copy()
        self._tail_times = buf_times[len(buf_times) - keep :].copy()
        if not frames:
            return self._empty()
        return frames[0] if len(frames) == 1 else FeatureFrame.concatenate(frames, self.names)

    def _rows_for(self, ends, buf, buf_bad, buf_times, buf_start) -> FeatureFrame:
        lay = self.layout
        local_ends = ends - buf_start
        starts = local_ends - lay.seg_n + 1
        # [n_ends, n_channels, seg_n] strided view of the buffer: segments start every hop_n.
        first = buf[:, starts[0]:]
        segments = np.lib.stride_tricks.as_strided(
            first,
            shape=(len(ends), buf.shape[0], lay.seg_n),
            strides=(lay.hop_n * buf.strides[1], buf.strides[0], buf.strides[1]),
            writeable=False,
        )
        seg_psd = periodograms(lay, segments)
        cum_bad = np.concatenate([[0], np.cumsum(buf_bad)])
        seg_bad = (cum_bad[local_ends + 1] - cum_bad[starts]) > 0
        history = np.concatenate([self._history, seg_psd])
        history_bad = np.concatenate([self._history_bad, seg_bad])
        self._n_segments += len(ends)
        n_rows = min(len(ends), max(0, self._n_segments - self._span))
        keep = self._span
        if n_rows == 0:
            self._history = history[max(0, len(history) - keep):]
            self._history_bad = history_bad[max(0, len(history_bad) - keep):]
            return self._empty()
        psd = welch_average(lay, history, n_rows)
        values = features_from_psd(lay, psd)
        valid = np.ones(n_rows, dtype=bool)
        for s in range(self.spec.n_segments):
            offset = len(history_bad) - n_rows - s * lay.seg_spacing
            valid &= ~history_bad[offset : offset + n_rows]
        times = buf_times[local_ends[len(ends) - n_rows :]]
        self._history = history[len(history) - keep :] if keep else history[:0]
        self._history_bad = history_bad[len(history_bad) - keep :] if keep else history_bad[:0]
        return FeatureFrame(values, list(self.names), times, valid)

    def _empty(self) -> FeatureFrame:
        return FeatureFrame(np.zeros((0, self.n_features)), list(self.names), np.zeros(0),
                            np.zeros(0, dtype=bool))
