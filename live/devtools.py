"""Headless Chromium driven over the DevTools protocol on a pipe.

The tests of :mod:`live.viewer` look at the page through it, and ``docs/screenshot_viewer.py``
takes the README's picture with it: the page gets exactly the CSS size asked for
(``Emulation.setDeviceMetricsOverride``), unlike Chromium's ``--screenshot`` flag, which lays
the page out shorter than the image it captures. Protocol reference:
https://chromedevtools.github.io/devtools-protocol/
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import io
import json
import os
import select
import subprocess
import time
from pathlib import Path

import numpy as np
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (fds 3 and 4).

    The protocol's pipe transport: JSON messages, each ended by a NUL byte; Chromium reads
    commands on fd 3 and writes replies and events on fd 4.
    """

    FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--remote-debugging-pipe", "--window-size=640,480", "--hide-scrollbars")

    def __init__(self, folder: Path, size: tuple[int, int] = (640, 480)) -> None:
        commands_read, self._commands = os.pipe()
        self._replies, replies_write = os.pipe()
        # Chromium's ends go above fd 9, so that the 3< and 4> redirections of bash below
        # cannot overwrite one with the other.
        theirs = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (commands_read, replies_write)]
        for fd in (commands_read, replies_write):
            os.close(fd)
        self._log = open(folder / "chromium.log", "wb")  # Closed in close().
        self.proc = subprocess.Popen(
            ["/bin/bash", "-c", f'exec "$0" "$@" 3<&{theirs[0]} 4>&{theirs[1]}', str(CHROMIUM),
             *self.FLAGS, f"--user-data-dir={folder / 'profile'}", "about:blank"],
            pass_fds=theirs, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)
        for fd in theirs:
            os.close(fd)
        self._buffer = b""
        self._next_id = 0
        targets = self.call("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.call("Target.attachToTarget",
                                 {"targetId": page["targetId"], "flatten": True})["sessionId"]
        # The page gets exactly `size` CSS pixels, whatever the headless window's frame.
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": size[0], "height": size[1], "deviceScaleFactor": 1,
                   "mobile": False}, page=True)

    def call(self, method: str, params: dict | None = None, *, page: bool = False,
             timeout: float = 30.0) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if page:
            message["sessionId"] = self.session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._next_id:  # Anything else is an event.
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply["result"]
            ready, _, _ = select.select([self._replies], [], [], deadline - time.monotonic())
            if not ready:
                raise TimeoutError(f"Chromium did not answer {method} in {timeout} s")
            chunk = os.read(self._replies, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium exited; see chromium.log")
            self._buffer += chunk

    def evaluate(self, expression: str) -> object:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                           page=True)
        return result["result"].get("value")

    def press(self, key: str) -> None:
        for kind in ("keyDown", "keyUp"):
            self.call("Input.dispatchKeyEvent", {"type": kind, "key": key, "text": key},
                      page=True)

    def screenshot_png(self) -> bytes:
        """The page as Chromium renders it, as PNG bytes."""
        data = self.call("Page.captureScreenshot", {"format": "png"}, page=True)["data"]
        return base64.b64decode(data)

    def screenshot(self) -> np.ndarray:
        """The page as an RGB array, shape (height, width, 3)."""
        return np.asarray(Image.open(io.BytesIO(self.screenshot_png())).convert("RGB"))

    def close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError, TimeoutError):
            self.call("Browser.close", timeout=5)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._commands)
        os.close(self._replies)
        self._log.close()
