"""The web viewer: the live painting full-window in any browser, with band-power meters.

Examples
--------
python -m live.viewer                            # test card at http://127.0.0.1:8765/
python -m live.viewer --serve 0.0.0.0:8765       # on the network, with a random token in the URL
python -m live.viewer --serve :0 --size 512 --fps 20 --duration 30

The command serves a moving test card (crossfading :mod:`datasets.procedural` paintings) so a
projector and a browser can be set up before a model or a headset is there. The engine
(``python -m live.render``) uses :class:`Viewer` directly::

    viewer = Viewer("127.0.0.1", 8765)
    url = viewer.start()
    viewer.publish(image, {"fps": 15.2, "age_ms": {"p50": 48, "p95": 80}, "signal": "ok",
                           "frame": 17, "eeg_time": 1234.567891})
    viewer.stop()

Design
------
- Standard library only: :class:`http.server.ThreadingHTTPServer`, one thread per connection.
  The painting is an MJPEG stream (``multipart/x-mixed-replace``) shown by an ``<img>``, which
  every browser plays without a line of script; the page polls ``/status.json`` for the meters.
- Endpoints: ``/`` (the page; ``/?clean=1`` the clean stage page), ``/stream.mjpg``,
  ``/status.json``, ``/static/<asset>`` for the files of the package folder ``live/static``
  (looked up by exact name in a table built at start, so no request path can reach any other
  file), ``/targets/<i>.jpg`` for the thumbnails of a performer's target paintings
  (:meth:`Viewer.set_targets`; ``i`` from 0, only the indices that exist), anything else 404
  (absolute URLs and ``//`` paths in the request line too). Only GET and HEAD. Every response
  carries ``Cache-Control: no-store`` and a Content-Security-Policy that allows only this
  origin's own scripts, styles and images.
- What it exposes: the painting (``/stream.mjpg``, the target thumbnails) and everything in the
  published status at ``/status.json``: band powers, signal and artifact state, and with a
  performer profile the state posteriors, committed state and controls. That is personal data
  (EEG-derived): keep the viewer on loopback (the default) unless the audience should see it;
  on a network, it asks for a token.
- Clean stage mode: ``/?clean=1`` is the painting alone, fitted to the window (contain,
  aspect kept) on black: no panels, button, text or cursor, and black rather than a broken
  image while the stream is away. For OBS's browser source or a projector's full-screen
  browser. The server marks the page's ``<body class="clean">``, so nothing flashes first.
- Frame alignment: every part of ``/stream.mjpg`` is written whole once its frame exists, with
  ``Content-Length``, ``X-Sequence`` (the viewer's count of published frames),
  ``X-Frame-Index`` (the status' ``frame``, the engine's frame counter; absent when unknown)
  and ``X-EEG-Time`` (the status' ``eeg_time``: LSL seconds of the newest EEG sample the frame
  shows, 6 decimals; ``nan`` when unknown). The JPEG's comment says the same
  (``neuropaint frame 17 index 5 eeg_time 1234.567891``); ``/status.json`` carries ``frame``
  and ``eeg_time`` too. A browser shows a part only once the next part's headers have
  arrived, so a frame held still is sent once more after :data:`_HOLD_REPEAT_S` (same
  ``X-Sequence``: readers drop it). The page asks for ``/stream.mjpg?ahead=1`` instead: each
  frame is followed at once by the next part's boundary and headers, so that the browser shows
  it without waiting one frame; those headers are written before the next frame exists, so
  in that form only the JPEG comment names the frame.
- Latest-value semantics: :meth:`Viewer.publish` copies the frame, bumps a sequence number
  and wakes the stream threads; it never waits for a client. Each client thread sends the
  newest frame whenever its previous write has finished, so a slow client skips frames and
  nothing queues. A JPEG is encoded at most once per published frame, lazily by the first
  client thread that needs it (Pillow releases the GIL while it encodes), and not at all when
  nobody watches: the render loop never pays for encoding.
- A client that stops reading blocks only its own thread, until its socket write times out
  (:data:`CLIENT_TIMEOUT_S`) or :meth:`Viewer.stop` shuts its socket down. Disconnects
  (broken pipe, reset) are logged at DEBUG level, never as tracebacks.
- At most ``max_clients`` connections at once (16 by default; a browser holds 2 to 6): the
  accept loop answers one more with a canned 503 itself, without a thread, and a kept-alive
  connection idle for :data:`IDLE_TIMEOUT_S` is closed to free its slot.
- Who may ask (:mod:`live.viewer_guard`): the ``Host`` header must be one of the viewer's own
  names (DNS rebinding; else 403): on loopback ``localhost``, ``127.0.0.1``, ``[::1]``; on a
  network bind any IP literal, ``localhost`` and this machine's host name; always the names
  given with ``allowed_hosts`` (``--allow-host``). A network bind (``0.0.0.0``, a LAN IP,
  ``::``) needs a token (else 401): ``token=`` given, or made at random and put in
  :attr:`Viewer.url` (``http://127.0.0.1:8765/?token=...``), which the command prints. A
  request carries it as the query ``token=``, as the cookie the page sets on its first
  authenticated load (``HttpOnly; SameSite=Strict``), or as ``Authorization: Bearer``; the
  page also passes it on in its own requests. Loopback needs no token unless one is given.
  A network bind also logs a warning that the painting is visible on the network.
- What the page shows comes from the published status (all keys optional; see
  :meth:`Viewer.publish`): the band meters, signal and frame figures in a panel at the bottom
  left, with the size truth (``painted 256 px, shown 720 px (browser-scaled ×2.8)``, in device
  pixels); with an ``instrument`` key (``live.render --profile``) a second panel at the bottom
  right with the state posteriors (the committed state highlighted), the controls, and the
  target thumbnails with the committed state's marked; with an ``instruction`` key
  (``live.calibrate``) the instruction in large type with its countdown, and a fixation dot
  for the eyes-open states. At 1280x720 both panels fit beside a square painting; on a
  narrower screen key ``h`` hides them, as before.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import html
import importlib.resources
import io
import ipaddress
import json
import logging
import math
import re
import secrets
import select
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from live.viewer_guard import Guard, check_allowed_hosts, check_token, is_loopback, new_token
from neuropaint.logs import run_cli, setup_logging
from neuropaint.net import split_host_port
from neuropaint.validate import NeuropaintError, build_config, check_int, check_positive

logger = logging.getLogger(__name__)

__all__ = ["CLIENT_TIMEOUT_S", "DEFAULT_ADDRESS", "IDLE_TIMEOUT_S", "TARGET_SIZE", "Viewer",
           "ViewerConfig", "is_loopback", "parse_address"]

DEFAULT_ADDRESS = "127.0.0.1:8765"
CLIENT_TIMEOUT_S = 15.0  # A socket read or write that waits longer drops that client.
IDLE_TIMEOUT_S = 5.0  # A kept-alive connection with no new request for this long is closed.
_HOLD_REPEAT_S = 1.0  # A /stream.mjpg part is sent again after this long without a new frame.
_TURNED_AWAY_S = 1.0  # How long a connection refused with 503 is read from before it closes.
_MAX_TURNED_AWAY = 64  # Refused connections lingering at once; more are closed at once.
_BOUNDARY = "neuropaintframe"
_STATIC_PACKAGE = "live"
_STATIC_FOLDER = "static"
_PAGE = "index.html"  # Served at "/" with the title filled in, not under /static/.
_TARGET_PATH = re.compile(r"^/targets/(0|[1-9][0-9]{0,3})\.jpg$")
TARGET_SIZE = 160  # Longest side of a target thumbnail in pixels.
_TITLE_MARK = "{{title}}"
_CLASS_MARK = "{{body_class}}"  # "clean" for /?clean=1: in the HTML, so nothing flashes first.
_TRUE = frozenset({"1", "true", "yes", "on"})
_CONTENT_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self'; connect-src 'self'; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# One DNS label: letters, digits and inner hyphens (RFC 1123).


def parse_address(text: str) -> tuple[str, int]:
    """Split a ``--serve`` address into ``(host, port)``.

    Parameters
    ----------
    text : str
        ``HOST:PORT``: ``127.0.0.1:8765``, ``:8765`` (loopback), ``0.0.0.0:9000`` (every
        interface), ``localhost:8765``, ``[::1]:8765`` (IPv6 in brackets). Port 0 asks the
        system for a free port.

    Returns
    -------
    host : str
        An IPv4/IPv6 address (without brackets) or a host name.
    port : int
        0 to 65535.
    """
    return split_host_port(text, "'serve'", example_port=8765)


class ViewerConfig(BaseModel):
    """Where and how the viewer serves the painting."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field("127.0.0.1", min_length=1, description="Address to listen on: "
                      "127.0.0.1 keeps the painting on this machine, 0.0.0.0 shows it to the "
                      "network.")
    port: int = Field(8765, ge=0, le=65535, description="TCP port; 0 = any free port.")
    title: str = Field("neuropaint", max_length=200, description="Title of the page.")
    jpeg_quality: int = Field(85, ge=1, le=95, description="JPEG quality of the stream "
                              "(Pillow's scale; above 95 only grows the files).")
    max_clients: int = Field(16, ge=1, le=10000, description="Most connections at once "
                             "(a browser holds 2 to 6); more get 503 at once, so an audience "
                             "cannot starve the render loop of CPU.")
    allowed_hosts: tuple[str, ...] = Field((), description="More names the viewer answers to "
                                           "in the Host header (a reverse proxy's, a DNS "
                                           "name), beside its own (DNS rebinding guard).")


class Viewer:
    """Serves the live painting and its status over HTTP (MJPEG + JSON), latest value only.

    Parameters
    ----------
    host : str
        Address to listen on (see :func:`parse_address`); loopback by default.
    port : int
        TCP port; 0 picks a free one (read it back from :attr:`url`).
    title : str
        Title of the page.
    jpeg_quality : int
        JPEG quality of the stream, 1 to 95.
    token : str or None
        The token every request must carry (URL-safe characters). None: made at random
        when the viewer binds a network address (it is then part of :attr:`url`), none
        needed on loopback. Given, it is required on loopback too.
    max_clients : int
        Most connections at once; more are answered 503 at once.
    allowed_hosts : sequence of str or None
        More names to answer to in the ``Host`` header (see :mod:`live.viewer_guard`).

    Notes
    -----
    Use as a context manager (``with Viewer(...) as viewer:``) or call :meth:`start` and
    :meth:`stop`. It can be started again after :meth:`stop` (with the same token); open
    pages reconnect by themselves.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 8765, *, title: str = "neuropaint",
                 token: str | None = None, max_clients: int = 16,
                 allowed_hosts: Sequence[str] | None = (), jpeg_quality: int = 85) -> None:
        self.config: ViewerConfig = build_config(ViewerConfig, host=host, port=port,
                                                 title=title, jpeg_quality=jpeg_quality,
                                                 max_clients=max_clients,
                                                 allowed_hosts=check_allowed_hosts(
                                                     allowed_hosts))
        self._token = check_token(token)
        if self._token is None and not is_loopback(self.config.host):
            self._token = new_token()  # Kept across restarts, so open pages stay let in.
        self._frame_meta: tuple[int | None, float] = (None, math.nan)  # Index, EEG time.
        self._cond = threading.Condition()  # Guards the fields below; wakes stream threads.
        self._seq = 0                       # Number of frames published so far.
        self._image: np.ndarray | None = None
        self._status_json = "null"
        self._published_at: float | None = None
        self._clients = 0
        self._stopping = False
        self._encode_lock = threading.Lock()  # One encoder at a time: each frame once.
        self._jpeg_seq = 0
        self._jpeg = b""
        self._jpeg_meta: tuple[int | None, float] = (None, math.nan)
        self._guard: Guard | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._url = ""
        self._boot = ""
        self._page = b""
        self._clean_page = b""
        self._assets: dict[str, tuple[bytes, str]] = {}
        self._target_names: list[str] = []  # Guarded by _cond, like the frame.
        self._target_jpegs: list[bytes] = []
        self._targets_version = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> str:
        """Bind, serve in daemon threads and return the page's URL.

        Raises
        ------
        NeuropaintError
            The port is in use, the address is not this machine's, or the host is unknown.
        """
        if self._server is not None:
            raise NeuropaintError(f"the viewer is already running at {self._url}")
        self._page, self._clean_page, self._assets = _load_static(self.config.title)
        host = self.config.host.strip("[]")
        family, sockaddr = _resolve(host, self.config.port)
        try:
            server = _Server(sockaddr, family, self)
        except OSError as exc:
            raise _bind_error(exc, host, self.config.port) from None
        bound = server.server_address
        port = bound[1]
        loopback = is_loopback(bound[0])
        if self._token is None and not loopback:  # A name that resolved to a network address.
            self._token = new_token()
        self._guard = Guard(loopback=loopback, bound=bound[0], port=port, token=self._token,
                            allowed_hosts=self.config.allowed_hosts)
        with self._cond:
            self._stopping = False
        self._server = server
        self._boot = secrets.token_hex(4)
        query = "" if self._token is None else f"?token={self._token}"
        self._url = f"http://{_url_host(host, bound[0])}:{port}/{query}"
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"viewer:{port}", daemon=True)
        self._thread.start()
        if not loopback:
            logger.warning("the viewer listens on %s port %d: the painting, the band powers and "
                           "the instrument state are visible on the network to anyone who "
                           "can reach this machine and has the token in its URL "
                           "(--serve 127.0.0.1:%d keeps them on this machine).",
                           bound[0], port, port)
        logger.info("viewer at %s", self._url)
        return self._url

    def stop(self) -> None:
        """Close every client connection and stop serving; returns within a fraction of a second."""
        server = self._server
        if server is None:
            return
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        server.shutdown()  # The accept loop ends: no new connections from here on.
        server.close_connections()  # Unblocks threads stuck on a client that stopped reading.
        server.server_close()  # Joins the connection threads.
        if self._thread is not None:
            self._thread.join()
        self._server = None
        self._thread = None
        self._url = ""
        logger.info("viewer stopped")

    def __enter__(self) -> Viewer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The page's URL while running (``http://127.0.0.1:8765/``, with ``?token=...`` when
        a token is needed), else ``""``."""
        return self._url

    @property
    def token(self) -> str | None:
        """The token requests must carry; None when none is needed (loopback, none given)."""
        return self._token

    @property
    def clients(self) -> int:
        """Stream clients connected now."""
        with self._cond:
            return self._clients

    @property
    def connections(self) -> int:
        """Connections open now (streams, page loads, status polls), at most ``max_clients``."""
        server = self._server
        return 0 if server is None else server.connection_count()

    # -- frames ------------------------------------------------------------------------------

    def publish(self, image: np.ndarray, status: Mapping[str, Any]) -> None:
        """Make ``image`` the newest frame; never waits for clients.

        Parameters
        ----------
        image : ndarray, shape (H, W, 3), uint8
            The painting, RGB. It is copied, so the caller may reuse its buffer.
        status : dict
            JSON-able facts shown with the frame (all keys optional): ``fps``,
            ``age_ms`` (``{"p50", "p95"}``), ``bands`` (``delta`` … ``gamma`` in 0..1),
            ``signal`` (``ok``, ``calibrating``, ``artifact``, ``stalled``, ``waiting``),
            ``state``, ``frame`` (the engine's frame counter), ``eeg_time`` (LSL time of the
            newest EEG sample the frame reflects; NaN or absent: none), ``size`` ([H, W], as
            painted); ``frame`` and ``eeg_time`` also go into the frame's stream part headers
            (``X-Frame-Index``, ``X-EEG-Time``) and JPEG comment; ``instrument`` (a performer profile
            playing: ``{"states": [names], "posteriors": {state: 0..1}, "committed": state
            or None, "controls": {name: 0..1}}``); ``instruction`` (a guided calibration:
            ``{"text", "state", "remaining_s", "block", "blocks"}``, and ``"fixation": true``
            for a dot to look at, which ``state == "eyes_open"`` implies). numpy numbers are
            accepted; NaN and infinities are sent as null.
        """
        _check_image(image, "'image'")
        if not isinstance(status, Mapping):
            raise NeuropaintError(f"'status' must be a dict, got {type(status).__name__}.")
        frame = np.array(image, dtype=np.uint8, order="C", copy=True)
        status_json = json.dumps(_jsonable(status), allow_nan=False)
        meta = _frame_meta(status)
        with self._cond:
            self._seq += 1
            self._image = frame
            self._frame_meta = meta
            self._status_json = status_json
            self._published_at = time.monotonic()
            self._cond.notify_all()

    def set_targets(self, names: Sequence[str], images: Sequence[np.ndarray]) -> None:
        """Show thumbnails of the states' target paintings (served at ``/targets/<i>.jpg``).

        Parameters
        ----------
        names : list of str
            The state of each painting, as in the status' ``instrument.states``; unique.
        images : list of ndarray, shape (H, W, 3), uint8
            The paintings, RGB; each becomes a JPEG of at most :data:`TARGET_SIZE` pixels a
            side, once, here. Empty lists remove the thumbnails.
        """
        names = list(names)
        images = list(images)
        if len(names) != len(images):
            raise NeuropaintError(f"'names' and 'images' must have the same length, got "
                                  f"{len(names)} and {len(images)}.")
        if len(names) > 1000:
            raise NeuropaintError(f"at most 1000 targets, got {len(names)}.")
        if not all(isinstance(name, str) and name for name in names):
            raise NeuropaintError("'names' must be non-empty strings.")
        if len(set(names)) != len(names):
            raise NeuropaintError(f"'names' must be unique, got {names}.")
        jpegs = []
        for name, image in zip(names, images, strict=True):
            _check_image(image, f"the target image of {name!r}")
            thumb = Image.fromarray(np.ascontiguousarray(image))
            thumb.thumbnail((TARGET_SIZE, TARGET_SIZE), Image.Resampling.LANCZOS)
            buffer = io.BytesIO()
            thumb.save(buffer, format="JPEG", quality=self.config.jpeg_quality)
            jpegs.append(buffer.getvalue())
        with self._cond:
            self._target_names, self._target_jpegs = names, jpegs
            self._targets_version += 1

    def _target_jpeg(self, index: int) -> bytes | None:
        with self._cond:
            return self._target_jpegs[index] if index < len(self._target_jpegs) else None

    def _wait_newer(self, seen: int, timeout: float) -> int | None:
        """The newest sequence number once it differs from ``seen`` (or on timeout); None: stop."""
        with self._cond:
            self._cond.wait_for(lambda: self._seq != seen or self._stopping, timeout)
            return None if self._stopping else self._seq

    def _newest_jpeg(self) -> tuple[int, bytes, tuple[int | None, float]]:
        """The newest frame as JPEG with its (frame index, EEG time), encoded on first demand
        and shared by every client."""
        with self._encode_lock:
            with self._cond:
                seq, image, meta = self._seq, self._image, self._frame_meta
                if self._jpeg_seq == seq:
                    return seq, self._jpeg, self._jpeg_meta
            index, eeg_time = meta
            comment = f"neuropaint frame {seq}" + ("" if index is None else f" index {index}")
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, format="JPEG", quality=self.config.jpeg_quality,
                                        comment=f"{comment} eeg_time {_eeg_time_text(eeg_time)}")
            data = buffer.getvalue()
            with self._cond:
                self._jpeg_seq, self._jpeg, self._jpeg_meta = seq, data, meta
            return seq, data, meta

    @contextlib.contextmanager
    def _stream_client(self) -> Iterator[None]:
        """Count a stream client while it is connected (the connection cap is the server's)."""
        with self._cond:
            self._clients += 1
        try:
            yield
        finally:
            with self._cond:
                self._clients -= 1

    def _status_body(self) -> bytes:
        with self._cond:
            since = self._published_at
            viewer = {"boot": self._boot, "clients": self._clients, "frames": self._seq,
                      "since_ms": None if since is None
                      else round(1000 * (time.monotonic() - since), 1),
                      "title": self.config.title, "targets": self._target_names,
                      "targets_version": self._targets_version}
            status_json = self._status_json
        return ('{"status": ' + status_json + ', "viewer": ' + json.dumps(viewer) + "}").encode()


def _check_image(image: object, what: str) -> None:
    if (not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3
            or image.shape[2] != 3 or 0 in image.shape or max(image.shape[:2]) > 65500):
        found = (f"{image.dtype} {list(image.shape)}" if isinstance(image, np.ndarray)
                 else type(image).__name__)
        raise NeuropaintError(f"{what} must be a uint8 RGB array of shape [H, W, 3] "
                              f"(H, W up to 65500), got {found}.")


def _frame_meta(status: Mapping[str, Any]) -> tuple[int | None, float]:
    """(frame index, EEG time) of a status: None / NaN where absent or not a number."""
    index = status.get("frame")
    if isinstance(index, np.integer):
        index = int(index)
    if not isinstance(index, int) or isinstance(index, bool):
        index = None
    eeg_time = status.get("eeg_time")
    if isinstance(eeg_time, np.generic):
        eeg_time = eeg_time.item()
    if not isinstance(eeg_time, int | float) or isinstance(eeg_time, bool):
        eeg_time = math.nan
    return index, float(eeg_time)


def _eeg_time_text(eeg_time: float) -> str:
    """LSL seconds to the microsecond, or ``nan``."""
    return f"{eeg_time:.6f}" if math.isfinite(eeg_time) else "nan"


def _jsonable(value: Any) -> Any:
    """``value`` with numpy numbers as Python ones, non-finite floats as None, the rest as str."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)


def _load_static(title: str) -> tuple[bytes, bytes, dict[str, tuple[bytes, str]]]:
    """The page and its clean-mode twin (title filled in, HTML-escaped) and the table of
    static assets by file name."""
    folder = importlib.resources.files(_STATIC_PACKAGE) / _STATIC_FOLDER
    page = (folder / _PAGE).read_text(encoding="utf-8")
    assets = {}
    for entry in folder.iterdir():
        if entry.is_file() and entry.name != _PAGE and not entry.name.startswith("."):
            suffix = "." + entry.name.rpartition(".")[2]
            content_type = _CONTENT_TYPES.get(suffix, "application/octet-stream")
            assets[entry.name] = (entry.read_bytes(), content_type)
    page = page.replace(_TITLE_MARK, html.escape(title))
    return (page.replace(_CLASS_MARK, "").encode(), page.replace(_CLASS_MARK, "clean").encode(),
            assets)


def _resolve(host: str, port: int) -> tuple[socket.AddressFamily, tuple]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise NeuropaintError(f"cannot listen on {host!r}: the host name does not resolve "
                              f"({exc.strerror}); use an address such as 127.0.0.1.") from None
    family, _, _, _, sockaddr = infos[0]
    return family, sockaddr


def _bind_error(exc: OSError, host: str, port: int) -> NeuropaintError:
    shown = f"[{host}]" if ":" in host else host
    if exc.errno == errno.EADDRINUSE:
        return NeuropaintError(f"port {port} on {host} is already in use (another viewer or "
                               f"program): serve on another port with --serve "
                               f"{shown}:OTHERPORT (or {shown}:0 for any free port).")
    if exc.errno == errno.EACCES:
        return NeuropaintError(f"no permission to listen on port {port} (ports below 1024 need "
                               f"root): use --serve {shown}:8765 or another port above 1023.")
    if exc.errno == errno.EADDRNOTAVAIL:
        return NeuropaintError(f"{host} is not an address of this machine: use --serve "
                               f"127.0.0.1:{port} (this machine) or 0.0.0.0:{port} (network).")
    return NeuropaintError(f"cannot listen on {host} port {port}: {exc.strerror or exc}.")


def _url_host(host: str, bound: str) -> str:
    """How a browser on this machine reaches the server (an unspecified bind via loopback)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host  # A host name: keep the name the user gave.
    if address.is_unspecified:
        return "127.0.0.1" if address.version == 4 else "[::1]"
    return f"[{bound}]" if address.version == 6 else bound


class _Server(ThreadingHTTPServer):
    """One thread per connection, at most ``max_clients`` of them; knows its open connections
    so that stop() can close them."""

    daemon_threads = True

    def __init__(self, address: tuple, family: socket.AddressFamily, viewer: Viewer) -> None:
        self.address_family = family
        self.viewer = viewer
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._turned_away: list[tuple[socket.socket, float]] = []  # Accept thread only.
        self._warned_busy = False
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, which can stall for seconds on a
        # machine without DNS; the name is only used in CGI environments.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = self.server_address[1]

    def connection_count(self) -> int:
        with self._connections_lock:
            return len(self._connections)

    def process_request(self, request, client_address) -> None:
        # Counted here, in the accept loop, so that no connection escapes the cap or
        # close_connections(); one over the cap gets its 503 here, without a thread.
        with self._connections_lock:
            admitted = len(self._connections) < self.viewer.config.max_clients
            if admitted:
                self._connections.add(request)
        if admitted:
            super().process_request(request, client_address)
        else:
            self._turn_away(request, client_address)

    def _turn_away(self, request: socket.socket, client_address) -> None:
        limit = self.viewer.config.max_clients
        log = logger.debug if self._warned_busy else logger.warning
        self._warned_busy = True
        log("viewer: %s turned away with 503: already %d connections, the most at once "
            "(max_clients)", client_address[0], limit)
        body = (f"busy: this viewer serves at most {limit} connections at once; "
                f"try again in a moment\n").encode()
        head = (f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8"
                f"\r\nContent-Length: {len(body)}\r\nRetry-After: 2\r\nConnection: close\r\n"
                f"Cache-Control: no-store\r\n\r\n").encode()
        try:
            request.setblocking(False)
            request.send(head + body)  # A few hundred bytes: a fresh socket's buffer takes them.
            request.shutdown(socket.SHUT_WR)
        except OSError:
            request.close()
            return
        # Closed later, in service_actions: closing with the request still unread would
        # reset the connection, and the client might never see the 503.
        self._turned_away.append((request, time.monotonic() + _TURNED_AWAY_S))
        while len(self._turned_away) > _MAX_TURNED_AWAY:
            self._turned_away.pop(0)[0].close()

    def service_actions(self) -> None:
        """Between accepts (at least every poll interval): read and drop what turned-away
        clients sent, and close them once they have closed or their time is up."""
        if not self._turned_away:
            return
        now = time.monotonic()
        waiting = []
        for sock, deadline in self._turned_away:
            done = now > deadline
            for _ in range(16):  # Bounded work per client and pass.
                if done:
                    break
                try:
                    done = not sock.recv(1 << 16)
                except BlockingIOError:
                    break
                except OSError:
                    done = True
            if done:
                sock.close()
            else:
                waiting.append((sock, deadline))
        self._turned_away = waiting

    def shutdown_request(self, request) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def server_close(self) -> None:
        for sock, _ in self._turned_away:
            sock.close()
        self._turned_away = []
        super().server_close()

    def handle_error(self, request, client_address) -> None:
        exc = sys.exception()
        if isinstance(exc, ConnectionError | TimeoutError):
            logger.debug("viewer: %s went away (%s)", client_address[0], exc)
        else:
            logger.error("viewer: error serving %s", client_address[0], exc_info=exc)


_AHEAD_HEAD = f"--{_BOUNDARY}\r\nContent-Type: image/jpeg\r\n\r\n".encode()


def _part(seq: int, jpeg: bytes, meta: tuple[int | None, float]) -> bytes:
    """One part of /stream.mjpg: boundary, headers naming the frame, the JPEG."""
    index, eeg_time = meta
    lines = [f"--{_BOUNDARY}", "Content-Type: image/jpeg", f"Content-Length: {len(jpeg)}",
             f"X-Sequence: {seq}"]
    if index is not None:
        lines.append(f"X-Frame-Index: {index}")
    lines.append(f"X-EEG-Time: {_eeg_time_text(eeg_time)}")
    return b"".join(("\r\n".join(lines).encode(), b"\r\n\r\n", jpeg, b"\r\n"))


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "neuropaint-viewer"
    protocol_version = "HTTP/1.1"  # Keep-alive for the status polls.
    timeout = IDLE_TIMEOUT_S  # While waiting for a request; answers get CLIENT_TIMEOUT_S.

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("viewer: %s %s", self.address_string(), format % args)

    def end_headers(self) -> None:
        for name, value in _SECURITY_HEADERS.items():
            self.send_header(name, value)
        super().end_headers()

    def handle_one_request(self) -> None:
        with contextlib.suppress(OSError):  # An idle kept-alive connection frees its slot.
            self.connection.settimeout(IDLE_TIMEOUT_S)
        super().handle_one_request()

    def do_GET(self) -> None:
        self._route(head=False)

    def do_HEAD(self) -> None:
        self._route(head=True)

    def _route(self, head: bool) -> None:
        self.connection.settimeout(CLIENT_TIMEOUT_S)
        viewer = self.server.viewer
        guard = viewer._guard
        hosts = self.headers.get_all("Host") or []
        if not guard.host_allowed(hosts[0] if len(hosts) == 1 else None):
            self._refuse(403, "forbidden: this viewer answers only to its own host names "
                              "(a guard against DNS rebinding; see --allow-host)", head)
            return
        target = urlsplit(self.path)
        query = parse_qs(target.query, keep_blank_values=True)
        if not guard.authorized(query, self.headers, self.client_address[0]):
            self._refuse(401, "unauthorized: this viewer needs its token; open the URL it "
                              "printed (.../?token=...)", head,
                         {"WWW-Authenticate": 'Bearer realm="neuropaint viewer"'})
            return
        # Only origin-form targets ("/path?query"): not absolute URLs (a proxy's form), not
        # "//..." (which urlsplit reads as a host, and which http.server quietly shortens to
        # "/...": hence the request line as sent).
        sent = self.requestline.split()[1] if len(self.requestline.split()) > 1 else ""
        path = unquote(target.path) if sent.startswith("/") and not sent.startswith("//") else ""
        if path in ("/", "/index.html"):
            clean = query.get("clean", [""])[0].lower() in _TRUE
            extra = {} if guard.token is None else {"Set-Cookie": guard.set_cookie()}
            self._send(viewer._clean_page if clean else viewer._page,
                       "text/html; charset=utf-8", head, extra)
        elif path == "/status.json":
            self._send(viewer._status_body(), "application/json", head)
        elif path == "/stream.mjpg":
            self._stream(head, ahead=query.get("ahead", [""])[0].lower() in _TRUE)
        elif path.startswith("/static/") and path[len("/static/"):] in viewer._assets:
            body, content_type = viewer._assets[path[len("/static/"):]]
            self._send(body, content_type, head)
        elif (match := _TARGET_PATH.match(path)) and (
                jpeg := viewer._target_jpeg(int(match.group(1)))) is not None:
            self._send(jpeg, "image/jpeg", head)
        else:
            self.send_error(404, "Not found")

    def _send(self, body: bytes, content_type: str, head: bool,
              extra: Mapping[str, str] | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _refuse(self, code: int, text: str, head: bool,
                extra: Mapping[str, str] | None = None) -> None:
        """A short plain-text refusal; the connection closes after it."""
        self.close_connection = True
        body = (text + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _stream(self, head: bool, ahead: bool) -> None:
        viewer = self.server.viewer
        with viewer._stream_client():
            self.close_connection = True  # The stream ends only when the connection does.
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={_BOUNDARY}")
            self.send_header("Connection", "close")
            self.end_headers()
            if head:
                return
            try:
                self._send_frames(viewer, ahead)
            except (OSError, ValueError) as exc:  # ValueError: the file was closed under us.
                logger.debug("viewer: stream client %s went away (%s)",
                             self.address_string(), exc)

    def _send_frames(self, viewer: Viewer, ahead: bool) -> None:
        # Two forms of one stream (see the module docstring, "Frame alignment"). Plain: each
        # part is written whole when its frame exists, so its headers can name the frame.
        # ahead=1 (the page's): every frame is followed at once by the next part's boundary
        # and headers, because a browser shows a part only once the next part's headers have
        # arrived (Chromium finishes an image when the next one starts); those headers are
        # written before the next frame exists, so they carry only Content-Type.
        if ahead:
            self.wfile.write(_AHEAD_HEAD)
        sent = 0
        part = b""
        repeated = True  # Plain form: the last part was sent again (a held painting).
        while True:
            newest = viewer._wait_newer(sent, timeout=_HOLD_REPEAT_S)
            if newest is None:
                return  # Stopping.
            if newest == sent:  # No new frame for a while: is the client still there?
                if self._peer_closed():
                    return
                if not repeated:  # Once, so that a browser on the plain form shows it too.
                    self.wfile.write(part)
                    repeated = True
                continue
            sent, jpeg, meta = viewer._newest_jpeg()
            if ahead:
                self.wfile.write(b"".join((jpeg, b"\r\n", _AHEAD_HEAD)))
            else:
                part = _part(sent, jpeg, meta)
                self.wfile.write(part)
                repeated = False

    def _peer_closed(self) -> bool:
        """True when the client has closed its end (a stream client never sends anything)."""
        readable, _, _ = select.select([self.connection], [], [], 0)
        if not readable:
            return False
        try:
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True


# -- the test card CLI ----------------------------------------------------------------------


def _test_card(size: int, fps: float, duration: float | None, viewer: Viewer) -> int:
    """Publish crossfading procedural paintings at ``fps`` until ``duration`` (None: forever)."""
    from datasets.procedural import STYLES, paint  # Only the CLI needs paintings.

    try:  # The LSL clock, as the engine's eeg_time: a recorder can align on it.
        from pylsl import local_clock
    except ImportError:  # pragma: no cover - pylsl is a dependency of live/
        def local_clock() -> float:
            return math.nan

    hold, fade = 3.0, 1.5  # Seconds each painting stays, and of each crossfade.
    period = hold + fade
    cache: dict[int, np.ndarray] = {}

    def painting(index: int) -> np.ndarray:
        if index not in cache:
            if len(cache) > 4:
                cache.clear()
            cache[index] = paint(STYLES[index % len(STYLES)], size, seed=index).astype(np.float32)
        return cache[index]

    start = time.perf_counter()
    next_time = start
    frame = 0
    shown: list[float] = []
    while duration is None or time.perf_counter() - start < duration:
        t = time.perf_counter() - start
        index = int(t // period)
        mix = max(0.0, (t - index * period - hold) / fade)  # 0 while holding, then up to 1.
        image = painting(index) * (1 - mix) + painting(index + 1) * mix
        shown = [s for s in shown if s > t - 2.0] + [t]
        measured = (len(shown) - 1) / (shown[-1] - shown[0]) if len(shown) > 1 else None
        viewer.publish(np.clip(image + 0.5, 0, 255).astype(np.uint8),
                       {"fps": measured, "frame": frame, "eeg_time": local_clock(),
                        "size": [size, size],
                        "state": f"test card: {STYLES[index % len(STYLES)]}"})
        frame += 1
        next_time += 1.0 / fps
        time.sleep(max(0.0, next_time - time.perf_counter()))
    return frame


def main(argv: Sequence[str] | None = None) -> int:
    """Serve a test card (moving procedural paintings) on the web viewer."""
    parser = argparse.ArgumentParser(
        prog="python -m live.viewer",
        description="Serve the web viewer with a moving test card, to set up a browser or a "
                    "projector before a model or a headset is there. Open the printed URL; "
                    "key f: full screen, key h: hide the overlay; add clean=1 to the URL "
                    "(/?clean=1) for the painting alone, as OBS or a projector takes it.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--serve", default=DEFAULT_ADDRESS, metavar="HOST:PORT",
                        help="where to listen (the default is this machine only; "
                             "0.0.0.0:PORT shows the painting to the network, with a token; "
                             "port 0: any free port)")
    parser.add_argument("--token", default=None,
                        help="token every request must carry (?token=... in the URL); None: "
                             "a random one on a network address, none on loopback")
    parser.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                        help="also answer to this host name (a DNS name or reverse proxy "
                             "pointing here); repeatable. The viewer's own names always work")
    parser.add_argument("--max-clients", type=int, default=16,
                        help="most connections at once (a browser holds 2 to 6); more get 503")
    parser.add_argument("--size", type=int, default=256, help="test card size in pixels")
    parser.add_argument("--fps", type=float, default=15.0, help="frames per second")
    parser.add_argument("--duration", type=float, default=None,
                        help="stop after this many seconds (default: run until Ctrl-C)")
    parser.add_argument("--title", default="neuropaint test card", help="title of the page")
    parser.add_argument("--log-level", default="INFO", help="logging level")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    host, port = parse_address(args.serve)
    size = check_int(args.size, "size", minimum=16)
    fps = check_positive(args.fps, "fps")
    duration = None if args.duration is None else check_positive(args.duration, "duration")
    viewer = Viewer(host, port, title=args.title, token=args.token,
                    max_clients=check_int(args.max_clients, "max_clients", minimum=1),
                    allowed_hosts=args.allow_host)
    with viewer:
        print(f"viewer: {viewer.url}  (Ctrl-C stops)", flush=True)
        frames = _test_card(size, fps, duration, viewer)
    print(f"viewer: stopped after {frames} frames", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
