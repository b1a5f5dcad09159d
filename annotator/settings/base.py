"""Settings shared by every environment. Values that vary come from the environment."""

import os
from pathlib import Path

import dj_database_url
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(os.environ.get("ANNOTATOR_VAR_DIR", BASE_DIR / "var"))

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
DEBUG = False
ALLOWED_HOSTS = [
    h.strip()
    for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")
    if h.strip()
]
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "channels",
    "django_tasks_db",
    "core",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "core.middleware.RejectControlCharactersMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

# Enforced on every response that sets none of its own (user images set a stricter sandbox).
# Scripts only from static/ (or with the request's nonce): no inline code, no handlers in
# attributes, no eval; htmx is configured not to inject its indicator <style> (base.html).
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.NONCE],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}

ROOT_URLCONF = "annotator.urls"
WSGI_APPLICATION = "annotator.wsgi.application"
ASGI_APPLICATION = "annotator.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.csp",
            ],
        },
    },
]


def local_secret_key(path: Path) -> str:
    """A random secret key made on first start and kept in `path` (readable by the owner
    only), so the embedded default never runs on a key everyone knows."""
    if not path.exists():
        import secrets

        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as f:
            f.write(secrets.token_urlsafe(64))
    return path.read_text().strip()


def database_from_env(default_sqlite_path: Path) -> dict:
    """One DATABASES entry: `DATABASE_URL` when set, else SQLite tuned for concurrent writers.

    SQLite gets WAL (readers never block the writer), a busy timeout and IMMEDIATE
    transactions so that concurrent lease claims queue for the write lock instead of
    failing with "database is locked" halfway through a transaction.
    """
    url = os.environ.get("DATABASE_URL")
    if url:
        return postgres_database(url)
    return sqlite_database(default_sqlite_path)


def postgres_database(url: str) -> dict:
    """PostgreSQL with psycopg's connection pool.

    Under ASGI every request runs in its own thread, so persistent per-thread connections
    (CONN_MAX_AGE > 0) pile up until the server refuses clients; a pool bounds them.
    """
    config = dj_database_url.parse(url, conn_max_age=0)
    if config["ENGINE"] == "django.db.backends.postgresql":
        config.setdefault("OPTIONS", {})["pool"] = {
            "min_size": int(os.environ.get("DATABASE_POOL_MIN", 2)),
            "max_size": int(os.environ.get("DATABASE_POOL_MAX", 20)),
            "timeout": 10,
        }
    return config


# Our two pieces of infrastructure on Django internals, the pooled-thread ASGI handler
# (annotator/asgi.py) and the SQLite backend whose writers queue on a lock
# (annotator/sqlite/), are justified by measured latency (docs/benchmarks). `1` runs Django's
# stock handler and SQLite backend instead; `make test` runs the suite once that way too, so
# either can be dropped the day Django covers the need.
ANNOTATOR_STOCK_DJANGO = os.environ.get("ANNOTATOR_STOCK_DJANGO", "0") in ("1", "true")


def sqlite_database(path: Path) -> dict:
    """SQLite keeps each thread's connection open (CONN_MAX_AGE None): opening one costs a
    schema parse, and a new connection compiles every statement again, about 2-4 ms per
    request in bench/next_item.py. Requests run on a pool of reused threads
    (annotator/asgi.py), so the connections stay as few as those threads."""
    return {
        "ENGINE": "django.db.backends.sqlite3" if ANNOTATOR_STOCK_DJANGO else "annotator.sqlite",
        "NAME": path,
        "CONN_MAX_AGE": None,
        "OPTIONS": {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": (
                "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL;PRAGMA foreign_keys=ON;"
            ),
        },
    }


DATABASES = {"default": database_from_env(VAR_DIR / "db.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "core:project_list"
LOGOUT_REDIRECT_URL = "login"
# Password-reset mail (Django 6.1's MAILERS) through SMTP: DJANGO_EMAIL_HOST (default
# localhost), _PORT, _HOST_USER, _HOST_PASSWORD, _USE_TLS. The embedded default prints the
# mail to the console instead (settings/dev.py) unless DJANGO_EMAIL_HOST is set.
MAILERS = {
    "default": {
        "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "OPTIONS": {
            "host": os.environ.get("DJANGO_EMAIL_HOST", "localhost"),
            "port": int(os.environ.get("DJANGO_EMAIL_PORT", 25)),
            "username": os.environ.get("DJANGO_EMAIL_HOST_USER", ""),
            "password": os.environ.get("DJANGO_EMAIL_HOST_PASSWORD", ""),
            "use_tls": os.environ.get("DJANGO_EMAIL_USE_TLS", "0") in ("1", "true"),
        },
    }
}
DEFAULT_FROM_EMAIL = os.environ.get("DJANGO_DEFAULT_FROM_EMAIL", "annotator@localhost")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "staticfiles"))
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
# Media is never served from MEDIA_URL: every image goes through a view that checks
# project membership and sends it with an image content type (see core.views.item_image).
MEDIA_URL = "/media-not-served/"
# Images (`default`) and what the app makes from them (`artifacts`: embedding segments,
# staged uploads, export files): folders here, or one S3-compatible bucket (core/storage.py).
ANNOTATOR_ARTIFACTS_DIR = Path(os.environ.get("ANNOTATOR_ARTIFACTS_DIR", VAR_DIR / "artifacts"))


def storages_from_env(environ) -> dict:
    """STORAGES for settings: local folders, or one S3-compatible bucket when configured by
    the standard variables (AWS_STORAGE_BUCKET_NAME, AWS_S3_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY, AWS_S3_REGION_NAME; django-storages reads the credentials)."""
    bucket = environ.get("AWS_STORAGE_BUCKET_NAME", "")
    if not bucket:
        return {
            "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
            "artifacts": {"BACKEND": "core.storage.ArtifactStorage"},
        }
    common = {
        "bucket_name": bucket,
        "endpoint_url": environ.get("AWS_S3_ENDPOINT_URL") or None,
        "region_name": environ.get("AWS_S3_REGION_NAME") or None,
        # Private objects; browsers never get a bucket URL for an image (the image views
        # stream them with our headers), and export links are signed for a few minutes.
        "default_acl": None,
        "querystring_auth": True,
        "querystring_expire": int(environ.get("ANNOTATOR_SIGNED_URL_S", 300)),
        "file_overwrite": False,
    }
    return {
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {**common, "location": "media"},
        },
        "artifacts": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {**common, "location": "artifacts", "file_overwrite": True},
        },
    }


STORAGES = {
    **storages_from_env(os.environ),
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Uploads above 2.5 MB spill to temporary files instead of memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
DATA_UPLOAD_MAX_NUMBER_FILES = 5000

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "core.authentication.ExpiringTokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "core.schema.AnnotatorSchema",
    "EXCEPTION_HANDLER": "core.apis.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Annotator API",
    "DESCRIPTION": "Active-learning image annotation: projects, items, leases and labels.",
    "VERSION": "0.1.0",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SERVE_INCLUDE_SCHEMA": False,
    # Ids in paths are `<id:…>` (core/converters.py): 1 to 18 digits.
    "PATH_CONVERTER_OVERRIDES": {
        "id": {"type": "integer", "minimum": 0, "maximum": 999_999_999_999_999_999}
    },
    # Two fields named "source" (annotation, suggestion): one enum name each.
    "ENUM_NAME_OVERRIDES": {
        "SuggestionSourceEnum": "core.models.SuggestionSource",
        "AnnotationSourceEnum": "core.models.AnnotationSource",
    },
}

REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
    # Shared by every process: sign-in failure counts (core/auth.py).
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                          "LOCATION": REDIS_URL}}  # fmt: skip
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Who may create projects (core/access.py): "staff" (the default in production) or "anyone".
ANNOTATOR_PROJECT_CREATORS = os.environ.get("ANNOTATOR_PROJECT_CREATORS", "staff")
if ANNOTATOR_PROJECT_CREATORS not in ("staff", "anyone"):
    raise ValueError("ANNOTATOR_PROJECT_CREATORS must be 'staff' or 'anyone'")

# Sign-in limits (core/auth.py): failures per address and account, per address, and the
# window they are counted in; API tokens expire after this many days (0: never).
ANNOTATOR_LOGIN_FAILURES_PER_ACCOUNT = int(os.environ.get("ANNOTATOR_LOGIN_FAILURES", 10))
ANNOTATOR_LOGIN_FAILURES_PER_ADDRESS = int(
    os.environ.get("ANNOTATOR_LOGIN_FAILURES_PER_ADDRESS", 100)
)
ANNOTATOR_LOGIN_WINDOW_S = int(os.environ.get("ANNOTATOR_LOGIN_WINDOW_S", 900))
ANNOTATOR_API_TOKEN_DAYS = int(os.environ.get("ANNOTATOR_API_TOKEN_DAYS", 30))

# Image import limits (see core/imaging.py). Overridable per deployment.
ANNOTATOR_MAX_IMAGE_PIXELS = int(os.environ.get("ANNOTATOR_MAX_IMAGE_PIXELS", 50_000_000))
ANNOTATOR_MAX_FILE_BYTES = int(os.environ.get("ANNOTATOR_MAX_FILE_BYTES", 50 * 1024 * 1024))
ANNOTATOR_MAX_ZIP_BYTES = int(os.environ.get("ANNOTATOR_MAX_ZIP_BYTES", 2 * 1024**3))
ANNOTATOR_THUMBNAIL_SIZE = 256
# Pixels one import may decode in all (a request, or one background import job): images
# are decoded one at a time, so this bounds CPU time, not memory.
ANNOTATOR_MAX_BATCH_PIXELS = int(os.environ.get("ANNOTATOR_MAX_BATCH_PIXELS", 20_000_000_000))
# Uploads with a zip, more files or more bytes than these are staged and imported by a
# background job (the request returns at once with the job); smaller ones import inline.
ANNOTATOR_INLINE_IMPORT_FILES = int(os.environ.get("ANNOTATOR_INLINE_IMPORT_FILES", 20))
ANNOTATOR_INLINE_IMPORT_BYTES = int(os.environ.get("ANNOTATOR_INLINE_IMPORT_BYTES", 20 * 1024**2))
# Largest upload request (all files together); bigger ones are refused before reading.
ANNOTATOR_MAX_UPLOAD_BYTES = int(os.environ.get("ANNOTATOR_MAX_UPLOAD_BYTES", 2 * 1024**3))

# Per-account quotas (core/services/quotas.py): stored image bytes a user's imports may
# add up to (0: no limit), and heavy jobs (imports, exports, pretraining) one user may
# have queued or running at once. Staff are not limited.
ANNOTATOR_USER_STORAGE_BYTES = int(os.environ.get("ANNOTATOR_USER_STORAGE_BYTES", 50 * 1024**3))
ANNOTATOR_USER_ACTIVE_JOBS = int(os.environ.get("ANNOTATOR_USER_ACTIVE_JOBS", 3))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}

# Background jobs (django.tasks). The database backend is the queue; `manage.py worker` runs
# it (and `make run` runs it inside the web process, see core/worker.py). Tests switch to the
# immediate backend.
TASKS = {
    "default": {
        "BACKEND": "django_tasks_db.DatabaseBackend",
        "QUEUES": ["default"],
    }
}
# Run the task worker as threads of the ASGI server (core/worker.py): the embedded default
# (dev settings turn it on unless REDIS_URL is set), where the in-memory channel layer only
# reaches browsers connected to this very process. In production separate
# `manage.py worker` processes publish through Redis.
ANNOTATOR_INPROCESS_WORKER = os.environ.get("ANNOTATOR_INPROCESS_WORKER", "0") in ("1", "true")
ANNOTATOR_WORKER_THREADS = int(os.environ.get("ANNOTATOR_WORKER_THREADS", 2))
# How often an idle worker thread looks for tasks enqueued by other processes (a bound on
# the loop's latency); a task enqueued in the worker's own process wakes it at once. The
# in-process worker gets nearly all its tasks from its own process (only `manage.py`
# commands enqueue from outside), so it looks less often: each look is a write
# transaction, which on SQLite queues with the annotators' own writes.
ANNOTATOR_WORKER_POLL_S = float(os.environ.get("ANNOTATOR_WORKER_POLL_S", 0.25))
ANNOTATOR_INPROCESS_WORKER_POLL_S = float(os.environ.get("ANNOTATOR_INPROCESS_WORKER_POLL_S", 2))
# A worker process touches this file each time its recovery loop reaches the database
# (every 2 × ANNOTATOR_JOB_HEARTBEAT_S); the compose healthcheck reads its age. Empty: off.
ANNOTATOR_WORKER_HEARTBEAT_FILE = os.environ.get("ANNOTATOR_WORKER_HEARTBEAT_FILE", "")
# A running job writes a heartbeat this often; one silent for 4 intervals is marked failed.
ANNOTATOR_JOB_HEARTBEAT_S = float(os.environ.get("ANNOTATOR_JOB_HEARTBEAT_S", 5))
# Embeddings: one float16 matrix per project and encoder key (models_ml.store.EmbeddingStore),
# memory-mapped from this folder. With a bucket configured it is this machine's cache of the
# segments kept in the `artifacts` storage (core/services/embedding_sync.py).
ANNOTATOR_EMBEDDINGS_DIR = Path(os.environ.get("ANNOTATOR_EMBEDDINGS_DIR", VAR_DIR / "embeddings"))
# In-domain SSL encoders pretrained on a project's own images are written here.
ANNOTATOR_ENCODERS_DIR = Path(os.environ.get("ANNOTATOR_ENCODERS_DIR", VAR_DIR / "encoders"))
ANNOTATOR_PRETRAIN_BUDGET_S = float(os.environ.get("ANNOTATOR_PRETRAIN_BUDGET_S", 600))
# CLIP for zero-shot suggestions (open_clip model + pretrained tag or local weights path);
# an empty model name turns zero-shot off.
ANNOTATOR_CLIP_MODEL = os.environ.get("ANNOTATOR_CLIP_MODEL", "ViT-B-32")
ANNOTATOR_CLIP_PRETRAINED = os.environ.get("ANNOTATOR_CLIP_PRETRAINED", "laion2b_s34b_b79k")
