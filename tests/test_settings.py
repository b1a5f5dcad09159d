"""The settings modules as a fresh process loads them: safe defaults, refused weak secrets."""

import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

ROOT = Path(settings.BASE_DIR)
STRONG_KEY = "k" * 20 + "3f9Zq-x_8VbT1mWc0LrY2nH5sJ7dG4aE6uK"


def run(module: str, code: str, **env) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    environment.update(DJANGO_SETTINGS_MODULE=module, **env)
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_embedded_default_runs_without_debug_and_on_a_key_of_its_own(tmp_path):
    code = "from django.conf import settings; print(settings.DEBUG, settings.SECRET_KEY)"
    first = run("annotator.settings.dev", code, ANNOTATOR_VAR_DIR=str(tmp_path))
    second = run("annotator.settings.dev", code, ANNOTATOR_VAR_DIR=str(tmp_path))
    debug, key = first.stdout.split()
    assert first.returncode == 0, first.stderr
    assert debug == "False" and len(key) >= 50 and "insecure" not in key
    assert second.stdout == first.stdout  # kept in var/, the same on every start
    assert (tmp_path / "secret-key.txt").stat().st_mode & 0o077 == 0  # owner only
    assert (
        run("annotator.settings.dev", code, ANNOTATOR_VAR_DIR=str(tmp_path / "other")).stdout
        != first.stdout
    )


def test_production_refuses_a_missing_or_short_secret_key():
    for key in ("", "x", "a" * 60):
        result = run("annotator.settings.prod", "pass", DJANGO_SECRET_KEY=key)
        assert result.returncode != 0 and "DJANGO_SECRET_KEY" in result.stderr, key


def test_check_deploy_with_production_settings_reports_no_issue(tmp_path):
    result = run(
        "annotator.settings.prod",
        "from django.core.management import call_command; "
        "call_command('check', deploy=True, fail_level='WARNING')",
        DJANGO_SECRET_KEY=STRONG_KEY,
        ANNOTATOR_VAR_DIR=str(tmp_path),  # the model checks open the (SQLite) database
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout + result.stderr


def test_the_image_defaults_to_production_settings():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "DJANGO_SETTINGS_MODULE=annotator.settings.prod" in dockerfile


def test_project_creation_is_staff_only_in_production_and_open_in_the_embedded_default(tmp_path):
    code = "from django.conf import settings; print(settings.ANNOTATOR_PROJECT_CREATORS)"
    prod = run("annotator.settings.prod", code, DJANGO_SECRET_KEY=STRONG_KEY)
    dev = run("annotator.settings.dev", code, ANNOTATOR_VAR_DIR=str(tmp_path))
    assert (prod.stdout.strip(), dev.stdout.strip()) == ("staff", "anyone")


def test_a_bucket_in_the_environment_moves_media_and_artifacts_to_it(tmp_path):
    code = (
        "from django.core.files.storage import storages; "
        "print(type(storages['default']).__name__, type(storages['artifacts']).__name__, "
        "getattr(storages['default'], 'bucket_name', '-'), storages['default'].location, "
        "storages['artifacts'].location)"
    )
    local = run("annotator.settings.prod", code, DJANGO_SECRET_KEY=STRONG_KEY)
    assert local.stdout.split()[:2] == ["FileSystemStorage", "ArtifactStorage"], local.stderr
    bucket = run(
        "annotator.settings.prod",
        code,
        DJANGO_SECRET_KEY=STRONG_KEY,
        AWS_STORAGE_BUCKET_NAME="labels",
        AWS_S3_ENDPOINT_URL="http://127.0.0.1:9000",
    )
    assert bucket.stdout.split() == ["S3Storage", "S3Storage", "labels", "media", "artifacts"]
