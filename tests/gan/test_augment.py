"""ADA augmentation: exact blits, filtered resampling, colour matrices, statistics, controller."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gan import augment
from gan.augment import (
    AdaController,
    AugmentPipe,
    apply_color_matrices,
    list_presets,
    transform_images,
)
from neuropaint.validate import NeuropaintError

LUMA = torch.ones(3, dtype=torch.float64) / math.sqrt(3)


def _pipe(p: float = 1.0, **multipliers: float) -> AugmentPipe:
    pipe = AugmentPipe(**multipliers)
    pipe.p.fill_(p)
    return pipe


def _images(n: int, size: int = 16, channels: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, channels, size, size, generator=g) * 2 - 1


def _smooth(size: int = 32) -> torch.Tensor:
    """A band-limited colour image [1, 3, size, size] (well below Nyquist)."""
    yy, xx = torch.meshgrid(torch.arange(size) * 1.0, torch.arange(size) * 1.0, indexing="ij")
    return torch.stack([torch.sin(0.3 * xx + 0.2 * yy), torch.cos(0.25 * xx - 0.15 * yy),
                        torch.sin(0.1 * xx) * torch.cos(0.4 * yy)])[None] * 0.9


def _matrix(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)[None]  # [1, 3, 3]


# ---------------------------------------------------------------------------- identity, blits


def test_p_zero_is_exactly_identity():
    x = _images(8)
    pipe = AugmentPipe.from_preset("bgc")  # p starts at 0
    assert float(pipe.p) == 0
    assert torch.equal(pipe(x), x)


def test_zero_multipliers_are_identity_at_p_one():
    x = _images(8)
    assert torch.equal(_pipe(1.0)(x), x)


def test_xflip_gives_exact_flips_half_the_time_at_p_one():
    torch.manual_seed(0)
    x = _images(1000, size=4, channels=1)
    out = _pipe(1.0, xflip=1)(x)
    same = (out == x).flatten(1).all(1)
    flipped = (out == torch.flip(x, dims=[3])).flatten(1).all(1)
    assert bool((same | flipped).all()), "every output must be its input or its exact mirror"
    # Paper: an applied x-flip draws i ~ U{0, 1}, so p = 1 flips half the images.
    assert 0.4 < flipped.float().mean().item() < 0.6


def test_xflip_at_p_half_flips_a_quarter():
    torch.manual_seed(1)
    x = _images(1000, size=4, channels=1)
    flipped = (_pipe(0.5, xflip=1)(x) == torch.flip(x, dims=[3])).flatten(1).all(1)
    assert 0.18 < flipped.float().mean().item() < 0.32


def test_rotate90_gives_exact_quarter_turns():
    torch.manual_seed(0)
    x = _images(200, size=6)
    out = _pipe(1.0, rotate90=1)(x)
    seen = set()
    for i in range(len(x)):
        matches = [k for k in range(4) if torch.equal(out[i], torch.rot90(x[i], k, dims=(1, 2)))]
        assert len(matches) == 1, f"image {i} is not an exact 90° rotation of its input"
        seen.add(matches[0])
    assert seen == {0, 1, 2, 3}


def test_integer_translation_is_exact_with_reflected_borders():
    torch.manual_seed(0)
    size = 16
    x = _images(100, size=size)
    out = _pipe(1.0, xint=1)(x)  # shifts up to round(0.125 * 16) = 2 pixels
    padded = F.pad(x, (2, 2, 2, 2), mode="reflect")
    shifts = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)]
    moved = 0
    for i in range(len(x)):
        candidates = [(dy, dx) for dy, dx in shifts if torch.equal(
            out[i], padded[i, :, 2 - dy:2 - dy + size, 2 - dx:2 - dx + size])]
        assert candidates, f"image {i} is not an exact reflect-padded integer shift"
        moved += candidates[0] != (0, 0)
    assert moved > 50


def test_blits_combined_never_interpolate():
    torch.manual_seed(0)
    x = _images(64, size=12)
    out = AugmentPipe.from_preset("blit", xint_max=0.25)
    out.p.fill_(1.0)
    y = out(x)
    for i in range(len(x)):
        assert bool(torch.isin(y[i], x[i]).all()), "a blit must only copy input pixels"


# ------------------------------------------------------------------------------ resampling


def test_geometric_transforms_leave_no_empty_borders():
    torch.manual_seed(0)
    pipe = AugmentPipe.from_preset("bg", scale_std=0.5, xfrac_std=0.5)
    pipe.p.fill_(1.0)
    out = pipe(torch.full((32, 3, 24, 24), 0.3))
    assert (out - 0.3).abs().max().item() < 1e-5


def test_resampler_agrees_with_exact_shift_and_rotation():
    x = _smooth()
    for matrix in ([[1, 0, 3], [0, 1, -2], [0, 0, 1]], [[0, 1, 0], [-1, 0, 0], [0, 0, 1]]):
        inv = _matrix(matrix)
        exact = transform_images(x, inv)  # pixel-aligned: exact gather
        # A rotation of 1e-7 rad is not pixel-aligned, so it takes the filtered resampler.
        c, s = math.cos(1e-7), math.sin(1e-7)
        nudged = inv @ _matrix([[c, -s, 0], [s, c, 0], [0, 0, 1]])
        resampled = transform_images(x, nudged)
        # Away from the reflection seams (the filters smooth their kinks), passband accuracy.
        assert (resampled - exact)[..., 8:-8, 8:-8].abs().max().item() < 0.005
        assert (resampled - exact).abs().max().item() < 0.05


def test_half_pixel_shift_round_trip_is_nearly_lossless():
    x = _smooth()
    there = transform_images(x, _matrix([[1, 0, 0.5], [0, 1, -0.5], [0, 0, 1]]))
    back = transform_images(there, _matrix([[1, 0, -0.5], [0, 1, 0.5], [0, 0, 1]]))
    assert (back - x)[..., 4:-4, 4:-4].abs().max().item() < 0.02


def test_downscaling_filters_instead_of_aliasing():
    # A Nyquist checkerboard shrunk 1.5x lies above the new Nyquist: it must become flat grey,
    # where plain bilinear sampling aliases it into a full-contrast pattern.
    size = 32
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    board = (((xx + yy) % 2) * 2 - 1).float()[None, None]  # [1, 1, size, size]
    ours = transform_images(board, _matrix([[1.5, 0, 0.25], [0, 1.5, 0.25], [0, 0, 1]]))
    theta = torch.tensor([[[1.5, 0, 0.5 / size], [0, 1.5, 0.5 / size]]])
    grid = F.affine_grid(theta, [1, 1, size, size], align_corners=False)
    naive = F.grid_sample(board, grid, mode="bilinear", padding_mode="reflection",
                          align_corners=False)
    assert naive.std().item() > 0.4
    assert ours.abs().max().item() < 0.02


def _reference_resample(images: torch.Tensor, inv: torch.Tensor) -> torch.Tensor:
    """Plain twin of the fast resampler: wide explicit reflect padding, zero-insertion
    upsampling with the full filter, grid_sample inside the padded image, strided decimation."""
    h = augment._LOWPASS.float()
    taps = len(h)
    n, C, H, W = images.shape
    pad = 2 * max(H, W)
    rows = augment._reflect_index(torch.arange(-pad, H + pad), H)
    cols = augment._reflect_index(torch.arange(-pad, W + pad), W)
    x = images.index_select(2, rows).index_select(3, cols)  # [n, C, Hp, Wp]
    Hp, Wp = H + 2 * pad, W + 2 * pad
    up = torch.zeros(n * C, 1, 2 * Hp, 2 * Wp)
    up[:, :, ::2, ::2] = x.reshape(n * C, 1, Hp, Wp) * 4  # zeros between samples, gain 2 x 2
    k = h[:, None] * h[None, :]  # [taps, taps] separable 2-D filter
    up = F.conv2d(F.pad(up, (taps // 2, taps // 2 - 1) * 2), k[None, None])  # [nC, 1, 2Hp, 2Wp]
    up = up.reshape(n, C, 2 * Hp, 2 * Wp)
    # Fine output samples (with decimation margin) in centred output pixels, then to source.
    margin = (taps - 2) // 2
    fy = (torch.arange(2 * H + 2 * margin) - margin + 0.5) / 2 - 0.5 - (H - 1) / 2
    fx = (torch.arange(2 * W + 2 * margin) - margin + 0.5) / 2 - 0.5 - (W - 1) / 2
    gy, gx = torch.meshgrid(fy.double(), fx.double(), indexing="ij")
    pts = torch.stack([gx, gy, torch.ones_like(gx)], -1)  # [Sh, Sw, 3]
    src = torch.einsum("nij,hwj->nhwi", inv, pts)[..., :2]  # [n, Sh, Sw, 2] centred source
    size = torch.tensor([Wp, Hp], dtype=torch.float64)
    grid = (src + torch.tensor([W, H]) / 2 + pad) * 2 / size - 1  # padded image's [-1, 1]
    fine = F.grid_sample(up, grid.float(), mode="bilinear", align_corners=False)
    out = F.conv2d(fine.reshape(n * C, 1, *fine.shape[2:]), k[None, None], stride=2)
    return out.reshape(n, C, H, W)


def test_fast_resampler_matches_its_plain_twin():
    # The fast path reflects sampling coordinates instead of padding widely, and upsamples
    # with two polyphase branches instead of inserting zeros: both must change nothing.
    x = _images(3, size=16)
    inv = torch.cat([_matrix([[0.8, 0.5, 2.3], [-0.4, 1.2, -1.7], [0, 0, 1]]),
                     _matrix([[1.6, 0.0, 0.4], [0.0, 0.7, 0.2], [0, 0, 1]]),
                     _matrix([[0.6, -0.8, 9.5], [0.8, 0.6, 0.0], [0, 0, 1]])])
    fast = transform_images(x, inv)
    reference = _reference_resample(x, inv)
    assert (fast - reference).abs().max().item() < 1e-4


def test_transform_images_gradients_match_finite_differences():
    x = _smooth(8)[:, :2].double().requires_grad_()
    inv = _matrix([[0.9, 0.3, 0.7], [-0.2, 1.1, -0.4], [0, 0, 1]])
    assert torch.autograd.gradcheck(lambda t: transform_images(t, inv), (x,), fast_mode=True)


# ------------------------------------------------------------------------ contract, gradients


@pytest.mark.parametrize(("channels", "height", "width", "dtype"),
                         [(3, 32, 32, torch.float32), (1, 16, 16, torch.float32),
                          (3, 24, 40, torch.float64)])
def test_output_keeps_shape_dtype_and_device(channels, height, width, dtype):
    torch.manual_seed(0)
    pipe = AugmentPipe.from_preset("bgc")
    pipe.p.fill_(1.0)
    x = (torch.rand(6, channels, height, width) * 2 - 1).to(dtype)
    out = pipe(x)
    assert out.shape == x.shape
    assert out.dtype == x.dtype
    assert out.device == x.device
    assert bool(torch.isfinite(out).all())


def test_gradients_flow_through_the_pipe():
    torch.manual_seed(0)
    pipe = AugmentPipe.from_preset("bgc")
    pipe.p.fill_(1.0)
    x = _images(8, size=16).requires_grad_()
    weights = torch.randn(8, 3, 16, 16)
    (pipe(x) * weights).sum().backward()
    assert x.grad is not None
    assert bool(torch.isfinite(x.grad).all())
    assert (x.grad.flatten(1).abs().sum(1) > 0).all()


# ------------------------------------------------------------------------------------ colour


def test_brightness_moves_the_mean_but_not_the_spread():
    torch.manual_seed(0)
    x = _images(64)
    out = _pipe(1.0, brightness=1)(x)
    shift = (out - x).mean(dim=(1, 2, 3))
    assert (shift.abs() > 1e-3).float().mean() > 0.9
    assert torch.allclose(out.std(dim=(1, 2, 3)), x.std(dim=(1, 2, 3)), atol=1e-5)


def test_contrast_keeps_the_mean_colour():
    torch.manual_seed(0)
    x = _images(32)
    out = _pipe(1.0, contrast=1)(x)
    assert torch.allclose(out.mean(dim=(2, 3)), x.mean(dim=(2, 3)), atol=1e-5)
    ratio = out.std(dim=(1, 2, 3)) / x.std(dim=(1, 2, 3))
    assert ratio.std() > 0.1  # the spread really changes, image by image


def test_greys_stay_grey_without_saturation():
    torch.manual_seed(0)
    grey = _images(32, channels=1).expand(32, 3, 16, 16).contiguous()
    no_saturation = _pipe(1.0, brightness=1, contrast=1, lumaflip=1, hue=1)(grey)
    assert (no_saturation - no_saturation[:, :1]).abs().max().item() < 1e-5
    with_saturation = _pipe(1.0, saturation=1)(grey)  # nothing off the luma axis to scale
    assert (with_saturation - with_saturation[:, :1]).abs().max().item() < 1e-5


def test_lumaflip_keeps_luma_magnitude():
    torch.manual_seed(0)
    x = _images(64)
    out = _pipe(1.0, lumaflip=1)(x)
    luma_in = torch.einsum("c,nchw->nhw", LUMA.float(), x)
    luma_out = torch.einsum("c,nchw->nhw", LUMA.float(), out)
    assert torch.allclose(luma_out.abs(), luma_in.abs(), atol=1e-5)
    flipped = (luma_out * luma_in).sum(dim=(1, 2)) < 0
    assert 0.3 < flipped.float().mean().item() < 0.7  # i ~ U{0, 1} when applied


def test_hue_rotation_keeps_luma_and_chroma():
    torch.manual_seed(0)
    x = _images(32)
    out = _pipe(1.0, hue=1)(x)
    luma = LUMA.float()
    luma_in = torch.einsum("c,nchw->nhw", luma, x)
    luma_out = torch.einsum("c,nchw->nhw", luma, out)
    assert torch.allclose(luma_in, luma_out, atol=1e-5)
    chroma_in = (x - luma_in[:, None] * luma[None, :, None, None]).norm(dim=1)
    chroma_out = (out - luma_out[:, None] * luma[None, :, None, None]).norm(dim=1)
    assert torch.allclose(chroma_in, chroma_out, atol=1e-5)
    assert (out - x).abs().amax(dim=(1, 2, 3)).gt(1e-2).float().mean() > 0.9


def test_single_channel_lumaflip_negates():
    torch.manual_seed(0)
    x = _images(16, channels=1)
    out = _pipe(1.0, lumaflip=1)(x)
    negated = (out == -x).flatten(1).all(1)
    same = (out == x).flatten(1).all(1)
    assert bool((negated | same).all())  # luma flip of a grey image is negation
    assert 0 < negated.float().mean().item() < 1


def test_apply_color_matrices_is_affine():
    x = _images(2)
    M = torch.eye(4).repeat(2, 1, 1)
    M[0, :3, 3] = 0.25  # add 0.25 to every channel of image 0
    M[1, :3, :3] *= 2.0  # double image 1
    out = apply_color_matrices(x, M)
    assert torch.allclose(out[0], x[0] + 0.25)
    assert torch.allclose(out[1], 2 * x[1])


# ------------------------------------------------------------------------ statistics, leaks


def test_augmentations_are_centred():
    torch.manual_seed(0)
    x = torch.zeros(2000, 3, 4, 4)
    out = _pipe(1.0, brightness=1)(x)
    shift = out.mean(dim=(1, 2, 3))
    assert abs(shift.mean().item()) < 0.02  # no net brightening or darkening
    assert shift.std().item() == pytest.approx(0.2, rel=0.1)
    inv = AugmentPipe.from_preset("bg")
    inv.p.fill_(1.0)
    matrices = inv.geometric_matrices(4000, 64, 64)
    assert matrices[:, :2, 2].mean(0).abs().max().item() < 1.0  # pixels: no drift
    log_det = torch.log(torch.linalg.det(matrices[:, :2, :2]).abs())
    assert abs(log_det.mean().item()) < 0.03  # as much zooming in as out


def test_mean_of_many_dihedral_copies_is_the_group_average():
    torch.manual_seed(0)
    x = _images(1, size=8)[0]
    group = [torch.rot90(img, k, dims=(1, 2)) for img in (x, torch.flip(x, dims=[2]))
             for k in range(4)]
    group_mean = torch.stack(group).mean(0)
    out = _pipe(1.0, xflip=1, rotate90=1)(x.expand(4000, 3, 8, 8).contiguous())
    assert (out.mean(0) - group_mean).abs().max().item() < 0.06


def test_rotation_probability_matches_p():
    # Two rotations, each with probability 1 - sqrt(1 - p): some rotation with probability p.
    torch.manual_seed(0)
    pipe = _pipe(0.5, rotate=1)
    m = pipe.geometric_matrices(4000, 32, 32)
    rotated = m[:, 0, 1].abs() > 0
    assert 0.46 < rotated.float().mean().item() < 0.54


# ---------------------------------------------------------------------------------- presets


def test_presets():
    assert set(list_presets()) >= {"none", "blit", "geom", "color", "bgc"}
    bgc = AugmentPipe.from_preset("bgc")
    for name in ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac",
                 "brightness", "contrast", "lumaflip", "hue", "saturation"):
        assert getattr(bgc, name) == 1
    assert AugmentPipe.from_preset("blit").scale == 0
    assert AugmentPipe.from_preset("color").xflip == 0
    assert AugmentPipe.from_preset("none").hue == 0


def test_p_is_a_saved_buffer():
    pipe = AugmentPipe.from_preset("bgc")
    pipe.p.fill_(0.25)
    assert "p" in pipe.state_dict()
    other = AugmentPipe.from_preset("bgc")
    other.load_state_dict(pipe.state_dict())
    assert float(other.p) == 0.25


# ----------------------------------------------------------------------------- AdaController


def _positive(n: int = 8) -> torch.Tensor:
    return torch.ones(n, 1)


def test_ada_p_rises_when_real_logits_are_positive():
    pipe = AugmentPipe.from_preset("bgc")
    ada = AdaController(pipe, batch_size=32, interval=4, ada_kimg=500)
    step = 32 * 4 / (500 * 1000)
    for i in range(4):
        ada.accumulate(_positive())
        ada.step()
        if i < 3:
            assert ada.p == 0.0 and ada.rt is None
    assert ada.rt == 1.0
    assert ada.p == step
    assert float(pipe.p) == pytest.approx(step)
    for _ in range(4):
        ada.accumulate(_positive())
        ada.step()
    assert ada.p == pytest.approx(2 * step, abs=1e-15)


def test_ada_p_falls_when_real_logits_are_negative_and_stays_in_range():
    pipe = AugmentPipe.from_preset("bgc")
    ada = AdaController(pipe, batch_size=1000, interval=1, ada_kimg=1, p=0.5)  # 1 per step
    ada.accumulate(-_positive())
    ada.step()
    assert ada.rt == -1.0
    assert ada.p == 0.0  # clamped from -0.5
    for _ in range(3):
        ada.accumulate(_positive())
        ada.step()
    assert ada.p == 1.0  # clamped from 2.0
    assert float(pipe.p) == 1.0


def test_ada_rt_is_the_mean_sign():
    ada = AdaController(AugmentPipe(), batch_size=4, interval=2)
    ada.accumulate(torch.tensor([1.5, -0.2, 3.0, 0.1]))  # 3 of 4 positive
    ada.step()
    ada.accumulate(torch.tensor([[-1.0], [-2.0]]))
    ada.step()
    assert ada.rt == pytest.approx((3 - 1 - 2) / 6)
    assert ada.p == 0.0  # r_t below target: p would fall, clamped at 0


def test_ada_state_dict_round_trip_resumes_exactly():
    torch.manual_seed(0)
    logits = [torch.randn(8) + 1.0 for _ in range(23)]  # r_t mostly > 0.6
    a = AdaController(AugmentPipe.from_preset("bgc"), batch_size=8, interval=4, ada_kimg=0.1)
    for batch in logits[:10]:  # stop mid-interval: accumulators hold two steps
        a.accumulate(batch)
        a.step()
    state = a.state_dict()
    b_pipe = AugmentPipe.from_preset("bgc")
    b = AdaController(b_pipe, batch_size=8, interval=4, ada_kimg=0.1)
    b.load_state_dict(state)
    assert b.p == a.p and b.rt == a.rt and b.state_dict() == state
    assert float(b_pipe.p) == float(a.pipe.p)
    for batch in logits[10:]:
        for ctl in (a, b):
            ctl.accumulate(batch)
            ctl.step()
        assert (a.p, a.rt) == (b.p, b.rt)
    assert a.p > 0


def test_fixed_mode_never_changes_p_and_none_holds_zero():
    pipe = AugmentPipe.from_preset("bgc")
    fixed = AdaController(pipe, mode="fixed", p=0.3, interval=1)
    for _ in range(10):
        fixed.accumulate(_positive())
        fixed.step()
    assert fixed.p == 0.3
    assert float(pipe.p) == pytest.approx(0.3)
    assert fixed.rt == 1.0  # still tracked for the progress bar
    none = AdaController(AugmentPipe.from_preset("bgc"), mode="none", p=0.7, interval=1)
    none.accumulate(_positive())
    none.step()
    assert none.p == 0.0


# ------------------------------------------------------------------------------- bad input


def test_bad_arguments_give_one_line_errors():
    with pytest.raises(NeuropaintError, match="'xflip' must be a non-negative number, got -1"):
        AugmentPipe(xflip=-1)
    with pytest.raises(NeuropaintError, match="'scale_std' must be a non-negative number"):
        AugmentPipe(scale_std=float("nan"))
    with pytest.raises(NeuropaintError, match=r"'preset' must be one of 'none', .*got 'bgcx'"):
        AugmentPipe.from_preset("bgcx")
    pipe = AugmentPipe()
    with pytest.raises(NeuropaintError, match=r"'target' must be a number in \(0, 1\), got 1.5"):
        AdaController(pipe, target=1.5, batch_size=8)
    with pytest.raises(NeuropaintError, match=r"'target' must be a number in \(0, 1\), got 0"):
        AdaController(pipe, target=0, batch_size=8)
    with pytest.raises(NeuropaintError, match="'mode' must be one of 'ada', 'fixed', 'none'"):
        AdaController(pipe, mode="adaptive", batch_size=8)
    with pytest.raises(NeuropaintError, match="'batch_size' must be given in 'ada' mode"):
        AdaController(pipe)
    with pytest.raises(NeuropaintError, match="'interval' must be an integer >= 1, got 0"):
        AdaController(pipe, interval=0, batch_size=8)
    with pytest.raises(NeuropaintError, match=r"'p' must be in \[0, 1\], got 2.0"):
        AdaController(pipe, mode="fixed", p=2.0)
    with pytest.raises(NeuropaintError, match="'ada_kimg' must be a positive number"):
        AdaController(pipe, ada_kimg=0, batch_size=8)
    pipe.p.fill_(0.5)
    with pytest.raises(NeuropaintError, match=r"'images' must be a float tensor \[N, C, H, W\]"):
        pipe(torch.zeros(3, 8, 8))


def _ddp_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    try:
        ada = AdaController(AugmentPipe.from_preset("bgc"), batch_size=16, interval=2,
                            ada_kimg=1)
        # Rank 0 alone would see r_t = 1 and raise p; pooled over both, r_t = (16 - 8) / 32.
        logits = torch.ones(8) if rank == 0 else torch.tensor([1.0, 1.0] + [-1.0] * 6)
        for _ in range(2):
            ada.accumulate(logits)
            ada.step()
        torch.save({"p": ada.p, "rt": ada.rt}, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_ada_ranks_agree_under_distributed(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert results[0] == results[1]
    assert results[0]["rt"] == 0.25
    assert results[0]["p"] == 0.0  # fell (clamped): the pooled r_t is below target
