"""Progress and dashboard statistics of a project.

Every function takes the project, already scoped to the user by the caller."""

import statistics
from collections import Counter
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, F, Min, Q
from django.utils import timezone

from core.models import (
    Annotation,
    AnnotationSource,
    Item,
    Job,
    Membership,
    ModelVersion,
    Project,
)


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
