"""Shared fixtures for the conditioning room: a real tiny generator and a real EEG store.

The generator is the ``tiny`` preset (16 px, 6 ws, w_dim 32) really trained for two steps on
procedural paintings; the EEG store is built by ``datasets.eeg.build`` from four 30 s
synthetic recordings written as FIF files, each cycling through the four brain states in a
different order, so that a split by recording holds out one whole session with every state.
"""

from __future__ import annotations

import pytest

from datasets.eeg import EEGStore, build
from datasets.procedural import write_store
from eeg.synthetic import make_raw
from gan.checkpoint import load_generator
from gan.train import TrainConfig, Trainer

SCHEDULES = (
    ["eyes_closed", "focused", "drowsy", "neutral"],
    ["focused", "drowsy", "neutral", "eyes_closed"],
    ["drowsy", "neutral", "eyes_closed", "focused"],
    ["neutral", "eyes_closed", "focused", "drowsy"],
)


@pytest.fixture(scope="session")
def generator_path(tmp_path_factory):
    """A snapshot of the tiny preset after two real training steps."""
    root = tmp_path_factory.mktemp("gan")
    tiles = write_store(root / "tiles16", 32, 16)
    cfg = TrainConfig(data=str(tiles), out=str(root / "run"), preset="tiny", kimg=0.016,
                      snapshot_kimg=0.016, tick_kimg=0.016, device="cpu")
    return Trainer(cfg).train()


@pytest.fixture(scope="session")
def generator(generator_path):
    return load_generator(generator_path)


@pytest.fixture(scope="session")
def eeg_files(tmp_path_factory):
    """Four 30 s recordings (16 channels) as real FIF files, states in different orders."""
    folder = tmp_path_factory.mktemp("eeg")
    files = []
    for i, states in enumerate(SCHEDULES):
        path = folder / f"session{i}_raw.fif"
        make_raw(30.0, n_channels=16, states=states, state_duration=7.5, seed=i).save(
            path, verbose="error")
        files.append(path)
    return files


@pytest.fixture(scope="session")
def eeg_store_path(eeg_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("stores") / "eeg"
    build(eeg_files, out)
    return out


@pytest.fixture(scope="session")
def eeg_store(eeg_store_path):
    return EEGStore(eeg_store_path)


def other_weights_snapshot(generator_path, folder):
    """A copy of the snapshot at ``generator_path`` with one weight nudged: the same
    architecture, other weights (what a model made for the first must refuse)."""
    import shutil

    from safetensors.torch import load_file, save_file

    shutil.copytree(generator_path, folder)
    weights = load_file(str(folder / "G_ema.safetensors"))
    key = next(k for k in weights if k.endswith("weight"))
    weights[key] = weights[key] + 0.01
    save_file(weights, str(folder / "G_ema.safetensors"))
    return folder
