"""Tests: a file-backed SQLite database (real locking, so the concurrency tests mean
something), fast password hashing, media in a temporary folder.

`TEST_DATABASE_URL` switches the whole run to another database (make test uses it for the
PostgreSQL pass; tests/conftest.py skips that pass with a reason when the server does not
answer).
"""

import os
import tempfile
from pathlib import Path

import dj_database_url

from .base import *  # noqa: F403
from .base import sqlite_database

SECRET_KEY = "test-only-key"
DEBUG = False
_tmp = Path(tempfile.mkdtemp(prefix="annotator-test-"))
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", _tmp / "media"))
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

_test_url = os.environ.get("TEST_DATABASE_URL")
if _test_url and _test_url.startswith("sqlite:///"):
    # A worker process started by a test, on the test's own database file.
    DATABASES = {"default": sqlite_database(Path(_test_url.removeprefix("sqlite:///")))}
elif _test_url:
    DATABASES = {"default": dj_database_url.parse(_test_url)}
else:
    DATABASES = {"default": sqlite_database(_tmp / "unused.sqlite3")}
    DATABASES["default"]["TEST"] = {"NAME": str(_tmp / "test.sqlite3")}

# Tasks are stored, not run: tests run jobs explicitly (core.services.jobs.job_execute) or
# with a real worker process (tests/core/test_worker.py).
TASKS = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}
if os.environ.get("ANNOTATOR_TEST_TASK_BACKEND") == "database":
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
# Only a server started by a browser test runs jobs in-process (tests/e2e/test_live_loop.py).
ANNOTATOR_INPROCESS_WORKER = os.environ.get("ANNOTATOR_INPROCESS_WORKER") == "1"
ANNOTATOR_EMBEDDINGS_DIR = Path(os.environ.get("ANNOTATOR_EMBEDDINGS_DIR", _tmp / "embeddings"))
ANNOTATOR_ARTIFACTS_DIR = Path(os.environ.get("ANNOTATOR_ARTIFACTS_DIR", _tmp / "artifacts"))
ANNOTATOR_ENCODERS_DIR = Path(os.environ.get("ANNOTATOR_ENCODERS_DIR", _tmp / "encoders"))
ANNOTATOR_CLIP_MODEL = ""
ANNOTATOR_JOB_HEARTBEAT_S = float(os.environ.get("ANNOTATOR_JOB_HEARTBEAT_S", 5))
ANNOTATOR_PROJECT_CREATORS = "anyone"  # as the embedded default; tests of "staff" set it
