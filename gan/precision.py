"""Which number format the networks run in: fp32, or bf16 where the hardware has it.

bfloat16 keeps fp32's exponent range with an 8-bit mantissa, so StyleGAN2's activations and
weights fit without loss scaling; autocast runs convolutions and matrix products in bf16 and
keeps reductions, normalisations and the losses in fp32. It pays only where the hardware
computes in bf16: CUDA GPUs from Ampere on, and CPUs with AVX512-BF16 or AMX (Intel Cooper
Lake, Sapphire Rapids and later; AMD Zen 4 and later). Elsewhere PyTorch emulates it, slower
than fp32, so ``auto`` picks fp32 there and an explicit ``bf16`` is refused with the reason.

``describe_precision`` names the choice for logs and benchmarks; ``autocast`` is the one
context every caller (training, the live engine, generation) wraps its forward passes in.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Literal

import torch

from neuropaint.validate import NeuropaintError, check_option

__all__ = ["PRECISIONS", "Precision", "autocast", "bf16_native", "describe_precision",
           "resolve_precision"]

logger = logging.getLogger(__name__)

Precision = Literal["auto", "fp32", "bf16"]
PRECISIONS = ("auto", "fp32", "bf16")


def _cpu_capability() -> str:
    try:
        return torch.backends.cpu.get_cpu_capability()
    except Exception:  # older builds: the capability is only a label in messages
        return "unknown"


def bf16_native(device: torch.device | str) -> bool:
    """Whether ``device`` computes bf16 in hardware (not emulated)."""
    device = torch.device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        # Private probes, present since PyTorch 2.1; a build without them reports no support.
        probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)
    return False


def resolve_precision(precision: str, device: torch.device | str, *,
                      what: str = "--precision") -> Literal["fp32", "bf16"]:
    """``auto`` -> bf16 where ``device`` has it natively, else fp32; ``bf16`` is refused
    (one line, naming ``what``) where it would only be emulated."""
    check_option(precision, what, PRECISIONS)
    device = torch.device(device)
    if precision == "fp32":
        return "fp32"
    native = bf16_native(device)
    if precision == "auto":
        return "bf16" if native else "fp32"
    if not native:
        if device.type == "cpu":
            raise NeuropaintError(
                f"{what} bf16: this CPU ({_cpu_capability()}) has no bf16 instructions "
                "(AVX512-BF16 or AMX), so bf16 would be emulated and slower than fp32; use "
                f"{what} fp32 or auto.")
        raise NeuropaintError(f"{what} bf16: {device} does not compute in bf16 natively; use "
                              f"{what} fp32 or auto.")
    return "bf16"


def describe_precision(precision: str, device: torch.device | str) -> str:
    """E.g. ``'bf16 (native on this CPU: AVX512)'`` or ``'fp32 (no bf16 on this CPU: AVX2)'``."""
    device = torch.device(device)
    where = f"this CPU: {_cpu_capability()}" if device.type == "cpu" else str(device)
    if precision == "bf16":
        return f"bf16 ({'native' if bf16_native(device) else 'emulated'} on {where})"
    return f"fp32 ({'bf16 available' if bf16_native(device) else 'no bf16'} on {where})"


def autocast(precision: str, device: torch.device | str) -> contextlib.AbstractContextManager:
    """The autocast context for a resolved ``precision`` (``fp32``: a no-op context)."""
    device = torch.device(device)
    if precision != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)
