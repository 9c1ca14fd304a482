"""gan.blend: layer swapping between two tiny generators fine-tuned from one trained base."""

from __future__ import annotations

import itertools
import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from datasets.procedural import write_store
from gan import train as gan_train
from gan.blend import (
    BlendConfig,
    base_similarity,
    blend_snapshots,
    crossover_table,
    layer_position,
    main,
    share_of_b,
)
from gan.checkpoint import load_generator, read_config, resolve_snapshot, save_snapshot
from gan.generate import main as generate_main
from gan.presets import get_preset
from gan.train import TrainConfig, Trainer, build_networks
from neuropaint.logs import run_cli
from neuropaint.validate import NeuropaintError, build_config


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    """A base trained on rothko paintings, then continued on newman (A) and davis (B).

    About 15 s on the shared 2-core machine: the tests that use it are marked slow.
    """
    root = tmp_path_factory.mktemp("blend")
    stores = {style: write_store(root / style, 16, 16, styles=style)
              for style in ("rothko", "newman", "davis")}
    base = Trainer(TrainConfig(data=str(stores["rothko"]), out=str(root / "base"),
                               preset="tiny", kimg=0.032, snapshot_kimg=0.032,
                               device="cpu")).train()
    runs = {}
    for name, style in (("a", "newman"), ("b", "davis")):
        # The command line a user runs: resume the base's snapshot on another store.
        assert gan_train.main(["--data", str(stores[style]), "--out", str(root / name),
                               "--preset", "tiny", "--kimg", "0.064", "--snap", "0.064",
                               "--resume", str(base), "--device", "cpu", "-q"]) == 0
        runs[name] = resolve_snapshot(root / name)
    return {"root": root, "base": base, "stores": stores, **runs}


def _save_untrained(folder, preset: str, seed: int):
    torch.manual_seed(seed)
    G, D = build_networks(get_preset(preset))
    return save_snapshot(folder, {"G": G, "D": D, "G_ema": G}, {"arch": get_preset(preset).arch})


@pytest.mark.slow
def test_resume_with_other_data_continues_the_base(family):
    base = read_config(family["base"])
    for name, style in (("a", "newman"), ("b", "davis")):
        config = read_config(family[name])
        assert config["train_config"]["data"] == str(family["stores"][style])
        assert config["stats"]["kimg"] == pytest.approx(0.064)  # counters went on from 0.032
        assert base["stats"]["kimg"] == pytest.approx(0.032)
    G_base, G_a = load_generator(family["base"]), load_generator(family["a"])
    assert not torch.equal(G_base.synthesis.b16.conv1.weight, G_a.synthesis.b16.conv1.weight)


def test_crossover_is_exact_outside_the_band_and_logistic_inside():
    assert layer_position("synthesis.b8.conv0.weight") == pytest.approx(3 - 2 / 3)
    assert layer_position("synthesis.b8.torgb.affine.bias") == pytest.approx(3.0)
    assert layer_position("mapping.fc0.weight") is None
    # The canvas texture is finer than every block: it comes from B past any swap.
    assert share_of_b(layer_position("synthesis.canvas.texture"), 32, 1.0) == 1.0
    shares = [share_of_b(p, 8, 1.0) for p in (2.0, 3.0, 3 + 1 / 3, 3.5, 3 + 2 / 3, 4.0, 5.0)]
    assert shares[:2] == [0.0, 0.0] and shares[-2:] == [1.0, 1.0]
    assert shares[3] == pytest.approx(0.5)
    assert shares[2] == pytest.approx(1 - shares[4])  # symmetric S
    assert all(a < b for a, b in itertools.pairwise(shares[1:-1]))
    assert share_of_b(3.01, 8, 0.0) == 1.0  # width 0: the paper's hard swap


@pytest.mark.slow
def test_blended_weights_are_a_coarse_b_fine_and_mixed_between(family, tmp_path):
    out = blend_snapshots(family["a"], family["b"], tmp_path / "blend", swap_resolution=4,
                          crossover_width=1.0)
    G_a, G_b, G = (load_generator(p) for p in (family["a"], family["b"], out))
    sa, sb, s = G_a.state_dict(), G_b.state_dict(), G.state_dict()
    table = read_config(out)["blend"]["share_of_b"]
    assert table == crossover_table(s.keys(), 16, 4, 1.0)
    assert table["b4.conv1"] == 0.0 and table["b4.torgb"] == 0.0
    assert 0 < table["b8.conv0"] < table["b8.conv1"] < 1 and table["b8.torgb"] == 1.0
    assert table["b16.conv0"] == table["b16.torgb"] == 1.0
    mixed = 0
    for key in s:
        position = layer_position(key)
        if position is None:  # mapping network and w_avg: A's
            assert torch.equal(s[key], sa[key]), key
            continue
        share = share_of_b(position, 4, 1.0)
        if share == 0:
            assert torch.equal(s[key], sa[key]), key
        elif share == 1:
            assert torch.equal(s[key], sb[key]), key
        else:
            torch.testing.assert_close(s[key], sa[key] + share * (sb[key] - sa[key]))
            mixed += not torch.equal(sa[key], sb[key])
    assert mixed > 0  # the fine-tuning did move the crossover layers apart


@pytest.mark.slow
def test_blend_renders_and_differs_from_both_parents(family, tmp_path):
    out = tmp_path / "blend"
    assert main([str(family["root"] / "a"), str(family["root"] / "b"), "--out", str(out),
                 "--swap-resolution", "8", "--crossover-width", "0"]) == 0
    assert generate_main([str(out), "--seeds", "0-3", "--out", str(tmp_path / "img")]) == 0
    images = {}
    for name, path in (("a", family["a"]), ("b", family["b"]), ("blend", out)):
        assert generate_main([str(path), "--seeds", "5", "--out", str(tmp_path / name)]) == 0
        images[name] = np.asarray(Image.open(tmp_path / name / "seed0005.png"), np.int16)
    assert images["blend"].shape == (16, 16, 3)
    assert np.abs(images["blend"] - images["a"]).mean() > 0
    assert np.abs(images["blend"] - images["b"]).mean() > 0
    # The non-EMA generator is blended too, and the snapshot records its sources.
    load_generator(out, ema=False)
    blend = json.loads((out / "config.json").read_text())["blend"]
    assert blend["a"]["path"] == str(family["a"]) and len(blend["b"]["weights_sha256"]) == 64
    assert blend["swap_resolution"] == 8 and blend["mapping"] == "a"


@pytest.mark.slow
def test_mapping_can_come_from_b(family, tmp_path):
    out = blend_snapshots(family["a"], family["b"], tmp_path / "blend", swap_resolution=8,
                          mapping="b")
    G, G_b = load_generator(out), load_generator(family["b"])
    assert torch.equal(G.mapping.fc0.weight, G_b.mapping.fc0.weight)
    assert torch.equal(G.mapping.w_avg, G_b.mapping.w_avg)


@pytest.mark.slow
def test_common_base_is_recognised_and_a_stranger_is_warned_about(family, tmp_path, caplog):
    related = base_similarity(load_generator(family["a"]).state_dict(),
                              load_generator(family["b"]).state_dict())
    assert related["mapping"] > 0.99 and related["synthesis"] > 0.9
    stranger = _save_untrained(tmp_path / "stranger", "tiny", seed=123)
    with caplog.at_level(logging.WARNING, logger="gan.blend"):
        out = blend_snapshots(family["a"], stranger, tmp_path / "blend", swap_resolution=8)
    assert "do not look fine-tuned from a common base" in caplog.text
    assert read_config(out)["blend"]["similarity"]["mapping"] < 0.5
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="gan.blend"):
        blend_snapshots(family["a"], family["b"], tmp_path / "blend2", swap_resolution=8)
    assert "common base" not in caplog.text


@pytest.mark.slow
def test_other_architectures_and_dcgan_are_refused(family, tmp_path, capsys):
    tiny32 = _save_untrained(tmp_path / "tiny32", "tiny32", seed=0)
    with pytest.raises(NeuropaintError, match=r"do not share an architecture: "
                       r"config\.img_resolution: 16 \(A\) vs 32 \(B\)"):
        blend_snapshots(family["a"], tiny32, tmp_path / "x", swap_resolution=8)
    dcgan = _save_untrained(tmp_path / "dcgan", "dcgan_tiny", seed=0)
    code = run_cli(main, [str(dcgan), str(family["a"]), "--out", str(tmp_path / "y"),
                          "--swap-resolution", "8"])
    err = capsys.readouterr().err
    assert code == 2 and "A is a DCGANGenerator" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


@pytest.mark.slow
def test_bad_settings_are_one_line_errors(family, tmp_path, capsys):
    args = [str(family["a"]), str(family["b"]), "--out", str(tmp_path / "z")]
    assert run_cli(main, [*args, "--swap-resolution", "16"]) == 2  # the output resolution
    assert "'--swap-resolution' must be one of [4, 8]" in capsys.readouterr().err
    assert run_cli(main, [*args, "--swap-resolution", "8", "--crossover-width", "-1"]) == 2
    assert "'crossover_width'" in capsys.readouterr().err
    assert run_cli(main, [str(tmp_path / "missing"), str(family["b"]), "--out",
                          str(tmp_path / "z")]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
    with pytest.raises(NeuropaintError, match="'mapping'"):
        build_config(BlendConfig, mapping="c")
    assert not (tmp_path / "z").exists()
