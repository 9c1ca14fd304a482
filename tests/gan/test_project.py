"""gan.project: projecting images into a real (tiny, trained) generator's W, API and CLI."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from datasets.procedural import paint, write_store
from gan.checkpoint import load_generator, load_network, read_config, save_snapshot
from gan.dcgan import DCGANGenerator
from gan.images import to_uint8
from gan.project import fit_image, main, project, read_image
from gan.train import TrainConfig, Trainer
from neuropaint.logs import run_cli
from neuropaint.validate import NeuropaintError

REPO = Path(__file__).resolve().parents[2]
DEMO_GENERATOR = REPO / "live" / "demo_model" / "generator"


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    """The tiny preset (16 px, 6 ws, w_dim 32) after two real training steps: G, D, G_ema."""
    root = tmp_path_factory.mktemp("project")
    tiles = write_store(root / "tiles16", 32, 16)
    cfg = TrainConfig(data=str(tiles), out=str(root / "run"), preset="tiny", kimg=0.016,
                      snapshot_kimg=0.016, tick_kimg=0.016, device="cpu")
    return Trainer(cfg).train()


@pytest.fixture(scope="module")
def G(snapshot):
    return load_generator(snapshot)


def own_image(G, seed: int) -> np.ndarray:
    """What G paints from the z of ``seed``: uint8 [16, 16, 3]."""
    z = torch.from_numpy(np.random.RandomState(seed).standard_normal([1, G.z_dim])
                         .astype(np.float32))
    with torch.no_grad():
        return to_uint8(G.synthesis(G.mapping(z, None), noise_mode="const"))[0]


def save_png(image: np.ndarray, path: Path) -> Path:
    Image.fromarray(image).save(path)
    return path


def test_projection_recovers_the_generators_own_image_in_w_plus(G):
    target = own_image(G, 7)
    before = {k: v.clone() for k, v in G.state_dict().items()}
    start = project(G, target, space="w+", steps=1)
    result = project(G, target, space="w+", steps=500)
    assert result.psnr >= 30.0
    assert result.psnr > start.psnr + 10  # the optimisation, not the start, did it
    assert result.ssim > 0.98
    assert result.ws.shape == (G.num_ws, G.w_dim) and result.ws.dtype == np.float32
    np.testing.assert_array_equal(result.target, target)
    # The reported image is what the saved ws alone render to with G's own noise.
    with torch.no_grad():
        again = to_uint8(G.synthesis(torch.from_numpy(result.ws)[None], noise_mode="const"))[0]
    np.testing.assert_array_equal(again, result.image)
    # G itself is untouched: the noise maps were optimised in a private copy.
    after = G.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert set(result.noise) and all(v.shape[0] == v.shape[1] for v in result.noise.values())


def test_w_space_gives_one_w_for_every_layer_and_is_seeded(G):
    target = own_image(G, 3)
    a = project(G, target, space="w", steps=20, seed=1)
    b = project(G, target, space="w", steps=20, seed=1)
    assert np.allclose(a.ws, a.ws[:1])  # one w broadcast to all num_ws rows
    np.testing.assert_array_equal(a.ws, b.ws)
    assert a.space == "w" and a.steps == 20


def test_the_discriminator_features_join_the_loss_and_no_network_gets_gradients(snapshot):
    G = load_generator(snapshot).requires_grad_(True)  # as a model in training would be
    D = load_network(snapshot, "D")
    assert all(p.requires_grad for p in D.parameters())
    result = project(G, own_image(G, 7), D=D, steps=100)
    assert result.psnr > 20
    assert all(p.grad is None for p in [*G.parameters(), *D.parameters()])


def test_any_image_is_centre_cropped_and_resized_to_the_generator():
    image = np.zeros((30, 50, 3), np.uint8)
    image[:, :10] = (0, 0, 255)  # side strips the centre crop removes
    image[:, 40:] = (0, 0, 255)
    image[:, 10:40] = (200, 30, 30)
    fitted = fit_image(image, 16)
    assert fitted.shape == (16, 16, 3)
    assert np.abs(fitted.astype(int) - (200, 30, 30)).max() <= 2


def test_transparency_is_composited_on_white(tmp_path):
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[5:15, 5:15] = (255, 0, 0, 255)  # an opaque red square on a transparent sheet
    path = tmp_path / "sticker.png"
    Image.fromarray(rgba, "RGBA").save(path)
    image = read_image(path)
    assert image.shape == (20, 20, 3)
    assert (image[0, 0] == 255).all() and tuple(image[10, 10]) == (255, 0, 0)


def test_bad_arguments_are_one_line_errors(G):
    with pytest.raises(NeuropaintError, match=r"'image' must be a uint8 array \[H, W, 3\]"):
        project(G, np.zeros((16, 16), np.uint8))
    with pytest.raises(NeuropaintError, match=r"'image' must be a uint8 array"):
        project(G, np.zeros((16, 16, 3), np.float32))
    with pytest.raises(NeuropaintError, match=r"'space'"):
        project(G, own_image(G, 1), space="z")
    with pytest.raises(NeuropaintError, match=r"'steps'"):
        project(G, own_image(G, 1), steps=0)
    dcgan = DCGANGenerator(z_dim=8, img_resolution=16, img_channels=3, base_channels=16)
    with pytest.raises(NeuropaintError, match=r"needs a StyleGAN2 generator"):
        project(dcgan, own_image(G, 1))


def test_cli_writes_each_image_and_skips_a_file_that_is_not_one(snapshot, G, tmp_path,
                                                                 capsys):
    art = save_png(paint("rothko", 40, seed=1), tmp_path / "rothko.png")
    wide = save_png(paint("newman", 64, seed=2)[:40], tmp_path / "newman.jpg")
    notes = tmp_path / "notes.png"
    notes.write_text("not a picture")
    out = tmp_path / "out"
    assert main([str(snapshot), str(art), str(notes), str(wide), "--out", str(out),
                 "--steps", "30", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert f"skipped {notes}: not-an-image" in captured.err
    assert len(captured.err.strip().splitlines()) == 1
    for name in ("rothko", "newman"):
        ws = np.load(out / f"{name}_ws.npy")
        assert ws.shape == (G.num_ws, G.w_dim) and ws.dtype == np.float32
        with Image.open(out / f"{name}_projection.png") as picture:
            assert picture.size == (32, 16)  # target | reconstruction
        assert f"{name}: PSNR" in captured.out
    summary = json.loads((out / "projection.json").read_text())
    assert summary["discriminator_features"] is True
    assert summary["skipped"][0]["file"] == str(notes)
    entry = summary["images"]["rothko"]
    assert entry["space"] == "w+" and entry["steps"] == 30
    assert 5 < entry["psnr"] < 99 and 0 < entry["ssim"] <= 1
    assert not list(out.glob(".*tmp*"))  # atomic writes leave no temporary files


@pytest.mark.parametrize("judge", ["kept", "declined", "absent"])
def test_cli_takes_a_folder_of_images_and_the_demo_with_or_without_its_judge(judge, tmp_path,
                                                                             capsys):
    """The demo keeps its D (fp16), whose features join the loss unless --no-discriminator;
    a snapshot of G_ema alone (a gan.blend result) is projected on pixels and SSIM."""
    generator, flags = DEMO_GENERATOR, ["--no-discriminator"] if judge == "declined" else []
    if judge == "absent":
        generator = save_snapshot(tmp_path / "g_only", {"G_ema": load_generator(generator)},
                                  {"arch": read_config(generator)["arch"]})
    folder = tmp_path / "art"
    folder.mkdir()
    save_png(paint("louis", 48, seed=3), folder / "a.png")
    save_png(paint("davis", 48, seed=4), folder / "a.jpg")  # same stem: kept apart
    (folder / "readme.txt").write_text("ignored: not an image suffix")
    out = tmp_path / "out"
    assert main([str(generator), str(folder), "--out", str(out), "--steps", "2",
                 "--space", "w", "--quiet", *flags]) == 0
    summary = json.loads((out / "projection.json").read_text())
    assert summary["discriminator_features"] is (judge == "kept")
    assert sorted(summary["images"]) == ["a", "a-2"]
    assert np.load(out / "a-2_ws.npy").shape == (10, 128)
    assert "projected 2 of 2 images" in capsys.readouterr().out


def test_cli_refuses_bad_inputs_in_one_line(snapshot, tmp_path, capsys):
    art = save_png(paint("noland", 32, seed=5), tmp_path / "noland.png")
    out = str(tmp_path / "out")
    assert run_cli(main, [str(tmp_path / "missing"), str(art), "--out", out]) == 2
    assert "error: no such checkpoint" in capsys.readouterr().err
    assert run_cli(main, [str(snapshot), str(art), "--out", out, "--steps", "0"]) == 2
    assert "'--steps' must be an integer >= 1, got 0." in capsys.readouterr().err
    assert run_cli(main, [str(snapshot), str(art), "--out", out, "--threads", "-1"]) == 2
    assert "'--threads' must be an integer >= 0, got -1." in capsys.readouterr().err
    notes = tmp_path / "notes.txt"
    notes.write_text("words")
    assert run_cli(main, [str(snapshot), str(notes), "--out", out, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "none of the 1 images could be projected" in err and str(notes) in err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_cli(main, [str(snapshot), str(empty), "--out", out]) == 2
    assert "no image files given" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main([str(snapshot), str(art), "--out", out, "--space", "z"])
    assert exc.value.code == 2
    assert "invalid choice: 'z'" in capsys.readouterr().err


def _sigint_as_in_a_terminal() -> None:
    """In the child before exec: SIGINT delivered and handled by default, as a shell gives a
    foreground command, whatever the test runner inherited. A suite started in the background
    of a non-interactive shell (``(python -m pytest &)``, nohup) runs with SIGINT and SIGQUIT
    ignored (POSIX: asynchronous lists ignore them; /proc's SigIgn reads 0x6), Python keeps an
    inherited SIG_IGN, and so the child ignored every Ctrl-C while the test passed when the
    suite ran in the foreground."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _signal_state() -> str:
    """The runner's blocked and ignored signal masks, for a failure's message."""
    lines = Path("/proc/self/status").read_text().splitlines() \
        if Path("/proc/self/status").exists() else []
    return "; ".join(line for line in lines if line.startswith(("SigBlk", "SigIgn")))


def test_ctrl_c_keeps_the_images_already_finished(snapshot, tmp_path):
    # Six images, so that on a busy machine, where the child may finish another projection
    # before the signal lands, some projection is still running when Ctrl-C arrives.
    kinds = ["rothko", "davis", "newman", "noland", "louis", "rothko"]
    names = [f"image{i}" for i in range(len(kinds))]
    files = [save_png(paint(kind, 32, seed=6 + i), tmp_path / f"{name}.png")
             for i, (kind, name) in enumerate(zip(kinds, names, strict=True))]
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gan.project", str(snapshot), *map(str, files), "--out",
         str(out), "--steps", "200", "--threads", "1", "--quiet"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_sigint_as_in_a_terminal)
    try:
        deadline = time.monotonic() + 60
        summary_file = out / "projection.json"
        while not summary_file.exists() and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.02)
        # The first image is written; a later one is running. Python can lose a
        # KeyboardInterrupt raised inside a finaliser or callback ("Exception ignored in"),
        # so press Ctrl-C again, as a performer would, until the command stops.
        for _ in range(5):
            proc.send_signal(signal.SIGINT)
            try:
                _, err = proc.communicate(timeout=3)
                break
            except subprocess.TimeoutExpired:
                continue
        else:
            _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and "interrupted" in err, (err, _signal_state())
    finished = list(json.loads(summary_file.read_text())["images"])
    assert 1 <= len(finished) < len(names) and finished == names[:len(finished)]
    for name in finished:
        assert np.load(out / f"{name}_ws.npy").shape == (6, 32)
    for name in names[len(finished):]:
        assert not (out / f"{name}_ws.npy").exists()
    assert not list(out.glob(".*tmp*"))
