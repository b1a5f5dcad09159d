"""The image browser: filters, keyset paging, "more like this", constant query count."""

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from core.models import ModelVersion, Prediction, Project, Skip
from core.selectors.browse import item_browse, similar_item_ids
from core.selectors.common import embedding_store
from core.services.queue import annotation_submit, item_lease_next
from tests.factories import ItemFactory, UserFactory, project_with_members

pytestmark = pytest.mark.django_db


def build(n_items: int = 10):
    """Items 0-3 labeled (0, 1 cat by ann1; 2, 3 dog by ann2), item 4 skipped, the rest open;
    a model predicting dog for even items (confidence 0.9) and cat for odd ones (0.55)."""
    project, admin, (ann1, ann2) = project_with_members(classes=("cat", "dog"), annotators=2)
    cat, dog = project.classes.order_by("order")
    items = [ItemFactory(project=project, random_key=i) for i in range(n_items)]
    for user, label_class in ((ann1, cat), (ann1, cat), (ann2, dog), (ann2, dog)):
        item = item_lease_next(project=project, user=user).lease.item
        annotation_submit(item=item, user=user, label_class=label_class)
    Skip.objects.create(item=items[4], annotator=ann1)
    version = ModelVersion.objects.create(project=project, number=1, class_ids=[cat.pk, dog.pk])
    Prediction.objects.bulk_create(
        Prediction(
            item=item, model_version=version, probabilities=[0.5, 0.5], acquisition_score=0,
            predicted_class=dog if i % 2 == 0 else cat, confidence=0.9 if i % 2 == 0 else 0.55,
        )
        for i, item in enumerate(items)
    )  # fmt: skip
    Project.objects.filter(pk=project.pk).update(current_model_version=version)
    project.refresh_from_db()
    return project, admin, (ann1, ann2), items, (cat, dog)


def ids(entries):
    return [e["item"].pk for e in entries]


def test_filters():
    project, _, (ann1, ann2), items, (cat, dog) = build()
    pk = [i.pk for i in items]
    browse = item_browse
    assert ids(browse(project=project, status="labeled")[0]) == pk[:4]
    assert ids(browse(project=project, status="skipped")[0]) == [pk[4]]
    # unlabeled means no answer yet, as in the API: the skipped item has none either
    assert ids(browse(project=project, status="unlabeled")[0]) == pk[4:]
    assert ids(browse(project=project, label_class_id=dog.pk)[0]) == pk[2:4]
    assert ids(browse(project=project, annotator_id=ann1.pk)[0]) == pk[:2]
    assert ids(browse(project=project, predicted_class_id=cat.pk)[0]) == pk[1::2]
    assert ids(browse(project=project, min_confidence=0.8)[0]) == pk[0::2]
    assert ids(browse(project=project, max_confidence=0.6, status="unlabeled")[0]) == [
        pk[5], pk[7], pk[9],
    ]  # fmt: skip
    entry = browse(project=project, status="labeled")[0][0]
    assert entry["labels"] == [(ann1.username, "cat")] and entry["prediction"] == ("dog", 0.9)


def test_keyset_pages_cover_everything_once():
    project, *_, items, _ = build(n_items=25)
    seen, after = [], 0
    while True:
        entries, after = item_browse(project=project, after=after, limit=10)
        seen += ids(entries)
        if after is None:
            break
    assert seen == [i.pk for i in items]


def test_more_like_this_orders_by_embedding_similarity():
    project, _, _, items, _ = build(n_items=6)
    Project.objects.filter(pk=project.pk).update(embedding_key="test-3d", embedding_dim=3)
    project.refresh_from_db()
    vectors = np.array(
        [[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0.7, 0.3, 0], [0, 0, 1], [0.5, 0.5, 0]],
        dtype=np.float16,
    )
    embedding_store(project=project).append(np.array([i.pk for i in items]), vectors)
    entries, next_after = item_browse(project=project, similar_to=items[0].pk, limit=3)
    assert ids(entries) == [items[1].pk, items[3].pk, items[5].pk] and next_after is None
    assert similar_item_ids(project=project, item_id=999_999) is None


def test_page_query_count_is_independent_of_size(client):
    counts = []
    for n in (6, 70):
        project, admin, *_ = build(n_items=n)
        client.force_login(admin)
        url = reverse("core:item_browser", args=[project.pk])
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url, {"status": "all", "min_confidence": "0.1"})
        assert response.status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1]
    assert b"more like this" in response.content and b"Next page" in response.content


def test_browser_is_for_admins(client):
    project, _, (ann1, _), *_ = build(n_items=6)
    url = reverse("core:item_browser", args=[project.pk])
    client.force_login(ann1)
    assert client.get(url).status_code == 403
    client.force_login(UserFactory())
    assert client.get(url).status_code == 404


def test_more_like_this_on_a_damaged_embeddings_file_degrades_and_queues_a_rebuild(client):
    """A cut-short vectors file answered 500; now the page says so and the worker rebuilds."""
    from core.models import Job
    from core.services.embeddings import encoder_cache
    from tests.core.loop_helpers import loop_project, run_jobs

    encoder_cache.clear()
    project, admin, *_ = loop_project(images_per_class=4)
    run_jobs(project, Job.Kind.EMBED)
    project.refresh_from_db()
    store = embedding_store(project=project)
    vectors = store.path / "vectors.f16"
    vectors.write_bytes(vectors.read_bytes()[:100])  # damaged on disk
    item = project.items.first()
    client.force_login(admin)

    response = client.get(reverse("core:item_browser", args=[project.pk]), {"similar_to": item.pk})

    assert response.status_code == 200 and "being rebuilt" in response.content.decode()
    (rebuild,) = run_jobs(project, Job.Kind.EMBED)
    assert rebuild.metrics["rebuilt_damaged_store"] and rebuild.metrics["embedded"] == 8
    assert "rebuilt" in rebuild.message
    response = client.get(reverse("core:item_browser", args=[project.pk]), {"similar_to": item.pk})
    body = response.content.decode()
    assert "being rebuilt" not in body
    # The page shows what it was asked for: the query image above its neighbours.
    query = (
        f'src="/projects/{project.pk}/items/{item.pk}/thumbnail/" alt="Image #{item.pk}, the query"'
    )
    assert 'id="similar-query"' in body and query in body
    embedding_store(project=project).verify()


def test_a_changed_byte_in_the_embeddings_is_found_by_verify(tmp_path):
    import numpy as np
    import pytest

    from models_ml.store import EmbeddingStore, StoreDamaged

    store = EmbeddingStore(tmp_path, "k", 4)
    store.append([1, 2], np.ones((2, 4)))
    store.append([3], np.zeros((1, 4)))
    store.verify()
    data = bytearray((store.path / "vectors.f16").read_bytes())
    data[3] ^= 0xFF
    (store.path / "vectors.f16").write_bytes(bytes(data))
    with pytest.raises(StoreDamaged, match="rows 0-1"):
        store.verify()
    (store.path / "meta.json").write_text("{not json")
    with pytest.raises(StoreDamaged, match="unreadable"):
        EmbeddingStore(tmp_path, "k", 4)


def test_status_means_the_same_in_the_browser_and_the_api(client):
    from rest_framework.test import APIClient

    from core.querysets import ITEM_STATUSES

    project, admin, *_ = build()
    api = APIClient()
    api.force_authenticate(admin)
    for status in ITEM_STATUSES:
        page, _ = item_browse(project=project, status=status)
        listed = api.get(f"/api/projects/{project.pk}/items/", {"status": status}).json()
        assert ids(page) == [item["id"] for item in listed["results"]], status
