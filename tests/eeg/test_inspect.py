"""python -m eeg.inspect: the summary a newcomer sees, on a synthetic and on a real file."""

from __future__ import annotations

import subprocess
import sys

import mne
import pytest
from PIL import Image

from eeg.inspect import main
from eeg.synthetic import make_raw
from neuropaint.logs import run_cli


def test_synthetic_demo_prints_the_summary_and_draws_the_picture(tmp_path, capsys):
    picture = tmp_path / "demo.png"
    assert main(["--synthetic", "20", "--plot", str(picture)]) == 0
    out = capsys.readouterr().out
    assert "rate:      256 Hz" in out
    assert "line:      50 Hz (detected)" in out
    assert "T8 (" in out  # the channel the demo breaks on purpose is found
    assert "occipital_midline" in out and "whole_head" in out
    with Image.open(picture) as image:
        assert image.size[0] > 800 and image.size[1] > 300


def test_inspects_a_real_edf_file(tmp_path, capsys):
    raw = make_raw(12.0, n_channels=16, line_freq=60.0, seed=3)
    path = tmp_path / "session.edf"
    mne.export.export_raw(path, raw, verbose="error")
    assert main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "channels:  16 EEG" in out
    assert "line:      60 Hz (detected)" in out


def test_missing_file_is_one_line_on_stderr(tmp_path, capsys):
    assert run_cli(main, [str(tmp_path / "nope.edf")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no such file" in err


def test_non_positive_synthetic_length_is_refused(capsys):
    assert run_cli(main, ["--synthetic", "-5"]) == 2
    assert "'--synthetic' must be a positive number" in capsys.readouterr().err


@pytest.mark.slow
def test_module_runs_as_a_command(tmp_path):
    result = subprocess.run([sys.executable, "-m", "eeg.inspect", "--synthetic", "8"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "band power per region" in result.stdout
