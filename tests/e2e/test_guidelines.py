"""The guide beside the card (Chromium): open on a project that has one, ? hides and shows it
(remembered on reload), and the class keys still answer with it open."""

import os
from pathlib import Path

import pytest

from core.models import Annotation
from tests.e2e.test_image_viewer import card_item
from tests.e2e.test_labeling_keyboard import CHROMIUM, browser_page, login  # noqa: F401
from tests.factories import project_with_members

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = [pytest.mark.django_db(transaction=True)]


def test_question_mark_toggles_the_guidelines_beside_the_card(browser_page, live_server):  # noqa: F811
    page = browser_page
    page.set_viewport_size({"width": 1280, "height": 900})
    project, _, (annotator,) = project_with_members(classes=("adult", "juvenile"))
    project.guideline = "Label the **bird in focus**; ignore reflections."
    project.save()
    juvenile = project.classes.get(name="juvenile")
    juvenile.description = "Spotted breast, *no* red cap."
    juvenile.save()
    juvenile.examples.set([card_item(project, 640, 480)])
    card_item(project, 800, 600)
    login(page, live_server, annotator)
    page.goto(f"{live_server.url}/projects/{project.pk}/label/")

    guide = page.locator("#guidelines")
    assert guide.is_visible()  # the project has a guide: shown the first time
    assert "bird in focus" in guide.inner_text() and "Spotted breast" in guide.inner_text()
    card, aside = page.locator("#card").bounding_box(), guide.bounding_box()
    assert aside["x"] >= card["x"] + card["width"]  # beside the card, not over it
    if os.environ.get("SCREENSHOT_DIR"):  # zoomed in, as while checking a detail
        page.keyboard.press("+")
        page.keyboard.press("+")
        page.screenshot(path=str(Path(os.environ["SCREENSHOT_DIR"]) / "label-guidelines.png"))
        page.keyboard.press("/")

    page.keyboard.press("?")
    assert not guide.is_visible()
    page.reload()
    assert not page.locator("#guidelines").is_visible()  # remembered
    page.keyboard.press("?")
    assert page.locator("#guidelines").is_visible()
    assert page.get_attribute("#guide-toggle", "aria-expanded") == "true"

    page.keyboard.press("2")  # still answers
    for _ in range(100):
        if Annotation.objects.exists():
            break
        page.wait_for_timeout(50)
    assert Annotation.objects.get().label_class == juvenile
