"""The labeling queue: lease the next item, submit an answer, skip, import an answer.

How the database keeps the promises (SQLite and PostgreSQL alike):
- an item with annotators_per_item = k has lease slots 0..k-1; `Lease(item, slot)` is
  unique, so two annotators racing for a slot cannot both insert it;
- an expired lease is taken over with a conditional UPDATE (`expires_at <= now`), which
  only one of two racing annotators can win;
- `Lease(item, annotator)` is unique, so nobody holds two slots of one item;
- one current annotation per (item, annotator) is a partial unique constraint, so a
  double submit cannot store two answers.
"""

import random
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import BooleanField, Case, F, Value, When
from django.utils import timezone

from core.models import (
    Annotation,
    AnnotationSource,
    ExtraAnswers,
    Item,
    LabelClass,
    Lease,
    Prediction,
    Project,
    Skip,
    SuggestionRejection,
)
from core.selectors.queue import (
    audit_candidate_ids,
    item_with_suggestion,
    open_confidence_quantile,
    queue_candidate_ids,
)
from core.services.loop import labels_submitted_count

CANDIDATES_PER_ATTEMPT = 20
# The audits drawn at the top (Project.audit_top_share) are drawn among this share of the
# open images, the most confident by the current version.
TOP_AUDIT_SHARE = 0.25

# What a lease taken over after it expired no longer is: a tile of somebody's page, an audit.
FRESH_LEASE = {
    "page": None,
    "audit_class": None,
    "audit_version": None,
    "audit_confidence": None,
    "audit_of_open": False,
    "audit_of_top": False,
    "audit_pseudo_label": False,
}


MAX_ANSWER_MS = 24 * 3600 * 1000  # longer "time to answer" is a broken clock, not work


class QueueError(Exception):
    """A queue operation that cannot be done; the message is shown to the annotator."""


class LeaseLost(QueueError):
    pass


@dataclass(frozen=True)
class LeaseResult:
    lease: Lease  # lease.item is loaded
    created: bool  # False when an existing lease was returned (page refresh)
    suggestion: Prediction | None  # the current version's class suggestion for the item


def item_lease_next(
    *,
    project: Project,
    user: AbstractBaseUser,
    audit_share: float | None = None,
    audit_top_share: float | None = None,
) -> LeaseResult | None:
    """Lease the best open item to `user`, or return the lease they already hold; with the
    project's `audit_share` (or `audit_share` given), an audit card instead, drawn among the
    most confident quarter of the open images with the project's `audit_top_share` (or
    `audit_top_share` given) of them, else among all.

    Returns None when nothing is left for this annotator.
    """
    now = timezone.now()
    expires_at = now + timedelta(seconds=project.lease_seconds)
    held = (
        Lease.objects.filter(
            item__project=project,
            annotator=user,
            completed_at__isnull=True,
            expires_at__gt=now,
            page__isnull=True,  # tiles of a verification page are not cards
        )
        .order_by("leased_at")
        .first()
    )
    if held is not None:
        Lease.objects.filter(pk=held.pk).update(expires_at=expires_at)
        held.expires_at = expires_at
        return _result(held, project, created=False)

    if _audit_due(project=project, user=user, share=audit_share):
        top = _audit_top_due(project=project, user=user, share=audit_top_share)
        audit = _audit_lease(project=project, user=user, now=now, expires_at=expires_at, top=top)
        if audit is None and top:  # the top quarter is all leased or answered: among all
            audit = _audit_lease(project=project, user=user, now=now, expires_at=expires_at)
        if audit is not None:
            return audit

    tried: set[int] = set()
    for _ in range(5):
        candidates = [
            i
            for i in queue_candidate_ids(
                project=project, user=user, now=now, limit=CANDIDATES_PER_ATTEMPT + len(tried)
            )
            if i not in tried
        ]
        if not candidates:
            return None
        # The best open item first. Somebody else asking at the same moment may win it;
        # then the rest are tried in random order, so that ten annotators who lost the
        # race for one item do not all race again for the next one (each lost race is a
        # write attempt). Everyone still gets one of the top candidates.
        best, rest = ([], candidates) if tried else (candidates[:1], candidates[1:])
        random.shuffle(rest)
        for item_id in best + rest:
            tried.add(item_id)
            lease = lease_claim(
                project=project, item_id=item_id, user=user, now=now, expires_at=expires_at
            )
            if lease is not None:
                return _result(lease, project, created=True)
    return None


def _result(lease: Lease, project: Project, *, created: bool) -> LeaseResult:
    lease.item, suggestion = item_with_suggestion(item_id=lease.item_id, project=project)
    if lease.audit_class_id is not None:
        suggestion = None  # an audit shows no suggestion: the answer must not lean on it
    elif suggestion is not None and suggestion.item_has_rejections:  # rare: one query more
        suggestion.rejected_class_ids = frozenset(
            SuggestionRejection.objects.filter(item_id=lease.item_id).values_list(
                "label_class_id", flat=True
            )
        )
    return LeaseResult(lease, created, suggestion)


def _audit_due(*, project: Project, user: AbstractBaseUser, share: float | None = None) -> bool:
    """Whether this card is an audit: a draw with probability `share` (default: the
    project's `audit_share`; none at all where that is 0), seeded by the project's seed, the
    annotator and the project's label count (same seed and answers, same audits; no query)."""
    if not project.audit_share or not project.current_model_version_id:
        return False
    draw = random.Random(f"audit:{project.seed}:{user.pk}:{project.labels_submitted}").random()
    return draw < (project.audit_share if share is None else share)


def _audit_top_due(*, project: Project, user: AbstractBaseUser, share: float | None = None) -> bool:
    """Whether this audit is drawn among the most confident quarter of the open images: a
    draw with probability `share` (default: the project's `audit_top_share`), seeded like
    `_audit_due`."""
    share = project.audit_top_share if share is None else share
    if not share:
        return False
    return (
        random.Random(f"audit-top:{project.seed}:{user.pk}:{project.labels_submitted}").random()
        < share
    )


def _audit_lease(
    *, project: Project, user, now, expires_at, top: bool = False
) -> LeaseResult | None:
    """Lease an open image drawn uniformly at random (by its stored random key) as an audit
    card, recording the current version's prediction for it; None when nothing is open to
    this user.

    The draw is among all the open images, not among the pseudo-labeled ones: the answers
    are a random sample of the open pool, whose held-out predictions certify the
    pseudo-label cuts before they pseudo-label anything (`pseudo_label_thresholds`), and
    those that land on pseudo-labeled images are a random sample of the pseudo-labels, which
    measures them after (`pseudo_label_audit`).

    `top`: among the most confident quarter of the open images (TOP_AUDIT_SHARE, by the
    current version's confidence) instead, recorded as `audit_of_top`: where the cuts are,
    uniform audits are thin (on 10,000 Fashion-MNIST images 15-20 of 127-155 sat at
    confidence 0.99 or more, too few to certify a cut there; stop 41). Those answers feed the
    calibration curve only, which models the chance of being right *given* the confidence,
    so a sample drawn by confidence does not bias it; whatever counts a share of the open
    images (the pseudo-labels' measured precision, the classes' own cuts, the share a cut may
    take) counts the uniform audits alone."""
    version_id = project.current_model_version_id
    start = random.Random(
        f"audit-item:{project.seed}:{user.pk}:{project.labels_submitted}"
    ).random()  # seeded like the draw: the same seed and answers audit the same images
    floor = open_confidence_quantile(project=project, share=TOP_AUDIT_SHARE) if top else None
    top = floor is not None
    for item_id in audit_candidate_ids(
        project=project, user=user, now=now, start=start, min_confidence=floor
    ):
        prediction = Prediction.objects.filter(model_version_id=version_id, item_id=item_id).first()
        if prediction is None or prediction.predicted_class_id is None:
            continue
        lease = lease_claim(
            project=project, item_id=item_id, user=user, now=now, expires_at=expires_at
        )
        if lease is None:
            continue
        lease.audit_class_id = prediction.predicted_class_id
        lease.audit_version_id = version_id
        lease.audit_confidence = prediction.confidence
        lease.audit_of_open = not top
        lease.audit_of_top = top
        lease.audit_pseudo_label = prediction.pseudo_labeled
        lease.save(
            update_fields=[
                "audit_class",
                "audit_version",
                "audit_confidence",
                "audit_of_open",
                "audit_of_top",
                "audit_pseudo_label",
            ]
        )
        return _result(lease, project, created=True)
    return None


def lease_claim(*, project: Project, item_id: int, user, now, expires_at) -> Lease | None:
    """Try to take one slot of `item_id` for `user`; None if somebody else got there first.
    (Cards, audits and the tiles of verification pages are all claimed through here.)

    No surrounding transaction is needed: every write below is a single statement that
    the database arbitrates (a unique constraint or a conditional UPDATE), so a decision
    made on a stale read can only lose a race, never break a rule.
    """
    if project.annotators_per_item == 1:
        # The common case, one statement: the candidate query said slot 0 is free or
        # expired; the insert fails when it is not free, and then we look closer.
        lease = _lease_insert(item_id=item_id, user=user, slot=0, now=now, expires_at=expires_at)
        if lease is not None:
            return lease
    leases = list(Lease.objects.filter(item_id=item_id))
    mine = next((lease for lease in leases if lease.annotator_id == user.pk), None)
    expired = [lease for lease in leases if lease.completed_at is None and lease.expires_at <= now]
    if mine is not None:
        # One slot per annotator (a DB constraint): only my own expired lease can be taken.
        expired = [mine] if mine in expired else []
    # 1. Take over an expired lease with a conditional update: one racer wins.
    for lease in expired:
        try:
            with _one_statement():
                taken = Lease.objects.filter(
                    pk=lease.pk, completed_at__isnull=True, expires_at__lte=now
                ).update(annotator=user, leased_at=now, expires_at=expires_at, **FRESH_LEASE)
        except IntegrityError:  # the same user claiming from two tabs at once
            continue
        if taken == 1:
            lease.annotator, lease.leased_at, lease.expires_at = user, now, expires_at
            for name, value in FRESH_LEASE.items():
                setattr(lease, name, value)
            return lease
    if mine is not None:
        return None
    # 2. Insert into a free slot; the unique (item, slot) constraint settles races.
    used = {lease.slot for lease in leases}
    free = [s for s in range(project.annotators_per_item) if s not in used]
    if not free:
        return None
    return _lease_insert(item_id=item_id, user=user, slot=free[0], now=now, expires_at=expires_at)


def _lease_insert(*, item_id: int, user, slot: int, now, expires_at) -> Lease | None:
    try:
        with _one_statement():
            return Lease.objects.create(
                item_id=item_id, annotator=user, slot=slot, leased_at=now, expires_at=expires_at
            )
    except IntegrityError:
        return None


def _one_statement():
    """What one INSERT or UPDATE that may lose a race (a constraint, a condition) needs.

    Inside a transaction: a savepoint, so that losing does not spoil the transaction. On
    SQLite: a transaction of its own, which takes this process's write lock
    (annotator/sqlite) so that writers queue instead of spinning in SQLite's busy handler.
    On PostgreSQL outside a transaction: nothing. The statement is a transaction by
    itself, and BEGIN and COMMIT around it would be two more round trips to the server.
    """
    connection = transaction.get_connection()
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        return nullcontext()
    return transaction.atomic()


def annotation_submit(
    *,
    item: Item,
    user: AbstractBaseUser,
    label_class: LabelClass,
    duration_ms: int | None = None,
    shown_prediction: Prediction | None = None,
) -> tuple[Annotation, bool]:
    """Store `user`'s answer for `item`. Returns (annotation, created).

    The same answer twice stores one annotation. A different answer from the same
    annotator (going back to change it) adds a row and keeps the old one as history.
    A first answer needs the annotator's lease on the item (even if it has expired,
    as long as nobody else has taken it over).
    """
    if label_class.project_id != item.project_id:
        raise QueueError("That class belongs to another project.")
    if duration_ms is not None and not 0 <= duration_ms <= MAX_ANSWER_MS:
        duration_ms = None  # a clock gone wrong: the answer counts, its timing does not
    answer = (item, user, label_class, duration_ms, shown_prediction)
    try:
        return _answer_store(*answer, lease_first=True)
    except IntegrityError:
        # They already have a current answer although their lease was open: an admin
        # settled the item in review (annotation_review) while they held it. The
        # transaction is undone; look at that answer first.
        return _answer_store(*answer, lease_first=False)


@transaction.atomic
def _answer_store(item, user, label_class, duration_ms, prediction, *, lease_first: bool):
    """The common case, a first answer on the annotator's lease, takes the lease first and
    needs no look for a current answer: one statement fewer per label."""
    if lease_first and _lease_complete(item, user):
        return _first_answer_create(item, user, label_class, duration_ms, prediction), True
    current = (
        Annotation.objects.select_for_update()
        .filter(item=item, annotator=user, is_current=True)
        .first()
    )
    if current is not None:
        if current.label_class_id == label_class.pk:
            return current, False
        Annotation.objects.filter(pk=current.pk).update(is_current=False)
        return _annotation_create(item, user, label_class, duration_ms, prediction, current), True
    if not lease_first and _lease_complete(item, user):
        return _first_answer_create(item, user, label_class, duration_ms, prediction), True
    raise LeaseLost(
        "This image is no longer leased to you (the lease expired and it went to "
        "someone else). Your answer was not stored; here is the next image."
    )


def _lease_complete(item: Item, user: AbstractBaseUser) -> bool:
    """Mark the user's open card lease on the item answered; False if they hold none."""
    return (
        Lease.objects.filter(
            item=item, annotator=user, completed_at__isnull=True, page__isnull=True
        ).update(completed_at=timezone.now())
        == 1
    )


def _first_answer_create(item, user, label_class, duration_ms, prediction) -> Annotation:
    annotation = _annotation_create(item, user, label_class, duration_ms, prediction, None)
    answer_count(item, class_id=label_class.pk, annotator_id=user.pk)
    labels_submitted_count(project_id=item.project_id)
    return annotation


def _annotation_create(item, user, label_class, duration_ms, prediction, supersedes) -> Annotation:
    suggestion = {}
    if prediction is not None and prediction.item_id == item.pk:
        suggestion = {
            "suggested_class_id": prediction.predicted_class_id,
            "suggestion_source": prediction.source,
            "suggestion_confidence": prediction.confidence,
            "suggestion_model_version_id": prediction.model_version_id,
            "suggestion_accepted": prediction.predicted_class_id == label_class.pk,
        }
    if duration_ms is not None:
        duration_ms = max(0, min(int(duration_ms), 24 * 3600 * 1000))
    return Annotation.objects.create(
        item=item,
        annotator=user,
        label_class=label_class,
        duration_ms=duration_ms,
        supersedes=supersedes,
        **suggestion,
    )


def answer_uncount(item: Item) -> None:
    """Undo `answer_count` for an answer withdrawn (a tile marked wrong on a reopened page):
    the item needs an answer again and goes back into the scored queue."""
    Item.objects.filter(pk=item.pk, annotation_count__gt=0).update(
        annotation_count=F("annotation_count") - 1, is_done=False
    )
    if item.project.current_model_version_id:
        Prediction.objects.filter(
            item_id=item.pk, model_version_id=item.project.current_model_version_id
        ).update(item_open=True)


RELIABLE_ACCURACY = 0.9  # an annotator measured below this gets a second opinion
CALIBRATION_SHARE = 0.1  # images that get k answers anyway, so that agreement stays measured


def needs_another_answer(*, item: Item, class_id: int, annotator_id: int) -> bool:
    """With extra answers "where doubtful": whether this answer leaves the image needing
    another one. Yes where the answers so far disagree; where the model in use is confident
    (at or above its pre-selection threshold) of another class; where the annotator is
    unmeasured (no answers overlapping a colleague's yet) or measured below
    RELIABLE_ACCURACY (Dawid-Skene, stored by each training run); and on a fixed random
    CALIBRATION_SHARE of images, so that every annotator keeps being measured."""
    project = item.project
    if random.Random(f"calibrate:{project.seed}:{item.pk}").random() < CALIBRATION_SHARE:
        return True
    prediction = None
    if project.current_model_version_id:
        prediction = (
            Prediction.objects.filter(
                model_version_id=project.current_model_version_id, item_id=item.pk
            )
            .values_list(
                "predicted_class_id",
                "confidence",
                "model_version__preselect_threshold",
                "model_version__metrics__annotator_accuracy",
            )
            .first()
        )
    if prediction is not None:
        predicted, confidence, threshold, _ = prediction
        if threshold is not None and predicted not in (None, class_id) and confidence >= threshold:
            return True
    measured = (prediction[3] if prediction is not None else None) or {}
    accuracy = measured.get(str(annotator_id))
    if accuracy is None or accuracy < RELIABLE_ACCURACY:
        return True
    answers = Annotation.objects.filter(item_id=item.pk, is_current=True)
    return answers.exclude(label_class_id=class_id).exists()


def answer_count(item: Item, *, class_id: int | None = None, annotator_id: int | None = None):
    """Count an answer for `item`; it is done at k answers, or sooner where the project asks
    for extra answers only where doubtful and this one is not (`needs_another_answer`)."""
    project = item.project
    k = project.annotators_per_item
    done_sooner = (
        k > 1
        and class_id is not None
        and project.extra_answers == ExtraAnswers.DOUBTFUL
        and not needs_another_answer(item=item, class_id=class_id, annotator_id=annotator_id)
    )
    Item.objects.filter(pk=item.pk).update(
        annotation_count=F("annotation_count") + 1,
        is_done=Case(
            When(annotation_count__gte=k - 1, then=Value(True)),
            default=Value(done_sooner),
            output_field=BooleanField(),
        ),
    )
    if project.current_model_version_id:
        # Take the item out of the scored queue's index once it is done (see
        # Prediction.item_open); with one answer per item this answer did it.
        closing = Prediction.objects.filter(
            item_id=item.pk, model_version_id=project.current_model_version_id, item_open=True
        )
        if k > 1:
            closing = closing.filter(item__is_done=True)
        closing.update(item_open=False)


@transaction.atomic
def item_skip(*, item: Item, user: AbstractBaseUser) -> None:
    """Give the item back to the queue and never serve it to this annotator again."""
    Skip.objects.get_or_create(item=item, annotator=user)
    Lease.objects.filter(item=item, annotator=user, completed_at__isnull=True).delete()


@transaction.atomic
def annotation_import(
    *, item: Item, annotator: AbstractBaseUser, label_class: LabelClass
) -> Annotation:
    """Record a label that came with the images, taking a completed slot like any answer."""
    now = timezone.now()
    used = set(Lease.objects.filter(item=item).values_list("slot", flat=True))
    slot = next(s for s in range(len(used) + 1) if s not in used)
    Lease.objects.create(
        item=item, annotator=annotator, slot=slot, leased_at=now, expires_at=now, completed_at=now
    )
    annotation = Annotation.objects.create(
        item=item, annotator=annotator, label_class=label_class, source=AnnotationSource.IMPORT
    )
    answer_count(item)
    return annotation


@transaction.atomic
def annotation_review(
    *, item: Item, reviewer: AbstractBaseUser, label_class: LabelClass
) -> Annotation:
    """Settle an item's label from the review queue. The current answers become history
    (kept, no longer current) and the reviewer's answer is the item's one current label; the
    item is `accepted` when that is what every answer said, else `changed`."""
    if label_class.project_id != item.project_id:
        raise QueueError("That class belongs to another project.")
    Item.objects.select_for_update().filter(pk=item.pk).first()  # one review at a time
    previous = list(Annotation.objects.filter(item=item, is_current=True).order_by("-id"))
    Annotation.objects.filter(pk__in=[a.pk for a in previous]).update(is_current=False)
    mine = next((a for a in previous if a.annotator_id == reviewer.pk), None)
    annotation = Annotation.objects.create(
        item=item,
        annotator=reviewer,
        label_class=label_class,
        source=AnnotationSource.REVIEW,
        supersedes=mine,
    )
    changed = any(a.label_class_id != label_class.pk for a in previous)
    Item.objects.filter(pk=item.pk).update(review_state="changed" if changed else "accepted")
    if changed:
        labels_submitted_count(project_id=item.project_id)  # a changed label counts for retraining
    return annotation
