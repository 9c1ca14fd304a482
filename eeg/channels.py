"""Channel labels, standard montages and scalp regions.

Regions are the coarse map used by region-level features: five lobes (frontal, central,
parietal, occipital, temporal) times three sides (left, midline, right), following the
10-20 / 10-10 naming rules (odd numbers on the left, even on the right, ``z`` on the
midline; Jasper 1958, Chatrian et al. 1985). A channel whose label is not standard is placed
by its sensor position when it has one; a channel placed neither way is reported, and the
features fall back to whole-head values for it (we never refuse a recording for its labels).
"""

from __future__ import annotations

import functools
import logging
import re
import warnings

import mne
import numpy as np

logger = logging.getLogger(__name__)

LOBES = ("frontal", "central", "parietal", "occipital", "temporal")
SIDES = ("left", "midline", "right")
REGIONS = tuple(f"{lobe}_{side}" for lobe in LOBES for side in SIDES)

# Longest prefixes first, so that "FC" wins over "F" and "PO" over "P".
_PREFIX_TO_LOBE = {
    "FP": "frontal", "AF": "frontal", "F": "frontal",
    "FC": "central", "C": "central",
    "FT": "temporal", "T": "temporal", "TP": "temporal",
    "CP": "parietal", "P": "parietal",
    "PO": "occipital", "O": "occipital", "I": "occipital",
}
_LABEL_RE = re.compile(r"^(FP|AF|FC|FT|CP|TP|PO|F|C|T|P|O|I)(Z|\d{1,2})$")
# Old 10-20 names for the temporal row (T3/T4 = T7/T8, T5/T6 = P7/P8).
_NOT_SCALP = {"A1", "A2", "M1", "M2"}


@functools.cache
def standard_montage() -> mne.channels.DigMontage:
    """The 10-05 template montage (343 positions), by its current MNE name."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        for name in ("colin27_1005", "standard_1005"):
            if name in mne.channels.get_builtin_montages():
                return mne.channels.make_standard_montage(name)
    raise RuntimeError("MNE ships no 10-05 template montage")  # pragma: no cover


@functools.cache
def _standard_lookup() -> dict[str, str]:
    return {name.upper(): name for name in standard_montage().ch_names}


def normalize_label(label: str) -> str:
    """Map a label onto its standard 10-05 spelling when it is one (``'EEG FP1-REF'`` -> ``'Fp1'``).

    Unknown labels are returned stripped but otherwise unchanged.
    """
    text = label.strip()
    core = re.sub(r"^(EEG|EXG)[\s_-]*", "", text, flags=re.IGNORECASE)
    core = re.sub(r"[-_](REF|LE|AVG|A1|A2|M1|M2|CZ)$", "", core, flags=re.IGNORECASE).strip()
    return _standard_lookup().get(core.upper(), text)


def is_standard_label(label: str) -> bool:
    """True when ``label`` (as given, case-insensitively) names a 10-05 position."""
    return label.strip().upper() in _standard_lookup()


def region_from_label(label: str) -> str | None:
    """The region of a 10-20 / 10-10 label, or None when the label does not follow the system."""
    name = label.strip().upper()
    if name in _NOT_SCALP:
        return None
    match = _LABEL_RE.match(name)
    if match is None:
        return None
    prefix, suffix = match.groups()
    lobe = _PREFIX_TO_LOBE[prefix]
    if suffix == "Z":
        side = "midline"
    else:
        side = "left" if int(suffix) % 2 == 1 else "right"
    return f"{lobe}_{side}"


def region_from_position(pos: np.ndarray) -> str | None:
    """The region of a sensor at ``pos`` (metres, MNE head frame: +x right, +y nose, +z up).

    Placement by angle: the azimuth in the horizontal plane decides the lobe, the lateral
    offset the side. None when the position is unknown (NaN or zero).
    """
    pos = np.asarray(pos, dtype=float)
    if pos.shape != (3,) or not np.all(np.isfinite(pos)) or np.linalg.norm(pos) < 1e-6:
        return None
    x, y, z = pos / np.linalg.norm(pos)
    side = "midline" if abs(x) < 0.2 else ("left" if x < 0 else "right")
    # Lateral sensors at or below the ear line are temporal, as FT7, T7, TP7 are.
    if abs(x) > 0.75 and z < 0.1 and abs(y) < 0.5:
        return f"temporal_{side}"
    if y > 0.35:
        lobe = "frontal"
    elif y > -0.25:
        lobe = "central"
    elif y > -0.75:
        lobe = "parietal"
    else:
        lobe = "occipital"
    return f"{lobe}_{side}"


def channel_regions(info: mne.Info | None, ch_names: list[str]) -> dict[str, str | None]:
    """Region of each channel: from its label when standard, else from its position in ``info``."""
    positions: dict[str, np.ndarray] = {}
    if info is not None:
        for ch in info["chs"]:
            positions[ch["ch_name"]] = ch["loc"][:3]
    regions: dict[str, str | None] = {}
    for name in ch_names:
        region = region_from_label(normalize_label(name))
        if region is None and name in positions:
            region = region_from_position(positions[name])
        regions[name] = region
    return regions


def set_standard_montage(raw: mne.io.BaseRaw) -> list[str]:
    """Give EEG channels with standard labels their template positions; return the unplaced ones.

    Channels that already have positions keep them. Labels are matched case-insensitively
    (``FP1`` finds ``Fp1``); the channel names themselves are not changed.
    """
    picks = mne.pick_types(raw.info, eeg=True, exclude=[])
    names = [raw.ch_names[i] for i in picks]
    has_pos = {
        raw.ch_names[i]
        for i in picks
        if np.all(np.isfinite(raw.info["chs"][i]["loc"][:3]))
        and np.linalg.norm(raw.info["chs"][i]["loc"][:3]) > 1e-6
    }
    if len(has_pos) == len(names):
        return []
    template = standard_montage().get_positions()["ch_pos"]
    lookup = _standard_lookup()
    ch_pos = {}
    for name in names:
        std = lookup.get(normalize_label(name).upper())
        if name not in has_pos and std is not None:
            ch_pos[name] = template[std]
    unplaced = [n for n in names if n not in has_pos and n not in ch_pos]
    if ch_pos:
        # Keep positions the recording already had, add the template ones.
        for name in has_pos:
            idx = raw.ch_names.index(name)
            ch_pos[name] = raw.info["chs"][idx]["loc"][:3].copy()
        montage = mne.channels.make_dig_montage(ch_pos=ch_pos, coord_frame="head")
        raw.set_montage(montage, on_missing="ignore", verbose="error")
    if unplaced:
        logger.info("no standard position for %d channel(s): %s", len(unplaced), unplaced)
    return unplaced


def standard_channel_set(n_channels: int) -> list[str]:
    """Standard 10-20/10-10 layouts of 8, 16, 32 or 64 channels (as common headsets use)."""
    if n_channels not in _CHANNEL_SETS:
        valid = ", ".join(str(n) for n in _CHANNEL_SETS)
        raise ValueError(f"'n_channels' must be one of {valid}, got {n_channels!r}.")
    return list(_CHANNEL_SETS[n_channels])


_CHANNEL_SETS = {
    8: ("Fz", "C3", "Cz", "C4", "Pz", "PO7", "Oz", "PO8"),
    16: ("Fp1", "Fp2", "F3", "Fz", "F4", "T7", "C3", "Cz", "C4", "T8", "P3", "Pz", "P4",
         "O1", "Oz", "O2"),
    32: ("Fp1", "Fp2", "AF3", "AF4", "F7", "F3", "Fz", "F4", "F8", "FC5", "FC1", "FC2", "FC6",
         "T7", "C3", "Cz", "C4", "T8", "CP5", "CP1", "CP2", "CP6", "P7", "P3", "Pz", "P4",
         "P8", "PO3", "PO4", "O1", "Oz", "O2"),
    64: ("Fp1", "Fpz", "Fp2", "AF7", "AF3", "AFz", "AF4", "AF8", "F7", "F5", "F3", "F1",
         "Fz", "F2", "F4", "F6", "F8", "FT7", "FC5", "FC3", "FC1", "FCz", "FC2", "FC4", "FC6",
         "FT8", "T7", "C5", "C3", "C1", "Cz", "C2", "C4", "C6", "T8", "TP7", "CP5", "CP3",
         "CP1", "CPz", "CP2", "CP4", "CP6", "TP8", "P7", "P5", "P3", "P1", "Pz", "P2", "P4",
         "P6", "P8", "PO7", "PO3", "POz", "PO4", "PO8", "O1", "Oz", "O2", "Iz", "TP9", "TP10"),
}
