"""OSC out and in: the live loop speaks to TouchDesigner, Max/MSP, Resolume, Ableton, OBS.

Open Sound Control 1.0 (Wright, 2002, https://opensoundcontrol.stanford.edu/spec-1_0.html)
over UDP, with ``python-osc``. ``python -m live.render --osc-out HOST:PORT`` (repeatable)
sends; ``--osc-in 127.0.0.1:PORT`` listens for stage commands.

OSC out: per feature row, and per frame
----------------------------------------
The EEG values go out **per feature row**, one bundle per row: rows come at 64 per second
(``EngineConfig.feature_rate``) while frames come at 15, and each row is one consistent
moment of the brain (one window, one timestamp), so a patch that makes sound from it gets
the full rate, and everything in one bundle belongs together. Values that belong to a
painted frame (its number, age, the loop's fps) go out **per frame**, in a bundle of their
own, with the profile's reading (posteriors, committed state, controls), which the player
updates once per frame. Row bundles are sent as soon as the rows are computed, before the
profile reads them and before the generator paints, so their latency includes neither. A frame sends at most
``OscOutConfig.max_rows`` rows (the newest; older ones are skipped and counted) and the
frame bundle: bounded work per frame.

Row bundle (one per feature row; floats are 32-bit ``f``, the EEG time a 64-bit ``d``)::

    /neuropaint/eeg_time              d   LSL time (s) of the row's newest sample
    /neuropaint/band/<band>           f   whole-head relative power, 0..1 (bands sum to 1):
                                          delta theta alpha beta gamma (the spec's bands)
    /neuropaint/region/<region>/<band> f  with --osc-regions (OscOutConfig.regions): the
                                          same within one scalp region (frontal_left,
                                          frontal_midline, ..., occipital_right: the spec's
                                          regions; none at channel level). Off by default:
                                          ~80 more messages a row, which a Python receiver
                                          takes ~2 ms per row to parse (receipt p95 10 ms
                                          with them, 5 ms without: benchmarks/stage.py)
    /neuropaint/artifact              i s 1 and what spoils the row (blink, amplitude, flat,
                                          gap, nan), or 0 and ""

Frame bundle (one per painted frame)::

    /neuropaint/frame                 i   frame number (the viewer's and a recording's)
    /neuropaint/frame/eeg_time        d   LSL time of the newest EEG the frame shows (sent
                                          once there is one)
    /neuropaint/age_ms                f   that EEG's age when the frame was ready (ms)
    /neuropaint/fps                   f   frames per second over the last 2 s
    /neuropaint/signal                s   waiting, calibrating, ok, artifact or stalled
    /neuropaint/dropped               i   frame slots dropped so far
    /neuropaint/level                 f   brightness: 1 the painting, 0 blacked out
  with a performer profile (its reading as of the frame: the player steps once a frame):
    /neuropaint/state/<state>         f   the state's smoothed posterior, 0..1
    /neuropaint/state                 s   the committed state ("" before the first)
    /neuropaint/control/<control>     f   a continuous control, 0..1 (e.g. relax, focus)
    /neuropaint/forced                s   the state forced by /neuropaint/force_state, or ""

Bundles carry the timetag "immediately": the EEG time travels as a value, since LSL's clock
is not the NTP time an OSC timetag means. Non-finite values are left out. A region bundle is
about 3 to 4 kB (16 regions x 5 bands), well inside one UDP datagram; on a network with a
small MTU it is fragmented by IP, which loopback and a LAN deliver whole.

Sending never waits and never piles up: UDP on a non-blocking, unconnected socket. A
receiver that is not listening goes unnoticed (an unconnected socket is not told of the
ICMP "port unreachable" that a connected one turns into "connection refused"); a send that
fails (refused, a full socket buffer, an unreachable network, a broadcast address) is
counted and logged once per receiver and kind, and the datagram is dropped. python-osc
encodes each address once (its message builder); per row only the 4-byte values are
packed into those templates, since building ~90 messages per row with the builder costs
~1.3 ms (8 % of a core at 64 rows/s on a 2-core CPU) and packing them costs ~0.1 ms.

OSC in: stage commands
----------------------
``--osc-in`` binds 127.0.0.1 unless another address is named (anyone who can reach the port
can steer the painting: there is no authentication in OSC). A ``python-osc`` server on a
daemon thread only checks the address and queues the command into the engine's bounded
queue (:meth:`live.engine.Engine.submit`); the engine applies at most ``commands_per_frame``
at the start of each frame. Unknown addresses, wrong argument types and packets that are not
OSC are counted, logged once each and ignored; a bundle's timetag is not waited for.

::

    /neuropaint/hold [1|0]            hold the painting where it is (1, the default) or let
                                      the EEG drive it again (0); the drift goes on
    /neuropaint/target <name|index>   go to a profile state's target and hold it there;
                                      "" or no argument releases
    /neuropaint/blend <0..1>          when not holding: how far the painting leans to the
                                      held latent (0: the EEG alone, 1: the held latent)
    /neuropaint/force_state <name|index>  paint this profile state whatever the EEG says
                                      (posteriors, /neuropaint/state and the controls go
                                      on); "" or no argument releases
    /neuropaint/tau <s>               motion time constant (seconds, > 0)
    /neuropaint/drift <amount>        slow wander in W (0: off); glides to the new size
    /neuropaint/freeze [1|0]          the image stands still (motion and drift stop); EEG,
                                      OSC out and the states go on
    /neuropaint/blackout [1|0]        fade to black (1) or back (0) over the fade time
    /neuropaint/fade <s>              seconds a blackout takes (0, the default: a cut)
    /neuropaint/snapshot [name]       save the painting as it is (at the painted size,
                                      before any blackout) as PNG plus its ws (.npy,
                                      float32 [num_ws, w_dim]) into --snapshot-dir or
                                      --record's snapshots/ folder

Numbers may be OSC ints or floats; on/off also OSC True/False.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import re
import socket
import struct
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from pylsl import local_clock
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_bundle_builder import IMMEDIATELY
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_server import BlockingOSCUDPServer
from pythonosc.parsing import osc_types
from pythonosc.udp_client import UDPClient

from live.engine import Frame, RowBatch
from live.stage import COMMANDS, LOGGED_MAX
from neuropaint.net import split_host_port
from neuropaint.validate import NeuropaintError

logger = logging.getLogger(__name__)

__all__ = ["PREFIX", "OscIn", "OscOut", "OscOutConfig", "parse_osc_address"]

PREFIX = "/neuropaint"
_BUNDLE_HEAD = b"#bundle\x00" + osc_types.write_date(IMMEDIATELY)
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")  # a band, region, state or control in an address


def parse_osc_address(text: str, option: str, *, allow_zero: bool = False
                      ) -> tuple[str, int]:
    """``HOST:PORT`` -> ``(numeric address, port)``, the host resolved once.

    Parameters
    ----------
    text : str
        ``127.0.0.1:9000``, ``localhost:9000``, ``:9000`` (loopback), ``[::1]:9000``.
    option : str
        The option's name for the message (``--osc-out``).
    allow_zero : bool
        Accept port 0 (a listener: any free port).

    Returns
    -------
    host : str
        An IPv4 or IPv6 address.
    port : int
    """
    host, port = split_host_port(text, option, example_port=9000,
                                 min_port=0 if allow_zero else 1)
    try:
        return str(ipaddress.ip_address(host)), port
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except OSError as exc:
        raise NeuropaintError(f"{option}: cannot resolve {host!r} "
                              f"({exc.strerror or exc}).") from None
    return str(infos[0][4][0]), port


class OscOutConfig(BaseModel):
    """What OSC out sends."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_rows: int = Field(16, ge=1, le=1000, description="Most feature rows sent per frame "
                          "(the newest; older ones are skipped and counted).")
    regions: bool = Field(False, description="Also send band powers per scalp region "
                          "(/neuropaint/region/<region>/<band>): about 80 more messages a "
                          "row, which a Python receiver needs ~2 ms per row to parse "
                          "(benchmarks/stage.py --regions).")
    history: int = Field(4096, ge=0, description="Rows remembered as (eeg_time, computed, "
                         "sent) for latency figures (benchmarks/stage.py); 0: none.")


@dataclass
class _Packet:
    """What ``UDPClient.send`` needs of a python-osc message or bundle."""

    dgram: bytes


def _message(address: str, *args: tuple[object, str]) -> bytes:
    """One OSC message's bytes, built by python-osc (``args``: ``(value, type tag)``)."""
    builder = OscMessageBuilder(address=address)
    for value, tag in args:
        builder.add_arg(value, tag)
    return builder.build().dgram


def _template(address: str, tag: str) -> bytes:
    """The bytes of a one-argument message without its value (``f``: 4 bytes, ``d``: 8)."""
    dgram = _message(address, (0.0, tag))
    return dgram[: -(8 if tag == "d" else 4)]


def _bundle(messages: Sequence[bytes]) -> bytes:
    """An OSC bundle (timetag: immediately) of encoded messages."""
    return _BUNDLE_HEAD + b"".join(struct.pack(">i", len(m)) + m for m in messages)


class _RowPlan:
    """Which columns of the live rows make the band messages, worked out once."""

    def __init__(self, names: Sequence[str], regions: bool):
        self.names = list(names)
        index = {name: i for i, name in enumerate(self.names)}
        parts = [name.split(":") for name in self.names]
        self.kind = next((k for k in ("relative_power", "log_power")
                          if any(p[0] == k for p in parts)), None)
        found = [p for p in parts if len(p) == 3 and p[0] == self.kind]
        self.bands = list(dict.fromkeys(p[1] for p in found if _NAME.match(p[1])))
        places = list(dict.fromkeys(p[2] for p in found if _NAME.match(p[2])))
        places = [r for r in places if r == "whole_head" or regions]
        # Only regions with every band (a share needs the whole set).
        self.places = [r for r in places
                       if all(f"{self.kind}:{b}:{r}" in index for b in self.bands)]
        self.columns = np.array([[index[f"{self.kind}:{b}:{r}"] for b in self.bands]
                                 for r in self.places], dtype=np.int64).reshape(
            len(self.places), len(self.bands))  # [R, B]
        self.templates = [_template(f"{PREFIX}/band/{b}" if r == "whole_head"
                                    else f"{PREFIX}/region/{r}/{b}", "f")
                          for r in self.places for b in self.bands]  # R * B, row-major

    def shares(self, values: np.ndarray) -> np.ndarray:
        """Relative power ``[n, R * B]`` (each place's bands sum to 1) from rows ``[n, F]``."""
        if not len(self.places) or not len(self.bands):
            return np.zeros((len(values), 0), dtype=np.float32)
        x = np.asarray(values, dtype=np.float64)[:, self.columns]  # [n, R, B]
        if self.kind == "log_power":  # log10 power -> power, scaled per place
            x = 10.0 ** (x - np.nanmax(x, axis=2, keepdims=True))
        with np.errstate(invalid="ignore", divide="ignore"):
            x = x / x.sum(axis=2, keepdims=True)
        return x.reshape(len(x), -1).astype(np.float32)  # [n, R * B]


class OscOut:
    """Sends the live loop's EEG features, states and frame figures as OSC bundles.

    A sink of :class:`live.engine.Engine`: ``write_rows`` (one bundle per feature row) and
    ``write`` (one bundle per frame). See the module docstring for the address space.

    Parameters
    ----------
    targets : sequence of (host, port)
        Receivers (numeric addresses, as :func:`parse_osc_address` gives them); every bundle
        goes to each.
    config : OscOutConfig | None
    """

    def __init__(self, targets: Sequence[tuple[str, int]], config: OscOutConfig | None = None):
        if not targets:
            raise NeuropaintError("OscOut needs at least one HOST:PORT.")
        self.config = config or OscOutConfig()
        self.targets = [(str(h), int(p)) for h, p in targets]
        self._clients = [UDPClient(h, p) for h, p in self.targets]  # non-blocking sockets
        self._plan: _RowPlan | None = None
        self._strings: dict[tuple[str, str], bytes] = {}  # (address, value) -> message
        self._floats: dict[str, bytes] = {}  # address -> template
        self._eeg_time = _template(f"{PREFIX}/eeg_time", "d")
        self._frame_eeg_time = _template(f"{PREFIX}/frame/eeg_time", "d")
        self.rows_sent = 0
        self.rows_skipped = 0  # over max_rows in one frame
        self.frames_sent = 0
        self.packets = 0
        self.messages = 0
        self.bytes = 0
        self.send_errors = 0
        self._logged: set[str] = set()
        self.history: deque[tuple[float, float, float]] = deque(maxlen=self.config.history)

    # ------------------------------------------------------------------ encoding
    def _string(self, address: str, value: str) -> bytes:
        key = (address, value)
        dgram = self._strings.get(key)
        if dgram is None:
            dgram = _message(address, (value, "s"))
            if len(self._strings) < 1024:
                self._strings[key] = dgram
        return dgram

    def _float(self, address: str, value: float) -> bytes | None:
        if not math.isfinite(value):
            return None
        prefix = self._floats.get(address)
        if prefix is None:
            prefix = self._floats[address] = _template(address, "f")
        return prefix + struct.pack(">f", value)

    def _instrument(self, instrument: dict) -> list[bytes]:
        out = [self._float(f"{PREFIX}/state/{name}", float(p))
               for name, p in instrument.get("posteriors", {}).items() if _NAME.match(name)]
        out.append(self._string(f"{PREFIX}/state", instrument.get("committed") or ""))
        out += [self._float(f"{PREFIX}/control/{name}", float(v))
                for name, v in instrument.get("controls", {}).items() if _NAME.match(name)]
        out.append(self._string(f"{PREFIX}/forced", instrument.get("forced") or ""))
        return [m for m in out if m is not None]

    # ------------------------------------------------------------------ the sink
    def write_rows(self, batch: RowBatch) -> None:
        """One bundle per new feature row (the newest ``max_rows``)."""
        n = len(batch.times)
        if n == 0:
            return
        if self._plan is None or self._plan.names != batch.names:
            self._plan = _RowPlan(batch.names, self.config.regions)
        plan = self._plan
        first = max(0, n - self.config.max_rows)
        self.rows_skipped += first
        shares = plan.shares(batch.values[first:])  # [k, R * B]
        finite = np.isfinite(shares)
        packed = shares.astype(">f4")  # big-endian float32, as OSC's 'f'
        for k, row in enumerate(range(first, n)):
            eeg_time = float(batch.times[row])
            messages = [self._eeg_time + struct.pack(">d", eeg_time)]
            values = packed[k].tobytes()
            messages += [t + values[4 * j: 4 * j + 4]
                         for j, t in enumerate(plan.templates) if finite[k, j]]
            kind = batch.kinds[row]
            messages.append(self._artifact(kind))
            self._send(_bundle(messages), len(messages))
            self.rows_sent += 1
            if self.history.maxlen:
                self.history.append((eeg_time, batch.computed, local_clock()))

    def _artifact(self, kind: str | None) -> bytes:
        key = (f"{PREFIX}/artifact", kind or "")
        dgram = self._strings.get(key)
        if dgram is None:
            dgram = self._strings[key] = _message(key[0], (int(kind is not None), "i"),
                                                  (kind or "", "s"))
        return dgram

    def write(self, frame: Frame, status: dict) -> None:
        """One bundle per painted frame."""
        messages = [_message(f"{PREFIX}/frame", (int(frame.index), "i"))]
        if math.isfinite(frame.eeg_time):
            messages.append(self._frame_eeg_time + struct.pack(">d", float(frame.eeg_time)))
            messages.append(self._float(f"{PREFIX}/age_ms", frame.age * 1000.0))
        messages.append(self._float(f"{PREFIX}/fps", float(status.get("fps", 0.0))))
        messages.append(self._string(f"{PREFIX}/signal", frame.signal))
        messages.append(_message(f"{PREFIX}/dropped", (int(status.get("dropped", 0)), "i")))
        level = status.get("stage", {}).get("level", 1.0)
        messages.append(self._float(f"{PREFIX}/level", float(level)))
        if frame.instrument is not None and frame.instrument.get("posteriors"):
            messages += self._instrument(frame.instrument)  # once the profile has read a row
        messages = [m for m in messages if m is not None]
        self._send(_bundle(messages), len(messages))
        self.frames_sent += 1

    def _send(self, dgram: bytes, n_messages: int) -> None:
        packet = _Packet(dgram)
        for client, target in zip(self._clients, self.targets, strict=True):
            try:
                client.send(packet)
                self.packets += 1
                self.messages += n_messages
                self.bytes += len(dgram)
            except OSError as exc:  # refused (nobody listens), buffer full, unreachable
                self.send_errors += 1
                key = f"{target}:{type(exc).__name__}"
                if key not in self._logged and len(self._logged) < LOGGED_MAX:
                    self._logged.add(key)
                    logger.warning("OSC out to %s:%d: %s (datagrams are dropped while this "
                                   "lasts; logged once)", *target, exc)

    def close(self) -> None:
        for client in self._clients:
            client.close()
        logger.info("OSC out: %d row bundles, %d frame bundles, %d send errors",
                    self.rows_sent, self.frames_sent, self.send_errors)


class _Server(BlockingOSCUDPServer):
    """python-osc's UDP server, counting what it refuses instead of printing tracebacks."""

    def __init__(self, address: tuple[str, int], dispatcher: Dispatcher, owner: OscIn):
        self.owner = owner
        super().__init__(address, dispatcher)

    def verify_request(self, request, client_address) -> bool:
        ok = super().verify_request(request, client_address)
        if not ok:
            self.owner._problem("not-osc", "a datagram that is not OSC was ignored")
        return ok

    def handle_error(self, request, client_address) -> None:
        self.owner._problem("malformed", "a malformed OSC packet was ignored")


class OscIn:
    """Stage commands over OSC (UDP), queued for the engine; see the module docstring.

    Binds at construction (a port in use is a one-line error); :meth:`start` serves.

    Parameters
    ----------
    host : str
        Address to listen on (127.0.0.1: this machine only).
    port : int
        UDP port; 0: any free port (:attr:`address` tells which).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.received = 0  # commands queued
        self.unknown = 0  # messages to other addresses
        self.bad_packets = 0  # not OSC, or malformed
        self._logged: set[str] = set()
        self._submit: Callable[..., bool] | None = None
        dispatcher = Dispatcher(strict_timing=False)  # never sleep until a timetag
        dispatcher.set_default_handler(self._on_message)
        try:
            self._server = _Server((host, port), dispatcher, self)
        except OSError as exc:
            why = "in use" if exc.errno in (98, 48, 10048) else (exc.strerror or str(exc))
            raise NeuropaintError(f"--osc-in cannot listen on {host}:{port}: {why}.") from None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` actually bound."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self, submit: Callable[..., bool]) -> OscIn:
        """Serve on a daemon thread; each command goes to ``submit(name, *args)``
        (:meth:`live.engine.Engine.submit`)."""
        self._submit = submit
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.2}, name="osc-in",
                                        daemon=True)
        self._thread.start()
        return self

    def _on_message(self, address: str, *args) -> None:
        name = address[len(PREFIX) + 1:] if address.startswith(PREFIX + "/") else None
        if name not in COMMANDS:
            self.unknown += 1
            self._problem(f"address:{address[:100]}", f"unknown OSC address {address[:100]!r} "
                          f"ignored (the commands are {PREFIX}/{{{','.join(COMMANDS)}}})")
            return
        self.received += 1
        if self._submit is not None:
            self._submit(name, *args)

    def _problem(self, key: str, message: str) -> None:
        if key in ("not-osc", "malformed"):
            self.bad_packets += 1
        if key in self._logged or len(self._logged) >= LOGGED_MAX:
            return
        self._logged.add(key)
        logger.warning("OSC in: %s (logged once)", message)

    def close(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()
