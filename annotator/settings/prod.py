"""Production: everything from the environment; refuses to start without a strong secret key.

HTTPS is assumed (a proxy in front terminates TLS): HSTS, the HTTPS redirect and secure
cookies are on by default and each can be turned off by its variable (see the README).
`manage.py check --deploy` with these settings reports no issue.
"""

import os

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import storages_from_env

MIN_SECRET_KEY_LENGTH = 50
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if len(SECRET_KEY) < MIN_SECRET_KEY_LENGTH or len(set(SECRET_KEY)) < 5:
    raise ImproperlyConfigured(
        f"DJANGO_SECRET_KEY must be set in production, at least {MIN_SECRET_KEY_LENGTH} "
        "random characters (e.g. python -c 'import secrets; print(secrets.token_urlsafe(64))')."
    )
DEBUG = False


def _flag(name: str, default: str = "1") -> bool:
    return os.environ.get(name, default) in ("1", "true", "yes")


SESSION_COOKIE_SECURE = _flag("DJANGO_SECURE_COOKIES")
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SECURE_SSL_REDIRECT = _flag("DJANGO_SECURE_SSL_REDIRECT")
# The container healthcheck asks over plain HTTP from inside (docker-compose.yml).
SECURE_REDIRECT_EXEMPT = [r"^healthz/$"]
SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_SECURE_HSTS_SECONDS", 31_536_000))
SECURE_HSTS_INCLUDE_SUBDOMAINS = _flag("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS")
# Only adds the `preload` directive; submitting the domain to browsers' list is up to you.
SECURE_HSTS_PRELOAD = _flag("DJANGO_SECURE_HSTS_PRELOAD")
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto (the compose file's, nginx...).
if _flag("DJANGO_BEHIND_PROXY"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
STORAGES = {
    **storages_from_env(os.environ),
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
