"""The packages' layers point one way, and no package has an import cycle.

`worker/` is the domain and its consumers; `api_shim/` may import it; `segments/` (the command
line) may import both. Every import counts, including ones inside functions and under
TYPE_CHECKING: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("worker", "api_shim", "segments")
# What each package may import of the others.
ALLOWED = {"worker": set(), "api_shim": {"worker"}, "segments": {"worker", "api_shim"}}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {
    module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
}


def imported_names(path: Path) -> Iterator[str]:
    """Every module name an import statement in `path` names (absolute or relative)."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path.parent)
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            # `from package import module` imports the module.
            yield from (f"{base}.{alias.name}" for alias in node.names)


def project_imports(path: Path) -> set[str]:
    # `from package import submodule` inside the package's __init__ names the package itself.
    own = module_name(path)
    return {name for name in imported_names(path) if name in MODULES and name != own}


GRAPH = {name: project_imports(path) for name, path in MODULES.items()}


def test_the_walk_sees_the_imports() -> None:
    # A guard for the guard: if the walk found nothing, every other test would pass vacuously.
    assert "worker.relay" in GRAPH["api_shim.app"]
    assert "api_shim.server" in GRAPH["segments.lifecycle"]  # imported inside a function


@pytest.mark.parametrize("package", PACKAGES)
def test_layers_point_one_way(package: str) -> None:
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        if module.split(".")[0] == package
        for target in targets
        if (other := target.split(".")[0]) != package and other not in ALLOWED[package]
    )
    assert wrong == []


def a_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of the graph, or [] if it has none."""
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as exc:
        return list(exc.args[1])
    return []


def within(package: str) -> dict[str, set[str]]:
    """The package's own import graph; a package's __init__ importing its submodules is not a
    cycle of interest, so edges into a package's own __init__ from its children are dropped."""
    members = {m for m in GRAPH if m.split(".")[0] == package}
    return {
        module: {t for t in GRAPH[module] if t in members and not module.startswith(t + ".")}
        for module in members
    }


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycles(package: str) -> None:
    assert a_cycle(within(package)) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert sorted(set(a_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}))) == ["a", "b", "c"]
