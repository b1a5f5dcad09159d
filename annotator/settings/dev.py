"""The embedded default (`make run`): SQLite, in-memory channel layer, local media."""

import os

from .base import *  # noqa: F403
from .base import REDIS_URL, VAR_DIR, local_secret_key

# DEBUG is opt-in (DJANGO_DEBUG=1): its error pages list every URL and setting of the server.
DEBUG = os.environ.get("DJANGO_DEBUG", "0") == "1"
VAR_DIR.mkdir(parents=True, exist_ok=True)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or local_secret_key(VAR_DIR / "secret-key.txt")
# One person's server: whoever signs in may create projects (prod: staff only).
ANNOTATOR_PROJECT_CREATORS = os.environ.get("ANNOTATOR_PROJECT_CREATORS", "anyone")
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
# One command runs everything: the task worker runs as threads of the web server.
ANNOTATOR_INPROCESS_WORKER = os.environ.get(
    "ANNOTATOR_INPROCESS_WORKER", "0" if REDIS_URL else "1"
) in ("1", "true")
if not os.environ.get("DJANGO_EMAIL_HOST"):  # password-reset mail in the server's output
    MAILERS = {"default": {"BACKEND": "django.core.mail.backends.console.EmailBackend"}}
