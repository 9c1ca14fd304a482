"""The ``.npeeg`` file: EEG written sample by sample as it streams, readable while it grows.

A live session (``live.render --record``) has to be written incrementally, so that killing the
process loses at most the last second; EDF/BDF/FIF want their size or their end known, so a
live session keeps its EEG in this small format instead, and :func:`eeg.io.read_raw` reads it
like any other recording (``read_raw("session/eeg.npeeg")``).

Layout: the 8 bytes ``NPEEG1\\n\\0``, a little-endian uint32 header length, a UTF-8 JSON header
(``ch_names``, ``sfreq``, ``units`` = "V", ``clock``, free ``meta``, and ``positions`` when the
stream gave sensor positions), then records of one float64 timestamp and ``n_channels``
float32 samples in volts. A record cut short by a crash is ignored on reading. Timestamps are
kept (LSL's clock of the recording machine); a jump between successive samples longer than
:data:`GAP_S` becomes a ``BAD_gap`` annotation (the stream stalled), so features across it
are not trusted.

``positions`` maps a channel label to its sensor position ``[x, y, z]`` in metres, MNE's head
frame (+x right, +y nose, +z up), for the channels that have one (a stream's
``channels/channel/location``, see :mod:`live.source`); the reader gives them back as the
Raw's montage, so channels with non-standard labels can still be placed on the head.

Labelled spans (the blocks of a guided calibration, ``python -m live.calibrate``) go into a
small CSV beside the file, ``eeg.npeeg`` -> ``eeg.annotations.csv`` (:func:`annotations_path`):
a header line ``lsl_time,duration,description``, then one line per span, appended and flushed
as each span ends. Onsets are on the samples' own clock (LSL time), so a writer never needs to
know where the recording starts; the reader places each span on the Raw's time axis by the
first and last sample inside it (a stall inside a span shortens it, it does not shift it) and
leaves out a span that holds no sample, and a last line cut short by a crash.
"""

from __future__ import annotations

import csv
import io
import json
import math
import struct
from pathlib import Path

import mne
import numpy as np

from neuropaint.validate import NeuropaintError

__all__ = ["ANNOTATION_COLUMNS", "GAP_S", "MAGIC", "NpeegWriter", "annotations_path",
           "read_npeeg", "record_dtype"]

MAGIC = b"NPEEG1\n\0"
GAP_S = 0.25  # A jump between successive timestamps longer than this is a gap.
_MAX_HEADER = 1 << 20
ANNOTATION_COLUMNS = ("lsl_time", "duration", "description")


def annotations_path(path: str | Path) -> Path:
    """The labelled spans of a ``.npeeg`` file: ``eeg.npeeg`` -> ``eeg.annotations.csv``."""
    return Path(path).with_suffix(".annotations.csv")


def record_dtype(n_channels: int) -> np.dtype:
    """One sample: ``t`` (float64 seconds) and ``x`` (float32 volts per channel)."""
    return np.dtype([("t", "<f8"), ("x", "<f4", (n_channels,))])


class NpeegWriter:
    """Append samples to a ``.npeeg`` file; :meth:`flush` makes them safe from a process kill.

    Parameters
    ----------
    path : str | Path
        The file (created; an existing file is refused).
    ch_names : list of str
    sfreq : float
        Nominal sampling rate in Hz.
    meta : dict | None
        Anything JSON-able to keep in the header (stream name, source_id, ...).
    positions : dict | None
        Sensor positions by channel label, ``[x, y, z]`` in metres (MNE head frame), for the
        channels that have one; None or empty: none.
    """

    def __init__(self, path: str | Path, ch_names: list[str], sfreq: float, *,
                 meta: dict | None = None, positions: dict | None = None):
        self.path = Path(path)
        self.ch_names = list(ch_names)
        if not self.ch_names or len(set(self.ch_names)) != len(self.ch_names):
            raise NeuropaintError("a .npeeg file needs unique channel names.")
        if not sfreq > 0:
            raise NeuropaintError(f"'sfreq' must be > 0, got {sfreq!r}.")
        self.dtype = record_dtype(len(self.ch_names))
        fields = {"ch_names": self.ch_names, "sfreq": float(sfreq), "units": "V",
                  "clock": "lsl", "meta": meta or {}}
        if positions:
            fields["positions"] = _check_positions(positions, self.ch_names)
        header = json.dumps(fields).encode()
        if annotations_path(self.path).exists():
            raise NeuropaintError(f"{annotations_path(self.path)} already exists; it would label "
                                  f"the new recording (nothing was overwritten).")
        self._fh = open(self.path, "xb")
        self._fh.write(MAGIC + struct.pack("<I", len(header)) + header)
        self._fh.flush()
        self._annotations = None  # Opened at the first annotate().
        self.n_samples = 0

    def append(self, data: np.ndarray, times: np.ndarray) -> None:
        """Samples ``(n_channels, n)`` in volts with their timestamps ``(n,)``."""
        data = np.asarray(data)
        times = np.asarray(times, dtype=np.float64)
        if data.ndim != 2 or data.shape != (len(self.ch_names), len(times)):
            raise NeuropaintError(f"expected data of shape ({len(self.ch_names)}, {len(times)}),"
                                  f" got {data.shape}.")
        records = np.empty(len(times), dtype=self.dtype)
        records["t"] = times
        records["x"] = data.T
        self._fh.write(records.tobytes())
        self.n_samples += len(times)

    def annotate(self, lsl_time: float, duration: float, description: str) -> None:
        """Label the span ``[lsl_time, lsl_time + duration)`` (seconds on the samples' clock).

        Written and flushed at once, into :func:`annotations_path`; ``read_npeeg`` turns it
        into an annotation of the Raw. The span may reach beyond the samples written so far.
        """
        if not (isinstance(lsl_time, int | float) and math.isfinite(lsl_time)):
            raise NeuropaintError(f"'lsl_time' must be a finite number, got {lsl_time!r}.")
        if not (isinstance(duration, int | float) and math.isfinite(duration)
                and duration >= 0):
            raise NeuropaintError(f"'duration' must be a non-negative number, got "
                                  f"{duration!r}.")
        if not isinstance(description, str) or not description.strip() or any(
                c in description for c in "\r\n"):
            raise NeuropaintError(f"'description' must be a non-empty one-line string, got "
                                  f"{description!r}.")
        if self._annotations is None:
            self._annotations = open(annotations_path(self.path), "x", newline="")
            csv.writer(self._annotations, lineterminator="\n").writerow(ANNOTATION_COLUMNS)
        csv.writer(self._annotations, lineterminator="\n").writerow(
            [f"{float(lsl_time):.6f}", f"{float(duration):.6f}", description])
        self._annotations.flush()

    def flush(self) -> None:
        """Hand what was appended to the operating system (survives a killed process)."""
        self._fh.flush()

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.flush()
            self._fh.close()
        if self._annotations is not None and not self._annotations.closed:
            self._annotations.close()


def _check_positions(positions: dict, ch_names: list[str]) -> dict[str, list[float]]:
    """``positions`` as JSON-able lists of 3 finite floats, for known channels only."""
    checked = {}
    for name, pos in positions.items():
        if name not in ch_names:
            raise NeuropaintError(f"'positions' names {name!r}, which is not a channel.")
        values = np.asarray(pos, dtype=float)
        if values.shape != (3,) or not np.all(np.isfinite(values)):
            raise NeuropaintError(f"'positions' of {name!r} must be 3 finite numbers (x, y, z "
                                  f"in metres), got {pos!r}.")
        checked[str(name)] = [float(v) for v in values]
    return checked


def _read_header(fh, path: Path) -> dict:
    magic = fh.read(len(MAGIC))
    if magic != MAGIC:
        raise NeuropaintError(f"{path} is not a .npeeg file (wrong magic bytes).")
    raw_len = fh.read(4)
    if len(raw_len) != 4:
        raise NeuropaintError(f"{path} is truncated inside its header.")
    (length,) = struct.unpack("<I", raw_len)
    if length > _MAX_HEADER:
        raise NeuropaintError(f"{path} has an implausible header length ({length} bytes).")
    try:
        header = json.loads(fh.read(length).decode())
        header["ch_names"] = [str(c) for c in header["ch_names"]]
        header["sfreq"] = float(header["sfreq"])
        header["positions"] = {str(name): [float(v) for v in pos]
                               for name, pos in (header.get("positions") or {}).items()}
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
        raise NeuropaintError(f"{path} has a damaged header.") from None
    return header


def read_npeeg(path: str | Path, *, verbose=None) -> mne.io.RawArray:
    """A ``.npeeg`` file as an MNE Raw (volts; ``BAD_gap`` where the stream stalled, the
    labelled spans of :func:`annotations_path` when that file exists, and the sensor positions
    of the header as its montage).

    The Raw's ``info['description']`` holds the first sample's timestamp as
    ``"lsl_t0=<seconds>"``; ``raw.times + t0`` are the samples' own clock.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        header = _read_header(fh, path)
        body = fh.read()
    ch_names, sfreq = header["ch_names"], header["sfreq"]
    dtype = record_dtype(len(ch_names))
    n = len(body) // dtype.itemsize  # a record cut short by a crash is left out
    if n == 0:
        raise NeuropaintError(f"{path} holds no samples.")
    records = np.frombuffer(body[: n * dtype.itemsize], dtype=dtype)
    times = records["t"].astype(np.float64)
    data = records["x"].T.astype(np.float64)
    info = mne.create_info(ch_names, sfreq, ch_types="eeg", verbose=verbose)
    info["description"] = f"lsl_t0={float(times[0])!r}"
    raw = mne.io.RawArray(data, info, verbose=verbose)
    positions = {name: pos for name, pos in header["positions"].items()
                 if name in ch_names and len(pos) == 3}
    if positions:
        montage = mne.channels.make_dig_montage(ch_pos=positions, coord_frame="head")
        raw.set_montage(montage, on_missing="ignore", verbose="error")
    jumps = np.flatnonzero(np.diff(times) > GAP_S)
    onsets = list((jumps + 1) / sfreq)
    durations = [1.0 / sfreq] * len(jumps)
    descriptions = ["BAD_gap"] * len(jumps)
    for start, stop, description in _read_spans(annotations_path(path), times):
        onsets.append(start / sfreq)
        durations.append((stop - start) / sfreq)
        descriptions.append(description)
    if onsets:
        raw.set_annotations(mne.Annotations(onsets, durations, descriptions))
    return raw


def _read_spans(path: Path, times: np.ndarray) -> list[tuple[int, int, str]]:
    """``(first sample, end sample, description)`` of each labelled span holding samples."""
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    if not text.endswith("\n"):  # The last line was cut short by a crash: leave it out.
        text = text[: text.rfind("\n") + 1]
    spans = []
    for row in csv.DictReader(io.StringIO(text)):
        try:
            onset, duration = float(row["lsl_time"]), float(row["duration"])
            description = row["description"]
        except (KeyError, TypeError, ValueError):
            raise NeuropaintError(f"{path} has a damaged line: {row!r}.") from None
        start, stop = np.searchsorted(times, [onset, onset + duration])
        if stop > start and description:
            spans.append((int(start), int(stop), description))
    return spans
