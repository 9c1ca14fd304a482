"""gan.generate and gan.checkpoint: render from a real (tiny) trained snapshot."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from gan.checkpoint import (
    build_network,
    load_generator,
    read_config,
    resolve_snapshot,
    weights_hash,
)
from gan.generate import interpolation_frames, main, mixing_grid, parse_seeds, slerp
from gan.train import TrainConfig, Trainer
from neuropaint.logs import run_cli
from neuropaint.validate import NeuropaintError


@pytest.fixture(scope="module")
def run(paintings_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "run"
    cfg = TrainConfig(data=str(paintings_store), out=str(out), preset="tiny", kimg=0.032,
                      snapshot_kimg=0.032, device="cpu")
    Trainer(cfg).train()
    return out


@pytest.fixture(scope="module")
def dcgan_run(paintings_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "dcgan"
    cfg = TrainConfig(data=str(paintings_store), out=str(out), preset="dcgan_tiny", kimg=0.016,
                      snapshot_kimg=0.016, device="cpu", aug="none")
    Trainer(cfg).train()
    return out


def test_seed_lists_parse_and_bad_ones_are_refused():
    assert parse_seeds("0-3,7,10-11") == [0, 1, 2, 3, 7, 10, 11]
    with pytest.raises(NeuropaintError, match=r"'--seeds' must look like"):
        parse_seeds("3-1")
    with pytest.raises(NeuropaintError, match=r"'--seeds' must look like"):
        parse_seeds("a-b")


def test_images_and_grid_are_written_and_reproducible(run, tmp_path, capsys):
    assert main([str(run), "--seeds", "0-3", "--trunc", "0.7", "--out", str(tmp_path / "a")]) == 0
    assert main([str(run), "--seeds", "2", "--trunc", "0.7", "--out", str(tmp_path / "b")]) == 0
    first = np.asarray(Image.open(tmp_path / "a" / "seed0002.png"))
    again = np.asarray(Image.open(tmp_path / "b" / "seed0002.png"))
    np.testing.assert_array_equal(first, again)
    with Image.open(tmp_path / "a" / "grid.png") as grid:
        assert grid.size == (256, 256)  # 2 x 2 cells: 16 px images shown 8x, 128 px each
        cells = np.asarray(grid)
    np.testing.assert_array_equal(cells[128::8, :128:8], first)  # nearest: nothing invented
    out = capsys.readouterr().out
    assert out.count("validity: the discriminator D's score") == 2  # once in each of 2 runs
    assert out.index("validity: the discriminator") < out.index("seed 0: validity")


def test_grid_cell_size_is_an_option(run, tmp_path):
    assert main([str(run), "--seeds", "0-3", "--grid-cell", "0", "--out", str(tmp_path)]) == 0
    with Image.open(tmp_path / "grid.png") as grid:
        assert grid.size == (32, 32)  # 2 x 2 images of 16 px, as generated
    assert main([str(run), "--seeds", "0-3", "--grid-cell", "40", "--out", str(tmp_path)]) == 0
    with Image.open(tmp_path / "grid.png") as grid:
        assert grid.size == (96, 96)  # the smallest whole factor reaching 40 px: 3


def test_dcgan_prints_validity_per_image(dcgan_run, tmp_path, capsys):
    assert main([str(dcgan_run), "--seeds", "0-2", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    scores = [float(line.rsplit(" ", 1)[1]) for line in out.splitlines()
              if line.startswith("seed ")]
    assert len(scores) == 3 and all(0 < s < 1 for s in scores)


def test_interpolation_loops_and_is_written_as_gif(run, tmp_path):
    G = load_generator(run)
    frames = interpolation_frames(G, [1, 2, 3], frames=4)
    assert frames.shape == (12, 16, 16, 3)
    start = interpolation_frames(G, [1, 2, 3], frames=4, space="w")
    assert start.shape == (12, 16, 16, 3)
    assert main([str(run), "--seeds", "1,2", "--interpolate", "--frames", "3", "--out",
                 str(tmp_path)]) == 0
    with Image.open(tmp_path / "interpolation.gif") as gif:
        assert gif.n_frames == 6


def test_mp4_without_ffmpeg_says_so(run, tmp_path, capsys):
    import shutil

    if shutil.which("ffmpeg"):
        pytest.skip("ffmpeg is installed here; the mp4 path runs instead")
    code = run_cli(main, [str(run), "--seeds", "1,2", "--interpolate", "--format", "mp4",
                          "--frames", "2", "--out", str(tmp_path)])
    assert code == 2 and "mp4 needs ffmpeg" in capsys.readouterr().err


def test_slerp_keeps_the_norm_between_equal_norm_latents():
    a, b = torch.randn(8), torch.randn(8)
    b = b / b.norm() * a.norm()
    assert torch.allclose(slerp(a, b, 0.5).norm(), a.norm(), rtol=1e-4)
    assert torch.allclose(slerp(a, b, 0.0), a, atol=1e-5)


def test_style_mixing_grid_has_a_header_row_and_column(run, tmp_path):
    G = load_generator(run)
    picture = mixing_grid(G, [0, 1], [5, 6, 7], layers="coarse")
    assert picture.shape == (3 * 16, 4 * 16, 3)
    assert main([str(run), "--mix", "--rows", "0-1", "--cols", "5-7", "--layers", "fine",
                 "--out", str(tmp_path)]) == 0
    assert (tmp_path / "mixing_fine.png").exists()


def test_saved_latents_render(run, tmp_path):
    G = load_generator(run)
    with torch.no_grad():
        ws = G.mapping(torch.randn(3, G.z_dim), None).numpy()
    np.save(tmp_path / "ws.npy", ws)
    assert main([str(run), "--w", str(tmp_path / "ws.npy"), "--out", str(tmp_path / "o")]) == 0
    assert len(list((tmp_path / "o").glob("w*.png"))) == 3
    np.save(tmp_path / "bad.npy", np.zeros((2, 5)))
    assert run_cli(main, [str(run), "--w", str(tmp_path / "bad.npy"), "--out",
                          str(tmp_path)]) == 2


def test_checkpoint_rebuilds_without_pickled_code_and_hashes_weights(run):
    folder = resolve_snapshot(run)
    config = read_config(folder)
    G = build_network(config["networks"]["G_ema"])
    assert type(G).__name__ == "Generator"
    assert len(weights_hash(folder)) == 64
    assert weights_hash(folder) == weights_hash(folder)


def test_checkpoint_naming_an_unknown_class_is_refused(run, tmp_path):
    import shutil

    copy = tmp_path / "snap"
    shutil.copytree(resolve_snapshot(run), copy)
    config = json.loads((copy / "config.json").read_text())
    config["networks"]["G_ema"]["class"] = "os.system"
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(NeuropaintError, match=r"unknown network class 'os.system'"):
        load_generator(copy)


def test_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert run_cli(main, [str(tmp_path / "nothing"), "--out", str(tmp_path)]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
