"""Verification pages: a page of images the model puts in one class, accepted with one key.

The annotator looks at every tile, marks the wrong ones (a key or a click each) and accepts
the page. Unmarked tiles become `verified` labels (with the model version that proposed
them); marked tiles go back to the queue with a SuggestionRejection, so that their next
suggestion, page and pseudo-label leave that class out.

How the promises are kept:
- **one screen per image**: every tile is a Lease claimed through `lease_claim`, the same
  constraints as single cards (one lease per slot, one slot per annotator);
- **idempotent answers**: the page row is locked while it is answered, and an answer is
  applied as the difference from the one stored (`rejected_ids`): the same answer twice
  changes nothing;
- **Backspace reopens the last page**: `page_previous`; answering it again applies the
  difference (a tile now marked withdraws its label; a tile now accepted is labeled if it
  is still free).
"""

from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from core.effort import COSTS
from core.models import (
    Annotation,
    AnnotationSource,
    Item,
    LabelClass,
    Lease,
    ModelVersion,
    Project,
    SuggestionRejection,
    SuggestionSource,
    VerificationPage,
)
from core.selectors.queue import page_candidates
from core.services.loop import labels_submitted_count
from core.services.queue import (
    MAX_ANSWER_MS,
    QueueError,
    answer_count,
    answer_uncount,
    lease_claim,
)
from models_ml.confidence import calibrated

MIN_PAGE_TILES = 8  # fewer is not worth a page: single cards are as quick
# A tile goes on a page only where held-out predictions that confident were right at least
# this often: a page is a stream of "yes" with the odd "no", not a coin toss to correct.
MIN_TILE_PRECISION = 0.75
# Once no page clears MIN_TILE_PRECISION (pages and pseudo-labels have taken the model's
# confident band, and every image left would be a card), a page still pays down to this: a
# tile right 60 % of the time costs, with its mark and the card a wrong one still needs,
# 1.0 + 1.55 / 8 + 0.4 (1.3 + 2.9) = 2.87 s an image at 1.0 s a look on a page of 8, under a
# card's 2.9 s (2.2 s at the model's 0.5 s a look on a page of 36). On 10,000 CIFAR-10
# images the seconds to a 95 % right pool went from x0.571 to x0.514 of one-by-one labeling
# (Fashion-MNIST: x0.336 either way; stop 47 in docs/benchmarks/human-effort.md). None: no
# such pages.
LAST_BAND_TILE_PRECISION: float | None = 0.6
CANDIDATES_PER_TILE = 6  # candidates read per tile of a page, to group by class


@dataclass(frozen=True)
class PagePlan:
    """The page the model would serve now: a class, its tiles (item id, the model's confidence,
    the chance it is right by the reliability table), and the expected annotator seconds per
    right label under the cost model."""

    label_class_id: int
    tiles: list[tuple[int, float, float]]
    seconds_per_label: float


def page_plan(*, project: Project, user: AbstractBaseUser, now=None) -> PagePlan | None:
    """The cheapest page per right label among the classes of the current version's most
    confident open predictions (at least MIN_PAGE_TILES tiles right MIN_TILE_PRECISION of the
    time, else, where set, LAST_BAND_TILE_PRECISION), or None.

    A tile's chance of being right is its confidence read through the version's reliability
    table (isotonic regression of held-out hits on confidence): a version without one (too
    few labels to know) serves no page."""
    reliability = (
        ModelVersion.objects.filter(pk=project.current_model_version_id)
        .values_list("metrics__reliability", flat=True)
        .first()
    )
    if not reliability:
        return None
    candidates = page_candidates(
        project=project, user=user, now=now, limit=CANDIDATES_PER_TILE * project.page_size
    )
    precision = calibrated(reliability, [c for *_, c in candidates]) if candidates else []
    for floor in (MIN_TILE_PRECISION, LAST_BAND_TILE_PRECISION):
        if floor is None:
            break
        by_class: dict[int, list[tuple[int, float, float]]] = {}
        for (item_id, class_id, confidence), p in zip(candidates, precision, strict=True):
            if p >= floor and len(by_class.get(class_id, [])) < project.page_size:
                by_class.setdefault(class_id, []).append((item_id, confidence, float(p)))
        plans = [
            PagePlan(cls, tiles, COSTS.page_seconds_per_label([p for *_, p in tiles]))
            for cls, tiles in by_class.items()
            if len(tiles) >= MIN_PAGE_TILES
        ]
        if plans:
            return min(plans, key=lambda plan: (plan.seconds_per_label, plan.label_class_id))
    return None


def page_held(*, project: Project, user: AbstractBaseUser) -> VerificationPage | None:
    """The user's open page (not answered, not expired), its lease renewed."""
    now = timezone.now()
    page = (
        VerificationPage.objects.filter(
            project=project, annotator=user, completed_at__isnull=True, expires_at__gt=now
        )
        .order_by("-id")
        .first()
    )
    if page is not None:
        page.expires_at = now + timedelta(seconds=project.lease_seconds)
        page.save(update_fields=["expires_at"])
        Lease.objects.filter(page=page, annotator=user, completed_at__isnull=True).update(
            expires_at=page.expires_at
        )
    return page


def page_lease(
    *, project: Project, user: AbstractBaseUser, plan: PagePlan | None = None
) -> VerificationPage | None:
    """Lease a verification page to `user` (the one they hold, else a new one from `plan` or
    `page_plan`); None when the model has no page worth serving."""
    held = page_held(project=project, user=user)
    if held is not None:
        return held
    now = timezone.now()
    plan = plan or page_plan(project=project, user=user, now=now)
    if plan is None:
        return None
    expires_at = now + timedelta(seconds=project.lease_seconds)
    with transaction.atomic():
        page = VerificationPage.objects.create(
            project=project,
            annotator=user,
            label_class_id=plan.label_class_id,
            model_version_id=project.current_model_version_id,
            expires_at=expires_at,
        )
        claimed: list[tuple[int, float, int]] = []
        for item_id, confidence, _ in plan.tiles:
            lease = lease_claim(
                project=project, item_id=item_id, user=user, now=now, expires_at=expires_at
            )
            if lease is not None:
                claimed.append((item_id, confidence, lease.pk))
        if len(claimed) < MIN_PAGE_TILES:  # others took the rest: not worth a page now
            transaction.set_rollback(True)
            return None
        Lease.objects.filter(pk__in=[pk for *_, pk in claimed]).update(page=page)
        page.item_ids = [item_id for item_id, *_ in claimed]
        page.confidences = [round(confidence, 4) for _, confidence, _ in claimed]
        page.save(update_fields=["item_ids", "confidences"])
    return page


def page_previous(
    *, project: Project, user: AbstractBaseUser, before: VerificationPage | None = None
) -> VerificationPage | None:
    """The user's most recently answered page (before `before`), to look at or change."""
    pages = VerificationPage.objects.filter(
        project=project, annotator=user, completed_at__isnull=False
    )
    if before is not None:
        pages = pages.filter(pk__lt=before.pk)
    return pages.order_by("-pk").first()


@dataclass(frozen=True)
class PageAnswer:
    accepted: int  # labels the answer added
    withdrawn: int  # labels it took back (a reopened page)
    rejected: int  # tiles marked wrong, now back in the queue
    lost: int  # tiles whose lease went to somebody else before the answer
    changed: bool  # False: the same answer as the one stored (nothing done)


@transaction.atomic
def page_submit(
    *,
    page: VerificationPage,
    user: AbstractBaseUser,
    rejected_ids: set[int],
    duration_ms: int | None = None,
) -> PageAnswer:
    """Answer a page: the tiles in `rejected_ids` are not the page's class, the rest are.

    A first answer labels the unmarked tiles on the user's leases. An answer to a page
    already answered is applied as the difference from the stored one."""
    page = VerificationPage.objects.select_for_update().get(pk=page.pk)  # one answer at a time
    if page.annotator_id != user.pk:
        raise QueueError("This page was leased to somebody else.")
    tiles = list(page.item_ids)
    rejected = {i for i in rejected_ids if i in set(tiles)}
    items = {i.pk: i for i in Item.objects.filter(pk__in=tiles).select_related("project")}
    confidence = dict(zip(tiles, page.confidences, strict=False))
    label_class = LabelClass.objects.get(pk=page.label_class_id)
    if duration_ms is not None and not 0 <= duration_ms <= MAX_ANSWER_MS:
        duration_ms = None
    per_tile_ms = round(duration_ms / len(tiles)) if duration_ms and tiles else None

    accepted = withdrawn = lost = 0
    if page.completed_at is None:
        to_accept, to_reject, to_withdraw = [i for i in tiles if i not in rejected], rejected, set()
    else:
        before = set(page.rejected_ids)
        if before == rejected:
            return PageAnswer(0, 0, len(rejected), 0, changed=False)
        to_accept = [i for i in tiles if i in before - rejected]
        to_reject = rejected - before
        to_withdraw = to_reject
    now = timezone.now()
    for item_id in to_accept:
        item = items[item_id]
        if Annotation.objects.filter(item_id=item_id, annotator=user, is_current=True).exists():
            lost += 1  # answered meanwhile (as a card, or settled in review)
            continue
        leased = Lease.objects.filter(
            item_id=item_id, annotator=user, completed_at__isnull=True, page=page
        ).update(completed_at=now)
        if not leased and page.completed_at is not None:
            # A reopened page: the tile went back to the queue; take it again if still free.
            lease = lease_claim(
                project=page.project, item_id=item_id, user=user, now=now, expires_at=now
            )
            leased = lease is not None and Lease.objects.filter(pk=lease.pk).update(
                completed_at=now, page=page
            )
        if not leased:
            lost += 1
            continue
        Annotation.objects.create(
            item=item,
            annotator=user,
            label_class=label_class,
            source=AnnotationSource.VERIFIED,
            page=page,
            suggested_class=label_class,
            suggestion_source=SuggestionSource.MODEL,
            suggestion_confidence=confidence.get(item_id),
            suggestion_model_version_id=page.model_version_id,
            suggestion_accepted=True,
            duration_ms=per_tile_ms,
        )
        answer_count(item, class_id=label_class.pk, annotator_id=user.pk)
        SuggestionRejection.objects.filter(item_id=item_id, label_class=label_class).delete()
        accepted += 1
    for item_id in to_withdraw:
        current = Annotation.objects.filter(
            item_id=item_id, annotator=user, is_current=True, page=page
        )
        if current.update(is_current=False):
            answer_uncount(items[item_id])
            withdrawn += 1
    for item_id in to_reject:
        # Back to the queue: the tile's lease (open, or answered on a reopened page) goes.
        Lease.objects.filter(item_id=item_id, annotator=user, page=page).delete()
        SuggestionRejection.objects.get_or_create(
            item_id=item_id, label_class=label_class, defaults={"annotator": user, "page": page}
        )
    page.rejected_ids = sorted(rejected)
    fields = ["rejected_ids"]
    if page.completed_at is None:
        page.completed_at, page.duration_ms = now, duration_ms
        fields += ["completed_at", "duration_ms"]
    page.save(update_fields=fields)
    if accepted:
        labels_submitted_count(project_id=page.project_id, n=accepted)
    return PageAnswer(accepted, withdrawn, len(rejected), lost, changed=True)
