"""What one account may make the server do: stored bytes and heavy jobs at once.

Checked where the work is asked for (the import and export pages and API, pretraining)
and again while an import runs, so a quota cannot be outrun by sending many requests at
once. Staff and superusers are not limited. The limits are settings
(`ANNOTATOR_USER_STORAGE_BYTES`, `ANNOTATOR_USER_ACTIVE_JOBS`).
"""

from django.conf import settings
from django.db.models import Sum

from core.job_kinds import HEAVY_JOB_KINDS
from core.models import Item, Job


class QuotaExceeded(Exception):
    """The account has used up a quota; the message says which and what to do."""


def _limited(user) -> bool:
    return bool(user and user.is_authenticated and not (user.is_staff or user.is_superuser))


def storage_used(user) -> int:
    """Bytes of stored images and thumbnails from this user's imports, in every project."""
    total = Item.objects.filter(imported_by=user).aggregate(total=Sum("stored_bytes"))["total"]
    return int(total or 0)


def storage_left(user) -> int | None:
    """Bytes the user may still store; None when they are not limited."""
    limit = settings.ANNOTATOR_USER_STORAGE_BYTES
    if not limit or not _limited(user):
        return None
    return max(0, limit - storage_used(user))


def storage_check(user) -> int | None:
    """QuotaExceeded when the user's imports already fill their storage quota; else the
    bytes they may still store (None: not limited)."""
    left = storage_left(user)
    if left is not None and left <= 0:
        limit = settings.ANNOTATOR_USER_STORAGE_BYTES
        raise QuotaExceeded(
            f"Storage quota: your imports use all of your {limit / 1e6:,.1f} MB. "
            "Delete a project or ask an administrator for more."
        )
    return left


def heavy_jobs_check(user) -> None:
    """QuotaExceeded when the user already has the most heavy jobs queued or running."""
    limit = settings.ANNOTATOR_USER_ACTIVE_JOBS
    if not limit or not _limited(user):
        return
    active = Job.objects.filter(
        requested_by=user,
        kind__in=HEAVY_JOB_KINDS,
        status__in=(Job.Status.QUEUED, Job.Status.RUNNING),
    ).count()
    if active >= limit:
        raise QuotaExceeded(
            f"You have {active} imports, exports or pretraining runs queued or running "
            f"(at most {limit} at once). Try again when one has finished."
        )
