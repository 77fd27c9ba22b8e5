"""The numpy reference interpreter: the oracle every backend is checked against.

Importing this package imports every op-family module in it, which fills the registry.
"""

from __future__ import annotations

import importlib
import pkgutil

from byoc.core.interpreter.base import OpImpl, lookup, register, registered_ops
from byoc.core.interpreter.runner import Interpreter, evaluate_node, run_graph


def _import_op_families() -> None:
    for module in pkgutil.iter_modules(__path__):
        if module.name.startswith("ops_"):
            importlib.import_module(f"{__name__}.{module.name}")


_import_op_families()

__all__ = ["Interpreter", "OpImpl", "evaluate_node", "lookup", "register", "registered_ops",
           "run_graph"]
