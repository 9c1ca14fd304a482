"""eeg.online: streaming features agree with offline extraction for any chunking."""

from __future__ import annotations

import numpy as np
import pytest

from eeg.features import FeatureSpec, extract
from eeg.online import OnlineProcessor
from eeg.synthetic import make_raw
from neuropaint.validate import NeuropaintError


def _stream(processor, data, chunks, timestamps=None):
    frames, start = [], 0
    for size in chunks:
        stop = min(start + size, data.shape[1])
        ts = None if timestamps is None else timestamps[start:stop]
        frames.append(processor.push(data[:, start:stop], ts))
        start = stop
        if start >= data.shape[1]:
            break
    values = np.concatenate([f.values for f in frames])
    times = np.concatenate([f.times for f in frames])
    valid = np.concatenate([f.valid for f in frames])
    return values, times, valid


def _chunk_sizes(kind, n_times, rng):
    if kind == "mix":
        return list(rng.integers(1, 300, size=n_times))
    return [kind] * (n_times // kind + 1)


@pytest.fixture(scope="module")
def recording():
    raw = make_raw(12.0, n_channels=16, seed=21)
    return raw.get_data(), raw.info["sfreq"], raw.ch_names


@pytest.mark.parametrize("chunk", [1, 7, 33, 1000, "mix"])
@pytest.mark.parametrize("level", ["regions", "channels"])
def test_online_features_match_offline_for_any_chunking(recording, chunk, level):
    data, sfreq, ch_names = recording
    spec = FeatureSpec(level=level)
    offline = extract(data, spec, sfreq=sfreq, ch_names=ch_names)
    processor = OnlineProcessor(spec, sfreq, ch_names)
    sizes = _chunk_sizes(chunk, data.shape[1], np.random.default_rng(0))
    values, times, valid = _stream(processor, data, sizes)
    assert values.shape == offline.values.shape
    np.testing.assert_allclose(values, offline.values, rtol=1e-6, atol=1e-12)
    np.testing.assert_array_equal(times, offline.times)
    np.testing.assert_array_equal(valid, offline.valid)


def test_rows_carry_the_timestamp_of_their_newest_sample(recording):
    data, sfreq, ch_names = recording
    lsl_times = 5000.0 + np.arange(data.shape[1]) / sfreq + 1e-4
    processor = OnlineProcessor(FeatureSpec(), sfreq, ch_names)
    _, times, _ = _stream(processor, data, [64] * 1000, lsl_times)
    layout = processor.layout
    expected = lsl_times[layout.window_n - 1 :: layout.hop_n][: len(times)]
    np.testing.assert_array_equal(times, expected)


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_flag_rows_and_the_processor_recovers(recording, bad_value):
    data, sfreq, ch_names = recording
    data = data.copy()
    hit = int(4.0 * sfreq)
    data[3, hit : hit + 5] = bad_value
    processor = OnlineProcessor(FeatureSpec(), sfreq, ch_names)
    values, times, valid = _stream(processor, data, [16] * 2000)
    assert np.isfinite(values).all()
    window_s = processor.layout.window_n / sfreq
    saw_bad = (times >= hit / sfreq) & (times < (hit + 5) / sfreq + window_s)
    assert not valid[saw_bad].any()
    assert valid[~saw_bad].all()
    # After the bad samples leave the window, features are back to normal magnitudes.
    clean = OnlineProcessor(FeatureSpec(), sfreq, ch_names)
    ref_values, _, _ = _stream(clean, recording[0], [16] * 2000)
    late = times > hit / sfreq + window_s + 3.0
    np.testing.assert_allclose(values[late], ref_values[late], rtol=0.05, atol=0.05)


def test_all_nan_chunk_does_not_poison_the_filter(recording):
    data, sfreq, ch_names = recording
    processor = OnlineProcessor(FeatureSpec(), sfreq, ch_names)
    processor.push(data[:, :512])
    frame = processor.push(np.full((len(ch_names), 256), np.nan))
    assert np.isfinite(frame.values).all() and not frame.valid.any()
    later = processor.push(data[:, 768:])
    assert np.isfinite(later.values).all()
    assert later.valid[-10:].all()


def test_empty_chunk_returns_no_rows(recording):
    data, sfreq, ch_names = recording
    processor = OnlineProcessor(FeatureSpec(), sfreq, ch_names)
    assert len(processor.push(data[:, :0])) == 0


def test_chunk_with_wrong_channel_count_is_rejected(recording):
    _, sfreq, ch_names = recording
    processor = OnlineProcessor(FeatureSpec(), sfreq, ch_names)
    with pytest.raises(NeuropaintError, match=r"chunk must have shape \(16, n_times\)"):
        processor.push(np.zeros((3, 10)))


def test_reset_starts_a_fresh_stream(recording):
    data, sfreq, ch_names = recording
    processor = OnlineProcessor(FeatureSpec(), sfreq, ch_names)
    first, _, _ = _stream(processor, data, [100] * 200)
    processor.reset()
    second, _, _ = _stream(processor, data, [100] * 200)
    np.testing.assert_array_equal(first, second)


def test_bad_channels_are_left_out_of_the_reference_and_regions(recording):
    data, sfreq, ch_names = recording
    data = data.copy()
    data[0] += 1e-3 * np.random.default_rng(1).standard_normal(data.shape[1])
    spec = FeatureSpec()
    with_bad = OnlineProcessor(spec, sfreq, ch_names, bads=[ch_names[0]])
    values, _, _ = _stream(with_bad, data, [500] * 100)
    clean_values, _, _ = _stream(OnlineProcessor(spec, sfreq, ch_names), recording[0],
                                 [500] * 100)
    col = with_bad.names.index("log_power:alpha:occipital_midline")
    # The huge noise on one frontal channel does not leak into occipital features.
    np.testing.assert_allclose(values[:, col], clean_values[:, col], atol=0.3)
