"""conditioning.train --mode joint: the generator fine-tuned with EEG latents in gan.train's loop."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from conditioning.encoder import Encoder
from conditioning.render import main as render_main
from conditioning.train import EncoderTrainConfig, main, run
from datasets.eeg import build
from eeg.features import FeatureSpec
from gan.checkpoint import load_generator, load_state, read_config, resolve_snapshot
from gan.train import TrainConfig, Trainer
from neuropaint.logs import run_cli
from neuropaint.validate import NeuropaintError

SMALL = {"hidden": 64, "code_dim": 16, "mode": "joint"}


def _config(store, generator, out, **kwargs) -> EncoderTrainConfig:
    values = {"eeg": str(store), "generator": str(generator), "out": str(out), "kimg": 0.064,
              "snapshot_kimg": 0.032, **SMALL}
    values.update(kwargs)
    return EncoderTrainConfig(**values)


@pytest.fixture(scope="module")
def joint(eeg_store_path, generator_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("joint") / "encoder"
    return run(_config(eeg_store_path, generator_path, out))


def test_joint_writes_an_encoder_with_its_fine_tuned_generator(joint, generator_path):
    out = joint["paths"]["encoder"]
    assert {"config.json", "encoder.safetensors", "generator", "states.png", "loss.png",
            "history.jsonl", "fidelity.json"} <= {p.name for p in out.iterdir()}
    # The generator beside it is a normal snapshot, fine-tuned from --generator.
    generator = out / "generator"
    assert read_config(generator)["train_config"]["init"] == str(resolve_snapshot(
        generator_path))
    assert load_generator(generator).num_ws == 6
    encoder = Encoder.from_pretrained(out, generator_path=generator)
    assert encoder.training_stats["mode"] == "joint"
    assert encoder.training_stats["final"]["kimg"] == 0.064
    with pytest.raises(NeuropaintError, match=r"trained for other generator weights"):
        Encoder.from_pretrained(out, generator_path=generator_path)
    # The gan.train run beside OUT: snapshots, with the EEG extension's stats and state.
    run_dir = joint["paths"]["run"]
    assert run_dir.name == "encoder.run"
    lines = [json.loads(x) for x in (run_dir / "stats.jsonl").read_text().splitlines()]
    assert all("aux_g" in line and "aux_d" in line for line in lines)
    state = load_state(run_dir)
    assert {"encoder", "aux_head"} <= set(state["trainables"])
    assert read_config(run_dir)["extensions"]["eeg"]["eeg_share"] == 0.5
    # Pictures and figures like the other modes', plus the fidelity metrics.
    assert Image.open(out / "states.png").size[1] > 300
    fidelity = json.loads((out / "fidelity.json").read_text())
    assert {"responsiveness", "coverage", "smoothness"} <= set(fidelity)
    assert "state_accuracy" in joint["held_out"]


def test_the_saved_encoder_and_generator_render_a_recording(joint, eeg_files, tmp_path,
                                                            capsys):
    out = joint["paths"]["encoder"]
    frames = tmp_path / "frames"
    assert render_main([str(out), str(out / "generator"), str(eeg_files[0]), "--out",
                        str(frames), "--format", "frames", "--fps", "2"]) == 0
    assert "frames" in capsys.readouterr().out
    pngs = sorted(frames.glob("*.png"))
    assert len(pngs) >= 50
    assert np.asarray(Image.open(pngs[-1])).shape == (16, 16, 3)


@pytest.mark.slow
def test_joint_resumes_exactly(eeg_store_path, generator_path, tmp_path):
    full = tmp_path / "full"
    run(_config(eeg_store_path, generator_path, full, kimg=0.032, snapshot_kimg=0.016,
                fidelity=False))
    half = tmp_path / "half"
    run(_config(eeg_store_path, generator_path, half, kimg=0.016, snapshot_kimg=0.016,
                fidelity=False))
    result = run(_config(eeg_store_path, generator_path, half, kimg=0.032, snapshot_kimg=0.016,
                         resume=True, fidelity=False))
    assert [h["kimg"] for h in result["history"]] == [0.008, 0.016, 0.024, 0.032]
    for name in ("encoder.safetensors", "generator/G_ema.safetensors",
                 "generator/G.safetensors", "generator/D.safetensors"):
        a, b = load_file(str(full / name)), load_file(str(half / name))
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=f"{name} {key}")
    a, b = load_state(full / "generator"), load_state(half / "generator")
    for key, value in a["trainables"]["aux_head"]["weights"].items():
        torch.testing.assert_close(value, b["trainables"]["aux_head"]["weights"][key],
                                   rtol=0, atol=0)
    assert a["extensions"]["eeg"]["rows_rng"].equal(b["extensions"]["eeg"]["rows_rng"])


@pytest.mark.slow
def test_the_auxiliary_head_learns_to_read_the_eeg(eeg_store_path, generator_path, tmp_path):
    """The EEG-recovery loss (MSE on standardised features; 1 = nothing) falls in a short run."""
    result = run(_config(eeg_store_path, generator_path, tmp_path / "enc", kimg=0.48,
                         snapshot_kimg=0.48, fidelity=False))
    history = result["history"]
    assert len(history) == 4
    first = (history[0]["aux_g"] + history[0]["aux_d"]) / 2
    last = (history[-1]["aux_g"] + history[-1]["aux_d"]) / 2
    assert last < 0.85 * first, (first, last)


# --- bad inputs ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dcgan_path(tmp_path_factory, generator_path):
    tiles = read_config(generator_path)["train_config"]["data"]
    out = tmp_path_factory.mktemp("dcgan") / "run"
    Trainer(TrainConfig(data=tiles, out=str(out), preset="dcgan_tiny", kimg=0.008,
                        snapshot_kimg=0.008, device="cpu", aug="none")).train()
    return out


def test_a_dcgan_generator_is_refused(eeg_store_path, dcgan_path, tmp_path, capsys):
    with pytest.raises(NeuropaintError, match=r"holds a DCGANGenerator, which has no W space; "
                       r"the encoder needs a StyleGAN2 generator"):
        run(_config(eeg_store_path, dcgan_path, tmp_path / "x"))
    argv = ["--eeg", str(eeg_store_path), "--generator", str(dcgan_path), "--mode", "joint",
            "--out", str(tmp_path / "x"), "-q"]
    assert run_cli(main, argv) == 2
    assert "no W space" in capsys.readouterr().err


def test_resuming_with_a_store_of_another_feature_spec_is_refused(
        eeg_files, eeg_store_path, generator_path, tmp_path):
    out = tmp_path / "enc"
    run(_config(eeg_store_path, generator_path, out, kimg=0.008, snapshot_kimg=0.008,
                fidelity=False))
    other = tmp_path / "window1"
    build(eeg_files, other, spec=FeatureSpec(window=1.0))
    with pytest.raises(NeuropaintError, match=r"was built with a different FeatureSpec than the "
                       r"joint run being resumed \(window 1.0 vs 2.0\)"):
        run(_config(other, generator_path, out, kimg=0.016, resume=True))


def test_cli_runs_joint_and_refuses_bad_inputs(eeg_store_path, generator_path, tmp_path,
                                               capsys):
    out = tmp_path / "enc"
    assert main(["--eeg", str(eeg_store_path), "--generator", str(generator_path), "--mode",
                 "joint", "--out", str(out), "--kimg", "0.008", "--snap", "0.008",
                 "--no-fidelity", "-q"]) == 0
    printed = capsys.readouterr().out
    assert "joint: 0.008 kimg; last tick" in printed and f"generator: {out / 'generator'}" \
        in printed
    with pytest.raises(NeuropaintError, match=r"enc.run already holds a joint run: pass "
                       r"--resume to continue it"):
        run(_config(eeg_store_path, generator_path, out, kimg=0.016))
    with pytest.raises(NeuropaintError, match=r"^--tiles: no such tile store: .*nowhere"):
        run(_config(eeg_store_path, generator_path, tmp_path / "y",
                    tiles=str(tmp_path / "nowhere")))
    argv = ["--eeg", str(eeg_store_path), "--generator", str(generator_path), "--mode", "joint",
            "--out", str(tmp_path / "z"), "--eeg-share", "0", "-q"]
    assert run_cli(main, argv) == 2
    assert "'eeg_share': Input should be greater than 0" in capsys.readouterr().err


def test_joint_starts_from_a_generator_only_snapshot(eeg_store_path, generator_path, tmp_path,
                                                     caplog):
    """A snapshot of G_ema alone (a gan.blend result): joint mode starts G from it and a fresh
    D (said in the log), and a missing tile store is one line naming --tiles."""
    from gan.checkpoint import save_snapshot

    config = read_config(generator_path)
    keep = {k: v for k, v in config.items()
            if k not in ("networks", "format_version", "kind", "neuropaint_version")}
    g_only = tmp_path / "g_only"
    save_snapshot(g_only, {"G_ema": load_generator(generator_path)}, keep)
    with caplog.at_level("WARNING"):
        result = run(_config(eeg_store_path, g_only, tmp_path / "enc", kimg=0.032,
                             snapshot_kimg=0.032))
    assert "G starts from G_ema and D starts fresh" in caplog.text
    assert (result["paths"]["encoder"] / "generator" / "config.json").is_file()
    keep["train_config"] = {**keep.get("train_config", {}), "data": str(tmp_path / "gone")}
    save_snapshot(tmp_path / "moved", {"G_ema": load_generator(generator_path)}, keep)
    with pytest.raises(NeuropaintError, match="pass a tile store with --tiles STORE"):
        run(_config(eeg_store_path, tmp_path / "moved", tmp_path / "enc2"))
