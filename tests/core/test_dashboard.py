"""The admin dashboard: its figures, its permissions, and a query count independent of size."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from core.models import Annotation, ModelVersion
from core.selectors.progress import project_dashboard
from core.services.queue import annotation_submit, item_lease_next
from tests.factories import ItemFactory, UserFactory, project_with_members

pytestmark = pytest.mark.django_db


def answer_all(project, user, choose, duration_ms=2000):
    while (result := item_lease_next(project=project, user=user)) is not None:
        item = result.lease.item
        annotation_submit(item=item, user=user, label_class=choose(item), duration_ms=duration_ms)


def build(items: int):
    project, admin, (ann1, ann2) = project_with_members(
        classes=("cat", "dog"), annotators=2, annotators_per_item=2
    )
    cat, dog = project.classes.order_by("order")
    for i in range(items):
        ItemFactory(project=project, random_key=i)
    answer_all(project, ann1, lambda item: cat, duration_ms=2000)
    # ann2 agrees on even items only
    answer_all(project, ann2, lambda item: cat if item.random_key % 2 == 0 else dog, 4000)
    ModelVersion.objects.create(project=project, number=1, labels_count=10, estimated_accuracy=0.6)
    ModelVersion.objects.create(project=project, number=2, labels_count=20, estimated_accuracy=0.8)
    return project, admin, (ann1, ann2), (cat, dog)


def test_dashboard_figures():
    project, _, (ann1, ann2), _ = build(items=10)
    data = project_dashboard(project=project)

    assert data["progress"]["done"] == 10 and data["labels"] == 20
    assert data["class_counts"] == [("cat", 15), ("dog", 5)]
    assert data["learning_curve"] == [(10, 0.6), (20, 0.8)]
    first, second = data["annotators"]
    assert (first["username"], second["username"]) == tuple(sorted([ann1.username, ann2.username]))
    by_name = {a["username"]: a for a in data["annotators"]}
    assert by_name[ann1.username]["labels"] == 10
    assert by_name[ann1.username]["median_seconds"] == 2.0
    assert by_name[ann1.username]["labels_per_hour"] == 1800
    assert by_name[ann2.username]["median_seconds"] == 4.0
    assert by_name[ann1.username]["agreement"] == 0.5  # 5 of 10 items the same answer
    assert by_name[ann1.username]["overlap_answers"] == 10


def test_dashboard_query_count_does_not_grow_with_items(client):
    small, admin_small, *_ = build(items=4)
    large, admin_large, *_ = build(items=40)
    counts = []
    for project, admin in ((small, admin_small), (large, admin_large)):
        client.force_login(admin)
        with CaptureQueriesContext(connection) as queries:
            response = client.get(reverse("core:project_dashboard", args=[project.pk]))
        assert response.status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1]
    assert b"<svg" in response.content and b"Labels per class" in response.content


def test_partial_refresh_and_permissions(client):
    project, admin, (annotator, _), _ = build(items=2)
    url = reverse("core:project_dashboard", args=[project.pk])
    client.force_login(annotator)
    assert client.get(url).status_code == 403
    client.force_login(UserFactory())
    assert client.get(url).status_code == 404
    client.force_login(admin)
    body = client.get(url, {"partial": "1"}, headers={"HX-Request": "true"}).content
    assert body.lstrip().startswith(b'<div id="dashboard"') and b"<html" not in body


def test_class_names_are_escaped_in_the_charts():
    from core.charts import bar_chart, line_chart

    svg = str(bar_chart([("<script>alert(1)</script>", 3)]))
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert "<polyline" in str(line_chart([("a", [(1, 0.2), (2, 0.5)])], x_label="x", y_label="y"))
    assert Annotation.objects.count() == 0


def test_dashboard_shows_the_preselection_rule_its_record_and_the_encoder_comparison(client):
    project, admin, (annotator,) = project_with_members(classes=("cat", "dog"))
    cat, dog = project.classes.order_by("order")
    version = ModelVersion.objects.create(
        project=project,
        number=1,
        labels_count=40,
        estimated_accuracy=0.8,
        preselect_threshold=0.9,
        metrics={
            "preselect": {
                "threshold": 0.9, "target": 0.9, "support": 31, "precision": 0.968,
                "share": 0.5, "predictions": 62,
            }
        },
    )  # fmt: skip
    project.current_model_version = version
    project.encoder_comparison = {
        "labels": 40,
        "at": "2026-11-25T10:00:00",
        "margin": 0.03,
        "rows": [
            {"encoder": "tf_efficientnet_lite0.in1k", "available": True, "knn": 0.7,
             "linear": 0.75, "labels": 40, "chosen": True},
            {"encoder": "pixels", "available": True, "knn": 0.3, "linear": 0.31,
             "labels": 40, "chosen": False},
            {"encoder": "vit_small_patch14_dinov2.lvd142m", "available": False,
             "reason": "hub cannot be reached", "chosen": False},
        ],
    }  # fmt: skip
    project.save()
    items = [ItemFactory(project=project) for _ in range(4)]
    # Three answers on pre-selected cards (two kept), one on a card below the threshold.
    for item, confidence, answer in zip(
        items, [0.95, 0.97, 0.92, 0.6], [dog, dog, cat, cat], strict=True
    ):
        Annotation.objects.create(
            item=item, annotator=annotator, label_class=answer, suggested_class=dog,
            suggestion_confidence=confidence, suggestion_model_version=version,
            suggestion_accepted=answer == dog,
        )  # fmt: skip

    data = project_dashboard(project=project)
    assert (data["preselect"]["shown"], data["preselect"]["kept"]) == (3, 2)

    client.force_login(admin)
    body = client.get(reverse("core:project_dashboard", args=[project.pk])).content.decode()
    assert "confidence ≥ <strong>0.900</strong>" in body and "31 held-out" in body
    assert "kept 2 of 3 pre-selected" in body
    assert "<code>tf_efficientnet_lite0.in1k</code></td>" in body and "0.750" in body
    assert "not available: hub cannot be reached" in body
