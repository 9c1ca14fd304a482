"""eeg.npeeg: labelled spans written beside a growing recording, read back as annotations."""

from __future__ import annotations

import numpy as np
import pytest

from eeg.io import read_raw
from eeg.npeeg import NpeegWriter, annotations_path
from neuropaint.validate import NeuropaintError

SFREQ = 100.0
T0 = 5000.0  # LSL clocks do not start at zero.


def _noise(n: int) -> np.ndarray:
    return np.random.default_rng(n).normal(0.0, 10e-6, (3, n))  # 10 µV: not flat.


def _write(path, seconds: float, *, start: float = T0) -> NpeegWriter:
    writer = NpeegWriter(path, ["Fz", "Cz", "Pz"], SFREQ)
    n = round(seconds * SFREQ)
    writer.append(_noise(n), start + np.arange(n) / SFREQ)
    return writer


def test_spans_become_annotations_on_the_recording_time_axis(tmp_path):
    path = tmp_path / "eeg.npeeg"
    writer = _write(path, 4.0)
    writer.annotate(T0 + 0.5, 1.0, "eyes_closed")
    # A stall of 2 s: samples resume at T0 + 6; a span across it keeps its samples only.
    writer.append(_noise(200), T0 + 6.0 + np.arange(200) / SFREQ)
    writer.annotate(T0 + 3.0, 4.0, "focused, hard")  # 1 s before the stall + 1 s after.
    writer.annotate(T0 + 7.5, 10.0, "cut")  # Runs past the end: it ends with the samples.
    writer.annotate(T0 + 4.5, 1.0, "in_the_gap")  # No sample inside: left out.
    writer.annotate(T0 - 3.0, 1.0, "before")  # Before the first sample: left out.
    assert annotations_path(path) == tmp_path / "eeg.annotations.csv"
    assert annotations_path(path).read_text().count("\n") == 6  # Flushed at once, unclosed.
    writer.close()

    raw = read_raw(tmp_path, verbose="error")  # The folder, as a live session.
    got = [(a["description"], a["onset"], a["duration"]) for a in raw.annotations]
    assert got == [("eyes_closed", pytest.approx(0.5), pytest.approx(1.0)),
                   ("focused, hard", pytest.approx(3.0), pytest.approx(2.0)),
                   ("BAD_gap", pytest.approx(4.0), pytest.approx(0.01)),
                   ("cut", pytest.approx(5.5), pytest.approx(0.5))]


def test_a_line_cut_short_by_a_crash_is_left_out(tmp_path):
    path = tmp_path / "eeg.npeeg"
    writer = _write(path, 3.0)
    writer.annotate(T0 + 0.5, 1.0, "eyes_closed")
    writer.close()
    with open(annotations_path(path), "a") as fh:
        fh.write(f"{T0 + 2.0:.6f},0.5,foc")  # No newline: the writer died mid-line.
    raw = read_raw(path, verbose="error")
    assert list(raw.annotations.description) == ["eyes_closed"]
    with open(annotations_path(path), "a") as fh:
        fh.write("\nnot a time,1,x\n")
    with pytest.raises(NeuropaintError, match=r"eeg\.annotations\.csv has a damaged line"):
        read_raw(path, verbose="error")


def test_bad_spans_and_a_stale_label_file_are_refused(tmp_path):
    path = tmp_path / "eeg.npeeg"
    writer = _write(path, 1.0)
    for args, message in [((float("nan"), 1.0, "x"), "'lsl_time' must be a finite number"),
                          ((T0, -1.0, "x"), "'duration' must be a non-negative number"),
                          ((T0, 1.0, ""), "'description' must be a non-empty one-line"),
                          ((T0, 1.0, "a\nb"), "'description' must be a non-empty one-line")]:
        with pytest.raises(NeuropaintError, match=message):
            writer.annotate(*args)
    writer.close()
    assert not annotations_path(path).exists()  # Nothing labelled, no file.
    annotations_path(tmp_path / "new.npeeg").write_text("lsl_time,duration,description\n")
    with pytest.raises(NeuropaintError, match=r"new\.annotations\.csv already exists"):
        NpeegWriter(tmp_path / "new.npeeg", ["Fz"], SFREQ)
