"""What a production start relies on: the first admin from the environment, the web health
endpoint, the worker heartbeat (docker-compose.yml's healthchecks)."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import DatabaseError
from django.test import Client

from core.worker import heartbeat_touch

pytestmark = pytest.mark.django_db
STRONG = "correct-horse-battery-staple-42"


def test_first_admin_is_created_once_from_the_environment(monkeypatch):
    monkeypatch.setenv("ANNOTATOR_ADMIN_USER", "boss")
    monkeypatch.setenv("ANNOTATOR_ADMIN_PASSWORD", STRONG)
    call_command("admin_from_env")
    boss = get_user_model().objects.get(username="boss")
    assert boss.is_superuser and boss.is_staff and boss.check_password(STRONG)

    # Later starts leave the account alone, even with another password in the environment.
    boss.set_password("changed-by-its-owner-7")
    boss.save()
    monkeypatch.setenv("ANNOTATOR_ADMIN_PASSWORD", "another-password-entirely-9")
    call_command("admin_from_env")
    boss.refresh_from_db()
    assert boss.check_password("changed-by-its-owner-7")
    assert Client().login(username="boss", password="changed-by-its-owner-7")


def test_no_admin_without_the_variables_and_none_with_a_weak_password(monkeypatch):
    monkeypatch.delenv("ANNOTATOR_ADMIN_USER", raising=False)
    monkeypatch.delenv("ANNOTATOR_ADMIN_PASSWORD", raising=False)
    call_command("admin_from_env")
    assert not get_user_model().objects.exists()
    monkeypatch.setenv("ANNOTATOR_ADMIN_USER", "boss")
    monkeypatch.setenv("ANNOTATOR_ADMIN_PASSWORD", "12345678")
    with pytest.raises(CommandError, match="ANNOTATOR_ADMIN_PASSWORD"):
        call_command("admin_from_env")
    assert not get_user_model().objects.exists()


def test_health_answers_without_login_and_says_when_the_database_is_gone(monkeypatch):
    response = Client().get("/healthz/")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"

    def broken(*args, **kwargs):
        raise DatabaseError("gone")

    monkeypatch.setattr("core.health.connection.cursor", broken)
    response = Client().get("/healthz/")
    assert response.status_code == 503 and response.json()["database"] == "unreachable"


def test_worker_heartbeat_file_is_touched_when_configured(settings, tmp_path):
    settings.ANNOTATOR_WORKER_HEARTBEAT_FILE = ""
    heartbeat_touch()  # off: nothing to do
    settings.ANNOTATOR_WORKER_HEARTBEAT_FILE = str(tmp_path / "run" / "beat")
    heartbeat_touch()
    assert (tmp_path / "run" / "beat").exists()


def test_every_page_names_an_icon_and_favicon_ico_leads_to_it(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("favicon.svg")
    assert client.get(response["Location"]).status_code == 200
    assert 'rel="icon"' in client.get("/accounts/login/").content.decode()
