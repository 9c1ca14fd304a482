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
- The HTTP side is :mod:`live.viewer_http`: the endpoints, the parts of ``/stream.mjpg`` and
  the headers that name each frame (``X-Sequence``, ``X-Frame-Index``, ``X-EEG-Time``), slow
  clients, the connection cap (``max_clients``, then 503).
- What it exposes: the painting (``/stream.mjpg``, the target thumbnails) and everything in the
  published status at ``/status.json``: band powers, signal and artifact state, and with a
  performer profile the state posteriors, committed state and controls. That is personal data
  (EEG-derived): keep the viewer on loopback (the default) unless the audience should see it;
  on a network, it asks for a token.
- Clean stage mode: ``/?clean=1`` is the painting alone, fitted to the window (contain,
  aspect kept) on black: no panels, button, text or cursor, and black rather than a broken
  image while the stream is away. For OBS's browser source or a projector's full-screen
  browser. The server marks the page's ``<body class="clean">``, so nothing flashes first.
- Latest-value semantics: :meth:`Viewer.publish` copies the frame, bumps a sequence number
  and wakes the stream threads; it never waits for a client. Each client thread sends the
  newest frame whenever its previous write has finished, so a slow client skips frames and
  nothing queues. A JPEG is encoded at most once per published frame, lazily by the first
  client thread that needs it (Pillow releases the GIL while it encodes), and not at all when
  nobody watches: the render loop never pays for encoding.
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
import io
import json
import logging
import math
import secrets
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from live.viewer_guard import Guard, check_allowed_hosts, check_token, is_loopback, new_token
from live.viewer_http import (
    CLIENT_TIMEOUT_S,
    IDLE_TIMEOUT_S,
    _bind_error,
    _eeg_time_text,
    _frame_meta,
    _load_static,
    _resolve,
    _Server,
    _url_host,
)
from neuropaint.logs import run_cli, setup_logging
from neuropaint.net import split_host_port
from neuropaint.validate import NeuropaintError, build_config, check_int, check_positive

logger = logging.getLogger(__name__)

__all__ = ["CLIENT_TIMEOUT_S", "DEFAULT_ADDRESS", "IDLE_TIMEOUT_S", "TARGET_SIZE", "Viewer",
           "ViewerConfig", "is_loopback", "parse_address"]

DEFAULT_ADDRESS = "127.0.0.1:8765"
TARGET_SIZE = 160  # Longest side of a target thumbnail in pixels.


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
