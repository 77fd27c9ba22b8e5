"""docs/architecture.md stays true: every module it names exists, and the README links it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"

# A path in the repository (byoc/..., plugins/..., hw/..., docs/...) or in a plugin package
# (byoc_NAME/...); braces may list alternatives ({a,b}.py).
PATH = re.compile(r"(?<![\w/])(?:byoc_[a-z0-9_]+|byoc|plugins|hw|docs)/"
                  r"(?:[a-z0-9_./-]|\{[a-z0-9_,]+\})*")


def named_paths(text: str) -> set[str]:
    """The repository paths ``text`` names: ``byoc_NAME/...`` read as
    ``plugins/NAME/byoc_NAME/...``, ``{a,b}`` expanded, a sentence's full stop left out."""
    paths = set()
    for match in PATH.finditer(text):
        path = match.group().rstrip(".")
        package, _, rest = path.partition("/")
        if package.startswith("byoc_"):
            path = f"plugins/{package.removeprefix('byoc_')}/{package}/{rest}"
        head, choices, tail = re.fullmatch(r"([^{]*)(?:\{([^}]*)\})?(.*)", path).groups()
        paths |= {head + choice + tail for choice in (choices or "").split(",")}
    return paths


def test_paths_are_read_with_the_pages_shorthand():
    text = "byoc_vta_sim/{sim,rtl}.py, then byoc/core/ir.py. Not byoc.compile or ops_*.py"
    assert named_paths(text) == {"plugins/vta_sim/byoc_vta_sim/sim.py",
                                 "plugins/vta_sim/byoc_vta_sim/rtl.py", "byoc/core/ir.py"}


def test_every_module_the_architecture_page_names_exists():
    named = named_paths(DOC.read_text())
    assert {path.split("/")[0] for path in named} >= {"byoc", "plugins", "hw"}, named
    missing = sorted(path for path in named if not (ROOT / path).exists())
    assert not missing, (f"docs/architecture.md names modules that do not exist: {missing}. "
                         f"Name where they live now.")


def test_the_readme_links_the_architecture_page():
    assert "docs/architecture.md" in (ROOT / "README.md").read_text()
