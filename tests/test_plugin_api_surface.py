"""byoc's plugin API is pinned: the public names of its modules, the hooks and the parameters
of every hook and function, recorded in tests/plugin_api_surface.txt.

A plugin imports these names and calls these hooks by keyword, so a name that disappears or a
parameter that is renamed breaks plugins in the field. Such a change keeps the old name working
for a release instead, with a DeprecationWarning (byoc.deprecation.moved_names, or the old
parameter kept with a default), as docs/writing-a-plugin.md ("The plugin API and its
stability") promises. New names are welcome; record them with::

    BYOC_UPDATE_API_SURFACE=1 python -m pytest tests/test_plugin_api_surface.py

which writes every public name of today's API and keeps the recorded names that still work
(deprecated ones included), so that it drops a name only once it is gone for good.

The API probe (tests/api_probe, installed and run by tests/test_plugin_api_probe.py) is held
to this surface: it may import these names, byoc.errors, numpy and the standard library only.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import os
import sys
import types
import warnings
from pathlib import Path
from typing import Any

import pytest

import byoc.plugins.api
import byoc.plugins.hookspecs
from byoc.deprecation import moved_names

SURFACE_FILE = Path(__file__).with_name("plugin_api_surface.txt")
UPDATE_VARIABLE = "BYOC_UPDATE_API_SURFACE"
REFRESH = f"{UPDATE_VARIABLE}=1 python -m pytest tests/test_plugin_api_surface.py"
# The public plugin API. The names of each are pinned; the classes and functions of all but
# byoc.plugins (which re-exports them, and the plugin manager) member by member as well.
SURFACE_MODULES = ("byoc.plugins", "byoc.plugins.api", "byoc.plugins.hookspecs",
                   "byoc.partition.patterns")
NAMES_ONLY = ("byoc.plugins",)
# What the probe may import besides the surface: its own package, the standard library and these.
PROBE = Path(__file__).with_name("api_probe") / "byoc_api_probe"
PROBE_MAY_ALSO_IMPORT = ("byoc.errors", "numpy")


# -- the surface ---------------------------------------------------------------------------------

def imported_names(module: types.ModuleType) -> set[str]:
    """The names ``module``'s source binds by importing them (not its own)."""
    tree = ast.parse(Path(module.__file__).read_text())
    return {alias.asname or alias.name.split(".")[0] for node in ast.walk(tree)
            if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names}


def public_names(module: types.ModuleType) -> list[str]:
    """Its ``__all__``, or else every name it defines itself without a leading underscore."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    imported = imported_names(module)
    return [name for name, value in vars(module).items() if not name.startswith("_")
            and name not in imported and not inspect.ismodule(value)]


def parameters(function: Any) -> list[str]:
    """The names a caller may pass ``function`` (``self``, ``*args`` and ``**kwargs`` aside)."""
    return [p.name for p in inspect.signature(function).parameters.values()
            if p.name not in ("self", "cls") and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def members(value: Any) -> list[str]:
    """What follows a name in the surface: ``(parameter)`` of a function or hook (plugins pass
    them by keyword), ``.attribute`` of a class (its dataclass fields, which are its
    constructor's keywords, methods and properties)."""
    if inspect.isfunction(value):
        return [f"({name})" for name in parameters(value)]
    if not inspect.isclass(value):
        return []
    fields = [f.name for f in dataclasses.fields(value)] if dataclasses.is_dataclass(value) \
        else []
    return [f".{name}" for name in {*vars(value), *fields} if not name.startswith("_")]


def surface() -> set[str]:
    """Every public name of the plugin API today, as the lines of the surface file."""
    lines = set()
    for module_name in SURFACE_MODULES:
        module = importlib.import_module(module_name)
        for name in public_names(module):
            lines.add(f"{module_name}.{name}")
            if module_name not in NAMES_ONLY:
                lines.update(f"{module_name}.{name}{member}"
                             for member in members(getattr(module, name)))
    return lines


def still_works(line: str) -> bool:
    """Whether a plugin can still use the name of ``line``: importable (a name moved with
    byoc.deprecation.moved_names is, with a warning), an attribute or dataclass field of its
    class, a parameter its function takes."""
    module_name = max((m for m in SURFACE_MODULES if line.startswith(f"{m}.")), key=len)
    path, _, parameter = line[len(module_name) + 1:].partition("(")
    value: Any = importlib.import_module(module_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for name in path.split("."):
            if inspect.isclass(value) and dataclasses.is_dataclass(value) and not parameter \
                    and name in {f.name for f in dataclasses.fields(value)}:
                return True
            try:
                value = getattr(value, name)
            except AttributeError:
                return False
    return not parameter or parameter.rstrip(")") in inspect.signature(value).parameters


def recorded() -> list[str]:
    return [line for line in SURFACE_FILE.read_text().splitlines()
            if line and not line.startswith("#")]


def gone_names() -> list[str]:
    return [line for line in recorded() if not still_works(line)]


def gone_message(gone: list[str]) -> str:
    return (f"{len(gone)} name(s) of byoc's plugin API no longer work, so plugins using them "
            f"break:\n  " + "\n  ".join(gone) + "\nKeep each working for a release instead: a "
            f"moved or renamed name through byoc.deprecation.moved_names (importable from its "
            f"old place with a DeprecationWarning), a renamed hook or function parameter by "
            f"keeping the old one with a default; say so in docs/writing-a-plugin.md (\"The "
            f"plugin API and its stability\"). Once the release that drops them comes, refresh "
            f"the record: {REFRESH}")


@pytest.fixture(scope="module", autouse=True)
def refreshed() -> None:
    """With BYOC_UPDATE_API_SURFACE=1, write today's surface and the recorded names that
    still work first."""
    if os.environ.get(UPDATE_VARIABLE) != "1":
        return
    header = [line for line in SURFACE_FILE.read_text().splitlines() if line.startswith("#")]
    lines = surface() | {line for line in recorded() if still_works(line)}
    SURFACE_FILE.write_text("\n".join([*header, *sorted(lines)]) + "\n")


def test_the_record_is_sorted_one_name_a_line():
    lines = recorded()
    assert lines == sorted(set(lines)), f"refresh the record: {REFRESH}"


def test_no_name_of_the_plugin_api_is_gone():
    gone = gone_names()
    assert not gone, gone_message(gone)


def test_every_public_name_is_recorded():
    new = sorted(surface() - set(recorded()))
    assert not new, (f"{len(new)} public name(s) of byoc's plugin API are not recorded yet "
                     f"(new names are welcome; recording them protects them):\n  "
                     + "\n  ".join(new) + f"\nRecord them: {REFRESH}")


# -- the check itself, on breaking changes made here -------------------------------------------

def newly_gone(break_the_api) -> list[str]:
    """The names that stop working when ``break_the_api()`` runs (whatever the record says
    before)."""
    before = set(gone_names())
    break_the_api()
    return [line for line in gone_names() if line not in before]


def test_a_removed_name_is_reported_with_the_deprecation_policy(monkeypatch):
    gone = newly_gone(lambda: monkeypatch.delattr(byoc.plugins.api, "PluginOption"))
    assert "byoc.plugins.api.PluginOption" in gone
    assert "byoc.plugins.api.PluginOption.stage" in gone
    assert "byoc.plugins.PluginOption" not in gone   # re-exported before the removal
    message = gone_message(gone)
    assert "byoc.deprecation.moved_names" in message and REFRESH in message


def test_a_renamed_hook_parameter_is_reported_and_a_kept_one_is_not(monkeypatch):
    def renamed(partition, graph, constants, settings): ...

    def kept(partition, graph, constants, settings, options=None): ...

    assert newly_gone(lambda: monkeypatch.setattr(
        byoc.plugins.hookspecs, "byoc_lower_partition", renamed)) == [
        "byoc.plugins.hookspecs.byoc_lower_partition(options)"]
    monkeypatch.undo()
    assert newly_gone(lambda: monkeypatch.setattr(
        byoc.plugins.hookspecs, "byoc_lower_partition", kept)) == []


def test_a_name_moved_with_moved_names_still_works_and_warns(monkeypatch):
    new_home = types.ModuleType("byoc.plugins.new_home")
    new_home.PluginOption = byoc.plugins.api.PluginOption
    monkeypatch.setitem(sys.modules, new_home.__name__, new_home)

    def move() -> None:
        monkeypatch.delattr(byoc.plugins.api, "PluginOption")
        monkeypatch.setattr(byoc.plugins.api, "__getattr__", moved_names(
            "byoc.plugins.api", {"PluginOption": new_home.__name__}, since="0.2"),
            raising=False)

    assert newly_gone(move) == []
    with pytest.warns(DeprecationWarning, match="moved to byoc.plugins.new_home.PluginOption"):
        byoc.plugins.api.PluginOption  # noqa: B018  (the import a plugin does)


# -- the probe keeps to the surface ----------------------------------------------------------------

def outside_the_surface(source: str) -> list[str]:
    """The imports of ``source`` (a module of the probe) that reach past the public API."""
    public = surface()
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules = [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:   # the probe's own modules
                continue
            modules = [(node.module, alias.name) for alias in node.names]
        else:
            continue
        for module, name in modules:
            top = module.split(".")[0]
            if top in sys.stdlib_module_names or top == PROBE.name:
                continue
            if module in SURFACE_MODULES and (name is None or f"{module}.{name}" in public):
                continue
            if any(module == m or module.startswith(f"{m}.") for m in PROBE_MAY_ALSO_IMPORT) \
                    and not (name or "").startswith("_"):
                continue
            found.append(f"line {node.lineno}: {module}" + (f".{name}" if name else ""))
    return found


def test_the_probe_imports_only_the_public_api():
    sources = sorted(PROBE.glob("*.py"))
    assert sources, f"no module in {PROBE}"
    for path in sources:
        outside = outside_the_surface(path.read_text())
        assert not outside, (f"{path.relative_to(PROBE.parents[2])} imports past byoc's "
                             f"public plugin API: {'; '.join(outside)}. Write the probe "
                             f"against {', '.join(SURFACE_MODULES + PROBE_MAY_ALSO_IMPORT)} "
                             f"only; if a plugin needs more, make it part of the API first")


def test_the_import_check_sees_imports_past_the_surface():
    planted = ("import onnx\n"
               "from byoc.plugins.manager import PluginManager\n"
               "from byoc.plugins.api import Graph\n"   # imported into api, not its own
               "from byoc.core import ir\n"
               "import json\n"
               "import numpy as np\n"
               "from byoc.plugins import hookimpl\n"
               "from byoc.plugins.api import PluginInfo\n"
               "from byoc.errors import PluginError\n")
    assert outside_the_surface(planted) == [
        "line 1: onnx", "line 2: byoc.plugins.manager.PluginManager",
        "line 3: byoc.plugins.api.Graph", "line 4: byoc.core.ir"]
