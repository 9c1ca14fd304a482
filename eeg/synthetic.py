"""Synthetic EEG with named brain states, for demos, tests and benchmarks.

:func:`make_raw` builds a realistic multichannel recording in volts on a standard 10-20 /
10-10 montage, as the sum of parts that real scalp EEG is made of:

- an aperiodic 1/f^beta background (beta between 1 and 2), spatially smooth: a few dozen
  broadband sources spread over the head, each seen by every electrode through a Gaussian
  fall-off with distance (a crude stand-in for volume conduction), plus a smaller
  channel-local part, so that neighbouring channels correlate and distant ones much less;
- periodic rhythms on top of it (delta, theta, alpha, beta), each a narrow band of filtered
  noise around a slightly individual peak frequency, with a slow log-normal burst envelope, so
  that they wax and wane as real rhythms do instead of ringing like sines. The
  aperiodic-plus-periodic picture follows Donoghue et al. (2020, Nat. Neurosci. 23:1655,
  "FOOOF"); the topographies follow the textbook ones: posterior alpha that grows with the eyes
  closed (Berger 1929), frontal-midline theta and slow waves with drowsiness, fronto-central
  beta with focused attention;
- eye blinks: a 0.25-0.6 s monophasic deflection of 100-200 µV at Fp1/Fp2 that decays towards
  the back of the head;
- mains interference at ``line_freq`` (and its 2nd and 3rd harmonics below Nyquist) with a
  per-channel amplitude of a few µV;
- optionally one broken electrode (``bad_channel``): large slow drift plus broadband noise.
  It is *not* listed in ``info['bads']``: finding it is the cleaner's job.

Brain states are scheduled in time (:data:`STATES`, ``states=``). Each one sets the rhythm
amplitudes and the blink rate; the amplitudes cross-fade over about one second at every change.
The schedule is written to ``raw.annotations`` with the state name as description; each blink
is annotated as ``'blink'`` (deliberately not ``'BAD_blink'``: MNE would then drop those spans
from every analysis, and the schedule stays readable next to them).

Every random part draws from its own stream of ``numpy.random.SeedSequence(seed)``, so the
same seed gives the same samples, and switching one part off (``blinks=False``) leaves the
others unchanged. Everything is shaped in the frequency domain (one inverse FFT per source) or
on a coarse 32 Hz envelope grid, so an hour of 64-channel data takes a few seconds.

Run ``python -m eeg.synthetic --plot docs/synthetic_psd.png`` to draw the per-state spectra.
"""

from __future__ import annotations

import argparse
import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Real
from pathlib import Path
from types import MappingProxyType

import mne
import numpy as np
import scipy.fft
from scipy.ndimage import uniform_filter1d

from eeg.channels import (
    region_from_label,
    set_standard_montage,
    standard_channel_set,
    standard_montage,
)
from neuropaint.atomic import atomic_path
from neuropaint.logs import run_cli, setup_logging
from neuropaint.validate import NeuropaintError, check_int, check_option, check_positive

logger = logging.getLogger(__name__)

__all__ = ["STATES", "BrainState", "list_states", "make_raw", "plot_state_psd"]


@dataclass(frozen=True)
class BrainState:
    """What one named state does to the signal (amplitudes in µV RMS at the rhythm's focus)."""

    description: str  # One line for --help and the docs.
    delta: float  # Slow waves, ~2 Hz, frontal-central and broad.
    theta: float  # ~6 Hz, frontal midline.
    alpha: float  # ~10 Hz, parieto-occipital.
    beta: float  # ~20 Hz (15-25), fronto-central.
    blink_rate: float  # Blinks per minute (0 with the eyes closed).
    blink_duration: float  # Mean blink length in seconds.


STATES: Mapping[str, BrainState] = MappingProxyType(
    {
        "neutral": BrainState(
            "relaxed, eyes open: modest alpha and beta",
            delta=4.0,
            theta=3.0,
            alpha=8.0,
            beta=3.0,
            blink_rate=15.0,
            blink_duration=0.35,
        ),
        "eyes_closed": BrainState(
            "eyes closed, awake: strong posterior alpha, no blinks",
            delta=4.0,
            theta=3.0,
            alpha=22.0,
            beta=2.5,
            blink_rate=0.0,
            blink_duration=0.35,
        ),
        "focused": BrainState(
            "focused attention: fronto-central beta up, alpha suppressed, fewer blinks",
            delta=3.0,
            theta=3.0,
            alpha=3.5,
            beta=7.0,
            blink_rate=9.0,
            blink_duration=0.3,
        ),
        "drowsy": BrainState(
            "drowsy: frontal-central theta and slow delta up, alpha fading, slow blinks",
            delta=9.0,
            theta=9.0,
            alpha=5.0,
            beta=2.0,
            blink_rate=8.0,
            blink_duration=0.5,
        ),
    }
)
"""The named brain states, in the order the default schedule cycles through them."""


def list_states() -> tuple[str, ...]:
    """Names of the states :func:`make_raw` knows, in default-schedule order."""
    return tuple(STATES)


@dataclass(frozen=True)
class _Rhythm:
    freq: float  # Nominal peak frequency (Hz).
    bandwidth: float  # Std of the Gaussian spectral peak (Hz).
    generators: tuple[str, ...]  # 10-05 labels over each cortical generator.
    spread: float  # Std of each generator's scalp field (chord on the unit head sphere).


_RHYTHMS: Mapping[str, _Rhythm] = MappingProxyType(
    {
        "delta": _Rhythm(2.0, 0.7, ("Fz", "Cz"), 0.7),
        "theta": _Rhythm(6.0, 0.8, ("Fz", "FCz"), 0.5),
        "alpha": _Rhythm(10.0, 0.6, ("O1", "O2", "POz"), 0.45),
        "beta": _Rhythm(20.0, 2.5, ("F3", "F4", "FCz"), 0.5),
    }
)

_N_CHANNEL_OPTIONS = (8, 16, 32, 64)
_MIN_SFREQ = 64.0
_COARSE_SFREQ = 32.0  # Grid of the slow envelopes; rhythms are complex baseband on it.
_CROSSFADE = 1.0  # Seconds over which rhythm amplitudes move from one state to the next.
_BG_SOURCES = 24  # Shared aperiodic sources.
_BG_SHARED_UV = 12.0  # RMS of the shared background at each channel.
_BG_LOCAL_UV = 6.0  # RMS of the channel-local background.
_BG_SPREAD = 0.5  # Field std of a background source (unit-sphere chord).
_RHYTHM_TAIL = 0.5  # Weight of the broad part of a rhythm's field.
_BURST_SIGMA = 0.5  # Log-std of the rhythm burst envelope.
_BURST_CUTOFF = 0.2  # Hz; how fast rhythms wax and wane.
_BLINK_UV = (100.0, 200.0)  # Peak at Fp1/Fp2.
_LINE_UV = (2.0, 6.0)  # Per-channel mains amplitude.
_LINE_HARMONICS = {1: 1.0, 2: 0.1, 3: 0.25}  # Relative amplitude of each harmonic.
_BAD_DRIFT_UV = 80.0
_BAD_NOISE_UV = 40.0
_CHUNK = 8  # Channels per batch of channel-local noise (bounds the memory of the spectra).


def make_raw(
    duration: float,
    *,
    n_channels: int = 32,
    sfreq: float = 256.0,
    states: str | Sequence[str | tuple[str, float]] | None = None,
    state_duration: float = 10.0,
    seed: int = 0,
    line_freq: float = 50.0,
    line_noise: bool = True,
    blinks: bool = True,
    bad_channel: str | None = None,
) -> mne.io.RawArray:
    """Make a synthetic EEG recording with a schedule of brain states.

    Parameters
    ----------
    duration : float
        Length of the recording in seconds.
    n_channels : int
        8, 16, 32 or 64: the standard layout from :func:`eeg.channels.standard_channel_set`.
    sfreq : float
        Sampling rate in Hz, at least 64.
    states : str | sequence of str or (str, float) | None
        The schedule. None cycles through every state of :data:`STATES`, ``state_duration``
        seconds each. A sequence gives the states in order, each item a name (lasting
        ``state_duration``) or a ``(name, seconds)`` pair; the sequence is repeated until
        ``duration`` is filled and the last segment is cut at the end. A single name holds
        that state for the whole recording.
    state_duration : float
        Seconds of each state given by name only.
    seed : int
        Seed of every random part; the same seed gives identical data.
    line_freq : float
        Mains frequency in Hz (50 or 60), written to ``info['line_freq']``.
    line_noise : bool
        Add mains interference at ``line_freq`` and its harmonics below Nyquist. Skipped
        (with a log line) when ``line_freq`` is not below Nyquist.
    blinks : bool
        Add eye blinks, annotated as ``'blink'``.
    bad_channel : str | None
        Label of one channel to break (large drift and broadband noise; matched
        case-insensitively). It is not added to ``info['bads']``.

    Returns
    -------
    raw : mne.io.RawArray
        Data of shape (n_channels, n_times), n_times = round(duration * sfreq), in volts,
        channel type ``'eeg'``, with template montage positions and annotations: one per
        state segment (description = state name) and one per blink.
    """
    duration = check_positive(duration, "duration")
    n_channels = check_int(n_channels, "n_channels")
    check_option(n_channels, "n_channels", _N_CHANNEL_OPTIONS)
    sfreq = check_positive(sfreq, "sfreq")
    if sfreq < _MIN_SFREQ:
        raise NeuropaintError(f"'sfreq' must be at least {_MIN_SFREQ:g} Hz, got {sfreq:g}.")
    state_duration = check_positive(state_duration, "state_duration")
    seed = check_int(seed, "seed", minimum=0)
    line_freq = check_positive(line_freq, "line_freq")
    n_times = round(duration * sfreq)
    if n_times < 2:
        raise NeuropaintError(f"'duration' ({duration:g} s) is shorter than two samples.")
    ch_names = standard_channel_set(n_channels)
    bad_index = _bad_channel_index(bad_channel, ch_names)
    schedule = _schedule(states, state_duration, n_times / sfreq)

    # One independent stream per part: switching a part off leaves the others unchanged.
    parts = ("background", "rhythms", "blinks", "line", "bad")
    streams = np.random.SeedSequence(seed).spawn(len(parts))
    rng = {part: np.random.default_rng(stream) for part, stream in zip(parts, streams, strict=True)}
    dirs = _directions(ch_names)  # [n_channels, 3]
    times = np.arange(n_times) / sfreq

    # Everything that is a few time courses seen through a spatial pattern goes through one
    # product: data = mixing @ sources.
    mixing = []  # each [n_channels, n_k]
    sources = []  # each [n_k, n_times]
    mix, src = _shared_background(rng["background"], dirs, n_times, sfreq)
    mixing.append(mix)
    sources.append(src)
    mix, src = _rhythms(rng["rhythms"], dirs, times, schedule)
    mixing.append(mix)
    sources.append(src)
    blink_onsets = np.empty(0)
    blink_durations = np.empty(0)
    if blinks:
        mix, src, blink_onsets, blink_durations = _blinks(
            rng["blinks"], dirs, times, sfreq, schedule
        )
        mixing.append(mix)
        sources.append(src)
    if line_noise and line_freq < sfreq / 2 - 1:
        mix, src = _line_noise(rng["line"], n_channels, times, line_freq, sfreq)
        mixing.append(mix)
        sources.append(src)
    elif line_noise:
        logger.info("no line noise: %g Hz is not below Nyquist (%g Hz)", line_freq, sfreq / 2)
    data = np.concatenate(mixing, axis=1) @ np.concatenate(sources, axis=0)  # [n_ch, n_times]
    del sources

    # Channel-local background, in batches of channels to bound the size of the spectra.
    for start in range(0, n_channels, _CHUNK):
        stop = min(start + _CHUNK, n_channels)
        exponents = rng["background"].uniform(1.0, 2.0, stop - start)
        local = _colored_noise(rng["background"], exponents, n_times, sfreq)  # [chunk, n_times]
        data[start:stop] += _BG_LOCAL_UV * local
    if bad_index is not None:
        broken = _colored_noise(rng["bad"], np.array([2.0, 0.0]), n_times, sfreq)  # [2, n_times]
        data[bad_index] += _BAD_DRIFT_UV * broken[0] + _BAD_NOISE_UV * broken[1]
    data *= 1e-6  # µV -> V

    info = mne.create_info(ch_names, sfreq, ch_types="eeg")
    info["line_freq"] = line_freq
    info["description"] = f"neuropaint synthetic EEG (seed={seed})"
    raw = mne.io.RawArray(data, info, verbose="error")
    set_standard_montage(raw)
    onsets = [seg[1] for seg in schedule] + list(blink_onsets)
    durations = [seg[2] for seg in schedule] + list(blink_durations)
    descriptions = [seg[0] for seg in schedule] + ["blink"] * len(blink_onsets)
    raw.set_annotations(mne.Annotations(onsets, durations, descriptions))
    logger.debug(
        "synthetic EEG: %d channels, %.1f s at %g Hz, %d state segments, %d blinks, seed %d",
        n_channels,
        n_times / sfreq,
        sfreq,
        len(schedule),
        len(blink_onsets),
        seed,
    )
    return raw


# --- schedule ------------------------------------------------------------------------------


def _schedule(
    states: str | Sequence[str | tuple[str, float]] | None,
    state_duration: float,
    total: float,
) -> list[tuple[str, float, float]]:
    """Expand ``states`` into ``(name, onset, duration)`` segments that tile ``[0, total)``."""
    if states is None:
        items = [(name, state_duration) for name in STATES]
    elif isinstance(states, str):
        items = [(states, total)]
    elif isinstance(states, Sequence) and len(states) > 0:
        items = [_schedule_item(item, state_duration) for item in states]
    else:
        raise NeuropaintError(
            f"'states' must be None, a state name or a non-empty sequence, got {states!r}."
        )
    valid = ", ".join(repr(name) for name in STATES)
    for name, _ in items:
        if name not in STATES:
            raise NeuropaintError(f"unknown state {name!r} in 'states'; valid names are {valid}.")
    segments: list[tuple[str, float, float]] = []
    onset = 0.0
    index = 0
    while onset < total - 1e-9:
        name, length = items[index % len(items)]
        length = min(length, total - onset)
        if segments and segments[-1][0] == name:  # Same state again: one longer segment.
            segments[-1] = (name, segments[-1][1], segments[-1][2] + length)
        else:
            segments.append((name, onset, length))
        onset += length
        index += 1
    return segments


def _schedule_item(item: object, state_duration: float) -> tuple[str, float]:
    if isinstance(item, str):
        return item, state_duration
    if (
        isinstance(item, Sequence)
        and len(item) == 2
        and isinstance(item[0], str)
        and isinstance(item[1], Real)
    ):
        return item[0], check_positive(item[1], f"states[{item[0]!r}] seconds")
    raise NeuropaintError(
        f"'states' items must be state names or (name, seconds) pairs, got {item!r}."
    )


def _state_amplitudes(
    schedule: list[tuple[str, float, float]], coarse_times: np.ndarray
) -> np.ndarray:
    """Rhythm amplitudes (µV) on the coarse grid, cross-faded at state changes.

    Returns
    -------
    amplitudes : ndarray, shape (n_rhythms, n_coarse)
    """
    onsets = np.array([seg[1] for seg in schedule])
    table = np.array(
        [[getattr(STATES[seg[0]], rhythm) for rhythm in _RHYTHMS] for seg in schedule]
    )  # [n_segments, n_rhythms]
    segment = np.clip(np.searchsorted(onsets, coarse_times, side="right") - 1, 0, None)
    steps = table[segment].T  # [n_rhythms, n_coarse]
    # A moving average of a step is a linear ramp of the same width, centred on the change.
    width = max(1, round(_CROSSFADE * _COARSE_SFREQ))
    return uniform_filter1d(steps, size=width, axis=1, mode="nearest")


# --- geometry ------------------------------------------------------------------------------


@functools.cache
def _template_directions() -> dict[str, np.ndarray]:
    """Unit vectors from the best-fit head-sphere centre to each 10-05 template position."""
    ch_pos = standard_montage().get_positions()["ch_pos"]
    names = list(ch_pos)
    pos = np.array([ch_pos[name] for name in names])  # [n_pos, 3]
    # Linear least-squares sphere: |p|^2 = 2 c.p + (r^2 - |c|^2).
    design = np.column_stack([2 * pos, np.ones(len(pos))])  # [n_pos, 4]
    solution, *_ = np.linalg.lstsq(design, np.sum(pos**2, axis=1), rcond=None)
    unit = pos - solution[:3]
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    return {name.upper(): vec for name, vec in zip(names, unit, strict=True)}


def _directions(labels: Sequence[str]) -> np.ndarray:
    """Unit head-sphere directions of standard labels, shape (n_labels, 3)."""
    lookup = _template_directions()
    return np.array([lookup[label.upper()] for label in labels])


def _field(dirs: np.ndarray, centres: np.ndarray, spread: float, tail: float = 0.0) -> np.ndarray:
    """Fall-off with chord distance on the unit head sphere, shape (n_channels, n_centres).

    A Gaussian of width ``spread``, plus (weight ``tail``) one three times as wide: volume
    conduction through skull and scalp gives a rhythm's field a broad tail, so posterior alpha
    is still seen, weaker, at the vertex and the front. Peak 1.
    """
    dist2 = np.sum((dirs[:, None, :] - centres[None, :, :]) ** 2, axis=-1)  # [n_ch, n_centres]
    near = np.exp(-dist2 / (2 * spread**2))
    broad = np.exp(-dist2 / (2 * (3 * spread) ** 2))
    return (1 - tail) * near + tail * broad


def _cap_points(n: int, rng: np.random.Generator, z_min: float = -0.3) -> np.ndarray:
    """``n`` evenly spread unit vectors over the cap z >= z_min (a Fibonacci lattice).

    Returns
    -------
    points : ndarray, shape (n, 3)
    """
    i = np.arange(n) + 0.5
    z = 1 - (1 - z_min) * i / n  # Uniform in z is uniform in area on a sphere.
    r = np.sqrt(1 - z**2)
    phi = i * np.pi * (3 - np.sqrt(5)) + rng.uniform(0, 2 * np.pi)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


# --- signal parts ----------------------------------------------------------------------------


def _colored_noise(
    rng: np.random.Generator, exponents: np.ndarray, n_times: int, sfreq: float
) -> np.ndarray:
    """Gaussian noise with power ~ 1/f^exponent (flattening below 0.5 Hz), unit variance.

    Parameters
    ----------
    exponents : ndarray, shape (n_signals,)
        Spectral exponent of each signal (0 = white, 1 = pink, 2 = brown).

    Returns
    -------
    noise : ndarray, shape (n_signals, n_times), float32
    """
    freqs = scipy.fft.rfftfreq(n_times, 1.0 / sfreq).astype(np.float32)  # [n_freqs]
    knee2 = np.float32(0.25)  # (0.5 Hz)^2: keeps the lowest bins finite.
    exps = np.asarray(exponents, dtype=np.float32)[:, None]  # [n_signals, 1]
    amp = (freqs**2 + knee2) ** (-exps / 4)  # [n_signals, n_freqs]; power ~ f^-exponent
    amp[:, 0] = 0.0  # No DC offset.
    # With norm="ortho" and unit-variance real and imaginary parts, the variance of the
    # result is 4/n * sum(amp^2) (each bin but DC appears twice, conjugated).
    amp *= np.sqrt(n_times / (4 * np.sum(amp.astype(np.float64) ** 2, axis=1, keepdims=True)))
    spec = rng.standard_normal((len(exps), len(freqs), 2), dtype=np.float32)
    spec = spec.view(np.complex64)[..., 0]  # [n_signals, n_freqs]
    spec *= amp
    return scipy.fft.irfft(spec, n_times, axis=-1, norm="ortho", workers=-1)


def _shared_background(
    rng: np.random.Generator, dirs: np.ndarray, n_times: int, sfreq: float
) -> tuple[np.ndarray, np.ndarray]:
    """Spatially smooth aperiodic background: mixing (n_channels, K), sources (K, n_times)."""
    centres = _cap_points(_BG_SOURCES, rng)
    mixing = _field(dirs, centres, _BG_SPREAD)  # [n_ch, K]
    mixing *= _BG_SHARED_UV / np.linalg.norm(mixing, axis=1, keepdims=True)
    exponents = rng.uniform(1.0, 2.0, _BG_SOURCES)
    return mixing, _colored_noise(rng, exponents, n_times, sfreq)


def _slow_noise(
    rng: np.random.Generator, shape: tuple[int, int], cutoff: float, *, complex_: bool = False
) -> np.ndarray:
    """Gaussian low-pass noise on the coarse grid, E|x|^2 = 1, shape ``shape``.

    ``cutoff`` is the std (Hz) of the Gaussian power spectrum; complex noise has a spectrum
    symmetric around 0 Hz (the baseband of a narrow-band process).
    """
    n = shape[-1]
    freqs = scipy.fft.fftfreq(n, 1.0 / _COARSE_SFREQ)
    amp = np.exp(-(freqs**2) / (4 * cutoff**2))  # Amplitude; power ~ exp(-f^2 / 2 cutoff^2).
    amp *= np.sqrt(n / (2 * np.sum(amp**2)))  # E|x|^2 = 2/n * sum(amp^2) with norm="ortho".
    spec = rng.standard_normal((*shape, 2)).view(np.complex128)[..., 0] * amp
    noise = scipy.fft.ifft(spec, axis=-1, norm="ortho")
    return noise if complex_ else noise.real * np.sqrt(2)


def _rhythms(
    rng: np.random.Generator,
    dirs: np.ndarray,
    times: np.ndarray,
    schedule: list[tuple[str, float, float]],
) -> tuple[np.ndarray, np.ndarray]:
    """Narrow-band bursting rhythms: mixing (n_channels, G), sources (G, n_times) in µV.

    Each generator is ``Re(b(t) exp(2i pi f t))`` with ``b`` complex Gaussian baseband noise
    (bandwidth = the rhythm's peak width, so the phase drifts and the frequency jitters) times a
    log-normal burst envelope times the state amplitude, all built on a 32 Hz grid and
    interpolated up; only the carrier runs at the full rate.
    """
    n_coarse = int(np.floor(times[-1] * _COARSE_SFREQ)) + 2
    coarse_times = np.arange(n_coarse) / _COARSE_SFREQ
    gains = _state_amplitudes(schedule, coarse_times)  # [n_rhythms, n_coarse]
    position = times * _COARSE_SFREQ
    index = np.minimum(position.astype(np.int64), n_coarse - 2)
    weight = position - index  # Linear interpolation weights.
    mixing = []
    sources = []
    for rhythm_index, rhythm in enumerate(_RHYTHMS.values()):
        n_gen = len(rhythm.generators)
        baseband = _slow_noise(rng, (n_gen, n_coarse), rhythm.bandwidth, complex_=True)
        bursts = np.exp(
            _BURST_SIGMA * _slow_noise(rng, (n_gen, n_coarse), _BURST_CUTOFF) - _BURST_SIGMA**2
        )  # E[bursts^2] = 1
        # Each generator's own peak frequency: shift its baseband by a small offset.
        offsets = rng.normal(0.0, 0.04 * rhythm.freq, n_gen)
        phases = rng.uniform(0, 2 * np.pi, n_gen)
        shift = np.exp(1j * (2 * np.pi * offsets[:, None] * coarse_times + phases[:, None]))
        coarse = baseband * bursts * shift * gains[rhythm_index] * np.sqrt(2)  # [n_gen, n_c]
        carrier = np.exp(2j * np.pi * rhythm.freq * times)  # [n_times]
        for gen in range(n_gen):
            row = coarse[gen]
            envelope = row[index] * (1 - weight) + row[index + 1] * weight  # [n_times]
            sources.append(np.real(envelope * carrier))
        mixing.append(_field(dirs, _directions(rhythm.generators), rhythm.spread, _RHYTHM_TAIL))
    return np.concatenate(mixing, axis=1), np.stack(sources)


def _blink_topography(dirs: np.ndarray) -> np.ndarray:
    """Relative blink amplitude per channel, shape (n_channels,): 1 at Fp1/Fp2, ~0.5 at F, ~0.1
    at C, a few percent at O (the eyes are a dipole in front of the frontal pole)."""
    fpz = _directions(["Fpz"])[0]
    fp1 = _directions(["Fp1"])[0]
    near = np.linalg.norm(fp1 - fpz)
    dist = np.linalg.norm(dirs - fpz, axis=1)
    return np.exp(-np.clip(dist - near, 0, None) / 0.5)


def _blinks(
    rng: np.random.Generator,
    dirs: np.ndarray,
    times: np.ndarray,
    sfreq: float,
    schedule: list[tuple[str, float, float]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Blinks at each state's rate: mixing (n_ch, 1), source (1, n_times), onsets, durations."""
    source = np.zeros(len(times))
    onsets = []
    durations = []
    for name, seg_onset, seg_length in schedule:
        state = STATES[name]
        if state.blink_rate <= 0:
            continue
        # A Poisson process with a 1 s refractory period after each blink.
        mean_gap = max(60.0 / state.blink_rate - 1.0, 0.1)
        t = seg_onset + rng.exponential(mean_gap)
        while t < seg_onset + seg_length:
            length = state.blink_duration * rng.uniform(0.75, 1.25)
            start = round(t * sfreq)
            n = min(round(length * sfreq), len(times) - start)
            if n >= 4:
                x = np.arange(n) / n
                shape = x**2 * (1 - x) ** 3 / (0.4**2 * 0.6**3)  # Peak 1 at 40 %: quick rise.
                source[start : start + n] += rng.uniform(*_BLINK_UV) * shape
                onsets.append(start / sfreq)
                durations.append(n / sfreq)
            t += length + 1.0 + rng.exponential(mean_gap)
    return _blink_topography(dirs)[:, None], source[None, :], np.array(onsets), np.array(durations)


def _line_noise(
    rng: np.random.Generator, n_channels: int, times: np.ndarray, line_freq: float, sfreq: float
) -> tuple[np.ndarray, np.ndarray]:
    """Mains at ``line_freq`` and harmonics: mixing (n_channels, 2H), sources (2H, n_times).

    A per-channel amplitude and phase ``a cos(wt + p)`` is ``a cos p cos wt - a sin p sin wt``,
    so each harmonic is two shared sources with a per-channel mix.
    """
    amplitude = rng.uniform(*_LINE_UV, n_channels)  # [n_ch]
    phase = rng.normal(0.0, 0.3, n_channels)  # Mostly common-mode, a little spread.
    wobble = 1 + 0.1 * np.interp(  # Slow +-10 % drift of the mains pick-up.
        times, np.arange(int(times[-1]) + 2), rng.standard_normal(int(times[-1]) + 2)
    )
    mixing = []
    sources = []
    for harmonic, rel in _LINE_HARMONICS.items():
        freq = harmonic * line_freq
        if freq >= sfreq / 2 - 1:
            continue
        mixing.append(rel * amplitude * np.cos(harmonic * phase))
        mixing.append(-rel * amplitude * np.sin(harmonic * phase))
        sources.append(wobble * np.cos(2 * np.pi * freq * times))
        sources.append(wobble * np.sin(2 * np.pi * freq * times))
    return np.stack(mixing, axis=1), np.stack(sources)


def _bad_channel_index(bad_channel: str | None, ch_names: list[str]) -> int | None:
    if bad_channel is None:
        return None
    lookup = {name.upper(): i for i, name in enumerate(ch_names)}
    if not isinstance(bad_channel, str) or bad_channel.strip().upper() not in lookup:
        check_option(bad_channel, "bad_channel", ch_names)  # Raises, listing the labels.
    return lookup[bad_channel.strip().upper()]


# --- docs picture --------------------------------------------------------------------------

_STATE_COLORS = {
    "neutral": "#4d4d4d",
    "eyes_closed": "#1f77b4",
    "focused": "#d62728",
    "drowsy": "#2ca02c",
}


def _state_psd(
    raw: mne.io.BaseRaw, picks: list[int], fmax: float = 45.0
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Welch PSD (V^2/Hz) averaged over ``picks`` and over every segment of each state.

    The first and last half second of each segment (the cross-fades) are left out.
    """
    from scipy import signal

    sfreq = raw.info["sfreq"]
    nperseg = int(2 * sfreq)  # 0.5 Hz resolution.
    data = raw.get_data(picks=picks)  # [n_picks, n_times]
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    freqs = np.empty(0)
    for annot in raw.annotations:
        name = annot["description"]
        if name not in STATES:
            continue
        start = round((annot["onset"] + 0.5) * sfreq)
        stop = round((annot["onset"] + annot["duration"] - 0.5) * sfreq)
        if stop - start < nperseg:
            continue
        freqs, psd = signal.welch(data[:, start:stop], sfreq, nperseg=nperseg)  # [n_picks, n_f]
        n_windows = (stop - start) // (nperseg // 2)
        sums[name] = sums.get(name, 0) + psd.mean(axis=0) * n_windows
        counts[name] = counts.get(name, 0) + n_windows
    keep = (freqs >= 1.0) & (freqs <= fmax)
    return freqs[keep], {name: sums[name][keep] / counts[name] for name in sums}


def _lobe_picks(ch_names: list[str], lobe: str) -> list[int]:
    return [
        i for i, name in enumerate(ch_names) if (region_from_label(name) or "").startswith(lobe)
    ]


def plot_state_psd(raw: mne.io.BaseRaw, fname: str | Path) -> Path:
    """Draw per-state spectra (occipital and frontal averages) and a trace snippet to a PNG.

    Parameters
    ----------
    raw : mne.io.BaseRaw
        A recording annotated with state names, as :func:`make_raw` returns.
    fname : str | Path
        Where to write the PNG (atomically).

    Returns
    -------
    fname : Path
    """
    from matplotlib.figure import Figure

    ch_names = raw.ch_names
    occipital = [ch_names.index(n) for n in ("O1", "Oz", "O2") if n in ch_names]
    occipital = occipital or _lobe_picks(ch_names, "occipital")
    frontal = _lobe_picks(ch_names, "frontal")
    if not occipital or not frontal:
        raise NeuropaintError("plot_state_psd needs occipital and frontal channels.")
    fig = Figure(figsize=(11, 8), layout="constrained")
    grid = fig.add_gridspec(2, 2, height_ratios=[1.1, 1])
    for col, (title, picks) in enumerate([("occipital", occipital), ("frontal", frontal)]):
        ax = fig.add_subplot(grid[0, col])
        freqs, psds = _state_psd(raw, picks)
        for name, psd in psds.items():
            ax.semilogy(freqs, psd * 1e12, color=_STATE_COLORS.get(name), label=name, lw=1.6)
        for lo, hi, band in ((4, 7, "θ"), (8, 12, "α"), (15, 25, "β")):
            ax.axvspan(lo, hi, color="0.92", zorder=0)
            ax.text(
                (lo + hi) / 2,
                0.98,
                band,
                transform=ax.get_xaxis_transform(),
                ha="center",
                va="top",
                color="0.4",
            )
        labels = ", ".join(ch_names[i] for i in picks)
        ax.set_title(f"{title} average ({labels})", fontsize=10)
        ax.set_xlabel("frequency (Hz)")
        ax.set_ylabel("PSD (µV²/Hz)")
        ax.set_xlim(1, 45)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=9)

    # Trace: 10 s across the first change into eyes_closed, starting just before a blink.
    ax = fig.add_subplot(grid[1, :])
    sfreq = raw.info["sfreq"]
    annots = list(raw.annotations)
    change = next(
        (a["onset"] for a in annots if a["description"] == "eyes_closed" and a["onset"] > 0),
        5.0,
    )
    blinks_before = [
        a["onset"]
        for a in annots
        if a["description"] == "blink" and change - 8 < a["onset"] < change
    ]
    tmin = max(0.0, min([change - 5.0] + [b - 0.5 for b in blinks_before[:1]]))
    tmax = min(raw.times[-1], tmin + 10.0)
    shown = [n for n in ("Fp1", "Fz", "Cz", "Pz", "O1", "Oz") if n in ch_names][:5]
    start = round(tmin * sfreq)
    stop = round(tmax * sfreq)
    data = raw.get_data(picks=shown, start=start, stop=stop) * 1e6  # [n_shown, n] in µV
    t = np.arange(start, stop) / sfreq
    step = 150.0
    for i, name in enumerate(shown):
        ax.plot(t, data[i] - i * step, color="k", lw=0.6)
        ax.text(tmin - 0.05, -i * step, name, ha="right", va="center")
    for annot in raw.annotations:
        a0 = annot["onset"]
        a1 = a0 + annot["duration"]
        if a1 < tmin or a0 > tmax:
            continue
        if annot["description"] == "blink":
            ax.axvspan(max(a0, tmin), min(a1, tmax), color="#ffcc66", alpha=0.4, lw=0)
        elif annot["description"] in STATES:
            color = _STATE_COLORS.get(annot["description"], "0.5")
            ax.axvspan(max(a0, tmin), min(a1, tmax), ymin=0.97, color=color, lw=0)
            ax.text(
                max(a0, tmin) + 0.1,
                0.93,
                annot["description"],
                color=color,
                transform=ax.get_xaxis_transform(),
                va="top",
            )
    ax.set_xlim(tmin, tmax)
    ax.set_ylim(-(len(shown) - 0.4) * step, 1.6 * step)  # Headroom for the state labels.
    ax.set_yticks([])
    ax.set_xlabel(f"time (s); traces {step:g} µV apart; blinks shaded")
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    fig.suptitle(
        f"neuropaint synthetic EEG: {len(ch_names)} channels, {raw.times[-1] + 1 / sfreq:g} s "
        f"at {sfreq:g} Hz, Welch PSD per state"
    )
    fname = Path(fname)
    with atomic_path(fname) as tmp:
        fig.savefig(tmp, dpi=100, format=fname.suffix.lstrip(".") or "png")
    return fname


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m eeg.synthetic --plot docs/synthetic_psd.png``."""
    parser = argparse.ArgumentParser(
        prog="python -m eeg.synthetic",
        description="Synthetic EEG with named brain states. Draws the per-state spectra "
        "(occipital and frontal averages) and a trace snippet of one synthetic recording.",
    )
    parser.add_argument(
        "--plot", metavar="PNG", help="write the picture here (e.g. docs/synthetic_psd.png)"
    )
    parser.add_argument(
        "--duration", type=float, default=120.0, help="seconds of EEG (default 120)"
    )
    parser.add_argument("--n-channels", type=int, default=32, help="8, 16, 32 or 64 (default 32)")
    parser.add_argument(
        "--sfreq", type=float, default=256.0, help="sampling rate in Hz (default 256)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--line-freq", type=float, default=50.0, help="mains frequency in Hz (default 50)"
    )
    parser.add_argument("--list-states", action="store_true", help="print the states and exit")
    args = parser.parse_args(argv)
    if args.list_states:
        for name, state in STATES.items():
            print(f"{name:12s} {state.description}")
        return 0
    if args.plot is None:
        parser.error("nothing to do: give --plot PNG or --list-states")
    setup_logging("INFO")
    raw = make_raw(
        args.duration,
        n_channels=args.n_channels,
        sfreq=args.sfreq,
        seed=args.seed,
        line_freq=args.line_freq,
    )
    path = plot_state_psd(raw, args.plot)
    logger.info("wrote %s", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
