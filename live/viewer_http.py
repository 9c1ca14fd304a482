"""The viewer's HTTP server: routes, guard, MJPEG parts.

The serving side of :class:`live.viewer.Viewer`, which owns the frames, the status and the
lifecycle and starts a :class:`_Server` here; nothing in this module is public API (import
from :mod:`live.viewer`).

Design
------
- Endpoints: ``/`` (the page; ``/?clean=1`` the clean stage page), ``/stream.mjpg``,
  ``/status.json``, ``/static/<asset>`` for the files of the package folder ``live/static``
  (looked up by exact name in a table built at start, so no request path can reach any other
  file), ``/targets/<i>.jpg`` for the thumbnails of a performer's target paintings
  (:meth:`~live.viewer.Viewer.set_targets`; ``i`` from 0, only the indices that exist),
  anything else 404 (absolute URLs and ``//`` paths in the request line too). Only GET and HEAD. Every response
  carries ``Cache-Control: no-store`` and a Content-Security-Policy that allows only this
  origin's own scripts, styles and images.
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
- A client that stops reading blocks only its own thread, until its socket write times out
  (:data:`CLIENT_TIMEOUT_S`) or :meth:`~live.viewer.Viewer.stop` shuts its socket down.
  Disconnects (broken pipe, reset) are logged at DEBUG level, never as tracebacks.
- At most ``max_clients`` connections at once (16 by default; a browser holds 2 to 6): the
  accept loop answers one more with a canned 503 itself, without a thread, and a kept-alive
  connection idle for :data:`IDLE_TIMEOUT_S` is closed to free its slot.
- Who may ask is :mod:`live.viewer_guard`'s decision (Host check, token); the handler asks it
  before routing and answers 403 or 401 with a short plain-text reason.
"""

from __future__ import annotations

import contextlib
import errno
import html
import importlib.resources
import ipaddress
import logging
import math
import re
import select
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np

from neuropaint.validate import NeuropaintError

if TYPE_CHECKING:  # Only for annotations: live.viewer imports this module.
    from live.viewer import Viewer

# The viewer's logger, not this module's: what the viewer says keeps one name (as in
# live.viewer_guard), so a logging config or a test that listens to "live.viewer" hears all.
logger = logging.getLogger("live.viewer")

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
