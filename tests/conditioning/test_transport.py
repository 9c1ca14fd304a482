"""conditioning.transport: the output map that moves painted ws onto the generator's W."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conditioning.encoder import GROUPS, Encoder
from conditioning.train import EncoderTrainConfig, run
from conditioning.transport import fit_output_map, gaussian_transport, painted_group_ws
from datasets.eeg import EEGStore
from neuropaint.validate import NeuropaintError

SMALL = {"hidden": 64, "code_dim": 16, "batch": 128}


def _random_covariance(rng, dim, scale):
    a = rng.standard_normal((dim, dim)) * scale
    return a @ a.T / dim + 0.01 * np.eye(dim)


def test_the_gaussian_map_carries_mean_and_covariance_onto_the_target():
    rng = np.random.default_rng(0)
    dim = 6
    source = rng.multivariate_normal(rng.normal(size=dim), _random_covariance(rng, dim, 3.0),
                                     20000)
    target = rng.multivariate_normal(rng.normal(size=dim) * 5,
                                     _random_covariance(rng, dim, 0.5), 20000)
    matrix, shift = gaussian_transport(source, target, ridge=0.0)
    mapped = source @ matrix.T + shift
    np.testing.assert_allclose(mapped.mean(axis=0), target.mean(axis=0), atol=0.05)
    np.testing.assert_allclose(np.cov(mapped, rowvar=False), np.cov(target, rowvar=False),
                               atol=0.02)
    # The optimal map between Gaussians is symmetric positive definite (a gradient of a
    # convex function), unlike other maps that also match the two moments (e.g. rotations).
    np.testing.assert_allclose(matrix, matrix.T, atol=1e-10)
    assert np.linalg.eigvalsh(matrix).min() > 0
    # Same distribution on both sides: the map is the identity.
    same, offset = gaussian_transport(source, source, ridge=0.0)
    np.testing.assert_allclose(same, np.eye(dim), atol=1e-8)
    np.testing.assert_allclose(offset, 0.0, atol=1e-8)


def test_a_degenerate_source_is_not_blown_up():
    """A direction the painting never moves in stays (near) still after the map."""
    rng = np.random.default_rng(1)
    source = np.zeros((5000, 3))
    source[:, :2] = rng.standard_normal((5000, 2))  # the third dimension never moves
    target = rng.standard_normal((5000, 3)) * 2.0
    matrix, shift = gaussian_transport(source, target)
    mapped = source @ matrix.T + shift
    assert np.isfinite(matrix).all()
    assert mapped[:, 2].std() < 0.1
    np.testing.assert_allclose(mapped[:, :2].std(axis=0), 2.0, rtol=0.05)


@pytest.mark.parametrize("source, target", [
    (np.zeros((10, 3)), np.zeros((10, 4))),
    (np.zeros((1, 3)), np.zeros((10, 3))),
    (np.zeros(3), np.zeros((10, 3))),
])
def test_bad_sets_get_a_clear_error(source, target):
    with pytest.raises(NeuropaintError):
        gaussian_transport(source, target)


@pytest.fixture(scope="module")
def aligned_bare(eeg_store_path, generator_path, tmp_path_factory):
    """An align encoder without the output map, and its training rows."""
    out = tmp_path_factory.mktemp("bare") / "encoder"
    cfg = EncoderTrainConfig(eeg=str(eeg_store_path), generator=str(generator_path),
                             out=str(out), steps=100, output_map=False, **SMALL)
    return run(cfg)


def _training_rows(store: EEGStore, encoder: Encoder):
    """Per-session standardised rows of the training recordings, as training saw them."""
    from conditioning.encoder import FeatureNormalizer

    train, _ = store.split(0.25, seed=0)
    x, rec, times = [], [], []
    for r in np.unique(store.recording[train]):
        take = train[store.recording[train] == r]
        feats = np.array(store.features[take])
        with torch.no_grad():
            x.append(FeatureNormalizer(feats.shape[1]).calibrate(feats)(
                torch.from_numpy(feats)).numpy())
        rec.append(store.recording[take])
        times.append(store.times[take])
    return np.concatenate(x), np.concatenate(rec), np.concatenate(times)


def test_the_fitted_map_puts_the_painted_path_on_the_generators_w(aligned_bare, eeg_store,
                                                                 generator, tmp_path):
    from conditioning.train import sample_w

    encoder = aligned_bare["encoder"]
    assert not encoder.has_output_map
    assert aligned_bare["encoder"].training_stats["output_map"] is None
    x, rec, times = _training_rows(eeg_store, encoder)
    pool = sample_w(generator, 8192, seed=5).numpy()
    before = painted_group_ws(encoder, x, rec, times, tau=0.5)
    report = fit_output_map(encoder, x, rec, times, pool, tau=0.5)
    assert encoder.has_output_map and report["tau"] == 0.5
    assert set(report["painted_to_w_variance"]) == set(GROUPS)
    after = painted_group_ws(encoder, x, rec, times, tau=0.5)
    pool_cov = np.cov(pool, rowvar=False)
    for g in range(len(GROUPS)):
        gap_before = np.linalg.norm(np.cov(before[:, g], rowvar=False) - pool_cov)
        gap_after = np.linalg.norm(np.cov(after[:, g], rowvar=False) - pool_cov)
        assert gap_after < 0.2 * gap_before  # directions the EEG never moves stay still
        np.testing.assert_allclose(after[:, g].mean(axis=0), pool.mean(axis=0),
                                   atol=0.05 * pool.std())
    # The state still shows: the map is invertible, so distinct ws stay distinct.
    assert np.abs(after[1:] - after[:-1]).sum() > 0

    # Saved and loaded, the map comes back and gives the same ws.
    encoder.save_pretrained(tmp_path / "mapped")
    loaded = Encoder.from_pretrained(tmp_path / "mapped")
    assert loaded.has_output_map
    probe = torch.from_numpy(x[:64])
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode_normalized(probe),
                                   encoder.encode_normalized(probe))
    # Refitting starts from the bare encoder, not from the mapped one: the same map again.
    matrix = encoder.output_matrix.clone()
    fit_output_map(encoder, x, rec, times, pool, tau=0.5)
    torch.testing.assert_close(encoder.output_matrix, matrix, rtol=1e-4, atol=1e-5)


def test_an_encoder_saved_without_a_map_still_loads(aligned_bare):
    loaded = Encoder.from_pretrained(aligned_bare["paths"]["encoder"])
    assert not loaded.has_output_map


def test_a_wrong_sized_map_is_refused(aligned_bare):
    encoder = Encoder.from_pretrained(aligned_bare["paths"]["encoder"])
    d = encoder.w_dim
    with pytest.raises(NeuropaintError, match="output map needs"):
        encoder.set_output_map(np.zeros((3, d, d + 1)), np.zeros((3, d)))
    with pytest.raises(NeuropaintError, match="non-finite"):
        encoder.set_output_map(np.full((3, d, d), np.nan), np.zeros((3, d)))
    assert not encoder.has_output_map


def test_the_map_is_fitted_when_asked_and_not_by_default(eeg_store_path, generator_path,
                                                         tmp_path, capsys):
    from conditioning.train import main

    assert main(["--eeg", str(eeg_store_path), "--generator", str(generator_path), "--out",
                 str(tmp_path / "align"), "--steps", "20", "--output-map",
                 "--output-map-tau", "0.8", "-q"]) == 0
    printed = capsys.readouterr().out
    assert "output map fitted for tau 0.8 s" in printed
    encoder = Encoder.from_pretrained(tmp_path / "align")
    assert encoder.has_output_map
    assert encoder.training_stats["output_map"]["tau"] == 0.8
    assert main(["--eeg", str(eeg_store_path), "--generator", str(generator_path), "--out",
                 str(tmp_path / "bare"), "--steps", "20", "-q"]) == 0
    assert "output map" not in capsys.readouterr().out
    assert not Encoder.from_pretrained(tmp_path / "bare").has_output_map
