"""eeg.channels: labels, template positions and scalp regions."""

from __future__ import annotations

import mne
import numpy as np
import pytest

from eeg.channels import (
    REGIONS,
    channel_regions,
    normalize_label,
    region_from_label,
    region_from_position,
    set_standard_montage,
    standard_channel_set,
    standard_montage,
)


@pytest.mark.parametrize(
    ("label", "region"),
    [("Fp1", "frontal_left"), ("FZ", "frontal_midline"), ("F4", "frontal_right"),
     ("FC1", "central_left"), ("Cz", "central_midline"), ("T7", "temporal_left"),
     ("T4", "temporal_right"), ("TP10", "temporal_right"), ("CP2", "parietal_right"),
     ("P7", "parietal_left"), ("PO8", "occipital_right"), ("Oz", "occipital_midline"),
     ("Iz", "occipital_midline")],
)
def test_standard_labels_map_to_their_region(label, region):
    assert region_from_label(label) == region


@pytest.mark.parametrize("label", ["A1", "M2", "EOG", "chan7", "E12", ""])
def test_non_scalp_or_unknown_labels_have_no_region(label):
    assert region_from_label(label) is None


def test_positions_place_every_64_channel_site_where_its_label_does():
    positions = standard_montage().get_positions()["ch_pos"]
    for name in standard_channel_set(64):
        assert region_from_position(positions[name]) == region_from_label(name), name


def test_unknown_position_has_no_region():
    assert region_from_position(np.array([np.nan, 0, 0])) is None
    assert region_from_position(np.zeros(3)) is None


def test_labels_with_prefixes_and_references_are_normalised():
    assert normalize_label("EEG FP1-REF") == "Fp1"
    assert normalize_label(" cz ") == "Cz"
    assert normalize_label("weird") == "weird"


def test_montage_is_set_for_standard_labels_and_unplaced_ones_are_returned():
    info = mne.create_info(["FP1", "Cz", "mystery"], 256.0, "eeg")
    raw = mne.io.RawArray(np.zeros((3, 256)), info, verbose="error")
    unplaced = set_standard_montage(raw)
    assert unplaced == ["mystery"]
    locs = {ch["ch_name"]: ch["loc"][:3] for ch in raw.info["chs"]}
    assert np.linalg.norm(locs["FP1"]) > 0.05 and np.linalg.norm(locs["Cz"]) > 0.05
    assert channel_regions(raw.info, raw.ch_names) == {
        "FP1": "frontal_left", "Cz": "central_midline", "mystery": None}


@pytest.mark.parametrize("n", [8, 16, 32, 64])
def test_standard_channel_sets_are_unique_standard_labels(n):
    names = standard_channel_set(n)
    assert len(names) == n == len(set(names))
    assert all(region_from_label(name) in REGIONS for name in names)


def test_unsupported_channel_count_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"'n_channels' must be one of 8, 16, 32, 64, got 12"):
        standard_channel_set(12)
