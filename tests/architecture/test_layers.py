"""docs/architecture.md's layer table is the code's: every module in exactly one layer, every
import (also inside functions) to the same layer or one below it."""

import re
from pathlib import Path

from tests.architecture.test_import_graph import import_graph

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"
ROW = re.compile(r"^\| (\w+) \| (`[^|]*`) \|$")


def layers() -> list[tuple[str, list[str]]]:
    """(layer, module patterns) from the table, top layer first."""
    rows = []
    section = DOC.read_text().split("\n## Layers\n", 1)[1].split("\n## ", 1)[0]
    for line in section.splitlines():
        if match := ROW.match(line):
            rows.append((match.group(1), re.findall(r"`([\w.*]+)`", match.group(2))))
    return rows


def layer_of(module: str, table: list[tuple[str, list[str]]]) -> list[int]:
    found = []
    for depth, (_, patterns) in enumerate(table):
        for pattern in patterns:
            if pattern.endswith(".*"):
                prefix = pattern[:-2]
                if module == prefix or module.startswith(prefix + "."):
                    found.append(depth)
            elif module == pattern:
                found.append(depth)
    return found


def test_every_module_is_in_exactly_one_layer():
    table = layers()
    assert [name for name, _ in table][:4] == ["entry", "evaluation", "web", "app"]
    misplaced = {m: layer_of(m, table) for m in import_graph() if len(layer_of(m, table)) != 1}
    assert misplaced == {}


def upward_imports(graph: dict[str, set[str]], table) -> list[str]:
    return [
        f"{module} ({table[layer_of(module, table)[0]][0]}) imports "
        f"{target} ({table[layer_of(target, table)[0]][0]})"
        for module, targets in sorted(graph.items())
        for target in sorted(targets)
        if layer_of(target, table)[0] < layer_of(module, table)[0]
    ]


def test_imports_go_down_the_layers_or_stay_in_their_own():
    assert upward_imports(import_graph(), layers()) == []


def test_the_layer_check_catches_an_upward_import():
    graph = {"core.services.jobs": {"core.services.loop", "core.models"}}
    assert upward_imports(graph, layers()) == [
        "core.services.jobs (jobs) imports core.services.loop (loop)"
    ]


def test_every_module_the_table_names_exists():
    modules = set(import_graph())
    named = [p for _, patterns in layers() for p in patterns if not p.endswith(".*")]
    assert [name for name in named if name not in modules] == []


def test_every_service_module_has_its_test_module():
    """Tests mirror the code: core/services/<name>.py is tested in tests/core/test_<name>.py."""
    root = DOC.parents[1]
    services = {p.stem for p in (root / "core" / "services").glob("*.py") if p.stem != "__init__"}
    tests = {p.stem.removeprefix("test_") for p in (root / "tests" / "core").glob("test_*.py")}
    assert sorted(services - tests) == []
