"""docker-compose.yml cannot be run here (no Docker engine); read it and check it fits the app."""

from pathlib import Path

import yaml
from django.conf import settings

ROOT = Path(settings.BASE_DIR)


def test_compose_file_wires_web_to_postgres_and_redis():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"db", "redis", "web"} <= set(services)
    web = services["web"]
    env = web["environment"]
    assert env["DJANGO_SETTINGS_MODULE"] == "annotator.settings.prod"
    assert (ROOT / "annotator/settings/prod.py").exists()
    assert env["DATABASE_URL"].startswith("postgres://") and "@db:5432/" in env["DATABASE_URL"]
    assert env["REDIS_URL"].startswith("redis://redis:6379")
    assert "daphne" in web["command"] and "annotator.asgi:application" in web["command"]
    # Production runs Django's stock handler: ours did not win on PostgreSQL (docs/benchmarks)
    assert env["ANNOTATOR_STOCK_DJANGO"] == "1"
    assert web["depends_on"]["db"]["condition"] == "service_healthy"
    assert "media:/data" in web["volumes"]
    assert set(compose["volumes"]) >= {"media", "pgdata"}
    assert (ROOT / web["build"] / "Dockerfile").exists()


def test_requirements_are_pinned():
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            assert "==" in line, f"unpinned requirement: {line}"


def test_compose_file_runs_a_worker_on_the_same_database_redis_and_media():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    web, worker = compose["services"]["web"], compose["services"]["worker"]
    assert "manage.py worker" in worker["command"]
    for key in ("DATABASE_URL", "REDIS_URL", "MEDIA_ROOT", "ANNOTATOR_VAR_DIR"):
        assert worker["environment"][key] == web["environment"][key], key
    assert worker["volumes"] == web["volumes"]
    assert worker["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    # the web server must not run jobs itself in production: workers publish through Redis
    assert web["environment"]["DJANGO_SETTINGS_MODULE"] == "annotator.settings.prod"
