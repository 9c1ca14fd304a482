"""live.demo build: its training paintings (kept when they match --count, painted again if not)
and a Ctrl-C while the painter trains."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from datasets.art_store import TileStore
from live.demo import _paintings


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
