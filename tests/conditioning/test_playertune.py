"""conditioning.playertune: the calibration rehearses player settings on its own posteriors."""

from __future__ import annotations

import numpy as np

from conditioning.player import PlayerConfig
from conditioning.playertune import Timeline, rehearse, tune_player

STATES = ["a", "b"]
HOP = 0.1


def timeline(blocks: list[tuple[int, float]], rest: float, bursts: dict[int, tuple[float, float]],
             p: float = 0.8, seed: int = 0) -> Timeline:
    """Blocks of (state, seconds) with ``rest`` seconds of 50/50 posteriors between them;
    ``bursts`` maps a block to (offset, seconds) of rows that read as the other state."""
    rng = np.random.default_rng(seed)
    times, post, labels, block_ids, starts = [], [], [], [], {}
    t = 0.0
    for b, (state, seconds) in enumerate(blocks):
        starts[b] = t + rest
        for _ in range(round(rest / HOP)):
            times.append(t)
            post.append([0.5, 0.5])
            labels.append(-1)
            block_ids.append(-1)
            t += HOP
        for i in range(round(seconds / HOP)):
            offset, length = bursts.get(b, (-1.0, 0.0))
            shown = 1 - state if offset <= i * HOP < offset + length else state
            q = np.clip(p + rng.normal(0, 0.05), 0.55, 0.99)
            row = [1 - q, 1 - q]
            row[shown] = q
            times.append(t)
            post.append(row)
            labels.append(state)
            block_ids.append(b)
            t += HOP
    return Timeline(np.array(times), np.array(post), np.array(labels), np.array(block_ids),
                    starts)


def test_rehearsal_counts_right_rows_and_wrong_excursions():
    line = timeline([(0, 20.0), (1, 20.0)], 2.0, {0: (10.0, 3.0)})
    sticky = rehearse(PlayerConfig(switch_rate=0.05, evidence_tau=2.0), [line], STATES, HOP)
    jumpy = rehearse(PlayerConfig(switch_rate=2.0, evidence_tau=0.25), [line], STATES, HOP)
    assert jumpy.excursions_per_minute > 0  # it follows the 3 s burst
    assert sticky.excursions_per_minute == 0
    assert 0.5 < sticky.balanced_accuracy <= 1.0
    assert set(sticky.recall) == set(STATES)
    assert sticky.score == sticky.balanced_accuracy  # no excursions, no cost


def test_the_chosen_setting_beats_the_default_and_ignores_short_bursts():
    from conditioning.playertune import GRID

    bursts = {b: (8.0, 1.0) for b in range(0, 6, 2)}  # 1 s that reads as the other state
    line = timeline([(k % 2, 20.0) for k in range(6)], 3.0, bursts, p=0.7)
    base = PlayerConfig(switch_rate=1 / 20.0)
    chosen, tried = tune_player([line], STATES, base, HOP)
    assert tried == len(GRID["evidence_tau"]) * len(GRID["switch_scale"]) * len(GRID["hold"])
    assert chosen.score >= rehearse(base, [line], STATES, HOP).score
    loosest = PlayerConfig(switch_rate=4 / 20.0, evidence_tau=0.25, hold=0.0)
    assert rehearse(loosest, [line], STATES, HOP).excursions_per_minute > 0
    assert chosen.excursions_per_minute == 0  # the bursts do not cut the painting
    assert chosen.balanced_accuracy > 0.9


def test_settings_given_by_the_performer_are_kept():
    line = timeline([(0, 10.0), (1, 10.0)], 2.0, {})
    given = PlayerConfig(hold=1.0, switch_rate=0.3)
    chosen, tried = tune_player([line], STATES, given, HOP, fixed=["hold", "switch_rate"])
    assert chosen.config.hold == 1.0 and chosen.config.switch_rate == 0.3
    assert tried == 4  # only the evidence time constant was free
    assert "hold 1 s" in chosen.summary()


def test_the_chosen_setting_answers_a_new_state_in_time_when_one_can():
    from conditioning.playertune import GRID, RESPONSE_S

    # Weak evidence (0.6) in 20 s blocks: the stickiest settings take long to commit.
    line = timeline([(k % 2, 20.0) for k in range(8)], 2.0, {}, p=0.6, seed=3)
    base = PlayerConfig(switch_rate=1 / 20.0)
    everything = [rehearse(base.model_copy(update={"evidence_tau": e, "hold": h}), [line],
                           STATES, HOP) for e in GRID["evidence_tau"] for h in GRID["hold"]]
    assert max(r.commit_p50 for r in everything) > RESPONSE_S  # some are too slow
    chosen, _ = tune_player([line], STATES, base, HOP)
    assert chosen.commit_p50 <= RESPONSE_S
    assert f"committed after {chosen.commit_p50:.1f} s" in chosen.summary()
    # Asked for the impossible, it still plays, and says so.
    slowest, _ = tune_player([line], STATES, base, HOP, response=0.01)
    assert "no setting answered within 0.01 s" in slowest.summary()
    assert slowest.commit_p50 > 0.01
