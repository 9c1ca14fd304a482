"""eeg.features: the feature definition, its checks, and what the features measure."""

from __future__ import annotations

import mne
import numpy as np
import pytest

from eeg.channels import standard_channel_set
from eeg.features import FeatureSpec, FeatureUnfitWarning, build_layout, extract
from eeg.synthetic import make_raw
from neuropaint.validate import NeuropaintError, build_config


def _state_rows(frame, raw, state):
    """Rows whose whole window lies inside an annotation of ``state``."""
    inside = np.zeros(len(frame), dtype=bool)
    for ann in raw.annotations:
        if ann["description"] == state:
            start, stop = ann["onset"] + 3.0, ann["onset"] + ann["duration"]
            inside |= (frame.times >= start) & (frame.times <= stop)
    return inside


def test_default_spec_matches_the_documented_bands_and_features():
    spec = FeatureSpec()
    assert spec.bands["alpha"] == (8.0, 13.0)
    assert spec.window == 2.0 and spec.hop == 0.1
    assert spec.features == ("log_power", "relative_power", "alpha_asymmetry",
                             "spectral_entropy")


def test_spec_round_trips_through_json():
    spec = FeatureSpec(bands={"alpha": (8, 12), "beta": (13, 30)}, level="channels")
    assert FeatureSpec.model_validate_json(spec.model_dump_json()) == spec


def test_unknown_spec_field_is_a_one_line_error_naming_it():
    with pytest.raises(NeuropaintError, match=r"'windw': unknown field"):
        build_config(FeatureSpec, windw=3.0)


def test_band_with_low_above_high_is_rejected():
    with pytest.raises(NeuropaintError, match=r"band 'alpha' must have 0 <= low < high"):
        build_config(FeatureSpec, bands={"alpha": (13, 8)})


def test_asymmetry_without_an_alpha_band_is_rejected():
    with pytest.raises(NeuropaintError, match=r"needs a band named 'alpha'"):
        build_config(FeatureSpec, bands={"theta": (4, 8)})


def test_sfreq_too_low_for_gamma_names_the_band():
    with pytest.raises(NeuropaintError, match=r"band 'gamma' \(30-40 Hz\) needs sfreq above 80"):
        build_layout(FeatureSpec(), 64.0, ["Fz", "Cz"])


def test_band_narrower_than_one_bin_is_rejected():
    spec = FeatureSpec(bands={"alpha": (10.1, 10.2)}, features=("log_power",))
    with pytest.raises(NeuropaintError, match=r"band 'alpha' .* holds no frequency bin"):
        build_layout(spec, 256.0, ["Oz"])


def test_duplicate_channel_names_are_rejected():
    with pytest.raises(NeuropaintError, match=r"'ch_names' must be unique.*'Cz'"):
        build_layout(FeatureSpec(), 256.0, ["Cz", "Pz", "Cz"])


def test_recording_shorter_than_one_window_is_a_clear_error():
    raw = make_raw(1.5, n_channels=8, seed=1)
    with pytest.raises(NeuropaintError, match=r"shorter than one feature window"):
        extract(raw)


def test_rows_are_stamped_with_their_newest_sample_and_spaced_by_the_hop():
    raw = make_raw(8.0, n_channels=8, seed=2)
    frame = extract(raw)
    layout = build_layout(FeatureSpec(), raw.info["sfreq"], raw.ch_names)
    assert frame.times[0] == pytest.approx((layout.window_n - 1) / raw.info["sfreq"])
    assert np.allclose(np.diff(frame.times), layout.hop_n / raw.info["sfreq"])
    assert frame.values.shape == (len(frame), len(frame.names))
    assert np.isfinite(frame.values).all() and frame.valid.all()


def test_region_features_cover_the_populated_regions_and_the_whole_head():
    raw = make_raw(4.0, n_channels=32, seed=3)
    frame = extract(raw)
    assert "log_power:alpha:occipital_midline" in frame.names
    assert "log_power:alpha:whole_head" in frame.names
    assert "alpha_asymmetry:frontal" in frame.names
    assert "spectral_entropy:whole_head" in frame.names
    rel = frame.values[:, [i for i, n in enumerate(frame.names)
                           if n.startswith("relative_power:") and n.endswith(":whole_head")]]
    assert np.all(rel > 0) and np.all(rel.sum(axis=1) <= 1.0 + 1e-9)
    entropy = frame.column("spectral_entropy:whole_head")
    assert np.all((entropy > 0) & (entropy < 1))


def test_channel_level_names_each_channel_and_frontal_pairs():
    raw = make_raw(4.0, n_channels=16, seed=4)
    frame = extract(raw, FeatureSpec(level="channels"))
    assert "log_power:alpha:O1" in frame.names
    assert "alpha_asymmetry:F4-F3" in frame.names
    assert "alpha_asymmetry:Fp2-Fp1" in frame.names


def test_eyes_closed_raises_occipital_alpha_over_focused():
    raw = make_raw(60.0, n_channels=32, states=["eyes_closed", "focused"], seed=5)
    frame = extract(raw)
    alpha = frame.column("log_power:alpha:occipital_midline")
    closed = alpha[_state_rows(frame, raw, "eyes_closed")].mean()
    focused = alpha[_state_rows(frame, raw, "focused")].mean()
    assert closed - focused > 0.3  # log10 units: at least 2x the power


def test_drowsy_raises_frontal_midline_theta_over_focused():
    raw = make_raw(60.0, n_channels=32, states=["drowsy", "focused"], seed=6)
    frame = extract(raw)
    theta = frame.column("log_power:theta:frontal_midline")
    drowsy = theta[_state_rows(frame, raw, "drowsy")].mean()
    focused = theta[_state_rows(frame, raw, "focused")].mean()
    assert drowsy - focused > 0.2


def test_focused_raises_frontal_beta_over_drowsy():
    raw = make_raw(60.0, n_channels=32, states=["drowsy", "focused"], seed=6)
    frame = extract(raw)
    beta = frame.column("log_power:beta:frontal_midline")
    assert beta[_state_rows(frame, raw, "focused")].mean() > (
        beta[_state_rows(frame, raw, "drowsy")].mean() + 0.15)


def test_alpha_asymmetry_is_positive_when_right_frontal_alpha_is_stronger():
    sfreq, n = 256.0, 256 * 10
    t = np.arange(n) / sfreq
    rng = np.random.default_rng(7)
    data = rng.standard_normal((2, n)) * 2e-6
    data[1] += 20e-6 * np.sin(2 * np.pi * 10 * t)  # F4 (right) carries more alpha
    spec = FeatureSpec(level="channels", reference="none")
    frame = extract(data, spec, sfreq=sfreq, ch_names=["F3", "F4"])
    assert np.all(frame.column("alpha_asymmetry:F4-F3") > 1.0)


def test_unknown_labels_fall_back_to_whole_head_features_with_a_warning():
    raw = make_raw(4.0, n_channels=8, seed=8)
    data = raw.get_data()
    names = [f"chan{i}" for i in range(8)]
    with pytest.warns(FeatureUnfitWarning, match=r"placed neither by label nor by position"):
        frame = extract(data, sfreq=raw.info["sfreq"], ch_names=names)
    units = {name.rsplit(":", 1)[-1] for name in frame.names}
    assert units == {"whole_head"}
    assert np.isfinite(frame.values).all()


def test_unusual_labels_with_positions_are_placed_by_position():
    raw = make_raw(4.0, n_channels=16, seed=9)
    montage = raw.get_montage()
    mapping = {name: f"E{i}" for i, name in enumerate(raw.ch_names)}
    raw.rename_channels(mapping)
    positions = montage.get_positions()["ch_pos"]
    raw.set_montage(mne.channels.make_dig_montage(
        {mapping[k]: v for k, v in positions.items() if k in mapping}, coord_frame="head"))
    frame = extract(raw)
    assert "log_power:alpha:occipital_midline" in frame.names


def test_flat_channel_gives_finite_features():
    raw = make_raw(4.0, n_channels=8, seed=10)
    data = raw.get_data()
    data[0] = 0.0
    spec = FeatureSpec(level="channels", reference="none")
    frame = extract(data, spec, sfreq=raw.info["sfreq"], ch_names=raw.ch_names)
    assert np.isfinite(frame.values).all()
    assert frame.column(f"log_power:alpha:{raw.ch_names[0]}").max() < -5


def test_already_cleaned_recording_skips_the_spec_filter():
    raw = make_raw(6.0, n_channels=8, seed=11)
    filtered = raw.copy()
    with filtered.info._unlock():
        filtered.info["highpass"], filtered.info["lowpass"] = 1.0, 40.0
    direct = extract(filtered)
    assert not np.allclose(direct.values, extract(raw).values)
    assert np.allclose(direct.values, extract(filtered, apply_filter=False).values)


def test_standard_channel_sets_give_expected_feature_counts():
    spec = FeatureSpec(level="channels", features=("log_power",))
    for n in (8, 16, 32, 64):
        layout = build_layout(spec, 256.0, standard_channel_set(n))
        assert layout.n_features == n * len(spec.bands)


def test_rows_overlapping_bad_annotations_are_flagged_not_dropped():
    raw = make_raw(12.0, n_channels=8, seed=12)
    raw.annotations.append(6.0, 0.5, "BAD_peak_to_peak")
    frame = extract(raw)
    layout = build_layout(FeatureSpec(), raw.info["sfreq"], raw.ch_names)
    span_s = (layout.window_n - 1) / raw.info["sfreq"]  # newest minus oldest sample time
    hit = (frame.times >= 6.0) & (frame.times - span_s < 6.5)
    assert hit.any() and not frame.valid[hit].any()
    assert frame.valid[~hit].all()
    assert len(extract(raw, reject_by_annotation=False)) == len(frame)
    assert extract(raw, reject_by_annotation=False).valid.all()
