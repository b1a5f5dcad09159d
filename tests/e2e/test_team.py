"""A team in the browser (Chromium): an owner invites by link, a stranger signs up through
it and lands with the invited role; an annotator sees only what an annotator can use, and
cannot create projects where the server says staff only."""

import re

import pytest
from django.contrib.auth import get_user_model

from core.models import Membership, Role
from tests.e2e.test_labeling_keyboard import CHROMIUM, browser_page, login  # noqa: F401
from tests.factories import ItemFactory, MembershipFactory, ProjectFactory, UserFactory

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = [pytest.mark.django_db(transaction=True)]


def test_an_invited_stranger_joins_with_the_invited_role(browser_page, live_server):  # noqa: F811
    page = browser_page
    project = ProjectFactory(name="Birds")
    owner = UserFactory()
    MembershipFactory(user=owner, project=project, role=Role.OWNER)
    login(page, live_server, owner)
    page.goto(f"{live_server.url}/projects/{project.pk}/")
    page.select_option("#invite-form select[name=role]", "reviewer")
    page.click("#invite-form button")
    link = re.search(r"https?://\S+/invite/[\w-]+/", page.inner_text("#messages")).group(0)
    page.click("text=Log out")

    page.goto(link)
    assert "invited as reviewer" in page.inner_text("#invitation")
    page.fill("#id_username", "robin")
    page.fill("#id_email", "robin@example.org")
    page.fill("#id_password1", "nest-building-2026")
    page.fill("#id_password2", "nest-building-2026")
    page.click("#join")
    page.wait_for_url(f"{live_server.url}/projects/{project.pk}/")
    robin = get_user_model().objects.get(username="robin")
    assert Membership.objects.get(user=robin, project=project).role == Role.REVIEWER
    assert page.locator("a", has_text="Review").count() == 1  # a reviewer's page
    assert page.locator("text=Import images").count() == 0


def test_an_annotator_sees_no_admin_controls_and_cannot_create_projects(
    browser_page,  # noqa: F811
    live_server,
    settings,
):
    settings.ANNOTATOR_PROJECT_CREATORS = "staff"
    page = browser_page
    project = ProjectFactory()
    ItemFactory(project=project)
    annotator = UserFactory()
    MembershipFactory(user=annotator, project=project, role=Role.ANNOTATOR)
    login(page, live_server, annotator)
    assert page.locator("text=New project").count() == 0
    assert page.goto(f"{live_server.url}/projects/new/").status == 403

    page.goto(f"{live_server.url}/projects/{project.pk}/")
    body = page.inner_text("main")
    for control in ("Dashboard", "Review", "Browse", "Import images", "Train now",
                    "Export labels", "Settings", "Invite by link", "Create link"):  # fmt: skip
        assert control not in body, control
    assert (
        page.locator("#jobs").count() == 1
        and page.locator("a", has_text="Start labeling").count() == 1
    )
