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
MEDIA_ROOT = _tmp / "media"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

_test_url = os.environ.get("TEST_DATABASE_URL")
if _test_url:
    DATABASES = {"default": dj_database_url.parse(_test_url)}
else:
    DATABASES = {"default": sqlite_database(_tmp / "unused.sqlite3")}
    DATABASES["default"]["TEST"] = {"NAME": str(_tmp / "test.sqlite3")}
