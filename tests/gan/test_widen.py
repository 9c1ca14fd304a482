"""gan.widen: a trained discriminator grows channels and still judges as before."""

from __future__ import annotations

import logging

import pytest
import torch

from gan.checkpoint import load_network
from gan.networks import Discriminator
from gan.presets import get_preset
from gan.train import TrainConfig, Trainer
from gan.widen import widen_discriminator
from neuropaint.validate import NeuropaintError


def _pair(narrow_base=256, wide_base=512, **wide_kwargs):
    torch.manual_seed(0)
    narrow = Discriminator(0, 32, 3, channel_base=narrow_base, channel_max=64)
    wide = Discriminator(0, 32, 3, **{"channel_base": wide_base, "channel_max": 64,
                                      **wide_kwargs})
    return narrow, wide


def test_a_widened_discriminator_gives_the_same_logits_and_its_new_channels_learn():
    narrow, wide = _pair()
    widened = widen_discriminator(narrow, wide)
    assert widened == ["b32.fromrgb", "b32.conv0", "b32.conv1", "b32.skip", "b16.conv0",
                       "b16.conv1", "b16.skip", "b8.conv0", "b8.conv1", "b8.skip"]
    assert wide.b32.conv0.weight.shape[0] == 2 * narrow.b32.conv0.weight.shape[0]
    images = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(wide(images, None)[0], narrow(images, None)[0],
                               rtol=1e-5, atol=1e-6)
    # The new channels compute something, and the zero weights that hide them get gradients.
    wide(images, None)[0].sum().backward()
    old_in = narrow.b16.conv0.weight.shape[1]
    hidden = wide.b16.conv0.weight.grad[:old_in, old_in:]
    assert (wide.b16.conv0.weight[:old_in, old_in:] == 0).all() and hidden.abs().sum() > 0


@pytest.mark.parametrize(("narrow_base", "wide_base", "wide_kwargs", "message"), [
    (512, 256, {}, r"layer b32.fromrgb is narrower in the wide discriminator \(\[16, 3, 1, 1\] "
                   r"into \[8, 3, 1, 1\]\)"),
    (256, 512, {"mbstd_num_channels": 2}, r"differ in more than width: \['channel_base', "
                                          r"'mbstd_num_channels'\]"),
    (256, 512, {"channel_max": 128}, r"differ in width at 4x4 \(64 and 128 channels\)"),
])
def test_what_is_not_the_same_discriminator_with_more_channels_is_refused(
        narrow_base, wide_base, wide_kwargs, message):
    narrow, wide = _pair(narrow_base, wide_base, **wide_kwargs)
    before = {k: v.clone() for k, v in wide.state_dict().items()}
    with pytest.raises(NeuropaintError, match=message):
        widen_discriminator(narrow, wide)
    for key, value in wide.state_dict().items():  # a refusal writes nothing
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)


def test_init_widens_a_narrower_discriminator_of_the_base(paintings_store, tmp_path, caplog):
    """A preset with a wider D than its base was trained with starts from the base's D."""
    config = {"data": str(paintings_store), "preset": "tiny", "device": "cpu", "aug_p": 0.1,
              "tick_kimg": 0.016}
    base = tmp_path / "base"
    Trainer(TrainConfig(out=str(base), kimg=0.016, snapshot_kimg=0.016, **config),
            preset=get_preset("tiny", d_channel_base=128)).train()
    with caplog.at_level(logging.INFO, logger="gan.train"):
        tuned = Trainer(TrainConfig(out=str(tmp_path / "tuned"), kimg=0.032, init=str(base),
                                    **config))
    assert "is narrower than preset 'tiny' builds: widened (7 layers)" in caplog.text
    saved_D = load_network(base, "D")
    images = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(tuned.D(images, None)[0], saved_D(images, None)[0],
                                   rtol=1e-5, atol=1e-6)
    assert sum(p.numel() for p in tuned.D.parameters()) > sum(
        p.numel() for p in saved_D.parameters())
    tuned.train()
