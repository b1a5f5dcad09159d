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


def test_the_certification_bench_scores_the_apps_cuts_against_the_truth():
    """Separable blobs: the app's rule certifies a cut from 100 audits, and the bench reports
    the coverage and the true precision of the pseudo-labels it makes on the open images."""
    import numpy as np

    from bench.pseudo_label_certification import cell, summary

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 300)
    X = rng.normal(size=(900, 8)) + 6 * np.eye(3, 8)[y]
    result = cell(X, y, labels=60, audits=120, seed=0, target=0.95)
    assert result["audits_right"] > 0.95 and result["oracle_coverage"] > 0.9
    assert result["certified"]["precision"] >= 0.95 and result["certified"]["coverage"] > 0.5
    noisy = dict(result, certified={"coverage": 0.4, "precision": 0.9})
    assert summary([result, noisy], "certified", 0.95) == {
        "cells": 2,
        "certified": 2,
        "misses": 1,
        "mean_coverage": round((result["certified"]["coverage"] + 0.4) / 2, 4),
    }
