"""Sign-in throttling (login page and token endpoint) and expiring API tokens."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_thirty_wrong_passwords_then_the_right_one_is_still_refused(client, settings):
    """Before: 30 wrong passwords, then the right one signed in."""
    UserFactory(username="ann")
    login = reverse("login")
    statuses = [
        client.post(login, {"username": "ann", "password": f"guess{i}"}).status_code
        for i in range(30)
    ]
    assert statuses[: settings.ANNOTATOR_LOGIN_FAILURES_PER_ACCOUNT] == [200] * 10
    assert set(statuses[10:]) == {429}
    blocked = client.post(login, {"username": "ann", "password": "pw"})
    assert blocked.status_code == 429 and "Too many failed sign-ins" in blocked.content.decode()
    assert "_auth_user_id" not in client.session
    # Another account from the same address is not locked by ann's failures...
    UserFactory(username="bob")
    assert client.post(login, {"username": "bob", "password": "pw"}).status_code == 302


def test_a_right_password_before_the_limit_resets_the_count(client):
    UserFactory(username="ann")
    login = reverse("login")
    for _ in range(9):
        client.post(login, {"username": "ann", "password": "wrong"})
    assert client.post(login, {"username": "ann", "password": "pw"}).status_code == 302
    client.logout()
    for _ in range(9):
        assert client.post(login, {"username": "ann", "password": "wrong"}).status_code == 200


def test_the_token_endpoint_is_throttled_the_same_way():
    UserFactory(username="ann")
    api = APIClient()
    for _ in range(10):
        assert api.post("/api/token/", {"username": "ann", "password": "x"}).status_code == 400
    response = api.post("/api/token/", {"username": "ann", "password": "pw"})
    assert response.status_code == 429 and "Too many" in response.json()["detail"]


def test_the_token_endpoint_answers_400_to_a_body_that_is_not_an_object():
    """Schemathesis found this one: a JSON list as the body was a 500."""
    response = APIClient().post("/api/token/", [None, None], format="json")
    assert response.status_code == 400
    assert response.json() == {"non_field_errors": ["Send username and password."]}


def test_tokens_expire_and_asking_again_issues_a_new_one(settings):
    settings.ANNOTATOR_API_TOKEN_DAYS = 30
    UserFactory(username="ann")
    api = APIClient()
    issued = api.post("/api/token/", {"username": "ann", "password": "pw"}).json()
    assert issued["expires_at"]
    api.credentials(HTTP_AUTHORIZATION=f"Token {issued['token']}")
    assert api.get("/api/projects/").status_code == 200
    Token.objects.filter(key=issued["token"]).update(created=timezone.now() - timedelta(days=31))
    expired = api.get("/api/projects/")
    assert expired.status_code == 403 and "expired" in expired.json()["detail"]
    renewed = APIClient().post("/api/token/", {"username": "ann", "password": "pw"}).json()
    assert renewed["token"] != issued["token"]
    api.credentials(HTTP_AUTHORIZATION=f"Token {renewed['token']}")
    assert api.get("/api/projects/").status_code == 200


def test_with_staff_only_creation_an_annotator_cannot_create_projects(client, settings):
    from core.models import Project

    settings.ANNOTATOR_PROJECT_CREATORS = "staff"
    user = UserFactory()
    client.force_login(user)
    assert "New project" not in client.get(reverse("core:project_list")).content.decode()
    assert client.get(reverse("core:project_new")).status_code == 403
    assert client.post(reverse("core:project_new"), {"name": "P"}).status_code == 403
    api = APIClient()
    api.force_authenticate(user)
    assert api.post("/api/projects/", {"name": "P"}, format="json").status_code == 403
    assert not Project.objects.exists()
    staff = UserFactory(is_staff=True)
    api.force_authenticate(staff)
    assert api.post("/api/projects/", {"name": "P"}, format="json").status_code == 201
    client.force_login(staff)
    assert "New project" in client.get(reverse("core:project_list")).content.decode()


@pytest.mark.django_db
def test_password_reset_by_email_and_change_while_logged_in(client, mailoutbox):
    import re as _re

    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("ann", "ann@example.org", "old-pass-phrase-1")
    assert client.get("/accounts/login/").content.decode().count("/accounts/password_reset/") == 1
    response = client.post("/accounts/password_reset/", {"email": "ann@example.org"})
    assert response.status_code == 302 and len(mailoutbox) == 1
    link = _re.search(r"http://testserver(/accounts/reset/\S+/)", mailoutbox[0].body).group(1)
    form = client.get(link, follow=True)
    assert "Set a new password" in form.content.decode()
    new = "new-pass-phrase-2"
    done = client.post(form.redirect_chain[-1][0], {"new_password1": new, "new_password2": new})
    assert done.status_code == 302
    assert client.login(username="ann", password=new)
    assert client.get(link, follow=True).content.decode().count("does not work") == 1  # once

    response = client.post(
        "/accounts/password_change/",
        {
            "old_password": new,
            "new_password1": "third-pass-phrase-3",
            "new_password2": "third-pass-phrase-3",
        },  # fmt: skip
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password("third-pass-phrase-3")
