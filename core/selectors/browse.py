"""The image browser: filtered keyset pages, and nearest neighbours in embedding space.

Every function takes the project, already scoped to the user by the caller."""

import numpy as np
from django.db.models import Exists, OuterRef

from core.models import (
    Annotation,
    Item,
    Prediction,
    Project,
)
from core.selectors.common import embedding_store


def similar_item_ids(*, project: Project, item_id: int, limit: int = 60) -> list[int] | None:
    """Items nearest to `item_id` by cosine similarity of the project's embeddings, nearest
    first (the item itself excluded); None when the item has no vector yet."""
    store = embedding_store(project=project)
    if store is None or not store.contains([item_id])[0]:
        return None
    ids = store.ids()
    vectors = store.vectors()  # memory-mapped float16: read in chunks, never copied whole
    query = store.get(np.array([item_id]))[0].astype(np.float32)
    query /= max(float(np.linalg.norm(query)), 1e-12)
    similarity = np.empty(len(ids), dtype=np.float32)
    for start in range(0, len(ids), 16_384):
        chunk = np.asarray(vectors[start : start + 16_384], dtype=np.float32)
        norms = np.maximum(np.linalg.norm(chunk, axis=1), 1e-12)
        similarity[start : start + len(chunk)] = chunk @ query / norms
    similarity[ids == item_id] = -np.inf
    k = min(limit, len(ids) - 1)
    if k <= 0:
        return []
    top = np.argpartition(-similarity, k - 1)[:k]
    top = top[np.argsort(-similarity[top], kind="stable")]
    return ids[top].tolist()


def item_browse(
    *,
    project: Project,
    status: str = "all",
    label_class_id: int | None = None,
    annotator_id: int | None = None,
    predicted_class_id: int | None = None,
    min_confidence: float | None = None,
    max_confidence: float | None = None,
    after: int = 0,
    limit: int = 60,
    similar_to: int | None = None,
) -> tuple[list[dict], int | None]:
    """One page of the image browser: (entries, the `after` of the next page or None).

    Filters are EXISTS subqueries on indexed columns and pages are keyset (item id > after),
    so a page costs the same on page 1 and page 1,000 of a 100,000-image project. With
    `similar_to`, the page is that item's nearest neighbours in embedding space instead.
    """
    current = Annotation.objects.filter(item=OuterRef("pk"), is_current=True)
    items = Item.objects.filter(project=project)
    if status != "all":
        items = items.with_status(status)
    if label_class_id:
        items = items.filter(Exists(current.filter(label_class_id=label_class_id)))
    if annotator_id:
        items = items.filter(Exists(current.filter(annotator_id=annotator_id)))
    version_id = project.current_model_version_id
    if version_id and (
        predicted_class_id or min_confidence is not None or max_confidence is not None
    ):
        predicted = Prediction.objects.filter(
            model_version_id=version_id, item=OuterRef("pk"), predicted_class__isnull=False
        )
        if predicted_class_id:
            predicted = predicted.filter(predicted_class_id=predicted_class_id)
        if min_confidence is not None:
            predicted = predicted.filter(confidence__gte=min_confidence)
        if max_confidence is not None:
            predicted = predicted.filter(confidence__lte=max_confidence)
        items = items.filter(Exists(predicted))
    next_after = None
    if similar_to is not None:
        order = similar_item_ids(project=project, item_id=similar_to, limit=limit) or []
        rank = {item_id: i for i, item_id in enumerate(order)}
        page = sorted(items.filter(pk__in=order), key=lambda item: rank[item.pk])
    else:
        page = list(items.filter(pk__gt=after).order_by("pk")[: limit + 1])
        if len(page) > limit:
            page, next_after = page[:limit], page[limit - 1].pk
    ids = [item.pk for item in page]
    labels: dict[int, list] = {}
    for item_id, class_name, username in (
        Annotation.objects.filter(item_id__in=ids, is_current=True)
        .order_by("id")
        .values_list("item_id", "label_class__name", "annotator__username")
    ):
        labels.setdefault(item_id, []).append((username, class_name))
    predictions = {}
    if version_id:
        predictions = {
            item_id: (name, confidence)
            for item_id, name, confidence in Prediction.objects.filter(
                model_version_id=version_id, item_id__in=ids, predicted_class__isnull=False
            ).values_list("item_id", "predicted_class__name", "confidence")
        }
    entries = [
        {"item": item, "labels": labels.get(item.pk, []), "prediction": predictions.get(item.pk)}
        for item in page
    ]
    return entries, next_after
