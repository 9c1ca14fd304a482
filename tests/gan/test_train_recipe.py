"""gan.train's CPU step recipe: reused fakes, a lighter D, and presets that change over time."""

from __future__ import annotations

import logging

import pytest
import torch
from safetensors.torch import load_file

from gan.checkpoint import load_network, load_state, read_config, resolve_snapshot
from gan.presets import get_preset
from gan.train import TrainConfig, Trainer
from neuropaint.validate import NeuropaintError

REUSE = get_preset("tiny", reuse_fakes=True)


def _config(store, out, **kwargs) -> TrainConfig:
    values = {"data": str(store), "out": str(out), "preset": "tiny", "kimg": 0.064,
              "snapshot_kimg": 0.032, "tick_kimg": 0.016, "device": "cpu", "aug_p": 0.1}
    values.update(kwargs)
    return TrainConfig(**values)


def _synthesis_calls(trainer: Trainer) -> int:
    calls = []
    handle = trainer.G.synthesis.register_forward_hook(lambda *_: calls.append(1))
    try:
        trainer.train_step()
    finally:
        handle.remove()
    return len(calls)


def test_reused_fakes_save_a_generator_pass_and_still_track_w(paintings_store, tmp_path):
    fresh = Trainer(_config(paintings_store, tmp_path / "fresh"))
    reuse = Trainer(_config(paintings_store, tmp_path / "reuse"), preset=REUSE)
    assert _synthesis_calls(fresh) == 2 and _synthesis_calls(reuse) == 1
    before = reuse.G.mapping.w_avg.clone()
    reuse.train_step()
    assert not torch.equal(before, reuse.G.mapping.w_avg)  # the running mean of w learns
    stats = reuse.train_step()
    assert all(torch.isfinite(torch.tensor(v)) for v in stats.values())


def test_reused_fakes_resume_exactly(paintings_store, tmp_path):
    full = tmp_path / "full"
    Trainer(_config(paintings_store, full), preset=REUSE).train()
    half = tmp_path / "half"
    Trainer(_config(paintings_store, half, kimg=0.032), preset=REUSE).train()
    # Resumed without naming the recipe: the snapshot's recorded preset carries it.
    resumed = Trainer(_config(paintings_store, half, resume="auto"))
    assert resumed.preset.reuse_fakes
    resumed.train()
    assert load_state(full)["nimg"] == load_state(half)["nimg"] == 64
    for name in ("G", "D", "G_ema"):
        a = load_file(str(resolve_snapshot(full) / f"{name}.safetensors"))
        b = load_file(str(resolve_snapshot(half) / f"{name}.safetensors"))
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=f"{name}.{key}")


def test_a_resumed_run_keeps_the_preset_it_began_with(paintings_store, tmp_path, caplog):
    """A preset edited since a run began (its D made lighter, say) must not break the run."""
    run = tmp_path / "run"
    wide = get_preset("tiny", d_channel_base=512)
    Trainer(_config(paintings_store, run, kimg=0.016, snapshot_kimg=0.016), preset=wide).train()
    with caplog.at_level(logging.INFO, logger="gan.train"):
        resumed = Trainer(_config(paintings_store, run, kimg=0.032, resume="auto"))
    assert resumed.preset == wide and resumed.counters.nimg == 16
    assert "resuming with preset 'tiny' as this run began (today's differs in " \
           "d_channel_base)" in caplog.text
    resumed.train()
    assert read_config(run)["preset"]["d_channel_base"] == 512


def _init_from_a_short_base(store, tmp_path, preset, caplog, level):
    """(the base run, a Trainer with ``preset`` initialised from it into tmp_path/tuned)."""
    base = tmp_path / "base"
    Trainer(_config(store, base, kimg=0.016, snapshot_kimg=0.016)).train()
    with caplog.at_level(level, logger="gan.train"):
        tuned = Trainer(_config(store, tmp_path / "tuned", init=str(base)), preset=preset)
    return base, tuned


def test_init_from_a_base_with_another_discriminator_starts_it_fresh(paintings_store, tmp_path,
                                                                     caplog):
    base, tuned = _init_from_a_short_base(paintings_store, tmp_path,
                                          get_preset("tiny", d_channel_base=128), caplog,
                                          logging.WARNING)
    assert "has a discriminator of another shape than preset 'tiny' builds: D starts " \
           "fresh" in caplog.text
    saved_G = load_network(base, "G").state_dict()
    for key, value in tuned.G.state_dict().items():
        torch.testing.assert_close(value, saved_G[key], rtol=0, atol=0)
    assert sum(p.numel() for p in tuned.D.parameters()) < sum(
        p.numel() for p in load_network(base, "D").parameters())
    tuned.train_step()


def test_resume_with_a_lower_rate_anneals_the_run_and_keeps_its_optimiser_state(
        paintings_store, tmp_path, caplog):
    run = tmp_path / "run"
    Trainer(_config(paintings_store, run, kimg=0.016, snapshot_kimg=0.016)).train()
    preset = get_preset("tiny")
    saved_moments = load_state(run)["G_opt"]["state"]
    with caplog.at_level(logging.INFO, logger="gan.train"):
        annealed = Trainer(_config(paintings_store, run, kimg=0.032, resume="auto",
                                   lr=preset.g_lr / 4, ema_kimg=preset.ema_kimg * 5))
    assert f"learning rate now G {preset.g_lr / 4:g}, D {preset.d_lr / 4:g}" in caplog.text
    # Lazy regularisation scales each rate (StyleGAN2 appendix B), as for a fresh run.
    g_ratio = preset.pl_interval / (preset.pl_interval + 1) if preset.pl_weight else 1.0
    d_ratio = preset.r1_interval / (preset.r1_interval + 1) if preset.r1_gamma else 1.0
    assert annealed.G_opt.param_groups[0]["lr"] == pytest.approx(preset.g_lr / 4 * g_ratio)
    assert annealed.D_opt.param_groups[0]["lr"] == pytest.approx(preset.d_lr / 4 * d_ratio)
    # Adam's moments came back from the snapshot: only the rate changed.
    moments = annealed.G_opt.state_dict()["state"]
    torch.testing.assert_close(moments[0]["exp_avg"], saved_moments[0]["exp_avg"])
    assert annealed.preset.ema_kimg == preset.ema_kimg * 5
    annealed.train()
    # The snapshot records the annealed rate, so a plain --resume auto goes on with it.
    assert read_config(run)["preset"]["g_lr"] == pytest.approx(preset.g_lr / 4)
    again = Trainer(_config(paintings_store, run, kimg=0.048, resume="auto"))
    assert again.G_opt.param_groups[0]["lr"] == pytest.approx(preset.g_lr / 4 * g_ratio)


def test_init_grows_a_canvas_texture_that_starts_blank_and_learns(paintings_store, tmp_path,
                                                                  caplog):
    """A painter trained without a canvas texture seeds one with it: same images at first."""
    base, grown = _init_from_a_short_base(paintings_store, tmp_path,
                                          get_preset("tiny", canvas_channels=2, canvas_period=8),
                                          caplog,
                                          logging.INFO)
    assert "has no canvas texture: G_ema starts with a blank one" in caplog.text
    saved_G = load_network(base, "G_ema").eval()
    z = torch.randn(3, saved_G.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(grown.G_ema.eval()(z, None, noise_mode="const"),
                                   saved_G(z, None, noise_mode="const"), rtol=0, atol=0)
    grown.train_step()
    assert grown.G.synthesis.canvas.texture.abs().sum() > 0  # training fills it in
    # A resume keeps it; a generator with a texture does not load into one without.
    grown.train()
    resumed = Trainer(_config(paintings_store, tmp_path / "tuned", kimg=0.096, resume="auto"))
    assert resumed.preset.canvas_channels == 2
    with pytest.raises(NeuropaintError, match="holds a different G"):
        Trainer(_config(paintings_store, tmp_path / "shrunk", init=str(tmp_path / "tuned")))
