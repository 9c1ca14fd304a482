"""datasets.eeg: the EEG feature store, built from real files, read back and split."""

from __future__ import annotations

import json

import mne
import numpy as np
import pytest
import torch

from datasets.eeg import EEGStore, build, main, row_labels
from eeg.features import FeatureSpec, extract
from eeg.io import read_raw
from eeg.preprocess import clean
from eeg.synthetic import make_raw
from neuropaint.logs import run_cli
from neuropaint.validate import NeuropaintError


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """Three real recordings in three formats, one broken file, one too short."""
    folder = tmp_path_factory.mktemp("eeg")
    files = []
    for i, (states, suffix) in enumerate([(["eyes_closed", "focused"], ".edf"),
                                          (["drowsy", "neutral"], "_raw.fif"),
                                          (["focused", "eyes_closed"], ".vhdr")]):
        raw = make_raw(20.0, n_channels=16, states=states, seed=40 + i)
        path = folder / f"session{i}{suffix}"
        if suffix == "_raw.fif":
            raw.save(path, verbose="error")
        else:
            mne.export.export_raw(path, raw, verbose="error")
        files.append(path)
    broken = folder / "broken.edf"
    broken.write_text("this is not an EDF file\n")
    short = folder / "short_raw.fif"
    make_raw(1.0, n_channels=16, seed=9).save(short, verbose="error")
    return files, broken, short


@pytest.fixture(scope="module")
def store(recordings, tmp_path_factory):
    files, broken, short = recordings
    out = tmp_path_factory.mktemp("stores") / "eeg_store"
    report = build([files[0], broken, files[1], short, files[2]], out)
    return EEGStore(out), report


def test_bad_recordings_are_skipped_with_reasons_and_the_build_goes_on(store):
    eeg_store, report = store
    assert report["recordings_in"] == 5 and report["recordings_used"] == 3
    reasons = {item["path"].rsplit("/", 1)[-1]: item["reason"] for item in report["skipped"]}
    assert "cannot read" in reasons["broken.edf"]
    assert "shorter than one feature window" in reasons["short_raw.fif"]
    assert [r["session"] for r in eeg_store.recordings] == ["session0", "session1",
                                                             "session2"]


def test_store_rows_equal_the_eeg_room_pipeline(store, recordings):
    eeg_store, _ = store
    files, _, _ = recordings
    cleaned, _ = clean(read_raw(files[1]))
    frame = extract(cleaned, FeatureSpec())
    rows = eeg_store.rows([1], only_valid=False)
    np.testing.assert_allclose(eeg_store.features[rows], frame.values.astype(np.float32))
    np.testing.assert_array_equal(eeg_store.times[rows], frame.times)
    assert eeg_store.names == frame.names
    assert eeg_store.features.dtype == np.float32


def test_rows_carry_state_labels_from_annotations(store):
    eeg_store, _ = store
    labels = eeg_store.labels
    assert {"eyes_closed", "focused", "drowsy", "neutral"} <= set(labels)
    first = eeg_store.rows([0], only_valid=False)
    assert labels[first][0] == "eyes_closed" and labels[first][-1] == "focused"
    assert "blink" not in set(labels)  # short events never replace the state


def test_rows_in_bad_spans_are_flagged_not_dropped(tmp_path):
    raw = make_raw(12.0, n_channels=16, seed=50)
    raw._data[:4, 1536:1600] += 800e-6  # a 0.25 s jump of 800 µV on four channels at 6 s
    path = tmp_path / "jump_raw.fif"
    raw.save(path, verbose="error")
    build([path], tmp_path / "store")
    eeg_store = EEGStore(tmp_path / "store")
    n_expected = len(extract(clean(read_raw(path))[0]))
    assert len(eeg_store) == n_expected  # nothing dropped
    hit = (eeg_store.times > 6.0) & (eeg_store.times < 7.5)
    assert not eeg_store.valid[hit].any() and eeg_store.valid[eeg_store.times > 10].all()


def test_split_is_by_recording_and_never_within_one(store):
    eeg_store, _ = store
    for seed in range(5):
        train, test = eeg_store.split(0.34, seed=seed)
        train_ids = set(eeg_store.recording[train])
        test_ids = set(eeg_store.recording[test])
        assert train_ids and test_ids and not train_ids & test_ids
        for rec in test_ids:
            assert set(eeg_store.rows([rec])) <= set(test)


def test_split_of_a_single_recording_is_refused(tmp_path, recordings):
    files, _, _ = recordings
    build([files[0]], tmp_path / "one")
    with pytest.raises(NeuropaintError, match=r"needs at least 2 recordings"):
        EEGStore(tmp_path / "one").split()


def test_torch_dataset_yields_float_features_and_labels(store):
    eeg_store, _ = store
    dataset = eeg_store.torch_dataset()
    features, label = dataset[0]
    assert features.dtype == torch.float32 and features.shape == (len(eeg_store.names),)
    assert label.dtype == torch.int64
    assert len(dataset) == int(eeg_store.valid.sum())


def test_spec_and_preprocess_json_are_used_and_kept(tmp_path, recordings):
    files, _, _ = recordings
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(FeatureSpec(level="channels", features=("log_power",))
                         .model_dump_json())
    pre_file = tmp_path / "pre.json"
    pre_file.write_text(json.dumps({"h_freq": 35.0}))
    out = tmp_path / "store"
    assert main(["build", str(files[0]), str(files[1]), str(out), "--spec", str(spec_file),
                 "--preprocess", str(pre_file)]) == 0
    eeg_store = EEGStore(out)
    assert eeg_store.spec.level == "channels"
    assert eeg_store.preprocess_config.h_freq == 35.0
    assert "log_power:alpha:O1" in eeg_store.names
    assert eeg_store.recordings[0]["clean_report"]["h_freq"] == 35.0


def test_bad_config_file_is_a_one_line_error(tmp_path, recordings, capsys):
    files, _, _ = recordings
    pre_file = tmp_path / "pre.json"
    pre_file.write_text(json.dumps({"h_frq": 35.0}))
    code = run_cli(main, ["build", str(files[0]), str(tmp_path / "s"), "--preprocess",
                          str(pre_file)])
    assert code == 2
    assert "'h_frq': unknown field" in capsys.readouterr().err


def test_existing_store_is_kept_unless_overwrite(tmp_path, recordings):
    files, _, _ = recordings
    out = tmp_path / "store"
    build([files[0]], out)
    with pytest.raises(NeuropaintError, match=r"already exists; pass --overwrite"):
        build([files[1]], out)
    build([files[1]], out, overwrite=True)
    assert EEGStore(out).recordings[0]["session"] == "session1"


def test_unfinished_build_does_not_look_like_a_store(tmp_path):
    partial = tmp_path / "store.partial"
    partial.mkdir()
    np.save(partial / "features.npy", np.zeros((3, 2), np.float32))
    with pytest.raises(NeuropaintError, match=r"no manifest.json \(a build into it did not"):
        EEGStore(tmp_path / "store")


def test_no_usable_recording_is_a_clear_error(tmp_path, recordings):
    _, broken, short = recordings
    with pytest.raises(NeuropaintError, match=r"no usable recording among 2 file\(s\)"):
        build([broken, short], tmp_path / "store")


def test_info_prints_a_summary(store, capsys):
    eeg_store, _ = store
    assert main(["info", str(eeg_store.path)]) == 0
    out = capsys.readouterr().out
    assert "recordings: 3" in out and "skipped at build" in out


def test_row_labels_prefer_the_longest_covering_annotation():
    raw = make_raw(10.0, n_channels=8, states=["neutral"], seed=3)
    raw.set_annotations(mne.Annotations([0.0, 2.0], [10.0, 0.5], ["neutral", "blink"]))
    labels = row_labels(raw, np.array([1.0, 2.2, 9.9, 10.5]))
    assert labels == ["neutral", "neutral", "neutral", ""]
