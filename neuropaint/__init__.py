"""Shared helpers for every room of neuropaint: validation, logging and atomic writes.

The rooms themselves are the top-level packages ``eeg``, ``datasets``, ``gan``,
``conditioning`` and ``live`` (see DESIGN.md). This package holds only what all of them use.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("neuropaint")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
