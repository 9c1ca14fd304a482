"""Recording a live session as it happens (``python -m live.render --record DIR``).

A session folder holds:

- ``session.json``: the stream (name, type, source_id, rate, labels, sensor positions), the
  encoder and the generator (paths and weights hash), the engine settings, start and end
  times;
- ``eeg.npeeg``: the raw EEG in volts with each sample's LSL timestamp and the stream's sensor
  positions (:mod:`eeg.npeeg`; ``eeg.io.read_raw(DIR)`` reads it like any recording, positions
  as its montage, so a session can be replayed, re-rendered and used for training);
- ``frames.csv``: one line per frame (index, LSL time ready, LSL time of the newest EEG sample,
  age, signal state, clean row, calibrating);
- ``ws.f32``: the painted latents, float32 ``[n_frames, num_ws, w_dim]`` back to back.

Everything is appended and flushed at least every ``flush_s`` seconds (default 0.5), so a
process killed with SIGKILL loses at most that much; ``session.json`` is rewritten atomically
when the session ends (``ended`` stays null after a crash, and the readers cope: they take
whole records only).

A guided calibration (``python -m live.calibrate``) records with :class:`CalibrationRecorder`:
the same ``eeg.npeeg``, its labelled blocks in ``eeg.annotations.csv`` (see :mod:`eeg.npeeg`;
``read_raw(DIR).annotations`` has them), and a ``session.json`` of kind
``neuropaint-calibration-session`` with the schedule; no frames.
"""

from __future__ import annotations

import csv
import logging
import time
from pathlib import Path

import numpy as np

from eeg.npeeg import NpeegWriter
from live.engine import Frame
from neuropaint.atomic import write_json
from neuropaint.validate import NeuropaintError, check_positive, read_manifest

logger = logging.getLogger(__name__)

__all__ = ["CALIBRATION_KIND", "FORMAT_VERSION", "FRAME_COLUMNS", "CalibrationRecorder",
           "SessionRecorder", "read_session"]

FORMAT_VERSION = 1
FRAME_COLUMNS = ("frame", "time", "eeg_time", "age_ms", "signal", "valid", "calibrating")
SESSION_NAME = "session.json"
CALIBRATION_KIND = "neuropaint-calibration-session"


def _new_folder(folder: str | Path) -> Path:
    """``folder``, created; an existing non-empty one is refused (nothing is overwritten)."""
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise NeuropaintError(f"{folder} already exists and is not empty; choose a new "
                              f"--record folder (nothing was overwritten).")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class SessionRecorder:
    """A sink that writes the session (EEG, frames, ws) into ``folder`` as it goes.

    Parameters
    ----------
    folder : str | Path
        Created; an existing non-empty folder is refused (nothing already written is lost).
    meta : live.source.StreamMeta
        The stream recorded.
    num_ws, w_dim : int
        Shape of one frame's latents.
    about : dict
        Encoder, generator and settings to keep in ``session.json``.
    flush_s : float
        Longest time between flushes.
    """

    def __init__(self, folder: str | Path, meta, *, num_ws: int, w_dim: int,
                 about: dict | None = None, flush_s: float = 0.5):
        self.folder = _new_folder(folder)
        self.flush_s = check_positive(flush_s, "flush_s")
        self.shape = (int(num_ws), int(w_dim))
        stream = meta.model_dump() if hasattr(meta, "model_dump") else dict(meta)
        self.session = {
            "kind": "neuropaint-live-session", "format_version": FORMAT_VERSION,
            "stream": stream, "ws_shape": list(self.shape), **(about or {}),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "ended": None,
            "n_samples": None, "n_frames": None,
        }
        write_json(self.folder / SESSION_NAME, self.session)
        self.eeg = NpeegWriter(self.folder / "eeg.npeeg", list(meta.ch_names), meta.sfreq,
                               meta={"stream": stream},
                               positions=getattr(meta, "positions", None))
        self._frames_fh = open(self.folder / "frames.csv", "w", newline="")
        self._csv = csv.writer(self._frames_fh)
        self._csv.writerow(FRAME_COLUMNS)
        self._ws_fh = open(self.folder / "ws.f32", "wb")
        self.n_frames = 0
        self._last_flush = time.monotonic()
        self._closed = False

    def write_eeg(self, data: np.ndarray, times: np.ndarray) -> None:
        """Raw samples (volts) as they arrive from the source."""
        self.eeg.append(data, times)
        self._maybe_flush()

    def write(self, frame: Frame, status: dict) -> None:
        ws = np.ascontiguousarray(frame.ws, dtype="<f4")
        if ws.shape != self.shape:
            raise NeuropaintError(f"frame ws has shape {ws.shape}, the session {self.shape}.")
        age = frame.age * 1000.0 if np.isfinite(frame.eeg_time) else float("nan")
        self._csv.writerow([frame.index, f"{frame.time:.6f}", f"{frame.eeg_time:.6f}",
                            f"{age:.2f}", frame.signal, int(frame.valid),
                            int(frame.calibrating)])
        self._ws_fh.write(ws.tobytes())
        self.n_frames += 1
        self._maybe_flush()

    def _maybe_flush(self) -> None:
        now = time.monotonic()
        if now - self._last_flush >= self.flush_s:
            self.flush()
            self._last_flush = now

    def flush(self) -> None:
        self.eeg.flush()
        self._frames_fh.flush()
        self._ws_fh.flush()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.eeg.close()
        self._frames_fh.close()
        self._ws_fh.close()
        self.session.update(ended=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                            n_samples=self.eeg.n_samples, n_frames=self.n_frames)
        write_json(self.folder / SESSION_NAME, self.session)
        logger.info("session recorded in %s (%d samples, %d frames)", self.folder,
                    self.eeg.n_samples, self.n_frames)


class CalibrationRecorder:
    """The EEG of a guided calibration and its labelled blocks, written as they happen.

    Parameters
    ----------
    folder : str | Path
        Created; an existing non-empty folder is refused.
    meta : live.source.StreamMeta
        The stream recorded.
    about : dict
        The schedule, states and instructions to keep in ``session.json``.
    flush_s : float
        Longest time between flushes of the EEG (each block is flushed as it is labelled).
    """

    def __init__(self, folder: str | Path, meta, *, about: dict | None = None,
                 flush_s: float = 0.5):
        self.folder = _new_folder(folder)
        self.flush_s = check_positive(flush_s, "flush_s")
        stream = meta.model_dump() if hasattr(meta, "model_dump") else dict(meta)
        self.session = {
            "kind": CALIBRATION_KIND, "format_version": FORMAT_VERSION, "stream": stream,
            **(about or {}), "blocks": [],
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "ended": None, "n_samples": None,
        }
        write_json(self.folder / SESSION_NAME, self.session)
        self.eeg = NpeegWriter(self.folder / "eeg.npeeg", list(meta.ch_names), meta.sfreq,
                               meta={"stream": stream},
                               positions=getattr(meta, "positions", None))
        self.first_time: float | None = None  # LSL time of the first sample written
        self.last_time: float | None = None
        self._last_flush = time.monotonic()
        self._closed = False

    @property
    def n_samples(self) -> int:
        return self.eeg.n_samples

    def write_eeg(self, data: np.ndarray, times: np.ndarray) -> None:
        """Raw samples (volts) as they arrive from the source."""
        if len(times) == 0:
            return
        self.eeg.append(data, times)
        if self.first_time is None:
            self.first_time = float(times[0])
        self.last_time = float(times[-1])
        now = time.monotonic()
        if now - self._last_flush >= self.flush_s:
            self.eeg.flush()
            self._last_flush = now

    def label(self, state: str, start: float, stop: float, *, complete: bool) -> None:
        """Label the block ``[start, stop)`` (LSL times) with ``state``; flushed at once."""
        self.eeg.flush()
        self.eeg.annotate(start, max(0.0, stop - start), state)
        self.session["blocks"].append({"state": state, "lsl_time": round(start, 6),
                                       "duration": round(max(0.0, stop - start), 6),
                                       "complete": complete})
        write_json(self.folder / SESSION_NAME, self.session)

    def close(self, **about) -> None:
        """Flush and close; ``about`` is added to ``session.json`` (how the calibration ended)."""
        if self._closed:
            return
        self._closed = True
        self.eeg.close()
        self.session.update(about, ended=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                            n_samples=self.eeg.n_samples)
        write_json(self.folder / SESSION_NAME, self.session)


def read_session(folder: str | Path) -> tuple[dict, list[dict], np.ndarray]:
    """A recorded session: ``(session.json, frame rows, ws [n_frames, num_ws, w_dim])``.

    After a crash the files may end mid-record: only whole frames present in both
    ``frames.csv`` and ``ws.f32`` are returned.
    """
    folder = Path(folder)
    session = read_manifest(folder, SESSION_NAME, kind="neuropaint-live-session",
                            format_version=FORMAT_VERSION, what="a live session",
                            verb="recording")
    shape = tuple(session.get("ws_shape") or ())
    if len(shape) != 2:
        raise NeuropaintError(f"{folder / SESSION_NAME} has no valid 'ws_shape'.")
    with open(folder / "frames.csv", newline="") as fh:
        rows = [row for row in csv.DictReader(fh) if len(row) == len(FRAME_COLUMNS)
                and None not in row.values()]
    raw_ws = np.fromfile(folder / "ws.f32", dtype="<f4")
    per = shape[0] * shape[1]
    n = min(len(rows), len(raw_ws) // per)
    if n == 0:
        raise NeuropaintError(f"{folder} holds no whole frame.")
    return session, rows[:n], raw_ws[: n * per].reshape(n, *shape)
