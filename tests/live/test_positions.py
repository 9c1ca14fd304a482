"""Sensor positions travel over LSL: simulator -> source -> online processor -> session.

A recording whose channels have non-standard labels (``EEG 001``...) can only be placed on
the head by position. Streamed by ``live.simulate --file``, the positions go out as the XDF
convention's ``channels/channel/location`` (X, Y, Z in millimetres), arrive in
``LSLSource.meta`` (metres), place every channel in a region of an ``OnlineProcessor``, and
are kept by a recorded session, whose ``read_raw`` gives them back as a montage.
"""

from __future__ import annotations

import time
import warnings

import mne
import numpy as np
import pylsl
import pytest

from eeg.channels import channel_regions, standard_channel_set, standard_montage
from eeg.features import FeatureSpec, FeatureUnfitWarning
from eeg.io import read_raw
from eeg.online import OnlineProcessor
from eeg.synthetic import make_raw
from live.record import SessionRecorder
from live.source import LSLSource, StreamWarning
from tests.live.conftest import StartSimulator

SITES = standard_channel_set(16)  # The channels of make_raw(n_channels=16), in its order.
LABELS = [f"EEG {i + 1:03d}" for i in range(len(SITES))]


def write_fif_with_positions(path) -> mne.io.BaseRaw:
    """8 s of 16-channel synthetic EEG, channels renamed ``EEG 001``..., with the template
    positions of the 10-20 sites they stand for (fiducials included)."""
    raw = make_raw(8.0, n_channels=16, seed=3)
    assert raw.ch_names == SITES
    raw.set_montage(None)
    raw.rename_channels(dict(zip(SITES, LABELS, strict=True)))
    template = standard_montage().get_positions()  # MNE's 10-05 template, by its current name.
    montage = mne.channels.make_dig_montage(
        ch_pos={label: template["ch_pos"][site] for site, label in zip(SITES, LABELS,
                                                                       strict=True)},
        nasion=template["nasion"], lpa=template["lpa"], rpa=template["rpa"],
        coord_frame=template["coord_frame"])
    raw.set_montage(montage)
    raw.save(path, verbose="error")
    return read_raw(path)


def wire_location(name: str, index: int) -> np.ndarray:
    """Channel ``index``'s ``location`` X, Y, Z as a plain liblsl inlet sees them."""
    infos = pylsl.resolve_bypred(f"name='{name}'", 1, 3.0)
    assert infos, "the stream is not visible"
    channel = pylsl.StreamInlet(infos[0]).info(timeout=3.0).desc().child("channels").child(
        "channel")
    for _ in range(index):
        channel = channel.next_sibling("channel")
    location = channel.child("location")
    return np.array([float(location.child_value(axis)) for axis in "XYZ"])


def read_for(source: LSLSource, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    parts, stamps = [], []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.05)
        data, times = source.read()
        parts.append(data)
        stamps.append(times)
    return np.concatenate(parts, axis=1), np.concatenate(stamps)


@pytest.mark.filterwarnings("ignore:no frontal channels on both sides")  # Labels alone.
def test_positions_travel_from_a_file_to_the_processor_and_the_session(
        tmp_path, start_simulator: StartSimulator):
    original = write_fif_with_positions(tmp_path / "renamed_raw.fif")
    expected = {ch["ch_name"]: ch["loc"][:3] for ch in original.info["chs"]}
    regions = channel_regions(original.info, LABELS)
    assert all(regions.values()), "the file's own positions place every channel"

    _, name = start_simulator(file=tmp_path / "renamed_raw.fif", loop=True)
    with LSLSource(name, timeout=5.0) as source:
        meta = source.meta
        assert meta.ch_names == LABELS
        assert sorted(meta.positions) == sorted(LABELS)
        for label in LABELS:  # Millimetres on the wire (3 decimals), metres here.
            np.testing.assert_allclose(meta.positions[label], expected[label], atol=1e-6)
        wire = wire_location(name, 0)
        np.testing.assert_allclose(wire, expected[LABELS[0]] * 1e3, atol=1e-3)

        with pytest.warns(FeatureUnfitWarning, match="placed neither by label nor by posi"):
            OnlineProcessor(FeatureSpec(), meta.sfreq, meta.ch_names)  # Labels alone: lost.
        info = meta.info()
        with warnings.catch_warnings():
            warnings.simplefilter("error", FeatureUnfitWarning)  # "placed neither by label..."
            processor = OnlineProcessor(FeatureSpec(), meta.sfreq, meta.ch_names, info=info)
        assert channel_regions(info, LABELS) == regions
        assert any("frontal_left" in n for n in processor.names)
        assert processor.names == OnlineProcessor(FeatureSpec(), meta.sfreq, LABELS,
                                                  info=original.info).names

        recorder = SessionRecorder(tmp_path / "session", meta, num_ws=2, w_dim=4)
        data, times = read_for(source, 1.0)
        assert len(times) > 0
        recorder.write_eeg(data, times)
        recorder.close()

    session = read_raw(tmp_path / "session")
    assert session.ch_names == LABELS
    montage = session.get_montage()
    assert montage is not None
    got = montage.get_positions()["ch_pos"]
    for label in LABELS:
        np.testing.assert_allclose(got[label], expected[label], atol=1e-6)
    assert channel_regions(session.info, LABELS) == regions


def test_a_stream_without_positions_reads_as_before(tmp_path, start_simulator):
    _, name = start_simulator(channels=16)  # Synthetic: standard labels, no locations.
    with LSLSource(name, timeout=5.0) as source:
        meta = source.meta
        assert meta.positions == {}
        info = meta.info()
        assert info.ch_names == meta.ch_names
        assert info.get_montage() is None
        with warnings.catch_warnings():
            warnings.simplefilter("error", FeatureUnfitWarning)  # Placed by label.
            OnlineProcessor(FeatureSpec(), meta.sfreq, meta.ch_names, info=info)
        recorder = SessionRecorder(tmp_path / "session", meta, num_ws=2, w_dim=4)
        data, times = read_for(source, 0.6)
        recorder.write_eeg(data, times)
        recorder.close()
    session = read_raw(tmp_path / "session")
    assert session.ch_names == meta.ch_names  # Standard labels: template positions, as before.


@pytest.mark.filterwarnings("ignore:stream .* gives no voltage unit")
def test_a_file_stream_without_labels_sends_no_positions(tmp_path, start_simulator):
    write_fif_with_positions(tmp_path / "renamed_raw.fif")
    _, name = start_simulator(file=tmp_path / "renamed_raw.fif", loop=True, labels=False)
    with pytest.warns(StreamWarning, match="no channel labels"), LSLSource(name) as source:
        assert source.meta.positions == {}
        assert source.meta.info().get_montage() is None
