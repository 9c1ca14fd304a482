"""Logging setup and the common wrapper for command-line entry points.

Library code uses ``logging.getLogger(__name__)`` and never configures logging; a CLI calls
:func:`run_cli`, which sets up one readable format and turns user errors into a single line
on stderr with exit status 2, instead of a traceback.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence

import pydantic

from neuropaint.validate import NeuropaintError, format_validation_error

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


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


def setup_logging(verbosity: int | str = "INFO") -> None:
    """Configure the root logger for a CLI; ``verbosity`` is a level name or a number."""
    level = logging.getLevelName(verbosity.upper()) if isinstance(verbosity, str) else verbosity
    logging.basicConfig(level=level, format=LOG_FORMAT, datefmt="%H:%M:%S", force=True,
                        handlers=[_CurrentStderr()])
    logging.captureWarnings(True)


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
