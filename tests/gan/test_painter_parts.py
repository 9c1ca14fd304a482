"""benchmarks/painter_parts.py on the bundled painter and a few of its paintings: every part it
turns off is measured, and a store too small for two sets is refused in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from datasets.procedural import write_store

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "painter_parts.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=300, check=False)


def test_each_part_is_measured_against_the_floor(tmp_path):
    store = write_store(tmp_path / "store", 96, 64, seed=7)
    done = run("--data", str(store), "--num", "48")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    parts = ("floor", "as_trained", "noise_const", "noise_none", "no_canvas")
    for name in parts:
        assert len(result[name]["swd"]) == 3 and all(v > 0 for v in result[name]["swd"])
    assert result["floor"]["ratio"] == [1.0, 1.0, 1.0]
    # The demo painter's texture carries its finest level: without it that level is worse.
    assert result["no_canvas"]["swd"][0] > result["as_trained"]["swd"][0]
    assert len(result["power_ratio"]) == len(result["bands_cycles_per_px"]) - 1
    assert all(r > 0 for r in result["power_ratio"])
    assert set(result["d_score"]) == {"as_trained", "no_canvas", "real"}
    assert result["d_score"]["real"] > result["d_score"]["as_trained"]


def test_a_store_too_small_for_two_sets_is_refused(tmp_path):
    store = write_store(tmp_path / "store", 10, 64, seed=7)
    done = run("--data", str(store), "--num", "8")
    assert done.returncode == 2
    assert "--data holds 10 tiles; two sets of --num 8 need 16." in done.stderr
