"""Test-suite set-up shared by every room.

LSL stays on this machine: ``LSLAPICFG`` points at ``tests/lsl/lsl_api.cfg`` (machine resolve
scope, IPv4 only, loopback peers) before anything imports pylsl.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ["LSLAPICFG"] = str(Path(__file__).parent / "lsl" / "lsl_api.cfg")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("MNE_LOGGING_LEVEL", "WARNING")

# The suite's models are tiny: one torch thread runs them fastest, and on a small shared
# machine two threads spin against the LSL, viewer and simulator threads (measured: tiny32
# training 31 images/s with 1 thread vs 3.5 with 2 on the loaded 2-core machine).
import torch

torch.set_num_threads(1)
