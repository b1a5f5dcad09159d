"""The labeling guide: a project guideline and class descriptions in Markdown, sanitised,
with example images, shown beside the card; written by admins only."""

import pytest
from django.test import Client

from core.models import LabelClass
from core.services.classes import ClassChangeError, label_class_update
from core.text import markdown_html
from tests.core.upload_helpers import api
from tests.factories import ItemFactory, project_with_members

pytestmark = pytest.mark.django_db


def test_markdown_keeps_formatting_and_drops_anything_that_runs():
    html = markdown_html(
        "# Birds\n\n**Adults** only <script>alert(1)</script> <img src=x onerror=alert(1)>\n\n"
        "- [guide](https://example.org/g) [bad](javascript:alert(1))\n"
        '<a href="x" onclick="alert(1)">c</a> <iframe src="https://evil"></iframe>'
    )
    assert "<h1>Birds</h1>" in html and "<strong>Adults</strong>" in html
    assert '<a href="https://example.org/g" rel="noopener noreferrer nofollow">guide</a>' in html
    for bad in ("<script", "alert", "onerror", "<img", "javascript:", "onclick", "<iframe"):
        assert bad not in html, bad


def test_class_description_and_examples_are_checked():
    project, _, _ = project_with_members(classes=("cat", "dog"))
    cat = project.classes.get(name="cat")
    mine = [ItemFactory(project=project) for _ in range(7)]
    other, _, _ = project_with_members()
    foreign = ItemFactory(project=other)

    label_class_update(label_class=cat, description="Whiskers.", example_ids=[mine[0].pk])
    cat.refresh_from_db()
    assert cat.description == "Whiskers." and list(cat.examples.all()) == [mine[0]]
    with pytest.raises(ClassChangeError, match=f"No image #{foreign.pk}"):
        label_class_update(label_class=cat, example_ids=[foreign.pk])
    with pytest.raises(ClassChangeError, match="At most 6"):
        label_class_update(label_class=cat, example_ids=[i.pk for i in mine])
    assert list(cat.examples.all()) == [mine[0]]  # unchanged by the refusals


def test_api_sets_and_returns_them_for_admins_only():
    project, admin, (annotator,) = project_with_members(classes=("cat",))
    cat = project.classes.get()
    item = ItemFactory(project=project)
    url = f"/api/projects/{project.pk}/classes/{cat.pk}/"
    body = {"description": "Any **cat**.", "examples": [item.pk]}
    assert api(annotator).patch(url, body, format="json").status_code == 403
    response = api(admin).patch(url, body, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["description"] == "Any **cat**."
    assert api(annotator).get(url).json()["examples"] == [item.pk]
    response = api(admin).patch(url, {"examples": [10**12]}, format="json")
    assert response.status_code == 400


def test_the_label_page_shows_the_guide_and_the_project_page_edits_it():
    project, admin, (annotator,) = project_with_members(classes=("cat", "dog"))
    item = ItemFactory(project=project)
    client = Client()
    client.force_login(admin)
    response = client.post(
        f"/projects/{project.pk}/classes/{project.classes.get(name='cat').pk}/",
        {"action": "save", "name": "cat", "hotkey": "1", "description": "Pointy *ears*.",
         "examples": f"#{item.pk}"},
    )  # fmt: skip
    assert response.status_code == 302
    project.guideline = "Label the **main** animal. <script>x()</script>"
    project.save()

    client.force_login(annotator)
    page = client.get(f"/projects/{project.pk}/label/").content.decode()
    assert 'id="guidelines"' in page and 'data-open-first="1"' in page
    assert "Label the <strong>main</strong> animal." in page and "x()" not in page
    assert "Pointy <em>ears</em>." in page
    assert f'/projects/{project.pk}/items/{item.pk}/thumbnail/" alt="An example of cat' in page
    assert LabelClass.objects.get(name="cat").examples.get() == item
