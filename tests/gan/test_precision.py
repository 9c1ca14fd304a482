"""bf16 where the hardware has it: detection, the refusal where it would be emulated, and how
far a bf16 painting lies from the fp32 one (autocast runs, emulated, on any CPU)."""

from __future__ import annotations

import pytest
import torch

from gan.precision import autocast, bf16_native, describe_precision, resolve_precision
from gan.presets import get_preset
from gan.train import build_networks, main
from neuropaint.logs import run_cli
from neuropaint.validate import NeuropaintError

CPU_BF16 = bf16_native("cpu")


def test_auto_picks_bf16_only_where_native_and_fp32_is_always_fp32():
    assert resolve_precision("fp32", "cpu") == "fp32"
    assert resolve_precision("auto", "cpu") == ("bf16" if CPU_BF16 else "fp32")
    assert describe_precision("fp32", "cpu").startswith("fp32 (")
    with pytest.raises(NeuropaintError, match="'--precision' must be one of"):
        resolve_precision("fp16", "cpu")


@pytest.mark.skipif(CPU_BF16, reason="this CPU has bf16: nothing to refuse")
def test_bf16_is_refused_on_a_cpu_that_would_emulate_it(paintings_store, tmp_path, capsys):
    with pytest.raises(NeuropaintError, match=r"this CPU \(.*\) has no bf16 instructions "
                                              r"\(AVX512-BF16 or AMX\)"):
        resolve_precision("bf16", "cpu")
    code = run_cli(main, ["--data", str(paintings_store), "--out", str(tmp_path / "run"),
                          "--device", "cpu", "--precision", "bf16", "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "no bf16 instructions" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "snapshots").exists()  # refused before anything is written


@pytest.mark.skipif(not CPU_BF16, reason="needs a CPU with AVX512-BF16 or AMX")
def test_bf16_is_taken_on_a_cpu_that_has_it():
    assert resolve_precision("bf16", "cpu") == "bf16"
    assert "native" in describe_precision("bf16", "cpu")


def test_a_bf16_painting_stays_close_to_the_fp32_one():
    """The same latent painted under bf16 autocast (emulated here if need be) is within
    35 dB PSNR of fp32: bf16's 8-bit mantissa costs detail, not the picture."""
    torch.manual_seed(0)
    G, _ = build_networks(get_preset("tiny"))
    G.eval()
    z = torch.randn(4, G.z_dim)
    with torch.no_grad():
        ref = G(z, None, noise_mode="const")
        with autocast("bf16", "cpu"):
            low = G(z, None, noise_mode="const")
    assert low.dtype in (torch.bfloat16, torch.float32)
    assert not torch.equal(low.float(), ref)  # autocast took effect: bf16 arithmetic ran
    mse = ((low.float() - ref) ** 2).mean().item() / 4.0  # images in [-1, 1]: range 2
    psnr = 10 * torch.log10(torch.tensor(1.0 / max(mse, 1e-12))).item()
    assert 25.0 < psnr < 200.0, psnr
    with autocast("fp32", "cpu"):
        assert torch.equal(G(z, None, noise_mode="const"), ref)
