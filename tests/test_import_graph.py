"""No import cycles in t2t_mtl (DESIGN.md: data flows one way, no back-and-forth).

The graph is read with ``ast`` from every ``.py`` file under ``t2t_mtl/``, the metric
modules under ``evaluation/metrics/*/`` included. An edge runs from a module to each
t2t_mtl module it imports:

- imports inside functions count (a lazy import still runs both ways); imports under
  ``if TYPE_CHECKING:`` do not (they never run);
- ``from t2t_mtl.x import name`` is an edge to ``t2t_mtl.x``, and to ``t2t_mtl.x.name``
  when that is a module; relative imports are resolved first;
- importing ``t2t_mtl.a.b`` runs ``a/__init__.py`` too, so it is also an edge to every
  enclosing package, except the importer's own enclosing packages, which have started
  running before the importer does (the metric modules are loaded by
  ``t2t_mtl.evaluation.metrics``, so theirs have too).

Two graphs must be acyclic: the modules themselves, and the parts of DESIGN.md's
layout, where each sub-package (``tasks``, ``modeling``, ``evaluation``) is one node
beside the top-level modules (``templates``, ``data``, ``inference``, ...). The second
catches what the first cannot: ``templates -> evaluation.formats`` with
``evaluation.roundtrip -> templates`` is no module cycle, yet runs both ways between two parts.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

import t2t_mtl

ROOT = Path(t2t_mtl.__file__).parent


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name; a package's ``__init__.py`` is the package."""
    modules = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = ("t2t_mtl", *path.relative_to(ROOT).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement outside ``TYPE_CHECKING`` blocks, lazy ones included."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """The dotted names an import statement in ``module`` may load."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        anchor = ".".join(package[: len(package) - node.level + 1])
        base = f"{anchor}.{base}" if base else anchor
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def import_graph() -> dict[str, dict[str, str]]:
    """``{module: {imported module: "file:line"}}`` for the edges described above."""
    modules = _modules()
    graph: dict[str, dict[str, str]] = {}
    for module, path in modules.items():
        edges = graph.setdefault(module, {})
        own_packages = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            for target in _targets(node, module, path.name == "__init__.py"):
                parts = target.split(".")
                for i in range(1, len(parts) + 1):
                    name = ".".join(parts[:i])
                    if name in modules and name != module and name not in own_packages:
                        edges.setdefault(name, f"{path.relative_to(ROOT.parent)}:{node.lineno}")
    return graph


def find_cycles(graph: dict[str, dict[str, str]]) -> list[list[str]]:
    """One cycle (first module repeated at the end) per strongly connected component (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_cycle_in(graph, component) for component in components]


def _cycle_in(graph: dict[str, dict[str, str]], component: set[str]) -> list[str]:
    """A shortest cycle through the component's first module, by breadth-first search inside it."""
    start = min(component)
    previous = {start: None}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v]):
                if w == start:
                    path = [v]
                    while previous[path[-1]] is not None:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if w in component and w not in previous:
                    previous[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle in {component}")


def test_graph_sees_lazy_relative_and_package_imports():
    graph = import_graph()
    assert "t2t_mtl.evaluation.metrics.span_f1.span_f1" in graph
    assert "t2t_mtl.evaluation.scoring" in graph["t2t_mtl.evaluation.metrics.span_f1.span_f1"]
    assert "t2t_mtl.inference" in graph["t2t_mtl"]  # imported inside __getattr__
    assert "t2t_mtl.evaluation" not in graph["t2t_mtl.evaluation.parsers"]  # its own package


def test_find_cycles_reports_the_loop():
    graph = {"a": {"b": "a.py:1"}, "b": {"c": "b.py:1"}, "c": {"a": "c.py:1"}, "d": {"a": "d.py:1"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]


def layer_graph(graph: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """The graph with every module replaced by its layer: ``t2t_mtl.x`` for ``t2t_mtl.x.*``."""
    layers: dict[str, dict[str, str]] = {}
    for module, edges in graph.items():
        layer = ".".join(module.split(".")[:2])
        for target, where in edges.items():
            if (target_layer := ".".join(target.split(".")[:2])) != layer:
                layers.setdefault(layer, {}).setdefault(target_layer, where)
            layers.setdefault(target_layer, {})
    return layers


@pytest.mark.parametrize("collapse", [False, True], ids=["modules", "layers"])
def test_no_import_cycles(collapse):
    graph = layer_graph(import_graph()) if collapse else import_graph()
    cycles = find_cycles(graph)
    report = "\n".join(
        " -> ".join(cycle) + "\n" + "".join(f"    {a} -> {b} at {graph[a][b]}\n" for a, b in itertools.pairwise(cycle))
        for cycle in cycles
    )
    assert not cycles, f"import cycles between t2t_mtl modules:\n{report}"
