"""Fixtures of the live room: an in-process simulated headset on a real LSL outlet.

Every stream gets a unique name (and so a unique source_id), so that outlets of other tests,
running or just closed, are never picked up by mistake.
"""

from __future__ import annotations

import subprocess
import time
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


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """``(encoder_dir, generator_dir)``: a real tiny model for the live tests.

    The ``tiny`` generator (16 px, w_dim 32) trained for two steps on procedural paintings,
    and an ``align`` encoder trained for it (20 steps) on three 30 s synthetic recordings of
    16 channels, so it expects the 16-channel standard layout.
    """
    from conditioning.train import EncoderTrainConfig, run
    from datasets.eeg import build
    from datasets.procedural import write_store
    from eeg.synthetic import make_raw
    from gan.train import TrainConfig, Trainer

    root = tmp_path_factory.mktemp("live_model")
    tiles = write_store(root / "tiles16", 32, 16)
    generator = Trainer(TrainConfig(data=str(tiles), out=str(root / "gan"), preset="tiny",
                                    kimg=0.016, snapshot_kimg=0.016, tick_kimg=0.016,
                                    device="cpu")).train()
    files = []
    for seed in range(3):
        path = root / f"session{seed}_raw.fif"
        make_raw(30.0, n_channels=16, seed=seed).save(path, verbose="error")
        files.append(path)
    build(files, root / "eeg")
    encoder = root / "encoder"
    run(EncoderTrainConfig(eeg=str(root / "eeg"), generator=str(generator), out=str(encoder),
                           steps=20, batch=64, val_fraction=0.34))
    return encoder, generator


@pytest.fixture(scope="session")
def tiny_profile(tiny_model, tmp_path_factory):
    """A performer profile for the tiny generator, calibrated on 16-channel synthetic EEG
    (3 states, 3 interleaved 8 s blocks each)."""
    from conditioning.calibrate import calibrate
    from eeg.synthetic import make_raw

    order = ["eyes_closed", "focused", "drowsy", "focused", "eyes_closed", "drowsy",
             "eyes_closed", "drowsy", "focused"]
    raw = make_raw(8.0 * len(order), n_channels=16, seed=11, states=[(s, 8.0) for s in order])
    out = tmp_path_factory.mktemp("live_profile") / "profile"
    calibrate([raw], tiny_model[1], out, states=["eyes_closed", "focused", "drowsy"],
              permutations=0)
    return out


def wait_for_line(proc: subprocess.Popen, text: str, timeout: float = 90.0) -> list[str]:
    """Lines of a subprocess's stdout up to (and with) the first one containing ``text``;
    the process is killed and the test fails with what it printed when none does."""
    lines = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if text in line:
            return lines
    proc.kill()
    raise AssertionError(f"{text!r} never printed; got {lines} / {proc.stderr.read()[-2000:]}")
