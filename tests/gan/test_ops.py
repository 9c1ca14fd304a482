"""gan.ops: every fast op agrees with its plain reference twin; equalised learning rate."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gan.ops import (
    Conv2dLayer,
    FullyConnectedLayer,
    assert_shape,
    bias_act,
    bias_act_reference,
    conv2d_resample,
    conv2d_resample_reference,
    downsample2d,
    filter2d,
    modulated_conv2d,
    modulated_conv2d_reference,
    setup_filter,
    upfirdn2d,
    upfirdn2d_reference,
    upsample2d,
)
from neuropaint.validate import NeuropaintError

TOL = dict(atol=1e-5, rtol=1e-5)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# -- shapes and filters -------------------------------------------------------------------------


def test_assert_shape_accepts_wildcards_and_names_the_mismatch():
    assert_shape(torch.zeros(2, 3, 4), [None, 3, None])
    with pytest.raises(
        NeuropaintError, match=r"^'ws' must have shape \[\*, 14, 512\], got \[2, 12, 512\]\.$"
    ):
        assert_shape(torch.zeros(2, 12, 512), [None, 14, 512], "ws")
    with pytest.raises(NeuropaintError, match="must have shape"):
        assert_shape(torch.zeros(2, 3), [None, 3, 1])


def test_setup_filter_is_a_normalised_separable_2d_filter():
    f = setup_filter([1, 3, 3, 1])
    assert f.shape == (4, 4)
    assert f.sum().item() == pytest.approx(1.0)
    torch.testing.assert_close(f, torch.outer(f.sum(1), f.sum(0)))
    assert setup_filter([1, 2], gain=4).sum().item() == pytest.approx(4.0)
    assert setup_filter(None).tolist() == [[1.0]]
    with pytest.raises(NeuropaintError, match="'f' must be a non-empty 1-D or 2-D filter"):
        setup_filter(torch.ones(2, 2, 2))


UPFIRDN_CASES = [
    # up, down, padding, flip_filter, gain, filter
    (1, 1, [2, 1, 2, 1], False, 1.0, [1, 3, 3, 1]),
    (1, 1, [-1, 2, 0, 1], True, 2.0, [1, 2, 4, 1]),
    (2, 1, [2, 1, 2, 1], False, 4.0, [1, 3, 3, 1]),
    (2, 1, [0, 0, 0, 0], False, 4.0, [1, 3, 3, 1]),
    (2, 1, [5, 0, 1, 4], True, 4.0, [1, 2, 4, 1]),
    (1, 2, [1, 1, 1, 1], False, 1.0, [1, 3, 3, 1]),
    (1, 2, [2, 1, 0, 3], False, 1.0, [1, 2, 3]),
    (3, 1, [1, 1, 1, 1], False, 9.0, [1, 2, 2, 1]),
]


@pytest.mark.parametrize(("up", "down", "padding", "flip", "gain", "taps"), UPFIRDN_CASES)
def test_upfirdn2d_fast_matches_reference(up, down, padding, flip, gain, taps):
    x = torch.randn(2, 3, 9, 7)
    f = setup_filter(taps) if taps != [1, 2, 4, 1] else torch.rand(4, 4)  # also a non-separable one
    fast = upfirdn2d(x, f, up=up, down=down, padding=padding, flip_filter=flip, gain=gain)
    ref = upfirdn2d_reference(x, f, up=up, down=down, padding=padding, flip_filter=flip, gain=gain)
    assert fast.shape == ref.shape
    torch.testing.assert_close(fast, ref, **TOL)


def test_resampling_helpers_keep_a_flat_image_flat_and_have_the_right_sizes():
    f = setup_filter([1, 3, 3, 1])
    x = torch.full([1, 2, 8, 8], 3.0)
    up = upsample2d(x, f)
    down = downsample2d(x, f)
    same = filter2d(x, f)
    assert up.shape == (1, 2, 16, 16) and down.shape == (1, 2, 4, 4) and same.shape == x.shape
    # Away from the zero-padded border each keeps the signal's level.
    torch.testing.assert_close(up[..., 2:-2, 2:-2], torch.full_like(up[..., 2:-2, 2:-2], 3.0))
    torch.testing.assert_close(down[..., 1:-1, 1:-1], torch.full_like(down[..., 1:-1, 1:-1], 3.0))
    for op in (upsample2d, downsample2d, filter2d):
        y = torch.randn(2, 3, 8, 8)
        torch.testing.assert_close(op(y, f), op(y, f, reference=True), **TOL)


# -- convolution with resampling ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("up", "down", "k", "groups"),
    [
        (1, 1, 3, 1),
        (2, 1, 3, 1),
        (2, 1, 1, 1),
        (1, 2, 3, 1),
        (1, 2, 1, 1),
        (2, 1, 3, 2),
        (1, 2, 3, 2),
    ],
)
def test_conv2d_resample_fast_matches_reference(up, down, k, groups):
    f = setup_filter([1, 3, 3, 1])
    x = torch.randn(2, 4, 8, 8)
    w = torch.randn(6, 4 // groups, k, k)
    b = torch.randn(6)
    fast = conv2d_resample(x, w, f, up=up, down=down, padding=k // 2, groups=groups, bias=b)
    ref = conv2d_resample_reference(
        x, w, f, up=up, down=down, padding=k // 2, groups=groups, bias=b
    )
    assert fast.shape == (2, 6, 8 * up // down, 8 * up // down)
    torch.testing.assert_close(fast, ref, **TOL)


def test_conv2d_resample_rejects_up_and_down_at_once():
    with pytest.raises(NeuropaintError, match="up and down at once is not supported"):
        conv2d_resample(
            torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 3, 3), setup_filter(), up=2, down=2
        )


# -- modulated convolution ------------------------------------------------------------------------


@pytest.mark.parametrize("up", [1, 2])
@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("k", [3, 1])
def test_modulated_conv2d_fused_and_shared_forms_match_the_per_sample_reference(up, demodulate, k):
    f = setup_filter([1, 3, 3, 1])
    x = torch.randn(3, 5, 8, 8)
    w = torch.randn(7, 5, k, k)
    s = torch.randn(3, 5)
    ref = modulated_conv2d_reference(x, w, s, demodulate=demodulate, up=up, resample_filter=f)
    assert ref.shape == (3, 7, 8 * up, 8 * up)
    for fused in (True, False):
        fast = modulated_conv2d(
            x, w, s, demodulate=demodulate, up=up, resample_filter=f, fused=fused
        )
        torch.testing.assert_close(fast, ref, **TOL)
        one = modulated_conv2d(
            x[1:2], w, s[1:2], demodulate=demodulate, up=up, resample_filter=f, fused=fused
        )  # batch 1: a single plain convolution
        torch.testing.assert_close(one, ref[1:2], **TOL)


def test_modulated_conv2d_gain_bias_and_cached_weight_sq_fold_in_exactly():
    x = torch.randn(2, 4, 6, 6)
    w = torch.randn(3, 4, 3, 3)
    s = torch.randn(2, 4)
    b = torch.randn(3)
    ref = modulated_conv2d_reference(x, w, s) * 1.7 + b.view(1, -1, 1, 1)
    for fused in (True, False):
        fast = modulated_conv2d(
            x, w, s, fused=fused, gain=1.7, bias=b, weight_sq=w.square().sum(dim=[2, 3])
        )
        torch.testing.assert_close(fast, ref, **TOL)


def test_demodulation_makes_the_output_independent_of_the_style_scale():
    x = torch.randn(2, 4, 6, 6)
    w = torch.randn(3, 4, 3, 3)
    s = torch.rand(2, 4) + 0.5
    torch.testing.assert_close(modulated_conv2d(x, w, s), modulated_conv2d(x, w, 10 * s), **TOL)
    # ...and gives unit-scale outputs for unit-variance inputs (StyleGAN2, section 2.2).
    y = modulated_conv2d(
        torch.randn(8, 64, 16, 16), torch.randn(32, 64, 3, 3), torch.rand(8, 64) + 0.5
    )
    assert 0.8 < y[..., 1:-1, 1:-1].std().item() < 1.2


@pytest.mark.parametrize("fused", [True, False])
def test_modulated_conv2d_gradients_match_the_reference(fused):
    f = setup_filter([1, 3, 3, 1])
    x0 = torch.randn(2, 3, 6, 6)
    w0 = torch.randn(4, 3, 3, 3)
    s0 = torch.randn(2, 3)
    grads = []
    for op in ("ref", "fast"):
        x, w, s = (t.clone().requires_grad_() for t in (x0, w0, s0))
        if op == "ref":
            y = modulated_conv2d_reference(x, w, s, up=2, resample_filter=f)
        else:
            y = modulated_conv2d(x, w, s, up=2, resample_filter=f, fused=fused)
        (y * torch.linspace(-1, 1, y.numel()).view(y.shape)).sum().backward()
        grads.append([x.grad, w.grad, s.grad])
    for fast, ref in zip(grads[1], grads[0], strict=True):
        torch.testing.assert_close(fast, ref, **TOL)


def test_modulated_conv2d_checks_shapes():
    with pytest.raises(NeuropaintError, match=r"'styles' must have shape \[2, 4\]"):
        modulated_conv2d(torch.zeros(2, 4, 4, 4), torch.zeros(3, 4, 3, 3), torch.zeros(2, 5))
    with pytest.raises(NeuropaintError, match=r"'weight' must have shape \[O, 4, kh, kw\]"):
        modulated_conv2d(torch.zeros(2, 4, 4, 4), torch.zeros(3, 5, 3, 3), torch.zeros(2, 4))


# -- bias and activation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("act", "gain", "clamp"),
    [
        ("linear", None, None),
        ("lrelu", None, None),
        ("lrelu", 0.5, 0.3),
        ("linear", 2.0, 1.0),
    ],
)
def test_bias_act_fast_matches_reference_values_and_gradients(act, gain, clamp):
    x0 = torch.randn(3, 5, 4, 4)
    b0 = torch.randn(5)
    outs = []
    for twin in ("ref", "fast"):
        x, b = x0.clone().requires_grad_(), b0.clone().requires_grad_()
        if twin == "ref":
            y = bias_act_reference(x, b, act, gain=gain, clamp=clamp)
        else:
            y = bias_act(x * 1, b, act, gain=gain, clamp=clamp, inplace=True)  # a temporary it owns
        y.square().sum().backward()
        outs.append((y.detach(), x.grad, b.grad))
    for fast, ref in zip(outs[1], outs[0], strict=True):
        torch.testing.assert_close(fast, ref, **TOL)


def test_lrelu_default_gain_is_sqrt2_and_unknown_activations_are_refused():
    x = torch.tensor([-1.0, 2.0])
    torch.testing.assert_close(bias_act(x, act="lrelu"), torch.tensor([-0.2, 2.0]) * math.sqrt(2))
    with pytest.raises(
        NeuropaintError, match="'activation' must be one of 'linear', 'lrelu', got 'relu'"
    ):
        bias_act(x, act="relu")


# -- equalised learning rate ----------------------------------------------------------------------


def test_fully_connected_layer_stores_unit_weights_and_scales_at_run_time():
    fc = FullyConnectedLayer(256, 128, lr_multiplier=0.01, bias_init=0.5)
    stored = fc.weight.detach() * 0.01  # stored as N(0, 1) / lr_multiplier
    assert abs(stored.std().item() - 1.0) < 0.02 and abs(stored.mean().item()) < 0.02
    x = torch.randn(4, 256)
    expected = x @ (fc.weight * 0.01 / math.sqrt(256)).t() + 0.5 * 0.01
    torch.testing.assert_close(fc(x), expected, **TOL)
    act = FullyConnectedLayer(16, 8, activation="lrelu")
    x = torch.randn(4, 16)
    torch.testing.assert_close(
        act(x), F.leaky_relu(x @ (act.weight / 4).t(), 0.2) * math.sqrt(2), **TOL
    )


@pytest.mark.parametrize(("up", "down"), [(1, 1), (1, 2), (2, 1)])
def test_conv2d_layer_uses_runtime_gain_and_matches_its_reference(up, down):
    conv = Conv2dLayer(64, 8, kernel_size=3, activation="lrelu", up=up, down=down, conv_clamp=2.0)
    assert abs(conv.weight.std().item() - 1.0) < 0.05
    with torch.no_grad():
        conv.bias.normal_()
    x = torch.randn(2, 64, 8, 8)
    y = conv(x, gain=0.7)
    torch.testing.assert_close(y, conv(x, gain=0.7, reference=True), **TOL)
    assert y.shape == (2, 8, 8 * up // down, 8 * up // down)
    assert y.abs().max().item() <= 2.0 * 0.7 + 1e-6
    if up == down == 1:
        plain = F.conv2d(x, conv.weight / math.sqrt(64 * 9), conv.bias, padding=1)
        expected = (F.leaky_relu(plain, 0.2) * math.sqrt(2) * 0.7).clamp(-1.4, 1.4)
        torch.testing.assert_close(y, expected, **TOL)
