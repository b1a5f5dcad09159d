"""The import graph of our code is one-way: no cycles, counting imports inside functions.

A cycle means two modules each need the other to make sense; the loop's triggers used to
close several (jobs → tasks → job bodies → jobs; embeddings → cold start → training →
embeddings). Dotted paths in registries (core/job_kinds.py) are not imports: the worker
resolves them when a job runs.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "models_ml", "annotator")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> list[str]:
    """Every module `path` imports, anywhere in it (`from a import b` gives a and a.b)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    return found


def import_graph() -> dict[str, set[str]]:
    """module → the modules of ours it imports anywhere in its body (functions included)."""
    modules = {
        _module_name(path): path
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts
    }
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for target in imported_modules(path):
            # `from core.services import loop` imports core.services.loop
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and target not in _packages_of(name):
                graph[name].add(target)
    return graph


def _packages_of(name: str) -> set[str]:
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_the_import_graph_has_no_cycles():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    graph = import_graph()
    assert "core.services.loop" in graph["core.services.queue"]  # a plain import is seen
    assert "core.services.cold_start" in graph["core.services.loop"]  # one inside a function


def test_no_module_of_ours_needs_test_utilities_at_run_time():
    """`django.test` (override_settings and friends) and our tests/ are for tests only: the
    simulation used override_settings to run jobs inline and to move its files."""
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        for name in imported_modules(path)
        if name.startswith(("django.test", "tests.", "pytest"))
    ]
    assert offenders == []
