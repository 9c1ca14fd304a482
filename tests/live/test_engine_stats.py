"""live.engine.EngineStats: the whole session's figures beside the recent window's."""

from __future__ import annotations

import numpy as np
import pytest

from live.engine import EngineStats, Frame


def _frame(t: float, age: float | None, signal: str = "ok") -> Frame:
    return Frame(index=0, image=np.zeros((1, 1, 3), np.uint8), ws=np.zeros((1, 1), np.float32),
                 time=t, eeg_time=float("nan") if age is None else t - age, signal=signal,
                 valid=True, calibrating=False)


def test_session_figures_cover_every_frame_not_the_last_window():
    stats = EngineStats()
    t = 100.0
    stats.add(_frame(t, None, "waiting"))  # before the first row: no age
    for _ in range(80):  # 8 s at 10 fps, 200 ms old
        t += 0.1
        stats.add(_frame(t, 0.2004))
    for _ in range(40):  # then 2 s at 20 fps, 50 ms old
        t += 0.05
        stats.add(_frame(t, 0.0504))
    stats.dropped = 7
    session = stats.session()
    assert session["frames"] == 121 and session["seconds"] == pytest.approx(10.0)
    assert session["fps"] == pytest.approx(12.0)  # 120 intervals in 10 s
    assert session["dropped"] == 7 and session["stalled_frames"] == 0
    assert session["age_ms"]["p50"] == pytest.approx(200.5)  # 1 ms bins: that bin's middle
    assert session["age_ms"]["p95"] == pytest.approx(200.5)
    # The status line's window is the last 2 s only: faster and younger.
    assert stats.fps() == pytest.approx(20.0)
    assert stats.age_ms()["p50"] == pytest.approx(200.4)  # last 600 frames: all of them here


def test_a_session_without_frames_reports_zeros():
    session = EngineStats().session()
    assert session == {"frames": 0, "seconds": 0.0, "fps": 0.0, "dropped": 0,
                       "stalled_frames": 0, "age_ms": {}}
