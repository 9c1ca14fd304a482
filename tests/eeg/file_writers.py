"""Writers for EEG file formats that no installed package writes, so tests can read real files.

- XDF 1.0, the Lab Streaming Layer's container, per its specification
  (https://github.com/sccn/xdf/wiki/Specifications): the magic ``XDF:``, then chunks of
  ``[NumLengthBytes][Length][Tag][Content]``; tag 1 FileHeader, 2 StreamHeader, 3 Samples,
  4 ClockOffset, 5 Boundary, 6 StreamFooter. All numbers little-endian.
- GDF 2.20, per Schlögl, "GDF - A general dataformat for biosignals" (2006, arXiv
  cs/0608052): a 256-byte fixed header, 256 bytes of variable header per channel, data
  records, and an event table (mode 1).

Test helpers only: small, unoptimised, and strict about their inputs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import struct
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

# ---------------------------------------------------------------------------------------------
# XDF
# ---------------------------------------------------------------------------------------------

_XDF_DTYPES = {
    "int8": "<i1",
    "int16": "<i2",
    "int32": "<i4",
    "int64": "<i8",
    "float32": "<f4",
    "double64": "<f8",
}
# The Boundary chunk's fixed 16-byte signature (a UUID), from the specification.
_BOUNDARY = bytes.fromhex("43a546dccbf5410fb30ed5467383cbe4")


@dataclasses.dataclass
class XdfStream:
    """One LSL stream to write into an XDF file."""

    name: str  # Stream name, as an LSL outlet declares it.
    type: str  # Content type ("EEG", "Markers", ...).
    channel_format: str  # One of int8, int16, int32, int64, float32, double64, string.
    nominal_srate: float  # Declared rate in Hz; 0 for irregular streams such as markers.
    time_stamps: np.ndarray  # shape (n_samples,), seconds on this stream's clock.
    time_series: np.ndarray | list  # shape (n_samples, n_channels); list of lists of str.
    channel_labels: list[str] | None = None  # desc/channels/channel/label; None: no desc.
    channel_units: list[str] | None = None  # desc/channels/channel/unit.
    channel_types: list[str] | None = None  # desc/channels/channel/type.
    channel_locations: list[tuple[float, float, float]] | None = None  # .../location X Y Z, mm
    # (collection time on this stream's clock, offset to the recorder's clock), in seconds.
    clock_offsets: list[tuple[float, float]] = dataclasses.field(default_factory=list)
    chunk_size: int = 32  # Samples per Samples chunk.

    @property
    def n_channels(self) -> int:
        if self.channel_format == "string":
            return len(self.time_series[0]) if len(self.time_series) else 1
        return int(np.asarray(self.time_series).shape[1])


def _varlen(value: int) -> bytes:
    """A variable-length integer: one byte giving the width (1, 4 or 8), then the value."""
    if value < 2**8:
        return b"\x01" + struct.pack("<B", value)
    if value < 2**32:
        return b"\x04" + struct.pack("<I", value)
    return b"\x08" + struct.pack("<Q", value)


def _chunk(tag: int, content: bytes) -> bytes:
    body = struct.pack("<H", tag) + content
    return _varlen(len(body)) + body


def _xml_element(tag: str, text: object) -> str:
    return f"<{tag}>{escape(str(text))}</{tag}>"


def _stream_header(stream: XdfStream, stream_id: int) -> str:
    fields = [
        _xml_element("name", stream.name),
        _xml_element("type", stream.type),
        _xml_element("channel_count", stream.n_channels),
        _xml_element("nominal_srate", repr(float(stream.nominal_srate))),
        _xml_element("channel_format", stream.channel_format),
        _xml_element("source_id", f"test-{stream_id}"),
        _xml_element("version", "1.1000000000000001"),
        _xml_element("created_at", repr(float(stream.time_stamps[0]) - 1.0)),
        _xml_element("uid", f"00000000-0000-0000-0000-{stream_id:012d}"),
        _xml_element("session_id", "default"),
        _xml_element("hostname", "localhost"),
    ]
    channels = ""
    if stream.channel_labels is not None:
        parts = []
        for i, label in enumerate(stream.channel_labels):
            inner = _xml_element("label", label)
            if stream.channel_units is not None:
                inner += _xml_element("unit", stream.channel_units[i])
            if stream.channel_types is not None:
                inner += _xml_element("type", stream.channel_types[i])
            if stream.channel_locations is not None:
                inner += "<location>" + "".join(
                    _xml_element(axis, f"{value:.4f}") for axis, value in
                    zip("XYZ", stream.channel_locations[i], strict=True)) + "</location>"
            parts.append(f"<channel>{inner}</channel>")
        channels = "<channels>" + "".join(parts) + "</channels>"
    desc = f"<desc>{channels}</desc>" if channels else "<desc />"
    return '<?xml version="1.0"?><info>' + "".join(fields) + desc + "</info>"


def _samples(stream: XdfStream, start: int, stop: int) -> bytes:
    out = [_varlen(stop - start)]
    if stream.channel_format == "string":
        for k in range(start, stop):
            out.append(b"\x08" + struct.pack("<d", stream.time_stamps[k]))
            for value in stream.time_series[k]:
                raw = str(value).encode("utf-8")
                out.append(_varlen(len(raw)) + raw)
    else:
        values = np.asarray(stream.time_series).astype(_XDF_DTYPES[stream.channel_format])
        for k in range(start, stop):
            # Every sample carries its time stamp (TimeStampBytes 8), none is deduced.
            out.append(b"\x08" + struct.pack("<d", stream.time_stamps[k]) + values[k].tobytes())
    return b"".join(out)


def _stream_footer(stream: XdfStream) -> str:
    offsets = "".join(
        f"<offset>{_xml_element('time', repr(t))}{_xml_element('value', repr(v))}</offset>"
        for t, v in stream.clock_offsets
    )
    return (
        '<?xml version="1.0"?><info>'
        + _xml_element("first_timestamp", repr(float(stream.time_stamps[0])))
        + _xml_element("last_timestamp", repr(float(stream.time_stamps[-1])))
        + _xml_element("sample_count", len(stream.time_stamps))
        + f"<clock_offsets>{offsets}</clock_offsets></info>"
    )


def write_xdf(path: str | Path, streams: list[XdfStream], *, compress: bool = False) -> Path:
    """Write ``streams`` into an XDF file at ``path`` (gzip-compressed if ``compress``).

    As LabRecorder does: the file header, every stream header, then Samples and
    ClockOffset chunks of all streams interleaved in time order, a Boundary chunk after
    every tenth data chunk, and a footer per stream. Stream ids count from 1.
    """
    for stream in streams:
        if stream.channel_format not in (*_XDF_DTYPES, "string"):
            raise ValueError(f"unknown channel_format {stream.channel_format!r}")
        if len(stream.time_stamps) != len(stream.time_series):
            raise ValueError(f"stream {stream.name!r}: time stamps and samples differ in length")

    parts = [b"XDF:", _chunk(1, b'<?xml version="1.0"?><info><version>1.0</version></info>')]
    for stream_id, stream in enumerate(streams, start=1):
        xml = _stream_header(stream, stream_id).encode("utf-8")
        parts.append(_chunk(2, struct.pack("<I", stream_id) + xml))

    # (time, order, chunk bytes): data chunks of all streams, interleaved by time.
    timed: list[tuple[float, int, bytes]] = []
    for stream_id, stream in enumerate(streams, start=1):
        sid = struct.pack("<I", stream_id)
        n_samples = len(stream.time_stamps)
        for start in range(0, n_samples, stream.chunk_size):
            stop = min(start + stream.chunk_size, n_samples)
            chunk = _chunk(3, sid + _samples(stream, start, stop))
            timed.append((float(stream.time_stamps[stop - 1]), len(timed), chunk))
        for time, value in stream.clock_offsets:
            chunk = _chunk(4, sid + struct.pack("<dd", time, value))
            timed.append((float(time), len(timed), chunk))
    for count, (_, _, chunk) in enumerate(sorted(timed)):
        parts.append(chunk)
        if count % 10 == 9:
            parts.append(_chunk(5, _BOUNDARY))

    for stream_id, stream in enumerate(streams, start=1):
        xml = _stream_footer(stream).encode("utf-8")
        parts.append(_chunk(6, struct.pack("<I", stream_id) + xml))

    path = Path(path)
    payload = b"".join(parts)
    if compress:
        with gzip.open(path, "wb") as fid:
            fid.write(payload)
    else:
        path.write_bytes(payload)
    return path


# ---------------------------------------------------------------------------------------------
# GDF 2.20
# ---------------------------------------------------------------------------------------------

_GDF_INT16 = 3  # GDF data type code for int16.
_GDF_MICROVOLT = 4275  # Physical dimension code: volt (4256) with the prefix micro (+19).
_GDF_VOLT = 4256
_GDF_EPOCH = dt.datetime(1, 1, 1, tzinfo=dt.UTC)  # MNE counts days from here, minus 367.


def _gdf_time(when: dt.datetime) -> int:
    """A GDF time: days since year 0 as fixed point with 32 fractional bits."""
    days = (when - _GDF_EPOCH).total_seconds() / 86400 + 367
    return round(days * 2**32)


def _text(value: str, width: int) -> bytes:
    raw = value.encode("latin-1")[:width]
    return raw + b" " * (width - len(raw))


def write_gdf(
    path: str | Path,
    data: np.ndarray,
    sfreq: float,
    ch_names: list[str],
    *,
    events: list[tuple[int, int]] | None = None,
    meas_date: dt.datetime | None = None,
    record_duration: float = 1.0,
    unit: str = "uV",
) -> Path:
    """Write a GDF 2.20 file of int16 samples in microvolts (or volts, see ``unit``).

    Parameters
    ----------
    path : str | Path
        Where to write.
    data : ndarray, shape (n_channels, n_times)
        EEG in volts; the last data record is padded with zeros.
    sfreq : float
        Sampling rate in Hz; ``sfreq * record_duration`` must be a whole number.
    ch_names : list of str
        Channel labels, at most 16 characters each.
    events : list of (sample, type) | None
        Event table entries (mode 1): 0-based sample index and a uint16 event code.
    meas_date : datetime | None
        Recording start (UTC); None writes "unknown".
    record_duration : float
        Seconds per data record, a whole number.
    unit : 'uV' | 'V'
        The physical dimension the file states. 'V' writes the numbers of ``data`` as volts:
        pass microvolt numbers to make a BioSig-style export of microvolts labelled volts.
    """
    data = np.asarray(data, dtype=float)
    n_channels, n_times = data.shape
    if len(ch_names) != n_channels:
        raise ValueError("one name per channel")
    n_samps = sfreq * record_duration
    if n_samps != int(n_samps) or record_duration != int(record_duration):
        raise ValueError("sfreq * record_duration and record_duration must be whole numbers")
    n_samps = int(n_samps)
    n_records = -(-n_times // n_samps)

    # Physical range symmetric around zero, a little wider than the data.
    if unit not in ("uV", "V"):
        raise ValueError("unit must be 'uV' or 'V'")
    micro = data * 1e6 if unit == "uV" else data  # The numbers stored, in the stated unit.
    code = _GDF_MICROVOLT if unit == "uV" else _GDF_VOLT
    phys_max = np.maximum(np.abs(micro).max(axis=1) * 1.01, 1.0)
    phys_min = -phys_max
    dig_min, dig_max = -32768.0, 32767.0
    scale = (dig_max - dig_min) / (phys_max - phys_min)
    digital = np.round((micro - phys_min[:, None]) * scale[:, None] + dig_min)
    digital = np.clip(digital, dig_min, dig_max).astype("<i2")
    padded = np.zeros((n_channels, n_records * n_samps), dtype="<i2")
    padded[:, :n_times] = digital

    header_blocks = 1 + n_channels
    fixed = b"".join(
        [
            b"GDF 2.20",
            _text("X X", 66),  # patient id, name
            b"\x00" * 10,  # reserved
            bytes([0, 0, 0, 0]),  # smoking/alcohol/drugs/medication, weight, height, sex/hand
            _text("neuropaint test", 64),  # recording id
            b"\x00" * 16,  # recording location
            struct.pack("<Q", _gdf_time(meas_date) if meas_date else 0),
            struct.pack("<Q", 0),  # birthday unknown
            struct.pack("<H", header_blocks),
            b"\x00" * 6,  # patient classification
            _text("npaint", 8),  # equipment provider id
            b"\x00" * 6,  # IP address
            struct.pack("<3H", 0, 0, 0),  # head size unknown
            struct.pack("<3f", 0, 0, 0),  # reference electrode position
            struct.pack("<3f", 0, 0, 0),  # ground electrode position
            struct.pack("<q", n_records),
            struct.pack("<2I", int(record_duration), 1),  # record duration as a fraction
            struct.pack("<H", n_channels),
            b"\x00" * 2,  # reserved
        ]
    )
    assert len(fixed) == 256

    # The variable header stores each field for all channels before the next field.
    fields = [
        b"".join(_text(name, 16) for name in ch_names),
        b"".join(_text("Ag/AgCl electrode", 80) for _ in ch_names),
        b"".join(_text(unit, 6) for _ in ch_names),  # physical dimension as text (obsolete)
        struct.pack(f"<{n_channels}H", *([code] * n_channels)),
        struct.pack(f"<{n_channels}d", *phys_min),
        struct.pack(f"<{n_channels}d", *phys_max),
        struct.pack(f"<{n_channels}d", *([dig_min] * n_channels)),
        struct.pack(f"<{n_channels}d", *([dig_max] * n_channels)),
        b"\x00" * (68 * n_channels),  # reserved (pre-filtering text in GDF 1)
        struct.pack(f"<{n_channels}f", *([0.0] * n_channels)),  # low-pass, Hz (0: none)
        struct.pack(f"<{n_channels}f", *([0.0] * n_channels)),  # high-pass, Hz
        struct.pack(f"<{n_channels}f", *([0.0] * n_channels)),  # notch, Hz
        struct.pack(f"<{n_channels}i", *([n_samps] * n_channels)),
        struct.pack(f"<{n_channels}i", *([_GDF_INT16] * n_channels)),
        struct.pack(f"<{3 * n_channels}f", *([0.0] * 3 * n_channels)),  # sensor positions
        b"\x00" * (20 * n_channels),  # impedance and reserved
    ]
    variable = b"".join(fields)
    assert len(variable) == 256 * n_channels

    # Data records: within a record, each channel's block of samples in turn.
    records = padded.reshape(n_channels, n_records, n_samps).transpose(1, 0, 2)
    body = records.tobytes()

    table = b""
    if events:
        positions = [sample + 1 for sample, _ in events]  # 1-based in the file
        codes = [code for _, code in events]
        n_events = len(events)
        table = (
            bytes([1])  # event table mode 1: position and type
            + n_events.to_bytes(3, "little")
            + struct.pack("<f", sfreq)
            + struct.pack(f"<{n_events}I", *positions)
            + struct.pack(f"<{n_events}H", *codes)
        )

    path = Path(path)
    path.write_bytes(fixed + variable + body + table)
    return path
