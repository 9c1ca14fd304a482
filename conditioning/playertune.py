"""Fit the player to the performer: replay the calibration's out-of-block posteriors.

How firmly a :class:`conditioning.player.StatePlayer` should hold a state depends on the
performer and the paradigm: guided 20 s blocks of eyes closed want a sticky filter that
outlasts a few seconds of ambiguous EEG; cued 4 s motor-imagery trials, separated by rest the
state model knows nothing about, want a filter that lets go within a second. A single default
cannot serve both (on the BioSig motor-imagery recording the sticky default painted 0.69
balanced accuracy where a looser player paints 0.80, against a feature ceiling of 0.85;
``benchmarks/instrument.py``).

So the calibration picks the player's settings itself. It has what is needed for an honest
rehearsal: the **out-of-block** posteriors of its labelled rows (each from a state model that
never saw that block, :func:`conditioning.statemodel.fit_state_model`) and the full model's
posteriors of the rows between blocks (rest, instructions), on the recording's own clock.
Each candidate setting plays that timeline exactly as the live loop would (one
:class:`StatePlayer`, one row at a time), and is scored by

    balanced accuracy of the committed state on the labelled rows
    - :data:`EXCURSION_COST` x wrong excursions per minute of labelled time,

where a *wrong excursion* is a commit, inside a block, to a state that is not the block's:
on the projector, a hard cut to the wrong painting and usually another one back. The best
score wins among the settings that also answer in time: a change of state (a block whose
state differs from the block before) commits within ``response`` seconds of the block's
start at the median (default :data:`RESPONSE_S`, the 2 s an instrument must answer in,
issue 14). When no setting does, the best score wins and the report says how slow it is.
Settings given explicitly (``--hold``, ``--switch-rate``) are kept as given.

The figure the report gives is that of the chosen setting, which was selected on the same
rows, so it is mildly optimistic (a maximum over :data:`GRID`'s few dozen settings); the
state model's own accuracy stays the block-cross-validated one.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from conditioning.player import PlayerConfig, StatePlayer

__all__ = ["EXCURSION_COST", "GRID", "RESPONSE_S", "PlayerRehearsal", "Timeline", "rehearse",
           "tune_player"]

# The candidate settings. ``switch_scale`` multiplies the rate a calibration's block length
# suggests (one change per block; :func:`conditioning.calibrate.player_for`).
GRID: dict[str, tuple[float, ...]] = {
    "evidence_tau": (0.25, 0.5, 1.0, 2.0),
    "switch_scale": (0.5, 1.0, 2.0, 4.0),
    "hold": (0.0, 0.2, 0.5),
}
# One wrong excursion a minute costs as much as 1 % of balanced accuracy.
EXCURSION_COST = 0.01
# Seconds from the start of a new state to the commit, at the median, that a setting must
# keep to in the rehearsal when any setting can.
RESPONSE_S = 2.0
_MAX_SWITCH_RATE = 10.0  # PlayerConfig's own bound


@dataclass
class Timeline:
    """One recording's clean rows as the player would meet them.

    Attributes
    ----------
    times : ndarray, shape (n,)
        EEG time of each row (seconds), increasing.
    posteriors : ndarray, shape (n, n_states)
    labels : ndarray of int, shape (n,)
        State index of a labelled row, -1 between blocks.
    blocks : ndarray of int, shape (n,)
        Block of a labelled row, -1 between blocks.
    starts : dict of int to float
        Each block's start (seconds, the rows' clock): the state asked from then on.
    """

    times: np.ndarray
    posteriors: np.ndarray
    labels: np.ndarray
    blocks: np.ndarray
    starts: dict[int, float] = field(default_factory=dict)


@dataclass
class PlayerRehearsal:
    """How one player setting played the calibration."""

    config: PlayerConfig
    balanced_accuracy: float
    recall: dict[str, float]
    excursions_per_minute: float
    score: float
    commit_p50: float | None = None  # seconds from a new state's start to its commit
    response: float | None = None  # the median commit it was asked to keep to

    def to_dict(self) -> dict:
        return {"config": self.config.model_dump(mode="json"),
                "balanced_accuracy": round(self.balanced_accuracy, 4),
                "recall": {s: round(r, 4) for s, r in self.recall.items()},
                "excursions_per_minute": round(self.excursions_per_minute, 3),
                "commit_p50_s": None if self.commit_p50 is None else round(self.commit_p50, 2),
                "score": round(self.score, 4)}

    def summary(self) -> str:
        c = self.config
        line = (f"player: evidence {c.evidence_tau:g} s, switch rate {c.switch_rate:.3g}/s, "
                f"hold {c.hold:g} s; on the calibration's out-of-block posteriors it commits "
                f"to the right state on {self.balanced_accuracy:.0%} of labelled rows "
                f"(balanced) with {self.excursions_per_minute:.1f} wrong excursions a minute")
        if self.commit_p50 is not None:
            line += f", a new state committed after {self.commit_p50:.1f} s (median)"
            if self.response is not None and self.commit_p50 > self.response:
                line += (f"; no setting answered within {self.response:g} s: the state "
                         f"model needs more evidence (longer or clearer calibration blocks)")
        return line


def rehearse(config: PlayerConfig, timelines: Sequence[Timeline], states: Sequence[str],
             hop: float) -> PlayerRehearsal:
    """Play ``timelines`` with ``config`` and score the committed state (see the module)."""
    k = len(states)
    hits = np.zeros(k)
    counts = np.zeros(k)
    excursions = 0
    delays: list[float] = []
    targets = np.zeros((k, 1, 1), dtype=np.float32)
    for line in timelines:
        player = StatePlayer(targets, np.zeros((0, 1, 1), np.float32), states, [], config)
        committed = np.full(len(line.times), -1)
        for i, (t, post) in enumerate(zip(line.times, line.posteriors, strict=True)):
            player.push(post, np.zeros(0), float(t))
            committed[i] = -1 if player.committed is None else player.committed
        labelled = line.labels >= 0
        np.add.at(counts, line.labels[labelled], 1)
        np.add.at(hits, line.labels[labelled], committed[labelled] == line.labels[labelled])
        same_block = labelled[1:] & (line.blocks[1:] == line.blocks[:-1])
        moved = committed[1:] != committed[:-1]
        wrong = (committed[1:] >= 0) & (committed[1:] != line.labels[1:])
        excursions += int((same_block & moved & wrong).sum())
        delays += _commit_delays(line, committed)
    present = counts > 0
    recall = np.where(present, hits / np.maximum(counts, 1), 0.0)
    balanced = float(recall[present].mean()) if present.any() else 0.0
    minutes = max(counts.sum() * hop / 60.0, 1e-9)
    per_minute = excursions / minutes
    return PlayerRehearsal(config, balanced, {s: float(recall[i]) for i, s in enumerate(states)
                                              if present[i]},
                           per_minute, balanced - EXCURSION_COST * per_minute,
                           float(np.median(delays)) if delays else None)


def _commit_delays(line: Timeline, committed: np.ndarray) -> list[float]:
    """Seconds from the start of each block that changes the state to its commit (to the
    block's last row when it never commits)."""
    order = sorted(line.starts, key=line.starts.get)
    label_of = {b: int(line.labels[line.blocks == b][0]) for b in order
                if np.any(line.blocks == b)}
    delays = []
    for n, b in enumerate(order):
        if b not in label_of or (n and label_of.get(order[n - 1]) == label_of[b]):
            continue  # no rows, or the same state as before: nothing to answer
        start = line.starts[b]
        stop = line.starts[order[n + 1]] if n + 1 < len(order) else math.inf
        inside = (line.times >= start) & (line.times < stop)
        right = np.flatnonzero(inside & (committed == label_of[b]))
        last = line.times[inside].max() if inside.any() else start
        delays.append(float(line.times[right[0]] - start) if len(right) else float(last - start))
    return delays


def tune_player(timelines: Sequence[Timeline], states: Sequence[str], base: PlayerConfig,
                hop: float, fixed: Sequence[str] = (), response: float | None = RESPONSE_S
                ) -> tuple[PlayerRehearsal, int]:
    """The best setting of :data:`GRID` around ``base`` (fields in ``fixed`` kept as they
    are) among those whose median commit is within ``response`` seconds (all of them when
    none is, or ``response`` is None); returns its rehearsal and how many were tried."""
    options = {
        "evidence_tau": (base.evidence_tau,) if "evidence_tau" in fixed else GRID["evidence_tau"],
        "switch_rate": (base.switch_rate,) if "switch_rate" in fixed else tuple(
            min(base.switch_rate * s, _MAX_SWITCH_RATE) for s in GRID["switch_scale"]),
        "hold": (base.hold,) if "hold" in fixed else GRID["hold"],
    }
    tried = [rehearse(base.model_copy(update=dict(zip(options, values, strict=True))),
                      timelines, states, hop)
             for values in itertools.product(*options.values())]
    in_time = [r for r in tried if response is not None and r.commit_p50 is not None
               and r.commit_p50 <= response]
    best = max(in_time or tried, key=lambda r: (round(r.score, 12), _firmness(r.config)))
    best.response = response
    return best, len(tried)


def _firmness(config: PlayerConfig) -> tuple[float, float, float]:
    """Between equal scores, the steadier setting: longer hold, lower rate, more evidence."""
    return (config.hold, -config.switch_rate, config.evidence_tau)
