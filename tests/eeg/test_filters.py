"""eeg.filters: the causal filter shared by cleaning and the online processor."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from eeg.filters import CausalFilter, design_sos, line_harmonics
from neuropaint.validate import NeuropaintError


def _gain_db(sos, freq, sfreq):
    _, response = signal.sosfreqz(sos, worN=[freq], fs=sfreq)
    return 20 * np.log10(np.abs(response[0]))


def test_band_pass_keeps_the_band_and_removes_drift_and_high_frequencies():
    sos = design_sos(256.0, 1.0, 40.0)
    assert abs(_gain_db(sos, 10.0, 256.0)) < 0.5
    assert _gain_db(sos, 0.1, 256.0) < -30
    assert _gain_db(sos, 100.0, 256.0) < -25


def test_notches_remove_both_mains_frequencies():
    sos = design_sos(256.0, 1.0, 40.0, (50.0, 60.0))
    assert _gain_db(sos, 50.0, 256.0) < -40
    assert _gain_db(sos, 60.0, 256.0) < -40


def test_notch_above_nyquist_is_skipped():
    sos = design_sos(100.0, 1.0, 30.0, (50.0, 60.0))
    assert sos.shape == design_sos(100.0, 1.0, 30.0).shape


def test_no_filter_asked_is_the_identity():
    sos = design_sos(256.0, None, None)
    x = np.random.default_rng(0).standard_normal((2, 100))
    np.testing.assert_allclose(CausalFilter(sos, 2).process(x), x)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"l_freq": 1.0, "h_freq": 130.0}, r"'h_freq' \(130 Hz\) must be below Nyquist"),
     ({"l_freq": 40.0, "h_freq": 30.0}, r"'l_freq' \(40 Hz\) must be below 'h_freq'"),
     ({"l_freq": -1.0, "h_freq": 30.0}, r"'l_freq' must be a positive number, got -1.0")],
)
def test_impossible_designs_are_clear_errors(kwargs, message):
    with pytest.raises(NeuropaintError, match=message):
        design_sos(256.0, **kwargs)


def test_line_harmonics_stop_below_the_limit():
    assert line_harmonics(50.0, 40.0) == (50.0,)
    assert line_harmonics(50.0, 160.0) == (50.0, 100.0, 150.0)
    assert line_harmonics(60.0, 121.0) == (60.0, 120.0)


def test_chunked_filtering_equals_filtering_at_once_bit_for_bit():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 3000)) * 1e-5 + 3e-3  # with a DC offset, as amplifiers have
    sos = design_sos(256.0, 1.0, 40.0, (50.0,))
    whole = CausalFilter(sos, 4).process(x)
    pieces, start, chunked = [], 0, CausalFilter(sos, 4)
    while start < x.shape[1]:
        size = int(rng.integers(1, 64))
        pieces.append(chunked.process(x[:, start : start + size]))
        start += size
    np.testing.assert_array_equal(np.hstack(pieces), whole)


def test_steady_state_start_avoids_a_dc_step_transient():
    x = np.full((1, 512), 5e-3) + 1e-6 * np.random.default_rng(2).standard_normal((1, 512))
    out = CausalFilter(design_sos(256.0, 1.0, 40.0), 1).process(x)
    assert np.abs(out).max() < 1e-4  # a zero start would ring at millivolts


def test_non_finite_samples_are_held_and_reported():
    x = np.ones((2, 10))
    x[0, 3:5] = np.nan
    x[1, 0] = np.inf
    filt = CausalFilter(design_sos(256.0, None, None), 2)
    out = filt.process(x)
    assert np.isfinite(out).all()
    assert filt.last_bad[0, 3:5].all() and filt.last_bad[1, 0]
    assert filt.last_bad.sum() == 3
    np.testing.assert_allclose(out[0, 3:5], 1.0)


def test_chunk_with_wrong_channel_count_is_rejected():
    with pytest.raises(NeuropaintError, match=r"chunk must have shape \(3, n_times\)"):
        CausalFilter(design_sos(256.0, 1.0, 40.0), 3).process(np.zeros((2, 5)))
