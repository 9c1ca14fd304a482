"""Choosing a torch device from what a user typed, with a one-line error when it cannot be had."""

from __future__ import annotations

import re

from neuropaint.validate import NeuropaintError

__all__ = ["resolve_device"]


def resolve_device(text: str = "auto"):
    """``'auto'`` (CUDA when present, else CPU), ``'cpu'``, ``'cuda'`` or ``'cuda:N'``."""
    import torch

    name = str(text).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", name)
    if not match:
        raise NeuropaintError(f"unknown device {text!r}; use auto, cpu, cuda or cuda:N.")
    if not torch.cuda.is_available():
        raise NeuropaintError(f"device {text!r} asked for, but this torch has no usable CUDA "
                              f"GPU; use --device cpu (or auto).")
    index = int(match.group(1) or 0)
    if index >= torch.cuda.device_count():
        raise NeuropaintError(f"device {text!r} asked for, but there are only "
                              f"{torch.cuda.device_count()} CUDA device(s).")
    return torch.device("cuda", index)
