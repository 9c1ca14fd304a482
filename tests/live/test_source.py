"""live.source: an LSL stream read into a ring buffer, over real outlets on loopback.

The headset is :class:`live.simulate.Simulator` (synthetic EEG or a FIF file written by MNE)
or, for what the simulator never does (irregular rate, strings, pauses, very high rates), a
plain pylsl outlet made in the test. Each test takes a few seconds at most.
"""

from __future__ import annotations

import logging
import os
import threading
import time

import mne
import numpy as np
import pylsl
import pytest

from eeg.channels import standard_channel_set
from eeg.synthetic import make_raw
from live.source import LSLSource, StreamWarning, list_streams, main
from neuropaint.validate import NeuropaintError
from tests.live.conftest import unique_stream_name

SFREQ = 256.0


def wait_for(condition, timeout: float, step: float = 0.005) -> float:
    """Poll ``condition()`` until true; return the seconds it took (fail after ``timeout``)."""
    start = time.perf_counter()
    while not condition():
        if time.perf_counter() - start > timeout:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(step)
    return time.perf_counter() - start


class Pusher:
    """A plain pylsl outlet pushing zeros-and-ramps in real time from a thread; it can pause
    (the outlet stays up, samples are lost, as in a Bluetooth dropout)."""

    def __init__(self, info: pylsl.StreamInfo, chunk: int = 16):
        self.outlet = pylsl.StreamOutlet(info, chunk)
        self.sfreq = info.nominal_srate()
        self.n_channels = info.channel_count()
        self.chunk = chunk
        self.paused = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        rng = np.random.default_rng(0)
        block = rng.standard_normal((self.chunk, self.n_channels)).astype(np.float32)
        t0 = pylsl.local_clock()
        k = 0
        while not self._stop.is_set():
            due = t0 + (k + self.chunk - 1) / self.sfreq
            delay = due - pylsl.local_clock()
            if delay > 0:
                time.sleep(delay)
            if not self.paused.is_set():
                self.outlet.push_chunk(block, due)
            k += self.chunk

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.outlet = None


def labelled_info(name: str, n_channels: int = 4, sfreq: float = SFREQ,
                  fmt: str = "float32") -> pylsl.StreamInfo:
    info = pylsl.StreamInfo(name, "EEG", n_channels, sfreq, fmt, f"test:{name}")
    channels = info.desc().append_child("channels")
    for i in range(n_channels):
        channel = channels.append_child("channel")
        channel.append_child_value("label", f"E{i + 1}")
        channel.append_child_value("unit", "microvolts")
    return info


def rss_bytes() -> int:
    """Resident memory of this process (Linux)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# --- metadata and data ---------------------------------------------------------------------


def test_reads_labels_rate_units_and_fresh_samples_from_the_simulator(start_simulator):
    _sim, name = start_simulator(channels=8)
    with LSLSource(name, timeout=3.0) as source:
        meta = source.meta
        assert meta.name == name and meta.type == "EEG"
        assert meta.source_id == f"neuropaint-sim:{name}"
        assert meta.ch_names == standard_channel_set(8)
        assert meta.units == ["microvolts"] * 8
        assert meta.ch_types == ["eeg"] * 8
        assert meta.sfreq == SFREQ and meta.channel_format == "float32"
        assert not meta.generic_labels
        source.read()  # Start counting from here.
        time.sleep(1.0)
        data, times = source.read()
        now = pylsl.local_clock()
    assert data.shape[0] == 8 and data.dtype == np.float64
    assert 0.7 * SFREQ <= data.shape[1] <= 1.3 * SFREQ
    assert 1e-6 < data.std() < 1e-4  # Volts: scalp EEG is tens of microvolts.
    assert np.all(np.diff(times) > 0)
    np.testing.assert_allclose(np.diff(times), 1 / SFREQ, rtol=0.01)  # De-jittered.
    assert 0 <= now - times[-1] < 0.15  # In this machine's local_clock, and fresh.
    assert source.newest_timestamp == times[-1]
    assert not source.connected


@pytest.mark.parametrize(("fmt", "chunk"), [("float32", 1), ("float32", 7),
                                            ("double64", 100), ("int16", 7)])
def test_samples_arrive_exactly_whatever_the_chunk_size_and_format(start_simulator, tmp_path,
                                                                   fmt, chunk):
    """A FIF file written by MNE, streamed in a loop: every received sample is the file's
    (float32 microvolts on the wire, whole microvolts for int16), in order."""
    fname = tmp_path / "rec_raw.fif"
    make_raw(2.0, n_channels=8, seed=3).save(fname, verbose="error")
    file_uv = mne.io.read_raw_fif(fname, verbose="error").get_data() * 1e6  # [8, 512]
    expected = file_uv.astype(np.float32).astype(np.float64)
    if fmt == "int16":
        expected = np.rint(expected)
    expected *= 1e-6
    _sim, name = start_simulator(file=fname, loop=True, chunk=chunk, format=fmt)
    with LSLSource(name, timeout=3.0) as source:
        assert source.meta.channel_format == fmt
        time.sleep(1.2)
        data, times = source.read()
    n_file = expected.shape[1]
    assert data.shape[1] > 0.8 * SFREQ
    start = int(np.argmin(np.abs(expected - data[:, :1]).sum(axis=0)))
    index = (start + np.arange(data.shape[1])) % n_file  # Loops past the end of the file.
    np.testing.assert_array_equal(data, expected[:, index])
    np.testing.assert_allclose(np.diff(times), 1 / SFREQ, rtol=0.01)


def test_a_stream_without_labels_gets_generic_names_and_warnings(start_simulator):
    _sim, name = start_simulator(channels=8, labels=False)
    source = LSLSource(name, timeout=3.0)
    with pytest.warns(StreamWarning, match="no channel labels; calling them Ch1..Ch8"), \
            pytest.warns(StreamWarning, match="no voltage unit .* assuming microvolts"):
        source.open()
    try:
        assert source.meta.ch_names == [f"Ch{i}" for i in range(1, 9)]
        assert source.meta.generic_labels
        time.sleep(0.5)
        data, _ = source.read()
        assert 1e-6 < data.std() < 1e-4  # Read as microvolts, the LSL convention.
    finally:
        source.close()


def test_get_data_gives_the_newest_window_without_consuming(start_simulator):
    _sim, name = start_simulator(channels=8)
    with LSLSource(name, timeout=3.0, buffer_seconds=2.0) as source:
        time.sleep(1.5)
        window, wtimes = source.get_data(1.0)
        data, times = source.read()
        assert window.shape == (8, 256)
        assert times[-1] >= wtimes[-1]
        tail = np.searchsorted(times, wtimes)
        np.testing.assert_array_equal(data[:, tail], window)  # The same samples, not consumed.
        whole, _ = source.get_data(100.0)  # Longer than the buffer: what the buffer holds.
        assert 256 < whole.shape[1] <= 512
        with pytest.raises(NeuropaintError, match="'winsize' must be a positive number"):
            source.get_data(0)


# --- errors --------------------------------------------------------------------------------


def test_name_not_found_lists_the_visible_streams(start_simulator):
    _sim, name = start_simulator(channels=8)
    missing = unique_stream_name("missing")
    start = time.perf_counter()
    with pytest.raises(NeuropaintError, match=rf"no LSL stream with name='{missing}', "
                       rf"type='EEG' found within 0.5 s; visible: .*'{name}' \(EEG, 8 ch at "
                       r"256 Hz, source_id"):
        LSLSource(missing, timeout=0.5).open()
    assert time.perf_counter() - start < 15.0  # no hang (each listed stream is asked for its labels)


def test_by_type_alone_two_devices_are_ambiguous_and_source_id_picks_one(start_simulator):
    kind = unique_stream_name("EEG")  # A content type no other test uses.
    start_simulator(channels=8, type=kind)
    _sim, second = start_simulator(channels=16, type=kind)
    with pytest.raises(NeuropaintError, match=rf"2 LSL streams match type='{kind}': .*; "
                       "choose one with name or source_id"):
        LSLSource(type=kind, timeout=3.0).open()
    with LSLSource(type=None, source_id=f"neuropaint-sim:{second}", timeout=3.0) as source:
        assert source.meta.name == second and source.meta.n_channels == 16


def test_irregular_and_string_streams_are_refused():
    name = unique_stream_name()
    irregular = pylsl.StreamOutlet(pylsl.StreamInfo(name, "EEG", 4, pylsl.IRREGULAR_RATE,
                                                    "float32", "x"))
    with pytest.raises(NeuropaintError, match=rf"stream '{name}' has an irregular sampling "
                       "rate"):
        LSLSource(name, timeout=3.0).open()
    del irregular
    name = unique_stream_name()
    strings = pylsl.StreamOutlet(pylsl.StreamInfo(name, "EEG", 1, 10.0, "string", "y"))
    with pytest.raises(NeuropaintError, match="carries string samples"):
        LSLSource(name, timeout=3.0).open()
    del strings


def test_bad_arguments_are_one_line_errors():
    with pytest.raises(NeuropaintError, match="give at least one of 'name', 'type'"):
        LSLSource(type=None)
    with pytest.raises(NeuropaintError, match="'name' must be a non-empty string"):
        LSLSource("  ")
    with pytest.raises(NeuropaintError, match="'timeout' must be a positive number, got -1"):
        LSLSource("x", timeout=-1)
    with pytest.raises(NeuropaintError, match="'buffer_seconds' must be a positive number"):
        LSLSource("x", buffer_seconds=0)
    with pytest.raises(NeuropaintError, match="not open yet"):
        LSLSource("x").read()


# --- stalls and recovery -------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("source_id", [None, ""], ids=["source_id", "no-source_id"])
def test_outlet_killed_and_restarted_is_reported_and_recovered(start_simulator, caplog,
                                                               source_id):
    caplog.set_level(logging.INFO, logger="live.source")
    sim, name = start_simulator(channels=8, source_id=source_id)
    with LSLSource(name, timeout=3.0) as source:
        time.sleep(0.5)
        before, before_times = source.read()
        assert before.shape[1] > 0
        sim.stop()  # The outlet is gone.
        wait_for(lambda: source.stalled, timeout=3.0)
        wait_for(lambda: any("stalled" in r.getMessage() for r in caplog.records), timeout=1.0)
        stalled = [r.getMessage() for r in caplog.records if "stalled" in r.getMessage()]
        assert stalled == [f"stream '{name}' stalled for 1.0 s; waiting for it to return"
                           + (" (it has no source_id, so it can only be found again by name, "
                              "type and channel count: another stream with those would be "
                              "taken)" if source_id == "" else "")]
        assert source.stalled_for > 1.0
        data, _ = source.read()  # Never blocks: nothing came.
        assert data.shape == (8, 0)
        time.sleep(0.3)
        sim.start()  # The same stream (name, source_id) comes back.
        delay = wait_for(lambda: source.reconnects == 1, timeout=5.0)
        print(f"recovery {delay:.3f} s after the outlet returned")
        assert delay < 3.0  # The goal is 1.5 s; benchmarks/live_source_speed.py.
        assert not source.stalled and source.stalled_for == 0.0
        time.sleep(0.3)
        after, after_times = source.read()
        assert after.shape[1] > 0.2 * SFREQ
        assert after_times[0] > before_times[-1] + 1.0  # The gap is in the time stamps.
        assert pylsl.local_clock() - after_times[-1] < 0.15  # And the new ones are fresh.
    assert any(f"stream '{name}' is back after" in r.getMessage() for r in caplog.records)


@pytest.mark.slow
def test_a_pause_resets_the_dejitter_so_time_stamps_stay_true(caplog):
    """An outlet that stays up but sends nothing for 1.5 s (samples lost): liblsl's de-jitter
    line would stamp later samples as if no time had passed (0.3 s early, then late, when
    measured); after the stall reset they are fresh."""
    pusher = Pusher(labelled_info(unique_stream_name()))
    try:
        with LSLSource(pusher.outlet.get_info().name(), timeout=3.0) as source:
            time.sleep(1.0)
            source.read()
            pusher.paused.set()
            time.sleep(1.5)
            assert source.stalled
            pusher.paused.clear()
            wait_for(lambda: source.reconnects == 1, timeout=3.0)
            time.sleep(0.6)
            _, times = source.read()
            assert abs(pylsl.local_clock() - times[-1]) < 0.15
            time.sleep(1.0)
            _, times = source.read()
            assert abs(pylsl.local_clock() - times[-1]) < 0.15
            np.testing.assert_allclose(np.diff(times), 1 / SFREQ, rtol=0.02)
    finally:
        pusher.stop()


@pytest.mark.slow
def test_a_consumer_that_never_reads_loses_the_oldest_samples_not_memory():
    """128 channels at 16384 Hz (16 MB/s as float64) into a 0.5 s ring for 2.5 s."""
    sfreq = 16384.0
    pusher = Pusher(labelled_info(unique_stream_name(), n_channels=128, sfreq=sfreq),
                    chunk=512)
    try:
        with LSLSource(pusher.outlet.get_info().name(), timeout=3.0,
                       buffer_seconds=0.5) as source:
            time.sleep(1.0)
            rss_start = rss_bytes()
            time.sleep(1.5)
            rss_end = rss_bytes()
            received = source.n_received
            dropped = source.dropped_samples
            data, times = source.read()
    finally:
        pusher.stop()
    capacity = int(0.5 * sfreq)
    assert received > 2.0 * sfreq
    assert data.shape == (128, capacity)
    assert dropped >= received - capacity - 4096  # All but the newest 0.5 s (a chunk or so
    assert np.all(np.diff(times) > 0)  # may land between the two counts).
    print(f"rss growth {(rss_end - rss_start) / 1e6:.2f} MB, dropped {dropped}, received {received}")
    assert rss_end - rss_start < 8e6, f"memory grew by {(rss_end - rss_start) / 1e6:.1f} MB"


def test_read_never_waits_for_data(start_simulator):
    _sim, name = start_simulator(channels=8, chunk=64)  # A chunk every 0.25 s.
    with LSLSource(name, timeout=3.0) as source:
        durations = []
        for _ in range(100):
            start = time.perf_counter()
            source.read()
            durations.append(time.perf_counter() - start)
            time.sleep(0.005)
    assert max(durations) < 0.05, max(durations)  # Never a chunk period (0.25 s).


def test_list_streams_and_the_command_line_show_the_simulator(start_simulator, capsys):
    _sim, name = start_simulator(channels=8)
    metas = {meta.name: meta for meta in list_streams(0.7)}
    assert metas[name].ch_names == standard_channel_set(8)
    assert metas[f"{name}-states"].sfreq == 0  # The marker stream, irregular.
    assert main(["--timeout", "0.7"]) == 0
    out = capsys.readouterr().out
    assert f"'{name}' (EEG, 8 ch at 256 Hz, source_id 'neuropaint-sim:{name}'" in out
    assert main(["--name", name, "--seconds", "1.2", "--timeout", "3"]) == 0
    out = capsys.readouterr().out
    assert "samples, age" in out and "recoveries 0" in out
