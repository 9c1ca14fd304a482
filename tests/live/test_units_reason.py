"""A stream of microvolt numbers labelled volts (issue 15, point 4), on a real LSL outlet.

Read with ``units='auto'`` the source rescales it after half a second and says so once, and
the engine calibrates and paints. Read trusting its label (``units='V'``) every row is over
the artifact limit: the engine stays ``calibrating``, and the status (line and viewer) says
why, with the units question.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pylsl
import pytest

from conditioning.encoder import Encoder
from eeg.synthetic import make_raw
from gan.checkpoint import load_generator
from live.engine import Engine, EngineConfig
from live.render import _status_line
from live.source import LSLSource
from neuropaint.validate import NeuropaintError

pytestmark = pytest.mark.slow

SFREQ = 256.0
CHUNK = 16


def _push_microvolts_labelled_volts(name: str, stop: threading.Event, unit: str = "volts",
                                    loud_after: float | None = None) -> None:
    """16 channels of synthetic EEG in real time: microvolt numbers, every channel ``unit``;
    from ``loud_after`` seconds on, 100 times louder (an amplitude artifact that stays)."""
    raw = make_raw(30.0, n_channels=16, seed=4, blinks=False)
    data = (raw.get_data() * 1e6).astype(np.float32)  # [16, n] microvolt numbers
    info = pylsl.StreamInfo(name, "EEG", 16, SFREQ, pylsl.cf_float32, name)
    chans = info.desc().append_child("channels")
    for label in raw.ch_names:
        ch = chans.append_child("channel")
        ch.append_child_value("label", label)
        ch.append_child_value("unit", unit)
        ch.append_child_value("type", "EEG")
    outlet = pylsl.StreamOutlet(info, CHUNK)
    t0 = pylsl.local_clock()
    k = 0
    while not stop.is_set():
        if (pylsl.local_clock() - t0) * SFREQ < k + CHUNK:
            time.sleep(0.005)
            continue
        at = k % (data.shape[1] - CHUNK)
        chunk = data[:, at:at + CHUNK].T.copy()
        if loud_after is not None and k / SFREQ >= loud_after:
            chunk *= 100.0
        outlet.push_chunk(chunk, t0 + (k + CHUNK - 1) / SFREQ)
        k += CHUNK
    del outlet


@pytest.fixture
def mislabelled_stream():
    name = f"units-{uuid.uuid4().hex[:10]}"
    stop = threading.Event()
    pusher = threading.Thread(target=_push_microvolts_labelled_volts, args=(name, stop),
                              daemon=True)
    pusher.start()
    yield name
    stop.set()
    pusher.join(5)


def _engine(tiny_model, source) -> Engine:
    enc_dir, gen_dir = tiny_model
    encoder = Encoder.from_pretrained(enc_dir, generator_path=gen_dir)
    config = EngineConfig(fps=10.0, size=16, calibration=1.0)
    return Engine(encoder, load_generator(gen_dir), source, config)


def test_auto_units_rescale_the_stream_once_and_it_paints(tiny_model, mislabelled_stream):
    with LSLSource(mislabelled_stream, timeout=5).open() as source:
        engine = _engine(tiny_model, source)
        frames = []
        engine.run(4.0, on_frame=frames.append)
        data, _ = source.get_data(1.0)
    assert source.units_note is not None
    assert "microvolts stored as volts" in source.units_note
    assert "scaled by 1e-06" in source.units_note
    assert 1e-6 < np.median(np.std(data, axis=1)) < 1e-4  # volts now
    assert frames[-1].signal == "ok"
    assert engine.status().get("reason") is None


def test_trusted_wrong_units_say_why_the_engine_calibrates(tiny_model, mislabelled_stream):
    with LSLSource(mislabelled_stream, timeout=5, units="V").open() as source:
        engine = _engine(tiny_model, source)
        frames = []
        engine.run(4.0, on_frame=frames.append)
        status = engine.status()
        line = _status_line(engine, source)
    assert source.units_note is None  # the label was trusted, as asked
    assert frames[-1].signal == "calibrating"
    reason = status["reason"]
    assert reason.startswith("calibrating: 0 clean rows in ")
    assert "every row over 500 µV; is the stream in µV labelled as V?" in reason
    assert f"signal {reason}, frame" in line


def test_an_artifact_that_stays_says_what_it_is(tiny_model):
    name = f"loud-{uuid.uuid4().hex[:10]}"
    stop = threading.Event()
    pusher = threading.Thread(target=_push_microvolts_labelled_volts, daemon=True,
                              args=(name, stop, "microvolts", 3.0))
    pusher.start()
    try:
        with LSLSource(name, timeout=5).open() as source:
            engine = _engine(tiny_model, source)
            frames = []
            engine.run(7.0, on_frame=frames.append)
            status = engine.status()
    finally:
        stop.set()
        pusher.join(5)
    signals = [f.signal for f in frames]
    assert "ok" in signals and signals[-1] == "artifact"
    reason = status["reason"]
    assert reason.startswith("artifact for ") and reason.endswith(": every row over 500 µV")
    held = float(reason.split()[2])
    assert 2.0 <= held <= 4.5


def test_bad_units_for_a_stream_are_one_line():
    with pytest.raises(NeuropaintError, match=r"'units' must be one of auto, V, uV, mV, got 'uv'"):
        LSLSource("anything", units="uv")


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(),
                    reason="needs Debian's chromium at /usr/bin/chromium (.ci/run installs it)")
def test_the_viewer_page_shows_the_reason(tmp_path):
    from live.devtools import Chromium
    from live.viewer import Viewer
    from tests.live.test_viewer import _solid, _wait_for

    reason = ("calibrating: 0 clean rows in 40 s — every row over 500 µV; is the stream in µV "
              "labelled as V?")
    viewer = Viewer(port=0, title="reason test")
    url = viewer.start()
    browser = Chromium(tmp_path)
    try:
        viewer.publish(_solid((40, 40, 200), (64, 64)),
                       {"fps": 10.0, "signal": "calibrating", "reason": reason})
        browser.call("Page.navigate", {"url": url}, page=True)
        text = "document.getElementById('signal').textContent"
        _wait_for(lambda: browser.evaluate(text) == reason, 20, "the reason on the page")
        viewer.publish(_solid((40, 40, 200), (64, 64)), {"fps": 10.0, "signal": "ok"})
        _wait_for(lambda: browser.evaluate(text) == "signal: ok", 10, "the reason to go")
    finally:
        browser.close()
        viewer.stop()
