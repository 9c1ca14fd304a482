"""gan.upscale and gan.denoise: a tiny upscaler really trained on procedural paintings, then
applied to real PNG/JPEG files; resume, round trips, tiling, denoising and bad inputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from datasets.procedural import paint, write_store
from gan.checkpoint import load_state, resolve_snapshot, save_snapshot
from gan.dcgan import DCGANDiscriminator, DCGANGenerator
from gan.denoise import estimate_noise_sigma, nl_means, nl_means_reference
from gan.upscale import (
    BicubicPhases,
    CompactNet,
    PatchSource,
    RRDBNet,
    Upscaler,
    UpscaleTrainConfig,
    UpscaleTrainer,
    bicubic_upscale,
    build_upscaler_net,
    compare,
    degrade,
    get_degradation,
    get_preset,
    list_presets,
    main,
    nearest_upscale,
    psnr,
    ssim,
    upscale_tiled,
)
from neuropaint.logs import run_cli
from neuropaint.validate import NeuropaintError


def _config(store, out, **kwargs) -> UpscaleTrainConfig:
    values = {"data": str(store), "out": str(out), "scale": 2, "preset": "tiny", "steps": 20,
              "val_every": 10, "snapshot_every": 10, "tick_every": 5, "device": "cpu",
              "val_fraction": 0.25, "val_tiles": 16}
    values.update(kwargs)
    return UpscaleTrainConfig(**values)


def _image(size: int = 40, style: str = "davis", seed: int = 3) -> torch.Tensor:
    """A procedural painting as [1, 3, H, W] in [-1, 1]."""
    rgb = paint(style, size, seed)
    return torch.from_numpy(rgb.transpose(2, 0, 1).astype(np.float32))[None] / 127.5 - 1


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread for this module's tiny networks. On the shared 2-core test machine
    two OpenMP threads were measured 20-25x slower per training step than one (they spin
    while other processes hold the cores); the count is restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def trained(paintings_store, tmp_path_factory):
    """A tiny x2 upscaler trained for 120 steps on 32 px paintings, and its L1 before/after
    on a fixed batch of training patches."""
    run = tmp_path_factory.mktemp("upscale") / "run"
    trainer = UpscaleTrainer(_config(paintings_store, run, steps=120, val_every=40,
                                     snapshot_every=120, tick_every=40,
                                     degradation="bicubic"))
    fixed = PatchSource(paintings_store, patch=32, scale=2, val_fraction=0.25, seed=5)
    hr = fixed.batch(16)
    lr = degrade(hr, 2, trainer.degradation, torch.Generator().manual_seed(1))
    with torch.no_grad():
        l1_before = float((trainer.net(lr) - hr).abs().mean())
    before = trainer.validate()
    trainer.train()
    with torch.no_grad():
        l1_after = float((trainer.net(lr) - hr).abs().mean())
    return {"run": run, "trainer": trainer, "l1": (l1_before, l1_after), "before": before,
            "after": trainer.validate()}


# -------------------------------------------------------------------------- networks
def test_presets_registry_and_the_papers_generator_size():
    assert {"tiny", "cpu", "full"} <= set(list_presets())
    with pytest.raises(NeuropaintError, match=r"unknown upscaler preset 'huge'; valid presets: "
                                              r"tiny, cpu, compact, full"):
        get_preset("huge")
    full = get_preset("full")
    net = RRDBNet(scale=4, num_feat=full.num_feat, num_block=full.num_block,
                  num_grow_ch=full.num_grow_ch, upsampler=full.upsampler)
    # ESRGAN's RRDBNet x4 (23 blocks, 64 features, 32 growth channels) has 16,697,987.
    assert sum(p.numel() for p in net.parameters()) == 16_697_987
    assert get_preset("cpu", batch=4).batch == 4


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("upsampler", ["pixel-shuffle", "nearest-conv"])
def test_x2_and_x4_shapes_and_an_untrained_net_is_bicubic(scale, upsampler):
    net = RRDBNet(scale=scale, num_feat=8, num_block=1, num_grow_ch=4, upsampler=upsampler)
    x = torch.rand(2, 3, 12, 20) * 2 - 1
    y = net(x)
    assert y.shape == (2, 3, 12 * scale, 20 * scale)
    bicubic = torch.nn.functional.interpolate(x, scale_factor=scale, mode="bicubic",
                                              align_corners=False)
    torch.testing.assert_close(y, bicubic, rtol=0, atol=1e-5)  # zero-initialised last layer


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_bicubic_phases_are_torch_bicubic_at_the_input_resolution(scale):
    """The fixed convolution the pixel-shuffle networks add is torch's bicubic, borders too."""
    x = torch.rand(2, 3, 9, 14) * 2 - 1
    phases = BicubicPhases(scale)
    assert not phases.state_dict()  # computed, never saved in a checkpoint
    y = torch.nn.functional.pixel_shuffle(phases(x), scale)
    reference = torch.nn.functional.interpolate(x, scale_factor=scale, mode="bicubic",
                                                align_corners=False)
    torch.testing.assert_close(y, reference, rtol=0, atol=1e-5)


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_compact_shapes_an_untrained_one_is_bicubic_and_it_is_cheaper_than_rrdb(scale):
    net = CompactNet(scale=scale, num_feat=8, num_conv=2)
    x = torch.rand(2, 3, 12, 20) * 2 - 1
    y = net(x)
    assert y.shape == (2, 3, 12 * scale, 20 * scale)
    bicubic = torch.nn.functional.interpolate(x, scale_factor=scale, mode="bicubic",
                                              align_corners=False)
    torch.testing.assert_close(y, bicubic, rtol=0, atol=1e-5)
    compact, cpu = get_preset("compact"), get_preset("cpu")
    assert compact.arch == "compact" and cpu.arch == "rrdb"
    count = {name: sum(p.numel() for p in build_upscaler_net(get_preset(name), 4).parameters())
             for name in ("compact", "cpu")}
    assert count["compact"] < count["cpu"] / 2


def test_a_compact_x8_upscaler_trains_saves_and_loads(paintings_store, tmp_path):
    run = tmp_path / "sr8"
    trainer = UpscaleTrainer(_config(paintings_store, run, scale=8, preset="compact", steps=30,
                                     patch=32, batch=4, val_every=30, snapshot_every=30,
                                     tick_every=15, degradation="bicubic"))
    before = trainer.validate()
    trainer.train()
    after = trainer.validate()
    assert after["psnr_model"] > before["psnr_model"]  # it learnt beyond bicubic
    up = Upscaler.from_pretrained(run)
    assert up.scale == 8 and type(up.net).__name__ == "CompactNet"
    out = up(_image(16))
    assert out.shape == (1, 3, 128, 128) and out.abs().max() <= 1
    saved = Upscaler.from_pretrained(up.save_pretrained(tmp_path / "saved"))
    torch.testing.assert_close(saved(_image(16)), out)


def test_bad_scale_and_upsampler_get_clear_messages():
    with pytest.raises(NeuropaintError, match=r"'scale' must be one of 2, 4, 8, got 3\."):
        RRDBNet(scale=3)
    with pytest.raises(NeuropaintError, match=r"'upsampler' must be one of"):
        RRDBNet(upsampler="deconv")


# -------------------------------------------------------------------------- degradations
def test_degradations_are_reproducible_8bit_and_add_real_noise():
    hr = torch.cat([_image(64, style) for style in ("rothko", "newman", "louis", "davis")])
    real = get_degradation("real")
    a = degrade(hr, 4, real, torch.Generator().manual_seed(3))
    b = degrade(hr, 4, real, torch.Generator().manual_seed(3))
    assert a.shape == (4, 3, 16, 16)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    levels = (a + 1) * 127.5
    torch.testing.assert_close(levels, levels.round(), rtol=0, atol=1e-4)  # 8-bit values
    clean = degrade(hr, 4, get_degradation("bicubic"), torch.Generator().manual_seed(3))
    expected = torch.nn.functional.interpolate(hr, size=(16, 16), mode="bicubic",
                                               antialias=True, align_corners=False)
    torch.testing.assert_close(clean, expected.clamp(-1, 1), rtol=0, atol=1 / 127.5)
    # Real-ESRGAN's ranges: noise of at least 1 level, blur, JPEG; the result is far from clean.
    assert float((a - clean).abs().mean()) * 127.5 > 2
    with pytest.raises(NeuropaintError, match=r"'degradation' must be one of 'light', 'mixed', "
                                              r"'real', 'bicubic', got 'hd'\."):
        get_degradation("hd")


# -------------------------------------------------------------------------- training
@pytest.mark.slow
def test_training_lowers_l1_and_beats_nearest_and_its_own_start(trained):
    l1_before, l1_after = trained["l1"]
    assert l1_after < 0.97 * l1_before
    before, after = trained["before"], trained["after"]
    # Held-out tiles: never seen in training (split by source painting).
    assert after["psnr_model"] > after["psnr_nearest"] + 1.0
    assert after["ssim_model"] > after["ssim_nearest"]
    # An untrained upscaler is bicubic (which already beats nearest): it has learnt beyond it.
    assert after["psnr_model"] > before["psnr_model"] + 0.2
    run = trained["run"]
    lines = [json.loads(x) for x in (run / "stats.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [40, 80, 120]
    assert lines[-1]["psnr_model"] == pytest.approx(after["psnr_model"], abs=1e-3)
    snapshot = resolve_snapshot(run)
    for name in ("config.json", "upscaler.safetensors", "upscaler_ema.safetensors",
                 "D.safetensors", "state.pt", "preview.png"):
        assert (snapshot / name).exists(), name
    with Image.open(snapshot / "preview.png") as preview:
        assert preview.size == (4 * 32, 4 * 32)  # nearest | bicubic | upscaled | original


def test_held_out_split_is_by_source_and_bad_patches_are_refused(paintings_store, tmp_path):
    source = PatchSource(paintings_store, patch=16, scale=4, val_fraction=0.25, seed=0)
    tiles = source.tiles.store.tiles
    train_sources = {tiles[i]["source"] for i in source.train_idx}
    val_sources = {tiles[i]["source"] for i in source.val_idx}
    assert not train_sources & val_sources
    assert len(val_sources) == 16  # a quarter of 64 paintings
    batch = source.batch(5)
    assert batch.shape == (5, 3, 16, 16) and batch.min() >= -1 and batch.max() <= 1
    with pytest.raises(NeuropaintError, match=r"patch \(64 px\) is larger than the store's 32 px"):
        PatchSource(paintings_store, patch=64, scale=4, val_fraction=0.1, seed=0)
    with pytest.raises(NeuropaintError, match=r"must be a multiple of the scale 4"):
        PatchSource(paintings_store, patch=30, scale=4, val_fraction=0.1, seed=0)
    one = write_store(tmp_path / "one", 1, 32)
    with pytest.raises(NeuropaintError, match=r"at least 2 source images.*--val-fraction 0"):
        PatchSource(one, patch=16, scale=4, val_fraction=0.1, seed=0)
    assert len(PatchSource(one, patch=16, scale=4, val_fraction=0, seed=0).val_idx) == 0


@pytest.mark.slow
def test_resume_continues_exactly_through_the_adversarial_phase(paintings_store, tmp_path):
    settings = {"steps": 6, "adversarial_steps": 6, "snapshot_every": 8, "val_every": 4,
                "tick_every": 4, "degradation": "mixed"}
    full = tmp_path / "full"
    UpscaleTrainer(_config(paintings_store, full, **settings)).train()
    half = tmp_path / "half"
    UpscaleTrainer(_config(paintings_store, half, **{**settings, "adversarial_steps": 2})
                   ).train()  # stops at step 8, two steps into the GAN phase
    resumed = UpscaleTrainer(_config(paintings_store, half, resume="auto", **settings))
    assert resumed.counters.step == 8
    resumed.train()
    assert load_state(full)["step"] == load_state(half)["step"] == 12
    for name in ("upscaler", "upscaler_ema", "D"):
        a = load_file(str(resolve_snapshot(full) / f"{name}.safetensors"))
        b = load_file(str(resolve_snapshot(half) / f"{name}.safetensors"))
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=f"{name}.{key}")
    lines = [json.loads(x) for x in (half / "stats.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [4, 8, 12]
    assert [x["phase"] for x in lines] == ["l1", "adversarial", "adversarial"]
    assert "loss_d" in lines[-1] and math.isfinite(lines[-1]["loss_d"])
    with pytest.raises(NeuropaintError, match=r"holds a different upscaler than preset 'cpu'"):
        UpscaleTrainer(_config(paintings_store, half, preset="cpu", patch=32, resume="auto"))


# -------------------------------------------------------------------------- the Upscaler
def test_save_load_round_trip_and_the_call_contract(trained, tmp_path):
    up = Upscaler.from_pretrained(trained["run"])  # a run folder: its latest snapshot
    assert up.scale == 2 and up.info["preset"] == "tiny"
    x = _image(24)
    y = up(x)
    assert y.shape == (1, 3, 48, 48) and y.min() >= -1 and y.max() <= 1
    assert not y.requires_grad and y.is_inference()
    up.save_pretrained(tmp_path / "model")
    again = Upscaler.from_pretrained(tmp_path / "model")
    torch.testing.assert_close(again(x), y, rtol=0, atol=0)
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [
        "config.json", "upscaler_ema.safetensors"]
    image = ((x[0].permute(1, 2, 0) + 1) * 127.5).round().byte().numpy()
    big = up.upscale_image(image)
    assert big.dtype == np.uint8 and big.shape == (48, 48, 3)
    with pytest.raises(NeuropaintError, match=r"'image' must be uint8 \[H, W, 3\]"):
        up.upscale_image(image[..., 0])
    with pytest.raises(NeuropaintError, match=r"'denoise' must be one of 'none', 'before', "
                                              r"'after', 'both', got 'twice'"):
        up(x, denoise="twice")


def test_tiled_output_matches_untiled_output(trained):
    up = Upscaler.from_pretrained(trained["run"])
    x = _image(56, "noland", 1)
    whole = up(x)
    tiled = up(x, tile=24, overlap=8)  # 3 x 3 tiles
    assert tiled.shape == whole.shape
    # Feathered blending: only the network's view past a tile edge differs, and faintly.
    diff = (tiled - whole).abs() * 127.5  # in 8-bit levels
    assert float(diff.max()) < 0.5 and float(diff.mean()) < 0.01
    # An image no larger than a tile is one window: exactly the untiled result.
    small = _image(20)
    torch.testing.assert_close(up(small, tile=24, overlap=8), up(small), rtol=0, atol=0)
    # Any size: odd, non-square, smaller than a tile in one direction.
    odd = torch.rand(1, 3, 13, 61) * 2 - 1
    assert upscale_tiled(up.net, odd, 2, tile=16, overlap=4).shape == (1, 3, 26, 122)
    with pytest.raises(NeuropaintError, match=r"'overlap' must be at most half the tile"):
        upscale_tiled(up.net, odd, 2, tile=16, overlap=9)


def test_a_checkpoint_that_is_not_an_upscaler_is_refused(tmp_path):
    gan = tmp_path / "dcgan"
    save_snapshot(gan, {"G": DCGANGenerator(z_dim=8, img_resolution=16, base_channels=16),
                        "D": DCGANDiscriminator(img_resolution=16)}, {"arch": "dcgan"})
    with pytest.raises(NeuropaintError, match=r"is not an upscaler checkpoint: it holds "
                                              r"G \(DCGANGenerator\), D \(DCGANDiscriminator\)"):
        Upscaler.from_pretrained(gan)
    (tmp_path / "empty").mkdir()
    with pytest.raises(NeuropaintError, match=r"empty is not an upscaler checkpoint: .*neither "
                                              r"a GAN snapshot"):
        Upscaler.from_pretrained(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match=r"no such upscaler"):
        Upscaler.from_pretrained(tmp_path / "missing")


# -------------------------------------------------------------------------- metrics
def test_psnr_and_ssim_on_known_cases():
    a = torch.zeros(2, 3, 16, 16)
    b = a + 1 / 127.5  # exactly one 8-bit level brighter
    torch.testing.assert_close(psnr(a, b), torch.full((2,), 10 * math.log10(255**2),
                                                       dtype=torch.float64))
    x = _image(32)
    assert float(ssim(x, x)) == pytest.approx(1.0)
    noisy = (x + 0.3 * torch.randn_like(x)).clamp(-1, 1)
    assert 0 < float(ssim(x, noisy)) < 0.9
    assert float(ssim(x, noisy)) == pytest.approx(float(ssim(noisy, x)))
    # The separable window against Wang et al.'s formula with the full 11x11 window.
    g = torch.exp(-0.5 * ((torch.arange(11, dtype=torch.float64) - 5) / 1.5) ** 2)
    window = (torch.outer(g, g) / g.sum() ** 2).expand(3, 1, 11, 11)
    u = ((x.double() * 127.5 + 127.5).round().clamp(0, 255))
    v = ((noisy.double() * 127.5 + 127.5).round().clamp(0, 255))

    def blur(t):
        return torch.nn.functional.conv2d(t, window, groups=3)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_u, mu_v = blur(u), blur(v)
    s_uv = blur(u * v) - mu_u * mu_v
    s_uu, s_vv = blur(u * u) - mu_u**2, blur(v * v) - mu_v**2
    reference = ((2 * mu_u * mu_v + c1) * (2 * s_uv + c2)
                 / ((mu_u**2 + mu_v**2 + c1) * (s_uu + s_vv + c2))).mean()
    assert float(ssim(x, noisy)) == pytest.approx(float(reference), abs=1e-12)
    # Bicubic beats nearest on a smooth painting downscaled x2.
    hr = _image(64, "rothko")
    lr = degrade(hr, 2, get_degradation("bicubic"), torch.Generator().manual_seed(0))
    figures = compare(lambda t: nearest_upscale(t, 2), lr, hr, 2)
    assert figures["psnr_model"] == pytest.approx(figures["psnr_nearest"])
    assert figures["psnr_bicubic"] > figures["psnr_nearest"]
    assert bicubic_upscale(lr, 2).shape == hr.shape


# -------------------------------------------------------------------------- denoising
def test_nl_means_matches_its_reference_and_removes_noise():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 9, 11) * 2 - 1
    torch.testing.assert_close(nl_means(x, 0.2, patch=3, search=5),
                               nl_means_reference(x, 0.2, patch=3, search=5),
                               rtol=0, atol=1e-5)
    torch.testing.assert_close(nl_means(x, patch=3, search=5),
                               nl_means_reference(x, patch=3, search=5), rtol=0, atol=1e-5)
    clean = _image(48, "rothko", 2)
    noisy = clean + torch.randn_like(clean) * (12 / 127.5)  # sigma 12 levels
    estimate = float(estimate_noise_sigma(noisy)) * 127.5
    assert 10 < estimate < 15
    denoised = nl_means(noisy)
    assert float(psnr(denoised, clean)) > float(psnr(noisy, clean)) + 3
    torch.testing.assert_close(nl_means(noisy, 0.0), noisy, rtol=0, atol=0)
    # Banded processing (bounded memory for large images) gives the same result.
    torch.testing.assert_close(nl_means(noisy, band_pixels=300), denoised, rtol=0, atol=1e-5)
    with pytest.raises(NeuropaintError, match=r"'patch' and 'search' must be odd"):
        nl_means(noisy, patch=4)
    with pytest.raises(NeuropaintError, match=r"'sigma' must be one non-negative number"):
        nl_means(noisy, -1.0)


# -------------------------------------------------------------------------- the CLIs
def _write_inputs(folder):
    folder.mkdir()
    rgb = paint("davis", 40, 1)
    Image.fromarray(rgb).save(folder / "davis.png")
    Image.fromarray(paint("louis", 36, 2)[:, :30]).save(folder / "louis.jpg", quality=90)
    rgba = np.dstack([paint("rothko", 24, 3), np.full((24, 24), 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(folder / "alpha.png")
    Image.fromarray(paint("noland", 20, 4)[..., 0], "L").save(folder / "grey.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    Image.fromarray(rgb[:5, :5]).save(folder / "tiny.png")
    return folder


def test_apply_cli_on_real_files(trained, tmp_path, capsys):
    images = _write_inputs(tmp_path / "in")
    out = tmp_path / "out"
    args = ["apply", str(trained["run"]), str(images), "--out", str(out), "--tile", "16",
            "--overlap", "4", "-q"]
    assert run_cli(main, args) == 0
    printed = capsys.readouterr().out
    assert "wrote 4, kept 0 existing, skipped 2 of 6 images" in printed
    assert "broken.png: not-an-image" in printed
    assert "tiny.png: too-small: 5x5 px" in printed
    assert "alpha.png: RGBA image: transparency composited over white" in printed
    assert "grey.png: L image written as RGB" in printed
    sizes = {p.name: Image.open(p).size for p in out.glob("*.png")}
    assert sizes == {"davis_x2.png": (80, 80), "louis_x2.png": (60, 72),
                     "alpha_x2.png": (48, 48), "grey_x2.png": (40, 40)}
    assert all(Image.open(p).mode == "RGB" for p in out.glob("*.png"))
    report = json.loads((out / "upscale_report.json").read_text())
    assert report["counts"] == {"written": 4, "kept": 0, "skipped": 2}
    # Nothing already written is lost: a second run keeps the outputs, --overwrite redoes them.
    stamp = (out / "davis_x2.png").stat().st_mtime_ns
    assert run_cli(main, [*args, "--denoise", "both"]) == 0
    assert "wrote 0, kept 4 existing" in capsys.readouterr().out
    assert (out / "davis_x2.png").stat().st_mtime_ns == stamp
    assert run_cli(main, [*args, "--overwrite", "--denoise", "before"]) == 0
    assert "wrote 4" in capsys.readouterr().out
    assert not list(out.glob(".*tmp*"))  # no temporary files left behind


def test_cli_errors_are_one_line(paintings_store, tmp_path, capsys):
    assert run_cli(main, ["train", str(paintings_store), "--scale", "3", "--out",
                          str(tmp_path / "r"), "-q"]) == 2
    assert "error: 'scale' must be one of 2, 4, 8, got 3." in capsys.readouterr().err
    assert run_cli(main, ["train", str(paintings_store), "--out", str(tmp_path / "r"),
                          "--preset", "huge", "-q"]) == 2
    assert "unknown upscaler preset 'huge'" in capsys.readouterr().err
    assert run_cli(main, ["train", str(paintings_store), "--out", str(tmp_path / "r"),
                          "--patch", "48", "-q"]) == 2
    assert "larger than the store's 32 px tiles" in capsys.readouterr().err
    gan = tmp_path / "gan"
    save_snapshot(gan, {"G": DCGANGenerator(z_dim=8, img_resolution=16, base_channels=16)},
                  {"arch": "dcgan"})
    picture = tmp_path / "a.png"
    Image.fromarray(paint("davis", 16, 0)).save(picture)
    assert run_cli(main, ["apply", str(gan), str(picture), "--out", str(tmp_path / "o"),
                          "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not an upscaler checkpoint" in err


def test_train_cli_runs_and_apply_refuses_when_nothing_is_readable(paintings_store, tmp_path,
                                                                     capsys):
    run = tmp_path / "cli"
    assert run_cli(main, ["train", str(paintings_store), "--scale", "4", "--out", str(run),
                          "--preset", "tiny", "--steps", "4", "--snapshot-every", "2",
                          "--val-every", "2", "--device", "cpu", "--denoise", "after",
                          "-q"]) == 0
    assert "done: step 4" in capsys.readouterr().out
    assert sorted(p.name for p in (run / "snapshots").iterdir()) == ["000000002", "000000004"]
    assert Upscaler.from_pretrained(run).default_denoise == "after"
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    assert run_cli(main, ["apply", str(run), str(bad), "--out", str(tmp_path / "o"),
                          "-q"]) == 2
    assert "none of the 1 images could be upscaled" in capsys.readouterr().err
