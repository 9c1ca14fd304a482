"""Fixtures of the live room: an in-process simulated headset on a real LSL outlet.

Every stream gets a unique name (and so a unique source_id), so that outlets of other tests,
running or just closed, are never picked up by mistake.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from live.simulate import Simulator, SimulatorConfig
from neuropaint.validate import build_config


def unique_stream_name(prefix: str = "np-test") -> str:
    """A stream name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


StartSimulator = Callable[..., tuple[Simulator, str]]


@pytest.fixture
def start_simulator() -> Iterator[StartSimulator]:
    """A factory: ``sim, name = start_simulator(channels=8, chunk=7, ...)`` starts a simulator
    (SimulatorConfig fields as keywords; ``name`` defaults to a unique one) and the fixture
    stops every simulator it started at teardown."""
    started: list[Simulator] = []

    def start(**fields: object) -> tuple[Simulator, str]:
        fields.setdefault("name", unique_stream_name())
        sim = Simulator(build_config(SimulatorConfig, fields)).start()
        started.append(sim)
        return sim, str(fields["name"])

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture
def simulator(start_simulator: StartSimulator) -> tuple[Simulator, str]:
    """A running simulator with the default settings (32 channels, 256 Hz, cycling states,
    chunks of 16) under a unique name: ``(simulator, name)``; stopped after the test."""
    return start_simulator()
