"""The package's imports flow one way: read every import statement (module level and inside
functions) and fail on any cycle, and on any library module that imports the command line."""

from __future__ import annotations

import ast
from pathlib import Path

import attnlab

ROOT = Path(attnlab.__file__).parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


def resolve(current: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    """The attnlab modules one ``from ... import ...`` statement loads."""
    if node.level:
        base = current.split(".") if is_package else current.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        origin = ".".join(base + ([node.module] if node.module else []))
    else:
        origin = node.module or ""
    targets = []
    for alias in node.names:
        child = f"{origin}.{alias.name}"
        targets.append(child if child in MODULES else origin)
    return targets


def imports_of(name: str) -> set[str]:
    path = MODULES[name]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.update(resolve(name, path.name == "__init__.py", node))
    # Importing a module always initialises its parent packages first: those edges are not choices.
    return {m for m in found if m in MODULES and m != name and not name.startswith(m + ".")}


GRAPH = {name: imports_of(name) for name in MODULES}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_relative_imports_resolve_to_modules():
    # viz/heads.py says `from .. import reference as R` and `from ..attention import masks`.
    assert {"attnlab.reference", "attnlab.attention.masks"} <= GRAPH["attnlab.viz.heads"]
    assert len(MODULES) > 40


def test_no_import_cycle():
    assert find_cycle(GRAPH) is None, " -> ".join(find_cycle(GRAPH))


def test_library_never_imports_the_command_line():
    offenders = sorted(
        name for name, deps in GRAPH.items()
        if not name.startswith("attnlab.cli") and name not in ("attnlab.__main__",)
        and any(d == "attnlab.cli" or d.startswith("attnlab.cli.") for d in deps)
    )
    assert offenders == []
