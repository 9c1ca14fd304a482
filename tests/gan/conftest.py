"""Shared fixtures for the GAN room: a small real tile store of procedural paintings."""

from __future__ import annotations

import pytest

from datasets.art import TileStoreWriter
from datasets.procedural import STYLES, paint


@pytest.fixture(scope="session")
def paintings_store(tmp_path_factory):
    """64 procedural colour-field paintings at 32 px, as a tile store."""
    out = tmp_path_factory.mktemp("tiles") / "paintings32"
    with TileStoreWriter(out, size=32, options={"source": "procedural"}) as writer:
        for i in range(64):
            style = STYLES[i % len(STYLES)]
            writer.add(paint(style, 32, i), source=f"{style}_{i:04d}", box=(0, 0, 32, 32))
    return out
