"""A live EEG stream from the Lab Streaming Layer: resolve, ring buffer, stall and recovery.

Examples
--------
python -m live.source                        # list the LSL streams this machine can see
python -m live.source --name neuropaint-sim --seconds 10   # read one, a status line a second

In code::

    with LSLSource("neuropaint-sim") as source:      # type "EEG" by default
        data, times = source.read()                  # (n_channels, n) volts, (n,) local_clock

:class:`LSLSource` resolves one stream by name, type and/or source_id (every criterion given
must match), reads its metadata (channel labels, units, types and sensor positions from
``desc/channels/channel``, the XDF/LSL convention) and starts a daemon thread that moves
samples from the liblsl inlet into a fixed-size ring buffer. The consumer (the render
engine) never waits for that thread: :meth:`LSLSource.read` and :meth:`LSLSource.get_data`
take the lock only to copy.

A channel's position is its ``location`` element, ``X``, ``Y``, ``Z`` in millimetres (the
XDF meta-data convention for EEG), taken here as MNE's head frame (+X right, +Y nose, +Z up;
the frame ``live.simulate`` writes, from the recording's own positions). They arrive in
metres in :attr:`StreamMeta.positions`, and :meth:`StreamMeta.info` hands them back as an
``mne.Info`` with a montage, so channels whose labels are not standard (``EEG 001``...) can
still be placed on the head by :class:`eeg.online.OnlineProcessor`.

The reader thread never waits for a full buffer either. liblsl's ``pull_chunk`` into a
buffer of ``max_samples`` waits for ``max_samples`` to arrive (or the timeout), the known
trap (liblsl issue sccn/liblsl#96, and the reason pylsl 1.18 grew ``min_samples``). Here
every ``pull_chunk`` has ``timeout=0`` (take what is there), and when nothing is there the
thread waits in ``pull_sample(timeout=0.05)``, which returns as soon as one sample arrives.

Timestamps are liblsl's, post-processed by liblsl (clock synchronisation to this machine's
``local_clock()``, de-jittering by a recursive least-squares line through the sample
indices, and monotonic order), so ``local_clock() - times[-1]`` is the age of the newest
sample. For an outlet on this machine (same host name) the clock offset is zero by
construction and liblsl's synchronisation, which probes for ~0.6 s before the first sample
comes out, is left off; it is switched on if the stamps turn out to be more than 10 s off.
After every stall the de-jitter is restarted: its line has a 90 s half-life, and samples that
resume after a gap would otherwise be stamped as if there had been none (measured: 0.3 s
early, then 0.35 s in the future, after a 1.5 s pause). Samples are converted to volts from each channel's unit (µV/microvolts: 1e-6,
millivolts: 1e-3, volts: 1; no or unknown unit: microvolts, LSL's convention for EEG, with a
warning); integer formats are read in the stream's units too. A unit the stream states wrongly
is caught here, as :func:`eeg.io.read_raw` catches it in files: with ``units='auto'`` the
first half second of EEG that is not flat is measured once, and an amplitude that cannot be
EEG in the stated unit (microvolt numbers labelled volts: a median channel std of ~20 "V") is
rescaled by the power of 1000 that makes it plausible, with one warning (:attr:`units_note`).
The check is in the source, not in the online processor, so that every consumer (the engine,
a session recording, ``live.calibrate``) gets the same volts, and none of them sees the wrong
scale: :meth:`LSLSource.read` holds the first half second back until it is measured (a causal
filter fed a million-fold amplitude for half a second rings for seconds). An explicit
``units`` ('V', 'uV', 'mV') overrides the stream's stated unit for its EEG channels.

When the outlet stops (a headset switched off, a simulator killed) the source keeps
running: after ``stall_after`` seconds without a sample it logs one warning, ``stalled``
turns true, and it looks for the stream to come back. liblsl's own inlet recovery is not
used: it re-resolves only streams that have a source_id, waits at least 1 s in its resolve
(measured 0.6-1.35 s after the outlet returns) and its watchdog fires only after 15 s of
silence. Instead, while stalled, the reader thread keeps resolving with the stream's name,
type, channel count, format and source_id (each look lasts up to 0.65 s, just past liblsl's
unicast wave at 0.5 s); when a different outlet (a new uid) matches, it opens a new inlet on
it. Measured by ``benchmarks/live_source_speed.py``: samples flow again 0.05-0.5 s after the
outlet returns. A stream without a source_id can only be found again by name, type, channel
count and format, so another device with those could be taken: the stall warning says so.
"""

from __future__ import annotations

import argparse
import logging
import math
import socket
import threading
import time
import warnings
from collections.abc import Sequence
from typing import Any

import mne
import numpy as np
import pylsl
from pydantic import BaseModel, ConfigDict, Field
from pylsl.info import XMLElement
from pylsl.lib import lib as _liblsl
from pylsl.util import LostError
from pylsl.util import TimeoutError as LSLTimeoutError

from eeg.io import (
    LSL_CHANNEL_TYPES,
    UNITS_CHOICES,
    RecordingWarning,
    describe_scale,
    unique_names,
    unit_mixup_factor,
    volts_per_unit,
)
from neuropaint.logs import run_cli, setup_logging
from neuropaint.validate import NeuropaintError, check_positive

logger = logging.getLogger(__name__)

__all__ = ["LSLSource", "StreamMeta", "StreamWarning", "list_streams", "main"]

# liblsl's timestamp post-processing: clock sync to local_clock, de-jitter, monotonic order.
# (proc_threadsafe is not needed: one thread pulls.)
PROCESSING_FLAGS = pylsl.proc_clocksync | pylsl.proc_dejitter | pylsl.proc_monotonize

_FORMAT_NAMES = {
    pylsl.cf_float32: "float32",
    pylsl.cf_double64: "double64",
    pylsl.cf_string: "string",
    pylsl.cf_int32: "int32",
    pylsl.cf_int16: "int16",
    pylsl.cf_int8: "int8",
    pylsl.cf_int64: "int64",
}
_FORMAT_DTYPES = {
    "float32": np.float32,
    "double64": np.float64,
    "int32": np.int32,
    "int16": np.int16,
    "int8": np.int8,
    "int64": np.int64,
}
_UNITS_CHECK_S = 0.5  # Seconds of non-flat EEG measured once for a unit mix-up.
_FLAT_STD = 1e-12  # V; below this median channel std the signal is flat, not measurable.
_WAIT = 0.05  # Seconds the reader waits for the first sample of a chunk (pull_sample).
_PULL_SECONDS = 0.25  # Largest chunk taken from liblsl at once, in seconds of data.
_ERROR_PAUSE = 0.2  # Seconds the reader rests after an unexpected error.
_CONNECT_TIMEOUT = 1.0  # Seconds to connect to a stream that came back.
# A resolve is a multicast burst, then a unicast burst to the known peers after liblsl's
# MulticastMinRTT (0.5 s by default), then nothing until 1.25 s. On one machine the multicast
# query reaches one outlet only (the one that bound the query port last: a simulator's marker
# outlet hides its EEG outlet), the others answer the unicast burst. So each look for a
# returning stream lasts just past the unicast burst (it ends early when one answers).
_LOOK_WAIT = 0.65
_LOOK_EVERY = 0.05  # While stalled: pause between looks.
_AMBIGUITY_WAIT = 0.8  # At open, by type only: how long a second match may take to answer.
_SAME_CLOCK_TOLERANCE = 10.0  # Seconds: a "same machine" stream further off is not.
_LIST_WAIT = 0.5  # How long an error message waits to list the visible streams.
_MAX_LISTED = 20  # Streams named in an error message.


class StreamWarning(RecordingWarning):
    """A live stream's metadata is incomplete (no labels, no units): it is read anyway."""


class StreamMeta(BaseModel):
    """What a stream says about itself (its LSL stream info), as the source reads it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="The stream's name.")
    type: str = Field(description="Content type, 'EEG' for EEG (LSL's convention).")
    source_id: str = Field(description="Unique id of the device or program; '' when none "
                           "(then the stream is found again by name/type only).")
    sfreq: float = Field(description="Nominal sampling rate in Hz (0: irregular).")
    ch_names: list[str] = Field(description="Channel labels (made unique as MNE does; "
                                "Ch1..ChN when the stream gives none).")
    units: list[str] = Field(description="Each channel's unit as the stream gives it ('' "
                             "when none; read as microvolts).")
    ch_types: list[str] = Field(description="Each channel's MNE type from the stream's "
                                "channel type ('eeg' when none is given).")
    channel_format: str = Field(description="Sample format on the wire: 'float32', "
                                "'double64', 'int16', 'int32', 'int8', 'int64' or 'string'.")
    generic_labels: bool = Field(description="True when the stream had no channel labels "
                                 "and Ch1..ChN were made up.")
    hostname: str = Field(description="Machine the outlet runs on.")
    positions: dict[str, list[float]] = Field(
        default_factory=dict, description="Sensor position [x, y, z] in metres (MNE head "
        "frame) by channel label, for the channels whose description has a location; empty "
        "when none has.")

    @property
    def n_channels(self) -> int:
        return len(self.ch_names)

    def info(self) -> mne.Info:
        """An ``mne.Info`` of the stream: labels, types, rate, and the sensor positions as
        its montage (channels without one are left unplaced)."""
        info = mne.create_info(list(self.ch_names), self.sfreq, list(self.ch_types),
                               verbose="error")
        if self.positions:
            montage = mne.channels.make_dig_montage(ch_pos=dict(self.positions),
                                                    coord_frame="head")
            info.set_montage(montage, on_missing="ignore", verbose="error")
        return info

    def describe(self) -> str:
        """One line for listings and messages: ``'NAME' (EEG, 32 ch at 256 Hz, ...)``."""
        return _describe(self.name, self.type, self.n_channels, self.sfreq, self.source_id,
                         self.hostname)


def list_streams(timeout: float = 1.0) -> list[StreamMeta]:
    """The LSL streams visible from this machine, with their full metadata.

    Parameters
    ----------
    timeout : float
        Seconds to look for streams (liblsl warns that under 0.5 s some may be missed).
        Reading each stream's channel description takes up to this long again.

    Returns
    -------
    streams : list of StreamMeta
        Sorted by name. A stream whose description could not be fetched in time is listed
        with what the resolver knows (no labels).
    """
    timeout = check_positive(timeout, "timeout")
    infos = _unique_infos(pylsl.resolve_streams(wait_time=timeout))
    metas = []
    for info in infos:
        full = info
        if info.channel_format() != pylsl.cf_string:
            try:
                full = pylsl.StreamInlet(info, recover=False).info(timeout=timeout)
            except (LSLTimeoutError, LostError):
                logger.debug("no description from %s in %g s", info.name(), timeout)
        metas.append(_parse_meta(full))
    return sorted(metas, key=lambda m: (m.name, m.type, m.source_id))


class LSLSource:
    """One LSL stream read into a ring buffer by a daemon thread.

    Parameters
    ----------
    name : str | None
        The stream's name. None: any name.
    type : str | None
        The stream's content type (default ``'EEG'``). None: any type.
    source_id : str | None
        The stream's source_id. None: any.
    timeout : float
        Seconds :meth:`open` waits for a matching stream.
    buffer_seconds : float
        Size of the ring buffer. A consumer that falls further behind loses the oldest
        samples (counted in :attr:`dropped_samples`); memory never grows.
    stall_after : float
        Seconds without a sample after which the stream counts as stalled (one warning is
        logged, and the source looks for the stream to come back).

    Attributes
    ----------
    meta : StreamMeta
        The stream's metadata (after :meth:`open`).
    reconnects : int
        Recoveries: times samples flowed again after a stall.

    Examples
    --------
    >>> with LSLSource("neuropaint-sim") as source:  # doctest: +SKIP
    ...     data, times = source.get_data(2.0)  # the newest 2 s, volts
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        type: str | None = "EEG",  # LSL's own word for the content type.
        source_id: str | None = None,
        timeout: float = 5.0,
        buffer_seconds: float = 30.0,
        stall_after: float = 1.0,
        units: str = "auto",
    ):
        for value, what in ((name, "name"), (type, "type"), (source_id, "source_id")):
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise NeuropaintError(f"'{what}' must be a non-empty string or None, "
                                      f"got {value!r}.")
        if name is None and type is None and source_id is None:
            raise NeuropaintError("give at least one of 'name', 'type' or 'source_id' to "
                                  "choose a stream.")
        self.name = name
        self.type = type
        self.source_id = source_id
        self.timeout = check_positive(timeout, "timeout")
        self.buffer_seconds = check_positive(buffer_seconds, "buffer_seconds")
        self.stall_after = check_positive(stall_after, "stall_after")
        if units not in UNITS_CHOICES:
            raise NeuropaintError(f"'units' must be one of {', '.join(UNITS_CHOICES)}, "
                                  f"got {units!r}.")
        self.units = units
        self.units_note: str | None = None  # The line saying how the amplitude was rescaled.
        self._units_checked = False  # The unit check is done (or not wanted).
        self._units_from = 0  # Ring position from which the unit check measures.
        self._units_hold = False  # read() gives nothing until the first measurement.
        self.reconnects = 0
        self._meta: StreamMeta | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._inlet: pylsl.StreamInlet | None = None
        self._flags = PROCESSING_FLAGS  # The inlet's timestamp post-processing.
        self._uid = ""
        self._scale = np.ones(0)
        self._data = np.zeros((0, 0))  # Ring buffer, [n_channels, capacity], volts.
        self._times = np.zeros(0)  # Ring buffer, [capacity], local_clock seconds.
        self._pull_buf = np.zeros((0, 0), dtype=np.float32)  # [max_samples, n_channels]
        self._recovery_query = ""  # XPath that finds the stream again after a stall.
        self._n_written = 0  # Samples written since open (the ring position is modulo).
        self._n_read = 0  # Position of the consumer's read().
        self._dropped = 0  # Samples lost to overrun, counted at read().
        self._newest: float | None = None
        self._last_arrival = 0.0  # local_clock() when the newest sample arrived.
        self._stall_reported = False  # The current stall has been reported.
        self._failed_uids: set[str] = set()  # Outlets that could not be connected to.

    # --- life cycle ----------------------------------------------------------------------

    def open(self) -> LSLSource:
        """Resolve the stream, open an inlet and start the reader thread.

        Raises
        ------
        neuropaint.validate.NeuropaintError
            No matching stream within ``timeout`` (the message lists the visible ones),
            several match, the stream has an irregular rate or carries strings, or it
            cannot be connected to.
        """
        if self._thread is not None:
            return self
        info = self._resolve()
        sfreq = info.nominal_srate()
        fmt = _FORMAT_NAMES.get(info.channel_format(), "undefined")
        label = f"stream {info.name()!r}"
        if sfreq <= 0:
            raise NeuropaintError(f"{label} has an irregular sampling rate (nominal_srate 0): "
                                  "the live source needs regularly sampled EEG.")
        if fmt not in _FORMAT_DTYPES:
            raise NeuropaintError(f"{label} carries {fmt} samples; the live source needs a "
                                  "numeric stream (float32, double64 or integers).")
        try:
            inlet, full, flags = self._connect(info, self.timeout)
        except (LSLTimeoutError, LostError) as exc:
            raise NeuropaintError(f"{label} was found but could not be connected to within "
                                  f"{self.timeout:g} s ({exc}).") from None
        meta = _parse_meta(full)
        _warn_metadata(meta)
        self._meta = meta
        self._scale = _volts_per_unit(meta.units)
        eeg = _eeg_rows(meta)
        if self.units == "auto":
            self._units_checked = self._units_hold = False
            self._units_from = 0
            if eeg:
                self._units_hold = True
            else:
                self._units_checked = True
        else:
            self._units_checked = True
            given = volts_per_unit(self.units)
            if not np.allclose(self._scale[eeg], given):
                self.units_note = (f"stream {meta.name!r}: units {self.units} given, the stream "
                                   f"says {', '.join(sorted({meta.units[i] or 'none' for i in eeg}))}")
                logger.warning(self.units_note)
            self._scale[eeg] = given
        capacity = max(1, math.ceil(self.buffer_seconds * sfreq))
        self._data = np.zeros((meta.n_channels, capacity))
        self._times = np.zeros(capacity)
        self._pull_buf = np.zeros((max(2, math.ceil(_PULL_SECONDS * sfreq)), meta.n_channels),
                                  dtype=_FORMAT_DTYPES[fmt])  # [max_samples, n_channels]
        self._n_written = self._n_read = self._dropped = 0
        self._newest = None
        self._last_arrival = pylsl.local_clock()
        self._stall_reported = False
        self._failed_uids = set()
        self.reconnects = 0
        self._inlet = inlet
        self._flags = flags
        self._uid = info.uid()
        self._recovery_query = _query(
            name=meta.name, type=meta.type, source_id=meta.source_id or None,
            channel_count=meta.n_channels, channel_format=fmt,
        )
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"lsl-source:{meta.name}",
                                        daemon=True)
        self._thread.start()
        logger.info("reading %s", meta.describe())
        return self

    def close(self) -> None:
        """Stop the reader thread and drop the inlet. Safe to call twice."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=5.0)  # It drops the inlet on its way out.
        if self._thread.is_alive():
            logger.warning("stream %r: the reader thread is still busy (connecting); it ends "
                           "on its own", self.meta.name)
        self._thread = None

    # MNE-LSL's names for the same thing.
    connect = open
    disconnect = close

    @property
    def connected(self) -> bool:
        """True between :meth:`open` and :meth:`close` (also while stalled)."""
        return self._thread is not None

    def __enter__(self) -> LSLSource:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        what = self._meta.describe() if self._meta else _query(self.name, self.type,
                                                               self.source_id)
        return f"<LSLSource {what}{' open' if self.connected else ''}>"

    # --- consumer side -------------------------------------------------------------------

    @property
    def meta(self) -> StreamMeta:
        if self._meta is None:
            raise NeuropaintError("the LSL source is not open yet: call open() first.")
        return self._meta

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        """Everything that arrived since the previous ``read()``; never blocks.

        Returns
        -------
        data : ndarray, shape (n_channels, n_times)
            Volts, float64.
        times : ndarray, shape (n_times,)
            ``local_clock()`` time of each sample, increasing.
        """
        _ = self.meta  # A clear error before open().
        with self._lock:
            if self._units_hold:  # The first half second is being measured for its unit.
                return self._copy(0, 0)
            end = self._n_written
            start = max(self._n_read, end - len(self._times))
            self._dropped += start - self._n_read
            self._n_read = end
            return self._copy(start, end)

    def get_data(self, winsize: float) -> tuple[np.ndarray, np.ndarray]:
        """The newest ``winsize`` seconds (fewer if not there yet); does not consume.

        Returns
        -------
        data : ndarray, shape (n_channels, n_times)
            Volts, at most ``buffer_seconds`` long.
        times : ndarray, shape (n_times,)
        """
        winsize = check_positive(winsize, "winsize")
        n = round(winsize * self.meta.sfreq)
        with self._lock:
            end = self._n_written
            start = max(0, end - min(n, len(self._times)))
            return self._copy(start, end)

    @property
    def newest_timestamp(self) -> float | None:
        """``local_clock()`` time of the newest sample received (None before the first)."""
        return self._newest

    @property
    def stalled(self) -> bool:
        """True when no sample came for more than ``stall_after`` seconds."""
        return self.stalled_for > 0

    @property
    def stalled_for(self) -> float:
        """Seconds since the last sample arrived while stalled; 0 when samples flow."""
        if self._thread is None:
            return 0.0
        silent = pylsl.local_clock() - self._last_arrival
        return silent if silent > self.stall_after else 0.0

    @property
    def dropped_samples(self) -> int:
        """Samples lost because the consumer fell more than ``buffer_seconds`` behind."""
        with self._lock:
            behind = self._n_written - len(self._times) - self._n_read
            return self._dropped + max(0, behind)

    @property
    def n_received(self) -> int:
        """Samples received since :meth:`open`."""
        return self._n_written

    def _copy(self, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        """Samples ``[start, end)`` of the ring (absolute positions), copied; lock held."""
        capacity = len(self._times)
        idx = np.arange(start, end) % capacity
        return self._data[:, idx], self._times[idx]

    # --- reader thread -------------------------------------------------------------------

    def _run(self) -> None:
        next_look = 0.0
        while not self._stop.is_set():
            try:
                if self._inlet is not None:
                    self._pull()
                else:
                    self._stop.wait(_WAIT)
                now = pylsl.local_clock()
                if now - self._last_arrival > self.stall_after:
                    if not self._stall_reported:
                        self._begin_stall()
                    if now >= next_look:
                        self._look_for_stream()
                        next_look = pylsl.local_clock() + _LOOK_EVERY
                else:
                    self._stall_reported = False
            except LostError:
                logger.info("stream %r: the outlet is gone", self.meta.name)
                self._inlet = None
            except Exception:  # Keep the source alive whatever liblsl does; say what it was.
                logger.exception("stream %r: reader error; retrying", self.meta.name)
                self._inlet = None
                self._stop.wait(_ERROR_PAUSE)
        inlet, self._inlet = self._inlet, None  # Only this thread uses the inlet: it drops it.
        if inlet is not None:
            inlet.close_stream()

    def _pull(self) -> None:
        """Move whatever has arrived into the ring; wait up to _WAIT for the first sample."""
        inlet = self._inlet
        buf = self._pull_buf
        _, stamps = inlet.pull_chunk(timeout=0.0, max_samples=len(buf), dest_obj=buf)
        n = len(stamps)
        times = np.asarray(stamps, dtype=np.float64)
        if n == 0:
            sample, stamp = inlet.pull_sample(timeout=_WAIT)
            if sample is None:
                return
            buf[0] = sample
            _, more = inlet.pull_chunk(timeout=0.0, max_samples=len(buf) - 1, dest_obj=buf[1:])
            n = 1 + len(more)
            times = np.concatenate([[stamp], np.asarray(more, dtype=np.float64)])
        if self._check_clock(times):
            self._write(buf[:n], times)

    def _write(self, samples: np.ndarray, times: np.ndarray) -> None:
        """Append ``samples`` [n, n_channels] (stream units) and their times to the ring."""
        volts = samples.T * self._scale[:, np.newaxis]  # [n_channels, n], float64
        capacity = len(self._times)
        if len(times) > capacity:  # A burst larger than the whole ring: keep its end.
            with self._lock:
                self._n_written += len(times) - capacity
            volts = volts[:, -capacity:]
            times = times[-capacity:]
        n = len(times)
        now = pylsl.local_clock()
        if self._newest is not None and times[0] < self._newest:  # A new outlet's clock.
            times = np.maximum(times, self._newest)
        with self._lock:
            first = self._n_written % capacity
            head = min(n, capacity - first)
            self._data[:, first:first + head] = volts[:, :head]
            self._times[first:first + head] = times[:head]
            self._data[:, :n - head] = volts[:, head:]
            self._times[:n - head] = times[head:]
            self._n_written += n
            self._newest = float(times[-1])
            silent = now - self._last_arrival
            self._last_arrival = now
        if not self._units_checked:
            self._check_units()
        if silent > self.stall_after:
            self.reconnects += 1
            logger.warning("stream %r is back after %.2f s without samples (recovery %d)",
                           self.meta.name, silent, self.reconnects)

    def _check_units(self) -> None:
        """Once, on the first half second of EEG that is not flat: rescale a unit mix-up."""
        meta = self.meta
        eeg = _eeg_rows(meta)
        n = max(2, math.ceil(_UNITS_CHECK_S * meta.sfreq))
        with self._lock:
            end = self._n_written
            if end - self._units_from < n:
                return
            data, _ = self._copy(end - min(n, len(self._times)), end)
        with np.errstate(invalid="ignore"):
            stds = np.nanstd(data[eeg], axis=1)  # [n_eeg]
        stds = stds[np.isfinite(stds)]
        amplitude = float(np.median(stds)) if stds.size else 0.0
        if amplitude < _FLAT_STD:  # Electrodes not on yet: measure the next half second.
            self._units_from = end
            with self._lock:
                self._units_hold = False
            return
        self._units_checked = True
        factor = unit_mixup_factor(amplitude)
        with self._lock:  # Samples not read yet are rescaled too.
            self._units_hold = False
            if factor is None:
                return
            self._data[eeg] *= factor
            self._scale[eeg] *= factor
        self.units_note = (
            f"stream {meta.name!r}: EEG amplitude looks like {describe_scale(factor)} (median "
            f"channel std {amplitude:.3g} V over {_UNITS_CHECK_S:g} s; EEG is about 1e-06 to "
            f"1e-03 V): scaled by {factor:g} (LSLSource units='auto')")
        logger.warning(self.units_note)

    def _begin_stall(self) -> None:
        """Warn once per stall, and reset the de-jitter."""
        self._stall_reported = True
        self._failed_uids.clear()
        if self._inlet is not None:
            # liblsl's de-jitter fits one straight line through (sample index, time) with a
            # 90 s half-life: samples that resume after a gap would be stamped as if there
            # had been none, seconds too early, for minutes. Switching the flag off and on
            # resets the fit, so the first samples after the stall start a new line.
            self._reset_postprocessing()
        meta = self.meta
        hint = ""
        if not meta.source_id:
            hint = (" (it has no source_id, so it can only be found again by name, type and "
                    "channel count: another stream with those would be taken)")
        logger.warning("stream %r stalled for %.1f s; waiting for it to return%s",
                       meta.name, self.stall_after, hint)

    def _look_for_stream(self) -> None:
        """While stalled: connect to a new outlet of the same stream once one is seen."""
        infos = _unique_infos(pylsl.resolve_bypred(self._recovery_query, 1, _LOOK_WAIT))
        uids = {info.uid() for info in infos}
        if self._inlet is not None and self._uid in uids:
            return  # The same outlet is still there, only silent: keep waiting for it.
        fresh = [info for info in infos if info.uid() not in self._failed_uids]
        # The old outlet itself only when nothing else is there (its connection broke).
        candidates = [info for info in fresh if info.uid() != self._uid] or fresh
        if len(candidates) != 1:
            return  # Nothing yet, or several that match: wait for one.
        info = candidates[0]
        try:
            inlet, full, flags = self._connect(info, _CONNECT_TIMEOUT)
        except (LSLTimeoutError, LostError) as exc:
            logger.debug("stream %r: connecting to outlet %s failed (%r)", info.name(),
                         info.uid(), exc)
            self._failed_uids.add(info.uid())
            return
        new = _parse_meta(full)
        if new.ch_names != self.meta.ch_names:
            logger.warning("stream %r came back with other channel labels (%s); meta keeps "
                           "the labels it was opened with", new.name, ", ".join(new.ch_names))
        old, self._inlet = self._inlet, inlet
        self._flags = flags
        self._uid = info.uid()
        if old is not None:
            old.close_stream()
        logger.info("stream %r: connected to its new outlet on %s", new.name, new.hostname)

    # --- resolving -----------------------------------------------------------------------

    def _resolve(self) -> pylsl.StreamInfo:
        query = _query(self.name, self.type, self.source_id)
        infos = _unique_infos(pylsl.resolve_bypred(query, 1, self.timeout))
        if len(infos) == 1 and self.name is None and self.source_id is None:
            # By type alone two devices may well match; liblsl returns at the first answer,
            # so give a second one time to answer. (A name is taken to be unique.)
            infos = _unique_infos(pylsl.resolve_bypred(query, 2, _AMBIGUITY_WAIT)) or infos
        if not infos:
            visible = _unique_infos(pylsl.resolve_streams(wait_time=_LIST_WAIT))
            raise NeuropaintError(f"no LSL stream with {_criteria(self)} found within "
                                  f"{self.timeout:g} s; visible: {_listing(visible)}.")
        if len(infos) > 1:
            raise NeuropaintError(f"{len(infos)} LSL streams match {_criteria(self)}: "
                                  f"{_listing(infos)}; choose one with name or source_id.")
        return infos[0]

    def _connect(self, info: pylsl.StreamInfo,
                 timeout: float) -> tuple[pylsl.StreamInlet, pylsl.StreamInfo, int]:
        """An open inlet on ``info``, the full stream info and the post-processing flags.

        An outlet on this machine stamps its samples with this machine's ``local_clock()``:
        its clock offset is zero, so liblsl's clock synchronisation, which spends ~0.6 s on
        probes before the first sample comes out, is left off (and switched on after all if
        the time stamps say otherwise: two machines can share a host name).
        """
        flags = PROCESSING_FLAGS
        if info.hostname() not in ("", "localhost") and info.hostname() == socket.gethostname():
            flags &= ~pylsl.proc_clocksync
        inlet = pylsl.StreamInlet(info, max_buflen=max(1, math.ceil(self.buffer_seconds)),
                                  recover=False, processing_flags=flags)
        full = inlet.info(timeout=timeout)
        inlet.open_stream(timeout=timeout)
        return inlet, full, flags

    def _reset_postprocessing(self) -> None:
        """Restart liblsl's de-jitter and monotonic filters (setting flags that changed
        resets them), with ``self._flags`` in force afterwards."""
        _liblsl.lsl_set_postprocessing(self._inlet.obj, 0)
        _liblsl.lsl_set_postprocessing(self._inlet.obj, self._flags)

    def _check_clock(self, times: np.ndarray) -> bool:
        """False (and clock sync switched on) when a same-machine stream's stamps are off."""
        if self._flags & pylsl.proc_clocksync:
            return True
        offset = pylsl.local_clock() - times[-1]
        if abs(offset) <= _SAME_CLOCK_TOLERANCE:
            return True
        logger.warning("stream %r says it runs on this machine (%s) but its time stamps are "
                       "%.0f s off; synchronising clocks", self.meta.name,
                       self.meta.hostname, offset)
        self._flags = PROCESSING_FLAGS
        self._reset_postprocessing()
        return False


# --- metadata ----------------------------------------------------------------------------


def _parse_meta(info: pylsl.StreamInfo) -> StreamMeta:
    """StreamMeta from a (full) stream info; desc/channels/channel gives labels, units,
    types and locations."""
    n_channels = info.channel_count()
    entries = []
    locations: list[list[float] | None] = []
    channel = info.desc().child("channels").child("channel")
    while not channel.empty():
        entries.append({key: channel.child_value(key).strip()
                        for key in ("label", "unit", "type")})
        locations.append(_location(channel.child("location")))
        channel = channel.next_sibling("channel")
    if len(entries) != n_channels:
        if entries:
            logger.info("stream %r: desc lists %d channels, the stream has %d; ignoring it",
                        info.name(), len(entries), n_channels)
        entries = [{"label": "", "unit": "", "type": ""} for _ in range(n_channels)]
        locations = [None] * n_channels
    labels = [e["label"] for e in entries]
    generic = not all(labels)
    if generic:
        labels = [label or f"Ch{i + 1}" for i, label in enumerate(labels)]
    ch_types = [LSL_CHANNEL_TYPES.get(e["type"].casefold(), "misc") if e["type"] else "eeg"
                for e in entries]
    ch_names = unique_names(labels)
    positions = {name: pos for name, pos in zip(ch_names, locations, strict=True)
                 if pos is not None}
    if positions:
        logger.info("stream %r: sensor positions for %d of %d channels", info.name(),
                    len(positions), n_channels)
    return StreamMeta(
        name=info.name(),
        type=info.type(),
        source_id=info.source_id(),
        sfreq=info.nominal_srate(),
        ch_names=ch_names,
        units=[e["unit"] for e in entries],
        ch_types=ch_types,
        channel_format=_FORMAT_NAMES.get(info.channel_format(), "undefined"),
        generic_labels=generic,
        hostname=info.hostname(),
        positions=positions,
    )


def _location(element: XMLElement) -> list[float] | None:
    """A ``location`` element's X, Y, Z (millimetres) in metres; None when it is missing,
    incomplete, not numeric, or all zero (how some devices say "unknown")."""
    if element.empty():
        return None
    try:
        pos = [float(element.child_value(axis)) * 1e-3 for axis in ("X", "Y", "Z")]
    except ValueError:
        return None
    if not all(math.isfinite(v) for v in pos) or not any(pos):
        return None
    return pos


def _eeg_rows(meta: StreamMeta) -> list[int]:
    return [i for i, kind in enumerate(meta.ch_types) if kind == "eeg"]


def _volts_per_unit(units: Sequence[str]) -> np.ndarray:
    """Scale from each channel's unit to volts; unknown or missing: microvolts."""
    return np.array([volts_per_unit(u) or 1e-6 for u in units])


def _warn_metadata(meta: StreamMeta) -> None:
    if meta.generic_labels:
        warnings.warn(f"stream {meta.name!r} has no channel labels; calling them "
                      f"Ch1..Ch{meta.n_channels} (no channel can be matched by position "
                      "on the head: region features fall back to the whole head).",
                      StreamWarning, stacklevel=3)
    unknown = sorted({u or "none given" for u, t in zip(meta.units, meta.ch_types, strict=True)
                      if t == "eeg" and volts_per_unit(u) is None})
    if unknown:
        warnings.warn(f"stream {meta.name!r} gives no voltage unit for its EEG channels "
                      f"({', '.join(unknown)}); assuming microvolts, the LSL convention.",
                      StreamWarning, stacklevel=3)


# --- resolver helpers --------------------------------------------------------------------


def _literal(value: str) -> str:
    """``value`` as an XPath 1.0 string literal (which has no escapes)."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    parts = ", \"'\", ".join(f"'{part}'" for part in value.split("'"))
    return f"concat({parts})"


def _query(name: str | None = None, type: str | None = None,
           source_id: str | None = None, **more: Any) -> str:
    """An XPath predicate over stream infos; every field given must match."""
    fields = {"name": name, "type": type, "source_id": source_id, **more}
    terms = []
    for key, value in fields.items():
        if value is None:
            continue
        terms.append(f"{key}={value}" if isinstance(value, int) else f"{key}={_literal(value)}")
    return " and ".join(terms)


def _criteria(source: LSLSource) -> str:
    return _query(source.name, source.type, source.source_id).replace(" and ", ", ")


def _unique_infos(infos: Sequence[pylsl.StreamInfo]) -> list[pylsl.StreamInfo]:
    """Drop repeats of one outlet (liblsl can report one stream once per protocol)."""
    seen: dict[str, pylsl.StreamInfo] = {}
    for info in infos:
        seen.setdefault(info.uid(), info)
    return list(seen.values())


def _describe(name: str, type: str, n_channels: int, sfreq: float,
              source_id: str, hostname: str) -> str:
    rate = f"{sfreq:g} Hz" if sfreq > 0 else "irregular rate"
    sid = f"source_id {source_id!r}" if source_id else "no source_id"
    return f"{name!r} ({type or 'no type'}, {n_channels} ch at {rate}, {sid}, on {hostname})"


def _listing(infos: Sequence[pylsl.StreamInfo]) -> str:
    if not infos:
        return "none (is the device's LSL app running, on this network?)"
    described = sorted(_describe(i.name(), i.type(), i.channel_count(), i.nominal_srate(),
                                 i.source_id(), i.hostname()) for i in infos)
    more = len(described) - _MAX_LISTED
    return "; ".join(described[:_MAX_LISTED]) + (f"; and {more} more" if more > 0 else "")


# --- command line ------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: list the visible streams, or read one and print its status."""
    parser = argparse.ArgumentParser(
        prog="python -m live.source",
        description="List the LSL streams this machine can see, or read one EEG stream and "
        "print a status line every second (samples, rate, age of the newest sample, stalls).",
    )
    parser.add_argument("--name", help="read the stream with this name")
    parser.add_argument("--type", default=None, help="... or of this type (e.g. EEG)")
    parser.add_argument("--source-id", help="... or with this source_id")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="how long to read (default 10)")
    parser.add_argument("--timeout", type=float, default=2.0,
                        help="seconds to look for streams (default 2)")
    parser.add_argument("--units", choices=UNITS_CHOICES, default="auto",
                        help="unit of the stream's EEG numbers: auto trusts its metadata unless "
                        "the first half second cannot be EEG in that unit, then rescales and "
                        "says so; V, uV or mV override it (default: auto)")
    args = parser.parse_args(argv)
    setup_logging("INFO")
    if args.name is None and args.type is None and args.source_id is None:
        streams = list_streams(args.timeout)
        for meta in streams:
            print(meta.describe() + ": " + ", ".join(meta.ch_names))
        if not streams:
            print("no LSL streams visible")
        return 0
    seconds = check_positive(args.seconds, "seconds")
    with LSLSource(args.name, type=args.type, source_id=args.source_id,
                   timeout=args.timeout, units=args.units) as source:
        print(source.meta.describe(), flush=True)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(1.0)
            data, times = source.read()
            age = pylsl.local_clock() - times[-1] if len(times) else float("nan")
            rms = float(np.sqrt(np.nanmean(data**2))) * 1e6 if data.size else float("nan")
            print(f"{data.shape[1]} samples, age {age * 1e3:.0f} ms, stalled "
                  f"{source.stalled_for:.1f} s, recoveries {source.reconnects}, dropped "
                  f"{source.dropped_samples}, rms {rms:.3g} µV", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
