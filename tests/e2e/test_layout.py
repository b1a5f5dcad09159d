"""Pages fit the window: no horizontal scrolling at a laptop's 1280 px or a phone's 390 px,
with a project that has real content (a trained model, jobs, annotators, long names)."""

import os
from pathlib import Path

import pytest

from core.models import Job
from tests.core.loop_helpers import label_items, loop_project, run_jobs
from tests.e2e.test_labeling_keyboard import CHROMIUM, browser_page, login  # noqa: F401

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}"),
    pytest.mark.django_db(transaction=True),
]
WIDTHS = (1280, 390)


@pytest.fixture
def busy_project():
    project, admin, annotator, truth = loop_project(
        images_per_class=10, classes=("a rather long class name for a red image", "blue")
    )
    run_jobs(project, Job.Kind.EMBED)
    label_items(project, annotator, truth, 12)
    run_jobs(project)
    Job.objects.create(
        project=project,
        kind=Job.Kind.IMPORT,
        status=Job.Status.FAILED,
        message="Checked 1,204 of 1,204 files; 3 rejected: "
        "photos/2026/holiday/IMG_20260801_123456789.jpg",
    )
    return project, admin


@pytest.mark.parametrize("page_path", ["dashboard/", ""])
def test_pages_fit_1280_and_390_px(busy_project, browser_page, live_server, page_path):  # noqa: F811
    project, admin = busy_project
    login(browser_page, live_server, admin)
    for width in WIDTHS:
        browser_page.set_viewport_size({"width": width, "height": 900})
        browser_page.goto(f"{live_server.url}/projects/{project.pk}/{page_path}")
        scroll = browser_page.evaluate("document.documentElement.scrollWidth")
        if os.environ.get("SCREENSHOT_DIR"):
            name = f"{page_path.strip('/') or 'project'}-{width}.png"
            browser_page.screenshot(
                path=str(Path(os.environ["SCREENSHOT_DIR"]) / name), full_page=True
            )
        assert scroll <= width, f"/{page_path} is {scroll} px wide at {width} px"


def test_dark_mode_follows_the_system(busy_project, browser_page, live_server):  # noqa: F811
    project, admin = busy_project
    login(browser_page, live_server, admin)
    colours = {}
    for scheme in ("light", "dark"):
        browser_page.emulate_media(color_scheme=scheme)
        browser_page.goto(f"{live_server.url}/projects/{project.pk}/dashboard/")
        colours[scheme] = browser_page.evaluate(
            "[getComputedStyle(document.body).backgroundColor,"
            " getComputedStyle(document.querySelector('.card')).backgroundColor,"
            " getComputedStyle(document.body).color]"
        )
    assert colours["light"] == ["rgb(246, 247, 249)", "rgb(255, 255, 255)", "rgb(29, 35, 48)"]
    assert colours["dark"] == ["rgb(11, 17, 32)", "rgb(19, 27, 46)", "rgb(229, 231, 235)"]
