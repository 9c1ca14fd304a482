"""Causal IIR filters shared by offline cleaning and the online processor.

One design function and one stateful filter serve both paths, so that a recording filtered
at once and the same recording streamed in chunks of any size give the same samples: a
second-order-sections cascade run with carried state (``scipy.signal.sosfilt`` with ``zi``)
computes exactly the same recursion either way. Causal (minimum-phase) filtering is the only
kind a live performance can use, so offline features use it too.

Band-pass: Butterworth (zero-phase would need the future). Notches: second-order IIR notch
filters (``scipy.signal.iirnotch``) at the line frequency and its harmonics below Nyquist.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from neuropaint.validate import NeuropaintError, check_int, check_positive


def design_sos(
    sfreq: float,
    l_freq: float | None,
    h_freq: float | None,
    notch_freqs: tuple[float, ...] | list[float] = (),
    *,
    order: int = 4,
    notch_q: float = 30.0,
) -> np.ndarray:
    """Design a causal band-pass + notch cascade.

    Parameters
    ----------
    sfreq : float
        Sampling rate in Hz.
    l_freq, h_freq : float | None
        Pass-band edges in Hz (MNE's names); None skips that side. ``h_freq`` at or above
        Nyquist is an error, as MNE makes it.
    notch_freqs : sequence of float
        Line-noise frequencies to notch; those at or above Nyquist are skipped.
    order : int
        Butterworth order of each side (a band-pass has ``2 * order`` poles).
    notch_q : float
        Quality factor of each notch (bandwidth = frequency / Q).

    Returns
    -------
    sos : ndarray, shape (n_sections, 6)
        Second-order sections; an identity section when nothing is asked for.
    """
    sfreq = check_positive(sfreq, "sfreq")
    order = check_int(order, "order", minimum=1)
    nyquist = sfreq / 2.0
    if l_freq is not None:
        check_positive(l_freq, "l_freq")
    if h_freq is not None:
        check_positive(h_freq, "h_freq")
        if h_freq >= nyquist:
            raise NeuropaintError(
                f"'h_freq' ({h_freq:g} Hz) must be below Nyquist ({nyquist:g} Hz) "
                f"at sfreq={sfreq:g} Hz."
            )
    if l_freq is not None and h_freq is not None and l_freq >= h_freq:
        raise NeuropaintError(f"'l_freq' ({l_freq:g} Hz) must be below 'h_freq' ({h_freq:g} Hz).")
    sections = []
    if l_freq is not None and h_freq is not None:
        sections.append(signal.butter(order, [l_freq, h_freq], "bandpass", fs=sfreq, output="sos"))
    elif l_freq is not None:
        sections.append(signal.butter(order, l_freq, "highpass", fs=sfreq, output="sos"))
    elif h_freq is not None:
        sections.append(signal.butter(order, h_freq, "lowpass", fs=sfreq, output="sos"))
    for freq in sorted(set(notch_freqs)):
        check_positive(freq, "notch_freqs")
        if freq >= nyquist * 0.98:
            continue
        b, a = signal.iirnotch(freq, notch_q, fs=sfreq)
        sections.append(signal.tf2sos(b, a))
    if not sections:
        return _IDENTITY.copy()
    return np.vstack(sections)


_IDENTITY = np.array([[1.0, 0.0, 0.0, 1.0, 0.0, 0.0]])


def line_harmonics(line_freq: float, below: float) -> tuple[float, ...]:
    """``line_freq`` and its harmonics strictly below ``below`` Hz (the fundamental always)."""
    harmonics = [line_freq]
    k = 2
    while k * line_freq < below:
        harmonics.append(k * line_freq)
        k += 1
    return tuple(harmonics)


class CausalFilter:
    """A stateful causal filter over ``(n_channels, n_times)`` chunks of any size.

    Non-finite samples (NaN, inf: a dropped packet, a disconnected electrode) never reach the
    recursion: each is replaced by the channel's last finite value, so one bad sample cannot
    poison the state forever. :attr:`last_bad` tells which samples of the last chunk were
    replaced, so that callers can flag the features that saw them.

    The state starts in steady state for the first sample (``sosfilt_zi`` scaled by it), which
    avoids the long step transient a DC offset would cause with a zero start.
    """

    def __init__(self, sos: np.ndarray, n_channels: int):
        self.sos = np.asarray(sos, dtype=np.float64)
        self.n_channels = check_int(n_channels, "n_channels", minimum=1)
        self._zi_unit = signal.sosfilt_zi(self.sos)  # [n_sections, 2]
        # An identity cascade (nothing to filter) skips the recursion: same samples, no pass.
        self.is_identity = bool(np.array_equal(self.sos, _IDENTITY))
        self.reset()

    def reset(self) -> None:
        """Forget all history; the next sample starts the filter afresh."""
        self._zi: np.ndarray | None = None
        self._hold = np.zeros(self.n_channels)
        self.last_bad = np.zeros((self.n_channels, 0), dtype=bool)

    def process(self, data: np.ndarray) -> np.ndarray:
        """Filter one chunk, shape ``(n_channels, n_times)``; returns a new float64 array."""
        data = np.asarray(data, dtype=np.float64)
        if data.ndim != 2 or data.shape[0] != self.n_channels:
            raise NeuropaintError(
                f"chunk must have shape ({self.n_channels}, n_times), got {data.shape}."
            )
        if data.shape[1] == 0:
            self.last_bad = np.zeros((self.n_channels, 0), dtype=bool)
            return data.copy()
        bad = ~np.isfinite(data)
        if bad.any():
            data = hold_last_finite(data, bad, self._hold)
        self._hold = data[:, -1].copy()
        self.last_bad = bad
        if self.is_identity:
            return data.copy() if not bad.any() else data
        if self._zi is None:
            self._zi = self._zi_unit[:, None, :] * data[None, :, 0, None]  # [n_sections, n_ch, 2]
        out, self._zi = signal.sosfilt(self.sos, data, axis=-1, zi=self._zi)
        return out


def hold_last_finite(data: np.ndarray, bad: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """Replace each non-finite sample by the last finite one before it (``previous`` at start)."""
    data = data.copy()
    n_times = data.shape[1]
    for ch in np.flatnonzero(bad.any(axis=1)):
        row = data[ch]
        good = ~bad[ch]
        # Index of the last good sample at or before each position (-1 = none in this chunk).
        idx = np.where(good, np.arange(n_times), -1)
        np.maximum.accumulate(idx, out=idx)
        filled = np.where(idx >= 0, row[np.maximum(idx, 0)], previous[ch])
        data[ch] = filled
    return data
