"""docs/security.md keeps its promise: all 32 scenarios, each shown by tests that exist."""

import ast
import subprocess
import sys
from pathlib import Path

from tests.security_doc import scenario_rows

ROOT = Path(__file__).resolve().parent.parent


def _test_functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")
    }


def test_every_scenario_has_a_row_and_every_row_names_tests_that_exist():
    rows = scenario_rows()
    assert sorted(rows) == list(range(1, 33))
    missing = []
    for number, tests in rows.items():
        assert tests, f"row {number} names no test"
        for path, name in tests:
            file = ROOT / path
            if not file.exists() or name not in _test_functions(file):
                missing.append(f"row {number}: {path}::{name}")
    assert missing == []


def test_make_security_collects_exactly_the_named_tests():
    """`pytest --security-scenarios` (make security) runs the tests the table names, all
    of them and nothing else."""
    from tests.security_doc import scenario_test_ids

    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "--security-scenarios"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    collected = {
        line.split("[")[0] for line in result.stdout.splitlines() if line.startswith("tests/")
    }
    assert collected == scenario_test_ids(), result.stdout[-2000:] + result.stderr[-2000:]
