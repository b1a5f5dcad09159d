from pathlib import Path

import models_ml
from tests.architecture.test_import_graph import imported_modules


def test_models_ml_never_imports_django():
    root = Path(models_ml.__file__).parent
    offenders = [
        f"{path.name}: {name}"
        for path in root.rglob("*.py")
        for name in imported_modules(path)
        if name.split(".")[0] in ("django", "core", "annotator", "rest_framework")
    ]
    assert offenders == []
