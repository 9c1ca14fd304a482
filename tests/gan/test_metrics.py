"""Image metrics: ProGAN's SWD (pyramid ops against their reference twins, sensitivity,
determinism), FID/KID against closed forms, a local TorchScript Inception, evaluate() on a
real tile store, and the CLI end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from datasets.art import ArtTiles, TileStoreWriter
from gan import metrics
from gan.dcgan import DCGANGenerator
from gan.metrics import (
    evaluate,
    fid_from_features,
    kid_from_features,
    laplacian_pyramid,
    load_inception,
    sliced_wasserstein,
)
from neuropaint.validate import NeuropaintError

FAST = {"patches_per_image": 16, "num_projections": 128, "num_repeats": 2}


def paintings(n: int, size: int, seed: int) -> torch.Tensor:
    """Float images in [-1, 1]: smooth random colour fields with grain, one distribution."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 4, 4, generator=g) * 1.4 - 0.7
    base = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    return (base + 0.15 * torch.randn(n, 3, size, size, generator=g)).clamp(-1, 1)


def blurred(images: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(F.pad(images, (1, 1, 1, 1), mode="reflect"), 3, stride=1)


# --------------------------------------------------------------------------------------------
# Laplacian pyramid
# --------------------------------------------------------------------------------------------
def test_fast_pyramid_ops_agree_with_their_reference_twins():
    x = torch.rand(5, 3, 32, 24) * 2 - 1
    assert torch.allclose(metrics._downsample(x), metrics._downsample_reference(x), atol=1e-6)
    assert torch.allclose(metrics._upsample(x), metrics._upsample_reference(x), atol=1e-6)
    ones = torch.ones(1, 3, 8, 8)
    assert torch.allclose(metrics._upsample(ones), torch.ones(1, 3, 16, 16))  # gain 1, edges too
    assert torch.allclose(metrics._downsample(ones), torch.ones(1, 3, 4, 4))


def test_laplacian_pyramid_levels_rebuild_the_image():
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    levels = laplacian_pyramid(x, 3)
    assert [lv.shape[-1] for lv in levels] == [64, 32, 16]
    rebuilt = levels[-1]
    for band in reversed(levels[:-1]):
        rebuilt = band + metrics._upsample(rebuilt)
    assert torch.allclose(rebuilt, x, atol=1e-5)
    flat = torch.full((1, 3, 32, 32), 0.3)
    bands = laplacian_pyramid(flat, 2)
    assert bands[0].abs().max() < 1e-6  # a flat image has no detail


# --------------------------------------------------------------------------------------------
# Sliced Wasserstein distance
# --------------------------------------------------------------------------------------------
def test_swd_is_small_for_one_distribution_and_large_for_a_blurred_or_shifted_one():
    real = paintings(96, 32, seed=1)
    same = sliced_wasserstein(real, real, generator=0, **FAST)
    other = sliced_wasserstein(real, paintings(96, 32, seed=2), generator=0, **FAST)
    blur = sliced_wasserstein(real, blurred(paintings(96, 32, seed=2)), generator=0, **FAST)
    darker = sliced_wasserstein(real, paintings(96, 32, seed=2) * 0.6 - 0.3, generator=0, **FAST)
    assert same["swd_resolutions"] == [32, 16]
    assert len(same["swd_levels"]) == 2
    assert same["swd"] == pytest.approx(np.mean(same["swd_levels"]))
    assert same["swd"] < 100 and other["swd"] < 100  # the floor of a small sample
    assert blur["swd"] > 3 * max(same["swd"], other["swd"])
    assert blur["swd_levels"][0] > blur["swd_levels"][1]  # blur removes fine detail most
    assert darker["swd"] > 5 * max(same["swd"], other["swd"])


def test_swd_grows_with_the_noise_level():
    real = paintings(64, 32, seed=3)
    fake = paintings(64, 32, seed=4)
    noise = torch.randn(fake.shape, generator=torch.Generator().manual_seed(5))
    values = [sliced_wasserstein(real, (fake + sigma * noise).clamp(-1, 1), generator=0,
                                 **FAST)["swd"] for sigma in (0.0, 0.1, 0.2, 0.4)]
    assert values == sorted(values), values
    assert values[-1] > 3 * values[0]


def test_swd_is_deterministic_by_seed_and_takes_uint8_or_float():
    real = paintings(32, 32, seed=6)
    fake = paintings(40, 32, seed=7)  # sets of different sizes are fine
    a = sliced_wasserstein(real, fake, generator=11, **FAST)
    b = sliced_wasserstein(real, fake, generator=torch.Generator().manual_seed(11), **FAST)
    c = sliced_wasserstein(real, fake, generator=12, **FAST)
    assert a == b
    assert a["swd"] != c["swd"]
    assert a["swd"] == pytest.approx(c["swd"], rel=0.5)
    to_uint8 = metrics._to_uint8
    u8 = sliced_wasserstein(to_uint8(real), to_uint8(fake), generator=11, **FAST)
    assert u8["swd"] == pytest.approx(a["swd"], rel=0.05)  # only the 8-bit rounding differs


def test_swd_normalisation_choice_matters_for_a_global_shift():
    """'real' (default) sees a colour/contrast change that ProGAN's per-set normalisation
    cancels out."""
    real = paintings(64, 32, seed=8)
    fake = paintings(64, 32, seed=9) * 0.5 + 0.2
    ours = sliced_wasserstein(real, fake, generator=0, normalize="real", **FAST)
    joint = sliced_wasserstein(real, fake, generator=0, normalize="joint", **FAST)
    progan = sliced_wasserstein(real, fake, generator=0, normalize="separate", **FAST)
    assert ours["swd"] > 4 * progan["swd"]
    assert joint["swd"] > 2 * progan["swd"]


def test_swd_levels_default_down_to_16_px_and_bad_input_is_explained():
    real = torch.zeros(2, 3, 64, 64, dtype=torch.uint8)
    out = sliced_wasserstein(real, real, **FAST)
    assert out["swd_resolutions"] == [64, 32, 16]
    assert out["swd"] == 0.0  # constant images: identical descriptors everywhere
    with pytest.raises(NeuropaintError, match=r"the same \[C, H, W\]"):
        sliced_wasserstein(real, torch.zeros(2, 3, 32, 32))
    with pytest.raises(NeuropaintError, match=r"coarsest pyramid level .* smaller than"):
        sliced_wasserstein(real, real, num_levels=5)
    with pytest.raises(NeuropaintError, match="'real' must be images"):
        sliced_wasserstein(torch.zeros(3, 64, 64), real)
    with pytest.raises(NeuropaintError, match="'real' must be uint8 or float"):
        sliced_wasserstein(torch.zeros(2, 3, 64, 64, dtype=torch.int32), real)
    with pytest.raises(NeuropaintError, match="'normalize' must be one of"):
        sliced_wasserstein(real, real, normalize="both")


# --------------------------------------------------------------------------------------------
# FID and KID
# --------------------------------------------------------------------------------------------
def test_fid_of_a_shifted_copy_is_the_squared_shift_exactly():
    rng = np.random.default_rng(0)
    f_real = rng.standard_normal((500, 16))
    mu = rng.standard_normal(16)
    assert fid_from_features(f_real, f_real + mu) == pytest.approx(mu @ mu, rel=1e-6)
    assert fid_from_features(f_real, f_real) == pytest.approx(0.0, abs=1e-6)


def test_fid_matches_the_gaussian_closed_forms():
    rng = np.random.default_rng(1)
    n, d = 20000, 8
    mu = np.full(d, 0.5)
    shifted = fid_from_features(rng.standard_normal((n, d)), rng.standard_normal((n, d)) + mu)
    assert shifted == pytest.approx(mu @ mu, abs=0.05)  # N(0, I) vs N(mu, I): |mu|^2 = 2
    scaled = fid_from_features(rng.standard_normal((n, d)), 2.0 * rng.standard_normal((n, d)))
    assert scaled == pytest.approx(d * (2.0 - 1.0) ** 2, abs=0.15)  # N(0, I) vs N(0, 4I)
    same = fid_from_features(torch.randn(n, d), torch.randn(n, d))
    assert 0 <= same < 0.01


def test_fid_eigh_path_agrees_with_scipy_sqrtm():
    rng = np.random.default_rng(4)
    f_real = rng.standard_normal((300, 24)) @ rng.standard_normal((24, 24))
    f_fake = rng.standard_normal((300, 24)) @ rng.standard_normal((24, 24)) + 0.2
    reference = fid_from_features(f_real, f_fake, method="sqrtm")
    assert fid_from_features(f_real, f_fake, method="eigh") == pytest.approx(reference, rel=1e-8)
    few = rng.standard_normal((10, 24))  # singular covariances: fewer samples than dimensions
    assert fid_from_features(few, few + 1.0, method="eigh") == pytest.approx(
        fid_from_features(few, few + 1.0), rel=1e-4)


def test_fid_rejects_mismatched_or_broken_features():
    with pytest.raises(NeuropaintError, match="differ in width: 4 and 5"):
        fid_from_features(np.zeros((10, 4)), np.zeros((10, 5)))
    with pytest.raises(NeuropaintError, match="NaN or infinite"):
        fid_from_features(np.full((10, 4), np.nan), np.zeros((10, 4)))
    with pytest.raises(NeuropaintError, match=r"features \[N, F\] with N >= 2"):
        fid_from_features(np.zeros((1, 4)), np.zeros((10, 4)))


def _kid_reference(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased MMD² with the cubic polynomial kernel, term by term."""
    m, d = x.shape

    def k(a, b):
        return (a @ b / d + 1.0) ** 3

    kxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    kyy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    kxy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return (kxx + kyy) / (m * (m - 1)) - 2 * kxy / m**2


def test_kid_matches_the_term_by_term_estimator():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((12, 5))
    y = rng.standard_normal((12, 5)) + 0.3
    # One subset of all samples: a permutation, to which the estimator is invariant.
    assert kid_from_features(x, y, num_subsets=1, subset_size=12) == pytest.approx(
        _kid_reference(x, y), rel=1e-10)


def test_kid_is_about_zero_for_one_distribution_and_positive_otherwise():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((2000, 32))
    b = rng.standard_normal((2000, 32))
    same, same_std = kid_from_features(a, b, num_subsets=20, subset_size=500, return_std=True)
    assert abs(same) < 3 * same_std + 1e-3
    shifted = kid_from_features(a, b + 0.5, num_subsets=20, subset_size=500)
    assert shifted > 0.1
    assert kid_from_features(a, b, num_subsets=5, subset_size=100, seed=1) == \
        kid_from_features(a, b, num_subsets=5, subset_size=100, seed=1)


# --------------------------------------------------------------------------------------------
# A local Inception network (tiny stand-ins scripted here, same loading code)
# --------------------------------------------------------------------------------------------
class TinyInception(torch.nn.Module):
    """uint8 images -> 2048 features when asked with return_features=True (the common file's
    convention)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, stride=4)
        self.fc = torch.nn.Linear(8, 2048)

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        x = F.interpolate(x.to(torch.float32) / 127.5 - 1, size=(32, 32), mode="bilinear")
        features = self.fc(F.relu(self.conv(x)).mean(dim=(2, 3)))
        if return_features:
            return features
        return features[:, :10]  # "logits"


class PlainUint8Net(torch.nn.Module):
    """uint8 images -> [N, 16, 1, 1] pool output, no keyword."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.conv(x.to(torch.float32) / 255.0), 1)


class FloatOnlyNet(torch.nn.Module):
    """Float images only (a conv on uint8 fails)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean(dim=(2, 3))


class ImageNet(torch.nn.Module):
    """Returns images, not features."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(torch.float32)


def script(module: torch.nn.Module, path) -> str:
    torch.manual_seed(0)
    torch.jit.save(torch.jit.script(module), str(path))
    return str(path)


pytestmark_jit = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")


@pytestmark_jit
def test_load_inception_finds_how_a_torchscript_file_is_called(tmp_path):
    net = load_inception(script(TinyInception(), tmp_path / "inception.pt"))
    assert net.return_features and net.input_range == "uint8" and net.feature_dim == 2048
    images = torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8)
    features = net(images)
    assert features.shape == (3, 2048) and features.dtype == torch.float64
    plain = load_inception(script(PlainUint8Net(), tmp_path / "plain.pt"))
    assert not plain.return_features and plain.feature_dim == 16
    assert plain(images).shape == (3, 16)
    floats = load_inception(script(FloatOnlyNet(), tmp_path / "float.pt"), input_range="0-1")
    assert floats(images).shape == (3, 4)


@pytestmark_jit
def test_load_inception_explains_a_wrong_file_in_one_line(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a network at all")
    with pytest.raises(NeuropaintError, match="not a loadable TorchScript file") as err:
        load_inception(junk)
    assert "\n" not in str(err.value) and "expected a TorchScript file" in str(err.value)
    state_dict = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(3)}, state_dict)  # a plain checkpoint, not TorchScript
    with pytest.raises(NeuropaintError, match="not a loadable TorchScript file"):
        load_inception(state_dict)
    with pytest.raises(NeuropaintError, match="'inception' file not found"):
        load_inception(tmp_path / "missing.pt")
    with pytest.raises(NeuropaintError, match=r"expected features \[N, F\]") as err:
        load_inception(script(ImageNet(), tmp_path / "image.pt"))
    assert "\n" not in str(err.value)
    with pytest.raises(NeuropaintError, match="needs --inception-input"):
        load_inception(script(FloatOnlyNet(), tmp_path / "float.pt"))


# --------------------------------------------------------------------------------------------
# evaluate() and the CLI, on a real tile store
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiles16(tmp_path_factory):
    """A 16 px tile store: random-noise tiles and smooth gradient tiles."""
    out = tmp_path_factory.mktemp("metrics") / "tiles16"
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, 16)
    with TileStoreWriter(out, size=16, options={}) as writer:
        for i in range(12):
            if i % 2:
                tile = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
            else:
                colour = rng.uniform(0.2, 1.0, 3)
                diagonal = (ramp[None, :] + ramp[:, None]) / 2  # [16, 16]
                tile = (diagonal[:, :, None] * colour).astype(np.uint8)  # [16, 16, 3]
            writer.add(tile, source=f"t{i}", box=(0, 0, 16, 16))
    return out


def tiny_generator(seed: int = 0, batch_norm: bool = True) -> DCGANGenerator:
    torch.manual_seed(seed)
    return DCGANGenerator(z_dim=8, img_resolution=16, base_channels=16, batch_norm=batch_norm)


class TileReplay(torch.nn.Module):
    """A "generator" that hands back real tiles of the store (a perfect model of it)."""

    z_dim = 8
    c_dim = 0

    def __init__(self, tiles: ArtTiles, seed: int):
        super().__init__()
        self.tiles = tiles
        self.g = torch.Generator().manual_seed(seed)

    def forward(self, z, c=None, truncation_psi=1.0):
        return self.tiles.sample_batch(z.shape[0], self.g)


@pytestmark_jit
def test_evaluate_measures_a_generator_against_real_tiles(tiles16, tmp_path):
    G = tiny_generator().train()
    tiles = ArtTiles(tiles16)
    inception = load_inception(script(PlainUint8Net(), tmp_path / "inception.pt"))
    rng_state = torch.get_rng_state()
    out = evaluate(G, tiles, num_images=48, batch_size=16, inception=inception)
    assert G.training  # mode restored
    assert torch.equal(torch.get_rng_state(), rng_state)  # the caller's RNG is untouched
    assert set(out) >= {"swd", "swd_levels", "fid", "kid", "num_images"}
    assert out["num_images"] == 48 and out["resolution"] == 16
    assert out["swd_resolutions"] == [16]
    assert np.isfinite(out["swd"]) and out["swd"] > 0
    assert out["fid"] is not None and out["fid"] > 0
    assert out["kid"] is not None and np.isfinite(out["kid"])
    again = evaluate(G, tiles, num_images=48, batch_size=16, inception=inception)
    assert again["swd"] == out["swd"] and again["fid"] == out["fid"]
    other_batch = evaluate(G, tiles, num_images=48, batch_size=7, inception=inception)
    assert other_batch["swd"] == out["swd"]  # batching does not move the sample
    assert other_batch["fid"] == pytest.approx(out["fid"], rel=1e-6)
    plain = evaluate(G, tiles, num_images=48, batch_size=16)
    assert plain["fid"] is None and plain["kid"] is None
    assert plain["swd"] == out["swd"]


def test_evaluate_ranks_the_tiles_themselves_above_an_untrained_generator(tiles16):
    """A "generator" that returns real tiles scores better than an untrained DCGAN."""
    tiles = ArtTiles(tiles16)

    untrained = evaluate(tiny_generator(), tiles, num_images=64, batch_size=32)["swd"]
    perfect = evaluate(TileReplay(tiles, 123), tiles, num_images=64, batch_size=32)["swd"]
    assert perfect < untrained / 3


def test_floor_measures_two_disjoint_real_sets_and_the_generator_in_its_units(tiles16):
    """The floor (real vs real, disjoint) sits far below an untrained generator, whose
    ratio to it is large, while tiles replayed from the store come out near the floor."""
    tiles = ArtTiles(tiles16)

    untrained = evaluate(tiny_generator(), tiles, num_images=6, batch_size=6, floor=True)
    assert set(untrained) >= {"swd_floor", "swd_floor_levels", "swd_ratio",
                              "swd_ratio_levels", "swd_ratio_max"}
    assert len(untrained["swd_floor_levels"]) == len(untrained["swd_levels"])
    assert untrained["swd_floor"] < untrained["swd"] / 3
    assert untrained["swd_ratio_max"] >= untrained["swd_ratio_levels"][0] > 3
    replay = evaluate(TileReplay(tiles, 7), tiles, num_images=6, batch_size=6, floor=True)
    assert replay["swd_ratio"] < untrained["swd_ratio"] / 3
    again = evaluate(TileReplay(tiles, 7), tiles, num_images=6, batch_size=6, floor=True)
    assert again["swd_floor"] == replay["swd_floor"]  # seeded: the same two sets


def test_floor_refuses_a_store_too_small_for_two_sets(tiles16, tmp_path, capsys):
    from gan.checkpoint import save_snapshot
    from neuropaint.logs import run_cli

    with pytest.raises(NeuropaintError, match=r"two disjoint sets of 7 tiles \(14\), but the "
                                              r"store holds 12: pass --num 6 or less"):
        evaluate(tiny_generator(), ArtTiles(tiles16), num_images=7, floor=True)
    G = tiny_generator(batch_norm=False).eval()
    snapshot = save_snapshot(tmp_path / "snap", {"G": G, "G_ema": G}, {})
    code = run_cli(metrics.main, [str(snapshot), "--data", str(tiles16), "--num", "32",
                                  "--floor"])
    err = capsys.readouterr().err
    assert code == 2 and "pass --num 6 or less" in err and "Traceback" not in err


def test_evaluate_rejects_a_generator_of_another_resolution(tiles16):
    torch.manual_seed(0)
    G = DCGANGenerator(z_dim=8, img_resolution=32, base_channels=16)
    with pytest.raises(NeuropaintError, match=r"generator makes images .* but the tiles"):
        evaluate(G, ArtTiles(tiles16), num_images=8, batch_size=8)


def test_cli_prints_one_json_line_and_says_how_to_get_fid(tiles16, tmp_path, capsys):
    checkpoint = pytest.importorskip("gan.checkpoint")
    G = tiny_generator(batch_norm=False).eval()
    snapshot = checkpoint.save_snapshot(tmp_path / "snap", {"G": G, "G_ema": G}, {})
    code = metrics.main([str(snapshot), "--data", str(tiles16), "--num", "32", "--batch", "16"])
    assert code == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["fid"] is None and result["kid"] is None
    assert result["num_images"] == 32 and result["swd"] > 0
    assert "FID/KID not computed" in captured.err and "--inception PATH" in captured.err


@pytestmark_jit
def test_cli_computes_fid_with_a_local_network_and_explains_bad_input(tiles16, tmp_path, capsys):
    checkpoint = pytest.importorskip("gan.checkpoint")
    from neuropaint.logs import run_cli

    G = tiny_generator(batch_norm=False).eval()
    snapshot = checkpoint.save_snapshot(tmp_path / "snap", {"G": G, "G_ema": G}, {})
    net = script(PlainUint8Net(), tmp_path / "features.pt")
    code = metrics.main([str(snapshot), "--data", str(tiles16), "--num", "24",
                         "--inception", net])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["fid"] is not None and result["kid"] is not None
    junk = tmp_path / "junk.pt"
    junk.write_text("nope")
    code = run_cli(metrics.main, [str(snapshot), "--data", str(tiles16), "--inception",
                                  str(junk)])
    err = capsys.readouterr().err
    assert code == 2
    assert "error: 'inception' file" in err and "Traceback" not in err
