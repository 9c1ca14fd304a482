"""State labels of a recording, from its annotations or from event codes (cues).

Data sets mark brain states in two ways, and this module reads both into one form: state
spans, as :class:`mne.Annotations` whose descriptions are state names.

- **Spans**: annotations with a duration name the state of the stretch they cover
  (``eyes_closed`` for 60 s, as :func:`eeg.synthetic.make_raw` writes). Where spans overlap,
  the most specific one, the shortest covering span, wins: a trial marker (BioSig's ``768``,
  8 s) around a cue span (``769`` for 1.25 s) does not swallow it.
- **Cues** (event codes): annotations of (almost) no duration that mark an instant, such as the
  ``769``/``770`` left/right-hand cues of a motor-imagery GDF (BCI Competition IV 2a, Brunner
  et al. 2008). An event map ``{"769": "left_hand", "770": "right_hand"}`` and a window
  ``(tmin, tmax)`` turn each cue into the span ``[onset + tmin, onset + tmax)``, as MNE's
  :class:`mne.Epochs` cuts ``tmin``/``tmax`` around events. Without a map, cues label nothing:
  an annotation counts as a cue when it lasts one sample or less (MNE's GDF reader gives
  zero-duration events one sample).

Artifact markers never become states: ``BAD_*`` and ``EDGE_*`` (MNE's conventions) and
``blink`` (what :mod:`eeg.synthetic` writes for eye blinks).

Times are seconds from the recording's first sample, the clock of feature rows
(:attr:`eeg.features.FeatureFrame.times`); annotation onsets are moved onto that clock as MNE
does it (minus ``raw.first_time``) and rounded to the sample grid.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import mne
import numpy as np

from neuropaint.validate import NeuropaintError, check_positive, check_unique

__all__ = [
    "BALANCE_THRESHOLD",
    "LabelWarning",
    "check_label_balance",
    "check_label_options",
    "is_artifact",
    "labels_at",
    "parse_event_map",
    "parse_event_window",
    "parse_recording_states",
    "parse_states",
    "state_annotations",
    "whole_recording_blocks",
]

UNLABELLED = ""
BALANCE_THRESHOLD = 0.9  # One label on this share of the rows or more earns a warning.
_ARTIFACT_PREFIXES = ("BAD", "EDGE")
_BLINK = "blink"
_LIST_LIMIT = 12  # Descriptions listed in a message before "(+N more)".
_HINT = ("pass --events CODE=STATE,... --event-window TMIN,TMAX to label from cues, or "
         "--states A,B to choose the annotations that are states")


class LabelWarning(UserWarning):
    """The labels of a recording are probably not what the user wants (cues, one label)."""


# ---------------------------------------------------------------------------------------------
# Parsing and checking the options
# ---------------------------------------------------------------------------------------------


def is_artifact(description: str) -> bool:
    """Whether an annotation marks an artifact (``BAD_*``, ``EDGE_*``, ``blink``), never a state.

    BrainVision markers read back as ``TYPE/DESCRIPTION`` (``Comment/blink``), so the part
    after the last ``/`` counts too.
    """
    text = str(description)
    name = text.rsplit("/", 1)[-1].strip()
    return (text.upper().startswith(_ARTIFACT_PREFIXES)
            or name.upper().startswith(_ARTIFACT_PREFIXES) or name.lower() == _BLINK)


def _check_state_name(name: object, what: str) -> str:
    text = str(name).strip()
    if not text:
        raise NeuropaintError(f"'{what}' has an empty state name.")
    if is_artifact(text):
        raise NeuropaintError(f"'{what}' names {text!r}, an artifact marker (BAD_*, EDGE_*, "
                              f"blink), never a state.")
    return text


def parse_event_map(text: str) -> dict[str, str]:
    """Parse ``"769=left_hand,770=right_hand"`` into ``{"769": "left_hand", ...}``.

    Parameters
    ----------
    text : str
        Comma-separated ``CODE=STATE`` items. Several codes may share a state; a code may
        appear once.

    Returns
    -------
    events : dict of str to str
        Annotation description (event code) -> state name, in the order given.
    """
    items = [item.strip() for item in str(text).split(",")]
    if not any(items):
        raise NeuropaintError("'events' is empty; expected CODE=STATE items such as "
                              "'769=left_hand,770=right_hand'.")
    pairs = []
    for item in items:
        parts = item.split("=")
        if len(parts) != 2 or not parts[0].strip():
            raise NeuropaintError(f"'events' item {item!r} is not CODE=STATE (e.g. "
                                  f"'769=left_hand').")
        if not parts[1].strip():
            raise NeuropaintError(f"'events' item {item!r} has an empty state name.")
        pairs.append((parts[0].strip(), parts[1].strip()))
    return _check_event_map(dict(_unique_codes(pairs)))


def _unique_codes(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    check_unique([code for code, _ in pairs], "events codes")
    return pairs


def _check_event_map(events: Mapping) -> dict[str, str]:
    """An event map with string codes and valid state names (for maps given as a dict)."""
    if not isinstance(events, Mapping) or not events:
        raise NeuropaintError(f"'events' must be a non-empty mapping of code to state, got "
                              f"{events!r}.")
    pairs = [(str(code).strip(), _check_state_name(state, "events"))
             for code, state in events.items()]
    if any(not code for code, _ in pairs):
        raise NeuropaintError("'events' has an empty code.")
    return dict(_unique_codes(pairs))


def parse_event_window(text: str) -> tuple[float, float]:
    """Parse ``"0.5,4.5"`` into ``(tmin, tmax)``, seconds relative to each cue.

    Returns
    -------
    tmin, tmax : float
        Finite, with ``tmin < tmax``; ``tmin`` may be negative (before the cue).
    """
    parts = str(text).split(",")
    try:
        values = tuple(float(part) for part in parts)
    except ValueError:
        values = ()
    if len(values) != 2:
        raise NeuropaintError(f"'event_window' must be TMIN,TMAX in seconds (e.g. '0.5,4.5'), "
                              f"got {text!r}.")
    return _check_event_window(values)


def _check_event_window(window: Sequence[float]) -> tuple[float, float]:
    try:
        tmin, tmax = (float(value) for value in window)
    except (TypeError, ValueError):
        raise NeuropaintError(f"'event_window' must be two numbers (tmin, tmax), got "
                              f"{window!r}.") from None
    if not (math.isfinite(tmin) and math.isfinite(tmax)):
        raise NeuropaintError(f"'event_window' must be finite, got ({tmin}, {tmax}).")
    if tmin >= tmax:
        raise NeuropaintError(f"'event_window' needs tmin < tmax, got ({tmin}, {tmax}).")
    return tmin, tmax


def parse_states(text: str) -> list[str]:
    """Parse ``"eyes_closed,focused"`` into a list of unique state names."""
    names = [_check_state_name(name, "states") for name in str(text).split(",")]
    return check_unique(names, "states")


def parse_recording_states(text: str) -> list[str]:
    """Parse ``"eyes_open,eyes_closed,eyes_open"``: one state per recording, repeats allowed."""
    return [_check_state_name(name, "recording states") for name in str(text).split(",")]


def whole_recording_blocks(raw: mne.io.BaseRaw, state: str, block_s: float) -> mne.Annotations:
    """A recording that is one state throughout (a resting eyes-open run, say) as blocks of
    ``block_s`` seconds named ``state``, so that cross-validation by block has blocks to
    hold out. A last piece shorter than half a block joins the one before it.

    Returns
    -------
    annotations : mne.Annotations
        Onsets in seconds from the first sample, ``orig_time=None``, as
        :func:`state_annotations` gives them.
    """
    state = _check_state_name(state, "recording states")
    block_s = check_positive(block_s, "block seconds")
    duration = raw.n_times / raw.info["sfreq"]
    edges = [*np.arange(0.0, duration, block_s), duration]
    if len(edges) > 2 and edges[-1] - edges[-2] < block_s / 2:
        del edges[-2]
    starts, stops = np.array(edges[:-1]), np.array(edges[1:])
    return mne.Annotations(starts, stops - starts, [state] * len(starts), orig_time=None)


def _check_states(states: Iterable[str] | None) -> list[str] | None:
    if states is None:
        return None
    if isinstance(states, str):
        return parse_states(states)
    names = [_check_state_name(name, "states") for name in states]
    if not names:
        raise NeuropaintError("'states' is empty; name at least one state or pass None.")
    return check_unique(names, "states")


def check_label_options(
    events: Mapping[str, str] | None = None,
    event_window: Sequence[float] | None = None,
    states: Iterable[str] | None = None,
) -> dict:
    """Check the labelling options once, before any recording is read.

    Returns
    -------
    options : dict
        ``{"events": dict | None, "event_window": [tmin, tmax] | None, "states": list |
        None}``, normalised (string codes, floats) and JSON-ready, e.g. for a manifest; pass
        it on as ``**options`` to :func:`state_annotations` or :func:`labels_at`.
    """
    events = None if events is None else _check_event_map(events)
    window = None if event_window is None else _check_event_window(event_window)
    states = _check_states(states)
    if window is not None and events is None:
        raise NeuropaintError("'event_window' needs 'events' (CODE=STATE): it is the span each "
                              "cue labels.")
    if events is not None and states is not None:
        mapped = list(dict.fromkeys(events.values()))
        unknown = [s for s in states if s not in mapped]
        if unknown:
            raise NeuropaintError(f"'states' {unknown} are not states of 'events' "
                                  f"({', '.join(mapped)}).")
    return {"events": events, "event_window": None if window is None else list(window),
            "states": states}


def _describe_counts(descriptions: Iterable[str]) -> str:
    """``'768' ×288, '769' ×72, ... (+3 more)``, codes in numeric order, names alphabetical."""
    counts = Counter(str(d) for d in descriptions)
    if not counts:
        return "no annotations"

    def order(name: str) -> tuple:
        return (not name.isdigit(), int(name) if name.isdigit() else 0, name)

    names = sorted(counts, key=order)
    text = ", ".join(f"{name!r} ×{counts[name]}" for name in names[:_LIST_LIMIT])
    if len(names) > _LIST_LIMIT:
        text += f" (+{len(names) - _LIST_LIMIT} more)"
    return text


# ---------------------------------------------------------------------------------------------
# Spans
# ---------------------------------------------------------------------------------------------


def _resolve(starts: np.ndarray, stops: np.ndarray, names: np.ndarray, lengths: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Overlapping spans -> disjoint blocks ``(starts, stops, names)``; the shortest wins.

    Spans are ranked by ``lengths`` (their length before clipping to the recording: the edge
    of a recording says nothing about how specific a span is); at equal length the
    later-starting one wins, so the newer cue takes over. A block is a run of one source span:
    a long span cut by a shorter one becomes two blocks.
    """
    if len(starts) == 0:
        return np.empty(0), np.empty(0), np.empty(0, dtype=object)
    bounds = np.unique(np.concatenate([starts, stops]))
    owner = np.full(len(bounds) - 1, -1)  # the source span of each elementary interval
    # Paint the longest first, so the shortest (then the latest) is painted last and wins.
    for i in np.lexsort((starts, -lengths)):
        owner[np.searchsorted(bounds, starts[i]):np.searchsorted(bounds, stops[i])] = i
    change = np.flatnonzero(np.diff(owner) != 0) + 1
    firsts = np.concatenate([[0], change])
    lasts = np.concatenate([change, [len(owner)]])
    keep = owner[firsts] >= 0
    return bounds[firsts[keep]], bounds[lasts[keep]], names[owner[firsts[keep]]]


def _event_spans(onsets, durations, descriptions, usable, is_span, *, events, event_window,
                 states):
    """Starts, stops and state names of the cues that ``events`` maps (options checked)."""
    present = set(descriptions[usable])
    absent = [code for code in events if code not in present]
    if absent:
        raise NeuropaintError(f"'events' codes {absent} are not in the recording; it has "
                              f"{_describe_counts(descriptions[usable])}.")
    wanted = set(events.values() if states is None else states)
    chosen = np.array([d in events and events[d] in wanted for d in descriptions], dtype=bool)
    if event_window is None:
        short = chosen & ~is_span
        if short.any():
            raise NeuropaintError(f"{int(short.sum())} cue(s) of 'events' have no duration "
                                  f"({_describe_counts(descriptions[short])}); pass an event "
                                  f"window, e.g. --event-window 0.5,4.5.")
        starts, stops = onsets[chosen], onsets[chosen] + durations[chosen]
    else:
        starts = onsets[chosen] + event_window[0]
        stops = onsets[chosen] + event_window[1]
    names = np.array([events[d] for d in descriptions[chosen]], dtype=object)
    return starts, stops, names


def _annotation_spans(onsets, durations, descriptions, usable, is_span, *, states):
    """Starts, stops and names of the annotations that are spans (see _spans)."""
    cues = usable & ~is_span
    if states is None:
        chosen = usable & is_span
        if cues.any():
            warnings.warn(
                f"{int(cues.sum())} annotation(s) of (almost) no duration are cues, not spans, "
                f"and label nothing ({_describe_counts(descriptions[cues])}); to label from "
                f"them pass --events CODE=STATE --event-window TMIN,TMAX.",
                LabelWarning, stacklevel=5)
    else:
        absent = [s for s in states if s not in set(descriptions[usable])]
        if absent:
            raise NeuropaintError(f"'states' {absent} are not annotations of the recording; "
                                  f"it has {_describe_counts(descriptions[usable])}.")
        only_cues = [s for s in states if s not in set(descriptions[usable & is_span])]
        if only_cues:
            raise NeuropaintError(f"'states' {only_cues} occur only as cues of no duration, "
                                  f"not spans; pass --events CODE=STATE --event-window "
                                  f"TMIN,TMAX instead.")
        chosen = usable & is_span & np.isin(descriptions, states)
    return onsets[chosen], onsets[chosen] + durations[chosen], descriptions[chosen]


def _spans(onsets: np.ndarray, durations: np.ndarray, descriptions: np.ndarray, *,
           end: float, cue_duration: float, events: Mapping | None,
           event_window: Sequence[float] | None, states: Iterable[str] | None
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The disjoint state blocks ``(starts, stops, names)`` of annotations on the row clock.

    ``end`` is where the recording stops (spans are clipped to ``[0, end)``); an annotation of
    ``cue_duration`` seconds or less is a cue.
    """
    options = check_label_options(events, event_window, states)
    descriptions = np.asarray(descriptions, dtype=object)
    usable = np.array([not is_artifact(d) for d in descriptions], dtype=bool)
    is_span = durations > cue_duration
    if options["events"] is not None:
        starts, stops, names = _event_spans(onsets, durations, descriptions, usable, is_span,
                                            **options)
    else:
        starts, stops, names = _annotation_spans(onsets, durations, descriptions, usable,
                                                 is_span, states=options["states"])
    lengths = stops - starts
    starts, stops = np.clip(starts, 0.0, end), np.clip(stops, 0.0, end)
    inside = stops > starts
    return _resolve(starts[inside], stops[inside], names[inside], lengths[inside])


def _row_clock(raw: mne.io.BaseRaw) -> np.ndarray:
    """Annotation onsets of ``raw`` in seconds from its first sample, on the sample grid.

    ``raw.annotations`` count from ``meas_date`` (or, without one, from sample 0 before
    ``first_samp``); MNE moves them onto the data by subtracting ``raw.first_time``
    (``mne.annotations._sync_onset``), which holds with and without a ``meas_date``.
    """
    sfreq = raw.info["sfreq"]
    return raw.time_as_index(raw.annotations.onset - raw.first_time, use_rounding=True) / sfreq


def _raw_blocks(raw: mne.io.BaseRaw, *, events, event_window, states):
    sfreq = float(raw.info["sfreq"])
    annotations = raw.annotations
    return _spans(_row_clock(raw), np.asarray(annotations.duration, dtype=float),
                  np.asarray(annotations.description), end=raw.n_times / sfreq,
                  cue_duration=(1.0 + 1e-6) / sfreq, events=events,
                  event_window=event_window, states=states)


def state_annotations(
    raw: mne.io.BaseRaw,
    *,
    events: Mapping[str, str] | None = None,
    event_window: Sequence[float] | None = None,
    states: Iterable[str] | None = None,
) -> mne.Annotations:
    """The state spans of a recording, one annotation per labelled block.

    Parameters
    ----------
    raw : mne.io.Raw
        The recording; its annotations are read, never changed.
    events : dict of str to str | None
        Event code (annotation description, e.g. ``"769"``) -> state name. Each cue whose
        description is a mapped code becomes a span named by its state; all other
        annotations are ignored. A code that the recording lacks is an error listing the
        codes it has. None: the recording's own spans are the states.
    event_window : (tmin, tmax) | None
        With ``events``: each cue labels ``[onset + tmin, onset + tmax)``, in seconds. None:
        each cue's own duration (an error for cues without one).
    states : list of str | None
        Keep only these states. Without ``events``: the annotation descriptions that are
        states (each must be a span in the recording); with it, a subset of its states.
        None: every annotation with a duration, or every state of ``events``.

    Returns
    -------
    annotations : mne.Annotations
        Disjoint blocks in time order, descriptions = state names, ``orig_time=None``: onsets
        in seconds from the first sample (``raw.set_annotations`` puts them in place). Where
        spans overlap the shortest wins; spans are clipped to the recording.

    Warns
    -----
    LabelWarning
        Without ``events`` or ``states``, when the recording has cues (annotations of one
        sample or less), which label nothing.
    """
    starts, stops, names = _raw_blocks(raw, events=events, event_window=event_window,
                                       states=states)
    return mne.Annotations(starts, stops - starts, [str(n) for n in names], orig_time=None)


def labels_at(
    inst: mne.io.BaseRaw | mne.Annotations,
    times: Sequence[float] | np.ndarray,
    *,
    events: Mapping[str, str] | None = None,
    event_window: Sequence[float] | None = None,
    states: Iterable[str] | None = None,
) -> list[str]:
    """The state label at each time: that of the shortest state span covering it.

    Parameters
    ----------
    inst : mne.io.Raw | mne.Annotations
        A recording, whose annotations are read as :func:`state_annotations` does; or
        annotations with ``orig_time=None`` and onsets in seconds from the first sample (such
        as :func:`state_annotations` returns), where any positive duration makes a span.
    times : array-like, shape (n_times,)
        Seconds from the recording's first sample (e.g. ``FeatureFrame.times``, the time of
        each row's newest sample).
    events, event_window, states
        As in :func:`state_annotations`.

    Returns
    -------
    labels : list of str
        One per time; ``""`` where no state span covers it.
    """
    if isinstance(inst, mne.io.BaseRaw):
        starts, stops, names = _raw_blocks(inst, events=events, event_window=event_window,
                                           states=states)
    elif isinstance(inst, mne.Annotations):
        if inst.orig_time is not None:
            raise NeuropaintError("annotations with an orig_time count from the measurement "
                                  "date: pass the Raw they belong to, or annotations with "
                                  "orig_time=None (seconds from the first sample).")
        starts, stops, names = _spans(np.asarray(inst.onset, dtype=float),
                                      np.asarray(inst.duration, dtype=float),
                                      np.asarray(inst.description), end=np.inf,
                                      cue_duration=0.0, events=events,
                                      event_window=event_window, states=states)
    else:
        raise NeuropaintError(f"'inst' must be an mne Raw or mne.Annotations, got "
                              f"{type(inst).__name__}.")
    times = np.asarray(times, dtype=float)
    labels = np.full(len(times), UNLABELLED, dtype=object)
    if len(starts):
        block = np.searchsorted(starts, times, side="right") - 1  # the last block begun by t
        inside = (block >= 0) & (times < stops[np.maximum(block, 0)])
        labels[inside] = names[block[inside]]
    return [str(label) for label in labels]


def check_label_balance(labels: Sequence[str] | np.ndarray, *,
                        threshold: float = BALANCE_THRESHOLD, hint: str = _HINT
                        ) -> str | None:
    """Warn when one label covers ``threshold`` or more of the rows; returns the message.

    Two cases, checked in this order: most rows have no label at all (the annotations are
    cues, or name nothing), or one state covers nearly all labelled rows (a trial marker such
    as ``768`` that spans every trial). Either way the labels cannot teach states apart.

    Parameters
    ----------
    labels : sequence of str, shape (n_rows,)
        The label of each row, ``""`` for none.
    threshold : float
        The share, in (0, 1], that earns the warning.
    hint : str
        What to do about it, appended to the message.

    Returns
    -------
    message : str | None
        The one-line message that was warned (:class:`LabelWarning`), None when the labels
        are balanced enough or there are no rows.
    """
    if not 0.0 < threshold <= 1.0:
        raise NeuropaintError(f"'threshold' must be in (0, 1], got {threshold!r}.")
    counts = Counter(str(label) for label in labels)
    n_rows = sum(counts.values())
    if n_rows == 0:
        return None
    n_unlabelled = counts.pop(UNLABELLED, 0)
    n_labelled = n_rows - n_unlabelled
    message = None
    if n_unlabelled / n_rows >= threshold:
        message = (f"{n_unlabelled / n_rows:.0%} of the {n_rows} rows have no state label; "
                   f"{hint}.")
    elif n_labelled:
        top, n_top = counts.most_common(1)[0]
        if n_top / n_labelled >= threshold:
            message = (f"label {top!r} covers {n_top / n_labelled:.0%} of the {n_labelled} "
                       f"labelled rows; {hint}.")
    if message is not None:
        warnings.warn(message, LabelWarning, stacklevel=2)
    return message
