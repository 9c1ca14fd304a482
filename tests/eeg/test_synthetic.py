"""Synthetic EEG: layout, scale, determinism, schedule, and the spectral signature of each state.

Spectral claims are measured as a user would, with Welch's method on a few seconds of data.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from eeg.channels import standard_channel_set
from eeg.synthetic import STATES, list_states, main, make_raw
from neuropaint.logs import run_cli
from neuropaint.validate import NeuropaintError

SFREQ = 256.0


def band_power(raw, picks, l_freq, h_freq):
    """Mean Welch power (V^2/Hz) of ``picks`` between ``l_freq`` and ``h_freq``."""
    freqs, psd = signal.welch(raw.get_data(picks=picks), raw.info["sfreq"], nperseg=512)
    band = (freqs >= l_freq) & (freqs <= h_freq)
    return psd[:, band].mean()


def mean_spectrum(raw):
    """Welch PSD averaged over channels: (freqs, psd)."""
    freqs, psd = signal.welch(raw.get_data(), raw.info["sfreq"], nperseg=512)
    return freqs, psd.mean(axis=0)


@pytest.mark.parametrize("n_channels", [8, 16, 32, 64])
def test_layout_is_the_standard_channel_set_with_montage_positions(n_channels):
    raw = make_raw(4.0, n_channels=n_channels)
    assert raw.ch_names == standard_channel_set(n_channels)
    assert raw.get_data().shape == (n_channels, int(4 * SFREQ))
    assert raw.info["sfreq"] == SFREQ
    assert set(raw.get_channel_types()) == {"eeg"}
    positions = np.array([ch["loc"][:3] for ch in raw.info["chs"]])
    assert np.all(np.isfinite(positions))
    assert np.all(np.linalg.norm(positions, axis=1) > 0.05)  # metres from the origin
    assert raw.info["line_freq"] == 50.0
    assert raw.info["bads"] == []


def test_amplitude_is_in_volts_at_scalp_eeg_scale():
    raw = make_raw(10.0, n_channels=32)
    std = raw.get_data().std(axis=1)
    assert 5e-6 < np.median(std) < 60e-6


def test_neighbouring_channels_correlate_more_than_distant_ones():
    raw = make_raw(10.0, n_channels=32, blinks=False, line_noise=False)
    corr = np.corrcoef(raw.get_data(picks=["O1", "O2", "Fp1"]))
    assert corr[0, 1] > 0.5
    assert abs(corr[0, 2]) < 0.4


def test_same_seed_gives_identical_data_and_other_seed_differs():
    first = make_raw(4.0, n_channels=16, seed=3)
    again = make_raw(4.0, n_channels=16, seed=3)
    other = make_raw(4.0, n_channels=16, seed=4)
    np.testing.assert_array_equal(first.get_data(), again.get_data())
    assert list(first.annotations.description) == list(again.annotations.description)
    assert not np.allclose(first.get_data(), other.get_data())


def test_states_are_listed_with_descriptions():
    assert list_states() == tuple(STATES)
    assert {"neutral", "eyes_closed", "focused", "drowsy"} <= set(list_states())
    assert all(state.description for state in STATES.values())


def _state_annotations(raw):
    return [
        (a["description"], round(a["onset"], 6), round(a["duration"], 6))
        for a in raw.annotations
        if a["description"] in STATES
    ]


def test_default_schedule_cycles_every_state_and_is_cut_at_the_end():
    raw = make_raw(45.0, n_channels=8, state_duration=10.0)
    names = list_states()
    expected = [(name, 10.0 * i, 10.0) for i, name in enumerate(names)]
    expected.append((names[0], 40.0, 5.0))
    assert _state_annotations(raw) == expected


def test_schedule_mixes_names_and_name_seconds_pairs_and_repeats():
    raw = make_raw(20.0, n_channels=8, states=["focused", ("drowsy", 3.0)], state_duration=4.0)
    assert _state_annotations(raw) == [
        ("focused", 0.0, 4.0),
        ("drowsy", 4.0, 3.0),
        ("focused", 7.0, 4.0),
        ("drowsy", 11.0, 3.0),
        ("focused", 14.0, 4.0),
        ("drowsy", 18.0, 2.0),
    ]


def test_single_state_name_holds_for_the_whole_recording():
    raw = make_raw(12.0, n_channels=8, states="eyes_closed")
    assert _state_annotations(raw) == [("eyes_closed", 0.0, 12.0)]


def test_eyes_closed_has_at_least_three_times_the_occipital_alpha_of_focused():
    closed = make_raw(20.0, n_channels=32, states="eyes_closed")
    focused = make_raw(20.0, n_channels=32, states="focused")
    occipital = ["O1", "Oz", "O2"]
    ratio = band_power(closed, occipital, 8, 12) / band_power(focused, occipital, 8, 12)
    assert ratio >= 3.0


def test_eyes_closed_alpha_is_posterior_dominant():
    raw = make_raw(20.0, n_channels=32, states="eyes_closed", blinks=False)
    assert band_power(raw, ["O1", "Oz", "O2"], 8, 12) > 3 * band_power(
        raw, ["F3", "Fz", "F4"], 8, 12
    )


def test_focused_has_more_frontal_beta_than_neutral():
    focused = make_raw(20.0, n_channels=32, states="focused")
    neutral = make_raw(20.0, n_channels=32, states="neutral")
    frontal = ["F3", "Fz", "F4"]
    assert band_power(focused, frontal, 15, 25) > 1.3 * band_power(neutral, frontal, 15, 25)


def test_drowsy_has_more_theta_than_focused():
    drowsy = make_raw(20.0, n_channels=32, states="drowsy")
    focused = make_raw(20.0, n_channels=32, states="focused")
    picks = ["Fz", "FC1", "FC2", "Cz"]
    assert band_power(drowsy, picks, 4, 7) > 2 * band_power(focused, picks, 4, 7)


def test_alpha_is_bursty_not_a_constant_sine():
    raw = make_raw(20.0, n_channels=16, states="eyes_closed", blinks=False, line_noise=False)
    sos = signal.butter(4, [8, 12], btype="bandpass", fs=SFREQ, output="sos")
    alpha = signal.sosfiltfilt(sos, raw.get_data(picks=["O1"])[0])
    envelope = np.abs(signal.hilbert(alpha))[int(SFREQ) : -int(SFREQ)]
    # A sine has a flat envelope; waxing and waning bursts vary by a large fraction.
    assert envelope.std() / envelope.mean() > 0.3


@pytest.mark.parametrize("line_freq", [50.0, 60.0])
def test_line_noise_peak_stands_above_its_neighbours(line_freq):
    raw = make_raw(10.0, n_channels=8, line_freq=line_freq)
    freqs, psd = mean_spectrum(raw)
    peak = psd[np.argmin(np.abs(freqs - line_freq))]
    near = (np.abs(freqs - line_freq) > 2) & (np.abs(freqs - line_freq) < 6)
    assert peak > 10 * np.median(psd[near])
    assert raw.info["line_freq"] == line_freq


def test_line_noise_off_leaves_no_peak():
    raw = make_raw(10.0, n_channels=8, line_noise=False)
    freqs, psd = mean_spectrum(raw)
    near = (np.abs(freqs - 50) > 2) & (np.abs(freqs - 50) < 6)
    assert psd[np.argmin(np.abs(freqs - 50))] < 3 * np.median(psd[near])


def test_line_noise_above_nyquist_is_skipped_not_an_error():
    raw = make_raw(4.0, n_channels=8, sfreq=64.0, line_freq=50.0)
    assert raw.info["line_freq"] == 50.0
    assert raw.get_data().shape == (8, 256)


def test_bad_channel_is_far_noisier_than_the_rest_and_left_for_the_cleaner():
    raw = make_raw(10.0, n_channels=16, bad_channel="c3")  # labels match case-insensitively
    variance = raw.get_data().var(axis=1)
    bad = raw.ch_names.index("C3")
    others = np.delete(variance, bad)
    assert variance[bad] > 10 * np.median(others)
    assert raw.info["bads"] == []


def test_blinks_are_large_at_fp1_small_at_o1_and_annotated():
    with_blinks = make_raw(20.0, n_channels=16, states="neutral")
    without = make_raw(20.0, n_channels=16, states="neutral", blinks=False)
    blink = with_blinks.get_data() - without.get_data()  # the blink part alone
    fp1 = np.abs(blink[with_blinks.ch_names.index("Fp1")]).max()
    o1 = np.abs(blink[with_blinks.ch_names.index("O1")]).max()
    assert fp1 > 80e-6
    assert fp1 > 10 * o1
    annotated = [a for a in with_blinks.annotations if a["description"] == "blink"]
    assert len(annotated) >= 2
    assert all(0.2 < a["duration"] < 0.7 for a in annotated)
    # Nothing but the blinks changed, and only inside the annotated spans.
    inside = np.zeros(blink.shape[1], dtype=bool)
    for a in annotated:
        inside[round(a["onset"] * SFREQ) : round((a["onset"] + a["duration"]) * SFREQ)] = True
    assert np.all(blink[:, ~inside] == 0)


def test_no_blinks_with_the_eyes_closed():
    raw = make_raw(20.0, n_channels=8, states="eyes_closed")
    assert "blink" not in raw.annotations.description


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"duration": -1.0}, r"'duration' must be a positive number, got -1.0"),
        ({"n_channels": 12}, r"'n_channels' must be one of 8, 16, 32, 64, got 12"),
        ({"sfreq": 32.0}, r"'sfreq' must be at least 64 Hz, got 32"),
        ({"states": ["sleepy"]}, r"unknown state 'sleepy'.*valid names are 'neutral'"),
        ({"states": [("focused", -2.0)]}, r"must be a positive number"),
        ({"states": [("focused", 2.0, 1.0)]}, r"'states' items must be state names or"),
        ({"states": []}, r"'states' must be None, a state name or a non-empty sequence"),
        ({"bad_channel": "Xx"}, r"'bad_channel' must be one of 'Fp1', .*got 'Xx'"),
    ],
)
def test_bad_arguments_raise_one_line_errors(kwargs, match):
    args = {"duration": 4.0, "n_channels": 16} | kwargs
    duration = args.pop("duration")
    with pytest.raises(NeuropaintError, match=match) as info:
        make_raw(duration, **args)
    assert "\n" not in str(info.value)


def test_cli_draws_the_state_spectra_png(tmp_path):
    out = tmp_path / "docs" / "psd.png"
    assert main(["--plot", str(out), "--duration", "40", "--n-channels", "16"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_reports_a_bad_argument_in_one_line(tmp_path, capsys):
    code = run_cli(main, ["--plot", str(tmp_path / "x.png"), "--duration", "-5"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "'duration' must be a positive number" in err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "x.png").exists()
