"""docs/security.md read as data: its scenario rows and the tests each names."""

import re
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "security.md"
ROW = re.compile(r"^\| (\d+) \|(.*)\|$")
TEST = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def scenario_rows() -> dict[int, list[tuple[str, str]]]:
    """Row number → the (file, test function) pairs named in its Tests column."""
    rows = {}
    for line in DOC.read_text().splitlines():
        if match := ROW.match(line):
            tests_column = match.group(2).rsplit("|", 1)[-1]
            rows[int(match.group(1))] = TEST.findall(tests_column)
    return rows


def scenario_test_ids() -> set[str]:
    return {f"{path}::{name}" for tests in scenario_rows().values() for path, name in tests}
