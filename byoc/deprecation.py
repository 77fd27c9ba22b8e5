"""Names that moved, kept importable from where they were for one release, with a warning.

Plugins import byoc's names; when one moves, a plugin written against the old place must keep
working for a release and be told where the name went. A module that lost names gives them
back through :func:`moved_names`::

    __getattr__ = moved_names(__name__, {"integer_plans": "byoc.core.integer_layers"},
                              since="0.2")

Importing ``integer_plans`` from that module then returns ``byoc.core.integer_layers``'s and
warns with a :class:`DeprecationWarning` naming the new place; the old name goes in the
release after ``since``.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any, Callable, Mapping


def moved_names(module: str, moved: Mapping[str, str], since: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` giving each name of ``moved`` from its new module (the
    mapping's value), with a DeprecationWarning; any other name is an AttributeError."""
    def __getattr__(name: str) -> Any:
        if name not in moved:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        target = moved[name]
        warnings.warn(f"{module}.{name} moved to {target}.{name} in byoc {since}; import it "
                      f"from there (the old place goes in the next release)",
                      DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(target), name)
    return __getattr__


__all__ = ["moved_names"]
