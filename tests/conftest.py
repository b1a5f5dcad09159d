import os

import pytest


def _postgres_unreachable_reason() -> str | None:
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        return None
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=3):
            return None
    except Exception as exc:  # any failure to connect means: skip, with the reason
        return f"PostgreSQL at {url} is not reachable ({exc.__class__.__name__}: {exc})"


def pytest_addoption(parser):
    parser.addoption(
        "--security-scenarios",
        action="store_true",
        help="run only the tests docs/security.md names for its 32 scenarios",
    )


def pytest_collection_modifyitems(config, items):
    if config.getoption("--security-scenarios"):
        from tests.security_doc import scenario_test_ids

        wanted = scenario_test_ids()
        chosen = [item for item in items if item.nodeid.split("[")[0] in wanted]
        config.hook.pytest_deselected(items=[item for item in items if item not in chosen])
        items[:] = chosen
    from django.conf import settings

    if settings.ANNOTATOR_STOCK_DJANGO:
        stock = pytest.mark.skip(reason="tests our own handler/backend; this run uses Django's")
        for item in items:
            if item.get_closest_marker("custom_infra"):
                item.add_marker(stock)
    reason = _postgres_unreachable_reason()
    if reason:
        skip = pytest.mark.skip(reason=reason)
        for item in items:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.ANNOTATOR_EMBEDDINGS_DIR = tmp_path / "embeddings"
    settings.ANNOTATOR_ENCODERS_DIR = tmp_path / "encoders"
    settings.ANNOTATOR_ARTIFACTS_DIR = tmp_path / "artifacts"


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Sign-in failure counts (core/auth.py) live in the cache: none leak between tests."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture(scope="session")
def s3_server():
    """A moto S3 server on 127.0.0.1 for the whole run (skipped with the reason if it
    cannot start); `s3_server.bucket()` makes a fresh bucket per test."""
    from tests.s3server import s3_server_start

    process, server = s3_server_start()
    yield server
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def s3_storage(s3_server, settings, monkeypatch):
    """The app's storages on a fresh bucket of the test S3 server, as production configures
    them from the environment; returns (server, bucket environment)."""
    from annotator.settings.base import storages_from_env

    env = s3_server.bucket()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings.STORAGES = {**storages_from_env(env), "staticfiles": settings.STORAGES["staticfiles"]}
    return s3_server, env
