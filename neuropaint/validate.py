"""Validation helpers with uniform one-line messages, in MNE's manner.

Every message names the parameter and the offending value, e.g.
``'sfreq' must be a positive number, got -3.`` so that a user sees one clear line instead of
a traceback (see :func:`neuropaint.logs.run_cli`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from numbers import Real
from pathlib import Path

import pydantic


class NeuropaintError(ValueError):
    """A user-facing error whose message is one complete line; CLIs print it without a traceback."""


def _describe(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_positive(value: object, name: str, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a float, or raise if it is not a positive finite number."""
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(float(value))
    if ok:
        ok = float(value) >= 0 if allow_zero else float(value) > 0
    if not ok:
        kind = "a non-negative number" if allow_zero else "a positive number"
        raise NeuropaintError(f"'{name}' must be {kind}, got {_describe(value)}.")
    return float(value)


def check_int(value: object, name: str, *, minimum: int | None = None) -> int:
    """Return ``value`` as an int, or raise if it is not an integer (at least ``minimum``)."""
    if isinstance(value, bool) or not isinstance(value, int | Real) or int(value) != value:
        raise NeuropaintError(f"'{name}' must be an integer, got {_describe(value)}.")
    if minimum is not None and int(value) < minimum:
        raise NeuropaintError(f"'{name}' must be an integer >= {minimum}, got {_describe(value)}.")
    return int(value)


def check_option(value: object, name: str, options: Iterable[object]) -> object:
    """Raise unless ``value`` is one of ``options``; the message lists the valid ones."""
    options = list(options)
    if value not in options:
        valid = ", ".join(repr(o) for o in options)
        raise NeuropaintError(f"'{name}' must be one of {valid}, got {_describe(value)}.")
    return value


def check_unique(names: Iterable[str], name: str) -> list[str]:
    """Raise if ``names`` holds duplicates; the message lists them."""
    names = list(names)
    seen: set[str] = set()
    dupes = sorted({n for n in names if n in seen or seen.add(n)})
    if dupes:
        raise NeuropaintError(f"'{name}' must be unique, got duplicates {dupes}.")
    return names


def format_validation_error(exc: pydantic.ValidationError) -> str:
    """Turn a pydantic error into one line naming each bad field and why."""
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or exc.title
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        parts.append(f"'{field}': {message}")
    return f"invalid {exc.title}: " + "; ".join(parts) + "."


def build_config(model: type[pydantic.BaseModel], values: dict | None = None, /, **kwargs):
    """Build a pydantic config, turning a validation error into a one-line NeuropaintError."""
    data = dict(values or {})
    data.update(kwargs)
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise NeuropaintError(format_validation_error(exc)) from None


def load_config_file(path: str | Path, model: type[pydantic.BaseModel]):
    """Read a JSON file into a pydantic config; every problem is one line naming the file."""
    file = Path(path)
    if not file.exists():
        raise FileNotFoundError(f"no such file: {file}")
    try:
        values = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise NeuropaintError(f"{file} is not valid JSON: {exc.msg} (line {exc.lineno}).") \
            from None
    if not isinstance(values, dict):
        raise NeuropaintError(f"{file} must hold a JSON object, got {type(values).__name__}.")
    return build_config(model, values)


def read_manifest(folder: str | Path, filename: str, *, kind: str, format_version: int,
                  what: str, verb: str = "write") -> dict:
    """The JSON manifest of a folder written by ``atomic_folder``, checked for kind and version.

    ``what`` names the folder for messages ("an EEG store"). A missing manifest next to a
    ``.partial`` folder is reported as an unfinished ``verb`` ("build", "save").
    """
    folder = Path(folder)
    path = folder / filename
    if not path.exists():
        partial = folder.with_name(folder.name + ".partial")
        hint = f" (a {verb} into it did not finish)" if partial.exists() else ""
        raise NeuropaintError(f"{folder} is not {what}: no {filename}{hint}.")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise NeuropaintError(f"{path} is corrupt: {exc.msg}.") from None
    found = manifest.get("kind") if isinstance(manifest, dict) else None
    if found != kind:
        raise NeuropaintError(f"{folder} is not {what} (kind {found!r}).")
    if manifest.get("format_version", 0) > format_version:
        raise NeuropaintError(f"{folder} has format version {manifest['format_version']}; this "
                              f"neuropaint reads up to {format_version}: upgrade neuropaint.")
    return manifest
