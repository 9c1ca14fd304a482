"""The web viewer: the live painting full-window in any browser, with band-power meters.

Examples
--------
python -m live.viewer                            # test card at http://127.0.0.1:8765/
python -m live.viewer --serve 0.0.0.0:8765       # visible on the network (a projector PC)
python -m live.viewer --serve :0 --size 512 --fps 20 --duration 30

The command serves a moving test card (crossfading :mod:`datasets.procedural` paintings) so a
projector and a browser can be set up before a model or a headset is there. The engine
(``python -m live.render``) uses :class:`Viewer` directly::

    viewer = Viewer("127.0.0.1", 8765)
    url = viewer.start()
    viewer.publish(image, {"fps": 15.2, "age_ms": {"p50": 48, "p95": 80}, "signal": "ok"})
    viewer.stop()

Design
------
- Standard library only: :class:`http.server.ThreadingHTTPServer`, one thread per connection.
  The painting is an MJPEG stream (``multipart/x-mixed-replace``) shown by an ``<img>``, which
  every browser plays without a line of script; the page polls ``/status.json`` for the meters.
  Each JPEG carries its sequence number in its comment (``neuropaint frame 17``); parts have
  no Content-Length, because each frame is sent together with the next part's headers so
  that browsers show it at once (see ``_Handler._send_frames``).
- Endpoints: ``/`` (the page), ``/stream.mjpg``, ``/status.json``, ``/static/<asset>`` for the
  files of the package folder ``live/static`` (looked up by exact name in a table built at
  start, so no request path can reach any other file), ``/targets/<i>.jpg`` for the
  thumbnails of a performer's target paintings (:meth:`Viewer.set_targets`; ``i`` from 0, only
  the indices that exist), anything else 404. Every response
  carries ``Cache-Control: no-store`` and a Content-Security-Policy that allows only this
  origin's own scripts, styles and images.
- Latest-value semantics: :meth:`Viewer.publish` copies the frame, bumps a sequence number
  and wakes the stream threads; it never waits for a client. Each client thread sends the
  newest frame whenever its previous write has finished, so a slow client skips frames and
  nothing queues. A JPEG is encoded at most once per published frame, lazily by the first
  client thread that needs it (Pillow releases the GIL while it encodes), and not at all when
  nobody watches: the render loop never pays for encoding.
- A client that stops reading blocks only its own thread, until its socket write times out
  (:data:`CLIENT_TIMEOUT_S`) or :meth:`Viewer.stop` shuts its socket down. Disconnects
  (broken pipe, reset) are logged at DEBUG level, never as tracebacks.
- Binds loopback by default; binding any other address logs a warning that the painting is
  visible on the network.
- What the page shows comes from the published status (all keys optional; see
  :meth:`Viewer.publish`): the band meters, signal and frame figures in a panel at the bottom
  left; with an ``instrument`` key (``live.render --profile``) a second panel at the bottom
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
from urllib.parse import unquote, urlsplit

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from neuropaint.logs import run_cli, setup_logging
from neuropaint.validate import NeuropaintError, build_config, check_int, check_positive

logger = logging.getLogger(__name__)

__all__ = ["CLIENT_TIMEOUT_S", "DEFAULT_ADDRESS", "TARGET_SIZE", "Viewer", "ViewerConfig",
           "parse_address"]

DEFAULT_ADDRESS = "127.0.0.1:8765"
CLIENT_TIMEOUT_S = 15.0  # A socket read or write that waits longer drops that client.
_BOUNDARY = "neuropaintframe"
_STATIC_PACKAGE = "live"
_STATIC_FOLDER = "static"
_PAGE = "index.html"  # Served at "/" with the title filled in, not under /static/.
_TARGET_PATH = re.compile(r"^/targets/(0|[1-9][0-9]{0,3})\.jpg$")
TARGET_SIZE = 160  # Longest side of a target thumbnail in pixels.
_TITLE_MARK = "{{title}}"
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
_ADDRESS_EXAMPLES = "127.0.0.1:8765, :8765, 0.0.0.0:8765 or [::1]:8765"
# One DNS label: letters, digits and inner hyphens (RFC 1123).
_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


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
    if not isinstance(text, str):
        raise NeuropaintError(f"'serve' must be a string HOST:PORT, got {type(text).__name__}.")
    value = text.strip()

    def bad(why: str) -> NeuropaintError:
        return NeuropaintError(f"'serve' must be HOST:PORT such as {_ADDRESS_EXAMPLES}; "
                               f"got {text!r}: {why}.")

    if value.startswith("["):
        host, closed, rest = value[1:].partition("]")
        if not closed or not rest.startswith(":"):
            raise bad("an IPv6 address in brackets must be followed by :PORT")
        port_text = rest[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise bad(f"{host!r} is not an IPv6 address") from None
    else:
        host, colon, port_text = value.rpartition(":")
        if not colon:
            raise bad("no port (write :PORT for this machine only)")
        if ":" in host:
            raise bad("an IPv6 address goes in brackets, e.g. [::1]:8765")
        host = host or "127.0.0.1"
        _check_host(host, bad)
    if not (port_text.isascii() and port_text.isdigit()) or int(port_text) > 65535:
        raise bad(f"the port must be a number from 0 to 65535, not {port_text!r}")
    return host, int(port_text)


def _check_host(host: str, bad) -> None:
    labels = host.rstrip(".").split(".")
    if all(label.isdigit() for label in labels):  # Looks numeric: it must be a real IPv4.
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise bad(f"{host!r} is not an IPv4 address") from None
        return
    if len(host) > 253 or not all(_LABEL.match(label) for label in labels):
        raise bad(f"{host!r} is not a host name or IP address")


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
    max_clients: int = Field(32, ge=1, description="Most stream clients at once; more get "
                             "503, so an audience cannot starve the render loop of CPU.")


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
    max_clients : int
        Most stream clients at once.

    Notes
    -----
    Use as a context manager (``with Viewer(...) as viewer:``) or call :meth:`start` and
    :meth:`stop`. It can be started again after :meth:`stop`; open pages reconnect by
    themselves.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 8765, *, title: str = "neuropaint",
                 jpeg_quality: int = 85, max_clients: int = 32) -> None:
        self.config: ViewerConfig = build_config(ViewerConfig, host=host, port=port,
                                                 title=title, jpeg_quality=jpeg_quality,
                                                 max_clients=max_clients)
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
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._url = ""
        self._boot = ""
        self._page = b""
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
        self._page, self._assets = _load_static(self.config.title)
        host = self.config.host.strip("[]")
        family, sockaddr = _resolve(host, self.config.port)
        try:
            server = _Server(sockaddr, family, self)
        except OSError as exc:
            raise _bind_error(exc, host, self.config.port) from None
        bound = server.server_address
        port = bound[1]
        with self._cond:
            self._stopping = False
        self._server = server
        self._boot = secrets.token_hex(4)
        self._url = f"http://{_url_host(host, bound[0])}:{port}/"
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"viewer:{port}", daemon=True)
        self._thread.start()
        if not ipaddress.ip_address(bound[0]).is_loopback:
            logger.warning("the viewer listens on %s port %d: the painting and the band powers "
                           "are visible on the network to anyone who can reach this machine "
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
        """The page's URL while running (``http://127.0.0.1:8765/``), else ``""``."""
        return self._url

    @property
    def clients(self) -> int:
        """Stream clients connected now."""
        with self._cond:
            return self._clients

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
            ``state``, ``frame``, ``size`` ([H, W]); ``instrument`` (a performer profile
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
        with self._cond:
            self._seq += 1
            self._image = frame
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

    def _newest_jpeg(self) -> tuple[int, bytes]:
        """The newest frame as JPEG, encoded on first demand and shared by every client."""
        with self._encode_lock:
            with self._cond:
                seq, image = self._seq, self._image
                if self._jpeg_seq == seq:
                    return seq, self._jpeg
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, format="JPEG", quality=self.config.jpeg_quality,
                                        comment=f"neuropaint frame {seq}")
            data = buffer.getvalue()
            with self._cond:
                self._jpeg_seq, self._jpeg = seq, data
            return seq, data

    @contextlib.contextmanager
    def _stream_client(self) -> Iterator[bool]:
        """Count a stream client while it is connected; yields False when there are too many."""
        with self._cond:
            admitted = self._clients < self.config.max_clients
            if admitted:
                self._clients += 1
        try:
            yield admitted
        finally:
            if admitted:
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


def _load_static(title: str) -> tuple[bytes, dict[str, tuple[bytes, str]]]:
    """The page (title filled in, HTML-escaped) and the table of static assets by file name."""
    folder = importlib.resources.files(_STATIC_PACKAGE) / _STATIC_FOLDER
    page = (folder / _PAGE).read_text(encoding="utf-8")
    assets = {}
    for entry in folder.iterdir():
        if entry.is_file() and entry.name != _PAGE and not entry.name.startswith("."):
            suffix = "." + entry.name.rpartition(".")[2]
            content_type = _CONTENT_TYPES.get(suffix, "application/octet-stream")
            assets[entry.name] = (entry.read_bytes(), content_type)
    return page.replace(_TITLE_MARK, html.escape(title)).encode(), assets


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
    """One thread per connection; knows its open connections so that stop() can close them."""

    daemon_threads = True

    def __init__(self, address: tuple, family: socket.AddressFamily, viewer: Viewer) -> None:
        self.address_family = family
        self.viewer = viewer
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, which can stall for seconds on a
        # machine without DNS; the name is only used in CGI environments.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = self.server_address[1]

    def process_request(self, request, client_address) -> None:
        # Tracked here, in the accept loop, so that no connection escapes close_connections().
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

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

    def handle_error(self, request, client_address) -> None:
        exc = sys.exception()
        if isinstance(exc, ConnectionError | TimeoutError):
            logger.debug("viewer: %s went away (%s)", client_address[0], exc)
        else:
            logger.error("viewer: error serving %s", client_address[0], exc_info=exc)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "neuropaint-viewer"
    protocol_version = "HTTP/1.1"  # Keep-alive for the status polls.
    timeout = CLIENT_TIMEOUT_S

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("viewer: %s %s", self.address_string(), format % args)

    def end_headers(self) -> None:
        for name, value in _SECURITY_HEADERS.items():
            self.send_header(name, value)
        super().end_headers()

    def do_GET(self) -> None:
        self._route(head=False)

    def do_HEAD(self) -> None:
        self._route(head=True)

    def _route(self, head: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        viewer = self.server.viewer
        if path in ("/", "/index.html"):
            self._send(viewer._page, "text/html; charset=utf-8", head)
        elif path == "/status.json":
            self._send(viewer._status_body(), "application/json", head)
        elif path == "/stream.mjpg":
            self._stream(head)
        elif path.startswith("/static/") and path[len("/static/"):] in viewer._assets:
            body, content_type = viewer._assets[path[len("/static/"):]]
            self._send(body, content_type, head)
        elif (match := _TARGET_PATH.match(path)) and (
                jpeg := viewer._target_jpeg(int(match.group(1)))) is not None:
            self._send(jpeg, "image/jpeg", head)
        else:
            self.send_error(404, "Not found")

    def _send(self, body: bytes, content_type: str, head: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _stream(self, head: bool) -> None:
        viewer = self.server.viewer
        with viewer._stream_client() as admitted:
            if not admitted:
                self.send_error(503, "Too many viewers",
                                f"at most {viewer.config.max_clients} streams at once")
                return
            self.close_connection = True  # The stream ends only when the connection does.
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={_BOUNDARY}")
            self.send_header("Connection", "close")
            self.end_headers()
            if head:
                return
            try:
                self._send_frames(viewer)
            except (OSError, ValueError) as exc:  # ValueError: the file was closed under us.
                logger.debug("viewer: stream client %s went away (%s)",
                             self.address_string(), exc)

    def _send_frames(self, viewer: Viewer) -> None:
        # A browser shows a part of the stream only once the headers of the next part have
        # arrived (Chromium finishes an image when the next one starts), so every frame is
        # followed at once by the next boundary and part headers: without them the page would
        # show each frame one frame late, and a painting held still would never appear.
        # Hence no Content-Length (the next size is not known yet): readers find the boundary,
        # as multipart readers do. The frame's sequence number is in the JPEG's comment.
        next_part = f"--{_BOUNDARY}\r\nContent-Type: image/jpeg\r\n\r\n".encode()
        self.wfile.write(next_part)
        sent = 0
        while True:
            newest = viewer._wait_newer(sent, timeout=1.0)
            if newest is None:
                return  # Stopping.
            if newest == sent:  # No new frame for a while: is the client still there?
                if self._peer_closed():
                    return
                continue
            sent, jpeg = viewer._newest_jpeg()
            self.wfile.write(b"".join((jpeg, b"\r\n", next_part)))

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
                       {"fps": measured, "frame": frame, "size": [size, size],
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
                    "key f: full screen, key h: hide the overlay.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--serve", default=DEFAULT_ADDRESS, metavar="HOST:PORT",
                        help="where to listen (the default is this machine only; "
                             "0.0.0.0:PORT shows the painting to the network; port 0: any "
                             "free port)")
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
    with Viewer(host, port, title=args.title) as viewer:
        print(f"viewer: {viewer.url}  (Ctrl-C stops)", flush=True)
        frames = _test_card(size, fps, duration, viewer)
    print(f"viewer: stopped after {frames} frames", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
