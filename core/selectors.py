"""Reads. Every function takes the project (already scoped to the user by the caller)."""

import statistics
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connections
from django.db.models import Count, Exists, F, Min, OuterRef, Q
from django.utils import timezone

from core.models import (
    Annotation,
    AnnotationSource,
    Item,
    Job,
    LabelClass,
    Lease,
    Membership,
    ModelVersion,
    Prediction,
    Project,
    Role,
    Skip,
)
from models_ml.store import EmbeddingStore


def majority_class(class_ids_newest_first: list[int]) -> int:
    """An item's label from its current answers: the most common class; a tie goes to the most
    recent answer (Counter keeps first-seen order). Training and export both use this rule."""
    return Counter(class_ids_newest_first).most_common(1)[0][0]


def membership_role(*, project: Project, user: AbstractBaseUser) -> str | None:
    return (
        Membership.objects.filter(project=project, user=user).values_list("role", flat=True).first()
    )


def user_is_project_admin(*, project: Project, user: AbstractBaseUser) -> bool:
    return membership_role(project=project, user=user) == Role.ADMIN


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


def _current_predictions(project: Project):
    """The current version's predictions, with what a suggestion shows (its class, its
    version and the ranking of the classes) joined in; the version's recipe and metrics,
    which grow with the project and nothing on a card shows, are left in the database."""
    return (
        Prediction.objects.filter(model_version_id=project.current_model_version_id)
        .select_related("predicted_class", "model_version")
        .defer("model_version__recipe", "model_version__metrics")
    )


def suggestion_ranking(
    *, suggestion: Prediction, classes: list[LabelClass], top: int = 3, floor: float = 0.05
) -> list[tuple[LabelClass, float]]:
    """The `top` most likely classes of a suggestion with their probabilities (those of at
    least `floor`), most likely first: what a card shows when it selects nothing."""
    by_id = {c.pk: c for c in classes}
    pairs = zip(suggestion.model_version.class_ids, suggestion.probabilities or [], strict=False)
    ranked = sorted(
        ((by_id[cid], float(p)) for cid, p in pairs if cid in by_id and p >= floor),
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


def project_progress(*, project: Project) -> dict:
    counts = Item.objects.filter(project=project).aggregate(
        total=Count("pk"), done=Count("pk", filter=Q(is_done=True))
    )
    total = counts["total"]
    counts["percent"] = round(100 * counts["done"] / total, 1) if total else 0.0
    return counts


def annotator_progress(
    *, project: Project, user: AbstractBaseUser, now: datetime | None = None
) -> dict:
    """The annotator's answer count and their labels-per-hour pace over the last hour."""
    now = now or timezone.now()
    hour_ago = now - timedelta(hours=1)
    stats = Annotation.objects.filter(
        item__project=project, annotator=user, is_current=True, source=AnnotationSource.HUMAN
    ).aggregate(
        total=Count("pk"),
        last_hour=Count("pk", filter=Q(created_at__gte=hour_ago)),
        first_in_hour=Min("created_at", filter=Q(created_at__gte=hour_ago)),
    )
    per_hour = 0
    if stats["last_hour"]:
        # Pace over the time actually spent, at least a minute, so a fresh session
        # is not shown as "3 labels per hour".
        seconds = max(60.0, (now - stats["first_in_hour"]).total_seconds())
        per_hour = round(stats["last_hour"] * 3600 / seconds)
    return {"total": stats["total"], "per_hour": per_hour}


def training_is_possible(*, project: Project) -> bool:
    """A head can be fitted: the labels so far cover at least two classes."""
    return (
        Annotation.objects.filter(item__project=project, is_current=True)
        .values("label_class")
        .distinct()
        .count()
        >= 2
    )


def recent_jobs(*, project: Project, limit: int = 10) -> list[Job]:
    return list(
        Job.objects.filter(project=project).select_related("model_version").order_by("-id")[:limit]
    )


def model_versions(*, project: Project, limit: int = 20) -> list[ModelVersion]:
    return list(ModelVersion.objects.filter(project=project).order_by("-number")[:limit])


def project_dashboard(*, project: Project, prefill_buckets: int = 20) -> dict:
    """Everything the admin dashboard shows, in a fixed number of queries.

    The current human answers are read once (id order) and summarised here: per-class counts,
    prefill accuracy over time (the share of prefilled suggestions the annotator kept, in
    `prefill_buckets` consecutive slices of the answers), and per annotator the number of
    labels, median seconds per label, labels per hour at that pace, agreement with the others
    on items both answered, and how often they kept the model's suggestion.
    """
    rows = list(
        Annotation.objects.filter(
            item__project=project, is_current=True, source=AnnotationSource.HUMAN
        )
        .order_by("id")
        .values_list(
            "item_id",
            "annotator_id",
            "label_class_id",
            "duration_ms",
            "suggestion_accepted",
            "suggestion_source",
        )
    )
    classes = list(project.classes.order_by("order", "pk").values_list("pk", "name"))
    usernames = dict(
        Membership.objects.filter(project=project).values_list("user_id", "user__username")
    )
    per_class = Counter(class_id for _, _, class_id, *_ in rows)
    shown = [accepted for *_, accepted, _ in rows if accepted is not None]
    size = max(1, -(-len(shown) // prefill_buckets))
    prefill = [
        (
            min(start + size, len(shown)),
            sum(shown[start : start + size]) / len(shown[start : start + size]),
        )
        for start in range(0, len(shown), size)
    ]
    by_item: dict[int, list[tuple[int, int]]] = {}
    for item_id, annotator_id, class_id, *_ in rows:
        by_item.setdefault(item_id, []).append((annotator_id, class_id))
    agree: Counter = Counter()
    compared: Counter = Counter()
    for answers in by_item.values():
        if len(answers) < 2:
            continue
        for annotator_id, class_id in answers:
            for other_id, other_class in answers:
                if other_id != annotator_id:
                    compared[annotator_id] += 1
                    agree[annotator_id] += class_id == other_class
    by_annotator: dict[int, list[tuple]] = {}
    for row in rows:
        by_annotator.setdefault(row[1], []).append(row)
    annotators = []
    for annotator_id in sorted(by_annotator, key=lambda a: usernames.get(a, "")):
        mine = by_annotator[annotator_id]
        durations = [r[3] / 1000 for r in mine if r[3]]
        median = statistics.median(durations) if durations else None
        from_model = [r[4] for r in mine if r[5] == "model" and r[4] is not None]
        annotators.append(
            {
                "username": usernames.get(annotator_id, f"user {annotator_id}"),
                "labels": len(mine),
                "median_seconds": round(median, 1) if median else None,
                "labels_per_hour": round(3600 / median) if median else None,
                "agreement": agree[annotator_id] / compared[annotator_id]
                if compared[annotator_id]
                else None,
                "overlap_answers": compared[annotator_id],
                "model_agreement": sum(from_model) / len(from_model) if from_model else None,
            }
        )
    curve = list(
        ModelVersion.objects.filter(project=project, kind=ModelVersion.Kind.MODEL)
        .exclude(estimated_accuracy=None)
        .order_by("number")
        .values_list("labels_count", "estimated_accuracy")
    )
    versions = model_versions(project=project)
    current = next((v for v in versions if v.pk == project.current_model_version_id), None)
    return {
        "progress": project_progress(project=project),
        "labels": len(rows),
        "class_counts": [(name, per_class.get(pk, 0)) for pk, name in classes],
        "learning_curve": curve,
        "prefill": prefill,
        "prefill_overall": sum(shown) / len(shown) if shown else None,
        "annotators": annotators,
        "jobs": recent_jobs(project=project),
        "model_versions": versions,
        "preselect": {
            "target": project.preselect_precision,
            "current": (current.metrics or {}).get("preselect") if current else None,
            **preselected_answers(project=project),
        },
        "encoder_comparison": project.encoder_comparison or None,
    }


def preselected_answers(*, project: Project) -> dict:
    """How the pre-selected suggestions fared with the annotators: cards answered while a
    suggestion was pre-selected (its confidence at or above its version's threshold), and the
    share where the annotator kept it (the realised precision of the single key press)."""
    counts = Annotation.objects.filter(
        item__project=project,
        is_current=True,
        source=AnnotationSource.HUMAN,
        suggestion_model_version__preselect_threshold__isnull=False,
        suggestion_confidence__gte=F("suggestion_model_version__preselect_threshold"),
    ).aggregate(shown=Count("id"), kept=Count("id", filter=Q(suggestion_accepted=True)))
    shown, kept = counts["shown"], counts["kept"]
    return {"shown": shown, "kept": kept, "kept_share": kept / shown if shown else None}


REVIEW_KINDS = ("disagreement", "model")


def review_queue(
    *, project: Project, kind: str, min_confidence: float = 0.8, after: int = 0, limit: int = 24
) -> list[dict]:
    """Labeled items worth a second look, in item order from `after` (keyset paging):
    - "disagreement": the current answers name two or more classes;
    - "model": the current trained model gives another class than every current answer,
      with at least `min_confidence` (likely label noise, in the spirit of confident learning).
    Each entry: the item, its current answers (annotator, class) and the model's prediction."""
    items = Item.objects.filter(project=project, pk__gt=after).labeled()
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
    else:
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
    return [
        {"item": item, "answers": answers.get(item.pk, []), "prediction": predictions.get(item.pk)}
        for item in page
    ]


def embedding_store(*, project: Project, key: str | None = None, dim: int | None = None):
    """The store of `key` (default: the one the project's embeddings are in), or None.
    numpy only: pages may read it (the worker writes it)."""
    key = key or project.embedding_key
    dim = dim or project.embedding_dim
    if not key or not dim:
        return None
    return EmbeddingStore(embeddings_root(project=project), key, dim)


def embeddings_root(*, project: Project) -> Path:
    return Path(settings.ANNOTATOR_EMBEDDINGS_DIR) / f"project-{project.pk}"


def encoders_root(*, project: Project) -> Path:
    """Where the project's in-domain encoders are pretrained, one folder per job."""
    return Path(settings.ANNOTATOR_ENCODERS_DIR) / f"project-{project.pk}"


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


BROWSE_STATUSES = ("all", "unlabeled", "labeled", "skipped")


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
