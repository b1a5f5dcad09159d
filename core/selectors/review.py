"""The review queue: items whose answers disagree, or that the model confidently disputes.

Every function takes the project, already scoped to the user by the caller."""

from django.db.models import Count, Exists, OuterRef, Q

from core.models import (
    Annotation,
    Item,
    ModelVersion,
    Prediction,
    Project,
)

REVIEW_KINDS = ("disagreement", "model", "unreviewed")


def review_queue(
    *, project: Project, kind: str, min_confidence: float = 0.8, after: int = 0, limit: int = 24
) -> list[dict]:
    """Labeled items worth a second look, in item order from `after` (keyset paging):
    - "disagreement": the current answers name two or more classes;
    - "model": the current trained model gives another class than every current answer,
      with at least `min_confidence` (likely label noise, in the spirit of confident learning);
    - "unreviewed": every labeled item no reviewer has looked at yet.
    Items a reviewer has settled leave the lists. Each entry: the item, its current answers
    (annotator, class), the class they agree on (None when they disagree) and the model's
    prediction."""
    items = Item.objects.filter(project=project, pk__gt=after, review_state="unreviewed").labeled()
    version = project.current_model_version
    if version is not None and version.kind != ModelVersion.Kind.MODEL:
        version = None
    if kind == "disagreement":
        items = items.annotate(
            classes=Count(
                "annotations__label_class", filter=Q(annotations__is_current=True), distinct=True
            )
        ).filter(classes__gte=2)
    elif kind == "model":
        if version is None:
            return []
        confident = Prediction.objects.filter(
            model_version=version, item=OuterRef("pk"), confidence__gte=min_confidence
        )
        agrees = Annotation.objects.filter(
            item=OuterRef("item"), is_current=True, label_class=OuterRef("predicted_class")
        )
        items = items.filter(Exists(confident.exclude(Exists(agrees))))
    elif kind != "unreviewed":
        raise ValueError(f"unknown review kind {kind!r}")
    page = list(items.order_by("pk")[:limit])
    ids = [item.pk for item in page]
    answers: dict[int, list] = {}
    for annotation in (
        Annotation.objects.filter(item_id__in=ids, is_current=True)
        .select_related("annotator", "label_class")
        .order_by("id")
    ):
        answers.setdefault(annotation.item_id, []).append(annotation)
    predictions = {}
    if version is not None:
        predictions = {
            p.item_id: p
            for p in Prediction.objects.filter(
                model_version=version, item_id__in=ids
            ).select_related("predicted_class")
        }
    entries = []
    for item in page:
        mine = answers.get(item.pk, [])
        agreed = {a.label_class_id for a in mine}
        entries.append(
            {
                "item": item,
                "answers": mine,
                "agreed": mine[0].label_class if len(agreed) == 1 else None,
                "prediction": predictions.get(item.pk),
            }
        )
    return entries
