"""Schemathesis over the OpenAPI schema against the live app (SECURITY.md row 29).

The app is served by Django's live server on the test database, with a project that has
classes and images, and the fuzzer signs in with the project admin's API token (not staff,
so quotas apply). Bounded by `SCHEMATHESIS_SECONDS` (default 45 s). It must find no
response >= 500, no status code and no content type the schema does not document, and no
body that does not match the documented schema.

Its findings are printed on failure with a `curl` line to reproduce each.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rest_framework.authtoken.models import Token

from core.services.imports import ImportSource, items_import
from tests.factories import ItemFactory, project_with_members
from tests.images import rgb_png

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
SECONDS = int(os.environ.get("SCHEMATHESIS_SECONDS", 45))


@pytest.fixture
def fuzzed_project(transactional_db):
    project, admin, _ = project_with_members(classes=("cat", "dog", "bird"))
    items_import(
        project=project,
        sources=[ImportSource(f"{i}.png", lambda i=i: rgb_png(i)) for i in range(6)],
        annotator=admin,
    )
    ItemFactory.create_batch(4, project=project)
    return project, Token.objects.create(user=admin).key


@pytest.mark.timeout(SECONDS + 300)
def test_schemathesis_finds_no_server_error_and_nothing_undocumented(
    live_server, fuzzed_project, tmp_path
):
    st = Path(sys.executable).with_name("st")
    if not st.exists():
        pytest.skip("schemathesis is not installed (requirements-dev.txt pins it)")
    project, token = fuzzed_project
    report = tmp_path / "report.json"
    command = [
        str(st),
        "run",
        f"{live_server.url}/api/schema/",
        "--header",
        f"Authorization: Token {token}",
        "--checks",
        ",".join(CHECKS),
        "--phases",
        "examples,coverage,fuzzing",
        "--max-time",
        str(SECONDS),
        "--workers",
        "2",
        "--seed",
        "20261125",
        "--generation-database",
        "none",
        "--no-color",
        "--report",
        "json",
        "--report-json-path",
        str(report),
    ]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=SECONDS + 240,
        cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false"},
    )
    output = result.stdout + result.stderr
    summary = re.search(r"(\d+) generated", output)

    print(output[-1500:])  # the summary: operations, phases, cases generated (pytest -s)
    assert result.returncode == 0, output[-12000:]
    assert summary and int(summary.group(1)) > 100, output[-3000:]
    shutil.rmtree(tmp_path / "schemathesis-report", ignore_errors=True)
