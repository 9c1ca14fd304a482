"""Atomic file writes: a reader never sees a half-written file.

Everything is written to a temporary file in the destination folder, flushed and fsynced,
then renamed over the target (``os.replace`` is atomic on POSIX and Windows). If the writer
dies half-way, the previous file, if any, is untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``.

    Use it for writers that want a file name (``np.save``, ``fig.savefig``, ``raw.save``).
    The temporary name keeps the target's suffix so that such writers pick the right format.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}",
                                    dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp makes the file private (0600); give it the mode a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary file for writing; it replaces ``path`` only if the block succeeds."""
    if not any(m in mode for m in "wx") or "+" in mode:
        raise ValueError(f"'mode' must be a write mode ('w', 'wb'), got {mode!r}.")
    with atomic_path(path) as tmp, open(tmp, mode.replace("x", "w"), **kwargs) as fh:
        yield fh
        fh.flush()


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty ``PATH.partial`` folder to fill; on success it replaces ``path``.

    A writer killed half-way leaves only ``PATH.partial`` (cleared by the next write), never a
    folder under the final name that looks complete; an exception removes it at once.
    """
    target = Path(path)
    partial = target.with_name(target.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if target.exists():
        shutil.rmtree(target)
    partial.rename(target)
    _fsync_dir(target.parent)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` atomically (UTF-8)."""
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` atomically."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any, *, indent: int = 2) -> Path:
    """Write ``obj`` as JSON atomically, with a trailing newline."""
    return write_text(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n")


def append_json_line(path: str | os.PathLike, record: Any) -> None:
    """Append one JSON line to a log (``stats.jsonl``) and make it durable before returning."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def trim_json_lines(path: str | os.PathLike, key: str, upto: float) -> tuple[list[dict], int]:
    """Keep the lines of a JSON-lines log (``stats.jsonl``) whose ``key`` is at most ``upto``.

    A resumed run calls it with the resumed snapshot's counter, so that lines written after
    that snapshot (by the run that was stopped) do not make the curve loop back; a fresh run in
    an old folder calls it with 0. The file is rewritten atomically, and only when something
    is dropped. Returns the kept records and the number of dropped lines (0 if no file).
    """
    target = Path(path)
    if not target.exists():
        return [], 0
    lines = [line for line in target.read_text(encoding="utf-8").splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]
    keep = [record.get(key, 0) <= upto + 1e-9 for record in records]
    dropped = keep.count(False)
    if dropped:
        write_text(target, "".join(line + "\n" for line, k in zip(lines, keep, strict=True)
                                   if k))
    return [record for record, k in zip(records, keep, strict=True) if k], dropped


def _fsync_dir(folder: Path) -> None:
    # Persist the rename itself; not possible (nor needed) on Windows.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
