"""gan.networks: StyleGAN2 mapping, synthesis, generator and discriminator.

Tiny widths (channel_base 512-1024, channel_max 32-64) at 16-64 px keep every test fast; the
parameter-count check builds the real 256 px config-F networks once.
"""

from __future__ import annotations

import json

import pytest
import torch

from gan.networks import (
    Discriminator,
    Generator,
    MappingNetwork,
    SynthesisNetwork,
    channels_per_resolution,
    count_parameters,
)
from neuropaint.validate import NeuropaintError

TINY = dict(channel_base=512, channel_max=32)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def tiny_generator(res=16, c_dim=0, **mapping):
    return Generator(
        z_dim=32,
        c_dim=c_dim,
        w_dim=32,
        img_resolution=res,
        img_channels=3,
        mapping_kwargs=dict(num_layers=2, **mapping),
        synthesis_kwargs=TINY,
    )


def tiny_discriminator(res=16, c_dim=0, **kwargs):
    return Discriminator(
        c_dim=c_dim,
        img_resolution=res,
        img_channels=3,
        **TINY,
        mapping_kwargs=dict(num_layers=2),
        **kwargs,
    )


def _randomise_noise_strengths(G):
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.5)


# -- fidelity -------------------------------------------------------------------------------------


def test_parameter_counts_match_the_original_config_f_at_256px():
    G = Generator(
        z_dim=512,
        c_dim=0,
        w_dim=512,
        img_resolution=256,
        img_channels=3,
        mapping_kwargs=dict(num_layers=8),
        synthesis_kwargs=dict(channel_base=16384, channel_max=512),
    )
    D = Discriminator(
        c_dim=0, img_resolution=256, img_channels=3, channel_base=16384, channel_max=512
    )
    assert count_parameters(G) == 24_767_458
    assert count_parameters(D) == 24_001_089
    assert G.num_ws == 14
    names = dict(G.named_parameters())
    for key in (
        "mapping.fc0.weight",
        "mapping.fc7.bias",
        "synthesis.b4.const",
        "synthesis.b64.conv1.weight",
        "synthesis.b256.conv0.affine.weight",
        "synthesis.b256.torgb.weight",
        "synthesis.b8.conv0.noise_strength",
    ):
        assert key in names
    buffers = dict(G.named_buffers())
    assert "mapping.w_avg" in buffers and "synthesis.b32.conv1.noise_const" in buffers
    assert {
        "b256.fromrgb.weight",
        "b256.skip.weight",
        "b8.conv1.weight",
        "b4.fc.weight",
        "b4.out.weight",
    } <= set(dict(D.named_parameters()))
    assert "b128.fromrgb.weight" not in dict(D.named_parameters())  # resnet: fromRGB on top only


def test_channels_follow_base_over_resolution_capped_at_max():
    assert channels_per_resolution(256, 16384, 512) == {
        4: 512,
        8: 512,
        16: 512,
        32: 512,
        64: 256,
        128: 128,
        256: 64,
    }


# -- mapping --------------------------------------------------------------------------------------


def test_truncation_psi_zero_gives_w_avg_and_one_leaves_w_alone():
    M = MappingNetwork(z_dim=16, c_dim=0, w_dim=8, num_ws=5, num_layers=2)
    with torch.no_grad():
        M.w_avg.normal_()
    z = torch.randn(3, 16)
    ws = M(z, truncation_psi=0)
    assert ws.shape == (3, 5, 8)
    torch.testing.assert_close(ws, M.w_avg.expand(3, 5, 8))
    plain = M(z)
    half = M(z, truncation_psi=0.5)
    torch.testing.assert_close(half, M.w_avg + 0.5 * (plain - M.w_avg))
    assert torch.equal(plain[:, 0], plain[:, 4])  # one w broadcast to every layer


def test_truncation_cutoff_applies_to_the_first_ws_only():
    M = MappingNetwork(z_dim=16, c_dim=0, w_dim=8, num_ws=6, num_layers=2)
    with torch.no_grad():
        M.w_avg.normal_()
    z = torch.randn(2, 16)
    plain = M(z)
    ws = M(z, truncation_psi=0, truncation_cutoff=2)
    torch.testing.assert_close(ws[:, :2], M.w_avg.expand(2, 2, 8))
    torch.testing.assert_close(ws[:, 2:], plain[:, 2:])


def test_w_avg_moves_toward_the_batch_mean_only_with_update_emas():
    M = MappingNetwork(z_dim=16, c_dim=0, w_dim=8, num_ws=2, num_layers=2, w_avg_beta=0.9)
    z = torch.randn(64, 16)
    M(z)
    assert torch.count_nonzero(M.w_avg) == 0
    w = M(z, update_emas=True)[:, 0]
    torch.testing.assert_close(M.w_avg, 0.1 * w.mean(dim=0))
    before = M.w_avg.clone()
    M(z, update_emas=True)
    assert (M.w_avg - w.mean(dim=0)).norm() < (before - w.mean(dim=0)).norm()


def test_mapping_normalises_z_and_embeds_the_label():
    M = MappingNetwork(z_dim=16, c_dim=4, w_dim=8, num_ws=3, num_layers=2)
    z = torch.randn(2, 16)
    c = torch.eye(4)[:2]
    torch.testing.assert_close(M(z, c), M(10 * z, c))  # 2nd-moment normalisation of z
    torch.testing.assert_close(M(z, c), M(z, 3 * c))  # ...and of the embedded label
    assert not torch.allclose(M(z, c), M(z, c.flip(0)))
    assert "embed.weight" in dict(M.named_parameters())
    with pytest.raises(
        NeuropaintError, match=r"'c' is required: this network is conditioned \(c_dim=4\)"
    ):
        M(z)


# -- synthesis ------------------------------------------------------------------------------------


@pytest.mark.parametrize("res", [16, 32, 64])
def test_synthesis_renders_the_right_shape_with_2log2res_minus_2_ws(res):
    S = SynthesisNetwork(w_dim=32, img_resolution=res, img_channels=3, **TINY)
    log2 = res.bit_length() - 1
    assert S.num_ws == 2 * log2 - 2
    img = S(torch.randn(2, S.num_ws, 32))
    assert img.shape == (2, 3, res, res) and img.dtype == torch.float32
    assert torch.isfinite(img).all()
    assert [n for n, _ in S.named_children()] == [f"b{2**i}" for i in range(2, log2 + 1)]


def test_noise_modes_const_is_deterministic_random_differs_none_removes_it():
    G = tiny_generator()
    _randomise_noise_strengths(G)
    ws = G.mapping(torch.randn(2, 32))
    const = G.synthesis(ws, noise_mode="const")
    torch.testing.assert_close(const, G.synthesis(ws, noise_mode="const"), atol=0, rtol=0)
    assert not torch.allclose(
        G.synthesis(ws, noise_mode="random"), G.synthesis(ws, noise_mode="random")
    )
    none = G.synthesis(ws, noise_mode="none")
    torch.testing.assert_close(none, G.synthesis(ws, noise_mode="none"), atol=0, rtol=0)
    assert not torch.allclose(none, const)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.zero_()
    torch.testing.assert_close(
        G.synthesis(ws, noise_mode="random"), G.synthesis(ws, noise_mode="none")
    )
    with pytest.raises(
        NeuropaintError, match="'noise_mode' must be one of 'random', 'const', 'none'"
    ):
        G.synthesis(ws, noise_mode="off")


@pytest.mark.parametrize("res", [16, 32])
def test_generator_fast_paths_match_the_reference(res):
    G = tiny_generator(res)
    _randomise_noise_strengths(G)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith(".bias") and "synthesis" in name:
                p.normal_(0, 0.1)
        ws = G.mapping(torch.randn(3, 32))
        ref = G.synthesis(ws, noise_mode="const", reference=True)
        for fused in (True, False, None):
            fast = G.synthesis(ws, noise_mode="const", fused_modconv=fused)
            torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-5)
        one = G.synthesis(ws[:1], noise_mode="const")
        torch.testing.assert_close(one, ref[:1], atol=1e-5, rtol=1e-5)


def test_batches_split_per_sample_from_the_first_block_still_match_the_reference():
    S = SynthesisNetwork(
        w_dim=8, img_resolution=16, img_channels=3, channel_base=512, channel_max=2
    ).eval()
    assert S.b4.per_sample_is_faster()  # tiny weights: every block runs one sample at a time
    ws = torch.randn(3, S.num_ws, 8)
    with torch.no_grad():
        ref = S(ws, noise_mode="const", reference=True)
        torch.testing.assert_close(S(ws, noise_mode="const"), ref, atol=1e-5, rtol=1e-5)
    # Training mode runs every block batched, and matches too, with its gradients.
    S.train()
    ws.requires_grad_(True)
    batched = S(ws, noise_mode="const")
    torch.testing.assert_close(batched, ref, atol=1e-5, rtol=1e-5)
    S.per_sample_in_training = True
    split = S(ws, noise_mode="const")
    torch.testing.assert_close(split, ref, atol=1e-5, rtol=1e-5)
    (g_batched,) = torch.autograd.grad(batched.square().sum(), ws)
    (g_split,) = torch.autograd.grad(split.square().sum(), ws)
    torch.testing.assert_close(g_batched, g_split, atol=1e-5, rtol=1e-4)


def test_cached_rendering_weights_follow_load_state_dict_and_optimiser_steps():
    G = tiny_generator(32).eval()
    other = tiny_generator(32).eval()
    ws = G.mapping(torch.randn(2, 32)).detach()
    with torch.no_grad():
        G.synthesis(ws[:1], noise_mode="const")  # fills the caches
        G.load_state_dict(other.state_dict())
        torch.testing.assert_close(
            G.synthesis(ws[:1], noise_mode="const"), other.synthesis(ws[:1], noise_mode="const")
        )
    opt = torch.optim.SGD(G.parameters(), lr=0.1)
    G.synthesis(ws, noise_mode="const").square().mean().backward()
    opt.step()
    for edit in ("optimiser step", ".data write"):
        if edit == ".data write":  # invisible to the version counter, after a cached render
            for p in G.parameters():
                p.data.add_(torch.randn_like(p) * 0.1)
        with torch.no_grad():
            after = G.synthesis(ws[:1], noise_mode="const")
            ref = G.synthesis(ws[:1], noise_mode="const", reference=True)
            torch.testing.assert_close(after, ref, atol=1e-5, rtol=1e-5, msg=edit)


def test_generator_end_to_end_with_truncation_and_conditioning():
    G = tiny_generator(c_dim=3)
    z = torch.randn(2, 32)
    c = torch.eye(3)[:2]
    img = G(z, c, truncation_psi=0.7, truncation_cutoff=4, noise_mode="const")
    assert img.shape == (2, 3, 16, 16)
    assert not torch.allclose(img, G(z, c.flip(0), truncation_psi=0.7, noise_mode="const"))
    for attr, value in dict(
        z_dim=32, c_dim=3, w_dim=32, img_resolution=16, img_channels=3, num_ws=6
    ).items():
        assert getattr(G, attr) == value


# -- discriminator --------------------------------------------------------------------------------


def test_discriminator_shapes_features_and_reference():
    D = tiny_discriminator(32)
    img = torch.randn(5, 3, 32, 32)  # 5 is not a multiple of the group size: still works
    logits = D(img)
    assert logits.shape == (5, 1)
    logits2, features = D(img, return_features=True)
    torch.testing.assert_close(logits, logits2)
    assert features.shape == (5, channels_per_resolution(32, **TINY)[4])
    torch.testing.assert_close(logits, D(img, reference=True), atol=1e-5, rtol=1e-5)
    with pytest.raises(
        NeuropaintError, match=r"'img' must have shape \[\*, 3, 32, 32\], got \[5, 3, 16, 16\]"
    ):
        D(torch.zeros(5, 3, 16, 16))


def test_minibatch_stddev_is_the_only_path_between_samples():
    img = torch.randn(4, 3, 16, 16)
    other = img.clone()
    other[1] = torch.randn(3, 16, 16) * 5
    with_mbstd = tiny_discriminator()
    assert not torch.allclose(with_mbstd(img)[0], with_mbstd(other)[0])
    without = tiny_discriminator(mbstd_num_channels=0)
    torch.testing.assert_close(without(img)[0], without(other)[0])


def test_conditioning_by_projection_changes_the_logits():
    D = tiny_discriminator(c_dim=4)
    assert D.cmap_dim == channels_per_resolution(16, **TINY)[4]
    assert "mapping.embed.weight" in dict(D.named_parameters())
    img = torch.randn(2, 3, 16, 16)
    c = torch.eye(4)[:2]
    assert not torch.allclose(D(img, c), D(img, c.flip(0)))
    with pytest.raises(NeuropaintError, match="'c' is required"):
        D(img)
    with pytest.raises(NeuropaintError, match=r"unconditioned \(c_dim=0\)"):
        tiny_discriminator()(img, c)


# -- training plumbing ----------------------------------------------------------------------------


def test_gradients_reach_every_parameter_of_g_and_d_in_one_backward():
    G = tiny_generator(c_dim=2)
    D = tiny_discriminator(c_dim=2)
    G.train()
    z = torch.randn(4, 32)
    c = torch.eye(2)[[0, 1, 0, 1]]
    logits = D(G(z, c), c)
    logits.sum().backward()
    for net in (G, D):
        for name, p in net.named_parameters():
            assert p.grad is not None and torch.count_nonzero(p.grad) > 0, name


def test_init_kwargs_are_json_and_rebuild_the_same_network():
    for net in (
        tiny_generator(32, c_dim=2),
        tiny_discriminator(32, c_dim=2),
        SynthesisNetwork(w_dim=8, img_resolution=16, img_channels=1, **TINY),
        MappingNetwork(z_dim=4, c_dim=0, w_dim=8, num_ws=3),
    ):
        config = json.loads(json.dumps(net.init_kwargs))
        twin = type(net)(**config)
        assert list(twin.state_dict()) == list(net.state_dict())
        twin.load_state_dict(net.state_dict())
        for (name, a), (_, b) in zip(
            net.state_dict().items(), twin.state_dict().items(), strict=True
        ):
            assert torch.equal(a, b), name
    G = tiny_generator()
    twin = Generator(**G.init_kwargs)
    twin.load_state_dict(G.state_dict())
    z = torch.randn(2, 32)
    torch.testing.assert_close(twin(z, noise_mode="const"), G(z, noise_mode="const"))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: tiny_generator(res=48),
            r"'img_resolution' must be a power of two from 16 to 1024, got 48\.",
        ),
        (
            lambda: tiny_generator(res=8),
            r"'img_resolution' must be a power of two from 16 to 1024, got 8\.",
        ),
        (
            lambda: tiny_discriminator(res=2048),
            r"'img_resolution' must be a power of two from 16 to 1024",
        ),
        (lambda: Generator(-1, 0, 8, 16, 3), r"'z_dim' must be an integer >= 1, got -1\."),
        (lambda: Generator(8, -2, 8, 16, 3), r"'c_dim' must be an integer >= 0, got -2\."),
        (lambda: Generator(8, 0, 0, 16, 3), r"'w_dim' must be an integer >= 1, got 0\."),
        (lambda: Generator(8, 0, 8, 16, 0), r"'img_channels' must be an integer >= 1, got 0\."),
        (lambda: Discriminator(-1, 16, 3), r"'c_dim' must be an integer >= 0, got -1\."),
        (
            lambda: SynthesisNetwork(8, 64, 3, channel_base=32),
            r"'channel_base' must be at least img_resolution \(64\)",
        ),
        (
            lambda: Generator(8, 0, 8, 16, 3, mapping_kwargs=dict(depth=3)),
            r"'mapping_kwargs' has unknown arguments \['depth'\]",
        ),
        (
            lambda: Generator(8, 0, 8, 16, 3, synthesis_kwargs=dict(w_dim=3)),
            r"'synthesis_kwargs' must not set 'w_dim'",
        ),
        (lambda: MappingNetwork(0, 0, 8, 2), r"'z_dim' and 'c_dim' cannot both be 0"),
        (
            lambda: MappingNetwork(4, 0, 8, 2, num_layers=0),
            r"'num_layers' must be an integer >= 1, got 0\.",
        ),
        (
            lambda: SynthesisNetwork(8, 16, 3, conv_clamp=-1),
            r"'conv_clamp' must be a positive number, got -1\.",
        ),
    ],
)
def test_bad_arguments_give_one_line_errors(build, message):
    with pytest.raises(NeuropaintError, match=message):
        build()


def test_bad_inputs_give_one_line_errors():
    G = tiny_generator()
    with pytest.raises(
        NeuropaintError, match=r"'ws' must have shape \[\*, 6, 32\], got \[2, 5, 32\]\."
    ):
        G.synthesis(torch.zeros(2, 5, 32))
    with pytest.raises(NeuropaintError, match=r"'z' must have shape \[\*, 32\], got \[2, 16\]\."):
        G(torch.zeros(2, 16))
    with pytest.raises(
        NeuropaintError, match=r"'truncation_cutoff' must be an integer >= 0, got -1\."
    ):
        G(torch.zeros(2, 32), truncation_psi=0.5, truncation_cutoff=-1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16 blocks run only on CUDA")
def test_fp16_blocks_with_conv_clamp_stay_close_to_fp32_on_cuda():
    G = Generator(
        32, 0, 32, 32, 3, synthesis_kwargs=dict(**TINY, num_fp16_res=2, conv_clamp=256)
    ).cuda()
    D = Discriminator(0, 32, 3, **TINY, num_fp16_res=2, conv_clamp=256).cuda()
    ws = G.mapping(torch.randn(4, 32, device="cuda"))
    img = G.synthesis(ws, noise_mode="const")
    ref = G.synthesis(ws, noise_mode="const", force_fp32=True)
    assert img.dtype == torch.float32
    assert (img - ref).abs().max().item() < 0.05 * ref.abs().max().item() + 1e-3
    logits = D(img)
    assert (
        logits - D(img, force_fp32=True)
    ).abs().max().item() < 0.05 * logits.abs().max().item() + 1e-2


def test_canvas_texture_stays_put_shades_the_paint_and_is_recorded_only_when_used():
    plain = SynthesisNetwork(w_dim=8, img_resolution=16, img_channels=3, **TINY)
    assert "canvas_channels" not in plain.init_kwargs  # older configs stay equal
    canvas = SynthesisNetwork(w_dim=8, img_resolution=16, img_channels=3, canvas_channels=2,
                              **TINY)
    assert canvas.init_kwargs["canvas_channels"] == 2
    missing, _ = canvas.load_state_dict(plain.state_dict(), strict=False)
    assert sorted(missing) == ["canvas.affine.bias", "canvas.affine.weight", "canvas.texture",
                               "canvas.weight"]
    ws = torch.randn(2, plain.num_ws, 8)
    # Blank, it paints what the network without it paints.
    torch.testing.assert_close(canvas(ws, noise_mode="const"), plain(ws, noise_mode="const"),
                               rtol=0, atol=0)
    with torch.no_grad():
        canvas.canvas.texture.normal_()
    other = ws.clone()
    other[:, :-1] = torch.randn(2, plain.num_ws - 1, 8)  # new paint, the same last w
    img_a, img_b = plain(ws, noise_mode="const"), plain(other, noise_mode="const")
    # It shades brightness, img + (img + 1) * relief, with one relief under both paintings.
    relief_a = (canvas(ws, noise_mode="const") - img_a) / (img_a + 1)
    relief_b = (canvas(other, noise_mode="const") - img_b) / (img_b + 1)
    keep = ((img_a + 1).abs() > 0.05) & ((img_b + 1).abs() > 0.05)
    torch.testing.assert_close(relief_a[keep], relief_b[keep], rtol=1e-3, atol=1e-4)
    with pytest.raises(NeuropaintError, match="canvas_channels"):
        SynthesisNetwork(w_dim=8, img_resolution=16, img_channels=3, canvas_channels=-1, **TINY)


def test_a_tiled_canvas_texture_repeats_its_tile_over_the_image():
    tiled = SynthesisNetwork(w_dim=8, img_resolution=16, img_channels=3, canvas_channels=2,
                             canvas_period=4, **TINY)
    assert tiled.canvas.texture.shape == (2, 4, 4)
    assert tiled.init_kwargs["canvas_period"] == 4
    with torch.no_grad():
        tiled.canvas.texture.normal_()
        # On mid-grey (0) the shading is the relief itself.
        relief = tiled.canvas(torch.zeros(1, 3, 16, 16), torch.randn(1, 8))
    assert relief.abs().sum() > 0
    torch.testing.assert_close(relief[..., :4, :4], relief[..., 8:12, 4:8], rtol=0, atol=0)
    with pytest.raises(NeuropaintError, match="'canvas_period' must divide the resolution 16"):
        SynthesisNetwork(w_dim=8, img_resolution=16, img_channels=3, canvas_channels=2,
                         canvas_period=5, **TINY)
