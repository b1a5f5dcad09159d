"""Reads. Every function takes the project (already scoped to the user by the caller)."""

from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Exists, Min, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.db.models.lookups import LessThan
from django.utils import timezone

from core.models import (
    Annotation,
    AnnotationSource,
    Item,
    Job,
    Lease,
    Membership,
    ModelVersion,
    Prediction,
    Project,
    Role,
    Skip,
)


def membership_role(*, project: Project, user: AbstractBaseUser) -> str | None:
    return (
        Membership.objects.filter(project=project, user=user).values_list("role", flat=True).first()
    )


def user_is_project_admin(*, project: Project, user: AbstractBaseUser) -> bool:
    return membership_role(project=project, user=user) == Role.ADMIN


def _open_to(*, user: AbstractBaseUser, now: datetime, k: int, item_ref: str) -> list:
    """Conditions under which the item at `item_ref` may be offered to `user`."""
    item = OuterRef(item_ref)
    conditions = [
        ~Exists(Lease.objects.filter(item=item, annotator=user, completed_at__isnull=False)),
        ~Exists(Skip.objects.filter(item=item, annotator=user)),
    ]
    occupied = Lease.objects.filter(item=item).filter(
        Q(completed_at__isnull=False) | Q(expires_at__gt=now)
    )
    if k == 1:
        conditions.append(~Exists(occupied))
    else:
        # Fewer than k occupied slots: "there is no k-th occupied slot".
        occupied_count = occupied.order_by().values("item").annotate(n=Count("pk")).values("n")
        conditions.append(LessThan(Coalesce(Subquery(occupied_count), 0), k))
    return conditions


def queue_candidate_ids(
    *, project: Project, user: AbstractBaseUser, now: datetime | None = None, limit: int = 20
) -> list[int]:
    """Item ids to offer `user`, best first.

    Items scored by the project's current model version come first, highest acquisition
    score first (ties by id); then unscored items in their stored random order. Both
    orders walk an index, so the cost does not grow with the pool.
    """
    now = now or timezone.now()
    k = project.annotators_per_item
    ids: list[int] = []
    version_id = project.current_model_version_id
    if version_id:
        ids = list(
            Prediction.objects.filter(model_version_id=version_id, item__is_done=False)
            .filter(*_open_to(user=user, now=now, k=k, item_ref="item_id"))
            .order_by("-acquisition_score", "item_id")
            .values_list("item_id", flat=True)[:limit]
        )
        if len(ids) >= limit:
            return ids
    unscored = Item.objects.filter(project=project, is_done=False).filter(
        *_open_to(user=user, now=now, k=k, item_ref="pk")
    )
    if version_id:
        unscored = unscored.exclude(
            Exists(Prediction.objects.filter(model_version_id=version_id, item=OuterRef("pk")))
        )
    ids += list(
        unscored.order_by("random_key", "id").values_list("id", flat=True)[: limit - len(ids)]
    )
    return ids


def suggestion_for_item(*, item: Item, project: Project) -> Prediction | None:
    """The current model version's prediction for the item, if it has one."""
    if not project.current_model_version_id:
        return None
    return (
        Prediction.objects.filter(item=item, model_version_id=project.current_model_version_id)
        .select_related("predicted_class", "model_version")
        .first()
    )


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
