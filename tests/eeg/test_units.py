"""Unit mix-ups in recordings (issue 15, point 1): microvolt numbers in a file that says volts.

A common BioSig GDF export stores microvolts under the volt code. Read as the file says, its
EEG is a million times too loud: every window is an artefact, band powers come out near
1e12 µV², and ``eeg.inspect --plot`` used to crash on the empty clean part. The tests write
such a GDF with the project's own GDF writer and read it back through MNE's real reader.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from PIL import Image

from datasets.eeg import build
from eeg.inspect import main as inspect_main
from eeg.io import UnitsWarning, read_raw, units_note
from eeg.preprocess import clean
from eeg.synthetic import make_raw
from neuropaint.logs import run_cli
from tests.eeg.file_writers import XdfStream, write_gdf, write_xdf

SECONDS = 20.0


@pytest.fixture(scope="module")
def truth():
    """8 channels of synthetic EEG in volts, 256 Hz."""
    return make_raw(SECONDS, n_channels=8, seed=0)


@pytest.fixture(scope="module")
def uv_as_v(tmp_path_factory, truth):
    """A GDF whose numbers are microvolts and whose channels say volts."""
    path = tmp_path_factory.mktemp("units") / "biosig_export.gdf"
    return write_gdf(path, truth.get_data() * 1e6, truth.info["sfreq"], truth.ch_names,
                     unit="V")


def _read(path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnitsWarning)
        return read_raw(path, verbose="error", **kwargs)


def test_auto_units_correct_microvolts_labelled_volts_and_say_so(uv_as_v, truth):
    with pytest.warns(UnitsWarning, match=r"microvolts stored as volts .*scaled by 1e-06"):
        raw = read_raw(uv_as_v, verbose="error")  # units="auto" is the default

    # int16 samples: the round trip is exact to the file's quantisation (range / 65536).
    step = 2.02 * np.abs(truth.get_data()).max(axis=1, keepdims=True) / 65535
    assert np.all(np.abs(raw.get_data() - truth.get_data()) <= step)
    cleaned, report = clean(raw)
    assert report.units_note is not None and "scaled by 1e-06" in report.units_note
    assert "units: biosig_export.gdf: EEG amplitude looks like microvolts" in report.summary()
    assert report.to_dict()["units_note"] == report.units_note
    assert report.bad_span_fraction < 0.2  # was 100 % before the correction
    assert units_note(cleaned) == report.units_note


def test_explicit_units_are_trusted(uv_as_v, truth):
    as_stated = _read(uv_as_v, units="V")
    given = _read(uv_as_v, units="uV")

    assert np.median(np.std(as_stated.get_data(), axis=1)) > 1.0  # the file's volts, untouched
    assert units_note(as_stated) is None
    np.testing.assert_allclose(given.get_data(), _read(uv_as_v).get_data())
    assert units_note(given) == "biosig_export.gdf: units uV given, the file says V: scaled by 1e-06"


def test_trusting_the_wrong_unit_warns_in_the_clean_report(uv_as_v):
    _, report = clean(_read(uv_as_v, units="V"))
    assert report.bad_span_fraction > 0.95
    assert any("is it in µV labelled as V?" in w for w in report.warnings)


def test_inspect_plots_the_mislabelled_file_with_either_units(uv_as_v, tmp_path, capsys):
    for units in ("auto", "V"):  # "V": every window bad; the plot used to raise IndexError
        picture = tmp_path / f"{units}.png"
        assert run_cli(inspect_main, [str(uv_as_v), "--units", units, "--plot",
                                      str(picture)]) == 0
        with Image.open(picture) as image:
            assert image.size[0] > 800
    out = capsys.readouterr().out
    assert "units:     biosig_export.gdf: EEG amplitude looks like microvolts" in out
    assert "no clean feature row" in out  # the --units V run says its figures include artefacts


def test_inspect_on_a_flat_recording_is_one_line(tmp_path, truth, capsys):
    path = write_gdf(tmp_path / "flat.gdf", np.zeros((8, truth.n_times)), truth.info["sfreq"],
                     truth.ch_names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = run_cli(inspect_main, [str(path), "--plot", str(tmp_path / "flat.png")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == ("python -m eeg.inspect: error: all 8 EEG channels are bad "
                   "(flat: Fz, C3, Cz, C4, Pz, PO7, Oz, PO8).")


def test_eeg_store_build_records_the_correction(uv_as_v, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = build([uv_as_v], tmp_path / "store")
    assert report["recordings_used"] == 1
    manifest = json.loads((tmp_path / "store" / "manifest.json").read_text())
    assert "scaled by 1e-06" in manifest["recordings"][0]["clean_report"]["units_note"]


def test_an_xdf_stream_in_microvolts_labelled_volts(tmp_path, truth):
    """XDF: the unit comes from the stream's channel descriptions; both ways of fixing it."""
    data = truth.get_data()
    stream = XdfStream(
        name="Amp", type="EEG", channel_format="float32", nominal_srate=truth.info["sfreq"],
        time_stamps=100.0 + np.arange(truth.n_times) / truth.info["sfreq"],
        time_series=(data * 1e6).T, channel_labels=truth.ch_names,
        channel_units=["volts"] * len(truth.ch_names), channel_types=["EEG"] * 8,
    )
    path = write_xdf(tmp_path / "session.xdf", [stream])

    auto = _read(path)
    given = _read(path, units="uV")

    np.testing.assert_allclose(auto.get_data(), data, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(given.get_data(), data, rtol=1e-5, atol=1e-9)
    assert "scaled by 1e-06" in units_note(auto)
    assert units_note(given) == "session.xdf: units uV given, the file says V: scaled by 1e-06"
