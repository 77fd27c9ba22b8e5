"""``byoc new-plugin NAME``: a new plugin package, shaped like byoc's own plugins.

The files come from ``templates/*.tmpl``, rendered with :class:`string.Template` (``$name``,
``$dist``, ``$package``). The generated plugin works as it is (float32 Add and Relu on a
numpy "device"), and its tests and ``pytest --byoc-plugin NAME`` pass unchanged.
"""

from __future__ import annotations

import keyword
import re
from pathlib import Path
from string import Template

from byoc.errors import InputError

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
    """Raise InputError unless ``name`` can name a plugin: its patterns are ``NAME.op``, its
    package ``byoc_NAME``, so lower-case letters, digits and '_', starting with a letter."""
    if not _NAME.fullmatch(name) or keyword.iskeyword(name):
        raise InputError(f"{name!r} cannot name a plugin: use lower-case letters, digits and "
                         f"'_', starting with a letter (it becomes the Python package "
                         f"byoc_NAME, the entry point NAME and the pattern prefix NAME.), "
                         f"e.g. 'my_npu'")


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


__all__ = ["check_name", "create_plugin", "package_files"]
