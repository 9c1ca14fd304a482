"""conditioning.motion: the critically damped follow through W, its drift and its clamp."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conditioning.motion import TAU_TO_OMEGA, MotionConfig, WMotion
from neuropaint.validate import NeuropaintError, build_config

NUM_WS, W_DIM = 4, 8


def _target(value: float = 1.0) -> np.ndarray:
    return np.full((NUM_WS, W_DIM), value, dtype=np.float32)


def _run(motion: WMotion, target, dt: float, n: int) -> np.ndarray:
    """Positions after each of ``n`` steps, [n, num_ws, w_dim]."""
    return np.stack([motion.step(target, dt) for _ in range(n)])


def test_tau_constant_solves_the_63_percent_equation():
    u = TAU_TO_OMEGA
    assert (1 + u) * math.exp(-u) == pytest.approx(math.exp(-1), abs=1e-12)


def test_converges_to_a_constant_target_without_overshoot():
    motion = WMotion(MotionConfig(tau=0.5), NUM_WS, W_DIM)
    path = _run(motion, _target(1.0), 1 / 30, 300)[:, 0, 0]  # 10 s
    assert path[-1] == pytest.approx(1.0, abs=1e-4)
    assert np.all(np.diff(path) >= -1e-9)  # monotone: critically damped
    assert path.max() <= 1.0 + 1e-6        # never past the target


def test_time_constant_is_the_63_percent_time():
    tau = 0.8
    motion = WMotion(MotionConfig(tau=tau), NUM_WS, W_DIM)
    motion.step(_target(2.0), tau)
    assert motion.position[0, 0] == pytest.approx(2.0 * (1 - math.exp(-1)), rel=1e-5)
    slow = WMotion(MotionConfig(tau=2 * tau), NUM_WS, W_DIM)
    slow.step(_target(2.0), tau)
    assert slow.position[0, 0] < motion.position[0, 0]  # a longer tau follows more slowly


def test_frame_rate_independent_for_any_dt():
    fine = WMotion(MotionConfig(tau=0.3), NUM_WS, W_DIM)
    coarse = WMotion(MotionConfig(tau=0.3), NUM_WS, W_DIM)
    rng = np.random.default_rng(0)
    for _ in range(5):  # a new target every 0.5 s
        target = rng.standard_normal((NUM_WS, W_DIM))
        _run(fine, target, 0.005, 100)
        _run(coarse, target, 0.01, 50)
    np.testing.assert_allclose(fine.ws, coarse.ws, atol=1e-5)
    np.testing.assert_allclose(fine.velocity, coarse.velocity, atol=1e-4)
    assert fine.time == pytest.approx(coarse.time)


def test_none_target_holds_the_last_one():
    motion = WMotion(MotionConfig(tau=0.2), NUM_WS, W_DIM)
    _run(motion, _target(3.0), 0.05, 4)  # half-way there
    before = motion.position.copy()
    _run(motion, None, 0.05, 100)  # artifact: no new target, keep going to the last good one
    assert motion.position[0, 0] > before[0, 0]
    np.testing.assert_allclose(motion.position, _target(3.0), atol=1e-4)
    np.testing.assert_allclose(motion.target, _target(3.0))
    still = WMotion(MotionConfig(), NUM_WS, W_DIM, w_avg=np.arange(W_DIM))
    np.testing.assert_array_equal(still.step(None, 1.0), np.tile(np.arange(W_DIM), (NUM_WS, 1)))


def test_reset_starts_at_rest_at_w_avg_or_the_given_ws():
    w_avg = np.linspace(-1, 1, W_DIM)
    motion = WMotion(MotionConfig(), NUM_WS, W_DIM, w_avg=w_avg)
    np.testing.assert_allclose(motion.ws, np.tile(w_avg, (NUM_WS, 1)), atol=1e-7)
    motion.step(_target(5.0), 0.3)
    motion.reset(_target(-1.0))
    assert motion.time == 0.0 and not motion.velocity.any()
    np.testing.assert_array_equal(motion.step(None, 0.5), _target(-1.0))
    assert motion.ws.dtype == np.float32


def test_drift_wanders_when_the_target_is_still_and_is_zero_when_off():
    drifting = WMotion(MotionConfig(drift=0.5, drift_period=4.0), NUM_WS, W_DIM, seed=3)
    path = _run(drifting, None, 0.1, 200)  # 20 s, target = start
    offsets = np.linalg.norm(path[:, 0], axis=1)
    assert offsets.max() > 0.2                          # it moves ...
    assert np.sqrt(np.mean(offsets**2)) == pytest.approx(0.5, rel=0.35)  # ... by about drift
    steps = np.linalg.norm(np.diff(path[:, 0], axis=0), axis=1)
    # Smooth: no step is longer than the drift's top speed (sum of each partial's) times dt.
    amp = 0.5 * math.sqrt(2 / 3)
    top_speed = sum(amp * 2 * math.pi * ratio / 4.0 for ratio in (1.0, 1.618, 2.618))
    assert steps.max() <= top_speed * 0.1
    np.testing.assert_array_equal(path[:, 0], path[:, -1])  # one offset for every w
    again = WMotion(MotionConfig(drift=0.5, drift_period=4.0), NUM_WS, W_DIM, seed=3)
    np.testing.assert_array_equal(_run(again, None, 0.1, 200), path)  # seeded
    off = WMotion(MotionConfig(drift=0.0), NUM_WS, W_DIM)
    assert not _run(off, None, 0.1, 50).any()


def test_max_step_clamps_the_speed():
    config = MotionConfig(tau=0.05, max_step=2.0)
    motion = WMotion(config, NUM_WS, W_DIM)
    path = _run(motion, _target(10.0), 0.1, 10)
    steps = np.linalg.norm(np.diff(path, axis=0), axis=2).max(axis=1)
    assert steps.max() <= 2.0 * 0.1 + 1e-5
    assert path[-1, 0, 0] > 0.5  # still moving towards the target


def test_bad_config_and_inputs_are_one_line_errors():
    with pytest.raises(NeuropaintError, match=r"'tau': Input should be greater than 0"):
        build_config(MotionConfig, tau=0)
    with pytest.raises(NeuropaintError, match=r"'spring': unknown field"):
        build_config(MotionConfig, spring=1.0)
    with pytest.raises(NeuropaintError, match=r"'drift': Input should be greater than or equal"):
        build_config(MotionConfig, drift=-1)
    motion = WMotion(MotionConfig(), NUM_WS, W_DIM)
    with pytest.raises(NeuropaintError, match=r"'target_ws' must have shape \(4, 8\), got \(8,\)"):
        motion.step(np.zeros(W_DIM), 0.1)
    with pytest.raises(NeuropaintError, match=r"'dt' must be a non-negative number, got -0.1"):
        motion.step(None, -0.1)
    with pytest.raises(NeuropaintError, match=r"'target_ws' holds non-finite values"):
        motion.step(np.full((NUM_WS, W_DIM), np.nan), 0.1)
    with pytest.raises(NeuropaintError, match=r"'w_avg' must have shape \(8,\)"):
        WMotion(MotionConfig(), NUM_WS, W_DIM, w_avg=np.zeros(3))
    with pytest.raises(NeuropaintError, match=r"'config' must be a MotionConfig"):
        WMotion({"tau": 1.0}, NUM_WS, W_DIM)


def test_accepts_torch_targets():
    torch = pytest.importorskip("torch")
    motion = WMotion(MotionConfig(tau=0.1), NUM_WS, W_DIM)
    ws = motion.step(torch.ones(NUM_WS, W_DIM), 5.0)
    np.testing.assert_allclose(ws, _target(1.0), atol=1e-6)
