"""live.demo build: its training paintings (kept when they match --count, painted again if not)
and a Ctrl-C while the painter trains."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time

import torch
from safetensors.torch import load_file

from datasets.art_store import TileStore
from datasets.procedural import write_store
from gan.checkpoint import load_network, read_config
from gan.train import TrainConfig, Trainer
from live.demo import _export_generator, _paintings


def test_the_paintings_are_kept_when_the_count_matches_and_painted_again_when_not(tmp_path):
    store = _paintings(tmp_path, 12)
    assert len(TileStore(store).tiles) == 12
    shard = next(store.glob("tiles-*.npy"))
    stamp = shard.stat().st_mtime_ns
    assert _paintings(tmp_path, 12) == store and shard.stat().st_mtime_ns == stamp
    _paintings(tmp_path, 20)
    assert len(TileStore(store).tiles) == 20
    assert TileStore(store).options["count"] == 20


def test_a_damaged_store_is_painted_again(tmp_path):
    store = _paintings(tmp_path, 8)
    (store / "manifest.json").write_text("{")
    _paintings(tmp_path, 8)
    assert len(TileStore(store).tiles) == 8


def test_ctrl_c_while_the_painter_trains_keeps_a_snapshot_and_exports_nothing(tmp_path):
    work, out = tmp_path / "work", tmp_path / "model"
    proc = subprocess.Popen(
        [sys.executable, "-m", "live.demo", "build", "--work", str(work), "--out", str(out),
         "--count", "32", "--minutes", "10", "--upscaler-minutes", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stats = work / "gan" / "stats.jsonl"
        deadline = time.monotonic() + 120
        while not (stats.exists() and stats.read_text().strip()):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)  # the painter is training: its first tick is logged
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "with a snapshot in" in err and "the same command resumes it" in err
    assert (work / "gan" / "latest").exists()
    assert not out.exists()  # nothing half-made where the model goes


def test_the_exported_painter_keeps_its_judge_in_half_precision_for_fine_tuning(tmp_path,
                                                                                caplog):
    """The bundled model's generator folder: G_ema to paint with, and D (fp16) so that
    ``gan.train --init`` starts from a judge that knows the paintings, not a fresh one."""
    tiles = write_store(tmp_path / "tiles16", 32, 16)
    config = {"data": str(tiles), "preset": "tiny", "device": "cpu", "tick_kimg": 0.016}
    run = Trainer(TrainConfig(out=str(tmp_path / "run"), kimg=0.016, snapshot_kimg=0.016,
                              **config)).train()
    _export_generator(run, tmp_path / "generator")
    assert sorted(read_config(tmp_path / "generator")["networks"]) == ["D", "G_ema"]
    assert load_file(str(tmp_path / "generator" / "D.safetensors"))["b4.out.weight"].dtype \
        == torch.float16
    with caplog.at_level(logging.WARNING, logger="gan.train"):
        tuned = Trainer(TrainConfig(out=str(tmp_path / "tuned"), kimg=0.032,
                                    init=str(tmp_path / "generator"), **config))
    assert "keeps D, G_ema only: G starts from G_ema" in caplog.text
    assert "D starts fresh" not in caplog.text
    images = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(tuned.D(images, None)[0], load_network(run, "D")(images, None)[0],
                                   rtol=0, atol=2e-3)  # fp16 weights: 3 digits
    tuned.train()
