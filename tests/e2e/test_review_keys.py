"""Reviewing by keyboard (Chromium): Enter accepts the label the answers agree on, a class's
key changes it, the arrows move between cards; settled cards leave the queue."""

import os
from pathlib import Path

import pytest

from core.models import Annotation, Item, Role
from core.services.queue import annotation_submit, item_lease_next
from tests.e2e.test_image_viewer import card_item
from tests.e2e.test_labeling_keyboard import CHROMIUM, browser_page, login  # noqa: F401
from tests.factories import MembershipFactory, UserFactory, project_with_members

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = [pytest.mark.django_db(transaction=True)]


def test_accept_change_and_next_by_keys(browser_page, live_server):  # noqa: F811
    page = browser_page
    project, _, (annotator,) = project_with_members(classes=("cat", "dog"))
    cat, dog = project.classes.order_by("order")
    items = [card_item(project, 200, 150) for _ in range(3)]
    for _ in items:
        item = item_lease_next(project=project, user=annotator).lease.item
        annotation_submit(item=item, user=annotator, label_class=cat)
    reviewer = UserFactory()
    MembershipFactory(user=reviewer, project=project, role=Role.REVIEWER)
    login(page, live_server, reviewer)
    page.goto(f"{live_server.url}/projects/{project.pk}/review/?kind=unreviewed")
    first, second, third = (f"#review-{i.pk}" for i in sorted(items, key=lambda i: i.pk))
    page.wait_for_selector(f"{first}.current")

    page.keyboard.press("Enter")  # accept cat on the first
    page.wait_for_selector(f"{first}[data-state='accepted']")
    page.wait_for_selector(f"{second}.current")
    page.keyboard.press("ArrowRight")  # skip the second for now
    page.wait_for_selector(f"{third}.current")
    page.keyboard.press("2")  # the third is a dog
    page.wait_for_selector(f"{third}[data-state='changed']")
    if os.environ.get("SCREENSHOT_DIR"):
        page.screenshot(path=str(Path(os.environ["SCREENSHOT_DIR"]) / "review-keys.png"))

    states = dict(Item.objects.filter(project=project).values_list("pk", "review_state"))
    ordered = sorted(states)
    assert [states[pk] for pk in ordered] == ["accepted", "unreviewed", "changed"]
    assert Annotation.objects.get(item_id=ordered[2], is_current=True).label_class == dog
