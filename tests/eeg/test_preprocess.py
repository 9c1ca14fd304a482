"""Tests of eeg.preprocess: bad channels, shared causal filter, mains notch, reference, spans."""

from __future__ import annotations

import json

import mne
import numpy as np
import pydantic
import pytest

from eeg.channels import set_standard_montage, standard_channel_set
from eeg.filters import CausalFilter, design_sos
from eeg.preprocess import CleanReport, PreprocessConfig, clean
from eeg.synthetic import make_raw
from neuropaint.validate import NeuropaintError, build_config

SFREQ = 256.0


def _noise_raw(
    n_channels: int = 8,
    duration: float = 10.0,
    *,
    seed: int = 0,
    names: list[str] | None = None,
    montage: bool = True,
) -> mne.io.RawArray:
    """Random EEG (about 10 µV rms, most of it below 30 Hz over a white floor of 1 µV rms).

    Standard labels (the first channels of the 16-channel set) and positions by default.
    """
    rng = np.random.default_rng(seed)
    n_times = round(duration * SFREQ)
    white = rng.standard_normal((n_channels, n_times))
    kernel = np.hanning(9) / np.hanning(9).sum()
    data = np.apply_along_axis(np.convolve, 1, white, kernel, mode="same") * 25e-6
    data += rng.standard_normal((n_channels, n_times)) * 1e-6
    names = names or standard_channel_set(16)[:n_channels]
    raw = mne.io.RawArray(data, mne.create_info(names, SFREQ, "eeg"), verbose="error")
    if montage:
        set_standard_montage(raw)
    return raw


def _amplitude(x: np.ndarray, freq: float) -> float:
    """Amplitude of the ``freq`` component of ``x`` (a whole number of cycles long)."""
    t = np.arange(x.size) / SFREQ
    return float(np.abs(2 * np.mean(x * np.exp(-2j * np.pi * freq * t))))


def _spans(raw: mne.io.BaseRaw, description: str) -> list[tuple[float, float]]:
    ann = raw.annotations
    return [
        (float(o), float(o + d))
        for o, d, desc in zip(ann.onset, ann.duration, ann.description, strict=True)
        if desc == description
    ]


def test_filter_attenuates_drift_and_80hz_and_keeps_10hz():
    raw = _noise_raw(8, 20.0)
    t = raw.times
    sines = {0.2: 100e-6, 10.0: 20e-6, 80.0: 20e-6}
    raw._data += sum(a * np.sin(2 * np.pi * f * t) for f, a in sines.items())
    out, report = clean(raw, {"reference": "none", "line_freq": 50.0})
    tail = slice(round(5 * SFREQ), round(20 * SFREQ))  # 15 s: whole cycles of every sine.
    before = raw.get_data()[:, tail].mean(axis=0)
    after = out.get_data()[:, tail].mean(axis=0)
    assert _amplitude(after, 10.0) / _amplitude(before, 10.0) == pytest.approx(1.0, abs=0.1)
    assert _amplitude(after, 0.2) / _amplitude(before, 0.2) < 0.02
    assert _amplitude(after, 80.0) / _amplitude(before, 80.0) < 0.03  # Below -30 dB.
    assert out.info["highpass"] == 1.0
    assert out.info["lowpass"] == 40.0
    assert report.l_freq == 1.0 and report.h_freq == 40.0 and report.filter_order == 4


def test_clean_filters_with_the_shared_causal_filter():
    raw = _noise_raw(8, 6.0, seed=3)
    config = {"reference": "none", "notch": False, "l_freq": 2.0, "h_freq": 30.0}
    out, report = clean(raw, config)
    assert report.bad_channels == {}
    sos = design_sos(SFREQ, 2.0, 30.0, (), order=4)
    expected = CausalFilter(sos, 8).process(raw.get_data())
    scale = np.abs(expected).max()
    np.testing.assert_allclose(out.get_data(), expected, rtol=0, atol=1e-12 * scale)


@pytest.mark.parametrize("line_freq", [50.0, 60.0])
def test_mains_detected_and_notched(line_freq):
    raw = make_raw(10.0, n_channels=16, seed=1, line_freq=line_freq, blinks=False)
    out, report = clean(raw, {"reference": "none"})
    assert report.line_freq == line_freq
    assert report.line_freq_detected
    assert report.notch_freqs == [line_freq]
    assert f"{line_freq:g} Hz detected" in report.line_note
    plain, plain_report = clean(raw, {"reference": "none", "notch": False})
    assert plain_report.notch_freqs == []
    tail = slice(round(4 * SFREQ), round(10 * SFREQ))
    notched = _amplitude(out.get_data()[:, tail].mean(axis=0), line_freq)
    kept = _amplitude(plain.get_data()[:, tail].mean(axis=0), line_freq)
    assert notched < 0.05 * kept


def test_no_mains_peak_means_no_notch():
    raw = make_raw(10.0, n_channels=16, seed=2, line_noise=False, blinks=False)
    _, report = clean(raw)
    assert report.line_freq is None
    assert not report.line_freq_detected
    assert report.notch_freqs == []
    assert "not detected" in report.line_note and "no notch" in report.line_note
    assert "notch: none" in report.summary()


def test_configured_line_freq_is_used_as_given():
    raw = make_raw(6.0, n_channels=16, seed=2, line_noise=False, blinks=False)
    _, report = clean(raw, {"line_freq": 60.0, "h_freq": None})
    assert report.line_freq == 60.0 and not report.line_freq_detected
    assert report.notch_freqs == [60.0, 120.0]  # Harmonics below Nyquist without a low-pass.


def test_mostly_nonfinite_channel_is_bad_and_output_finite():
    raw = _noise_raw(8)
    raw._data[2, : raw.n_times // 2] = np.nan
    raw._data[5, raw.n_times // 3 :] = np.inf
    out, report = clean(raw)
    assert report.bad_channels == {"F3": "nonfinite", "T7": "nonfinite"}
    assert report.interpolated == ["F3", "T7"]
    assert np.all(np.isfinite(out.get_data()))


def test_a_few_nonfinite_samples_are_held_and_annotated_not_fatal():
    raw = _noise_raw(8)
    gap = slice(500, 520)
    raw._data[:, gap] = np.nan  # a dropped packet on every channel
    raw._data[5, 100] = np.inf
    out, report = clean(raw)
    assert report.bad_channels == {}
    assert np.all(np.isfinite(out.get_data()))
    assert report.bad_spans["BAD_nonfinite"].count == 2
    onsets = [a["onset"] for a in out.annotations if a["description"] == "BAD_nonfinite"]
    assert any(onset <= 500 / SFREQ < onset + 0.5 for onset in onsets)
    assert any("non-finite samples" in w for w in report.warnings)


def test_flat_channel_is_bad():
    raw = _noise_raw(8)
    raw._data[3] = 1e-3 + 1e-8 * np.random.default_rng(1).standard_normal(raw.n_times)
    _, report = clean(raw)
    assert report.bad_channels == {"Fz": "flat"}
    assert "flat" in report.bad_channel_details["Fz"]


def test_noisy_channel_is_found_and_interpolated():
    raw = make_raw(10.0, n_channels=16, seed=4, bad_channel="C3", blinks=False)
    out, report = clean(raw)
    assert report.bad_channels == {"C3": "variance"}
    assert report.interpolated == ["C3"] and report.dropped == []
    assert out.ch_names == raw.ch_names and out.info["bads"] == []
    data = out.get_data()
    stds = data.std(axis=1)
    c3 = out.ch_names.index("C3")
    assert stds[c3] < 2 * np.median(stds)  # An interpolated channel looks like its neighbours.


def test_humming_channel_is_found_as_line_noise():
    raw = make_raw(10.0, n_channels=16, seed=9, blinks=False)
    raw._data[raw.ch_names.index("P4")] += 60e-6 * np.sin(2 * np.pi * 50.0 * raw.times)
    _, report = clean(raw)
    assert report.bad_channels == {"P4": "line_noise"}
    assert report.line_freq == 50.0


def test_noisy_channel_is_dropped_without_positions():
    names = [f"E{i}" for i in range(1, 9)]
    raw = _noise_raw(8, names=names, montage=False)
    raw._data[4] *= 30
    out, report = clean(raw)
    assert report.bad_channels == {"E5": "variance"}
    assert report.interpolated == [] and report.dropped == ["E5"]
    assert "E5" not in out.ch_names and report.n_channels_out == 7
    assert any("dropped" in w for w in report.warnings)


def test_interpolation_can_be_switched_off():
    raw = _noise_raw(8)
    raw._data[4] *= 30
    out, report = clean(raw, {"interpolate_bads": False})
    assert report.dropped == ["F4"] and "F4" not in out.ch_names


def test_marked_bad_channel_is_repaired():
    raw = _noise_raw(8)
    raw.info["bads"] = ["Fz"]
    out, report = clean(raw)
    assert report.bad_channels == {"Fz": "marked"}
    assert report.interpolated == ["Fz"] and out.info["bads"] == []


def test_all_channels_bad_is_one_clear_error():
    raw = _noise_raw(6)
    raw._data[:3] = 0.0
    raw._data[3:] = np.nan
    with pytest.raises(NeuropaintError, match=r"all 6 EEG channels are bad \(nonfinite: .*flat: "):
        clean(raw)


def test_reference_skipped_when_two_good_channels_remain():
    raw = _noise_raw(4)
    raw._data[:2] = 0.0
    _, report = clean(raw)
    assert report.reference == "skipped" and "reference" not in report.steps
    assert sorted(report.dropped) == ["Fp1", "Fp2"]
    assert any("reference skipped" in w for w in report.warnings)


def test_peak_to_peak_burst_is_annotated_at_its_time():
    raw = _noise_raw(8, 12.0)
    burst = slice(round(6.0 * SFREQ), round(6.3 * SFREQ))
    t = raw.times[burst]
    raw._data[1, burst] += 250e-6 * np.sin(2 * np.pi * 8 * t)  # 500 µV peak to peak.
    out, report = clean(raw)
    spans = _spans(out, "BAD_peak_to_peak")
    assert len(spans) == 1
    onset, end = spans[0]
    assert onset == pytest.approx(6.0, abs=0.01)
    assert 6.3 <= end <= 7.5
    assert report.bad_spans["BAD_peak_to_peak"].count == 1
    assert report.bad_span_seconds == pytest.approx(end - onset)
    assert report.bad_span_fraction == pytest.approx((end - onset) / 12.0)
    assert report.bad_channels == {}  # A short burst condemns the span, not the channel.


def test_flat_span_is_annotated():
    raw = _noise_raw(8, 12.0)
    flat = slice(round(3.0 * SFREQ), round(6.0 * SFREQ))
    raw._data[2, flat] = raw._data[2, flat.start]
    out, report = clean(raw)
    assert _spans(out, "BAD_flat") == [(pytest.approx(3.0), pytest.approx(6.0))]
    assert report.bad_spans["BAD_flat"].seconds == pytest.approx(3.0)
    assert report.bad_channels == {}


def test_short_flat_stretch_is_not_a_span():
    raw = _noise_raw(8, 8.0)
    flat = slice(round(3.0 * SFREQ), round(3.6 * SFREQ))  # Shorter than flat_span_min_duration.
    raw._data[2, flat] = raw._data[2, flat.start]
    out, _ = clean(raw)
    assert _spans(out, "BAD_flat") == []


def test_clipping_is_annotated_as_saturation():
    raw = _noise_raw(8, 12.0)
    rail = 300e-6
    clip = slice(round(8.0 * SFREQ), round(8.4 * SFREQ))
    raw._data[5, clip] = np.clip(raw._data[5, clip] * 100, -rail, rail)
    out, report = clean(raw)
    spans = _spans(out, "BAD_saturation")
    assert len(spans) == 1
    assert spans[0][0] == pytest.approx(8.0) and spans[0][1] == pytest.approx(8.5)
    assert report.bad_spans["BAD_saturation"].count == 1


def test_clean_synthetic_recording_has_no_spurious_spans():
    raw = make_raw(20.0, n_channels=16, seed=5)
    out, report = clean(raw)
    assert report.bad_channels == {}
    assert report.bad_span_seconds == 0.0
    assert [a for a in out.annotations.description if a.startswith("BAD_")] == []


def test_spans_are_not_annotated_twice():
    raw = _noise_raw(8, 8.0)
    raw._data[1, 1000:1100] += 400e-6
    once, _ = clean(raw)
    spans = _spans(once, "BAD_peak_to_peak")
    assert len(spans) == 1
    twice, report = clean(once, copy=False)
    assert twice is once
    assert report.bad_spans["BAD_peak_to_peak"].count == 1  # Found again, ...
    assert _spans(twice, "BAD_peak_to_peak") == spans  # ... but not added again.


def test_unloaded_file_with_offset_start_is_annotated_in_place(tmp_path):
    raw = make_raw(20.0, n_channels=16, seed=10)
    raw._data[2, 2560:2600] += 800e-6  # At 10.0 s.
    raw.set_meas_date(1.5e9)
    path = tmp_path / "rec_raw.fif"
    raw.save(path, verbose="error")
    lazy = mne.io.read_raw_fif(path, preload=False, verbose="error").crop(tmin=2.0)
    out, _ = clean(lazy)
    assert not lazy.preload  # copy=True loaded a copy, not the input.
    spans = _spans(out, "BAD_peak_to_peak")
    assert len(spans) == 1
    onset = spans[0][0]
    start = out.time_as_index(onset - out.first_time, use_rounding=True)[0]
    assert start == 2560 - 512  # 10.0 s into the file, 8.0 s into the cropped data.


def test_average_reference_zeroes_the_channel_mean():
    raw = make_raw(6.0, n_channels=16, seed=6, bad_channel="P3")
    out, report = clean(raw)
    assert report.reference == "average"
    data = out.get_data()
    good = [i for i, n in enumerate(out.ch_names) if n not in report.interpolated]
    assert np.abs(data[good].mean(axis=0)).max() < 1e-12 * np.abs(data).max()
    assert out.info["custom_ref_applied"] == mne.io.constants.FIFF.FIFFV_MNE_CUSTOM_REF_ON


def test_copy_true_leaves_input_unchanged_and_copy_false_works_in_place():
    raw = make_raw(6.0, n_channels=16, seed=7, bad_channel="O1")
    raw._data[3, 600:640] += 600e-6
    before = raw.get_data().copy()
    n_annotations = len(raw.annotations)
    out, _ = clean(raw)
    assert out is not raw
    np.testing.assert_array_equal(raw.get_data(), before)
    assert len(raw.annotations) == n_annotations and raw.info["highpass"] == 0.0
    assert len(out.annotations) > n_annotations
    same, _ = clean(raw, copy=False)
    assert same is raw
    np.testing.assert_allclose(raw.get_data(), out.get_data(), rtol=0, atol=1e-18)


def test_other_channels_pass_through_and_picks_must_be_eeg():
    raw = _noise_raw(8)
    eog = mne.io.RawArray(
        np.random.default_rng(2).standard_normal((1, raw.n_times)) * 1e-4,
        mne.create_info(["EOG"], SFREQ, "eog"),
        verbose="error",
    )
    raw.add_channels([eog], force_update_info=True)
    out, report = clean(raw)
    assert report.n_channels == 8
    np.testing.assert_array_equal(out.get_data(picks="EOG"), raw.get_data(picks="EOG"))
    _, report = clean(raw, picks=["Fp1", "Fp2", "F3", "Fz", "F4"])
    assert report.n_channels == 5
    with pytest.raises(NeuropaintError, match=r"'picks' must be EEG channels.*EOG"):
        clean(raw, picks=["Fp1", "EOG"])
    with pytest.raises(NeuropaintError, match=r"'picks' names no channel.*'Nope'"):
        clean(raw, picks=["Nope"])


def test_config_errors_are_one_line_and_name_the_field():
    with pytest.raises(NeuropaintError, match=r"'lowpass': unknown field") as err:
        build_config(PreprocessConfig, {"lowpass": 30.0})
    assert "\n" not in str(err.value)
    with pytest.raises(NeuropaintError, match=r"'h_freq': .*must be above 'l_freq' \(40 Hz\)"):
        build_config(PreprocessConfig, l_freq=40.0, h_freq=30.0)
    with pytest.raises(NeuropaintError, match=r"'span_length': .*greater than 0"):
        clean(_noise_raw(4, 2.0), {"span_length": -1.0})
    with pytest.raises(pydantic.ValidationError, match="l_freq"):
        PreprocessConfig(l_freq=0.0)
    with pytest.raises(NeuropaintError, match=r"'h_freq' \(200 Hz\) must be below Nyquist"):
        clean(_noise_raw(4, 2.0), {"h_freq": 200.0})


def test_report_fields_and_summary():
    raw = make_raw(10.0, n_channels=16, seed=8, bad_channel="F4")
    _, report = clean(raw)
    assert isinstance(report, CleanReport)
    assert report.steps == ["detect_bad_channels", "filter", "interpolate", "reference", "annotate"]
    assert report.sfreq == SFREQ and report.duration == pytest.approx(10.0)
    assert report.n_channels == 16 and report.n_channels_out == 16
    assert report.line_freq == 50.0 and report.notch_freqs == [50.0]
    assert report.bad_channels == {"F4": "variance"}
    assert set(report.bad_spans) == {"BAD_peak_to_peak", "BAD_flat", "BAD_saturation"}
    data = report.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["bad_channels"] == {"F4": "variance"}
    text = report.summary()
    for piece in ("16 EEG channels", "50 Hz detected", "F4 variance", "reference: average"):
        assert piece in text
