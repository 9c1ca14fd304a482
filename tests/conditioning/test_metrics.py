"""conditioning.metrics: the probe, the distances and the smoothness ratio on known cases,
and evaluate_encoder end to end on a tiny generator."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conditioning.encoder import Encoder
from conditioning.metrics import (
    GOALS,
    coverage_from_sets,
    evaluate_encoder,
    fit_test_probe,
    image_features,
    json_ready,
    linear_probe,
    responsiveness,
    settled_mask,
    sliced_wasserstein_vectors,
    smoothness,
    summary_line,
)
from eeg.features import FeatureSpec
from eeg.online import OnlineProcessor
from eeg.synthetic import make_raw
from neuropaint.validate import NeuropaintError

SFREQ = 128.0
STATES = ("neutral", "eyes_closed", "focused", "drowsy")


def _coloured_frames(rng, colours, per_state, noise=20.0, size=16):
    """Frames of flat colours plus pixel noise: [n_states * per_state, size, size, 3]."""
    frames = []
    for colour in colours:
        base = np.broadcast_to(np.asarray(colour, np.float64), (per_state, size, size, 3))
        frames.append(np.clip(base + rng.normal(0, noise, base.shape), 0, 255))
    return np.concatenate(frames).astype(np.uint8)


def test_probe_separates_separable_states_and_not_random_ones():
    rng = np.random.default_rng(0)
    colours = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40)]
    images, states, groups = [], [], []
    for rec in range(3):
        images.append(_coloured_frames(rng, colours, per_state=10))
        states += [s for s in STATES for _ in range(10)]
        groups += [rec] * 40
    images = np.concatenate(images)
    result = responsiveness(images, states, groups)
    assert result["accuracy"] == 1.0 and result["passed"]
    assert result["cv"] == "by_recording" and result["folds"] == 3
    assert result["chance"] == 0.25 and result["classes"] == sorted(STATES)
    shuffled = rng.permutation(np.asarray(states))
    assert linear_probe(image_features(images), shuffled, groups)["accuracy"] < 0.5


def test_probe_reports_which_state_it_confuses():
    # Two states painted the same colour cannot be told apart; the other two can.
    rng = np.random.default_rng(2)
    colours = [(200, 40, 40), (200, 40, 40), (40, 40, 200), (40, 200, 40)]
    images = np.concatenate([_coloured_frames(rng, colours, per_state=20) for _ in range(4)])
    states = [s for s in STATES for _ in range(20)] * 4
    groups = np.repeat(np.arange(4), 80)
    per_class = linear_probe(image_features(images), states, groups)["per_class"]
    assert per_class["focused"] == 1.0 and per_class["drowsy"] == 1.0
    assert per_class["neutral"] + per_class["eyes_closed"] < 1.5


def test_lda_probe_reads_a_state_that_lies_between_the_others():
    # Three states on one axis (means -3, 0, +3): regression onto class indicators masks the
    # middle one (no indicator's fit is highest there); discriminant analysis does not.
    rng = np.random.default_rng(3)
    states = np.repeat(["low", "middle", "high"], 60)
    centre = np.repeat([-3.0, 0.0, 3.0], 60)
    features = np.column_stack([centre + rng.normal(0, 0.5, 180), rng.normal(0, 1, (180, 4))])
    groups = np.tile(np.arange(6), 30)
    ridge = linear_probe(features, states, groups, method="ridge")
    lda = linear_probe(features, states, groups, method="lda")
    assert ridge["per_class"]["middle"] < 0.5 and ridge["method"] == "ridge"
    assert lda["per_class"]["middle"] > 0.9 and lda["accuracy"] > 0.95
    with pytest.raises(NeuropaintError, match=r"'method' must be one of 'ridge', 'lda', got 'svm'"):
        linear_probe(features, states, groups, method="svm")


def test_probe_with_one_recording_falls_back_to_time_blocks(caplog):
    rng = np.random.default_rng(1)
    images = _coloured_frames(rng, [(0, 0, 0), (255, 255, 255)] * 3, per_state=5)
    states = ["a"] * 5 + ["b"] * 5
    result = linear_probe(image_features(images), states * 3, [0] * 30)
    assert result["cv"] == "blocked" and result["accuracy"] == 1.0
    assert "one recording only" in caplog.text


def test_image_features_are_area_downsampled_pixels():
    image = np.zeros((1, 32, 32, 3), np.uint8)
    image[0, :16] = 255  # top half white
    features = image_features(image, size=2).reshape(3, 2, 2)
    np.testing.assert_allclose(features[:, 0], 1.0)
    np.testing.assert_allclose(features[:, 1], 0.0)
    assert image_features(np.zeros((2, 8, 8, 3), np.uint8), size=16).shape == (2, 3 * 8 * 8)


def test_sliced_wasserstein_of_vectors_measures_a_shift():
    rng = np.random.default_rng(0)
    b = rng.standard_normal((500, 1))
    # In 1-D every direction is +-1: the distance is the shift in units of b's spread.
    assert sliced_wasserstein_vectors(b + 2.0, b) == pytest.approx(2.0 / b.std(), rel=1e-6)
    a = rng.standard_normal((300, 8))  # sizes may differ
    c = rng.standard_normal((700, 8))
    same = sliced_wasserstein_vectors(a, c)
    assert same < 0.15
    assert sliced_wasserstein_vectors(a + 1.0, c) > 5 * same


def test_coverage_ratio_is_about_one_for_one_distribution_and_large_for_another():
    rng = np.random.default_rng(0)

    def images(n, shift=0.0):
        smooth = rng.normal(128 + shift, 40, (n, 4, 4, 3)).repeat(4, axis=1).repeat(4, axis=2)
        return np.clip(smooth + rng.normal(0, 10, smooth.shape), 0, 255).astype(np.uint8)

    def ws(n, shift=0.0):
        return rng.standard_normal((n, 16)) + shift

    randoms = [ws(200) for _ in range(4)]
    random_images = [images(256) for _ in range(4)]
    same = coverage_from_sets(ws(200), randoms, images(256), random_images,
                              images_whitening=images(512))
    assert same["image_ratio"] == pytest.approx(1.0, abs=0.15)
    assert same["w_ratio"] == pytest.approx(1.0, abs=0.15)
    assert same["passed"] == (same["image_ratio"] <= GOALS["coverage"]["image_ratio"])
    assert same["random_sets"] == 4 and same["image_reference_spread"] < 0.2
    off = coverage_from_sets(ws(200, 2.0), randoms, images(256, 60.0), random_images,
                             images_whitening=images(512))
    assert off["image_ratio"] > 3 and off["w_ratio"] > 5 and not off["passed"]


def test_coverage_sees_a_collapsed_set_and_needs_two_random_sets():
    """Frames stuck on a few looks are far from random ones even though each looks normal."""
    rng = np.random.default_rng(1)
    pool = rng.integers(0, 256, (512, 8, 8, 3)).astype(np.uint8)
    randoms = [rng.integers(0, 256, (256, 8, 8, 3)).astype(np.uint8) for _ in range(3)]
    ws = [rng.standard_normal((256, 4)) for _ in range(3)]
    collapsed = pool[rng.integers(0, 4, 256)]  # four distinct images, repeated
    result = coverage_from_sets(ws[0], ws, collapsed, randoms, images_whitening=pool)
    assert result["image_ratio"] > 2 and not result["passed"]
    with pytest.raises(NeuropaintError, match="at least 2 random sets"):
        coverage_from_sets(ws[0], ws[:1], collapsed, randoms[:1])


def _two_state_sequence(rng, jitter: float, fps: float = 10.0, seconds: float = 10.0):
    """Latents that sit at 0 in state a and at 1 in state b (switch at half time), with
    frame-to-frame jitter; a smooth 1 s ramp across the switch."""
    n = int(2 * seconds * fps)
    times = np.arange(n) / fps
    level = np.clip((times - seconds) / 1.0, 0, 1)  # ramp after the switch
    x = level[:, None] + jitter * rng.standard_normal((n, 6))
    states = ["a" if t < seconds else "b" for t in times]
    return x, states, times


def test_smoothness_orders_a_jumpy_path_below_a_smooth_one():
    rng = np.random.default_rng(0)
    smooth = smoothness(*_two_state_sequence(rng, 0.005), settle_s=2.0)
    jumpy = smoothness(*_two_state_sequence(rng, 0.2), settle_s=2.0)
    assert smooth["n_switches"] == jumpy["n_switches"] == 1
    assert smooth["between"] == pytest.approx(1.0, abs=0.02)
    assert smooth["ratio"] > 50 > 5 > jumpy["ratio"]
    # Exact on a noiseless path: steps of 0.01 within, a jump of 1 (+ one step) between.
    times = np.arange(100) / 10
    x = np.where(times < 5, 0.01 * np.arange(100), 1 + 0.01 * np.arange(100))[:, None]
    exact = smoothness(x, ["a" if t < 5 else "b" for t in times], times, settle_s=0.0)
    assert exact["within"] == pytest.approx(0.01, rel=1e-5)
    assert exact["ratio"] == pytest.approx(101.0, rel=1e-5)


def test_smoothness_and_settling_respect_recordings_and_unlabelled_frames():
    times = np.tile(np.arange(40) / 10, 2)
    states = (["a"] * 20 + ["b"] * 20) * 2
    groups = [0] * 40 + [1] * 40
    x = np.concatenate([np.r_[np.zeros(20), np.ones(20)], np.r_[np.ones(20), np.zeros(20)]])
    result = smoothness(x[:, None], states, times, settle_s=0.5, groups=groups)
    assert result["n_switches"] == 2  # none across the two recordings
    assert result["within"] == 0.0 and result["ratio"] is None
    mask = settled_mask(["", "a", "a", "a", "b"], np.arange(5.0), 1.0)
    assert mask.tolist() == [False, False, True, True, False]
    with pytest.raises(NeuropaintError, match=r"one entry per frame, got 3, 2, 3, 3"):
        smoothness(np.zeros((3, 2)), ["a", "b"], np.arange(3.0), settle_s=1.0)


def test_bad_metric_inputs_are_clear_errors():
    with pytest.raises(NeuropaintError, match=r"a probe needs at least 2 states"):
        linear_probe(np.zeros((4, 3)), ["a"] * 4, [0, 0, 1, 1])
    with pytest.raises(NeuropaintError, match=r"'images' must be uint8 frames \[N, H, W, 3\]"):
        image_features(np.zeros((2, 3, 16, 16), np.float32))
    with pytest.raises(NeuropaintError, match=r"must be non-empty \[N, dim\] sets of one dim"):
        sliced_wasserstein_vectors(np.zeros((3, 2)), np.zeros((3, 4)))


# --- end to end on a tiny generator ---------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(generator, generator_path):
    """The conftest's tiny generator, a random-weight encoder and two 20 s recordings."""
    raws = [make_raw(20.0, n_channels=16, sfreq=SFREQ, states=["neutral", "eyes_closed"],
                     state_duration=5.0, seed=s, blinks=False) for s in range(2)]
    names = OnlineProcessor(FeatureSpec(), SFREQ, raws[0].ch_names).names
    encoder = Encoder.for_generator(FeatureSpec(), names, generator, generator_path,
                                    hidden=16, code_dim=4)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in encoder.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=gen))
    return generator, encoder, raws, generator_path


def test_evaluate_encoder_reports_all_three_with_goals(tiny):
    G, encoder, raws, _ = tiny
    mean_before = encoder.normalizer.mean.clone()
    result = evaluate_encoder(encoder, G, raws, fps=5.0, calibration_s=5.0, tau=0.3,
                              n_random=32)
    assert torch.equal(encoder.normalizer.mean, mean_before)  # calibrated copies only
    probe, cover, smooth = result["responsiveness"], result["coverage"], result["smoothness"]
    assert probe["cv"] == "by_recording" and probe["classes"] == ["eyes_closed", "neutral"]
    assert 0.0 <= probe["accuracy"] <= 1.0 and probe["goal"] == 0.9
    assert probe["method"] == "ridge" and set(probe["by_probe"]) == {"ridge", "lda"}
    assert probe["by_probe"]["ridge"]["accuracy"] == probe["accuracy"]
    assert all(0.0 <= b["ceiling"] <= 1.0 for b in probe["by_probe"].values())
    assert cover["n"] == 32 and cover["image_ratio"] > 0 and cover["goal"] == 1.2
    assert smooth["n_switches"] == 4 and smooth["ratio"] > 0 and smooth["goal"] == 5.0
    assert smooth["ratio_w"] > 0 and "RMS pixel" in smooth["unit"]
    assert result["frames"] == 2 * 15 * 5 and result["fps"] == 5.0
    assert result["settle_s"] == pytest.approx(2.0 + 3 * 0.3)
    line = json.dumps(json_ready(result), allow_nan=False)  # one JSON line
    assert "\n" not in line
    assert "responsiveness" in summary_line(result)


def test_evaluate_encoder_refuses_what_it_cannot_measure(tiny):
    G, encoder, raws, _ = tiny
    unlabelled = raws[0].copy().set_annotations(None)
    with pytest.raises(NeuropaintError, match=r"no frame is in an annotated state"):
        evaluate_encoder(encoder, G, [unlabelled], calibration_s=5.0, n_random=8)
    with pytest.raises(NeuropaintError, match=r"the recordings end before the 30 s calibration"):
        evaluate_encoder(encoder, G, raws, calibration_s=30.0, n_random=8)
    with pytest.raises(NeuropaintError, match=r"no recordings to evaluate on"):
        evaluate_encoder(encoder, G, [], n_random=8)
    with pytest.raises(NeuropaintError, match=r"'probe' must be one of 'ridge', 'lda', got 'svm'"):
        evaluate_encoder(encoder, G, raws, probe="svm", n_random=8)


def test_evaluate_encoder_reads_an_eeg_store(tiny, eeg_store):
    G, encoder, _, run = tiny
    result = evaluate_encoder(encoder, G, eeg_store, store_recordings=[1, 3], fps=4.0,
                              calibration_s=None, n_random=16)
    assert result["sessions"] == ["session1", "session3"] and result["calibration"] == "session"
    assert result["responsiveness"]["classes"] == sorted(STATES)
    # 4 states of 7.5 s each: 3 switches per session.
    assert result["smoothness"]["n_switches"] == 6
    other = Encoder.for_generator(FeatureSpec(window=1.0), eeg_store.names, G, run, hidden=8,
                                  code_dim=2)
    with pytest.raises(NeuropaintError, match=r"built with a different FeatureSpec"):
        evaluate_encoder(other, G, eeg_store, n_random=8)


def test_probe_fits_on_one_set_tests_another_and_reports_balanced_accuracy():
    """A researcher's probe: fit on session A, test on session B, predictions returned; with
    unbalanced states plain accuracy flatters, balanced accuracy does not."""
    rng = np.random.default_rng(3)
    centres = {"rest": np.zeros(6), "task": np.r_[1.5, np.zeros(5)]}

    def rows(counts):
        x = np.concatenate([centres[s] + rng.normal(0, 1, (n, 6)) for s, n in counts.items()])
        return x, [s for s, n in counts.items() for _ in range(n)]

    train_x, train_y = rows({"rest": 200, "task": 200})
    test_x, test_y = rows({"rest": 360, "task": 40})  # 90 % one state
    result = fit_test_probe(train_x, train_y, test_x, test_y, method="lda")
    assert len(result["predictions"]) == 400 and set(result["predictions"]) <= {"rest", "task"}
    assert result["chance"] == pytest.approx(0.9)
    assert 0.65 < result["balanced_accuracy"] < 0.95
    assert result["balanced_accuracy"] == pytest.approx(np.mean(list(
        result["per_class"].values())))
    with pytest.raises(NeuropaintError, match="states the training set lacks"):
        fit_test_probe(train_x, train_y, test_x, ["other"] * 400)


def test_probe_chance_from_block_permutations_sits_near_one_over_k():
    rng = np.random.default_rng(4)
    labels = [s for _ in range(6) for s in ("a", "b", "c") for _ in range(20)]  # 18 blocks
    groups = [i // 60 for i in range(len(labels))]
    x = rng.normal(size=(len(labels), 5))  # no information at all
    result = linear_probe(x, labels, groups, method="lda", permutations=30)
    assert len(result["predictions"]) == len(labels)
    # Near 1/3; CV on pure noise often sits a little below (training and test shares of a
    # permuted label are anti-correlated).
    assert 0.1 < result["permutation_chance"] < 0.47
    assert result["permutation_chance_p95"] >= result["permutation_chance"]
    assert result["balanced_accuracy"] < 0.6
