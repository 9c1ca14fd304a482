"""eeg.io.read_raw on real files of every supported format, written into tmp_path.

EDF/BDF (edfio), BrainVision (pybv) and EEGLAB (eeglabio) files come from MNE's exporters,
FIF from ``raw.save``, GDF and XDF from the writers in ``file_writers.py``. Each test reads
the file back through the public entry point and checks what a user relies on: labels,
rate, length, samples within the format's quantisation, positions and annotations.
"""

from __future__ import annotations

import datetime as dt

import edfio
import mne
import numpy as np
import pytest

from eeg.channels import standard_montage
from eeg.io import RecordingWarning, UnitsWarning, read_raw, supported_extensions
from neuropaint.validate import NeuropaintError
from tests.eeg.file_writers import XdfStream, write_gdf, write_xdf

CH_NAMES = ["Fz", "Cz", "Pz", "Oz", "C3", "C4", "O1", "O2"]
SFREQ = 250.0
N_TIMES = 1000  # 4 s


def make_data(n_channels: int = 8, n_times: int = N_TIMES, seed: int = 0) -> np.ndarray:
    """EEG-like volts: a 10 Hz rhythm of 20 µV per channel (phases differ) plus 5 µV noise."""
    rng = np.random.default_rng(seed)
    times = np.arange(n_times) / SFREQ
    phases = np.linspace(0, np.pi, n_channels)[:, np.newaxis]
    rhythm = 20e-6 * np.sin(2 * np.pi * 10 * times + phases)
    return rhythm + 5e-6 * rng.standard_normal((n_channels, n_times))


def make_raw(ch_names=None, ch_types="eeg", data=None) -> mne.io.RawArray:
    """A 4 s RawArray with one annotation, 'go' at 1 s."""
    ch_names = list(CH_NAMES if ch_names is None else ch_names)
    data = make_data(len(ch_names)) if data is None else data
    info = mne.create_info(ch_names, SFREQ, ch_types)
    raw = mne.io.RawArray(data, info, verbose="error")
    raw.set_annotations(mne.Annotations(onset=[1.0], duration=[0.0], description=["go"]))
    return raw


def assert_placed(raw: mne.io.BaseRaw, names=None) -> None:
    """Every channel in ``names`` (default: all) has a position on the head (metres)."""
    names = raw.ch_names if names is None else names
    for name in names:
        pos = raw.info["chs"][raw.ch_names.index(name)]["loc"][:3]
        assert np.all(np.isfinite(pos)) and 0.05 < np.linalg.norm(pos) < 0.2, name


# ---------------------------------------------------------------------------------------------
# Round trips through every format
# ---------------------------------------------------------------------------------------------


def _export(fmt):
    def write(raw, path):
        mne.export.export_raw(path, raw, fmt=fmt, verbose="error")

    return write


def _save_fif(raw, path):
    raw.save(path, verbose="error")


def _write_gdf(raw, path):
    write_gdf(path, raw.get_data(), SFREQ, raw.ch_names, events=[(250, 768)],
              meas_date=dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC))


# name: (file name, writer, tolerance in volts, the annotation written as "go" reads back as)
ROUND_TRIPS = {
    "edf": ("rec.edf", _export("edf"), 5e-9, "go"),  # 16 bit over about ±45 µV
    "edf-upper-case": ("REC.EDF", _export("edf"), 5e-9, "go"),
    "bdf": ("rec.bdf", _export("bdf"), 1e-10, "go"),  # 24 bit
    "fif": ("rec_raw.fif", _save_fif, 1e-11, "go"),  # float32
    "fif-gz": ("rec_eeg.fif.gz", _save_fif, 1e-11, "go"),
    "brainvision": ("rec.vhdr", _export("brainvision"), 1e-11, "go"),
    "eeglab": ("rec.set", _export("eeglab"), 1e-11, "go"),
    "gdf": ("rec.gdf", _write_gdf, 5e-9, "768"),  # int16; our writer stores event code 768
}


@pytest.mark.filterwarnings("error::eeg.io.RecordingWarning")
@pytest.mark.parametrize("fmt", list(ROUND_TRIPS))
def test_round_trip_keeps_labels_rate_samples_and_annotations(tmp_path, fmt):
    file_name, write, atol, marker = ROUND_TRIPS[fmt]
    original = make_raw()
    path = tmp_path / file_name
    write(original, path)

    raw = read_raw(path)

    assert raw.preload
    assert raw.ch_names == CH_NAMES
    assert set(raw.get_channel_types()) == {"eeg"}
    assert raw.info["sfreq"] == SFREQ
    assert raw.n_times == N_TIMES  # 4 s
    np.testing.assert_allclose(raw.get_data(), original.get_data(), rtol=0, atol=atol)
    assert_placed(raw)
    assert any(marker in description for description in raw.annotations.description)
    onset = raw.annotations.onset[[marker in d for d in raw.annotations.description]][0]
    assert onset == pytest.approx(1.0, abs=1 / SFREQ)


def test_supported_extensions_cover_the_documented_formats():
    assert set(supported_extensions()) >= {
        ".edf", ".bdf", ".gdf", ".fif", ".fif.gz", ".vhdr", ".set", ".xdf", ".xdfz",
    }


# ---------------------------------------------------------------------------------------------
# Channels: types from labels, non-standard labels, duplicates, existing positions
# ---------------------------------------------------------------------------------------------


def test_eog_ecg_emg_and_trigger_channels_are_dropped(tmp_path):
    names = [*CH_NAMES, "HEOG", "ECG", "EMG chin", "TRIGGER"]
    path = tmp_path / "with_extras.edf"
    mne.export.export_raw(path, make_raw(names), fmt="edf", verbose="error")

    raw = read_raw(path)

    assert raw.ch_names == CH_NAMES
    assert set(raw.get_channel_types()) == {"eeg"}


def test_non_standard_labels_are_read_and_left_unplaced(tmp_path):
    names = ["Fz", "Cz", "Left", "Right", "Ch5", "E6", "Pz", "Oz"]
    path = tmp_path / "odd_labels.edf"
    mne.export.export_raw(path, make_raw(names), fmt="edf", verbose="error")

    raw = read_raw(path)

    assert raw.ch_names == names
    assert_placed(raw, ["Fz", "Cz", "Pz", "Oz"])
    for name in ("Left", "Right", "Ch5", "E6"):
        assert not np.any(np.isfinite(raw.info["chs"][raw.ch_names.index(name)]["loc"][:3]))


def test_duplicate_labels_are_renamed_with_a_warning(tmp_path):
    data_uv = make_data(3) * 1e6
    signals = [
        edfio.EdfSignal(row, sampling_frequency=SFREQ, label=label, physical_dimension="uV")
        for row, label in zip(data_uv, ["Fz", "Cz", "Fz"], strict=True)
    ]
    path = tmp_path / "duplicates.edf"
    edfio.Edf(signals).write(path)

    with pytest.warns(RecordingWarning, match=r"duplicate channel labels.*Fz -> Fz-0, Fz-1"):
        raw = read_raw(path, verbose="error")

    assert raw.ch_names == ["Fz-0", "Cz", "Fz-1"]


def test_positions_in_the_file_are_kept(tmp_path):
    original = make_raw()
    original.set_montage(standard_montage())
    moved = original.info["chs"][0]["loc"][:3] + np.array([0.01, 0.0, 0.0])
    ch_pos = {name: original.info["chs"][i]["loc"][:3] for i, name in enumerate(CH_NAMES)}
    ch_pos["Fz"] = moved
    original.set_montage(mne.channels.make_dig_montage(ch_pos=ch_pos, coord_frame="head"))
    path = tmp_path / "placed_raw.fif"
    original.save(path, verbose="error")

    raw = read_raw(path)

    np.testing.assert_allclose(raw.info["chs"][0]["loc"][:3], moved, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Units check
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("factor", "message", "fix"),
    [
        (1e6, "microvolts stored as volts", r"scaled by 1e-06"),
        (1e-6, "volts stored as microvolts", r"scaled by 1e\+06"),
    ],
)
def test_implausible_amplitude_is_rescaled_and_said(tmp_path, factor, message, fix):
    path = tmp_path / "scaled_raw.fif"
    make_raw(data=make_data() * factor).save(path, verbose="error")

    with pytest.warns(UnitsWarning, match=f"{message}.*{fix}"):
        raw = read_raw(path)  # units="auto"

    np.testing.assert_allclose(raw.get_data(), make_data(), rtol=1e-6)


def test_explicit_units_are_trusted(tmp_path):
    path = tmp_path / "scaled_raw.fif"
    make_raw(data=make_data() * 1e6).save(path, verbose="error")

    kept = read_raw(path, units="V")  # FIF stores volts: "V" keeps the numbers.
    scaled = read_raw(path, units="uV")

    np.testing.assert_allclose(kept.get_data(), make_data() * 1e6, rtol=1e-6)
    np.testing.assert_allclose(scaled.get_data(), make_data(), rtol=1e-6)


def test_bad_units_are_one_line(tmp_path):
    path = tmp_path / "ok_raw.fif"
    make_raw().save(path, verbose="error")

    with pytest.raises(NeuropaintError, match=r"'units' must be one of auto, V, uV, mV, got 'kV'"):
        read_raw(path, units="kV")


# ---------------------------------------------------------------------------------------------
# XDF
# ---------------------------------------------------------------------------------------------

XDF_START = 1234.5  # LSL time stamps count from an arbitrary clock origin.


def _eeg_stream(name="TestAmp", *, jitter=0.0005, seed=1) -> XdfStream:
    """The 8-channel test EEG at 250 Hz in microvolts, time stamps jittered by ``jitter`` s."""
    rng = np.random.default_rng(seed)
    stamps = XDF_START + np.arange(N_TIMES) / SFREQ + rng.normal(0, jitter, N_TIMES)
    return XdfStream(
        name=name, type="EEG", channel_format="float32", nominal_srate=SFREQ,
        time_stamps=stamps, time_series=(make_data() * 1e6).T,
        channel_labels=CH_NAMES, channel_units=["microvolts"] * 8, channel_types=["EEG"] * 8,
    )


def _marker_stream() -> XdfStream:
    # Sent from another machine whose clock runs 3 s behind the recorder's: the ClockOffset
    # chunks say so, and pyxdf's clock sync must bring the markers back onto the EEG.
    true_times = XDF_START + np.array([-0.5, 0.5, 1.25, 3.0, 9.0])
    return XdfStream(
        name="Markers", type="Markers", channel_format="string", nominal_srate=0.0,
        time_stamps=true_times - 3.0,
        time_series=[["before"], ["start"], ["go"], ["stop"], ["after"]],
        clock_offsets=[(XDF_START - 3.0 + t, 3.0) for t in (0.0, 2.0, 4.0)],
    )


def _second_amp() -> XdfStream:
    rng = np.random.default_rng(2)
    return XdfStream(
        name="Amp2", type="EEG", channel_format="int16", nominal_srate=100.0,
        time_stamps=XDF_START + np.arange(400) / 100.0,
        time_series=rng.integers(-30, 30, size=(400, 4)),
        channel_labels=["T7", "T8", "P7", "P8"], channel_units=["uV"] * 4,
    )


@pytest.fixture
def three_streams(tmp_path):
    return write_xdf(tmp_path / "session.xdf", [_eeg_stream(), _marker_stream(), _second_amp()])


def test_xdf_with_two_eeg_streams_asks_which_one(three_streams):
    with pytest.raises(NeuropaintError, match=r"holds 2 EEG streams: 'TestAmp' \(type EEG, 8 "
                       r"channels, float32, 250 Hz\); 'Amp2' .*stream='NAME'"):
        read_raw(three_streams)


def test_xdf_stream_by_name_resamples_jitter_and_adds_markers(three_streams):
    raw = read_raw(three_streams, stream="TestAmp")

    assert raw.ch_names == CH_NAMES
    assert raw.info["sfreq"] == SFREQ
    assert raw.n_times == N_TIMES
    # Dejittered and interpolated onto the nominal grid: within a fraction of a microvolt.
    np.testing.assert_allclose(raw.get_data(), make_data(), rtol=0, atol=1e-6)
    assert_placed(raw)
    # Markers inside the EEG's span, on the EEG's clock; the ones before and after dropped.
    assert list(raw.annotations.description) == ["start", "go", "stop"]
    np.testing.assert_allclose(raw.annotations.onset, [0.5, 1.25, 3.0], atol=1 / SFREQ)


def test_xdf_stream_choice_by_name_or_type_is_case_insensitive(three_streams):
    raw = read_raw(three_streams, stream="amp2")
    assert raw.ch_names == ["T7", "T8", "P7", "P8"]
    assert raw.info["sfreq"] == 100.0

    with pytest.raises(NeuropaintError, match=r"'EEG' matches 2 streams"):
        read_raw(three_streams, stream="EEG")


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        ("Markers", r"stream 'Markers' .* is not a regularly sampled numeric stream"),
        ("nope", r"has no stream named or typed 'nope' \(streams: 'TestAmp'"),
    ],
)
def test_xdf_bad_stream_choice_is_one_line(three_streams, stream, message):
    with pytest.raises(NeuropaintError, match=message):
        read_raw(three_streams, stream=stream)


def test_xdf_gap_is_annotated_on_a_regular_grid(tmp_path):
    n_times = 1500  # 6 s, of which 2.0 s .. 2.5 s never arrived
    data = make_data(n_times=n_times)
    stamps = XDF_START + np.arange(n_times) / SFREQ
    kept = (stamps < XDF_START + 2.0) | (stamps >= XDF_START + 2.5)
    stream = XdfStream(
        name="Headset", type="EEG", channel_format="double64", nominal_srate=SFREQ,
        time_stamps=stamps[kept], time_series=data.T[kept],
        channel_labels=CH_NAMES, channel_units=["V"] * 8,
    )
    path = write_xdf(tmp_path / "gappy.xdfz", [stream], compress=True)

    raw = read_raw(path, stream="eeg")  # by type

    assert raw.n_times == n_times
    gaps = raw.annotations[raw.annotations.description == "BAD_gap"]
    assert len(gaps) == 1
    assert gaps.onset[0] == pytest.approx(2.0 - 1 / SFREQ, abs=1e-6)
    assert gaps.duration[0] == pytest.approx(0.5 + 1 / SFREQ, abs=1e-6)
    np.testing.assert_allclose(raw.get_data()[:, kept], data[:, kept], rtol=0, atol=1e-12)


def test_xdf_without_labels_units_or_rate_is_read_with_warnings(tmp_path):
    rng = np.random.default_rng(3)
    stamps = XDF_START + np.arange(800) / 200.0 + rng.normal(0, 1e-4, 800)
    stream = XdfStream(
        name="Bare", type="EEG", channel_format="float32", nominal_srate=0.0,
        time_stamps=stamps, time_series=(make_data(4, 800) * 1e6).T,
    )
    path = write_xdf(tmp_path / "bare.xdf", [stream])

    with (
        pytest.warns(RecordingWarning, match="no channel labels"),
        pytest.warns(RecordingWarning, match="assuming microvolts"),
    ):
        raw = read_raw(path)

    assert raw.ch_names == ["EEG001", "EEG002", "EEG003", "EEG004"]
    assert raw.info["sfreq"] == pytest.approx(200.0, rel=1e-3)
    assert raw.n_times == pytest.approx(800, abs=1)


# ---------------------------------------------------------------------------------------------
# Errors: one line each
# ---------------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no such file: .*absent\.edf"):
        read_raw(tmp_path / "absent.edf")


def test_directory(tmp_path):
    (tmp_path / "rec.edf").mkdir()
    with pytest.raises(NeuropaintError, match=r"rec\.edf is a directory"):
        read_raw(tmp_path / "rec.edf")


def test_unknown_extension_lists_supported_ones(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("Fz, Cz\n1, 2\n")
    with pytest.raises(NeuropaintError, match=r"unsupported recording format '.txt'.*\.edf.*\.xdf"):
        read_raw(path)


def test_stream_on_a_single_stream_format(tmp_path):
    path = tmp_path / "rec_raw.fif"
    make_raw().save(path, verbose="error")
    with pytest.raises(NeuropaintError, match=r"'stream' applies to multi-stream .* is FIF"):
        read_raw(path, stream="EEG")


@pytest.mark.parametrize(
    ("file_name", "content", "message"),
    [
        ("text.edf", b"this is not an EDF file\n" * 20, r"cannot read .*text.edf as EDF, "),
        ("empty.bdf", b"", r"empty.bdf is empty \(0 bytes\)"),
        ("corrupt_raw.fif", bytes(range(256)) * 8, r"cannot read .*corrupt_raw.fif as FIF, "),
        ("text.xdf", b"XDF? no.", r"text.xdf is not an XDF file"),
        ("text.xdfz", b"not gzip", r"cannot read .*text.xdfz as XDF, "),
    ],
    ids=["text-as-edf", "empty-bdf", "corrupt-fif", "text-as-xdf", "text-as-xdfz"],
)
@pytest.mark.filterwarnings("ignore:Invalid measurement date:RuntimeWarning")  # MNE, on text
def test_corrupt_or_empty_files(tmp_path, file_name, content, message):
    path = tmp_path / file_name
    path.write_bytes(content)
    with pytest.raises(NeuropaintError, match=message):
        read_raw(path)


def test_truncated_edf(tmp_path):
    path = tmp_path / "cut.edf"
    mne.export.export_raw(path, make_raw(), fmt="edf", verbose="error")
    content = path.read_bytes()
    path.write_bytes(content[: len(content) - 3000])  # into the data records

    with pytest.raises(NeuropaintError, match=r"cut.edf is truncated or damaged: .* promises "
                       r"4 data records but the file holds 3\.\d\d"):
        read_raw(path)


def test_bdf_cut_inside_its_header(tmp_path):
    path = tmp_path / "cut.bdf"
    mne.export.export_raw(path, make_raw(), fmt="bdf", verbose="error")
    path.write_bytes(path.read_bytes()[:600])

    with pytest.raises(NeuropaintError, match=r"cut.bdf is truncated: .* inside its BDF header"):
        read_raw(path)


def test_truncated_xdf_reads_what_is_there_with_a_warning(tmp_path):
    path = write_xdf(tmp_path / "cut.xdf", [_eeg_stream(), _marker_stream()])
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])

    with pytest.warns(RecordingWarning, match="the XDF file is damaged"):
        raw = read_raw(path)

    assert raw.ch_names == CH_NAMES
    assert 0 < raw.n_times < N_TIMES


def test_no_eeg_channels(tmp_path):
    path = tmp_path / "no_eeg_raw.fif"
    make_raw(["STI 014", "MISC 001"], ["stim", "misc"], data=np.zeros((2, N_TIMES))).save(
        path, verbose="error"
    )
    with pytest.raises(NeuropaintError, match=r"has no EEG channels \(found: STI 014 \(stim\), "
                       r"MISC 001 \(misc\)\)"):
        read_raw(path)


def test_xdf_channel_locations_place_unlabelled_channels(tmp_path):
    """An XDF stream whose channels are called 'EEG 001'... but carry the LSL
    channels/channel/location elements (mm, as live.simulate writes them) reads back with
    those positions, so the feature layout places every channel in a region."""
    import warnings

    from eeg.features import FeatureSpec, FeatureUnfitWarning
    from eeg.online import OnlineProcessor

    template = mne.channels.make_standard_montage("standard_1020").get_positions()["ch_pos"]
    labels = [f"EEG {i + 1:03d}" for i in range(len(CH_NAMES))]
    locations = [tuple(float(v) * 1000.0 for v in template[name]) for name in CH_NAMES]
    stream = XdfStream(
        name="Headset", type="EEG", channel_format="float32", nominal_srate=SFREQ,
        time_stamps=XDF_START + np.arange(N_TIMES) / SFREQ, time_series=(make_data() * 1e6).T,
        channel_labels=labels, channel_units=["microvolts"] * 8, channel_types=["EEG"] * 8,
        channel_locations=locations)
    raw = read_raw(write_xdf(tmp_path / "placed.xdf", [stream]), verbose="error")
    positions = raw.get_montage().get_positions()["ch_pos"]
    assert raw.ch_names == labels
    for label, name in zip(labels, CH_NAMES, strict=True):
        np.testing.assert_allclose(positions[label], template[name], atol=1e-6)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FeatureUnfitWarning)
        placed = OnlineProcessor(FeatureSpec(), SFREQ, raw.ch_names, info=raw.info)
        by_label = OnlineProcessor(FeatureSpec(), SFREQ, CH_NAMES)
    assert not [w for w in caught if "placed neither" in str(w.message)]
    assert placed.names == by_label.names  # the same regions as the labelled channels give
