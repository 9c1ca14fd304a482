"""The art tile store on disk: an atomic writer and a memory-mapped reader.

Layout of a store folder::

    manifest.json      format name and version, tile size, shard list, build options,
                       one record per tile: source file, crop box, transform
    tiles-00000.npy    uint8 [n, size, size, 3] RGB tiles, standard .npy (np.load(mmap_mode='r'))
    tiles-00001.npy    ...
    report.json        (from `datasets.art build`) what was read, skipped, deduplicated

A crop box is ``(left, top, right, bottom)`` in pixels of the upright source image, as PIL's
boxes; a box that reaches outside the image (negative, or past its size) means padding.

Atomicity: a writer fills ``OUT.partial/`` and, only when its ``with`` block ends without an
error, writes ``manifest.json`` there last and renames the folder to ``OUT``. A store is
complete exactly when ``OUT/manifest.json`` exists; a build that dies leaves at most an
``OUT.partial/`` that the next build removes.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
import struct
import time
from pathlib import Path
from typing import Any

import numpy as np

from neuropaint.atomic import write_json
from neuropaint.validate import NeuropaintError

logger = logging.getLogger(__name__)

FORMAT_NAME = "neuropaint.art-tiles"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PARTIAL_MARKER = ".neuropaint-partial"  # Proves that a *.partial folder is ours to delete.
SHARD_BYTES = 512 * 2**20  # Target shard size: few files, each comfortably memory-mapped.
_NPY_HEADER_BYTES = 128  # Fixed .npy header length (a multiple of 64), rewritten on close.
TRANSFORMS = (
    "none", "rot90", "rot180", "rot270", "flip", "flip+rot90", "flip+rot180", "flip+rot270",
)


def partial_dir(out_dir: Path) -> Path:
    """Where a store is assembled before it is renamed to ``out_dir``."""
    return out_dir.with_name(out_dir.name + ".partial")


def is_complete_store(path: Path) -> bool:
    return (path / MANIFEST).is_file()


def check_out_dir(out_dir: str | os.PathLike, *, overwrite: bool = False,
                  name: str = "out") -> Path:
    """Raise unless a store may be written at ``out_dir``; never agrees to clobber user files.

    Allowed: a path that does not exist, an empty folder, or (with ``overwrite``) a complete
    tile store.
    """
    out_dir = Path(out_dir)
    if not out_dir.exists():
        return out_dir
    if not out_dir.is_dir():
        raise NeuropaintError(f"'{name}' exists and is not a folder: '{out_dir}'.")
    if is_complete_store(out_dir):
        if not overwrite:
            raise NeuropaintError(
                f"'{name}' is already a complete tile store: '{out_dir}' "
                "(pass --overwrite / overwrite=True to replace it)."
            )
        return out_dir
    if any(out_dir.iterdir()):
        raise NeuropaintError(
            f"'{name}' exists and is not a tile store (no {MANIFEST}); refusing to write into "
            f"'{out_dir}': choose a new or empty folder."
        )
    return out_dir


def _npy_header(shape: tuple[int, ...]) -> bytes:
    # A version 1.0 .npy header padded to a fixed length, so the final tile count can be
    # written over the placeholder once the shard is full (the format allows space padding).
    text = f"{{'descr': '|u1', 'fortran_order': False, 'shape': {shape}, }}"
    body = text.ljust(_NPY_HEADER_BYTES - 10 - 1) + "\n"
    header = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body.encode("latin1")
    assert len(header) == _NPY_HEADER_BYTES, len(header)
    return header


class _ShardFile:
    """One ``.npy`` shard written sequentially; its header gets the final count on close."""

    def __init__(self, path: Path, size: int, capacity: int):
        self.path = path
        self.size = size
        self.capacity = capacity
        self.count = 0
        self._fh = open(path, "wb")  # closed in close()
        self._fh.write(_npy_header((capacity, size, size, 3)))

    def write(self, tiles: np.ndarray) -> None:
        self._fh.write(np.ascontiguousarray(tiles).data)
        self.count += len(tiles)

    def close(self) -> None:
        self._fh.seek(0)
        self._fh.write(_npy_header((self.count, self.size, self.size, 3)))
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()

    def abort(self) -> None:
        self._fh.close()


class TileStoreWriter:
    """Write a tile store atomically.

    Examples
    --------
    >>> with TileStoreWriter(out_dir, size=256, options={"style": "rothko"}) as w:  # doctest: +SKIP
    ...     w.add(tile, source="rothko_0001.png", box=(0, 0, 256, 256))

    Parameters
    ----------
    out_dir : path-like
        The store folder to create. It must not exist, or be empty, or be a complete store
        and ``overwrite=True``; see :func:`check_out_dir`.
    size : int
        Tile side in pixels; every tile is ``uint8 [size, size, 3]``.
    options : dict
        JSON-serialisable settings that made the tiles; saved in the manifest.
    overwrite : bool
        Replace an existing complete store at ``out_dir`` (only when this writer succeeds).
    tiles_per_shard : int or None
        Tiles per ``.npy`` shard; default: about 512 MiB per shard.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike,
        *,
        size: int,
        options: dict[str, Any] | None = None,
        overwrite: bool = False,
        tiles_per_shard: int | None = None,
    ):
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise NeuropaintError(f"'size' must be a positive integer, got {size!r}.")
        self.out_dir = Path(out_dir)
        self.size = size
        self.options = dict(options or {})
        self.overwrite = overwrite
        self.tiles_per_shard = tiles_per_shard or max(1, SHARD_BYTES // (size * size * 3))
        self.tmp_dir = partial_dir(self.out_dir)
        self._records: list[dict[str, Any]] = []
        self._shards: list[dict[str, Any]] = []
        self._shard: _ShardFile | None = None
        self._open = False
        try:
            json.dumps(self.options)
        except TypeError as exc:
            raise NeuropaintError(f"'options' must be JSON-serialisable: {exc}.") from None

    # -- context manager -------------------------------------------------------------------
    def __enter__(self) -> TileStoreWriter:
        check_out_dir(self.out_dir, overwrite=self.overwrite)
        if self.tmp_dir.exists():
            if not (self.tmp_dir / PARTIAL_MARKER).exists():
                raise NeuropaintError(
                    f"'{self.tmp_dir}' exists and was not made by neuropaint; move it away."
                )
            logger.info("removing the leftovers of an interrupted build: %s", self.tmp_dir)
            shutil.rmtree(self.tmp_dir)
        self.tmp_dir.mkdir(parents=True)
        (self.tmp_dir / PARTIAL_MARKER).touch()
        self._open = True
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self._commit()
        else:
            self._abort()

    # -- writing ---------------------------------------------------------------------------
    @property
    def count(self) -> int:
        """Tiles written so far."""
        return len(self._records)

    def add(
        self,
        tile: np.ndarray,
        *,
        source: str,
        box: tuple[int, int, int, int],
        transform: str = "none",
    ) -> None:
        """Append one ``uint8 [size, size, 3]`` tile cut from ``source`` at ``box``."""
        self.add_many(np.asarray(tile)[None], source=source, boxes=[box],
                      transforms=[transform])

    def add_many(
        self,
        tiles: np.ndarray,
        *,
        source: str,
        boxes: list[tuple[int, int, int, int]],
        transforms: list[str] | None = None,
    ) -> None:
        """Append ``uint8 [n, size, size, 3]`` tiles from one source, with one box each."""
        if not self._open:
            raise RuntimeError("TileStoreWriter is not open: use it in a 'with' block.")
        tiles = np.asarray(tiles)
        expected = (self.size, self.size, 3)
        if tiles.dtype != np.uint8 or tiles.ndim != 4 or tiles.shape[1:] != expected:
            raise NeuropaintError(
                f"tiles must be uint8 [n, {self.size}, {self.size}, 3], "
                f"got {tiles.dtype} {list(tiles.shape)}."
            )
        transforms = list(transforms) if transforms is not None else ["none"] * len(tiles)
        if len(boxes) != len(tiles) or len(transforms) != len(tiles):
            raise NeuropaintError(
                f"got {len(tiles)} tiles but {len(boxes)} boxes and {len(transforms)} transforms."
            )
        for box, transform in zip(boxes, transforms, strict=True):
            if transform not in TRANSFORMS:
                raise NeuropaintError(
                    f"'transform' must be one of {', '.join(TRANSFORMS)}, got {transform!r}."
                )
            self._records.append(
                {"source": str(source), "box": [int(v) for v in box], "transform": transform}
            )
        start = 0
        while start < len(tiles):
            if self._shard is None or self._shard.count == self._shard.capacity:
                self._next_shard()
            room = self._shard.capacity - self._shard.count
            self._shard.write(tiles[start : start + room])
            start += room

    def write_json(self, name: str, obj: Any) -> Path:
        """Write an extra JSON file (e.g. a build report) into the store."""
        if not self._open:
            raise RuntimeError("TileStoreWriter is not open: use it in a 'with' block.")
        return write_json(self.tmp_dir / name, obj)

    # -- internals -------------------------------------------------------------------------
    def _next_shard(self) -> None:
        self._close_shard()
        name = f"tiles-{len(self._shards):05d}.npy"
        self._shard = _ShardFile(self.tmp_dir / name, self.size, self.tiles_per_shard)

    def _close_shard(self) -> None:
        if self._shard is not None:
            self._shard.close()
            self._shards.append({"file": self._shard.path.name, "count": self._shard.count})
            self._shard = None

    def _commit(self) -> None:
        self._close_shard()
        self._open = False
        manifest = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "size": self.size,
            "channels": 3,
            "dtype": "uint8",
            "count": len(self._records),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "options": self.options,
            "shards": self._shards,
            "tiles": self._records,
        }
        # The manifest is the last file written: from now on the store is whole.
        write_json(self.tmp_dir / MANIFEST, manifest, indent=1)
        old = None
        if self.out_dir.exists():
            # check_out_dir allowed it: an empty folder, or a complete store being replaced.
            # Rename it aside first so that a crash now leaves the old store or the new one.
            old = self.out_dir.with_name(f"{self.out_dir.name}.old-{os.getpid()}")
            os.replace(self.out_dir, old)
        os.replace(self.tmp_dir, self.out_dir)
        (self.out_dir / PARTIAL_MARKER).unlink()
        if old is not None:
            shutil.rmtree(old)
        logger.info("wrote %d tiles to %s", len(self._records), self.out_dir)

    def _abort(self) -> None:
        self._open = False
        if self._shard is not None:
            self._shard.abort()
            self._shard = None
        shutil.rmtree(self.tmp_dir, ignore_errors=True)


class TileStore:
    """Read-only view of a complete store: tiles as ``uint8 [size, size, 3]`` memory maps.

    Parameters
    ----------
    path : path-like
        The store folder.

    Raises
    ------
    NeuropaintError
        If the folder is missing, has no or a corrupt manifest, or its shards do not match it.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.manifest = read_manifest(self.path)
        self.size: int = self.manifest["size"]
        self.tiles: list[dict[str, Any]] = self.manifest["tiles"]
        self.options: dict[str, Any] = self.manifest.get("options", {})
        counts = [int(s["count"]) for s in self.manifest["shards"]]
        self._offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)  # [n_shards+1]
        self._maps: list[np.ndarray] | None = None
        self._open_shards()  # Fail now, with a clear message, rather than mid-training.

    def _open_shards(self) -> list[np.ndarray]:
        if self._maps is None:
            maps = []
            expected_tail = (self.size, self.size, 3)
            for shard in self.manifest["shards"]:
                file = self.path / shard["file"]
                try:
                    arr = np.load(file, mmap_mode="r")
                except FileNotFoundError:
                    raise NeuropaintError(
                        f"tile store '{self.path}' is corrupt: shard '{shard['file']}' is missing."
                    ) from None
                except ValueError as exc:
                    raise NeuropaintError(
                        f"tile store '{self.path}' is corrupt: shard '{shard['file']}' is not a "
                        f"valid .npy file ({exc})."
                    ) from None
                if arr.dtype != np.uint8 or arr.shape != (shard["count"], *expected_tail):
                    raise NeuropaintError(
                        f"tile store '{self.path}' is corrupt: shard '{shard['file']}' holds "
                        f"{arr.dtype} {list(arr.shape)}, the manifest says uint8 "
                        f"{[shard['count'], *expected_tail]}."
                    )
                maps.append(arr)
            self._maps = maps
        return self._maps

    def __getstate__(self) -> dict[str, Any]:
        # Pickling a memmap copies its data; DataLoader workers reopen the files instead.
        state = self.__dict__.copy()
        state["_maps"] = None
        return state

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def __getitem__(self, index: int) -> np.ndarray:
        """Tile ``index`` as a read-only ``uint8 [size, size, 3]`` view into the memory map."""
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"tile index {index} out of range for a store of {n} tiles")
        index %= n
        shard = int(np.searchsorted(self._offsets, index, side="right")) - 1
        return self._open_shards()[shard][index - self._offsets[shard]]

    def gather(self, indices: np.ndarray) -> np.ndarray:
        """Copy tiles ``indices`` into one ``uint8 [n, size, size, 3]`` array.

        Indices are sorted and read with one fancy index per shard, so the reads walk each
        memory map forwards; the result is in the order asked for.
        """
        indices = np.asarray(indices, dtype=np.int64).ravel()
        n = len(self)
        if indices.size and (indices.min() < 0 or indices.max() >= n):
            raise IndexError(
                f"tile indices must lie in [0, {n}), got {indices.min()}..{indices.max()}"
            )
        out = np.empty((len(indices), self.size, self.size, 3), dtype=np.uint8)
        order = np.argsort(indices, kind="stable")
        sorted_idx = indices[order]
        shard_of = np.searchsorted(self._offsets, sorted_idx, side="right") - 1
        maps = self._open_shards()
        bounds = np.searchsorted(shard_of, np.arange(len(maps) + 1))  # Runs per shard.
        for shard, (lo, hi) in enumerate(itertools.pairwise(bounds)):
            if hi > lo:
                local = sorted_idx[lo:hi] - self._offsets[shard]
                out[order[lo:hi]] = maps[shard][local]
        return out

    def sources(self) -> list[str]:
        """Distinct source files, in store order."""
        return list(dict.fromkeys(t["source"] for t in self.tiles))


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """Load and check ``path/manifest.json``; a one-line error says what is wrong."""
    path = Path(path)
    if not path.exists():
        raise NeuropaintError(f"tile store '{path}' does not exist.")
    if not path.is_dir():
        raise NeuropaintError(f"tile store '{path}' is not a folder.")
    file = path / MANIFEST
    if not file.is_file():
        hint = " (an interrupted build?)" if (path / PARTIAL_MARKER).exists() or any(
            path.glob("tiles-*.npy")) else ""
        raise NeuropaintError(f"'{path}' is not a complete tile store: no {MANIFEST}{hint}.")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise NeuropaintError(f"tile store manifest '{file}' is corrupt: {exc}.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise NeuropaintError(f"'{file}' is not a neuropaint tile store manifest.")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise NeuropaintError(
            f"tile store '{path}' has format version {version!r}; this neuropaint reads "
            f"versions up to {FORMAT_VERSION}: upgrade neuropaint."
        )
    try:
        size = manifest["size"]
        total = sum(int(shard["count"]) for shard in manifest["shards"])
        n_records = len(manifest["tiles"])
        names = [str(shard["file"]) for shard in manifest["shards"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise NeuropaintError(
            f"tile store manifest '{file}' is corrupt: missing or bad field {exc}."
        ) from None
    if not isinstance(size, int) or size < 1 or any("/" in n or "\\" in n for n in names):
        raise NeuropaintError(f"tile store manifest '{file}' is corrupt: bad size or shard name.")
    if total != n_records:
        raise NeuropaintError(
            f"tile store manifest '{file}' is corrupt: {n_records} tile records "
            f"but {total} tiles in the shards."
        )
    return manifest
