"""Viewing the image while labeling (Chromium): zoom by keys and wheel, pan by dragging,
1:1 and fit, smooth scaling for photos and square pixels only from 2:1 up; the viewer's
keys never answer, and the class keys still do."""

import io
import os
from pathlib import Path

import numpy as np
import pytest
from django.core.files.base import ContentFile
from PIL import Image, ImageDraw

from core.models import Annotation
from tests.e2e.test_labeling_keyboard import CHROMIUM, browser_page, login  # noqa: F401
from tests.factories import ItemFactory, project_with_members

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = [pytest.mark.django_db(transaction=True)]


def photo(width: int, height: int) -> bytes:
    """A photo-like JPEG: smooth gradients and a few shapes (fine detail to zoom into)."""
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack(
        [120 + 100 * x / width, 90 + 120 * y / height, 160 + 60 * np.sin(x / 37.0 + y / 53.0)],
        axis=-1,
    ).astype(np.uint8)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    for i in range(6):
        r = max(4, min(width, height) // (6 + 2 * i))
        cx, cy = (width * (i + 1)) // 7, (height * (1 + (i % 3))) // 4
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=(30, 30, 40), width=max(1, r // 8))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def card_item(project, width: int, height: int):
    item = ItemFactory(project=project, width=width, height=height)
    data = photo(width, height)
    item.image.save(f"{item.pk}.jpg", ContentFile(data), save=False)
    thumb = Image.open(io.BytesIO(data))
    thumb.thumbnail((256, 256))
    buffer = io.BytesIO()
    thumb.save(buffer, "JPEG")
    item.thumbnail.save(f"{item.pk}-t.jpg", ContentFile(buffer.getvalue()), save=True)
    return item


def viewer(page) -> dict:
    return page.eval_on_selector(
        "#viewer",
        "v => ({zoom: +v.dataset.zoom, pixel: +v.dataset.pixelScale, pan: v.dataset.pan,"
        " pixelated: v.querySelector('img').classList.contains('pixelated')})",
    )


def test_zoom_pan_one_to_one_and_fit(browser_page, live_server):  # noqa: F811
    page = browser_page
    page.set_viewport_size({"width": 1280, "height": 900})
    project, _, (annotator,) = project_with_members(classes=("cat", "dog"))
    item = card_item(project, 1600, 1200)
    login(page, live_server, annotator)
    page.goto(f"{live_server.url}/projects/{project.pk}/label/")
    page.wait_for_function("() => document.getElementById('viewer').dataset.zoom")

    start = viewer(page)
    assert start["zoom"] == 1 and start["pixel"] < 1 and not start["pixelated"]  # a photo: smooth

    page.keyboard.press("+")
    page.keyboard.press("+")
    assert viewer(page)["zoom"] == pytest.approx(1.5625, abs=0.01)
    box = page.locator("#viewer").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.25)
    page.mouse.wheel(0, -100)
    page.wait_for_function("() => +document.getElementById('viewer').dataset.zoom > 1.9")

    before = viewer(page)["pan"]
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5, steps=5)
    page.mouse.up()
    assert viewer(page)["pan"] != before  # dragged
    if os.environ.get("SCREENSHOT_DIR"):
        page.screenshot(path=str(Path(os.environ["SCREENSHOT_DIR"]) / "label-zoomed.png"))

    page.keyboard.press("*")
    assert viewer(page)["pixel"] == pytest.approx(1.0, abs=0.01)  # one screen pixel per pixel
    assert not viewer(page)["pixelated"]
    for _ in range(4):  # 1.25⁴ ≈ 2.4 screen pixels per image pixel: squares now
        page.keyboard.press("+")
    assert viewer(page)["pixel"] > 2 and viewer(page)["pixelated"]
    page.keyboard.press("/")
    assert viewer(page)["zoom"] == 1 and viewer(page)["pan"] == "0,0"
    assert page.get_attribute("a[target=_blank]", "href").endswith(f"/items/{item.pk}/image/")

    # None of that answered; the class key does.
    assert not Annotation.objects.exists()
    page.keyboard.press("2")
    page.wait_for_function("() => !document.getElementById('viewer')")
    assert Annotation.objects.get().label_class.name == "dog"


def test_a_small_image_is_drawn_with_square_pixels(browser_page, live_server):  # noqa: F811
    page = browser_page
    project, _, (annotator,) = project_with_members(classes=("cat", "dog"))
    card_item(project, 32, 32)
    login(page, live_server, annotator)
    page.goto(f"{live_server.url}/projects/{project.pk}/label/")
    page.wait_for_function("() => document.getElementById('viewer').dataset.zoom")
    shown = viewer(page)
    assert shown["pixel"] > 4 and shown["pixelated"]
