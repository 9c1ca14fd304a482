"""The online artifact gate on real (synthetic) EEG pushed through the online processor."""

from __future__ import annotations

import numpy as np
import pytest

from eeg.artifacts import ArtifactConfig, OnlineArtifacts
from eeg.features import FeatureSpec
from eeg.online import OnlineProcessor
from eeg.synthetic import make_raw


def stream(raw, data=None, times=None, chunk=16, config=None):
    """Push a recording in chunks; return (row times, row kinds, gate)."""
    data = raw.get_data() if data is None else data
    config = config or ArtifactConfig()
    times = raw.times if times is None else times
    proc = OnlineProcessor(FeatureSpec(), raw.info["sfreq"], raw.ch_names)
    gate = OnlineArtifacts(config, proc.ch_names, proc.layout.window_n / proc.sfreq)
    row_times, kinds = [], []
    for start in range(0, data.shape[1], chunk):
        rows = proc.push(data[:, start : start + chunk], times[start : start + chunk])
        gate.update(proc.last_filtered, times[start : start + chunk],
                    data[:, start : start + chunk])
        row_times.extend(rows.times)
        kinds.extend(gate.spoiled(rows.times))
    return np.array(row_times), kinds, gate


def test_blinks_are_caught_and_brain_activity_is_not():
    raw = make_raw(120.0, n_channels=32, seed=1)
    row_times, kinds, _ = stream(raw)
    blinks = [(a["onset"], a["onset"] + a["duration"]) for a in raw.annotations
              if a["description"] == "blink" and a["onset"] > row_times[0]]
    assert len(blinks) >= 8
    caught = sum(any(k == "blink" and s <= t <= e + 0.5 for t, k in zip(row_times, kinds,
                                                                       strict=True))
                 for s, e in blinks)
    assert caught >= 0.7 * len(blinks)
    # Rows far from any blink are not flagged.
    far = np.array([all(t < s - 0.1 or t > e + 1.0 for s, e in blinks) for t in row_times])
    flagged = np.array([k is not None for k in kinds])
    assert flagged[far].mean() < 0.01
    # Blinks hold rows briefly, not for the whole 2 s window.
    assert flagged.mean() < 0.35


def test_saturation_flat_signal_and_gaps_spoil_a_window():
    raw = make_raw(20.0, n_channels=16, seed=2, blinks=False)
    data = raw.get_data().copy()
    sfreq = raw.info["sfreq"]
    data[5, int(6 * sfreq) : int(6.2 * sfreq)] = 3e-3  # a loose electrode: 3 mV
    data[:, int(12 * sfreq) : int(13 * sfreq)] = 0.0  # the cap disconnected
    times = raw.times.copy()
    times[int(16 * sfreq) :] += 1.0  # a second of samples lost
    row_times, kinds, gate = stream(raw, data, times)
    kinds = np.array([k or "" for k in kinds])

    def kind_at(t):
        return kinds[np.argmin(np.abs(row_times - t))]

    assert kind_at(5.5) == "" and kind_at(6.5) == "amplitude" and kind_at(7.9) == "amplitude"
    assert kind_at(10.0) == ""
    assert kind_at(12.9) == "flat"
    assert kind_at(17.5) == "gap" and kind_at(19.9) == ""
    assert gate.counts["amplitude"] == 1 and gate.counts["gap"] == 1
    assert gate.counts["flat"] == 1


def test_gating_can_be_switched_off():
    raw = make_raw(30.0, n_channels=16, seed=1)
    off = ArtifactConfig(blink_uv=None, amplitude_uv=None, flat_uv=None)
    _, kinds, _ = stream(raw, config=off)
    assert not any(kinds)
    with pytest.raises(ValueError):
        ArtifactConfig(blink_uv=-1)
