"""``byoc new-plugin NAME``: a new plugin package, shaped like byoc's own plugins.

The files come from ``templates/*.tmpl``, rendered with :class:`string.Template` (``$name``,
``$dist``, ``$package``). The generated plugin works as it is (float32 Add and Relu on a
numpy "device"), and its tests and ``pytest --byoc-plugin NAME`` pass unchanged. A name an
installed plugin or an importable module already has is refused, with another one suggested.
"""

from __future__ import annotations

import importlib.util
import keyword
import re
from importlib.metadata import entry_points
from pathlib import Path
from string import Template

from byoc.errors import InputError
from byoc.plugins.manager import ENTRY_POINT_GROUP

TEMPLATES = Path(__file__).parent / "templates"
_NAME = re.compile(r"[a-z][a-z0-9_]*")


def package_files(name: str) -> dict[str, str]:
    """The files of plugin ``name``'s package: relative path -> template file name."""
    package = f"byoc_{name}"
    return {"pyproject.toml": "pyproject.toml.tmpl",
            "README.md": "README.md.tmpl",
            f"{package}/__init__.py": "__init__.py.tmpl",
            f"{package}/plugin.py": "plugin.py.tmpl",
            f"tests/test_{name}_plugin.py": "test_plugin.py.tmpl"}


def check_name(name: str) -> None:
    """Raise InputError unless ``name`` can name a new plugin: its patterns are ``NAME.op``,
    its package ``byoc_NAME``, so lower-case letters, digits and '_', starting with a letter;
    and it must not clash with what is installed (see :func:`name_clash`)."""
    if not _NAME.fullmatch(name) or keyword.iskeyword(name):
        raise InputError(f"{name!r} cannot name a plugin: use lower-case letters, digits and "
                         f"'_', starting with a letter (it becomes the Python package "
                         f"byoc_NAME, the entry point NAME and the pattern prefix NAME.), "
                         f"e.g. 'my_npu'")
    clash = name_clash(name)
    if clash:
        raise InputError(f"{name!r} cannot name a new plugin: {clash}. Choose another name, "
                         f"e.g. {_free_name(name)!r}")


def name_clash(name: str) -> str | None:
    """Why ``name`` would clash with what is installed, or None: an installed plugin has that
    name (entry point group byoc.plugins), or NAME or the package byoc_NAME is importable (a
    plain folder, which Python can import as a namespace package, does not count)."""
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            return (f"an installed plugin has that name (entry point {ep.name} = {ep.value}); "
                    f"byoc would find two plugins of that name")
    package = f"byoc_{name}"
    origin = _importable(package)
    if origin:
        return (f"the package it would create, {package}, is importable already (from "
                f"{origin}); installing the new one would replace it")
    origin = _importable(name)
    if origin:
        return (f"the module {name!r} is importable (from {origin}); a plugin of that name "
                f"would be mistaken for it")
    return None


def _importable(module: str) -> str | None:
    """Where the top-level ``module`` would be imported from, or None (also for a plain
    folder: a namespace package has no origin). Nothing is imported."""
    spec = importlib.util.find_spec(module)
    return None if spec is None else spec.origin


def _free_name(name: str) -> str:
    candidates = (f"my_{name}", f"{name}_npu", f"{name}_plugin")
    return next((c for c in candidates if name_clash(c) is None), "my_npu")


def create_plugin(name: str, directory: Path | str = ".") -> Path:
    """Write the package of plugin ``name`` into ``directory/name`` and return that folder.

    Raises InputError for a name that cannot name a plugin, or when the folder exists
    (nothing is overwritten)."""
    check_name(name)
    root = Path(directory) / name
    if root.exists():
        raise InputError(f"{root} already exists; choose another name or --dir, or remove it "
                         f"first (new-plugin never overwrites files)")
    values = {"name": name, "package": f"byoc_{name}", "dist": f"byoc-{name.replace('_', '-')}"}
    for relative, template in package_files(name).items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        text = Template((TEMPLATES / template).read_text()).substitute(values)
        path.write_text(text)
    return root


__all__ = ["check_name", "create_plugin", "name_clash", "package_files"]
