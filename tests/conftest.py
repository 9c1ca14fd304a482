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
