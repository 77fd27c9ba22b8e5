"""byoc: bring your own codegen — a pluggable accelerator integration framework."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("byoc")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"

from byoc.compiled import CompiledModel  # noqa: E402
from byoc.errors import ByocError  # noqa: E402
from byoc.user_api import compile, import_model, load  # noqa: E402

__all__ = ["ByocError", "CompiledModel", "__version__", "compile", "import_model", "load"]
