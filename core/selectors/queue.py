"""The labeling queue's reads: candidate items (raw SQL on the scored index), the suggestion
for an item, an annotator's answers and leases.

Every function takes the project, already scoped to the user by the caller."""

from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import connections
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from core.models import (
    Annotation,
    AnnotationSource,
    Item,
    LabelClass,
    Lease,
    Prediction,
    Project,
    Skip,
    SuggestionRejection,
    SuggestionSource,
)


def _open_to_sql(item_id: str, k: int) -> str:
    """SQL conditions under which the item whose id is `item_id` may be offered to %(user)s:
    not answered or skipped by them, and fewer than k slots occupied (answered, or leased
    and not expired at %(now)s)."""
    lease, skip = Lease._meta.db_table, Skip._meta.db_table
    occupied = f"""
        SELECT 1 FROM {lease} occupied WHERE occupied.item_id = {item_id}
        AND (occupied.completed_at IS NOT NULL OR occupied.expires_at > %(now)s)"""
    if k == 1:
        open_slot = f"NOT EXISTS ({occupied})"
    else:
        open_slot = f"(SELECT COUNT(*) FROM ({occupied}) slots) < %(k)s"
    return f"""
        NOT EXISTS (SELECT 1 FROM {lease} answered WHERE answered.item_id = {item_id}
                    AND answered.annotator_id = %(user)s AND answered.completed_at IS NOT NULL)
        AND NOT EXISTS (SELECT 1 FROM {skip} skipped WHERE skipped.item_id = {item_id}
                        AND skipped.annotator_id = %(user)s)
        AND {open_slot}"""


def queue_candidate_ids(
    *, project: Project, user: AbstractBaseUser, now: datetime | None = None, limit: int = 20
) -> list[int]:
    """Item ids to offer `user`, best first.

    Items scored by the project's current model version come first, highest acquisition
    score first (ties by id); then unscored items in their stored random order. Both
    orders walk an index (`prediction_queue_idx`, `item_queue_idx`) that leaves out items
    already done (`Prediction.item_open`, `Item.is_done`), so the cost grows neither with
    the pool nor with the labels given since the model version was made.

    Hand-written SQL, because this runs on every lease: the database answers it in well
    under a millisecond, while building the same query with the ORM's Exists/OuterRef
    took about 4 ms of Python per call (bench/next_item.py). It is plain SQL that SQLite
    and PostgreSQL read alike; tests/core/test_queue.py covers it on both.
    """
    item, prediction = Item._meta.db_table, Prediction._meta.db_table
    k = project.annotators_per_item
    connection = connections[Item.objects.db]
    params = {
        "user": user.pk,
        "now": connection.ops.adapt_datetimefield_value(now or timezone.now()),
        "k": k,
        "project": project.pk,
        "version": project.current_model_version_id,
        "open": False,  # is_done
        "item_open": True,  # Prediction.item_open
        "limit": limit,
    }
    ids: list[int] = []
    with connection.cursor() as cursor:
        if params["version"]:
            cursor.execute(
                f"""SELECT p.item_id FROM {prediction} p JOIN {item} i ON i.id = p.item_id
                WHERE p.model_version_id = %(version)s AND p.item_open = %(item_open)s
                AND i.is_done = %(open)s
                AND {_open_to_sql("p.item_id", k)}
                ORDER BY p.acquisition_score DESC, p.item_id LIMIT %(limit)s""",
                params,
            )
            ids = [row[0] for row in cursor.fetchall()]
            if len(ids) >= limit:
                return ids
            params["limit"] = limit - len(ids)
        not_scored = (
            f"""AND NOT EXISTS (SELECT 1 FROM {prediction} p
                WHERE p.model_version_id = %(version)s AND p.item_id = i.id)"""
            if params["version"]
            else ""
        )
        cursor.execute(
            f"""SELECT i.id FROM {item} i
            WHERE i.project_id = %(project)s AND i.is_done = %(open)s
            AND {_open_to_sql("i.id", k)} {not_scored}
            ORDER BY i.random_key, i.id LIMIT %(limit)s""",
            params,
        )
        ids += [row[0] for row in cursor.fetchall()]
    return ids


def audit_candidate_ids(
    *,
    project: Project,
    user: AbstractBaseUser,
    start: float,
    now: datetime | None = None,
    limit: int = 5,
    min_confidence: float | None = None,
) -> list[int]:
    """Open items of the current version open to `user`, in stored random order from
    `start` (wrapping around): a uniform random draw among the open images (audit cards),
    or among those the version predicts with at least `min_confidence`."""
    item, prediction = Item._meta.db_table, Prediction._meta.db_table
    connection = connections[Item.objects.db]
    params = {
        "user": user.pk,
        "now": connection.ops.adapt_datetimefield_value(now or timezone.now()),
        "k": project.annotators_per_item,
        "project": project.pk,
        "version": project.current_model_version_id,
        "yes": True,
        "no": False,
        "limit": limit,
        "floor": min_confidence,
    }
    above = "" if min_confidence is None else "AND p.confidence >= %(floor)s"
    ids: list[int] = []
    with connection.cursor() as cursor:
        for condition, bound in (("i.random_key >= %(start)s", start), ("1 = 1", 0.0)):
            cursor.execute(
                f"""SELECT i.id FROM {prediction} p JOIN {item} i ON i.id = p.item_id
                WHERE i.project_id = %(project)s AND p.model_version_id = %(version)s
                AND p.item_open = %(yes)s AND i.is_done = %(no)s AND {condition} {above}
                AND {_open_to_sql("i.id", project.annotators_per_item)}
                ORDER BY i.random_key, i.id LIMIT %(limit)s""",
                {**params, "start": bound},
            )
            ids += [row[0] for row in cursor.fetchall() if row[0] not in ids]
            if len(ids) >= limit:
                break
    return ids[:limit]


def open_confidence_quantile(*, project: Project, share: float) -> float | None:
    """The confidence at or above which the current version predicts the most confident
    `share` of the open images (at least one); None when none is open."""
    open_predictions = Prediction.objects.filter(
        model_version_id=project.current_model_version_id,
        item_open=True,
        item__is_done=False,
        predicted_class__isnull=False,
    )
    count = open_predictions.count()
    if not count:
        return None
    rank = max(int(share * count), 1) - 1
    return (
        open_predictions.order_by("-confidence", "item_id")
        .values_list("confidence", flat=True)[rank : rank + 1]
        .get()
    )


def page_candidates(
    *, project: Project, user: AbstractBaseUser, now: datetime | None = None, limit: int = 200
) -> list[tuple[int, int, float]]:
    """(item id, predicted class id, confidence) of the current trained version's most
    confident open predictions for `user`, most confident first: what verification pages are
    made of. Left out: an item whose predicted class an annotator rejected (the next training
    run predicts its best other class), and a pseudo-labeled one: its label is already right
    often enough (the audit cards check that), so a person's seconds go to the next band."""
    version = project.current_model_version
    if version is None or version.kind != "model":
        return []
    item, prediction = Item._meta.db_table, Prediction._meta.db_table
    rejection = SuggestionRejection._meta.db_table
    connection = connections[Item.objects.db]
    params = {
        "user": user.pk,
        "now": connection.ops.adapt_datetimefield_value(now or timezone.now()),
        "k": project.annotators_per_item,
        "version": version.pk,
        "model": str(SuggestionSource.MODEL),
        "yes": True,
        "no": False,
        "limit": limit,
    }
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT p.item_id, p.predicted_class_id, p.confidence
            FROM {prediction} p JOIN {item} i ON i.id = p.item_id
            WHERE p.model_version_id = %(version)s AND p.item_open = %(yes)s
            AND i.is_done = %(no)s AND p.source = %(model)s AND p.pseudo_labeled = %(no)s
            AND p.predicted_class_id IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM {rejection} r WHERE r.item_id = p.item_id
                            AND r.label_class_id = p.predicted_class_id)
            AND {_open_to_sql("p.item_id", project.annotators_per_item)}
            ORDER BY p.confidence DESC, p.item_id LIMIT %(limit)s""",
            params,
        )
        return [(int(a), int(b), float(c)) for a, b, c in cursor.fetchall()]


def page_tiles(*, page) -> list[dict]:
    """A verification page's tiles in the order shown: each image, the model's confidence
    when the page was made, and whether the annotator marked it (their last answer)."""
    items = Item.objects.in_bulk(page.item_ids)
    rejected = set(page.rejected_ids)
    confidences = list(page.confidences) + [None] * (len(page.item_ids) - len(page.confidences))
    return [
        {"item": items[item_id], "confidence": confidence, "rejected": item_id in rejected}
        for item_id, confidence in zip(page.item_ids, confidences, strict=True)
        if item_id in items
    ]


def _current_predictions(project: Project):
    """The current version's predictions, with what a suggestion shows (its class, its
    version and the ranking of the classes) joined in; the version's recipe and metrics,
    which grow with the project and nothing on a card shows, are left in the database."""
    return (
        Prediction.objects.filter(model_version_id=project.current_model_version_id)
        .select_related("predicted_class", "model_version")
        .defer("model_version__recipe", "model_version__metrics")
        .annotate(
            # Whether an annotator rejected a class for the item (a marked page tile): in
            # the same query, so that the common card costs no look-up of its rejections.
            item_has_rejections=Exists(
                SuggestionRejection.objects.filter(item_id=OuterRef("item_id"))
            )
        )
    )


def suggestion_ranking(
    *, suggestion: Prediction, classes: list[LabelClass], top: int = 3, floor: float = 0.05
) -> list[tuple[LabelClass, float]]:
    """The `top` most likely classes of a suggestion with their probabilities (those of at
    least `floor`), most likely first: what a card shows when it selects nothing."""
    by_id = {c.pk: c for c in classes}
    pairs = zip(suggestion.model_version.class_ids, suggestion.probabilities or [], strict=False)
    rejected = suggestion.rejected_class_ids
    ranked = sorted(
        (
            (by_id[cid], float(p))
            for cid, p in pairs
            if cid in by_id and p >= floor and cid not in rejected
        ),
        key=lambda pair: -pair[1],
    )
    return ranked[:top]


def suggestion_for_item(*, item: Item, project: Project) -> Prediction | None:
    """The current version's class suggestion for the item, if it has one."""
    if not project.current_model_version_id:
        return None
    # A cold-start order scores items but suggests no class.
    return _current_predictions(project).filter(item=item, predicted_class__isnull=False).first()


def item_with_suggestion(*, item_id: int, project: Project) -> tuple[Item, Prediction | None]:
    """The item and its suggestion (as `suggestion_for_item`), in one query when the current
    version scored the item, as it has every item the scored queue hands out."""
    if project.current_model_version_id:
        try:  # one prediction per item and version (a constraint): get() needs no ORDER BY
            found = _current_predictions(project).select_related("item").get(item_id=item_id)
        except Prediction.DoesNotExist:
            pass
        else:
            found.item.project = project
            return found.item, found if found.predicted_class_id else None
    item = Item.objects.get(pk=item_id)
    item.project = project
    return item, None


def shown_prediction(*, item: Item, prediction_id) -> Prediction | None:
    """The suggestion an annotator says they were shown for `item`, if it is one of its own."""
    if not prediction_id:
        return None
    return Prediction.objects.filter(pk=prediction_id, item=item).first()


def current_annotation(*, item: Item, user: AbstractBaseUser) -> Annotation | None:
    return Annotation.objects.filter(item=item, annotator=user, is_current=True).first()


def answered_lease_before(
    *, project: Project, user: AbstractBaseUser, before: Lease | None = None
) -> Lease | None:
    """The user's most recently answered item (before `before`), for going back."""
    leases = Lease.objects.filter(
        item__project=project, annotator=user, completed_at__isnull=False
    ).filter(
        Exists(
            Annotation.objects.filter(
                item=OuterRef("item"), annotator=user, source=AnnotationSource.HUMAN
            )
        )
    )
    if before is not None and before.completed_at is not None:
        leases = leases.filter(
            Q(completed_at__lt=before.completed_at)
            | Q(completed_at=before.completed_at, pk__lt=before.pk)
        )
    return leases.select_related("item").order_by("-completed_at", "-pk").first()
