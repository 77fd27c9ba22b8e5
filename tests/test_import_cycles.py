"""No import cycles among byoc's modules and its plugins' modules.

A cycle makes the import order matter and tempts the next person to hide it behind an import
inside a function; so imports inside functions count too. Imports only for type checkers
(``if TYPE_CHECKING:``) do not run and are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = [ROOT / "byoc", *sorted((ROOT / "plugins").glob("*/byoc_*"))]


def module_files() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in package.rglob("*.py"):
            parts = list(path.relative_to(package.parent).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def runtime_imports(tree: ast.AST):
    """Every import statement that can run: at module level or in a function, except in an
    ``if TYPE_CHECKING:`` block."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            yield from (imp for child in node.orelse for imp in runtime_imports(child))
        else:
            yield from runtime_imports(node)


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The first-party modules that ``name`` imports (a submodule when ``from a import b``
    names one, else the module itself)."""
    found = set()
    for imp in runtime_imports(ast.parse(path.read_text(), str(path))):
        if isinstance(imp, ast.Import):
            targets = [alias.name for alias in imp.names]
        else:
            base = imp.module or ""
            if imp.level:
                package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                package = package[:len(package) - imp.level + 1]
                base = ".".join(package + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                       for alias in imp.names]
        found.update(t for t in targets if t in modules and t != name)
    return found


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            vertex, successors = work[-1]
            successor = next(successors, None)
            if successor is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[vertex])
                if low[vertex] == index[vertex]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == vertex:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif successor not in index:
                index[successor] = low[successor] = len(index)
                stack.append(successor)
                on_stack.add(successor)
                work.append((successor, iter(sorted(edges[successor]))))
            elif successor in on_stack:
                low[vertex] = min(low[vertex], index[successor])
    return found


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def test_the_import_graph_covers_core_and_plugins():
    edges = import_graph()
    assert {"byoc.pipeline", "byoc_cpu_llvm.plugin", "byoc_vta_sim.sim"} <= set(edges)
    assert "byoc.core.ir" in edges["byoc.pipeline"] or any(
        "byoc.core" in target for target in edges["byoc.pipeline"])


def test_no_module_imports_itself_through_others():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_sees_a_cycle_hidden_in_a_function(tmp_path):
    package = tmp_path / "byoc"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from byoc.b import g\n")
    (package / "b.py").write_text("def g():\n    from byoc import a\n    return a\n")
    (package / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from byoc.a import g\n")
    modules = {"byoc": package / "__init__.py", "byoc.a": package / "a.py",
               "byoc.b": package / "b.py", "byoc.c": package / "c.py"}
    edges = {name: imported_modules(name, path, modules) for name, path in modules.items()}
    assert edges["byoc.c"] == set()
    assert cycles(edges) == [["byoc.a", "byoc.b"]]
