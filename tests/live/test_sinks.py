"""live.sinks: the frame folder keeps one frame in N, up to a limit, on a real disk."""

from __future__ import annotations

import numpy as np
import pytest

from live.engine import Frame
from live.sinks import FrameFolder
from neuropaint.validate import NeuropaintError


def _frame(index: int) -> Frame:
    image = np.full((8, 8, 3), index % 256, dtype=np.uint8)
    return Frame(index=index, image=image, ws=np.zeros((2, 4), np.float32), time=0.0,
                 eeg_time=float("nan"), signal="ok", valid=True, calibrating=False)


def test_every_and_max_keep_one_frame_in_n_up_to_a_limit(tmp_path):
    sink = FrameFolder(tmp_path / "f", "png", every=3, max_frames=4)
    for i in range(30):
        sink.write(_frame(i), {})
    sink.close()
    names = sorted(p.name for p in (tmp_path / "f").iterdir())
    # The frame's own number names its file: 0, 3, 6, 9, then the limit.
    assert names == [f"frame_{i:06d}.png" for i in (0, 3, 6, 9)]
    assert sink.written == 4 and sink.full and sink.skipped == 0


def test_every_frame_by_default(tmp_path):
    sink = FrameFolder(tmp_path / "f")
    for i in range(5):
        sink.write(_frame(i), {})
    sink.close()
    assert sink.written == 5 and len(list((tmp_path / "f").glob("frame_*.jpg"))) == 5


@pytest.mark.parametrize(("kw", "message"), [
    ({"every": 0}, "'--frames-every' must be an integer >= 1, got 0"),
    ({"max_frames": 0}, "'--frames-max' must be an integer >= 1, got 0"),
])
def test_bad_every_or_max_is_one_line(tmp_path, kw, message):
    with pytest.raises(NeuropaintError, match=message):
        FrameFolder(tmp_path / "f", **kw)


def test_viewer_sink_adds_what_the_engine_does_not_know(tmp_path):
    """A real viewer on loopback: its /status.json carries the extra keys."""
    import json
    import urllib.request

    from live.sinks import ViewerSink
    from live.viewer import Viewer

    viewer = Viewer("127.0.0.1", 0, title="t")
    url = viewer.start()
    sink = ViewerSink(viewer, lambda: {"simulated_state": "eyes_closed"})
    try:
        sink.write(_frame(0), {"fps": 1.0, "signal": "ok"})
        with urllib.request.urlopen(url.rstrip("/") + "/status.json", timeout=5) as response:
            status = json.loads(response.read())["status"]
    finally:
        sink.close()
    assert status["simulated_state"] == "eyes_closed" and status["signal"] == "ok"
