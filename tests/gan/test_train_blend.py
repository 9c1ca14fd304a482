"""gan.train --data-b --blend: one generator, two discriminators on two procedural styles."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from safetensors.torch import load_file

from datasets.art import ArtTiles
from datasets.procedural import write_store
from gan.checkpoint import load_generator, load_network, load_state, read_config, resolve_snapshot
from gan.metrics import sliced_wasserstein
from gan.train import TrainConfig, Trainer, main
from neuropaint.logs import run_cli
from neuropaint.validate import NeuropaintError


@pytest.fixture(scope="module")
def two_styles(tmp_path_factory):
    """Collection A (Rothko-like fields) and B (Davis-like stripes), 48 tiles of 16 px each."""
    root = tmp_path_factory.mktemp("blend")
    a = write_store(root / "rothko16", 48, 16, styles="rothko")
    b = write_store(root / "davis16", 48, 16, styles="davis", seed=1000)
    return a, b


def _config(a, b, out, **kwargs) -> TrainConfig:
    values = {"data": str(a), "data_b": str(b), "blend": "max", "out": str(out),
              "preset": "tiny", "kimg": 0.064, "snapshot_kimg": 0.032, "tick_kimg": 0.016,
              "device": "cpu", "aug_p": 0.1}
    values.update(kwargs)
    return TrainConfig(**values)


def test_blend_trains_two_discriminators_and_snapshots_both(two_styles, tmp_path):
    a, b = two_styles
    run = tmp_path / "blend"
    trainer = Trainer(_config(a, b, run))
    assert [c.name for c in trainer.critics] == ["D", "D_B"]
    d_b = trainer.critics[1]
    # Each judge has its own augmentation pipe and controller, optimiser and data.
    assert d_b.augment_pipe is not trainer.augment_pipe and d_b.ada is not trainer.ada
    assert d_b.opt is not trainer.D_opt and d_b.data.path == str(b)
    trainer.train()
    config = read_config(run)
    assert set(config["networks"]) == {"G", "D", "G_ema", "D_B"}
    assert config["extensions"]["blend"] == {"data_b": str(b), "reduce": "max"}
    assert config["critics"]["D_B"]["data"] == str(b)
    lines = [json.loads(x) for x in (run / "stats.jsonl").read_text().splitlines()]
    for key in ("loss_g", "loss_d", "loss_d_b", "scores_real_b", "hardest_b", "aug_p_b",
                "r1_penalty_b"):
        assert any(key in line for line in lines), key
    assert all(0.0 <= line["hardest_b"] <= 1.0 for line in lines)
    # G_ema stays a plain generator; D_B is a plain discriminator.
    G = load_generator(run)
    assert G(torch.randn(2, G.z_dim), None).shape == (2, 3, 16, 16)
    assert type(load_network(run, "D_B")).__name__ == "Discriminator"
    assert (run / "training.png").exists()


def test_blend_resumes_exactly(two_styles, tmp_path):
    a, b = two_styles
    full = tmp_path / "full"
    Trainer(_config(a, b, full, aug="ada", ada_kimg=1.0)).train()
    half = tmp_path / "half"
    Trainer(_config(a, b, half, aug="ada", ada_kimg=1.0, kimg=0.032)).train()
    resumed = Trainer(_config(a, b, half, aug="ada", ada_kimg=1.0, resume="auto"))
    assert resumed.counters.nimg == 32
    resumed.train()
    for name in ("G", "D", "D_B", "G_ema"):
        x = load_file(str(resolve_snapshot(full) / f"{name}.safetensors"))
        y = load_file(str(resolve_snapshot(half) / f"{name}.safetensors"))
        for key in x:
            torch.testing.assert_close(x[key], y[key], rtol=0, atol=0, msg=f"{name}.{key}")
    s_full, s_half = load_state(full), load_state(half)
    assert s_full["ada"]["p"] == s_half["ada"]["p"]
    assert s_full["critics"]["D_B"]["ada"]["p"] == s_half["critics"]["D_B"]["ada"]["p"]
    # Each controller moved its own p (0.032 per adjustment) from the initial 0.1.
    assert s_full["ada"]["p"] != 0.1 and s_full["critics"]["D_B"]["ada"]["p"] != 0.1


@pytest.mark.slow
def test_blend_generator_learns_both_collections(two_styles, tmp_path):
    """SWD (ProGAN's) of the generator's images to A and B together falls from the start."""
    a, b = two_styles
    trainer = Trainer(_config(a, b, tmp_path / "learn", aug="none", kimg=10))
    gen = torch.Generator().manual_seed(5)
    reals = torch.cat([ArtTiles(str(a)).sample_batch(96, gen),
                       ArtTiles(str(b)).sample_batch(96, gen)])  # [192, 3, 16, 16]
    z = torch.randn(192, trainer.G.z_dim, generator=torch.Generator().manual_seed(9))

    def swd_to_both() -> float:
        with torch.no_grad():
            fakes = trainer.G(z, None, noise_mode="const")
        return sliced_wasserstein(reals, fakes, generator=1)["swd"]

    before = swd_to_both()
    stats = [trainer.train_step() for _ in range(60)]
    after = swd_to_both()
    assert after < 0.4 * before, (before, after)
    # Both judges shaped the generator: each was the harder one for some images.
    hardest_b = sum(s["hardest_b"] for s in stats) / len(stats)
    assert 0.05 < hardest_b < 0.95


def test_blend_mean_and_dcgan_run(two_styles, tmp_path, caplog):
    a, b = two_styles
    trainer = Trainer(_config(a, b, tmp_path / "mean", blend="mean", kimg=0.016,
                              snapshot_kimg=0.016))
    assert trainer.reduce == "mean"
    trainer.train()
    with caplog.at_level(logging.WARNING):
        dcgan = Trainer(_config(a, b, tmp_path / "dcgan", preset="dcgan_tiny", aug="none",
                                kimg=0.016, snapshot_kimg=0.016))
    assert "seeds found a DCGAN could not blend" in caplog.text
    dcgan.train()
    assert set(read_config(tmp_path / "dcgan")["networks"]) == {"G", "D", "G_ema", "D_B"}


def test_init_starts_a_blend_from_a_single_collection_run(two_styles, tmp_path):
    a, b = two_styles
    base = tmp_path / "base"
    Trainer(_config(a, None, base, data_b=None, blend=None, kimg=0.016,
                    snapshot_kimg=0.016)).train()
    trainer = Trainer(_config(a, b, tmp_path / "blend", init=str(base)))
    assert trainer.counters.nimg == 0
    D = load_network(base, "D")
    for key, value in D.state_dict().items():  # D_B starts as a copy of the base's D
        torch.testing.assert_close(trainer.critics[1].D.state_dict()[key], value, rtol=0,
                                   atol=0)


# --- bad inputs ------------------------------------------------------------------------------

def test_half_a_blend_is_refused(two_styles, tmp_path, capsys):
    a, b = two_styles
    with pytest.raises(NeuropaintError, match=r"a blend needs both --data-b .* and --blend "
                       r"max\|mean .*got only --data-b\."):
        Trainer(_config(a, b, tmp_path / "x", blend=None))
    with pytest.raises(NeuropaintError, match=r"got only --blend\."):
        Trainer(_config(a, None, tmp_path / "x", data_b=None))
    code = run_cli(main, ["--data", str(a), "--data-b", str(b), "--out", str(tmp_path / "y"),
                          "--device", "cpu", "-q"])
    assert code == 2
    err = capsys.readouterr().err
    assert "error: a blend needs both --data-b" in err and len(err.strip().splitlines()) == 1


def test_collections_of_different_tile_sizes_are_refused(two_styles, paintings_store,
                                                         tmp_path):
    a, _ = two_styles  # 16 px tiles; paintings_store has 32 px tiles
    with pytest.raises(NeuropaintError, match=r"must share a tile size .* --data has 16 px "
                       r"tiles, --data-b 32 px; rebuild one of them with --size 16"):
        Trainer(_config(a, paintings_store, tmp_path / "x"))
    with pytest.raises(NeuropaintError, match=r"^--data-b: the store's tiles are 16 px and the "
                       r"preset trains at 32 px"):
        Trainer(_config(paintings_store, a, tmp_path / "x", preset="tiny32"))


def test_resume_must_keep_the_blend(two_styles, tmp_path):
    a, b = two_styles
    blend = tmp_path / "blend"
    Trainer(_config(a, b, blend, kimg=0.016, snapshot_kimg=0.016)).train()
    with pytest.raises(NeuropaintError, match=r"also trained discriminators \['D_B'\]: resume "
                       r"it with the same --data-b and --blend"):
        Trainer(_config(a, None, blend, data_b=None, blend=None, resume="auto"))
    single = tmp_path / "single"
    Trainer(_config(a, None, single, data_b=None, blend=None, kimg=0.016,
                    snapshot_kimg=0.016)).train()
    with pytest.raises(NeuropaintError, match=r"has no D_B: it was not trained as a blend; "
                       r"start one from it with --init"):
        Trainer(_config(a, b, single, resume="auto"))
