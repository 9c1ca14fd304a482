"""conditioning.player: the sticky state filter, hysteresis and controls of a profile."""

from __future__ import annotations

import numpy as np
import pytest

from conditioning.player import PlayerConfig, StatePlayer
from neuropaint.validate import NeuropaintError, build_config

STATES = ["a", "b", "c"]
HOP = 1 / 15  # one pushed row per frame at 15 fps


def player(**config) -> StatePlayer:
    targets = np.stack([np.full((4, 8), k, dtype=np.float32) for k in range(len(STATES))])
    directions = np.zeros((1, 4, 8), dtype=np.float32)
    directions[0, :, 0] = 1.0
    return StatePlayer(targets, directions, STATES, ["relax"], PlayerConfig(**config))


def confident(state: int, p: float = 0.9) -> np.ndarray:
    out = np.full(len(STATES), (1 - p) / (len(STATES) - 1))
    out[state] = p
    return out


def play(pl: StatePlayer, state: int, seconds: float, start: float, p: float = 0.9) -> float:
    t = start
    for _ in range(round(seconds / HOP)):
        pl.push(confident(state, p), np.array([0.5]), t)
        t += HOP
    return t


def test_commits_to_a_held_state_and_paints_its_target():
    pl = player()
    assert pl.target() is None and pl.describe()["committed"] is None
    play(pl, 1, 2.0, 0.0)
    assert pl.describe()["committed"] == "b"
    np.testing.assert_allclose(pl.target(), 1.0)
    assert pl.describe()["posteriors"]["b"] > 0.9


def test_holds_through_a_blink_and_a_half_second_excursion():
    pl = player()
    t = play(pl, 0, 10.0, 0.0)
    assert pl.describe()["committed"] == "a"
    t += 0.6  # a blink: no clean rows for 0.6 s, nothing is pushed
    t = play(pl, 0, 2.0, t)
    t = play(pl, 2, 0.5, t)  # half a second that reads as another state
    assert pl.describe()["committed"] == "a"
    play(pl, 0, 2.0, t)
    assert pl.describe()["committed"] == "a"


def test_a_real_change_commits_within_two_seconds():
    pl = player()
    t = play(pl, 0, 10.0, 0.0)
    change = t
    while pl.describe()["committed"] != "c":
        t = play(pl, 2, HOP, t)
        assert t - change < 2.0, "the change did not commit within 2 s"


def test_hold_delays_the_commit_and_controls_move_within_the_target():
    quick, slow = player(hold=0.0), player(hold=1.5)
    for pl in (quick, slow):
        play(pl, 0, 5.0, 0.0)
    t_quick = t_slow = 5.0
    while quick.describe()["committed"] != "b":
        t_quick = play(quick, 1, HOP, t_quick)
    while slow.describe()["committed"] != "b":
        t_slow = play(slow, 1, HOP, t_slow)
    assert t_slow - t_quick >= 1.4
    pl = player(control_tau=0.0, control_amount=2.0)
    t = play(pl, 0, 2.0, 0.0)
    pl.push(confident(0), np.array([1.0]), t)
    target = pl.target()
    assert target[0, 0] == pytest.approx(pl.targets[0, 0, 0] + 2.0)  # +amount x direction
    pl.push(confident(0), np.array([0.5]), t + HOP)
    assert pl.target()[0, 0] == pytest.approx(pl.targets[0, 0, 0])  # the middle adds nothing


def test_bad_player_settings_are_one_line_errors():
    with pytest.raises(NeuropaintError, match="hold"):
        build_config(PlayerConfig, hold=-1)
    with pytest.raises(NeuropaintError, match="switch_rate"):
        build_config(PlayerConfig, switch_rate=0)


def test_crossfade_limits_the_speed_so_a_change_of_state_morphs():
    from conditioning.motion import MotionConfig, WMotion

    pl = player(crossfade=1.5)
    # Targets 0, 1, 2 everywhere: the closest two are 1 apart per element, sqrt(8) per w.
    assert pl.speed_limit() == pytest.approx(np.sqrt(8) / 1.5)
    assert player(crossfade=0).speed_limit() is None
    motion = WMotion(MotionConfig(tau=0.1, max_step=pl.speed_limit()), 4, 8,
                     w_avg=np.zeros(8, np.float32))
    motion.step(pl.targets[0], 1.0)
    t, ws = 0.0, motion.ws
    while np.abs(ws - pl.targets[1]).max() > 1e-3:
        ws = motion.step(pl.targets[1], HOP)
        t += HOP
        assert t < 10
    assert t >= 1.5 - HOP  # at least the crossfade, though tau alone would take ~0.3 s
