import ast
from pathlib import Path

import models_ml


def test_models_ml_never_imports_django():
    root = Path(models_ml.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.name}: {n}"
                for n in names
                if n.split(".")[0] in ("django", "core", "annotator", "rest_framework")
            ]
    assert offenders == []
