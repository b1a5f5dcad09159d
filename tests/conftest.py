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
    settings.ANNOTATOR_IMPORTS_DIR = tmp_path / "imports"


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Sign-in failure counts (core/auth.py) live in the cache: none leak between tests."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()
