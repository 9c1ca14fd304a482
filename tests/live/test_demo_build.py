"""live.demo build's training paintings: kept when they match --count, painted again if not."""

from __future__ import annotations

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
