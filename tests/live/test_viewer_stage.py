"""live.viewer on stage: frame alignment headers, a render loop that never waits, the clean
stage page and the size truth in real headless Chromium."""

from __future__ import annotations

import http.client
import io
import json
import logging
import math
import subprocess
import sys
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image

from live.devtools import CHROMIUM, Chromium
from live.viewer import Viewer
from tests.live.test_viewer import (
    INSTRUCTION,
    REPO,
    TARGET_COLOURS,
    _instrument,
    _MjpegReader,
    _red,
    _request,
    _solid,
    _wait_for,
)


@pytest.fixture
def quiet_log(caplog, capfd) -> Iterator[None]:
    """Fails the test if the viewer logged an error, a traceback on stderr, or a warning other
    than the one a network bind always gives."""
    caplog.set_level(logging.DEBUG, logger="live.viewer")
    yield
    loud = [r for r in caplog.records if (r.levelno >= logging.WARNING or r.exc_info)
            and "visible on the network" not in r.getMessage()]
    assert not loud, [r.getMessage() for r in loud]
    assert "Traceback" not in capfd.readouterr().err


def _status(viewer: Viewer) -> dict:
    return json.loads(_request(viewer, "/status.json")[2])["status"]


# -- frame alignment ---------------------------------------------------------------------------


def test_stream_parts_name_their_frame_and_eeg_time(quiet_log):
    with Viewer(port=0) as viewer:
        reader = _MjpegReader(viewer)
        viewer.publish(_red(0), {"frame": 17, "eeg_time": 1234.567891})
        seq, jpeg = reader.frame()
        assert reader.part == {"content-type": "image/jpeg", "content-length": str(len(jpeg)),
                               "x-sequence": "1", "x-frame-index": "17",
                               "x-eeg-time": "1234.567891"}
        assert Image.open(io.BytesIO(jpeg)).info["comment"] == \
            b"neuropaint frame 1 index 17 eeg_time 1234.567891"
        assert _status(viewer)["frame"] == 17 and _status(viewer)["eeg_time"] == 1234.567891

        # numpy numbers as the engine has them; NaN (no EEG yet) is "nan", null in the JSON.
        viewer.publish(_red(1), {"frame": np.int64(18), "eeg_time": np.float64("nan")})
        reader.frame()
        assert (reader.part["x-frame-index"], reader.part["x-eeg-time"]) == ("18", "nan")
        assert _status(viewer)["eeg_time"] is None

        # Neither key (a status from elsewhere): no index, and the EEG time is unknown.
        viewer.publish(_red(2), {"signal": "ok"})
        seq, jpeg = reader.frame()
        assert seq == 3 and "x-frame-index" not in reader.part
        assert reader.part["x-eeg-time"] == "nan"
        for bad in [True, 1.5, "19", None]:  # Not a frame counter: left out, never guessed.
            viewer.publish(_red(3), {"frame": bad, "eeg_time": "soon"})
            reader.frame()
            assert "x-frame-index" not in reader.part and reader.part["x-eeg-time"] == "nan"
        reader.close()


def test_a_held_painting_is_sent_once_more_and_the_page_form_sends_headers_ahead(quiet_log):
    with Viewer(port=0) as viewer:
        plain = _MjpegReader(viewer)
        ahead = _MjpegReader(viewer, ahead=True)
        viewer.publish(_red(0), {"frame": 5, "eeg_time": 10.0})
        # The page's form: the frame, and at once the next part's headers (frame() returns only
        # once those arrived), which cannot name a frame that does not exist yet.
        assert ahead.frame()[0] == 1 and ahead.part == {"content-type": "image/jpeg"}
        start = time.monotonic()
        first = plain.frame()
        again = plain.frame()  # The painting holds: the same part once more, for browsers.
        assert again == first and plain.part["x-sequence"] == "1"
        assert 0.5 < time.monotonic() - start < 3.0
        plain.sock.settimeout(1.5)
        with pytest.raises(TimeoutError):  # Only once.
            plain.sock.recv(1)
        viewer.publish(_red(1), {"frame": 6, "eeg_time": 10.1})
        plain.sock.settimeout(10)
        assert plain.frame()[0] == 2 and plain.part["x-frame-index"] == "6"
        assert ahead.frame()[0] == 2
        plain.close()
        ahead.close()



def test_cli_test_card_publishes_frame_and_eeg_time_and_takes_a_token():
    from pylsl import local_clock

    token = "cli-stage-token-0123456789"
    proc = subprocess.Popen([sys.executable, "-m", "live.viewer", "--serve", "0.0.0.0:0",
                             "--token", token, "--duration", "3", "--size", "32", "--fps",
                             "10"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("viewer: http://127.0.0.1:") and f"/?token={token} " in line, line
        url = urlsplit(line.split()[1])
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        conn.request("GET", "/stream.mjpg")
        assert conn.getresponse().status == 401  # No token, no painting.
        conn.close()
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        conn.request("GET", f"/stream.mjpg?token={token}")
        response = conn.getresponse()
        assert response.status == 200
        head = b""
        while head.count(b"\r\n\r\n") < 1:
            head += response.read1(256)
        part = dict(line.split(": ", 1) for line in
                    head.split(b"\r\n\r\n")[0].decode().split("\r\n")[1:])
        conn.close()
        assert int(part["X-Frame-Index"]) >= 0
        assert math.isfinite(float(part["X-EEG-Time"]))
        assert abs(float(part["X-EEG-Time"]) - local_clock()) < 5  # The LSL clock.
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err


# -- the clean stage page, in a real browser ---------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(),
                    reason="needs Debian's chromium at /usr/bin/chromium (.ci/run installs it)")
def test_chromium_clean_mode_is_the_painting_alone_and_the_panel_tells_the_size(tmp_path,
                                                                                quiet_log):
    """On a network bind (token in the URL, then the cookie): /?clean=1 shows the 320x120
    painting fitted to the 640x480 window (640x240, black above and below), nothing else, no
    cursor, even with an instrument and an instruction in the status; the normal page's panel
    says how much the browser enlarges the painting."""
    viewer = Viewer("0.0.0.0", 0, title="stage test")
    url = viewer.start()
    viewer.set_targets(list(TARGET_COLOURS), [_solid(c) for c in TARGET_COLOURS.values()])
    colour = (200, 60, 30)
    status = {"fps": 15.0, "signal": "ok", "bands": {"alpha": 0.6}, "frame": 1, "size": [120, 320],
              "instrument": _instrument("focused"), "instruction": INSTRUCTION}
    browser = Chromium(tmp_path, (640, 480))
    try:
        viewer.publish(_solid(colour, (120, 320)), status)
        browser.call("Page.navigate", {"url": url + "&clean=1"}, page=True)
        _wait_for(lambda: browser.evaluate(
            "document.body.classList.contains('streaming') && "
            "document.getElementById('painting').naturalWidth === 320"), 20,
            "the clean page to show the stream")
        # The style sheet and the script came with the cookie alone (their URLs have no token).
        assert browser.evaluate("document.body.classList.contains('clean')")
        assert browser.evaluate("getComputedStyle(document.getElementById('painting'))"
                                ".objectFit") == "contain"
        assert browser.evaluate("document.cookie") == ""  # HttpOnly: not for scripts.
        shown = browser.evaluate(
            "['overlay', 'instrument', 'instruction', 'fixation', 'waiting', 'fullscreen']"
            ".map((id) => getComputedStyle(document.getElementById(id)).display)")
        assert shown == ["none"] * 6
        cursors = browser.evaluate("[document.body, document.getElementById('painting')]"
                                   ".map((e) => getComputedStyle(e).cursor)")
        assert cursors == ["none", "none"]
        assert browser.evaluate("getComputedStyle(document.body).backgroundColor") == \
            "rgb(0, 0, 0)"
        shot = _wait_for(lambda: (s := browser.screenshot())[240, 320, 0] > 150 and s, 10,
                         "the painting on screen")
        assert shot.shape == (480, 640, 3)
        # Fitted: 320x120 -> 640x240, centred: rows 120..359 are the painting, edge to edge.
        inside = shot[122:358, :].reshape(-1, 3).astype(float)
        assert (np.abs(inside - colour).max(axis=1) < 25).mean() > 0.999
        outside = np.concatenate([shot[:118], shot[362:]]).reshape(-1, 3)
        assert outside.max() < 8  # Black around it: nothing else drawn.

        # The normal page at 1280x720 with a 256 px painting: the panel tells the truth.
        browser.call("Emulation.setDeviceMetricsOverride",
                     {"width": 1280, "height": 720, "deviceScaleFactor": 1, "mobile": False},
                     page=True)
        viewer.publish(_solid(colour, (256, 256)), {**status, "size": [256, 256],
                                                    "instruction": None})
        browser.call("Page.navigate", {"url": url}, page=True)
        size = "document.getElementById('size').textContent"
        _wait_for(lambda: browser.evaluate(size) ==
                  "painted 256 px, shown 720 px (browser-scaled ×2.8)", 20, "the size truth")
        assert browser.evaluate("getComputedStyle(document.getElementById('overlay'))"
                                ".display") == "block"
    finally:
        browser.close()
        viewer.stop()
