"""The seeds' DCGAN: shapes at every resolution, the seeds' batch-norm variants, the logit and
"validity" contract, rebuild from ``init_kwargs``, and real learning on a fixed batch."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from gan.dcgan import DCGANDiscriminator, DCGANGenerator
from neuropaint.validate import NeuropaintError

BN_VARIANTS = [(False, False), (True, False), (False, True), (True, True)]


@pytest.mark.parametrize("resolution", [16, 32, 64, 128])
def test_generator_and_discriminator_shapes_at_every_resolution(resolution):
    torch.manual_seed(0)
    G = DCGANGenerator(z_dim=16, img_resolution=resolution, base_channels=32)
    D = DCGANDiscriminator(img_resolution=resolution, base_channels=8)
    img = G(torch.randn(3, 16))
    assert img.shape == (3, 3, resolution, resolution)
    assert img.dtype == torch.float32
    assert img.abs().max() <= 1.0  # tanh output
    logits, features = D(img, return_features=True)
    assert logits.shape == (3, 1)
    assert features.shape == (3, D.feature_dim)
    assert torch.equal(D.eval()(img), D(img))  # eval: no dropout, deterministic


def test_seed_widths_at_64_px_double_up_to_4x4x256():
    G = DCGANGenerator()  # the seeds' defaults
    assert G.fc.out_features == 4 * 4 * 256
    widths = [G.b8.conv.out_channels, G.b16.conv.out_channels, G.b32.conv.out_channels,
              G.b64.conv.out_channels]
    assert widths == [128, 64, 32, 3]
    assert all(getattr(G, f"b{r}").conv.stride == (2, 2) for r in (8, 16, 32, 64))
    D = DCGANDiscriminator()
    assert [getattr(D, f"b{r}").conv.out_channels for r in (64, 32, 16, 8)] == [64, 128, 256, 512]
    assert D.fc.in_features == 512 * 4 * 4


@pytest.mark.parametrize("kernel_size", [4, 5])
def test_both_kernel_sizes_double_and_halve_exactly(kernel_size):
    G = DCGANGenerator(z_dim=8, img_resolution=32, base_channels=16, kernel_size=kernel_size)
    D = DCGANDiscriminator(img_resolution=32, base_channels=8, kernel_size=kernel_size)
    img = G(torch.randn(2, 8))
    assert img.shape == (2, 3, 32, 32)
    assert D(img).shape == (2, 1)


def test_batch_norm_sits_where_the_paper_puts_it():
    G = DCGANGenerator(z_dim=8, img_resolution=32, base_channels=32, batch_norm=True)
    assert isinstance(G.fc_norm, torch.nn.BatchNorm2d)
    assert all(isinstance(getattr(G, f"b{r}").norm, torch.nn.BatchNorm2d) for r in (8, 16))
    assert isinstance(G.b32.norm, torch.nn.Identity)  # not on the output layer
    D = DCGANDiscriminator(img_resolution=32, base_channels=8, batch_norm=True)
    assert isinstance(D.b32.norm, torch.nn.Identity)  # not on the input layer
    assert all(isinstance(getattr(D, f"b{r}").norm, torch.nn.BatchNorm2d) for r in (16, 8))
    plain = DCGANGenerator(z_dim=8, img_resolution=32, base_channels=32)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())


def test_weights_start_from_normal_0_02():
    torch.manual_seed(0)
    G = DCGANGenerator()
    D = DCGANDiscriminator()
    for net in (G, D):
        for name, p in net.named_parameters():
            if name.endswith("weight") and p.ndim > 1:
                assert abs(p.std().item() - 0.02) < 0.004, name
                assert abs(p.mean().item()) < 0.002, name
            elif name.endswith("bias"):
                assert torch.all(p == 0), name


def test_validity_is_the_sigmoid_of_the_logit():
    torch.manual_seed(1)
    D = DCGANDiscriminator(img_resolution=16, base_channels=8).eval()
    img = torch.rand(4, 3, 16, 16) * 2 - 1
    validity = D.validity(img)
    assert validity.shape == (4, 1)
    assert torch.all((validity > 0) & (validity < 1))
    assert torch.allclose(validity, torch.sigmoid(D(img)))


def test_truncation_and_noise_arguments_are_accepted_and_ignored():
    torch.manual_seed(2)
    G = DCGANGenerator(z_dim=8, img_resolution=16, base_channels=16, batch_norm=True).eval()
    z = torch.randn(2, 8)
    same = G(z, None, truncation_psi=0.5, truncation_cutoff=4, noise_mode="const",
             update_emas=True)
    assert torch.equal(G(z), same)
    assert torch.equal(G(z, torch.zeros(2, 0)), same)  # an empty c is "no c"


@pytest.mark.parametrize(("bn_g", "bn_d"), BN_VARIANTS)
def test_init_kwargs_are_json_and_rebuild_the_same_network(bn_g, bn_d):
    torch.manual_seed(3)
    G = DCGANGenerator(z_dim=8, img_resolution=16, base_channels=16, batch_norm=bn_g,
                       kernel_size=5).eval()
    D = DCGANDiscriminator(img_resolution=16, base_channels=8, batch_norm=bn_d,
                           dropout=0.1).eval()
    G2 = DCGANGenerator(**json.loads(json.dumps(G.init_kwargs))).eval()
    D2 = DCGANDiscriminator(**json.loads(json.dumps(D.init_kwargs))).eval()
    G2.load_state_dict(G.state_dict())
    D2.load_state_dict(D.state_dict())
    z = torch.randn(2, 8)
    assert torch.equal(G(z), G2(z))
    assert torch.equal(D(G(z)), D2(G(z)))
    assert G.init_kwargs["batch_norm"] is bn_g
    assert D.init_kwargs["batch_norm"] is bn_d


def test_conditioning_vector_enters_both_networks():
    torch.manual_seed(4)
    G = DCGANGenerator(z_dim=8, img_resolution=16, base_channels=16, c_dim=3).eval()
    D = DCGANDiscriminator(img_resolution=16, base_channels=8, c_dim=3).eval()
    z = torch.randn(2, 8)
    c1 = torch.tensor([[1.0, 0.0, 0.0]] * 2)
    c2 = torch.tensor([[0.0, 1.0, 0.0]] * 2)
    assert not torch.allclose(G(z, c1), G(z, c2))
    torch.nn.init.normal_(D.embed.weight)  # make the projection term visible
    img = G(z, c1)
    assert not torch.allclose(D(img, c1), D(img, c2))
    with pytest.raises(NeuropaintError, match=r"c must be \[2, 3\]"):
        G(z)
    with pytest.raises(NeuropaintError, match="unconditional"):
        DCGANGenerator(z_dim=8, img_resolution=16, base_channels=16)(z, c1)


def test_bad_arguments_give_clear_errors():
    with pytest.raises(NeuropaintError, match="'img_resolution' must be one of 16, 32, 64, 128, "
                                              "got 48"):
        DCGANGenerator(img_resolution=48)
    with pytest.raises(NeuropaintError, match="'img_resolution' must be one of"):
        DCGANDiscriminator(img_resolution=256)
    with pytest.raises(NeuropaintError, match="'kernel_size' must be one of 4, 5, got 3"):
        DCGANGenerator(kernel_size=3)
    with pytest.raises(NeuropaintError, match="'dropout' must be a number in"):
        DCGANDiscriminator(dropout=1.0)
    G = DCGANGenerator(z_dim=8, img_resolution=16, base_channels=16)
    with pytest.raises(NeuropaintError, match=r"z must be \[N, 8\], got \[2, 7\]"):
        G(torch.randn(2, 7))
    D = DCGANDiscriminator(img_resolution=16, base_channels=8)
    with pytest.raises(NeuropaintError, match=r"images must be \[N, 3, 16, 16\]"):
        D(torch.zeros(2, 3, 32, 32))


@pytest.mark.parametrize(("bn_g", "bn_d"), BN_VARIANTS)
def test_both_networks_learn_on_a_fixed_batch(bn_g, bn_d):
    """Ten Adam steps (the DCGAN paper's beta1 0.5; lr 2e-3 instead of 2e-4, to be quick) with
    the loop's logistic loss: D learns to tell a fixed real batch from a fixed fake one, then G
    learns to fool that D. Real gradients through every layer, BN included."""
    torch.manual_seed(5)
    G = DCGANGenerator(z_dim=16, img_resolution=16, base_channels=32, batch_norm=bn_g)
    D = DCGANDiscriminator(img_resolution=16, base_channels=16, batch_norm=bn_d)
    x = torch.linspace(-1, 1, 16)
    real = torch.stack([torch.sin(3 * x)[None, :] * torch.cos(2 * x)[:, None]] * 3)  # [3, 16, 16]
    real = real.expand(8, 3, 16, 16) * torch.rand(8, 3, 1, 1)
    z = torch.randn(8, 16)
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-3, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-3, betas=(0.5, 0.999))

    def d_loss() -> torch.Tensor:
        with torch.no_grad():
            fake = G(z)
        return F.softplus(-D(real)).mean() + F.softplus(D(fake)).mean()

    def g_loss() -> torch.Tensor:
        return F.softplus(-D(G(z))).mean()

    losses_d = []
    for _ in range(10):
        loss = d_loss()
        opt_d.zero_grad()
        loss.backward()
        opt_d.step()
        losses_d.append(loss.item())
    assert losses_d[-1] < 0.75 * losses_d[0], losses_d

    D.requires_grad_(False)
    losses_g = []
    for _ in range(10):
        loss = g_loss()
        opt_g.zero_grad()
        loss.backward()
        opt_g.step()
        losses_g.append(loss.item())
    assert losses_g[-1] < 0.75 * losses_g[0], losses_g
    assert all(torch.isfinite(p).all() for p in G.parameters())
