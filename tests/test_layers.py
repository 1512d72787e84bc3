"""Imports flow one way: no module imports from a layer above its own, and no two modules import
each other. The layer order is read from poolkit/__init__.py's docstring (the list a reader
sees), and the list must name every subpackage, so it cannot drift from the package."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import poolkit

PACKAGE = Path(poolkit.__file__).parent
LEAF = -1  # the rank of a top-level module the docstring does not list: below every layer


def _layer_names() -> list[str]:
    """The layers of the docstring, bottom first: ``["poolkit.geometry", ..., "poolkit.cli"]``."""
    names = re.findall(r"^ {4}(poolkit\.\w+) {2,}\S", poolkit.__doc__ or "", flags=re.M)
    return names[::-1]


LAYERS = _layer_names()


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path) -> set[str]:
    """The poolkit modules ``name`` imports, anywhere in the file (function bodies too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x, from ..y import z
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            for alias in node.names:  # `from poolkit.nn import basic` imports a submodule
                sub = f"{module}.{alias.name}"
                found.add(sub if sub in MODULES else module)
    return {m for m in found if m == "poolkit" or m.startswith("poolkit.")}


GRAPH = {name: _imports(name, path) - {name} for name, path in MODULES.items()}


def _rank(module: str) -> int:
    """Index of the layer ``module`` belongs to (``poolkit.__main__`` is the CLI's)."""
    if module == "poolkit.__main__":
        module = "poolkit.cli"
    for rank, layer in enumerate(LAYERS):
        if module == layer or module.startswith(layer + "."):
            return rank
    return LEAF


def _layer_of(module: str) -> str:
    return "a leaf" if _rank(module) == LEAF else LAYERS[_rank(module)]


def test_the_layer_list_names_every_subpackage_and_nothing_else():
    subpackages = {f"poolkit.{p.parent.name}" for p in PACKAGE.glob("*/__init__.py")}
    assert len(LAYERS) == len(set(LAYERS)) >= 8
    assert subpackages <= set(LAYERS), f"add {sorted(subpackages - set(LAYERS))} to the list"
    assert set(LAYERS) <= set(MODULES), f"{sorted(set(LAYERS) - set(MODULES))} do not exist"


def test_leaf_modules_import_only_leaves():
    leaves = {m for m in MODULES if _rank(m) == LEAF}
    assert {"poolkit", "poolkit.errors", "poolkit._console"} <= leaves
    offenders = {m: sorted(GRAPH[m] - leaves) for m in leaves if GRAPH[m] - leaves}
    assert not offenders, f"leaf modules may import only other leaves: {offenders}"


def test_no_module_imports_from_a_layer_above_its_own():
    upward = sorted(
        f"{module} ({_layer_of(module)}) imports {target} ({_layer_of(target)})"
        for module, targets in GRAPH.items()
        for target in targets
        if _rank(target) > _rank(module)
    )
    assert not upward, "\n".join(upward)


def test_no_two_modules_import_each_other():
    pairs = sorted(
        f"{a} <-> {b}" for a, targets in GRAPH.items() for b in targets if a < b and a in GRAPH[b]
    )
    assert not pairs, "\n".join(pairs)


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle ``[a, b, ..., a]`` of ``graph``, or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target):], target]
            if target not in state and (found := visit(target)):
                return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycles_at_all():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
    cycle = _cycle(GRAPH)
    assert cycle is None, " -> ".join(cycle or [])


@pytest.mark.parametrize("source, expected", [
    ("from poolkit.cli._app import app", {"poolkit.cli._app"}),
    ("def f():\n    from poolkit.nn import basic, create_pool", {"poolkit.nn.basic", "poolkit.nn"}),
    ("from . import tasks", {"poolkit.experiments.tasks"}),
    ("from ..train import trainer", {"poolkit.train.trainer"}),
])
def test_the_import_reader(tmp_path, source, expected):
    path = tmp_path / "runner.py"
    path.write_text(source)
    assert _imports("poolkit.experiments.runner", path) == expected
