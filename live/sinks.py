"""Frame sinks of the live engine besides the session recording: the viewer and a frame folder;
and the snapshot writer of the stage controls.

Each sink has ``write(frame, status)`` and ``close()`` (see :class:`live.engine.Sink`); none
may hold up the render loop, so the slow ones (disk) work from a thread of their own.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from live.engine import Frame
from neuropaint.atomic import atomic_path
from neuropaint.validate import NeuropaintError, check_int, check_option

logger = logging.getLogger(__name__)

__all__ = ["FRAME_FORMATS", "FrameFolder", "SnapshotWriter", "ViewerSink"]

FRAME_FORMATS = ("jpg", "png")


class ViewerSink:
    """Hands each frame and the engine's status to a :class:`live.viewer.Viewer`.

    ``extra()``, when given, adds to each status what the engine does not know (live.render:
    ``simulated_state``, the state a simulated headset streams).
    """

    def __init__(self, viewer, extra: Callable[[], dict] | None = None):
        self.viewer = viewer
        self.extra = extra

    def write(self, frame: Frame, status: dict) -> None:
        if self.extra is not None:
            status = {**status, **self.extra()}
        self.viewer.publish(frame.image, status)

    def close(self) -> None:
        self.viewer.stop()


class FrameFolder:
    """Numbered image files (``frame_000000.jpg``, ...) written by a background thread.

    A file's number is the frame's index in the session (the status line's ``frame``, a
    session recording's row), so with ``every`` > 1 the numbers step by ``every``.

    Parameters
    ----------
    folder : str | Path
        Created if needed; existing frame files are refused rather than overwritten.
    fmt : {"jpg", "png"}
    quality : int
        JPEG quality.
    backlog : int
        Frames waiting for the disk before new ones are skipped (and counted): the render
        loop is never held up by a slow disk.
    every : int
        Keep one frame in ``every`` (the first, then every ``every``-th).
    max_frames : int | None
        Stop writing after this many files; None: no limit.
    """

    def __init__(self, folder: str | Path, fmt: str = "jpg", *, quality: int = 92,
                 backlog: int = 64, every: int = 1, max_frames: int | None = None):
        self.folder = Path(folder)
        self.fmt = check_option(fmt, "format", FRAME_FORMATS)
        self.every = check_int(every, "--frames-every", minimum=1)
        self.max_frames = (None if max_frames is None
                           else check_int(max_frames, "--frames-max", minimum=1))
        if self.folder.exists() and any(self.folder.glob("frame_*")):
            raise NeuropaintError(f"{self.folder} already holds frame files; choose a new "
                                  f"--frames folder (nothing was overwritten).")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.quality = quality
        self.skipped = 0
        self.written = 0
        self._offered = 0  # frames handed to write()
        self._taken = 0  # of those, queued for the disk
        self._queue: queue.Queue = queue.Queue(maxsize=backlog)
        self._thread = threading.Thread(target=self._work, name="frame-folder", daemon=True)
        self._thread.start()

    def write(self, frame: Frame, status: dict) -> None:
        offered = self._offered
        self._offered += 1
        if offered % self.every or self.full:
            return
        try:
            self._queue.put_nowait((frame.index, frame.image))
            self._taken += 1
            if self.full:
                logger.info("%d frame file(s) in %s: the --frames-max limit; no more are "
                            "written", self._taken, self.folder)
        except queue.Full:
            self.skipped += 1
            if self.skipped in (1, 100, 1000):
                logger.warning("the disk cannot keep up: %d frame file(s) skipped so far",
                               self.skipped)

    @property
    def full(self) -> bool:
        """True once ``max_frames`` files have been queued: later frames are not kept."""
        return self.max_frames is not None and self._taken >= self.max_frames

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            index, image = item
            path = self.folder / f"frame_{index:06d}.{self.fmt}"
            try:
                with atomic_path(path) as tmp:
                    options = {"quality": self.quality} if self.fmt == "jpg" else {}
                    Image.fromarray(image).save(tmp, format="JPEG" if self.fmt == "jpg"
                                                else "PNG", **options)
                self.written += 1
            except OSError as exc:
                logger.error("could not write %s: %s", path, exc)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)
        logger.info("%d frame file(s) written to %s", self.written, self.folder)
        if self.skipped:
            logger.warning("%d frame file(s) were skipped (the disk was too slow)",
                           self.skipped)


_SNAPSHOT_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class SnapshotWriter:
    """Saves snapshots (``/neuropaint/snapshot``) from a background thread.

    Each snapshot is ``snapshot_NNNN_frame_FFFFFF[_NAME].png`` (the painting at the painted
    size) and a ``.npy`` of the same name (its ``ws``, float32 ``[num_ws, w_dim]``), written
    atomically; NNNN counts this session's snapshots.

    Parameters
    ----------
    folder : str | Path
        Created with the first snapshot.
    backlog : int
        Snapshots waiting for the disk before new ones are refused (the loop never waits).
    """

    def __init__(self, folder: str | Path, *, backlog: int = 8):
        self.folder = Path(folder)  # created with the first snapshot
        self.saved: list[Path] = []  # PNG paths written
        self._count = 0
        self._queue: queue.Queue = queue.Queue(maxsize=backlog)
        self._thread = threading.Thread(target=self._work, name="snapshots", daemon=True)
        self._thread.start()

    def save(self, index: int, image: np.ndarray, ws: np.ndarray, name: str | None = None
             ) -> Path:
        """Queue one snapshot; returns the PNG's path (written shortly after)."""
        if name is not None and not _SNAPSHOT_NAME.match(name):
            raise NeuropaintError(f"a snapshot's name may hold letters, digits, '_' and '-' "
                                  f"(at most 64), got {name!r}.")
        stem = f"snapshot_{self._count:04d}_frame_{index:06d}" + (f"_{name}" if name else "")
        path = self.folder / f"{stem}.png"
        try:
            self._queue.put_nowait((path, image, np.asarray(ws, dtype=np.float32)))
        except queue.Full:
            raise NeuropaintError("the disk is still writing earlier snapshots.") from None
        self._count += 1
        return path

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            path, image, ws = item
            try:
                with atomic_path(path.with_suffix(".npy")) as tmp:
                    np.save(tmp, ws)
                with atomic_path(path) as tmp:
                    Image.fromarray(image).save(tmp, format="PNG")
                self.saved.append(path)
                logger.info("snapshot %s", path)
            except OSError as exc:
                logger.error("could not write %s: %s", path, exc)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)
