"""The README's picture of the live viewer: the demo, painted live, at exactly 1280x720.

    python docs/screenshot_viewer.py                       # writes docs/live_viewer.png
    python docs/screenshot_viewer.py --out /tmp/viewer.png --wait 15

Starts the demo (``python -m live.render``: the simulated headset, the bundled model and
profile) with its viewer on a free loopback port, opens the page in headless Chromium driven
over the DevTools protocol (:mod:`live.devtools`) with the page set to 1280x720 CSS pixels,
waits until the painting, the meters and the state thumbnails are there and then ``--wait``
seconds more (the meters settle and the profile commits to a state), captures the page as PNG,
checks its size, and stops the demo with Ctrl-C (SIGINT) as a performer would.

Not Chromium's ``--screenshot`` flag: it lays the page out at 1280x633 while capturing 720
rows, so the panel's size line would not be the picture's. Needs /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from live.devtools import Chromium  # noqa: E402 (needs the repository on the path)

SIZE = (1280, 720)  # CSS pixels, deviceScaleFactor 1: the PNG has exactly this many pixels.
READY = ("document.body.classList.contains('has-frame') && "
         "document.body.classList.contains('has-instrument') && "
         "[...document.querySelectorAll('#targets img')].length > 0 && "
         "[...document.querySelectorAll('#targets img')].every((img) => img.complete && "
         "img.naturalWidth > 0)")
PANEL = ("[window.innerWidth, window.innerHeight, document.getElementById('fps').textContent, "
         "document.getElementById('size').textContent]")


def wait_for(check, timeout: float, what: str):
    """``check()``'s first truthy value, polled every 0.25 s; TimeoutError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.25)
    raise TimeoutError(f"no {what} after {timeout:g} s")


def painting(url: str) -> bool:
    """Whether the viewer at ``url`` answers and has painted a frame."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        conn.request("GET", "/status.json")
        return json.loads(conn.getresponse().read())["viewer"]["frames"] > 0
    except (OSError, ValueError, KeyError):
        return False
    finally:
        conn.close()


def echo(lines) -> None:
    """Print ``lines`` as they come."""
    for line in lines:
        print(line, end="", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "live_viewer.png",
                        help="where the PNG goes")
    parser.add_argument("--wait", type=float, default=15.0,
                        help="seconds between the page showing everything and the capture")
    args = parser.parse_args(argv)

    # Port 0: the viewer takes a free port and prints its URL. --duration: a backstop only.
    render = subprocess.Popen(
        [sys.executable, "-m", "live.render", "--serve", "127.0.0.1:0",
         "--duration", f"{args.wait + 300:g}"],
        cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    try:
        for line in render.stdout:  # Up to the viewer's URL (LSL and model errors end it).
            print(line, end="", flush=True)
            if " viewer at " in line:
                url = line.split(" viewer at ")[1].strip()
                break
        else:
            raise RuntimeError(f"live.render exited ({render.wait()}) before serving")
        # The rest echoed as it comes: the status lines say the frame rate; the pipe never fills.
        threading.Thread(target=echo, args=(render.stdout,), daemon=True).start()
        wait_for(lambda: painting(url), 120, "painted frame at the viewer")
        with tempfile.TemporaryDirectory() as folder:
            browser = Chromium(Path(folder), SIZE)
            try:
                browser.call("Page.navigate", {"url": url}, page=True)
                wait_for(lambda: browser.evaluate(READY), 30, "painting, meters and thumbnails")
                time.sleep(args.wait)
                width, height, fps, size = browser.evaluate(PANEL)
                if (width, height) != SIZE:
                    raise RuntimeError(f"the page is {width}x{height} CSS px, not {SIZE}")
                png = browser.screenshot_png()
            finally:
                browser.close()
        captured = Image.open(io.BytesIO(png)).size
        if captured != SIZE:
            raise RuntimeError(f"the capture is {captured[0]}x{captured[1]} px, not {SIZE}")
        args.out.write_bytes(png)
        print(f"screenshot_viewer: {args.out} ({width}x{height}; panel: {fps}; {size})")
    finally:
        if render.poll() is None:
            render.send_signal(signal.SIGINT)  # Ctrl-C: the demo closes its simulator itself.
            try:
                render.wait(60)
            except subprocess.TimeoutExpired:
                render.kill()
                render.wait()
    return 0 if render.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
