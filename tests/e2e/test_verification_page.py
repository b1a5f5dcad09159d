"""A verification page in a real browser: keys mark tiles, Enter accepts, Backspace reopens.

Skipped with the reason when Chromium or Playwright is missing. Set SCREENSHOT_DIR to keep a
screenshot of the page (1280 px wide).
"""

import os
from pathlib import Path

import pytest
from django.core.files.base import ContentFile

from core.models import (
    Annotation,
    AnnotationSource,
    ModelVersion,
    Project,
    SuggestionRejection,
)
from tests.e2e.test_labeling_keyboard import CHROMIUM, browser_page, login  # noqa: F401
from tests.factories import (
    ItemFactory,
    ModelVersionFactory,
    PredictionFactory,
    project_with_members,
)
from tests.images import rgb_png

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}"),
    pytest.mark.django_db(transaction=True),
]
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def wide_page(browser_page):  # noqa: F811
    browser_page.set_viewport_size({"width": 1280, "height": 900})
    return browser_page


def confident_project(n: int):
    project, _, (annotator,) = project_with_members(classes=("cat", "dog"), audit_share=0)
    cat, dog = project.classes.get(name="cat"), project.classes.get(name="dog")
    version = ModelVersionFactory(
        project=project,
        kind=ModelVersion.Kind.MODEL,
        class_ids=[cat.pk, dog.pk],
        metrics={"reliability": {"confidence": [0.0, 1.0], "precision": [0.0, 1.0]}},
    )
    items = [ItemFactory(project=project) for _ in range(n)]
    for rank, item in enumerate(items):
        item.image.save(f"{item.content_hash}.png", ContentFile(rgb_png(item.pk, size=32)))
        item.thumbnail.save(f"{item.content_hash}-t.png", ContentFile(rgb_png(item.pk, size=32)))
        PredictionFactory(
            item=item, model_version=version, predicted_class=cat, confidence=0.99 - rank / 1000,
            probabilities=[0.99, 0.01], acquisition_score=0,
        )  # fmt: skip
    Project.objects.filter(pk=project.pk).update(current_model_version=version)
    return project, annotator, items, cat


def wait_idle(page):
    page.wait_for_function(
        "() => { const c = document.getElementById('card'); "
        "return c && !c.classList.contains('busy'); }"
    )


def test_verify_a_page_with_the_keyboard_and_reopen_it(wide_page, live_server):
    page = wide_page
    project, annotator, items, cat = confident_project(12)
    login(page, live_server, annotator)
    page.goto(f"{live_server.url}/projects/{project.pk}/label/?mode=pages")
    assert "verify-page" in page.get_attribute("#card", "class")
    assert page.inner_text("#page-class") == "cat"
    assert page.locator(".tile").count() == 12
    tile = {key: page.get_attribute(f'.tile[data-key="{key}"]', "data-item") for key in "123"}

    page.keyboard.press("2")  # not a cat
    page.keyboard.press("3")  # not a cat...
    page.keyboard.press("3")  # ...on second thought it is
    assert page.is_checked('.tile[data-key="2"] input')
    assert not page.is_checked('.tile[data-key="3"] input')
    if os.environ.get("SCREENSHOT_DIR"):
        page.screenshot(path=str(Path(os.environ["SCREENSHOT_DIR"]) / "verification-page.png"))
    page.keyboard.press("Enter")
    page.wait_for_function("() => !document.getElementById('card').dataset.page")
    wait_idle(page)
    # The marked tile is the only image left: it comes back as a card, 'cat' not selected.
    assert page.get_attribute("#card", "data-item") == tile["2"]
    assert page.locator("button.cls.selected").count() == 0

    verified = Annotation.objects.filter(source=AnnotationSource.VERIFIED, is_current=True)
    assert verified.count() == 11 and {a.label_class for a in verified} == {cat}
    assert SuggestionRejection.objects.filter(item_id=tile["2"], label_class=cat).exists()
    assert all(a.duration_ms is not None for a in verified)

    page.keyboard.press("Backspace")  # reopen the page
    page.wait_for_function("() => document.getElementById('card').dataset.page")
    wait_idle(page)
    assert "Changing a page you answered" in page.inner_text("#card")
    assert page.is_checked('.tile[data-key="2"] input')  # the answer given
    page.click('.tile[data-key="1"]')  # the mouse marks tile 1 as not a cat after all
    page.keyboard.press("Enter")
    page.wait_for_function("() => !document.getElementById('card').dataset.page")
    wait_idle(page)
    assert not Annotation.objects.filter(item_id=tile["1"], is_current=True).exists()
    assert verified.all().count() == 10  # .all(): a fresh query, not the cached rows
    assert SuggestionRejection.objects.filter(item_id=tile["1"]).exists()
