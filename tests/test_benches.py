"""The benchmarks are not run by `make test`, so nothing else notices when a name they import
moves or goes (bench/retrain.py imported a removed function for a whole stop): every name a
bench imports from our code or another bench, at the top or inside a function, must exist."""

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHES = sorted((ROOT / "bench").glob("*.py"))


@pytest.mark.parametrize("bench", BENCHES, ids=lambda p: p.name)
def test_every_name_a_bench_imports_from_our_code_exists(bench):
    missing = []
    for node in ast.walk(ast.parse(bench.read_text())):
        if not (isinstance(node, ast.ImportFrom) and node.module and node.level == 0):
            continue
        if node.module.split(".")[0] not in ("core", "models_ml", "annotator", "bench"):
            continue
        module = importlib.import_module(node.module)
        for alias in node.names:
            if not hasattr(module, alias.name):
                try:
                    importlib.import_module(f"{node.module}.{alias.name}")
                except ImportError:
                    missing.append(f"{node.module}.{alias.name}")
    assert missing == []
