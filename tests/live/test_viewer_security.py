"""live.viewer on a network: the Host check (DNS rebinding), the token, own routes only, the
connection cap. Real sockets on this machine, real http.client requests."""

from __future__ import annotations

import http.client
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from live.viewer import Viewer, is_loopback
from live.viewer_guard import host_name
from neuropaint.validate import NeuropaintError
from tests.live.test_viewer import REPO, _port, _request, _wait_for

TOKEN = "stage-token-0123456789abcdef"


def _raw(port: int, request: bytes, host: str = "127.0.0.1") -> tuple[int, dict, bytes]:
    """Send ``request`` as written (any Host, any request line); the status, headers, body."""
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        status, *lines = head.decode().split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)}
        size = int(headers.get("content-length", 0))
        while len(body) < size:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    return int(status.split()[1]), headers, body


def _get(port: int, path: str = "/status.json", host: str | None = "127.0.0.1",
         headers: dict | None = None) -> tuple[int, dict, bytes]:
    lines = [f"GET {path} HTTP/1.1"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return _raw(port, ("\r\n".join(lines) + "\r\nConnection: close\r\n\r\n").encode())


@pytest.fixture
def viewer() -> Iterator[Viewer]:
    with Viewer(port=0) as viewer:
        yield viewer


def _lan_address() -> str | None:
    """An address of this machine that is not loopback, or None."""
    candidates = [socket.gethostbyname(socket.gethostname())]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # UDP: picks the outgoing address, sends nothing.
            candidates.append(probe.getsockname()[0])
        except OSError:
            pass
    return next((a for a in candidates if not is_loopback(a) and a != "0.0.0.0"), None)


# -- names and tokens ----------------------------------------------------------------------------


@pytest.mark.parametrize(("host", "expected"), [
    ("127.0.0.1", True), ("127.3.2.1", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("LocalHost.", True), ("stage.localhost", True),
    ("::ffff:127.0.0.1", True),
    ("0.0.0.0", False), ("::", False), ("192.0.2.7", False), ("8.8.8.8", False),
    ("no-such-host.invalid", False), ("", False),
])
def test_is_loopback(host, expected):
    assert is_loopback(host) is expected


@pytest.mark.parametrize(("header", "name"), [
    ("127.0.0.1:8765", "127.0.0.1"), ("127.0.0.1", "127.0.0.1"), ("LocalHost:1", "localhost"),
    ("localhost.:8765", "localhost"), ("localhost:", "localhost"), ("[::1]:8765", "::1"),
    ("[::1]", "::1"), ("studio-pc.local", "studio-pc.local"),
    ("::1", None), ("[::1", None), ("[nope]:80", None), ("[::1]x", None), ("a:b", None),
    ("", None), (None, None),
])
def test_host_header_names(header, name):
    assert host_name(header) == name


@pytest.mark.parametrize(("token", "shown"), [("", "''"), ("has space", "'has space'"),
                                              ("x" * 257, "'xxx"), (12345, "int")])
def test_bad_tokens_are_one_line_errors(token, shown):
    with pytest.raises(NeuropaintError, match=rf"^'token' must be 1 to 256 letters, digits or "
                                              rf"'-', '_', '\.', '~' \(it goes in the URL\), "
                                              rf"got {shown}"):
        Viewer(port=0, token=token)


@pytest.mark.parametrize("name", ["bad host", "http://studio.example", "studio.example:80", ""])
def test_bad_allowed_hosts_are_one_line_errors(name):
    with pytest.raises(NeuropaintError, match=r"^'allowed_hosts' must be host names such as "
                                              r"studio-pc\.local \(no port, no scheme\), got"):
        Viewer(port=0, allowed_hosts=[name])


def test_cli_rejects_an_empty_token_in_one_line():
    bad = subprocess.run([sys.executable, "-m", "live.viewer", "--token", ""], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "python -m live.viewer: error: 'token' must be 1 to 256 letters, digits or '-', '_', "
        "'.', '~' (it goes in the URL), got ''."]


# -- the Host check --------------------------------------------------------------------------


def test_loopback_viewer_answers_only_to_its_own_names(caplog):
    caplog.set_level(logging.INFO, logger="live.viewer")
    with Viewer(port=0, allowed_hosts=["Studio.Example."]) as viewer:
        port = _port(viewer)
        for host in ["127.0.0.1", f"127.0.0.1:{port}", "localhost", f"LOCALHOST:{port}",
                     "localhost.", "[::1]", f"[::1]:{port}", "studio.example",
                     f"studio.example:{port}"]:
            assert _get(port, host=host)[0] == 200, host
        for host in ["evil.example", f"evil.example:{port}", "evil.example", "192.0.2.2",
                     f"127.0.0.1.evil.example:{port}", "localhost:http", "[::1", None]:
            status, headers, body = _get(port, host=host)
            assert status == 403, host
            assert body == (b"forbidden: this viewer answers only to its own host names "
                            b"(a guard against DNS rebinding; see --allow-host)\n")
            assert headers["connection"] == "close" and headers["cache-control"] == "no-store"
        two = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n\r\n"
        assert _raw(port, two)[0] == 403  # Two Host headers: which one would a proxy use?
        # http.client writes the Host it connects to: the everyday case passes.
        assert _request(viewer, "/")[0] == 200
    refused = [r.getMessage() for r in caplog.records if "refused a request" in r.getMessage()]
    assert len(refused) == 7, refused  # Once per distinct Host value, not once per request.
    assert sum("'evil.example'" in m for m in refused) == 1
    assert all(r.levelno == logging.WARNING for r in caplog.records
               if "refused a request" in r.getMessage())


def test_network_bind_answers_ip_literals_and_this_machines_names():
    with Viewer("0.0.0.0", 0, token=TOKEN, allowed_hosts=["stage.example"]) as viewer:
        port = _port(viewer)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        for host in ["127.0.0.1", "192.0.2.55:80", "[2001:db8::1]", f"[::1]:{port}",
                     "localhost", socket.gethostname(), socket.gethostname().split(".")[0]
                     + ".local", "stage.example"]:
            assert _get(port, host=host, headers=auth)[0] == 200, host
        for host in ["evil.example", "192.0.2.55.nip.io", None]:
            assert _get(port, host=host, headers=auth)[0] == 403, host  # The token is no excuse.


# -- the token ---------------------------------------------------------------------------------


def test_network_bind_makes_a_token_and_refuses_requests_without_it(caplog):
    caplog.set_level(logging.INFO, logger="live.viewer")
    with Viewer("0.0.0.0", 0) as viewer:  # Binding 0.0.0.0 is a network bind.
        port = _port(viewer)
        token = viewer.token
        assert token is not None and len(token) >= 20
        assert viewer.url == f"http://127.0.0.1:{port}/?token={token}"
        for path in ["/", "/?clean=1", "/status.json", "/stream.mjpg", "/static/viewer.js",
                     "/targets/0.jpg", "/no-such-page", "/static/../viewer.py",
                     f"/?token={token}x", f"/?token={token[:-1]}", "/?token=",
                     "/?token=%C3%A9t%C3%A9"]:  # Non-ASCII: still a plain 401.
            status, headers, body = _get(port, path)
            assert status == 401, path
            assert body.startswith(b"unauthorized: this viewer needs its token")
            assert headers["www-authenticate"].startswith("Bearer")
            assert "set-cookie" not in headers
        for headers in [{"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {token}"},
                        {"Cookie": f"neuropaint_token_{port}=wrong"},
                        {"Cookie": f"neuropaint_token_1={token}"}]:  # Another port's cookie.
            assert _get(port, "/status.json", headers=headers)[0] == 401, headers

        # The three ways in.
        status, headers, page = _get(port, f"/?token={token}")
        assert status == 200 and b"<title>" in page
        cookie = headers["set-cookie"]
        assert cookie == f"neuropaint_token_{port}={token}; Path=/; HttpOnly; SameSite=Strict"
        assert _get(port, "/static/viewer.css",
                    headers={"Cookie": f"other=1; neuropaint_token_{port}={token}"})[0] == 200
        assert _get(port, "/status.json", headers={"Authorization": f"Bearer {token}"})[0] == 200
        assert _get(port, f"/status.json?token={token}")[0] == 200
        # An unknown path with the token is the plain 404.
        assert _get(port, f"/no-such-page?token={token}")[0] == 404
    refused = [r for r in caplog.records if "without the right token" in r.getMessage()]
    assert len(refused) == 1  # Once per client address.


def test_a_given_token_is_used_and_also_guards_loopback():
    with Viewer("0.0.0.0", 0, token=TOKEN) as viewer:
        assert viewer.url.endswith(f"/?token={TOKEN}") and viewer.token == TOKEN
    # Loopback: none needed, none made (None for both: what live.render passes by default).
    with Viewer(port=0, token=None, allowed_hosts=None) as viewer:
        assert viewer.token is None and "token" not in viewer.url
        assert _get(_port(viewer))[0] == 200
    with Viewer(port=0, token=TOKEN) as viewer:  # Given on loopback: required.
        port = _port(viewer)
        assert viewer.url == f"http://127.0.0.1:{port}/?token={TOKEN}"
        assert _get(port)[0] == 401
        assert _get(port, f"/status.json?token={TOKEN}")[0] == 200


def test_a_restarted_network_viewer_keeps_its_token():
    viewer = Viewer("0.0.0.0", 0)
    viewer.start()
    token, port = viewer.token, _port(viewer)
    viewer.stop()
    viewer.config = viewer.config.model_copy(update={"port": port})  # Same port, as in use.
    viewer.start()  # Again, on the same port: an open page's cookie still lets it in.
    try:
        assert viewer.token == token and viewer.url.endswith(f"?token={token}")
        assert _get(port, f"/status.json?token={token}")[0] == 200
        assert _get(port, "/status.json",
                    headers={"Cookie": f"neuropaint_token_{port}={token}"})[0] == 200
    finally:
        viewer.stop()


def test_a_lan_address_bind_requires_the_token():
    address = _lan_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address")
    with Viewer(address, 0) as viewer:
        port = _port(viewer)
        assert viewer.url == f"http://{address}:{port}/?token={viewer.token}"
        get = f"GET /status.json HTTP/1.1\r\nHost: {address}:{port}\r\n\r\n"
        assert _raw(port, get.encode(), host=address)[0] == 401
        get = f"GET /status.json?token={viewer.token} HTTP/1.1\r\nHost: {address}\r\n\r\n"
        assert _raw(port, get.encode(), host=address)[0] == 200


# -- own routes only ---------------------------------------------------------------------------


@pytest.mark.parametrize("target", [
    "http://127.0.0.1:{port}/",
    "http://127.0.0.1:{port}/static/viewer.js",
    "http://evil.example/status.json",
    "//etc/passwd",
    "//127.0.0.1/status.json",
    "//static/viewer.js",
    "*",
    "status.json",
    "/static/%2e%2e/%2e%2e/pyproject.toml",
    "/static/..\\viewer.py",
    "/static/viewer.js%00.css",
])
def test_absolute_urls_and_odd_targets_are_404(viewer, target):
    port = _port(viewer)
    request = f"GET {target.format(port=port)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    status, _, body = _raw(port, request.encode())
    assert status == 404, target
    assert b"import" not in body and b"root:" not in body and b"[project]" not in body


# -- the connection cap ---------------------------------------------------------------------------


def test_over_max_clients_get_503_at_once_without_a_thread():
    with Viewer(port=0, max_clients=3) as viewer:
        port = _port(viewer)
        idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(3)]
        _wait_for(lambda: viewer.connections == 3, 5, "3 connections")
        threads = threading.active_count()
        durations = []
        for _ in range(20):
            start = time.perf_counter()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/status.json")
            response = conn.getresponse()
            body = response.read()
            durations.append(time.perf_counter() - start)
            conn.close()
            assert response.status == 503
            assert body == b"busy: this viewer serves at most 3 connections at once; try again " \
                           b"in a moment\n"
            assert response.getheader("Retry-After") == "2"
        assert max(durations) < 0.5, durations  # Answered by the accept loop, not queued.
        assert threading.active_count() == threads  # No thread per refused connection.
        assert viewer.connections == 3
        idle[0].close()  # A slot frees up: the next request is served.
        _wait_for(lambda: _request(viewer, "/status.json")[0] == 200, 5, "a free slot")
        for sock in idle[1:]:
            sock.close()
        _wait_for(lambda: viewer.connections == 0, 5, "every connection closed")


def test_max_clients_is_checked():
    with pytest.raises(NeuropaintError, match=r"^invalid ViewerConfig: 'max_clients'"):
        Viewer(port=0, max_clients=0)
