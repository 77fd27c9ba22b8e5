"""byoc: bring your own codegen — a pluggable accelerator integration framework."""

from __future__ import annotations

from byoc.compiled import CompiledModel
from byoc.errors import ByocError
from byoc.user_api import compile, estimate_model, import_model, load
from byoc.version import __version__

__all__ = ["ByocError", "CompiledModel", "__version__", "compile", "estimate_model",
           "import_model", "load"]
