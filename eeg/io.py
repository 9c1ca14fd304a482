"""Reading EEG recordings into MNE ``Raw`` objects, whatever file they come in.

One entry point, :func:`read_raw`, picks a reader by file suffix from a small registry:
MNE-Python's own readers for EDF/EDF+ (Kemp et al. 1992, 2003), BDF (BioSemi), GDF
(Schlögl 2006), FIF, BrainVision and EEGLAB, and pyxdf for XDF, the file format of the Lab
Streaming Layer (https://github.com/sccn/xdf/wiki/Specifications). Whatever the format, the
recording then goes through the same steps: channels named like EOG/ECG/EMG/stim/auxiliary
sensors get those types, only EEG channels are kept, standard labels get template positions
(:func:`eeg.channels.set_standard_montage`), the data are loaded, and the amplitude is
checked for a unit mix-up (microvolts stored as volts and the like). With ``units='auto'``
(the default) an amplitude that cannot be EEG in the stated unit is rescaled by the power of
1000 that makes it plausible, with a one-line :class:`UnitsWarning`; an explicit ``units``
('V', 'uV', 'mV') says what the file's numbers really are, and is trusted. Either way the
correction is noted on the Raw (:func:`units_note`) and :func:`eeg.preprocess.clean` copies
it into its report.

XDF holds several streams on one clock. We take one regularly sampled numeric stream as the
EEG, resample it onto a regular grid at its nominal rate (LSL time stamps jitter, and
Bluetooth headsets drop packets), mark gaps as ``BAD_gap`` annotations, and turn marker
streams into annotations. LSL's convention for EEG is microvolts; a stream that does not
say its unit is read as microvolts, with a warning.

Every failure a user can cause is one line: :class:`FileNotFoundError` for a missing file,
:class:`~neuropaint.validate.NeuropaintError` for the rest (a directory, an unknown suffix,
an empty, truncated or corrupt file, no EEG channels, an ambiguous XDF stream).
"""

from __future__ import annotations

import dataclasses
import gzip
import logging
import math
import os
import re
import warnings
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mne
import numpy as np
import pyxdf

from eeg.channels import set_standard_montage
from eeg.npeeg import read_npeeg
from neuropaint.validate import NeuropaintError

logger = logging.getLogger(__name__)

__all__ = [
    "UNITS_CHOICES",
    "RecordingFormat",
    "RecordingWarning",
    "UnitsWarning",
    "read_raw",
    "supported_extensions",
    "units_note",
]


class RecordingWarning(UserWarning):
    """Something in a recording looks wrong, but it could be read."""


class UnitsWarning(RecordingWarning):
    """The EEG amplitude is implausible for volts: the unit was probably mislabelled."""


# The amplitude check: the median over EEG channels of each channel's standard deviation.
# Scalp EEG in volts lies around 1e-6..1e-4 (1e-3 with drifts and artefacts). Outside these
# bounds the data are orders of magnitude off, which means a unit mix-up, not a loud subject.
_MAX_PLAUSIBLE_STD = 1e-2  # V; microvolts stored as volts give ~1..1000.
_MIN_PLAUSIBLE_STD = 1e-8  # V; volts stored as microvolts give ~1e-12..1e-9.
_TYPICAL_STD = 2e-5  # V; used to suggest the rescaling factor.
_UNITS_WINDOW_S = 120.0  # Seconds from the middle of the recording used for the check.
# read_raw's `units`: 'auto' corrects an implausible amplitude, the others name the unit of the
# file's numbers (whatever the file says).
UNITS_CHOICES = ("auto", "V", "uV", "mV")
_UNITS_SCALE = {"V": 1.0, "uV": 1e-6, "mV": 1e-3}
_UNIT_MIXUPS = (-6, -3, 3, 6)  # log10 of the factors units='auto' applies: V/mV/uV mix-ups.
_NOTE_KEY = "neuropaint_units"  # Key in raw.info["temp"] holding the units note.

# XDF gaps: a step between time stamps of more than _GAP_SAMPLES sample periods, and of at
# least _GAP_MIN_SECONDS, is missing data. Shorter steps are jitter: Bluetooth amplifiers
# deliver samples in bursts stamped tens of milliseconds apart, and pyxdf's dejitter (a
# straight line fitted to the time stamps between gaps) absorbs them.
_GAP_SAMPLES = 5
_GAP_MIN_SECONDS = 0.1
# A stream with no nominal rate counts as regularly sampled when this share of its time
# steps lies within half a median step of the median step.
_REGULAR_SHARE = 0.9


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def read_raw(
    path: str | os.PathLike,
    *,
    stream: str | None = None,
    units: str = "auto",
    verbose: bool | str | int | None = None,
) -> mne.io.BaseRaw:
    """Read an EEG recording into a preloaded MNE ``Raw`` holding only its EEG channels.

    Parameters
    ----------
    path : str | path-like
        The recording. Its suffix (case-insensitive) decides the format: ``.edf``, ``.bdf``,
        ``.gdf``, ``.fif`` / ``.fif.gz`` (``*_raw.fif``, ``*_eeg.fif``), ``.vhdr``
        (BrainVision), ``.set`` (EEGLAB), ``.xdf`` / ``.xdfz`` / ``.xdf.gz`` (XDF, from LSL).
        See :func:`supported_extensions`.
    stream : str | None
        XDF only: the stream to read as EEG, by name or else by type (case-insensitive).
        None takes the one stream of type ``EEG``; a file with several is an error that
        lists them.
    verbose : bool | str | int | None
        MNE's logging level for its readers, as in MNE.

    Returns
    -------
    raw : mne.io.BaseRaw
        Data loaded, in volts, EEG channels only (channel types inferred from labels first:
        EOG, ECG, EMG, stim and auxiliary channels are dropped). Standard 10-05 labels have
        template positions unless the file gave positions. Annotations from the file are
        kept; XDF marker streams become annotations, XDF gaps ``BAD_gap`` annotations.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    neuropaint.validate.NeuropaintError
        If ``path`` is a directory, has an unsupported suffix, is empty, truncated or
        corrupt, has no EEG channels, or (XDF) the EEG stream is missing or ambiguous.

    Warns
    -----
    UnitsWarning
        With ``units='auto'``, when the amplitude looks like the wrong unit (e.g. microvolts
        stored as volts) and was rescaled; the message says by how much and how to override.
    RecordingWarning
        For duplicate channel labels (MNE renames them ``Fz-0``, ``Fz-1``), flat EEG, and
        XDF streams without channel labels or units.
    """
    if units not in UNITS_CHOICES:
        raise NeuropaintError(
            f"'units' must be one of {', '.join(UNITS_CHOICES)}, got {units!r}."
        )
    path = _check_path(path)
    fmt = _format_for(path)
    if stream is not None:
        if not isinstance(stream, str):
            raise NeuropaintError(f"'stream' must be a stream name or type, got {stream!r}.")
        if not fmt.multi_stream:
            raise NeuropaintError(
                f"'stream' applies to multi-stream recordings (XDF), but {path} is {fmt.name}."
            )
    logger.info("reading %s as %s", path, fmt.name)
    try:
        raw = fmt.reader(path, stream=stream, verbose=verbose)
        raw.load_data(verbose=verbose)
    except _PASS_THROUGH:
        raise
    except Exception as exc:  # Readers fail in many ways on damaged files; one line for all.
        logger.debug("reader for %s failed", path, exc_info=True)
        raise NeuropaintError(
            f"cannot read {path} as {fmt.name}, the file may be truncated or corrupt "
            f"({_summarize(exc)})."
        ) from None

    stated = _stated_units(raw, fmt)  # Before channels are dropped: readers index them all.
    _set_types_from_labels(raw, verbose)
    _warn_renamed_duplicates(raw, path)
    _pick_eeg(raw, path, verbose)
    unplaced = set_standard_montage(raw)
    if unplaced:
        logger.info("%s: %d EEG channel(s) have no position", path.name, len(unplaced))
    if units == "auto":
        _check_units(raw, path, correct=True)
    else:
        _apply_units(raw, path, units, stated)
    logger.info(
        "read %s: %d EEG channels at %g Hz, %.1f s",
        path.name, len(raw.ch_names), raw.info["sfreq"], raw.n_times / raw.info["sfreq"],
    )
    return raw


def supported_extensions() -> tuple[str, ...]:
    """The file suffixes :func:`read_raw` understands, lower-case (``'.bdf'``, ``'.edf'``, ...)."""
    return tuple(sorted(_FORMATS))


# ---------------------------------------------------------------------------------------------
# Format registry
# ---------------------------------------------------------------------------------------------

Reader = Callable[..., mne.io.BaseRaw]


@dataclasses.dataclass(frozen=True)
class RecordingFormat:
    """One entry of the format registry."""

    name: str  # How messages name the format ("EDF", "BrainVision").
    reader: Reader  # reader(path, *, stream, verbose) -> Raw; read_raw does the rest.
    multi_stream: bool = False  # True when a file holds several streams and `stream` picks one.
    # The unit the file's numbers are in when the reader gives no per-channel units
    # (raw._orig_units): FIF and our .npeeg store volts, EEGLAB microvolts.
    stored_unit: str = "V"


def _read_edf(path: Path, *, stream: str | None, verbose: Any) -> mne.io.BaseRaw:
    _check_edf_records(path, sample_bytes=2, fmt="EDF")
    return mne.io.read_raw_edf(path, preload=True, verbose=verbose)


def _read_bdf(path: Path, *, stream: str | None, verbose: Any) -> mne.io.BaseRaw:
    _check_edf_records(path, sample_bytes=3, fmt="BDF")
    return mne.io.read_raw_bdf(path, preload=True, verbose=verbose)


def _read_gdf(path: Path, *, stream: str | None, verbose: Any) -> mne.io.BaseRaw:
    with warnings.catch_warnings():
        # MNE knows only the µV, mV and dimensionless codes and warns once per channel for the
        # rest, volts (4256, as BioSig exports write) included, then reads them unscaled: right
        # for volts, and read_raw's unit check catches any other scale.
        warnings.filterwarnings("ignore", message="Unsupported physical dimension")
        return mne.io.read_raw_gdf(path, preload=True, verbose=verbose)


def _read_fif(path: Path, *, stream: str | None, verbose: Any) -> mne.io.BaseRaw:
    with warnings.catch_warnings():
        # We accept any *.fif name; MNE's reminder of its naming convention is noise here.
        warnings.filterwarnings("ignore", message=".*does not conform to MNE naming")
        return mne.io.read_raw_fif(path, preload=True, verbose=verbose)


def _read_brainvision(path: Path, *, stream: str | None, verbose: Any) -> mne.io.BaseRaw:
    return mne.io.read_raw_brainvision(path, preload=True, verbose=verbose)


def _read_eeglab(path: Path, *, stream: str | None, verbose: Any) -> mne.io.BaseRaw:
    return mne.io.read_raw_eeglab(path, preload=True, verbose=verbose)


def _read_xdf(path: Path, *, stream: str | None, verbose: Any) -> mne.io.BaseRaw:
    streams = _load_xdf(path)
    chosen = _choose_stream(streams, stream, path)
    raw, start, gaps = _xdf_stream_to_raw(chosen, path, verbose)
    markers = _xdf_markers(streams, chosen, start, raw, path)
    raw.set_annotations(markers + gaps, verbose=verbose)
    return raw


def _read_npeeg(path: Path, *, stream: str | None, verbose: Any) -> mne.io.BaseRaw:
    return read_npeeg(path, verbose=verbose)


# Keys are lower-case suffixes; the longest one that ends the file name wins (".fif.gz").
_FORMATS: dict[str, RecordingFormat] = {
    ".edf": RecordingFormat("EDF", _read_edf),
    ".bdf": RecordingFormat("BDF", _read_bdf),
    ".gdf": RecordingFormat("GDF", _read_gdf),
    ".fif": RecordingFormat("FIF", _read_fif),
    ".fif.gz": RecordingFormat("FIF", _read_fif),
    ".vhdr": RecordingFormat("BrainVision", _read_brainvision),
    ".set": RecordingFormat("EEGLAB", _read_eeglab, stored_unit="uV"),
    ".xdf": RecordingFormat("XDF", _read_xdf, multi_stream=True),
    ".xdfz": RecordingFormat("XDF", _read_xdf, multi_stream=True),
    ".xdf.gz": RecordingFormat("XDF", _read_xdf, multi_stream=True),
    # Live sessions (live.render --record): EEG with its LSL timestamps, see eeg.npeeg.
    ".npeeg": RecordingFormat("neuropaint live session", _read_npeeg),
}


# ---------------------------------------------------------------------------------------------
# Checks before and after reading
# ---------------------------------------------------------------------------------------------


def _check_path(path: object) -> Path:
    try:
        path = Path(os.fspath(path)).expanduser()
    except TypeError:
        raise NeuropaintError(f"'path' must be a file path, got {path!r}.") from None
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if path.is_dir():
        session = path / "eeg.npeeg"  # a live session's folder (live.render --record)
        if session.is_file():
            return session
        raise NeuropaintError(f"{path} is a directory; give the recording file inside it.")
    return path


def _format_for(path: Path) -> RecordingFormat:
    name = path.name.lower()
    matches = [suffix for suffix in _FORMATS if name.endswith(suffix)]
    if not matches:
        supported = ", ".join(supported_extensions())
        raise NeuropaintError(
            f"unsupported recording format {''.join(path.suffixes) or path.name!r} for {path}; "
            f"supported: {supported}."
        )
    if path.stat().st_size == 0:
        raise NeuropaintError(f"{path} is empty (0 bytes).")
    return _FORMATS[max(matches, key=len)]


# Errors that already say what is wrong, or that are not about the file's content.
_PASS_THROUGH = (NeuropaintError, PermissionError, MemoryError)


def _summarize(exc: BaseException, limit: int = 160) -> str:
    """The exception's type and the first line of its message, shortened."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _check_edf_records(path: Path, *, sample_bytes: int, fmt: str) -> None:
    """Refuse an EDF/BDF file whose data records do not fill the file the header describes.

    MNE reads what whole records there are and only warns; a file cut in the middle of a
    record is a damaged copy, and reading part of it silently would hide that.
    """
    with open(path, "rb") as fid:
        fixed = fid.read(256)
        try:
            header_bytes = int(fixed[184:192].decode("latin-1"))
            n_records = int(fixed[236:244].decode("latin-1"))
            n_signals = int(fixed[252:256].decode("latin-1"))
        except ValueError:
            return  # Not an EDF/BDF header at all: the MNE reader says so.
        data_bytes = path.stat().st_size - header_bytes
        if data_bytes < 0:
            raise NeuropaintError(f"{path} is truncated: the file ends inside its {fmt} header.")
        # Per-signal fields before "samples per record": 16+80+8+8+8+8+8+80 bytes each.
        fid.seek(256 + n_signals * 216)
        try:
            n_samps = [int(fid.read(8).decode("latin-1")) for _ in range(n_signals)]
        except ValueError:
            return
    record_bytes = sum(n_samps) * sample_bytes
    if record_bytes <= 0:
        return
    n_whole, rest = divmod(data_bytes, record_bytes)
    if n_records < 0:  # -1: "unknown", allowed while recording; MNE counts whole records.
        return
    if n_whole != n_records or rest:
        raise NeuropaintError(
            f"{path} is truncated or damaged: its {fmt} header promises {n_records} data "
            f"records but the file holds {data_bytes / record_bytes:.2f} "
            f"(mne.io.read_raw_{fmt.lower()} can read the {min(n_whole, n_records)} whole ones)."
        )


# Channel types from labels, for readers that call every channel EEG (EDF, BDF, GDF, ...).
# Only channels typed EEG are retyped; a type the file itself gives is kept.
_TYPES_BY_LABEL = (
    ("eog", re.compile(r"EOG", re.IGNORECASE)),
    ("ecg", re.compile(r"ECG|EKG", re.IGNORECASE)),
    ("emg", re.compile(r"EMG", re.IGNORECASE)),
    ("stim", re.compile(r"^(STI\s?\d*|STIM\w*|STATUS|TRIG(GER)?\w*|MARKERS?)$", re.IGNORECASE)),
    ("misc", re.compile(r"^(AUX|ACC|GYRO|GSR|EDA|RESP|TEMP|PPG|SPO2|PULSE|BATT)", re.IGNORECASE)),
)


def _set_types_from_labels(raw: mne.io.BaseRaw, verbose: Any) -> None:
    mapping = {}
    for idx in mne.pick_types(raw.info, eeg=True, exclude=[]):
        name = raw.ch_names[idx]
        for ch_type, pattern in _TYPES_BY_LABEL:
            if pattern.search(name.strip()):
                mapping[name] = ch_type
                break
    if mapping:
        logger.info("channel types from labels: %s", mapping)
        raw.set_channel_types(mapping, on_unit_change="ignore", verbose=verbose)


def _renamed_duplicates(ch_names: list[str]) -> dict[str, list[str]]:
    """Channels MNE renamed for sharing a label (``Fz`` twice -> ``Fz-0``, ``Fz-1``), by label."""
    groups: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for name in ch_names:
        match = re.fullmatch(r"(.+)-(\d+)", name)
        if match is not None:
            groups[match[1]].append((int(match[2]), name))
    renamed = {}
    for stem, members in groups.items():
        members.sort()
        numbers = [number for number, _ in members]
        # MNE numbers every copy from 0 and drops the bare label.
        if len(members) >= 2 and numbers == list(range(len(members))) and stem not in ch_names:
            renamed[stem] = [name for _, name in members]
    return renamed


def _warn_renamed_duplicates(raw: mne.io.BaseRaw, path: Path) -> None:
    renamed = _renamed_duplicates(raw.ch_names)
    if renamed:
        listing = "; ".join(f"{stem} -> {', '.join(names)}" for stem, names in renamed.items())
        warnings.warn(
            f"{path}: duplicate channel labels were renamed: {listing}. Check which electrode "
            "each one is before relying on its label.",
            RecordingWarning,
            stacklevel=3,
        )


def _pick_eeg(raw: mne.io.BaseRaw, path: Path, verbose: Any) -> None:
    picks = mne.pick_types(raw.info, eeg=True, exclude=[])
    if len(picks) == 0:
        kinds = raw.get_channel_types()
        found = [f"{name} ({kind})" for name, kind in zip(raw.ch_names, kinds, strict=True)]
        if len(found) > 12:
            found = [*found[:12], f"... {len(found) - 12} more"]
        raise NeuropaintError(f"{path} has no EEG channels (found: {', '.join(found) or 'none'}).")
    keep = set(picks.tolist())
    dropped = [name for i, name in enumerate(raw.ch_names) if i not in keep]
    if dropped:
        logger.info("dropping %d non-EEG channel(s): %s", len(dropped), dropped)
        raw.pick(picks, verbose=verbose)


def units_note(raw: mne.io.BaseRaw) -> str | None:
    """The line saying how :func:`read_raw` rescaled ``raw``'s amplitude; None if it did not."""
    temp = raw.info.get("temp")
    return temp.get(_NOTE_KEY) if isinstance(temp, dict) else None


def _set_units_note(raw: mne.io.BaseRaw, note: str) -> None:
    temp = raw.info.get("temp")
    if not isinstance(temp, dict):
        temp = {}
    temp[_NOTE_KEY] = note
    raw.info["temp"] = temp


def implausible_scale(amplitude: float) -> float | None:
    """The power of 1000 that makes a median channel std (in volts) plausible for EEG; None
    when it already is."""
    if _MIN_PLAUSIBLE_STD <= amplitude <= _MAX_PLAUSIBLE_STD:
        return None
    return 10.0 ** (-3 * round(np.log10(amplitude / _TYPICAL_STD) / 3))


def unit_mixup_factor(amplitude: float) -> float | None:
    """The factor that corrects a V/mV/µV mix-up behind this median channel std (volts);
    None when the amplitude is plausible EEG, or off by something no unit mix-up explains
    (a flat signal's rounding noise, a broken gain)."""
    factor = implausible_scale(amplitude)
    if factor is None or round(np.log10(factor)) not in _UNIT_MIXUPS:
        return None
    return factor


def describe_scale(factor: float) -> str:
    """What a rescaling factor means, in words ('microvolts stored as volts')."""
    exponent = round(np.log10(factor))
    return {
        -6: "microvolts stored as volts",
        -3: "millivolts stored as volts",
        3: "millivolts stored as microvolts",
        6: "volts stored as microvolts",
    }.get(exponent, f"values off by a factor of {1 / factor:g}")


def _check_units(raw: mne.io.BaseRaw, path: Path, *, correct: bool) -> float | None:
    """Check the EEG amplitude for a unit mix-up; rescale (``correct``) and warn in one line.

    Returns the amplitude (median channel std, volts) as read, None when nothing is measurable.
    """
    picks = mne.pick_types(raw.info, eeg=True, exclude="bads")
    if len(picks) == 0:
        return None
    # A window from the middle: the start of a recording often holds settling artefacts.
    window = int(_UNITS_WINDOW_S * raw.info["sfreq"])
    start = max(0, (raw.n_times - window) // 2)
    data = raw.get_data(picks=picks, start=start, stop=start + window)
    stds = np.nanstd(data, axis=1)
    stds = stds[np.isfinite(stds) & (stds > 0)]
    if stds.size == 0:
        warnings.warn(f"{path}: all EEG channels are flat.", RecordingWarning, stacklevel=3)
        return None
    amplitude = float(np.median(stds))
    if amplitude < _MIN_PLAUSIBLE_STD * 1e-4:  # Rounding noise of flat channels, not EEG.
        warnings.warn(f"{path}: all EEG channels are flat (median channel std "
                      f"{amplitude:.3g} V).", RecordingWarning, stacklevel=3)
        return None
    factor = implausible_scale(amplitude)
    if factor is None:
        return amplitude
    seen = (f"{path.name}: EEG amplitude looks like {describe_scale(factor)} (median channel "
            f"std {amplitude:.3g} V; EEG is about 1e-06 to 1e-03 V)")
    if not correct or unit_mixup_factor(amplitude) is None:
        # Not a unit mix-up we know (a flat recording's rounding noise, a broken gain): say
        # so, change nothing.
        warnings.warn(f"{seen}; rescale with raw.apply_function(lambda x: x * {factor:g}).",
                      UnitsWarning, stacklevel=3)
        return amplitude
    eeg = mne.pick_types(raw.info, eeg=True, exclude=[])
    raw._data[eeg] *= factor  # Preloaded float64 (read_raw loaded it).
    note = f"{seen}: scaled by {factor:g} (units='auto'; give units V, uV or mV to override)"
    _set_units_note(raw, note)
    warnings.warn(note + ".", UnitsWarning, stacklevel=3)
    return amplitude


def _stated_units(raw: mne.io.BaseRaw, fmt: RecordingFormat) -> dict[str, float]:
    """Volts per unit of each channel's numbers as the file states them, by channel name.

    MNE's EDF/BDF/BrainVision readers keep the unit text (``raw._orig_units``), its GDF
    reader the factor (``_raw_extras[0]['units']``); other formats store one known unit.
    """
    default = _UNITS_SCALE[fmt.stored_unit]
    stated = {name: default for name in raw.ch_names}
    orig = getattr(raw, "_orig_units", None) or {}
    for name, text in orig.items():
        scale = volts_per_unit(str(text))
        if name in stated and scale is not None:
            stated[name] = scale
    extras = getattr(raw, "_raw_extras", None) or [{}]
    factors = extras[0].get("units") if isinstance(extras[0], dict) else None
    if not orig and factors is not None and len(factors) == len(raw.ch_names):
        for name, factor in zip(raw.ch_names, factors, strict=True):
            if float(factor) in (1.0, 1e-3, 1e-6, 1e-9):
                stated[name] = float(factor)
    return stated


def _apply_units(raw: mne.io.BaseRaw, path: Path, units: str, stated: dict[str, float]) -> None:
    """Rescale the EEG channels so that the file's numbers are read as ``units``."""
    given = _UNITS_SCALE[units]
    eeg = mne.pick_types(raw.info, eeg=True, exclude=[])
    scales = np.array([stated.get(raw.ch_names[i], 1.0) for i in eeg])
    factors = given / scales
    if np.allclose(factors, 1.0):
        logger.info("%s: units %s, as the file says", path.name, units)
        return
    raw._data[eeg] *= factors[:, np.newaxis]
    names = {1.0: "V", 1e-3: "mV", 1e-6: "uV", 1e-9: "nV"}
    said = ", ".join(sorted({names.get(float(s), f"{s:g} V") for s in scales}))
    common = f"{factors[0]:g}" if np.allclose(factors, factors[0]) else "per channel"
    note = f"{path.name}: units {units} given, the file says {said}: scaled by {common}"
    _set_units_note(raw, note)
    logger.warning(note)


# ---------------------------------------------------------------------------------------------
# XDF
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _XdfStream:
    """One stream of an XDF file, as pyxdf loaded it (after clock sync and dejitter)."""

    name: str
    type: str
    n_channels: int
    channel_format: str
    nominal_srate: float
    time_stamps: np.ndarray  # shape (n_samples,), seconds on the recorder's clock
    time_series: Any  # ndarray (n_samples, n_channels), or list of lists of str
    info: dict
    sfreq: float | None  # The regular rate when this is a numeric signal stream, else None.

    def describe(self) -> str:
        rate = f"{self.sfreq:g} Hz" if self.sfreq else "irregular rate"
        channels = f"{self.n_channels} channel" + ("" if self.n_channels == 1 else "s")
        return f"{self.name!r} (type {self.type or '?'}, {channels}, {self.channel_format}, {rate})"


class _ErrorCollector(logging.Handler):
    """Collects pyxdf's error records: it logs damage and reads on, we want to report it."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _load_xdf(path: Path) -> list[_XdfStream]:
    name = path.name.lower()
    # We open the file ourselves: pyxdf decides on gzip by a case-sensitive suffix.
    opener = gzip.open if name.endswith((".xdfz", ".xdf.gz")) else open
    collector = _ErrorCollector()
    pyxdf_logger = logging.getLogger("pyxdf")
    pyxdf_logger.addHandler(collector)
    try:
        with opener(path, "rb") as fid:
            if fid.read(4) != b"XDF:":
                raise NeuropaintError(f"{path} is not an XDF file (it does not start with 'XDF:').")
            fid.seek(0)
            raw_streams, _ = pyxdf.load_xdf(
                fid,
                dejitter_timestamps=True,
                # Break the dejitter line at gaps, so that missing data stays a gap.
                jitter_break_threshold_seconds=_GAP_MIN_SECONDS,
                jitter_break_threshold_samples=_GAP_SAMPLES,
            )
    except _PASS_THROUGH:
        raise
    except Exception as exc:
        logger.debug("pyxdf failed on %s", path, exc_info=True)
        raise NeuropaintError(
            f"cannot read {path} as XDF, the file may be truncated or corrupt "
            f"({_summarize(exc)})."
        ) from None
    finally:
        pyxdf_logger.removeHandler(collector)
    if collector.messages:
        warnings.warn(
            f"{path}: the XDF file is damaged, read what could be read "
            f"(pyxdf: {collector.messages[0]}).",
            RecordingWarning,
            stacklevel=4,
        )
    streams = [_xdf_stream(s) for s in raw_streams]
    if not streams:
        raise NeuropaintError(f"{path} holds no XDF streams.")
    return streams


def _first(info: dict, key: str, default: Any = None) -> Any:
    """pyxdf's XML dicts hold each value in a one-item list; empty elements hold None."""
    values = info.get(key)
    if isinstance(values, list) and values and values[0] is not None:
        return values[0]
    return default


def _xdf_stream(raw_stream: dict) -> _XdfStream:
    info = raw_stream["info"]
    fmt = str(_first(info, "channel_format", "float32")).strip()
    stamps = np.asarray(raw_stream["time_stamps"], dtype=float)
    stream = _XdfStream(
        name=str(_first(info, "name", "")).strip(),
        type=str(_first(info, "type", "")).strip(),
        n_channels=int(_first(info, "channel_count", 0)),
        channel_format=fmt,
        nominal_srate=float(_first(info, "nominal_srate", 0.0)),
        time_stamps=stamps,
        time_series=raw_stream["time_series"],
        info=info,
        sfreq=None,
    )
    stream.sfreq = _signal_rate(stream)
    return stream


def _signal_rate(stream: _XdfStream) -> float | None:
    """The sampling rate of a numeric, regularly sampled stream; None for marker streams."""
    if stream.channel_format == "string" or stream.n_channels == 0:
        return None
    if stream.nominal_srate > 0:
        return stream.nominal_srate
    # No nominal rate: a signal only if its time stamps are regular anyway.
    if len(stream.time_stamps) < 3:
        return None
    steps = np.diff(stream.time_stamps)
    median = float(np.median(steps))
    if median <= 0:
        return None
    if np.mean(np.abs(steps - median) <= 0.5 * median) < _REGULAR_SHARE:
        return None
    usable = steps[steps <= _gap_threshold(1.0 / median)]
    return float(len(usable) / usable.sum())


def _gap_threshold(sfreq: float) -> float:
    return max(_GAP_SAMPLES / sfreq, _GAP_MIN_SECONDS)


def _choose_stream(streams: list[_XdfStream], stream: str | None, path: Path) -> _XdfStream:
    listing = "; ".join(s.describe() for s in streams)
    if stream is None:
        candidates = [s for s in streams if s.type.casefold() == "eeg" and s.sfreq is not None]
        if not candidates:
            raise NeuropaintError(
                f"{path} has no EEG stream (streams: {listing}); choose one with stream='NAME'."
            )
        if len(candidates) > 1:
            described = "; ".join(s.describe() for s in candidates)
            raise NeuropaintError(
                f"{path} holds {len(candidates)} EEG streams: {described}; "
                "choose one with stream='NAME'."
            )
        return candidates[0]

    key = stream.strip().casefold()
    matches = [s for s in streams if s.name.casefold() == key]
    if not matches:
        matches = [s for s in streams if s.type.casefold() == key]
    if not matches:
        raise NeuropaintError(
            f"{path} has no stream named or typed {stream!r} (streams: {listing})."
        )
    if len(matches) > 1:
        signals = [s for s in matches if s.sfreq is not None]
        if len(signals) != 1:
            described = "; ".join(s.describe() for s in matches)
            raise NeuropaintError(
                f"{stream!r} matches {len(matches)} streams in {path}: {described}; "
                "give a name that only one stream has."
            )
        matches = signals
    chosen = matches[0]
    if chosen.sfreq is None:
        raise NeuropaintError(
            f"stream {chosen.name!r} in {path} is not a regularly sampled numeric stream "
            f"({chosen.channel_format}, irregular rate), so it cannot be read as EEG; "
            f"streams: {listing}."
        )
    if len(chosen.time_stamps) < 2:
        raise NeuropaintError(f"stream {chosen.name!r} in {path} holds no data.")
    return chosen


# Unit spellings found in LSL stream descriptions, lower-case with µ/μ written as u.
LSL_UNIT_SCALE = {
    "v": 1.0, "volt": 1.0, "volts": 1.0,
    "mv": 1e-3, "millivolt": 1e-3, "millivolts": 1e-3,
    "uv": 1e-6, "microvolt": 1e-6, "microvolts": 1e-6,
    "nv": 1e-9, "nanovolt": 1e-9, "nanovolts": 1e-9,
}
# LSL channel types (desc/channels/channel/type) -> MNE channel types.
LSL_CHANNEL_TYPES = {
    "eeg": "eeg", "exg": "eeg", "eog": "eog", "ecg": "ecg", "ekg": "ecg", "emg": "emg",
    "stim": "stim", "trigger": "stim", "misc": "misc",
}


def volts_per_unit(unit: str) -> float | None:
    """Volts per unit of an LSL channel's ``unit`` text ('microvolts', 'uV', 'µV', 'mV', ...);
    None when it names no voltage unit."""
    return LSL_UNIT_SCALE.get(unit.strip().casefold().replace("µ", "u").replace("μ", "u"))


def _xdf_location(entry: dict) -> list[float] | None:
    """A channel's ``location`` (X, Y, Z in millimetres, MNE's head frame as neuropaint's
    streams write it) in metres; None when missing, not numeric or all zero."""
    location = _first(entry, "location")
    if not isinstance(location, dict):
        return None
    try:
        pos = [float(_first(location, axis)) * 1e-3 for axis in ("X", "Y", "Z")]
    except (TypeError, ValueError):
        return None
    if not all(math.isfinite(v) for v in pos) or not any(pos):
        return None
    return pos


def _xdf_channels(stream: _XdfStream, path: Path
                  ) -> tuple[list[str], list[float], list[str], list[list[float] | None]]:
    """Labels, scale factors to volts, MNE types and positions (metres, None: unknown) of a
    stream's channels, from its desc."""
    n_channels = stream.n_channels
    entries: list[dict] = []
    desc = _first(stream.info, "desc")
    if isinstance(desc, dict):
        channels = _first(desc, "channels")
        if isinstance(channels, dict):
            entries = [c if isinstance(c, dict) else {} for c in channels.get("channel", [])]
    if len(entries) != n_channels:
        if entries:
            logger.info("%s: desc lists %d channels, stream has %d", path, len(entries), n_channels)
        entries = [{} for _ in range(n_channels)]

    labels = [str(_first(e, "label", "")).strip() for e in entries]
    if not all(labels):
        warnings.warn(
            f"{path}: stream {stream.name!r} has no channel labels in its description; "
            f"calling them EEG001..EEG{n_channels:03d} (no montage positions).",
            RecordingWarning,
            stacklevel=5,
        )
        labels = [label or f"EEG{i + 1:03d}" for i, label in enumerate(labels)]

    types = []
    for entry in entries:
        given = str(_first(entry, "type", "")).strip().casefold()
        types.append(LSL_CHANNEL_TYPES.get(given, "misc") if given else "eeg")

    scales = []
    unknown = set()
    for entry, ch_type in zip(entries, types, strict=True):
        unit = str(_first(entry, "unit", "") or _first(entry, "units", "")).strip()
        scale = volts_per_unit(unit)
        if scale is not None:
            scales.append(scale)
        else:
            scales.append(1e-6)  # LSL's convention for EEG.
            if ch_type == "eeg":
                unknown.add(unit or "none given")
    if unknown:
        warnings.warn(
            f"{path}: stream {stream.name!r} gives no voltage unit for its EEG channels "
            f"({', '.join(sorted(unknown))}); assuming microvolts, the LSL convention.",
            RecordingWarning,
            stacklevel=5,
        )
    return unique_names(labels), scales, types, [_xdf_location(e) for e in entries]


def unique_names(labels: list[str]) -> list[str]:
    """Number repeated labels as MNE's readers do (``Fz``, ``Fz`` -> ``Fz-0``, ``Fz-1``)."""
    counts: dict[str, int] = defaultdict(int)
    for label in labels:
        counts[label] += 1
    seen: dict[str, int] = defaultdict(int)
    names = []
    for label in labels:
        if counts[label] > 1:
            names.append(f"{label}-{seen[label]}")
            seen[label] += 1
        else:
            names.append(label)
    return names


def _xdf_stream_to_raw(
    stream: _XdfStream, path: Path, verbose: Any
) -> tuple[mne.io.RawArray, float, mne.Annotations]:
    """A Raw on a regular grid at the stream's rate, from its (dejittered) time stamps.

    Returns the Raw, the time stamp of its first sample (time zero) and ``BAD_gap``
    annotations for the stretches with no samples (filled by linear interpolation).
    """
    sfreq = float(stream.sfreq)
    names, scales, types, positions = _xdf_channels(stream, path)
    values = np.asarray(stream.time_series, dtype=float)  # (n_samples, n_channels)
    stamps = stream.time_stamps
    if np.any(np.diff(stamps) < 0):
        order = np.argsort(stamps, kind="stable")
        stamps = stamps[order]
        values = values[order]

    start = stamps[0]
    # Sample periods from the first time stamp to the last, rounded: a dejittered span is a
    # hair off a whole number of periods, and the last grid point may then lie up to half a
    # period past the last stamp (np.interp holds the last value there).
    n_times = round((stamps[-1] - start) * sfreq) + 1
    grid = start + np.arange(n_times) / sfreq
    if len(stamps) == n_times and np.max(np.abs(stamps - grid)) < 1e-3 / sfreq:
        data = values.T.copy()  # Already regular: keep the samples as they are.
    else:
        data = np.empty((len(names), n_times))
        for ch in range(len(names)):
            data[ch] = np.interp(grid, stamps, values[:, ch])
        logger.info(
            "%s: resampled %d irregular samples onto %d at %g Hz",
            path.name, len(stamps), n_times, sfreq,
        )
    data *= np.asarray(scales)[:, np.newaxis]

    steps = np.diff(stamps)
    at = np.flatnonzero(steps > _gap_threshold(sfreq))
    gaps = mne.Annotations(
        onset=stamps[at] - start, duration=steps[at], description=["BAD_gap"] * len(at)
    )
    if len(at):
        logger.info("%s: %d gap(s) in stream %r, %.3f s in all", path.name, len(at),
                    stream.name, float(steps[at].sum()))

    info = mne.create_info(names, sfreq, types, verbose=verbose)
    raw = mne.io.RawArray(data, info, verbose=verbose)
    # The stream's stated units, as MNE's own readers keep them: read_raw(units=...) needs them.
    unit_names = {1.0: "V", 1e-3: "mV", 1e-6: "uV", 1e-9: "nV"}
    raw._orig_units = {n: unit_names.get(s, "V") for n, s in zip(names, scales, strict=True)}
    placed = {n: p for n, p, t in zip(names, positions, types, strict=True)
              if p is not None and t == "eeg"}
    if placed:  # the LSL channels/channel/location convention, as live.simulate writes it
        montage = mne.channels.make_dig_montage(ch_pos=placed, coord_frame="head")
        raw.set_montage(montage, on_missing="ignore", verbose=verbose)
    return raw, float(start), gaps


def _xdf_markers(
    streams: list[_XdfStream],
    chosen: _XdfStream,
    start: float,
    raw: mne.io.BaseRaw,
    path: Path,
) -> mne.Annotations:
    """Annotations from the marker streams (string or irregular), time zero at ``start``."""
    onsets: list[float] = []
    descriptions: list[str] = []
    duration = raw.n_times / raw.info["sfreq"]
    outside = 0
    for stream in streams:
        if stream is chosen or stream.sfreq is not None or len(stream.time_stamps) == 0:
            continue
        for stamp, value in zip(stream.time_stamps, stream.time_series, strict=True):
            if stream.channel_format == "string":
                parts = [str(v).strip() for v in value]
            else:
                parts = [f"{float(v):g}" for v in np.atleast_1d(value)]
            text = "/".join(p for p in parts if p)
            if not text:
                continue
            onset = float(stamp - start)
            if not 0.0 <= onset < duration:
                outside += 1
                continue
            onsets.append(onset)
            descriptions.append(text)
        logger.info("%s: markers from stream %r", path.name, stream.name)
    if outside:
        logger.info("%s: %d marker(s) outside the EEG stream's time span dropped", path.name,
                    outside)
    return mne.Annotations(onset=onsets, duration=[0.0] * len(onsets), description=descriptions)
