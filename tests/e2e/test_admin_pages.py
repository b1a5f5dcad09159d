"""The admin's dashboard and review queue in a real browser (Playwright + system Chromium).

Set SCREENSHOT_DIR to keep screenshots of both pages (the issue's "show it").
"""

import os
from pathlib import Path

import pytest
from django.core.files.base import ContentFile

from core.models import Annotation, ModelVersion, Project
from core.services.queue import annotation_submit, item_lease_next
from models_ml.confidence import MIN_CALIBRATION_AUDITS
from tests.e2e.test_labeling_keyboard import CHROMIUM, browser_page, login  # noqa: F401
from tests.factories import ItemFactory, project_with_members
from tests.images import rgb_png

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}"),
    pytest.mark.django_db(transaction=True),
]


def busy_project():
    """12 images answered by two annotators (they disagree on three), two model versions."""
    project, admin, (ann1, ann2) = project_with_members(
        classes=("cat", "dog", "bird"), annotators=2, annotators_per_item=2
    )
    cat, dog, bird = project.classes.order_by("order")
    for k in range(12):
        item = ItemFactory(project=project, random_key=k, original_name=f"photo{k}.png")
        item.image.save(f"{item.content_hash}.png", ContentFile(rgb_png(k, size=32)))
        item.thumbnail.save(f"{item.content_hash}-t.png", ContentFile(rgb_png(k, size=32)))
    answers = [cat, cat, dog, bird, cat, dog, dog, bird, cat, cat, dog, bird]
    for user, flip in ((ann1, set()), (ann2, {1, 5, 9})):
        for k in range(12):
            item = item_lease_next(project=project, user=user).lease.item
            label = bird if k in flip else answers[k]
            annotation_submit(item=item, user=user, label_class=label, duration_ms=1500 + 100 * k)
    for number, (labels, accuracy) in enumerate([(8, 0.55), (16, 0.7), (24, 0.78)], start=1):
        ModelVersion.objects.create(
            project=project, number=number, labels_count=labels, estimated_accuracy=accuracy
        )
    return project, admin


def shot(page, name: str) -> None:
    folder = os.environ.get("SCREENSHOT_DIR")
    if folder:
        page.screenshot(path=str(Path(folder) / name), full_page=True)


def test_dashboard_and_review_queue(browser_page, live_server):  # noqa: F811
    page = browser_page
    project, admin = busy_project()
    login(page, live_server, admin)

    page.goto(f"{live_server.url}/projects/{project.pk}/dashboard/")
    page.wait_for_selector("svg.chart")
    assert page.locator("svg.chart").count() == 2
    assert page.locator("#annotators tbody tr").count() == 2
    assert "24 answers" in page.inner_text("#dashboard")
    effort = page.inner_text("#effort")
    assert "12 images by people (24 cards, 0 verified on 0 pages)" in effort
    assert "2.05 s per card" in effort  # the median of the durations sent (1.5 s to 2.6 s)
    audit = page.inner_text("#audit")
    assert "no pseudo-label checked yet" in audit and "the 0 answered so far" in audit
    assert f"(no pseudo-labels before {MIN_CALIBRATION_AUDITS})" in audit
    shot(page, "dashboard.png")
    # A websocket event (live.js turns each into `project-updated`) re-fetches the body.
    ModelVersion.objects.create(project=project, number=4, labels_count=30, estimated_accuracy=0.81)
    page.evaluate("document.body.dispatchEvent(new CustomEvent('project-updated'))")
    page.wait_for_function(
        "() => document.querySelector('#dashboard').innerText.includes('0.81')", timeout=10_000
    )

    page.goto(f"{live_server.url}/projects/{project.pk}/review/?kind=disagreement")
    cards = page.locator("article.review")
    assert cards.count() == 3
    shot(page, "review.png")
    first = cards.first
    item_id = int(first.get_attribute("id").removeprefix("review-"))
    first.get_by_role("button", name="dog").click()
    page.wait_for_selector(f"#review-{item_id}.settled")
    current = Annotation.objects.get(item_id=item_id, is_current=True)
    assert current.label_class.name == "dog" and current.annotator == admin
    assert Project.objects.get(pk=project.pk).labels_submitted == 25
