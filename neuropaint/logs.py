"""Logging setup and the common wrapper for command-line entry points.

Library code uses ``logging.getLogger(__name__)`` and never configures logging; a CLI calls
:func:`setup_logging` (one readable format for everything on stderr) inside :func:`run_cli`,
which turns user errors into a single line on stderr with exit status 2, instead of a
traceback.

One format means: Python warnings become one line (``WARNING eeg.online: RuntimeWarning:
... (online.py:73)``) instead of the path and a source line; a long list in a log message is
cut to its first items and a count; the libraries that talk on their own are quiet unless the
CLI is verbose: liblsl (C++, its own log format on stderr) through its configuration, which
keeps whatever file ``LSLAPICFG`` or the usual places name, and MNE through its logger, which
then writes in our format.
"""

from __future__ import annotations

import configparser
import logging
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import pydantic

from neuropaint.validate import NeuropaintError, format_validation_error

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

# liblsl's own configuration files, in the order it looks for them (api_config.cpp).
_LSL_CONFIG_FILES = ("lsl_api.cfg", "~/lsl_api/lsl_api.cfg", "/etc/lsl_api/lsl_api.cfg")
LIST_ITEMS = 8  # Items of a list argument kept in a log line; the rest are counted.


class _CurrentStderr(logging.StreamHandler):
    """A handler writing to whatever ``sys.stderr`` is at each record, not the one at setup.

    A CLI's ``main()`` may run in-process (tests, notebooks) where stderr is swapped and later
    closed; a handler bound to the old stream would then fail on every record.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it; always sys.stderr
        pass


class _CutLists(logging.Filter):
    """Cut list, tuple and set arguments of a record to ``LIST_ITEMS`` items and a count."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(_is_long(a) for a in record.args):
            record.args = tuple(_cut(a) if _is_long(a) else a for a in record.args)
        return True


def _is_long(value: object) -> bool:
    return isinstance(value, list | tuple | set | frozenset) and len(value) > LIST_ITEMS


def _cut(items) -> str:
    """``'MEG 0113, MEG 0112, ..., … 308 more'``: the first items and how many were left."""
    items = list(items)
    shown = ", ".join(str(item) for item in items[:LIST_ITEMS])
    return f"{shown}, … {len(items) - LIST_ITEMS} more"


def _log_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` for CLIs: one line in the house format, on the logger of the
    module that warned (``py.warnings`` when it is not one of ours)."""
    name = _module_name(filename)
    logging.getLogger(name).warning("%s: %s (%s:%d)", category.__name__, message,
                                    Path(filename).name, lineno)


def _module_name(filename: str) -> str:
    for name, module in list(sys.modules.items()):
        if getattr(module, "__file__", None) == filename:
            return name
    return "py.warnings"


def quiet_libraries(verbose: bool = False) -> None:
    """Quiet liblsl and MNE (errors and warnings only) unless ``verbose``.

    liblsl reads its configuration once, when first used: this must run before any stream
    is opened (a later call changes nothing). Its content replaces any file, so the file
    liblsl would have read (``LSLAPICFG``, ``./lsl_api.cfg``, ``~/lsl_api/lsl_api.cfg``,
    ``/etc/lsl_api/lsl_api.cfg``) is read here and kept, with ``[log] level = -2`` added.
    """
    if "mne" in sys.modules:
        mne_logger = logging.getLogger("mne")
        sys.modules["mne"].set_log_level("INFO" if verbose else "WARNING")
        # MNE writes plain messages to stdout; ours go to stderr in one format.
        for handler in list(mne_logger.handlers):
            mne_logger.removeHandler(handler)
        mne_logger.propagate = True
    else:  # read by MNE when it is imported
        os.environ["MNE_LOGGING_LEVEL"] = "info" if verbose else "warning"
    if verbose or "pylsl" not in sys.modules:
        return  # liblsl's default; a CLI without LSL has not loaded it
    import pylsl

    content = quiet_lsl_config()
    if content is None:
        return
    try:
        pylsl.set_config_content(content)
    except (AttributeError, NotImplementedError):  # liblsl < 1.17.7: it stays chatty
        pass


def quiet_lsl_config() -> str | None:
    """liblsl's configuration as it would load it, with ``[log] level = -2`` (errors only).

    None when that file cannot be read as an INI file here: it is then left to liblsl
    untouched (a chatty liblsl beats one that forgets the user's network settings).
    """
    config = configparser.ConfigParser(interpolation=None, strict=False)
    config.optionxform = str  # liblsl's keys are case-sensitive
    for candidate in [os.environ.get("LSLAPICFG"), *_LSL_CONFIG_FILES]:
        if candidate and Path(candidate).expanduser().is_file():
            try:
                config.read(Path(candidate).expanduser())
            except (configparser.Error, OSError, UnicodeDecodeError):
                return None
            break
    if not config.has_section("log"):
        config.add_section("log")
    config.set("log", "level", "-2")  # loguru's ERROR: no start-up banner
    lines = []
    for section in config.sections():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {value}" for key, value in config.items(section))
    return "\n".join(lines) + "\n"


def setup_logging(verbosity: int | str = "INFO", *, verbose: bool = False) -> None:
    """Configure the root logger for a CLI; ``verbosity`` is a level name or a number.

    ``verbose`` lets liblsl and MNE talk (see :func:`quiet_libraries`).
    """
    level = logging.getLevelName(verbosity.upper()) if isinstance(verbosity, str) else verbosity
    handler = _CurrentStderr()
    handler.addFilter(_CutLists())
    logging.basicConfig(level=level, format=LOG_FORMAT, datefmt="%H:%M:%S", force=True,
                        handlers=[handler])
    logging.captureWarnings(True)  # keeps logging's bookkeeping; the display is ours
    warnings.showwarning = _log_warning
    quiet_libraries(verbose)


# Errors a user can cause by what they pass in; anything else is our bug and keeps its traceback.
USER_ERRORS = (NeuropaintError, FileNotFoundError, IsADirectoryError, PermissionError)


def run_cli(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run ``main(argv)``; print user errors as one line ``error: ...`` and return 2."""
    prog = _program_name(main)
    try:
        return main(argv)
    except USER_ERRORS as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except pydantic.ValidationError as exc:
        print(f"{prog}: error: {format_validation_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def _program_name(main: Callable) -> str:
    # Under ``python -m pkg.mod`` the module is called __main__; its spec keeps the real name.
    module = sys.modules.get(getattr(main, "__module__", ""), None)
    spec = getattr(module, "__spec__", None)
    name = getattr(spec, "name", None) or getattr(main, "__module__", None) or "neuropaint"
    return f"python -m {name}" if name != "__main__" else "neuropaint"
