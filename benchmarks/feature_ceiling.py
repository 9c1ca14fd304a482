"""How much of the brain state do the EEG features themselves carry?

The fidelity benchmark's responsiveness asks a linear probe to read the state back from the
paintings. A painting can hardly carry more than the feature rows it was painted from, so the
same probe on those rows is its ceiling. This benchmark measures that ceiling without any
generator or encoder, for several feature windows, Welch segment counts and motion time
constants, so the cost of a short, responsive window can be seen against the goal (0.9).

The fidelity benchmark's held-out synthetic sessions (``fidelity.synthetic_session``: the
four named states cycling, each session starting at another state) →
:func:`eeg.features.extract` with each :class:`~eeg.features.FeatureSpec` → each session
standardised by its own baseline and followed by the live loop's motion
(:func:`conditioning.metrics.smoothed_features`) → the frames in a settled state (the window
plus 3 time constants after a switch) → a linear probe, cross-validated by session
(:func:`conditioning.metrics.linear_probe`): the fidelity figures' ridge probe, and linear
discriminant analysis, which does not mask a state that lies between the others (as
``neutral`` does here), so the two together tell the probe's limit from the features'.

Prints one JSON line per setting and probe, with the recall of each state. Run:
``python benchmarks/feature_ceiling.py`` (under a minute on a 2-core CPU).
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
import warnings

import numpy as np
from fidelity import HELD_OUT_SEED, synthetic_session  # the benchmark beside this one
from pydantic import ValidationError

from conditioning.metrics import GOALS, PROBES, linear_probe, settled_mask, smoothed_features
from conditioning.motion import MotionConfig
from datasets.eeg import row_labels
from eeg.features import FeatureSpec, extract
from neuropaint.validate import NeuropaintError, check_option


def floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def ceiling(raws: list, spec: FeatureSpec, tau: float, probes: list[str]) -> list[dict]:
    motion = MotionConfig(tau=tau)
    rows, labels, times, groups = [], [], [], []
    for i, raw in enumerate(raws):
        frame = extract(raw, spec)
        rows.append(smoothed_features(frame.values, frame.times, motion))
        labels.append(np.asarray(row_labels(raw, frame.times), dtype=object))
        times.append(frame.times)
        groups.append(np.full(len(frame.times), i))
    rows, labels, times, groups = map(np.concatenate, (rows, labels, times, groups))
    settled = settled_mask(labels, times, spec.window + 3.0 * tau, groups)  # labelled ones
    results = []
    for method in probes:
        probe = linear_probe(rows[settled], labels[settled], groups[settled], method=method)
        results.append({"probe": method, "accuracy": round(probe["accuracy"], 3),
                        "per_class": {k: round(v, 3) for k, v in probe["per_class"].items()},
                        "frames": int(settled.sum()), "features": int(rows.shape[1])})
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", default="2,3,4", help="feature windows (s), a list")
    parser.add_argument("--segments", default="3,5", help="Welch segments per window, a list")
    parser.add_argument("--taus", default="0.5,1", help="motion time constants (s), a list")
    parser.add_argument("--probes", default="ridge,lda",
                        help=f"linear probes, a list of {', '.join(PROBES)}")
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--session-seconds", type=float, default=90.0)
    parser.add_argument("--state-seconds", type=float, default=15.0)
    parser.add_argument("--channels", type=int, default=16, choices=[8, 16, 32, 64])
    parser.add_argument("--sfreq", type=float, default=128.0)
    parser.add_argument("--seed", type=int, default=0, help="the fidelity benchmark's --seed: "
                        "its held-out sessions are measured")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")  # MNE's notes on filtering short synthetic recordings
    try:
        grid = list(itertools.product(floats(args.windows),
                                      [int(v) for v in floats(args.segments)],
                                      floats(args.taus)))
        specs = {(w, n): FeatureSpec(window=w, n_segments=n) for w, n, _ in grid}
        if not grid or min(tau for *_, tau in grid) <= 0:
            raise ValueError("the lists must be non-empty and the taus positive")
        probes = [check_option(v.strip(), "probes", PROBES)
                  for v in args.probes.split(",") if v.strip()]
        if not probes:
            raise ValueError("'probes' must name at least one probe")
    except ValidationError as error:
        first = error.errors()[0]
        parser.error(f"FeatureSpec {first['loc'][0]}: {first['msg']}")
    except (ValueError, NeuropaintError) as error:
        parser.error(str(error))
    raws = [synthetic_session(k, args.seed + HELD_OUT_SEED, args) for k in range(args.sessions)]
    for window, n_segments, tau in grid:
        start = time.perf_counter()
        spec = specs[(window, n_segments)]
        results = ceiling(raws, spec, tau, probes)
        seconds = round(time.perf_counter() - start, 1)
        for result in results:
            print(json.dumps({"benchmark": "feature_ceiling", "window_s": window,
                              "n_segments": n_segments, "tau_s": tau, **result,
                              "goal": GOALS["responsiveness"]["accuracy"],
                              "sessions": args.sessions, "channels": args.channels,
                              "seconds": seconds}), flush=True)


if __name__ == "__main__":
    main()
