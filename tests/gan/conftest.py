"""Shared fixtures for the GAN room: a small real tile store of procedural paintings."""

from __future__ import annotations

import pytest

from datasets.procedural import write_store


@pytest.fixture(scope="session")
def paintings_store(tmp_path_factory):
    """64 procedural colour-field paintings at 32 px, as a tile store."""
    return write_store(tmp_path_factory.mktemp("tiles") / "paintings32", 64, 32)
