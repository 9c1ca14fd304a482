"""eeg.labels: state spans from annotations or from event codes, and the label of each row.

Recordings are real: motor-imagery style GDF files (BioSig event codes 768 trial start,
769/770 left/right-hand cues) written by ``file_writers.write_gdf`` and read back through
:func:`eeg.io.read_raw`, and synthetic EEG from :func:`eeg.synthetic.make_raw`, whose
annotations are state names plus ``blink`` events.
"""

from __future__ import annotations

import datetime as dt
import struct
import warnings

import mne
import numpy as np
import pytest

from eeg.features import FeatureSpec, extract
from eeg.io import read_raw
from eeg.labels import (
    LabelWarning,
    check_label_balance,
    check_label_options,
    is_artifact,
    labels_at,
    parse_event_map,
    parse_event_window,
    parse_states,
    state_annotations,
)
from eeg.synthetic import make_raw
from neuropaint.validate import NeuropaintError
from tests.eeg.file_writers import write_gdf

SFREQ = 256.0
TRIAL_S = 8.0  # BioSig's 768 "trial start" spans the trial.
CUE_AT = 2.0  # Seconds from trial start to the 769/770 cue, as in BCI Competition IV 2a.
FIRST_TRIAL = 2.0
N_TRIALS = 6
DURATION = 52.0


def trial_events(cue_duration: float) -> list[tuple[int, int, float]]:
    """(sample, code, duration in s): a 768 per trial, then 769 (even) or 770 (odd) cues."""
    events = []
    for k in range(N_TRIALS):
        start = FIRST_TRIAL + k * TRIAL_S
        events.append((round(start * SFREQ), 768, TRIAL_S))
        events.append((round((start + CUE_AT) * SFREQ), 769 if k % 2 == 0 else 770,
                       cue_duration))
    return events


def cue_times(code: int) -> np.ndarray:
    first = FIRST_TRIAL + CUE_AT + (0 if code == 769 else TRIAL_S)
    return first + 2 * TRIAL_S * np.arange(N_TRIALS // 2)


def write_mi_gdf(path, events: list[tuple[int, int, float]], *, seed: int = 0,
                 meas_date: dt.datetime | None = None):
    """A GDF whose event table (mode 3) holds each event's duration, as BioSig writes them.

    ``write_gdf`` writes mode 1 (position and type); mode 3 adds a channel (uint16, 0 = all)
    and a duration in samples (uint32) per event, after the types (Schlögl 2006, sec. 4.3).
    """
    raw = make_raw(DURATION, n_channels=16, sfreq=SFREQ, states="neutral", seed=seed,
                   blinks=False)
    write_gdf(path, raw.get_data(), SFREQ, raw.ch_names,
              events=[(sample, code) for sample, code, _ in events], meas_date=meas_date)
    n_events = len(events)
    mode1 = 8 + 6 * n_events  # mode, 3-byte count, float32 rate, uint32 + uint16 per event
    content = path.read_bytes()
    table = content[-mode1:]
    assert table[0] == 1
    durations = [round(seconds * SFREQ) for _, _, seconds in events]
    mode3 = (bytes([3]) + table[1:] + struct.pack(f"<{n_events}H", *([0] * n_events))
             + struct.pack(f"<{n_events}I", *durations))
    path.write_bytes(content[:-mode1] + mode3)
    return path


@pytest.fixture(scope="module")
def gdf_cue_spans(tmp_path_factory):
    """768 spans each 8 s trial; its 769/770 cue lasts 1.25 s inside it."""
    path = tmp_path_factory.mktemp("gdf") / "cue_spans.gdf"
    return read_raw(write_mi_gdf(path, trial_events(1.25)), verbose="error")


@pytest.fixture(scope="module")
def gdf_cues(tmp_path_factory):
    """768 spans each 8 s trial; 769/770 cues have no duration (MNE reads one sample)."""
    path = tmp_path_factory.mktemp("gdf") / "cues.gdf"
    raw = read_raw(write_mi_gdf(path, trial_events(0.0),
                                meas_date=dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)),
                   verbose="error")
    assert raw.info["meas_date"] is not None
    return raw


# ---------------------------------------------------------------------------------------------
# Parsing the options
# ---------------------------------------------------------------------------------------------


def test_parse_event_map_reads_code_state_pairs():
    assert parse_event_map(" 769=left_hand, 770=right_hand ") == {"769": "left_hand",
                                                                   "770": "right_hand"}
    assert parse_event_map("769=hand,770=hand") == {"769": "hand", "770": "hand"}


@pytest.mark.parametrize(("text", "match"), [
    ("769", r"'events' item '769' is not CODE=STATE \(e.g. '769=left_hand'\)"),
    ("769=a,=b", r"'events' item '=b' is not CODE=STATE"),
    ("769=a,,770=b", r"'events' item '' is not CODE=STATE"),
    ("769=a=b", r"'events' item '769=a=b' is not CODE=STATE"),
    ("769=", r"'events' item '769=' has an empty state name"),
    ("769=a,769=b", r"'events codes' must be unique, got duplicates \['769'\]"),
    ("", r"'events' is empty; expected CODE=STATE items"),
    ("769=blink", r"'events' names 'blink', an artifact marker"),
    ("769=BAD_hand", r"'events' names 'BAD_hand', an artifact marker"),
])
def test_parse_event_map_refuses_bad_items(text, match):
    with pytest.raises(NeuropaintError, match=match):
        parse_event_map(text)


def test_parse_event_window_reads_tmin_tmax():
    assert parse_event_window("0.5,4.5") == (0.5, 4.5)
    assert parse_event_window("-0.5, 2") == (-0.5, 2.0)


@pytest.mark.parametrize(("text", "match"), [
    ("0.5", r"'event_window' must be TMIN,TMAX in seconds \(e.g. '0.5,4.5'\), got '0.5'"),
    ("a,b", r"'event_window' must be TMIN,TMAX in seconds"),
    ("0,1,2", r"'event_window' must be TMIN,TMAX in seconds"),
    ("4.5,0.5", r"'event_window' needs tmin < tmax, got \(4.5, 0.5\)"),
    ("1,1", r"'event_window' needs tmin < tmax"),
    ("nan,1", r"'event_window' must be finite"),
    ("0,inf", r"'event_window' must be finite"),
])
def test_parse_event_window_refuses_bad_windows(text, match):
    with pytest.raises(NeuropaintError, match=match):
        parse_event_window(text)


def test_parse_states_and_its_errors():
    assert parse_states("eyes_closed, focused") == ["eyes_closed", "focused"]
    with pytest.raises(NeuropaintError, match=r"'states' must be unique, got duplicates"):
        parse_states("a,a")
    with pytest.raises(NeuropaintError, match=r"'states' has an empty state name"):
        parse_states("a,")
    with pytest.raises(NeuropaintError, match=r"'states' names 'blink', an artifact marker"):
        parse_states("blink")


def test_label_options_are_checked_together():
    options = check_label_options({769: "left"}, (0, 4), ["left"])
    assert options == {"events": {"769": "left"}, "event_window": [0.0, 4.0],
                       "states": ["left"]}
    with pytest.raises(NeuropaintError, match=r"'event_window' needs 'events'"):
        check_label_options(event_window=(0.0, 4.0))
    with pytest.raises(NeuropaintError, match=r"'states' \['feet'\] are not states of "
                                              r"'events' \(left, right\)"):
        check_label_options({"769": "left", "770": "right"}, states=["feet"])
    with pytest.raises(NeuropaintError, match=r"'events' must be a non-empty mapping"):
        check_label_options({})


def test_artifact_markers():
    assert is_artifact("blink") and is_artifact("BAD_gap") and is_artifact("bad")
    assert is_artifact("EDGE boundary") and is_artifact("Comment/blink")  # BrainVision
    assert is_artifact("Bad Interval/Bad Min-Max")
    assert not is_artifact("eyes_closed") and not is_artifact("768")


# ---------------------------------------------------------------------------------------------
# Spans from the recording's annotations
# ---------------------------------------------------------------------------------------------


def test_trial_marker_does_not_swallow_the_cues_it_spans(gdf_cue_spans):
    raw = gdf_cue_spans
    assert {"768", "769", "770"} == set(raw.annotations.description)
    spans = state_annotations(raw)
    first = list(zip(spans.onset[:3], spans.duration[:3], spans.description[:3], strict=True))
    np.testing.assert_allclose([o for o, _, _ in first], [2.0, 4.0, 5.25])
    np.testing.assert_allclose([d for _, d, _ in first], [2.0, 1.25, 4.75])
    assert [n for _, _, n in first] == ["768", "769", "768"]
    assert len(spans) == 3 * N_TRIALS  # each trial: 768, its cue, 768 again
    assert spans.orig_time is None
    cue = cue_times(770)[0]
    times = np.array([1.0, cue - 0.1, cue, cue + 1.2, cue + 1.3, DURATION - 0.5])
    assert labels_at(raw, times) == ["", "768", "770", "770", "768", ""]


def test_synthetic_states_are_labelled_and_blinks_never():
    raw = make_raw(30.0, n_channels=16, states=["eyes_closed", "focused", "drowsy"], seed=1)
    assert "blink" in set(raw.annotations.description)
    spans = state_annotations(raw)
    assert list(spans.description) == ["eyes_closed", "focused", "drowsy"]
    np.testing.assert_allclose(spans.onset, [0.0, 10.0, 20.0])
    np.testing.assert_allclose(spans.duration, [10.0, 10.0, 10.0])
    frame = extract(raw, FeatureSpec())
    labels = labels_at(raw, frame.times)
    expected = np.array(["eyes_closed", "focused", "drowsy"])[(frame.times // 10).astype(int)]
    assert labels == list(expected)


def test_states_keeps_only_the_named_annotations():
    raw = make_raw(30.0, n_channels=8, states=["eyes_closed", "focused", "drowsy"], seed=1)
    spans = state_annotations(raw, states=["focused", "eyes_closed"])
    assert list(spans.description) == ["eyes_closed", "focused"]
    assert labels_at(raw, [5.0, 15.0, 25.0], states=["focused"]) == ["", "focused", ""]


def test_absent_state_lists_the_annotations_present():
    raw = make_raw(20.0, n_channels=8, states=["eyes_closed", "focused"], seed=1)
    with pytest.raises(NeuropaintError, match=r"'states' \['sleep'\] are not annotations of "
                                              r"the recording; it has 'eyes_closed' ×1, "
                                              r"'focused' ×1\.$"):
        state_annotations(raw, states=["eyes_closed", "sleep"])


def test_cues_without_an_event_map_warn_and_label_nothing(gdf_cues):
    with pytest.warns(LabelWarning, match=r"6 annotation\(s\) of \(almost\) no duration are "
                                          r"cues, not spans, and label nothing \('769' ×3, "
                                          r"'770' ×3\); to label from them pass --events "
                                          r"CODE=STATE --event-window TMIN,TMAX"):
        spans = state_annotations(gdf_cues)
    assert set(spans.description) == {"768"}  # the trial marker is all that is left


def test_states_that_are_only_cues_are_refused(gdf_cues):
    with pytest.raises(NeuropaintError, match=r"'states' \['769'\] occur only as cues of no "
                                              r"duration, not spans; pass --events"):
        state_annotations(gdf_cues, states=["769"])


# ---------------------------------------------------------------------------------------------
# Spans from event codes
# ---------------------------------------------------------------------------------------------

EVENTS = {"769": "left_hand", "770": "right_hand"}


def test_event_map_and_window_give_one_span_per_cue(gdf_cues):
    spans = state_annotations(gdf_cues, events=EVENTS, event_window=(0.5, 4.5))
    assert list(spans.description) == ["left_hand", "right_hand"] * (N_TRIALS // 2)
    cues = np.sort(np.concatenate([cue_times(769), cue_times(770)]))
    np.testing.assert_allclose(spans.onset, cues + 0.5)
    np.testing.assert_allclose(spans.duration, 4.0)


def test_event_map_labels_each_feature_row(gdf_cues):
    frame = extract(gdf_cues, FeatureSpec())
    labels = np.array(labels_at(gdf_cues, frame.times, events=EVENTS,
                                event_window=(0.5, 4.5)))
    for code, state in (("769", "left_hand"), ("770", "right_hand")):
        in_window = np.zeros(len(frame.times), dtype=bool)
        for cue in cue_times(int(code)):
            in_window |= (frame.times >= cue + 0.5) & (frame.times < cue + 4.5)
        np.testing.assert_array_equal(labels == state, in_window)
    assert set(labels) == {"", "left_hand", "right_hand"}
    assert "768" not in set(labels)


def test_a_state_subset_of_the_event_map(gdf_cues):
    spans = state_annotations(gdf_cues, events=EVENTS, event_window=(0.5, 4.5),
                              states=["right_hand"])
    assert set(spans.description) == {"right_hand"} and len(spans) == N_TRIALS // 2


def test_cues_with_their_own_duration_need_no_window(gdf_cue_spans):
    spans = state_annotations(gdf_cue_spans, events=EVENTS)
    np.testing.assert_allclose(spans.duration, 1.25)
    assert spans.onset[0] == pytest.approx(cue_times(769)[0])


def test_cues_without_duration_need_a_window(gdf_cues):
    with pytest.raises(NeuropaintError, match=r"6 cue\(s\) of 'events' have no duration "
                                              r"\('769' ×3, '770' ×3\); pass an event window"):
        state_annotations(gdf_cues, events=EVENTS)


def test_absent_code_lists_the_codes_present(gdf_cues):
    with pytest.raises(NeuropaintError, match=r"'events' codes \['771', '772'\] are not in the "
                                              r"recording; it has '768' ×6, '769' ×3, "
                                              r"'770' ×3\.$"):
        state_annotations(gdf_cues, events={"769": "left", "771": "feet", "772": "tongue"},
                          event_window=(0.5, 4.5))


def test_the_list_of_codes_present_is_cut_after_twelve(tmp_path):
    events = [(round((1 + 2 * i) * SFREQ), 800 + i, 0.0) for i in range(15)]
    raw = read_raw(write_mi_gdf(tmp_path / "many.gdf", events), verbose="error")
    with pytest.raises(NeuropaintError, match=r"'800' ×1, .*'811' ×1 \(\+3 more\)\.$"):
        state_annotations(raw, events={"999": "x"}, event_window=(0, 1))


def test_overlapping_windows_of_equal_length_go_to_the_newer_cue(gdf_cues):
    spans = state_annotations(gdf_cues, events=EVENTS, event_window=(0.0, 10.0))
    cues = np.sort(np.concatenate([cue_times(769), cue_times(770)]))
    np.testing.assert_allclose(spans.onset, cues)  # each cue's window ends at the next cue
    np.testing.assert_allclose(spans.duration[:-1], np.diff(cues))
    assert spans.onset[-1] + spans.duration[-1] == pytest.approx(DURATION)  # clipped


def test_windows_are_clipped_to_the_recording(gdf_cues):
    spans = state_annotations(gdf_cues, events=EVENTS, event_window=(-10.0, 1.0))
    assert spans.onset[0] == 0.0
    assert labels_at(gdf_cues, [0.0], events=EVENTS, event_window=(-10.0, 1.0)) == ["left_hand"]


# ---------------------------------------------------------------------------------------------
# The clock: seconds from the first sample
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("meas_date", [None, dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)])
def test_times_count_from_the_first_sample_after_a_crop(meas_date):
    raw = make_raw(30.0, n_channels=8, states=["eyes_closed", "focused", "drowsy"], seed=1)
    raw.set_meas_date(meas_date)
    cropped = raw.copy().crop(tmin=7.0)
    assert cropped.first_samp > 0
    # 2.9 s after the crop is 9.9 s into the recording: still eyes_closed; 3.1 s is focused.
    assert labels_at(cropped, [2.9, 3.1, 13.1]) == ["eyes_closed", "focused", "drowsy"]
    np.testing.assert_allclose(state_annotations(cropped).onset, [0.0, 3.0, 13.0])


def test_labels_at_accepts_annotations_on_the_row_clock():
    annotations = mne.Annotations([0.0, 2.0, 2.5], [10.0, 1.0, 0.0], ["rest", "go", "cue"])
    with pytest.warns(LabelWarning, match=r"'cue' ×1"):
        labels = labels_at(annotations, [1.0, 2.5, 3.0, 10.0])
    assert labels == ["rest", "go", "rest", ""]
    dated = mne.Annotations([1.0], [1.0], ["rest"], orig_time=dt.datetime(2024, 1, 1,
                                                                           tzinfo=dt.UTC))
    with pytest.raises(NeuropaintError, match=r"annotations with an orig_time count from the "
                                              r"measurement date: pass the Raw"):
        labels_at(dated, [1.0])
    with pytest.raises(NeuropaintError, match=r"'inst' must be an mne Raw or "
                                              r"mne.Annotations, got list"):
        labels_at([1.0], [1.0])


# ---------------------------------------------------------------------------------------------
# One label everywhere
# ---------------------------------------------------------------------------------------------


def test_one_label_on_most_rows_is_warned():
    labels = ["768"] * 19 + ["769"] + [""] * 5
    with pytest.warns(LabelWarning, match=r"^label '768' covers 95% of the 20 labelled rows; "
                                          r"pass --events CODE=STATE"):
        message = check_label_balance(labels)
    assert "--states A,B" in message


def test_mostly_unlabelled_rows_are_warned():
    with pytest.warns(LabelWarning, match=r"^90% of the 10 rows have no state label"):
        check_label_balance([""] * 9 + ["left"])


def test_balanced_labels_are_not_warned():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_label_balance(["left"] * 11 + ["right"] * 2 + [""] * 3) is None
        assert check_label_balance([]) is None
    with pytest.raises(NeuropaintError, match=r"'threshold' must be in \(0, 1\], got 0"):
        check_label_balance(["a"], threshold=0)


def test_a_whole_recording_of_one_state_is_cut_into_blocks():
    from eeg.labels import parse_recording_states, whole_recording_blocks

    raw = make_raw(70.0, n_channels=8, seed=3)
    blocks = whole_recording_blocks(raw, "eyes_open", 30.0)
    assert list(blocks.onset) == [0.0, 30.0] and list(blocks.duration) == [30.0, 40.0]
    assert set(blocks.description) == {"eyes_open"}
    assert list(whole_recording_blocks(raw, "x", 25.0).duration) == [25.0, 25.0, 20.0]
    assert parse_recording_states("a,b,a") == ["a", "b", "a"]  # repeats allowed
    with pytest.raises(NeuropaintError, match="block seconds"):
        whole_recording_blocks(raw, "x", 0)
