"""conditioning.render: a recorded session painted offline exactly as the live loop would."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from conditioning.encoder import Encoder
from conditioning.motion import MotionConfig
from conditioning.render import (
    main,
    render_recording,
    session_latents,
    stream_features,
)
from eeg.features import FeatureSpec, extract
from eeg.online import OnlineProcessor
from eeg.synthetic import make_raw
from gan.checkpoint import load_generator, save_snapshot
from gan.presets import get_preset
from gan.train import build_networks
from neuropaint.logs import run_cli
from neuropaint.validate import NeuropaintError

SFREQ = 128.0


def _encoder(G, run, ch_names, seed: int = 0) -> Encoder:
    """An untrained encoder with random weights, so that its output follows the features."""
    names = OnlineProcessor(FeatureSpec(), SFREQ, ch_names).names
    encoder = Encoder.for_generator(FeatureSpec(), names, G, run, hidden=16, code_dim=4)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in encoder.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=gen))
    return encoder


@pytest.fixture(scope="module")
def model(generator, generator_path):
    """The conftest's tiny generator, a random-weight encoder, 12 s of two states."""
    G = generator
    raw = make_raw(12.0, n_channels=16, sfreq=SFREQ, states=["neutral", "focused"],
                   state_duration=6.0, seed=1)
    return G, _encoder(G, generator_path, raw.ch_names), raw


def test_frames_table_and_states_follow_the_recording(model):
    G, encoder, raw = model
    frames, table, latents = render_recording(encoder, G, raw, fps=10, size=24,
                                              calibration_s=3.0, return_latents=True)
    assert frames.shape == (12 * 10, 24, 24, 3) and frames.dtype == np.uint8
    assert len(table) == len(frames) == len(latents)
    assert [row["frame"] for row in table] == list(range(len(frames)))
    assert table[10]["time"] == pytest.approx(1.0)
    assert table[30]["state"] == "neutral" and table[80]["state"] == "focused"
    # No feature row before the first 2 s window: not valid, no features, resting at w_avg.
    assert not table[20]["valid"] and np.isnan(table[20]["eeg_time"])
    assert np.isnan(table[20][encoder.feature_names[0]])
    np.testing.assert_allclose(latents.ws[0], G.mapping.w_avg.expand(G.num_ws, -1), atol=1e-6)
    # The newest EEG behind a frame is never from its future, and at most a hop old.
    later = latents.eeg_times[21:]  # the first row ends at 2.008 s
    assert np.all(later <= latents.times[21:] + 1e-9)
    assert np.all(latents.times[21:] - later <= 13 / SFREQ)  # hop: 13 samples
    # Calibration (3 s) holds the painting still; after it the EEG moves it.
    assert latents.calibrating[:30].all() and not latents.calibrating[30:].any()
    steps = np.abs(np.diff(latents.ws, axis=0)).max(axis=(1, 2))
    assert steps[:29].max() < 1e-6 and steps[30:].max() > 1e-3
    assert set(table[0]) >= {"frame", "time", "state", "valid", "eeg_time", "calibrating",
                             *encoder.feature_names}


def test_live_chunking_gives_the_offline_features(model):
    _, encoder, raw = model
    times = np.arange(12 * 15) / 15
    streamed = stream_features(raw, encoder.spec, times)
    offline = extract(raw, encoder.spec, apply_filter=True)
    n = len(streamed)
    np.testing.assert_allclose(streamed.values, offline.values[:n], rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(streamed.times, offline.times[:n])


@pytest.mark.parametrize("how", ["nan", "bad_annotation"])
def test_invalid_rows_hold_the_last_good_latent(model, how):
    _, encoder, raw = model
    raw = raw.copy()
    if how == "nan":
        raw._data[:, int(7.0 * SFREQ) : int(7.5 * SFREQ)] = np.nan
    else:
        raw.annotations.append(7.0, 0.5, "BAD_movement")
    # A short time constant: the painting reaches each target within a frame or two.
    latents = session_latents(encoder, raw, fps=15, motion=MotionConfig(tau=0.02),
                              calibration_s=3.0)
    held = np.flatnonzero(~latents.valid & (latents.times > 5))
    # The rows whose 2 s window overlaps the span, from 7.0 s to 9.5 s.
    assert latents.times[held[0]] == pytest.approx(7.0, abs=0.2)
    assert latents.times[held[-1]] == pytest.approx(9.5, abs=0.2)
    during = np.abs(np.diff(latents.ws[held[2] : held[-1] + 1], axis=0)).max()
    clean = np.abs(np.diff(latents.ws[60:100], axis=0)).max()
    assert during < 1e-3 * clean  # held still while the EEG is bad ...
    after = np.abs(latents.ws[held[-1] + 3] - latents.ws[held[-1]]).max()
    assert after > 10 * during  # ... and following again once it is clean


def test_cli_writes_a_gif_and_the_csv(model, generator_path, tmp_path, capsys):
    G, encoder, raw = model
    encoder.save_pretrained(tmp_path / "enc")
    recording = tmp_path / "session_raw.fif"
    raw.save(recording, verbose="error")
    out = tmp_path / "out"
    assert main([str(tmp_path / "enc"), str(generator_path), str(recording), "--out", str(out),
                 "--fps", "5", "--size", "32", "--calibration", "2", "--save-ws"]) == 0
    assert "60 frames (32x32 px" in capsys.readouterr().out
    with Image.open(out / "session.gif") as gif:
        assert gif.size == (32, 32)
        # PIL merges identical neighbours (the still calibration frames): count time instead.
        total = 0
        for i in range(gif.n_frames):
            gif.seek(i)
            total += gif.info["duration"]
        assert total == 60 * 200
    with open(out / "frames.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 60
    assert rows[0]["state"] == "neutral" and rows[-1]["state"] == "focused"
    assert rows[59]["valid"] == "1" and float(rows[59]["time"]) == pytest.approx(11.8)
    assert np.isfinite(float(rows[59][encoder.feature_names[0]]))  # a number ...
    assert rows[0][encoder.feature_names[0]] == ""  # ... blank before the first row
    assert np.load(out / "ws.npy").shape == (60, G.num_ws, G.w_dim)


def test_cli_mp4_without_ffmpeg_says_so(model, generator_path, tmp_path, capsys):
    if shutil.which("ffmpeg"):
        pytest.skip("ffmpeg is installed here; the mp4 path runs instead")
    _, encoder, raw = model
    encoder.save_pretrained(tmp_path / "enc")
    recording = tmp_path / "rec_raw.fif"
    raw.save(recording, verbose="error")
    assert run_cli(main, [str(tmp_path / "enc"), str(generator_path), str(recording), "--out",
                          str(tmp_path / "out"), "--format", "mp4"]) == 2
    assert "mp4 needs ffmpeg, which is not installed" in capsys.readouterr().err


def test_generator_mismatch_is_refused(model, generator_path, tmp_path, capsys):
    _, encoder, raw = model
    encoder.save_pretrained(tmp_path / "enc")
    recording = tmp_path / "rec_raw.fif"
    raw.save(recording, verbose="error")
    # Same architecture, other weights: from_pretrained's refusal, as one line.
    other = load_generator(generator_path)
    with torch.no_grad():
        next(other.parameters()).add_(1.0)
    save_snapshot(tmp_path / "other", {"G_ema": other}, {})
    assert run_cli(main, [str(tmp_path / "enc"), str(tmp_path / "other"), str(recording),
                          "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "the encoder was trained for other generator weights" in err
    assert len(err.strip().splitlines()) == 1
    # Another shape, passed in Python: the ws do not fit.
    bigger, _ = build_networks(get_preset("tiny32"))
    with pytest.raises(NeuropaintError, match=r"the encoder outputs ws \[6, 32\] but the "
                                              r"generator takes \[8, 32\]"):
        render_recording(encoder, bigger, raw, fps=5)


def test_recordings_that_cannot_be_painted_get_clear_errors(model, tmp_path, capsys):
    G, encoder, raw = model
    all_bad = raw.copy()
    all_bad.annotations.append(0.0, 12.0, "BAD_all")
    with pytest.raises(NeuropaintError, match=r"no clean feature rows \(all \d+ overlap bad"):
        render_recording(encoder, G, all_bad, fps=5)
    short = raw.copy().crop(0, 1.5)
    with pytest.raises(NeuropaintError, match=r"no feature rows: it is shorter than one "
                                              r"feature window \(2 s\)"):
        render_recording(encoder, G, short, fps=5)
    broken = tmp_path / "broken.edf"
    broken.write_bytes(b"0       not an EDF header at all")
    with pytest.raises(NeuropaintError, match=r"cannot read .*broken.edf as EDF"):
        render_recording(encoder, G, broken, fps=5)
    with pytest.raises(FileNotFoundError, match=r"missing.fif"):
        render_recording(encoder, G, tmp_path / "missing.fif", fps=5)
    with pytest.raises(NeuropaintError, match=r"'fps' must be a positive number, got 0"):
        render_recording(encoder, G, raw, fps=0)


@pytest.mark.filterwarnings("ignore::eeg.features.FeatureUnfitWarning")
def test_fewer_channels_than_the_encoder_still_plays(model):
    G, encoder, _ = model
    small = make_raw(8.0, n_channels=8, sfreq=SFREQ, seed=2)
    with pytest.warns(UserWarning, match=r"encoder features are not in the stream"):
        frames, table = render_recording(encoder, G, small, fps=5, calibration_s=3.0)
    assert frames.shape == (40, 16, 16, 3)
    assert table[-1]["valid"]


def test_session_calibration_uses_the_whole_recording_before_the_first_frame(model):
    _, encoder, raw = model
    latents = session_latents(encoder, raw, fps=5, calibration_s=None)
    assert not latents.calibrating.any()
    rows = stream_features(raw, encoder.spec, latents.times)
    assert int(encoder.normalizer.count) == int(rows.valid.sum())  # every clean row
    with pytest.raises(NeuropaintError, match=r"'--calibration' must be seconds or 'session', "
                                              r"got 'soon'"):
        main([".", ".", ".", "--out", ".", "--calibration", "soon"])


def test_cli_quiet_draws_no_progress_bar(model, generator_path, tmp_path, capsys):
    _, encoder, raw = model
    encoder.save_pretrained(tmp_path / "enc")
    recording = tmp_path / "session_raw.fif"
    raw.save(recording, verbose="error")
    args = [str(tmp_path / "enc"), str(generator_path), str(recording), "--fps", "2",
            "--size", "16", "--calibration", "2", "--format", "frames"]
    assert main([*args, "--out", str(tmp_path / "loud")]) == 0
    assert "painting" in capsys.readouterr().err  # the progress bar, by default
    assert main([*args, "--out", str(tmp_path / "quiet"), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert "24 frames" in captured.out
