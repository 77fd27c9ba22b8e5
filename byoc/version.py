"""byoc's version: the installed distribution's, or a source-tree marker when not installed."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("byoc")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"
