"""The EEG feature store: many recordings, read, cleaned and turned into feature rows once.

``python -m datasets.eeg build FILES... OUT`` runs :func:`eeg.io.read_raw` ->
:func:`eeg.preprocess.clean` -> :func:`eeg.features.extract` over each recording and stores,
per feature row: the features (float32), the time of its newest sample, the recording it
came from, a state label (:mod:`eeg.labels`: from the recording's annotation spans, e.g.
``eyes_closed``, or from event codes with ``--events``/``--event-window``) and a
``valid`` flag (False inside bad spans or where samples were not finite: rows are flagged, not
dropped). The manifest keeps the FeatureSpec and PreprocessConfig used and each recording's
clean report. A recording that cannot be used is skipped, with the reason, and the build goes
on.

:class:`EEGStore` reads a store back (numpy, or torch through :meth:`EEGStore.torch_dataset`)
and splits it **by recording**: rows of one recording never land on both sides of a split.
Splitting within a recording leaks its slow drifts and block structure into the test set, the
trap that inflated early EEG-to-image results (Li et al. 2021, IEEE TPAMI 43:316).

Store layout (a folder)::

    manifest.json     format version, feature names, spec, preprocess config, recordings,
                      labels, the label options (events, event window, states), skipped
                      files
    features.npy      float32 [n_rows, n_features]
    times.npy         float64 [n_rows], seconds from the recording's first sample
    recording.npy     int32   [n_rows], index into manifest["recordings"]
    label.npy         int16   [n_rows], index into manifest["labels"] (0 = "" unlabelled)
    valid.npy         bool    [n_rows]
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import mne
import numpy as np

from eeg.features import FeatureFrame, FeatureSpec, extract
from eeg.io import UNITS_CHOICES, read_raw
from eeg.labels import (
    check_label_balance,
    check_label_options,
    labels_at,
    parse_event_map,
    parse_event_window,
    parse_states,
)
from eeg.preprocess import PreprocessConfig, clean
from neuropaint import __version__
from neuropaint.atomic import atomic_folder, write_json
from neuropaint.logs import run_cli, setup_logging
from neuropaint.validate import NeuropaintError, load_config_file, read_manifest

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
KIND = "neuropaint.eeg_store"
_ARRAYS = ("features", "times", "recording", "label", "valid")
UNLABELLED = ""


@dataclass
class _Recording:
    """One recording's rows, before they are stacked into the store."""

    frame: FeatureFrame
    labels: list[str]
    meta: dict


def row_labels(
    raw: mne.io.BaseRaw,
    times: np.ndarray,
    *,
    events: Mapping[str, str] | None = None,
    event_window: Sequence[float] | None = None,
    states: Iterable[str] | None = None,
) -> list[str]:
    """The state label of each row (``""`` for none), as :func:`eeg.labels.labels_at` gives it.

    By default the shortest annotation with a duration that covers the row's time wins, so a
    trial marker spanning several cues does not swallow them; ``BAD_*``, ``EDGE_*`` and
    ``blink`` never label a row. ``events``/``event_window`` label from cue codes instead, and
    ``states`` keeps only the named states (see :func:`eeg.labels.state_annotations`).
    """
    return labels_at(raw, times, events=events, event_window=event_window, states=states)


def session_name(path: Path) -> str:
    """A recording's name: the file name without extensions and MNE's ``_raw``/``_eeg``."""
    name = path.name
    for suffix in (".gz", ".fif", ".edf", ".bdf", ".gdf", ".vhdr", ".set", ".xdfz", ".xdf"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    for suffix in ("_raw", "_eeg", "-raw", "-eeg"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name or path.name


def process_recording(path: Path, spec: FeatureSpec, config: PreprocessConfig,
                      stream: str | None = None, *, events: Mapping[str, str] | None = None,
                      event_window: Sequence[float] | None = None,
                      states: Iterable[str] | None = None, units: str = "auto") -> _Recording:
    """Read, clean, featurise and label one recording (raises NeuropaintError when it can't).

    ``events``, ``event_window`` and ``states`` choose the labels, as in :func:`row_labels`;
    ``units`` is :func:`eeg.io.read_raw`'s (a correction lands in the clean report).
    """
    raw = read_raw(path, stream=stream, units=units, verbose="error")
    cleaned, report = clean(raw, config)
    frame = extract(cleaned, spec)
    labels = row_labels(cleaned, frame.times, events=events, event_window=event_window,
                        states=states)
    meta = {
        "path": str(path),
        "session": session_name(path),
        "sfreq": float(raw.info["sfreq"]),
        "ch_names": list(raw.ch_names),
        "duration": float(raw.times[-1] + 1.0 / raw.info["sfreq"]),
        "n_rows": len(frame),
        "n_valid": int(frame.valid.sum()),
        "clean_report": report.to_dict(),
    }
    return _Recording(frame, labels, meta)


def build(
    files: Sequence[str | Path],
    out: str | Path,
    *,
    spec: FeatureSpec | None = None,
    config: PreprocessConfig | None = None,
    stream: str | None = None,
    overwrite: bool = False,
    progress: bool = False,
    events: Mapping[str, str] | None = None,
    event_window: Sequence[float] | None = None,
    states: Iterable[str] | None = None,
    units: str = "auto",
) -> dict:
    """Build an EEG feature store from recordings; returns the build report.

    The store is written into ``OUT.partial`` and renamed to ``OUT`` at the end, so a build
    that dies half-way never leaves a folder that looks like a complete store.

    Rows are labelled as :func:`row_labels` does: by default from the recordings' own
    annotation spans; ``events`` (code -> state) with ``event_window`` (tmin, tmax) label from
    cue codes instead, and ``states`` keeps only the named states. A recording these options
    do not fit (a code or state it lacks) is skipped with the reason. When one label covers
    90 % or more of the rows, a :class:`eeg.labels.LabelWarning` says so.
    """
    spec = spec or FeatureSpec()
    config = config or PreprocessConfig()
    labelling = check_label_options(events, event_window, states)  # once, before any file
    out = Path(out)
    if not files:
        raise NeuropaintError("no recordings given: pass one or more EEG files.")
    if out.exists():
        if not overwrite:
            raise NeuropaintError(f"{out} already exists; pass --overwrite to replace it.")
        if not (out / "manifest.json").exists() and any(out.iterdir()):
            raise NeuropaintError(f"{out} exists and is not an EEG store; refusing to replace "
                                  f"it.")
    started = time.perf_counter()
    recordings: list[_Recording] = []
    skipped: list[dict] = []
    names: list[str] | None = None
    iterator = files
    if progress:
        from tqdm import tqdm

        iterator = tqdm(files, desc="recordings", unit="file")
    for file in iterator:
        path = Path(file)
        try:
            recording = process_recording(path, spec, config, stream, units=units,
                                          **labelling)
        except (NeuropaintError, FileNotFoundError, IsADirectoryError, PermissionError,
                ValueError, OSError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            logger.warning("skipped %s: %s", path, reason)
            skipped.append({"path": str(path), "reason": reason})
            continue
        if names is None:
            names = recording.frame.names
        elif recording.frame.names != names:
            missing = sorted(set(names) - set(recording.frame.names))
            extra = sorted(set(recording.frame.names) - set(names))
            reason = (f"its features differ from the first recording's (missing {missing[:4]}, "
                      f"extra {extra[:4]}): use the same montage, or level='channels' with "
                      f"shared labels")
            logger.warning("skipped %s: %s", path, reason)
            skipped.append({"path": str(path), "reason": reason})
            continue
        if len(recording.frame) == 0:
            skipped.append({"path": str(path), "reason": "no feature rows"})
            continue
        recordings.append(recording)
    if not recordings:
        detail = "; ".join(f"{Path(s['path']).name}: {s['reason']}" for s in skipped[:3])
        raise NeuropaintError(f"no usable recording among {len(files)} file(s) ({detail}).")

    all_labels = [lab for r in recordings for lab in r.labels]
    check_label_balance(all_labels)
    seen_labels = set(all_labels) - {UNLABELLED}
    # The states the user named keep their order; the rest follow alphabetically.
    named = labelling["states"] or list(dict.fromkeys((labelling["events"] or {}).values()))
    ordered = [name for name in named if name in seen_labels]
    label_names = [UNLABELLED, *ordered, *sorted(seen_labels - set(ordered))]
    label_index = {name: i for i, name in enumerate(label_names)}
    arrays = {
        "features": np.concatenate([r.frame.values for r in recordings]).astype(np.float32),
        "times": np.concatenate([r.frame.times for r in recordings]).astype(np.float64),
        "recording": np.concatenate([np.full(len(r.frame), i, dtype=np.int32)
                                     for i, r in enumerate(recordings)]),
        "label": np.array([label_index[lab] for r in recordings for lab in r.labels],
                          dtype=np.int16),
        "valid": np.concatenate([r.frame.valid for r in recordings]).astype(bool),
    }
    manifest = {
        "format_version": FORMAT_VERSION,
        "kind": KIND,
        "neuropaint_version": __version__,
        "feature_names": names,
        "feature_spec": spec.model_dump(mode="json"),
        "preprocess_config": config.model_dump(mode="json"),
        "labels": label_names,
        "label_options": labelling,
        "recordings": [dict(r.meta, id=i) for i, r in enumerate(recordings)],
        "skipped": skipped,
        "n_rows": len(arrays["times"]),
    }
    with atomic_folder(out) as partial:
        for key, value in arrays.items():
            np.save(partial / f"{key}.npy", value)
        write_json(partial / "manifest.json", manifest)  # last: its presence marks completeness
    report = {
        "recordings_in": len(files),
        "recordings_used": len(recordings),
        "skipped": skipped,
        "rows": manifest["n_rows"],
        "valid_rows": int(arrays["valid"].sum()),
        "features": len(names),
        "labels": {name: int((arrays["label"] == i).sum()) for i, name in enumerate(label_names)},
        "seconds": round(time.perf_counter() - started, 3),
    }
    write_json(out / "report.json", report)
    return report


class EEGStore:
    """A built EEG feature store, read back.

    Attributes
    ----------
    features : ndarray of float32, shape (n_rows, n_features)
    times : ndarray, shape (n_rows,)
    recording : ndarray of int32, shape (n_rows,)
    valid : ndarray of bool, shape (n_rows,)
    names : list of str
    spec : FeatureSpec
    recordings : list of dict
    """

    def __init__(self, path: str | Path, *, mmap: bool = True):
        self.path = Path(path)
        manifest = read_manifest(self.path, "manifest.json", kind=KIND,
                                 format_version=FORMAT_VERSION, what="an EEG store",
                                 verb="build")
        self.manifest = manifest
        mode = "r" if mmap else None
        arrays = {}
        for key in _ARRAYS:
            try:
                arrays[key] = np.load(self.path / f"{key}.npy", mmap_mode=mode)
            except (OSError, ValueError) as exc:
                raise NeuropaintError(f"{self.path / (key + '.npy')} is missing or corrupt "
                                      f"({exc}).") from None
        n_rows = manifest["n_rows"]
        if any(len(a) != n_rows for a in arrays.values()):
            raise NeuropaintError(f"{self.path} is inconsistent: arrays do not all have "
                                  f"{n_rows} rows.")
        self.features = arrays["features"]
        self.times = arrays["times"]
        self.recording = arrays["recording"]
        self.label_index = arrays["label"]
        self.valid = arrays["valid"]
        self.names: list[str] = list(manifest["feature_names"])
        self.spec = FeatureSpec.model_validate(manifest["feature_spec"])
        self.preprocess_config = PreprocessConfig.model_validate(manifest["preprocess_config"])
        self.label_names: list[str] = list(manifest["labels"])
        self.recordings: list[dict] = list(manifest["recordings"])

    def __len__(self) -> int:
        return len(self.times)

    @property
    def labels(self) -> np.ndarray:
        """State label of each row as strings, shape (n_rows,)."""
        return np.asarray(self.label_names, dtype=object)[self.label_index]

    def rows(self, recordings: Sequence[int] | None = None, *, only_valid: bool = True
             ) -> np.ndarray:
        """Row indices of the given recordings (all when None), valid ones only by default."""
        mask = np.ones(len(self), dtype=bool)
        if recordings is not None:
            mask &= np.isin(self.recording, np.asarray(recordings))
        if only_valid:
            mask &= self.valid
        return np.flatnonzero(mask)

    def split(self, test_fraction: float = 0.2, *, seed: int = 0, only_valid: bool = True
              ) -> tuple[np.ndarray, np.ndarray]:
        """Train and test row indices, split **by recording** (never within one).

        At least one recording goes to each side when there are two or more; with a single
        recording the split is impossible and that is an error, not a silent leak.
        """
        if not 0.0 < test_fraction < 1.0:
            raise NeuropaintError(f"'test_fraction' must be between 0 and 1, got "
                                  f"{test_fraction!r}.")
        ids = np.arange(len(self.recordings))
        if len(ids) < 2:
            raise NeuropaintError("a split by recording needs at least 2 recordings, the "
                                  "store has 1; add another session.")
        order = np.random.default_rng(seed).permutation(ids)
        n_test = min(len(ids) - 1, max(1, round(test_fraction * len(ids))))
        test_ids, train_ids = np.sort(order[:n_test]), np.sort(order[n_test:])
        return (self.rows(train_ids, only_valid=only_valid),
                self.rows(test_ids, only_valid=only_valid))

    def torch_dataset(self, rows: np.ndarray | None = None):
        """A ``torch.utils.data.Dataset`` of ``(features float32 [F], label int64)`` pairs."""
        import torch

        rows = self.rows() if rows is None else np.asarray(rows)
        features = torch.from_numpy(np.ascontiguousarray(self.features[rows]))
        labels = torch.from_numpy(self.label_index[rows].astype(np.int64))
        return torch.utils.data.TensorDataset(features, labels)

    def summary(self) -> str:
        lines = [
            f"EEG store {self.path}",
            f"rows: {len(self)} ({int(self.valid.sum())} valid), features: {len(self.names)}",
            f"recordings: {len(self.recordings)}",
        ]
        for rec in self.recordings:
            lines.append(f"  [{rec['id']}] {rec['session']}: {rec['n_rows']} rows, "
                         f"{rec['sfreq']:g} Hz, {len(rec['ch_names'])} ch")
        counts = np.bincount(self.label_index, minlength=len(self.label_names))
        lines.append("labels: " + ", ".join(f"{n or '(none)'} {c}" for n, c in
                                            zip(self.label_names, counts, strict=True)))
        if self.manifest["skipped"]:
            lines.append("skipped at build:")
            lines += [f"  {s['path']}: {s['reason']}" for s in self.manifest["skipped"]]
        return "\n".join(lines)


def _load_config(path: str | None, model):
    return model() if path is None else load_config_file(path, model)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m datasets.eeg",
        description="Build or inspect an EEG feature store (read -> clean -> features).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_build = sub.add_parser("build", help="build a store from EEG recordings",
                             formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p_build.add_argument("inputs", nargs="+", metavar="FILE... OUT",
                         help="recordings (EDF, BDF, GDF, FIF, .vhdr, .set, XDF), then the "
                         "output folder")
    p_build.add_argument("--spec", help="FeatureSpec as a JSON file (none: FeatureSpec())")
    p_build.add_argument("--preprocess", help="PreprocessConfig as a JSON file (none: the "
                         "defaults)")
    p_build.add_argument("--stream", help="XDF only: the EEG stream's name or type")
    p_build.add_argument("--units", choices=UNITS_CHOICES, default="auto",
                         help="unit of the files' numbers: auto trusts each file unless its "
                         "amplitude cannot be EEG in that unit, then rescales and says so in "
                         "its clean report; V, uV or mV override the files (default: auto)")
    p_build.add_argument("--overwrite", action="store_true", help="replace an existing store")
    labels = p_build.add_argument_group(
        "state labels", "By default each annotation with a duration labels the rows it "
        "covers, the shortest where they overlap; BAD_*, EDGE_* and blink never do.")
    labels.add_argument("--states", metavar="A,B",
                        help="keep only these annotations as states, comma-separated (none: "
                        "all; with --events: a subset of its states)")
    labels.add_argument("--events", metavar="CODE=STATE,...",
                        help="label from cue codes instead of spans, e.g. "
                        "769=left_hand,770=right_hand (none: the annotations' own spans)")
    labels.add_argument("--event-window", metavar="TMIN,TMAX",
                        help="with --events: the span each cue labels, seconds from the cue, "
                        "e.g. 0.5,4.5 (none: each cue's own duration)")
    p_info = sub.add_parser("info", help="print a store's summary")
    p_info.add_argument("store", help="EEG feature store folder (python -m datasets.eeg build)")
    args = parser.parse_args(argv)
    setup_logging("WARNING")
    if args.command == "info":
        print(EEGStore(args.store).summary())
        return 0
    if len(args.inputs) < 2:
        raise NeuropaintError("build needs at least one recording and the output folder.")
    *files, out = args.inputs
    # Parsed here, not by argparse's type=, which would hide our message behind its own.
    events = None if args.events is None else parse_event_map(args.events)
    window = None if args.event_window is None else parse_event_window(args.event_window)
    states = None if args.states is None else parse_states(args.states)
    report = build(files, out, spec=_load_config(args.spec, FeatureSpec),
                   config=_load_config(args.preprocess, PreprocessConfig),
                   stream=args.stream, overwrite=args.overwrite, progress=True,
                   events=events, event_window=window, states=states, units=args.units)
    print(f"{report['rows']} rows ({report['valid_rows']} valid) from "
          f"{report['recordings_used']}/{report['recordings_in']} recordings -> {out}")
    for item in report["skipped"]:
        print(f"skipped {item['path']}: {item['reason']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
