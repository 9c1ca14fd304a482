"""conditioning.encoder: shapes, layer groups, normaliser, save/load, generator identity."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from conditioning.encoder import (
    Encoder,
    FeatureMismatchWarning,
    FeatureNormalizer,
    feature_groups,
    layer_groups,
    take_features,
)
from eeg.features import FeatureSpec
from neuropaint.validate import NeuropaintError
from tests.conditioning.conftest import other_weights_snapshot


def _randomised(encoder: Encoder, seed: int = 0, scale: float = 0.3) -> Encoder:
    """Give every weight a random value, so outputs depend on the features."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in encoder.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=gen))
    return encoder


@pytest.fixture
def encoder(eeg_store, generator, generator_path):
    enc = Encoder.for_generator(eeg_store.spec, eeg_store.names, generator, generator_path,
                                hidden=32, code_dim=8)
    enc.normalizer.calibrate(eeg_store.features)
    return enc


def test_untrained_encoder_gives_ws_of_the_generator_at_w_avg(encoder, generator, eeg_store):
    rows = torch.from_numpy(np.array(eeg_store.features[:8]))
    ws = encoder(rows)
    assert ws.shape == (8, generator.num_ws, generator.w_dim)
    assert (encoder.num_ws, encoder.w_dim) == (6, 32)
    torch.testing.assert_close(ws, generator.mapping.w_avg.expand(8, 6, 32), rtol=0, atol=1e-6)
    img = generator.synthesis(ws, noise_mode="const")
    assert img.shape == (8, 3, 16, 16) and torch.isfinite(img).all()
    assert encoder.generator_info["arch"] == "Generator"
    assert len(encoder.generator_info["weights_sha256"]) == 64


def test_layer_groups_follow_the_stylegan_split():
    assert layer_groups(18) == {"coarse": [0, 1, 2, 3], "middle": [4, 5, 6, 7],
                                "fine": list(range(8, 18))}
    assert layer_groups(10)["fine"] == [8, 9]  # 64 px
    assert layer_groups(6) == {"coarse": [0, 1], "middle": [2, 3], "fine": [4, 5]}  # 16 px
    with pytest.raises(NeuropaintError, match=r"'num_ws' must be an integer >= 3"):
        layer_groups(2)


def test_slow_bands_feed_coarse_and_fast_bands_feed_fine(eeg_store):
    groups = feature_groups(eeg_store.spec, eeg_store.names)
    coarse = [eeg_store.names[i] for i in groups["coarse"]]
    fine = [eeg_store.names[i] for i in groups["fine"]]
    assert coarse and all(any(f":{b}:" in n for b in ("delta", "theta", "alpha"))
                          or n.startswith("alpha_asymmetry") for n in coarse)
    assert fine and all(any(f":{b}:" in n for b in ("beta", "gamma"))
                        or n.startswith("spectral_entropy") for n in fine)
    assert groups["middle"] == list(range(len(eeg_store.names)))
    # A spec without fast bands: the fine group sees everything rather than nothing.
    slow_only = FeatureSpec(bands={"theta": (4.0, 8.0), "alpha": (8.0, 13.0)})
    names = ["log_power:theta:whole_head", "log_power:alpha:whole_head"]
    assert feature_groups(slow_only, names)["fine"] == [0, 1]


def test_routing_is_structural_a_gamma_change_moves_only_fine_and_middle_ws(encoder, eeg_store):
    _randomised(encoder)
    x = torch.from_numpy(np.array(eeg_store.features[:4])).clone()
    before = encoder(x)
    col = eeg_store.names.index("log_power:gamma:occipital_midline")
    x[:, col] += 3 * encoder.normalizer.std[col]
    after = encoder(x)
    moved = (after - before).abs().amax(dim=(0, 2))  # [num_ws]
    groups = encoder.layer_groups
    assert torch.all(moved[groups["coarse"]] == 0)
    assert torch.all(moved[groups["middle"]] > 0) and torch.all(moved[groups["fine"]] > 0)


def test_normalizer_calibrates_updates_and_handles_bad_values():
    rng = np.random.default_rng(0)
    rows = rng.normal([1.0, -2.0, 5.0], [0.5, 2.0, 0.0], size=(200, 3))
    rows[5] = np.nan
    rows[7, 1] = np.inf
    norm = FeatureNormalizer(3).calibrate(rows)
    good = np.delete(rows, [5, 7], axis=0)
    np.testing.assert_allclose(norm.mean.numpy(), good.mean(axis=0), rtol=1e-5)
    assert norm.count == 198 and norm.std[2] > 0  # a flat feature gets a floored std
    z = norm(torch.tensor([[1.0, float("nan"), 5.0], [1e6, -2.0, 5.0]]))
    assert z[0, 1] == 0 and z[1, 0] == 5.0 and torch.isfinite(z).all()
    # The running update follows new rows, the same however they are chunked.
    shifted = rng.normal([3.0, -2.0, 5.0], [0.5, 2.0, 0.1], size=(300, 3))
    a = FeatureNormalizer(3).calibrate(rows)
    b = FeatureNormalizer(3).calibrate(rows)
    a.update(shifted, momentum=0.01)
    for chunk in np.array_split(shifted, 7):
        b.update(chunk, momentum=0.01)
    torch.testing.assert_close(a.mean, b.mean)
    torch.testing.assert_close(a.std, b.std)
    assert 2.5 < float(a.mean[0]) < 3.0  # 1 - 0.99^300 = 95 % of the way
    fresh = FeatureNormalizer(3).update(shifted[:10])  # an update before calibration calibrates
    assert fresh.calibrated
    with pytest.raises(NeuropaintError, match=r"calibration needs at least 2 finite feature rows"):
        FeatureNormalizer(3).calibrate(np.full((4, 3), np.nan))
    with pytest.raises(NeuropaintError, match=r"'rows' must have shape \(n_rows, 3\)"):
        norm.calibrate(np.zeros((4, 2)))


def test_save_and_from_pretrained_give_identical_outputs(encoder, eeg_store, generator_path,
                                                          tmp_path):
    _randomised(encoder, seed=3)
    encoder.training_stats = {"mode": "test", "steps": 0}
    folder = encoder.save_pretrained(tmp_path / "enc")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "encoder.safetensors"]
    assert not (tmp_path / "enc.partial").exists()
    config = json.loads((folder / "config.json").read_text())
    assert config["kind"] == "neuropaint.encoder" and config["format_version"] == 1
    assert FeatureSpec.model_validate(config["feature_spec"]) == eeg_store.spec
    assert config["feature_names"] == eeg_store.names
    assert config["init_kwargs"] == {"num_ws": 6, "w_dim": 32, "hidden": 32, "code_dim": 8}
    assert config["generator"]["weights_sha256"] == encoder.generator_info["weights_sha256"]
    assert config["training_stats"] == {"mode": "test", "steps": 0}
    loaded = Encoder.from_pretrained(folder, generator_path=generator_path)
    x = torch.from_numpy(np.array(eeg_store.features[::50]))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), encoder(x), rtol=0, atol=0)
    assert loaded.spec == encoder.spec and loaded.training_stats["mode"] == "test"
    # Saving again replaces the encoder folder in one piece.
    encoder.save_pretrained(folder)
    assert Encoder.from_pretrained(folder).num_ws == 6


def test_from_pretrained_refuses_another_generator(encoder, generator_path, tmp_path):
    folder = encoder.save_pretrained(tmp_path / "enc")
    other = other_weights_snapshot(generator_path, tmp_path / "other_snapshot")
    with pytest.raises(NeuropaintError, match=r"trained for other generator weights: sha256 "
                       r"[0-9a-f]{12}… recorded, [0-9a-f]{12}… in .*other_snapshot"):
        Encoder.from_pretrained(folder, generator_path=other)
    # Another shape: the recorded arguments name what differs.
    config = json.loads((folder / "config.json").read_text())
    config["generator"]["init_kwargs"]["w_dim"] = 64
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(NeuropaintError, match=r"generator of another shape .*w_dim=64 vs 32"):
        Encoder.from_pretrained(folder, generator_path=generator_path)


def test_non_encoder_folders_are_refused(encoder, generator_path, tmp_path):
    with pytest.raises(NeuropaintError, match=r"is not an encoder folder \(kind "
                       r"'neuropaint.gan_snapshot'\)"):
        Encoder.from_pretrained(generator_path)
    with pytest.raises(FileNotFoundError, match=r"no such encoder"):
        Encoder.from_pretrained(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NeuropaintError, match=r"is not an encoder folder: no config.json"):
        Encoder.from_pretrained(tmp_path / "empty")
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(NeuropaintError, match=r"exists and is not an encoder folder"):
        encoder.save_pretrained(precious)
    assert (precious / "notes.txt").read_text() == "keep me"


def test_a_generator_without_w_space_is_refused(eeg_store, generator_path):
    from gan.dcgan import DCGANGenerator

    dcgan = DCGANGenerator(z_dim=8, img_resolution=16, base_channels=16)
    with pytest.raises(NeuropaintError, match=r"DCGANGenerator, which has no W space"):
        Encoder.for_generator(eeg_store.spec, eeg_store.names, dcgan, generator_path)


def test_match_features_fills_missing_ones_and_still_plays(encoder, eeg_store):
    _randomised(encoder, seed=5)
    names = eeg_store.names
    # A headset without occipital channels, whose stream also lacks the gamma whole-head power.
    kept = [n for n in names if "occipital" not in n and n != "log_power:gamma:whole_head"]
    cols = [names.index(n) for n in kept]
    values = np.array(eeg_store.features[:5])[:, cols][:, ::-1]  # another column order
    stream_names = kept[::-1]
    with pytest.warns(FeatureMismatchWarning, match=r"encoder features are not in the stream: "
                      r"\d+ filled from whole-head features \(.*occipital.*\); 4 held at the "
                      r"baseline \(log_power:gamma:occipital_left"):
        index = encoder.match_features(stream_names)
    assert index.shape == (len(names),)
    alpha_occ = names.index("log_power:alpha:occipital_midline")
    assert stream_names[index[alpha_occ]] == "log_power:alpha:whole_head"
    assert stream_names[index[names.index("log_power:alpha:frontal_left")]] == \
        "log_power:alpha:frontal_left"
    rows = encoder.take_features(values, index)
    gamma_occ = names.index("log_power:gamma:occipital_left")
    np.testing.assert_allclose(rows[:, gamma_occ], float(encoder.normalizer.mean[gamma_occ]))
    z = encoder.normalizer(torch.from_numpy(rows))
    assert torch.all(z[:, gamma_occ].abs() < 1e-5)  # a missing feature reads as the baseline
    ws = encoder(torch.from_numpy(rows))
    assert ws.shape == (5, 6, 32) and torch.isfinite(ws).all()
    nan_rows = take_features(values, index)  # the plain helper leaves NaN: also baseline
    torch.testing.assert_close(encoder(torch.from_numpy(nan_rows)), ws)
    # Matching names give the identity index and no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(encoder.match_features(names), np.arange(len(names)))
