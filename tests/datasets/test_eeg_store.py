"""datasets.eeg: the EEG feature store, built from real files, read back and split."""

from __future__ import annotations

import json
import re

import mne
import numpy as np
import pytest
import torch

from datasets.eeg import EEGStore, build, main, row_labels
from eeg.features import FeatureSpec, extract
from eeg.io import read_raw
from eeg.labels import LabelWarning
from eeg.preprocess import clean
from eeg.synthetic import make_raw
from neuropaint.logs import run_cli
from neuropaint.validate import NeuropaintError
from tests.eeg.test_labels import cue_times, trial_events, write_mi_gdf


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
    assert not any(label.endswith("blink") for label in labels)  # BrainVision: Comment/blink


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


def test_row_labels_take_the_shortest_covering_span_and_never_a_blink():
    raw = make_raw(10.0, n_channels=8, states=["neutral"], seed=3)
    raw.set_annotations(mne.Annotations([0.0, 2.0, 5.0], [10.0, 0.5, 2.0],
                                        ["neutral", "blink", "focused"]))
    labels = row_labels(raw, np.array([1.0, 2.2, 5.5, 7.5, 9.9, 10.5]))
    assert labels == ["neutral", "neutral", "focused", "neutral", "neutral", ""]


# ---------------------------------------------------------------------------------------------
# Labels from event codes (a motor-imagery GDF: 768 spans each trial, 769/770 are cues)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mi_gdf(tmp_path_factory):
    return write_mi_gdf(tmp_path_factory.mktemp("gdf") / "mi.gdf", trial_events(0.0))


def test_build_with_events_labels_left_and_right(mi_gdf, tmp_path):
    out = tmp_path / "store"
    assert main(["build", str(mi_gdf), str(out), "--events", "770=right_hand,769=left_hand",
                 "--event-window", "0.5,4.5"]) == 0
    eeg_store = EEGStore(out)
    assert eeg_store.label_names == ["", "right_hand", "left_hand"]  # in the order given
    assert eeg_store.manifest["label_options"] == {
        "events": {"770": "right_hand", "769": "left_hand"}, "event_window": [0.5, 4.5],
        "states": None}
    labels = eeg_store.labels
    for code, state in ((769, "left_hand"), (770, "right_hand")):
        in_window = np.zeros(len(eeg_store), dtype=bool)
        for cue in cue_times(code):
            in_window |= (eeg_store.times >= cue + 0.5) & (eeg_store.times < cue + 4.5)
        assert in_window.any()
        np.testing.assert_array_equal(labels == state, in_window)


def test_build_of_trial_markers_warns_that_one_label_covers_all(mi_gdf, tmp_path):
    with pytest.warns(LabelWarning) as record:
        report = build([mi_gdf], tmp_path / "store")
    messages = [str(w.message) for w in record]
    assert any(m.startswith("6 annotation(s) of (almost) no duration are cues") for m in messages)
    assert any(re.match(r"label '768' covers 100% of the \d+ labelled rows; pass --events "
                        r"CODE=STATE", m) for m in messages)
    assert set(report["labels"]) == {"", "768"}


def test_build_skips_a_recording_without_the_codes(mi_gdf, recordings, tmp_path):
    files, _, _ = recordings
    with pytest.raises(NeuropaintError, match=r"no usable recording among 1 file\(s\) "
                                              r"\(session0.edf: 'events' codes \['769', '770'\] "
                                              r"are not in the recording; it has "
                                              r"'eyes_closed' ×1, 'focused' ×1"):
        build([files[0]], tmp_path / "store", events={"769": "left", "770": "right"},
              event_window=(0.5, 4.5))


def test_build_with_states_keeps_those_and_skips_recordings_without_them(recordings,
                                                                         tmp_path):
    files, _, _ = recordings
    out = tmp_path / "store"
    # session2.vhdr's markers read back as Comment/focused, Comment/eyes_closed.
    assert main(["build", *map(str, files), str(out), "--states", "focused,eyes_closed"]) == 0
    eeg_store = EEGStore(out)
    assert eeg_store.label_names == ["", "focused", "eyes_closed"]
    assert [r["session"] for r in eeg_store.recordings] == ["session0"]
    reasons = [item["reason"] for item in eeg_store.manifest["skipped"]]
    assert reasons[0] == ("'states' ['focused', 'eyes_closed'] are not annotations of the "
                          "recording; it has 'drowsy' ×1, 'neutral' ×1.")
    assert "it has 'Comment/eyes_closed' ×1, 'Comment/focused' ×1." in reasons[1]


@pytest.mark.parametrize(("options", "message"), [
    (["--events", "769"], "'events' item '769' is not CODE=STATE"),
    (["--events", "769=a", "--event-window", "4,1"], "'event_window' needs tmin < tmax"),
    (["--event-window", "0,4"], "'event_window' needs 'events'"),
    (["--states", "blink"], "'states' names 'blink', an artifact marker"),
])
def test_bad_label_options_are_one_line_errors(mi_gdf, tmp_path, capsys, options, message):
    code = run_cli(main, ["build", str(mi_gdf), str(tmp_path / "s"), *options])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()
