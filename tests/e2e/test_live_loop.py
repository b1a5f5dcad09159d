"""The loop as `make run` runs it, in a real browser: daphne with the worker threads inside,
websockets on the in-memory channel layer. Label with the keyboard until the retrain trigger;
the labeling page announces the new model version without replacing the image being labeled.
"""

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from django.db import connection

from core.models import Job
from tests.core.loop_helpers import loop_project

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}"),
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
]
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def asgi_server(settings, tmp_path):
    """Daphne on the test database with the in-process worker, as in `make run`."""
    if connection.vendor != "sqlite":
        pytest.skip("the live-loop browser test runs on the SQLite pass")
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    port = _free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "annotator.settings.test",
        "TEST_DATABASE_URL": f"sqlite:///{connection.settings_dict['NAME']}",
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "ANNOTATOR_EMBEDDINGS_DIR": str(settings.ANNOTATOR_EMBEDDINGS_DIR),
        "ANNOTATOR_TEST_TASK_BACKEND": "database",
        "ANNOTATOR_INPROCESS_WORKER": "1",
        "ANNOTATOR_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }
    log = (tmp_path / "daphne.log").open("w")
    daphne = str(Path(sys.executable).parent / "daphne")
    server = subprocess.Popen(
        [daphne, "-b", "127.0.0.1", "-p", str(port), "annotator.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:  # the server goes away with the test, whatever fails
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                requests.get(f"{url}/accounts/login/", timeout=5)
                break
            except requests.RequestException:  # not listening yet, or slow importing torch
                time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        server.wait(30)


@contextmanager
def signed_in_browser(server: str, user, width: int = 1100):
    """A Chromium page signed in as `user` on `server` (the caller navigates)."""
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.goto(f"{server}/accounts/login/")
        page.fill("#id_username", user.username)
        page.fill("#id_password", "pw")
        page.click("button[type=submit]")
        try:
            yield page
        finally:
            browser.close()


@contextmanager
def live_page(server: str, user, path: str):
    """Chromium signed in as `user` on `server`, on `path`, its websocket connected."""
    with signed_in_browser(server, user) as page:
        page.goto(f"{server}{path}")
        page.wait_for_selector("#live[data-connected='1']", state="attached", timeout=15_000)
        yield page


def test_new_model_version_is_announced_live_while_labeling(asgi_server):
    project, _, annotator, truth = loop_project(images_per_class=12, retrain_every=4)
    deadline = time.monotonic() + 90
    while not Job.objects.filter(project=project, kind="embed", status="succeeded").exists():
        assert time.monotonic() < deadline, "the in-process worker did not embed the images"
        time.sleep(0.3)

    with live_page(asgi_server, annotator, f"/projects/{project.pk}/label/") as page:
        assert page.inner_text("#model-status") == ""

        for _ in range(4):  # the 4th answer triggers the first training run
            item = page.get_attribute("#card", "data-item")
            page.keyboard.press(truth[int(item)].hotkey)
            page.wait_for_function(
                "prev => { const c = document.getElementById('card');"
                " return c && c.dataset.item !== prev && !c.classList.contains('busy'); }",
                arg=item,
            )
        shown = page.get_attribute("#card", "data-item")
        page.wait_for_function(
            "() => document.getElementById('model-status').textContent.includes('model v1')",
            timeout=60_000,
        )
        status = page.inner_text("#model-status")
        # Two labels per class cannot give an honest accuracy estimate; the page says so.
        assert "4 labels" in status and "too few labels to estimate" in status
        # The announcement did not swap the image the annotator is looking at.
        assert page.get_attribute("#card", "data-item") == shown
        if os.environ.get("SCREENSHOT_DIR"):
            page.screenshot(path=str(Path(os.environ["SCREENSHOT_DIR"]) / "live-model-version.png"))


def test_the_project_page_shows_the_encoder_in_use_as_soon_as_it_changes(asgi_server):
    """Open the page of an empty `auto` project, then import: the worker inside daphne
    embeds with the encoder installed from PyPI (the hub is off) and the page's encoder panel
    says so without a reload."""
    from core.services.imports import ImportSource, items_import
    from tests.core.loop_helpers import colour_image
    from tests.factories import project_with_members

    project, admin, _ = project_with_members(encoder_name="auto")
    with live_page(asgi_server, admin, f"/projects/{project.pk}/") as page:
        assert "No images embedded yet" in page.inner_text("#encoder-panel")

        items_import(
            project=project,
            sources=[
                ImportSource(f"{i}.png", lambda i=i: colour_image(i % 2, i)) for i in range(4)
            ],
        )
        page.wait_for_function(
            "() => document.getElementById('encoder-panel').innerText"
            ".includes('tf_efficientnet_lite0.in1k')",
            timeout=90_000,
        )
        panel = page.inner_text("#encoder-panel")
        assert "embedded with tf_efficientnet_lite0.in1k" in panel and "auto" in panel
        assert "vit_small_patch14_dinov2.lvd142m" in panel  # why not the first choice
