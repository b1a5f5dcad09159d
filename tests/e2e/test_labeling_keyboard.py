"""The labeling page in a real browser (Playwright + the system Chromium), keyboard only.

Skipped with the reason when Chromium or Playwright is missing (`make test` installs
Debian's chromium when it can). Set SCREENSHOT_DIR to keep a screenshot of the page.
"""

import os
from pathlib import Path

import pytest
from django.core.files.base import ContentFile

from core.models import Annotation, Project
from tests.factories import (
    ItemFactory,
    ModelVersionFactory,
    PredictionFactory,
    project_with_members,
)
from tests.images import rgb_png

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}"),
    pytest.mark.django_db(transaction=True),
]
# Playwright's sync API runs an event loop in this thread; the ORM calls below are plain
# synchronous test set-up and assertions, not code running inside that loop.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def browser_page(live_server):
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        yield page
        browser.close()


def login(page, live_server, user) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", "pw")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")


def current_item(page) -> str:
    return page.get_attribute("#card", "data-item")


def wait_for_new_card(page, previous: str) -> str:
    page.wait_for_function(
        "prev => { const c = document.getElementById('card'); "
        "return c && c.dataset.item !== prev && !c.classList.contains('busy'); }",
        arg=previous,
    )
    return current_item(page)


def test_label_with_the_keyboard_only(browser_page, live_server):
    page = browser_page
    project, _, (annotator,) = project_with_members(classes=("cat", "dog"))
    items = [ItemFactory(project=project, random_key=k) for k in (0.1, 0.2, 0.3)]
    for item in items:
        item.image.save(f"{item.content_hash}.png", ContentFile(rgb_png(item.pk, size=32)))
    cat, dog = project.classes.get(name="cat"), project.classes.get(name="dog")
    version = ModelVersionFactory(project=project, preselect_threshold=0.9)
    PredictionFactory(
        item=items[0],
        model_version=version,
        predicted_class=dog,
        confidence=0.91,
        acquisition_score=0.9,
    )
    Project.objects.filter(pk=project.pk).update(current_model_version=version)

    login(page, live_server, annotator)
    page.goto(f"{live_server.url}/projects/{project.pk}/label/")
    first = current_item(page)
    assert first == str(items[0].pk)
    assert page.get_attribute(f'button.cls[value="{dog.pk}"]', "aria-pressed") == "true"
    assert page.evaluate("document.getElementById('item-image').naturalWidth") == 32
    if os.environ.get("SCREENSHOT_DIR"):
        page.screenshot(path=str(Path(os.environ["SCREENSHOT_DIR"]) / "label-page.png"))

    page.keyboard.press("Enter")  # confirm the suggestion
    second = wait_for_new_card(page, first)
    page.keyboard.press("1")  # cat
    third = wait_for_new_card(page, second)
    page.keyboard.press("Backspace")  # back to the second image
    back = wait_for_new_card(page, third)
    assert back == second and "changing your earlier answer" in page.inner_text("#card")
    assert page.get_attribute(f'button.cls[value="{cat.pk}"]', "aria-pressed") == "true"
    page.keyboard.press("2")  # change it to dog
    page.wait_for_function("() => !document.getElementById('card').classList.contains('busy')")

    first_answer = Annotation.objects.get(item_id=first)
    assert first_answer.label_class == dog and first_answer.suggestion_accepted
    assert first_answer.duration_ms is not None and first_answer.duration_ms > 0
    history = list(Annotation.objects.filter(item_id=second).order_by("id"))
    assert [a.label_class for a in history] == [cat, dog]
    assert [a.is_current for a in history] == [False, True]


def _project_with_images(count: int):
    project, _, (annotator,) = project_with_members(classes=("cat", "dog"))
    items = [ItemFactory(project=project, random_key=k / 10) for k in range(1, count + 1)]
    for item in items:
        item.image.save(f"{item.content_hash}.png", ContentFile(rgb_png(item.pk, size=32)))
    return project, annotator, items


def test_enter_with_nothing_selected_stores_nothing_and_says_so(browser_page, live_server):
    page = browser_page
    project, annotator, items = _project_with_images(2)
    dog = project.classes.get(name="dog")
    version = ModelVersionFactory(project=project, preselect_threshold=0.95)
    PredictionFactory(  # a suggestion below its version's threshold: shown ranked, not selected
        item=items[0], model_version=version, predicted_class=dog, confidence=0.55
    )
    Project.objects.filter(pk=project.pk).update(current_model_version=version)
    login(page, live_server, annotator)
    page.goto(f"{live_server.url}/projects/{project.pk}/label/")
    first = current_item(page)
    assert page.locator("button.cls.selected").count() == 0

    page.keyboard.press("Enter")

    page.wait_for_function("() => document.getElementById('key-hint').textContent.length > 0")
    assert "Nothing is selected" in page.inner_text("#key-hint")
    assert current_item(page) == first and not Annotation.objects.exists()
    page.keyboard.press("2")
    wait_for_new_card(page, first)
    assert Annotation.objects.get(item_id=first).label_class == dog


def test_keys_typed_while_the_next_card_loads_are_kept(browser_page, live_server, monkeypatch):
    """An annotator who types ahead while the next card is on its way loses no key: each is
    applied to the card it was meant for, in order."""
    import time

    from core import views

    page = browser_page
    project, annotator, items = _project_with_images(3)
    cat, dog = project.classes.get(name="cat"), project.classes.get(name="dog")
    real_next_card = views._next_card

    def slow_next_card(request, project):
        time.sleep(0.6)  # the next card takes a while to come
        return real_next_card(request, project)

    monkeypatch.setattr(views, "_next_card", slow_next_card)
    login(page, live_server, annotator)
    page.goto(f"{live_server.url}/projects/{project.pk}/label/")
    first = current_item(page)

    page.keyboard.press("1")  # cat for the first image...
    page.wait_for_function("() => document.getElementById('card').classList.contains('busy')")
    page.keyboard.press("2")  # ...and dog, typed ahead, for the second
    # The second card is answered by the kept key as soon as it is shown: wait for the third.
    wait_for_new_card(page, str(items[1].pk))
    page.wait_for_function(
        "third => { const c = document.getElementById('card'); "
        "return c.dataset.item === third && !c.classList.contains('busy'); }",
        arg=str(items[2].pk),
    )

    assert first == str(items[0].pk)
    answers = dict(Annotation.objects.values_list("item_id", "label_class_id"))
    assert answers == {items[0].pk: cat.pk, items[1].pk: dog.pk}
