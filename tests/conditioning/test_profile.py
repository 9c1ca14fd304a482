"""conditioning.calibrate and conditioning.profile: a performer profile from labelled EEG.

Real parts: synthetic EEG with interleaved state blocks (``eeg.synthetic``), real GDF files
with BioSig event codes (``tests/eeg/test_labels.write_mi_gdf``), the tiny generator of the
room's conftest, the live feature processor and artifact detector.
"""

from __future__ import annotations

import copy
import json
import warnings

import numpy as np
import pytest

from conditioning.calibrate import PROFILE_WINDOW, calibrate, labelled_rows
from conditioning.calibrate import main as calibrate_main
from conditioning.encoder import FeatureMismatchWarning
from conditioning.profile import PerformerProfile
from conditioning.render import main as render_main
from conditioning.render import session_latents
from eeg.features import FeatureSpec
from eeg.synthetic import make_raw
from neuropaint.validate import NeuropaintError
from tests.conditioning.conftest import other_weights_snapshot

STATES = ["eyes_closed", "focused", "drowsy"]
ORDER = ["eyes_closed", "focused", "drowsy", "focused", "eyes_closed", "drowsy",
         "eyes_closed", "drowsy", "focused"]  # 3 interleaved rounds, no state twice in a row


def recording(seed: int, n_channels: int = 16, block: float = 8.0):
    return make_raw(block * len(ORDER), n_channels=n_channels, seed=seed,
                    states=[(s, block) for s in ORDER])


@pytest.fixture(scope="module")
def fitted(generator_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("profiles") / "me"
    profile, report = calibrate([recording(1)], generator_path, out, states=STATES,
                                permutations=10)
    return profile, report, out


def test_calibration_tells_the_states_apart_by_block(fitted):
    profile, report, out = fitted
    acc = report.accuracy
    assert acc.balanced_accuracy > acc.chance_p95 and acc.balanced_accuracy > 0.6
    assert 0.2 < acc.chance_mean < 0.5  # three states: chance about a third
    assert sum(acc.n_blocks.values()) == len(ORDER)  # every block, each on one side of a fold
    assert np.asarray(acc.confusion).sum() == sum(acc.n_rows.values())
    assert "balanced accuracy" in report.summary() and "recall" in report.summary()
    # The player was chosen by rehearsing the calibration, and says how it played it.
    assert "player: evidence" in report.summary()
    rehearsal = profile.accuracy["player_rehearsal"]
    assert rehearsal["config"] == profile.player_config.model_dump(mode="json")
    assert rehearsal["balanced_accuracy"] > 0.6
    assert profile.spec.window == PROFILE_WINDOW
    assert sorted(p.name for p in out.iterdir()) == ["accuracy.png", "config.json",
                                                     "profile.safetensors", "targets.png"]
    config = json.loads((out / "config.json").read_text())
    assert config["kind"] == "neuropaint.profile" and config["states"] == STATES
    assert config["targets"] == {s: "auto" for s in STATES}
    assert set(config["controls"]) == {"relax", "focus", "asymmetry"}
    # Auto targets are distinct paintings.
    targets = profile.targets.numpy()
    assert targets.shape == (3, profile.num_ws, profile.w_dim)
    assert min(np.abs(targets[i] - targets[j]).max() for i in range(3) for j in range(i)) > 0


def test_profile_round_trip_reads_alike(fitted, generator_path):
    profile, _, out = fitted
    loaded = PerformerProfile.from_pretrained(out, generator_path=generator_path)
    rows = labelled_rows([recording(2)], profile.spec, states=STATES)
    index = loaded.match_features(rows.names)
    values = loaded.take_features(rows.values, index)
    post, controls = loaded.read(values)
    post0, controls0 = profile.read(values)
    np.testing.assert_array_equal(post, post0)
    np.testing.assert_array_equal(controls, controls0)
    assert np.allclose(post.sum(axis=1), 1) and (controls >= 0).all() and (controls <= 1).all()
    # The posteriors follow a held-out session's states.
    hits = np.mean(np.array(STATES)[post.argmax(axis=1)] == np.array(rows.labels))
    assert hits > 0.6
    assert loaded.player_config == profile.player_config


def test_profile_paints_a_session_with_committed_states_and_csv(fitted, generator_path,
                                                               tmp_path):
    profile, _, out = fitted
    raw = recording(3)
    lat = session_latents(copy.deepcopy(profile), raw, fps=5)
    committed = [(d or {}).get("committed") or "" for d in lat.instrument]
    settled = [i for i, t in enumerate(lat.times) if t % 8.0 > 4.0]
    agree = np.mean([committed[i] == lat.states[i] for i in settled])
    assert agree > 0.6
    assert not lat.calibrating.any()  # a profile brings its own baseline
    path = tmp_path / "rec_raw.fif"
    raw.save(path, verbose="error")
    assert render_main(["--profile", str(out), str(generator_path), str(path), "--out",
                        str(tmp_path / "painted"), "--format", "frames", "--fps", "2"]) == 0
    header = (tmp_path / "painted" / "frames.csv").read_text().splitlines()[0].split(",")
    assert "committed_state" in header
    assert {f"posterior:{s}" for s in STATES} <= set(header)
    assert {"control:relax", "control:focus", "control:asymmetry"} <= set(header)


def test_profile_refuses_another_generator(fitted, generator_path, tmp_path):
    _, _, out = fitted
    other = other_weights_snapshot(generator_path, tmp_path / "other_snapshot")
    with pytest.raises(NeuropaintError, match=r"profile was calibrated for other generator "
                                              r"weights"):
        PerformerProfile.from_pretrained(out, generator_path=other)


def test_profile_on_another_channel_set_plays_with_a_warning(fitted):
    profile, _, _ = fitted
    spec = FeatureSpec()
    rows = labelled_rows([recording(4, n_channels=8)], spec, states=STATES)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        index = profile.match_features(rows.names)
    assert any(issubclass(w.category, FeatureMismatchWarning) for w in caught)
    post, _ = profile.read(profile.take_features(rows.values, index))
    assert np.isfinite(post).all()
    with pytest.warns(FeatureMismatchWarning), pytest.raises(NeuropaintError,
                                                             match="none of the profile's"):
        profile.match_features(["something:else"])


def test_bad_calibrations_are_refused_with_one_line(generator_path, tmp_path):
    raw = recording(5)
    with pytest.raises(NeuropaintError, match="at least two states"):
        calibrate([raw], generator_path, None, states=["eyes_closed"], permutations=0)
    # A state whose every row is spoiled: saturate the focused blocks.
    broken = raw.copy()
    data = broken.get_data()
    for i, state in enumerate(ORDER):
        if state == "focused":
            start, stop = (int(i * 8.0 * 256), int((i + 1) * 8.0 * 256))
            data[:, start:stop] = 1e-3  # 1000 µV on every channel
    broken._data = data
    with pytest.raises(NeuropaintError, match="state 'focused' has no clean calibration data"):
        calibrate([broken], generator_path, None, states=STATES, permutations=0)
    with pytest.raises(NeuropaintError, match="unknown state 'sleepy'"):
        calibrate([raw], generator_path, None, states=STATES, targets={"sleepy": "auto"},
                  permutations=0)
    not_image = tmp_path / "art.png"
    not_image.write_text("this is not a painting")
    with pytest.raises(NeuropaintError, match=r"art\.png is not a usable image"):
        calibrate([raw], generator_path, None, states=STATES,
                  targets={"focused": str(not_image)}, permutations=0)


def test_event_codes_label_a_real_gdf_and_absent_codes_are_listed(generator_path, tmp_path):
    from tests.eeg.test_labels import trial_events, write_mi_gdf

    path = write_mi_gdf(tmp_path / "mi.gdf", trial_events(1.25))
    with pytest.raises(NeuropaintError, match="771"):
        calibrate_main([str(path), "--generator", str(generator_path), "--out",
                        str(tmp_path / "p"), "--events", "771=feet,772=tongue",
                        "--event-window", "0.5,4.5", "--permutations", "0"])
    with pytest.raises(NeuropaintError, match="--events needs --event-window"):
        calibrate_main([str(path), "--generator", str(generator_path), "--out",
                        str(tmp_path / "p"), "--events", "769=left_hand,770=right_hand"])


def test_an_artwork_becomes_a_state_target_through_projection(generator_path, generator,
                                                              tmp_path):
    from PIL import Image

    from conditioning.render import synthesize
    from conditioning.targets import seed_target

    art = synthesize(generator, seed_target(generator, 5)[None])[0]  # a painting it can paint
    path = tmp_path / "artwork.png"
    Image.fromarray(art).resize((64, 64), Image.Resampling.LANCZOS).save(path)
    profile, report = calibrate([recording(6)], generator_path, None, states=STATES,
                                targets={"focused": str(path)}, permutations=0)
    assert report.targets["focused"] == str(path) and report.targets["drowsy"] == "auto"
    painted = synthesize(generator, profile.targets.numpy()[1:2])[0].astype(float)
    mse = np.mean((painted - art.astype(float)) ** 2)
    assert 10 * np.log10(255.0**2 / mse) > 25.0  # the target paints the artwork back


def test_recordings_of_one_state_each_calibrate_with_recording_states(generator_path, tmp_path):
    runs = []
    for seed, state in ((21, "eyes_closed"), (22, "focused")):
        raw = make_raw(62.0, n_channels=16, seed=seed, states=state)
        raw.set_annotations(None)  # as a resting run comes: no state in the file
        runs.append(raw)
    with pytest.raises(NeuropaintError, match=r"name no states.*--recording-states"):
        calibrate(runs, generator_path, None, permutations=0)
    with pytest.raises(NeuropaintError, match="1 recording states for 2 recordings"):
        calibrate(runs, generator_path, None, permutations=0, recording_states=["focused"])
    profile, report = calibrate(runs, generator_path, None, permutations=0,
                                recording_states=["eyes_closed", "focused"], block_seconds=15)
    acc = report.accuracy
    assert acc.n_blocks == {"eyes_closed": 4, "focused": 4}  # 62 s: 15+15+15+17
    assert acc.balanced_accuracy > 0.8
    assert profile.states == ["eyes_closed", "focused"]


def test_a_profile_follower_moves_no_faster_than_its_crossfade(fitted):
    from conditioning.follow import LatentFollower
    from conditioning.motion import MotionConfig
    from conditioning.player import PlayerConfig

    profile, _, _ = fitted
    names = list(profile.feature_names)
    follower = LatentFollower(copy.deepcopy(profile), names, calibration_s=0.0)
    limit = follower.player.speed_limit()
    assert limit is not None and follower.motion.config.max_step == pytest.approx(limit)
    loose = profile.player_config.model_copy(update={"crossfade": 0.0})
    assert LatentFollower(copy.deepcopy(profile), names, calibration_s=0.0,
                          player=loose).motion.config.max_step is None
    mine = MotionConfig(max_step=0.5)  # a clamp given by the caller wins
    assert LatentFollower(copy.deepcopy(profile), names, calibration_s=0.0, motion=mine,
                          player=PlayerConfig()).motion.config.max_step == 0.5
