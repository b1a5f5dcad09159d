"""Progress and dashboard statistics of a project.

Every function takes the project, already scoped to the user by the caller."""

import statistics
from collections import Counter
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import BigIntegerField, Count, Exists, F, Min, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from core.effort import COSTS, page_actions
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
    VerificationPage,
)
from models_ml.confidence import MIN_CALIBRATION_AUDITS, wilson_interval


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
    """The annotator's labels (cards answered and page tiles accepted) and their
    labels-per-hour pace over the last hour."""
    now = now or timezone.now()
    hour_ago = now - timedelta(hours=1)
    stats = Annotation.objects.filter(
        item__project=project,
        annotator=user,
        is_current=True,
        source__in=(AnnotationSource.HUMAN, AnnotationSource.VERIFIED),
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


def _answers_against_truth(*, project: Project) -> tuple[Counter, Counter]:
    """Per annotator: how many of their answers (cards and verified tiles, each their last
    word on the image) hit the truth, out of how many have one. The truth is a reviewer's
    decision, else the class imported as ground truth; images with neither are left out."""
    reviewed = Annotation.objects.filter(
        item=OuterRef("item"), is_current=True, source=AnnotationSource.REVIEW
    ).values("label_class_id")[:1]
    edited = Annotation.objects.filter(supersedes=OuterRef("pk"), annotator=OuterRef("annotator"))
    answers = (
        Annotation.objects.filter(
            item__project=project,
            source__in=(AnnotationSource.HUMAN, AnnotationSource.VERIFIED),
        )
        .exclude(Exists(edited))
        .annotate(
            truth=Coalesce(
                Subquery(reviewed), F("item__ground_truth_id"), output_field=BigIntegerField()
            )
        )
        .exclude(truth=None)
        .values_list("annotator_id", "label_class_id", "truth")
    )
    right: Counter = Counter()
    seen: Counter = Counter()
    for annotator_id, class_id, truth in answers:
        seen[annotator_id] += 1
        right[annotator_id] += class_id == truth
    return right, seen


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
    truth_right, truth_seen = _answers_against_truth(project=project)
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
                "truth_accuracy": truth_right[annotator_id] / truth_seen[annotator_id]
                if truth_seen[annotator_id]
                else None,
                "truth_answers": truth_seen[annotator_id],
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
        "effort": labeling_effort(project=project),
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


def pseudo_label_audit(*, project: Project) -> dict:
    """How right the pseudo-labels were where annotators checked: answered audit cards (an
    open image drawn at random, shown without a suggestion) whose image the version that drew
    it had pseudo-labeled (a random sample of its pseudo-labels; `Lease.audit_pseudo_label`,
    recorded when drawn), the share whose answer was the pseudo-label, and its 95 % Wilson
    interval. `open_audits`: every answered audit of the open images, the sample the cuts are
    certified on; `top_audits`: those drawn among the most confident open images (evidence
    for the calibration curve, not a random sample: never counted in the precision);
    `audits_needed`: how many the curve needs, both kinds together (no pseudo-labels before).

    Recorded on the lease, not looked up in the drawing version's predictions: only the last
    two versions' are kept (core/services/versions.py), and the lookup counted the audits of
    those two only, 1-8 on 1,000 Fashion-MNIST images, so one wrong answer in four dropped
    every kept pseudo-label (stop 36, docs/benchmarks/human-effort.md)."""
    answered = Lease.objects.filter(
        item__project=project, audit_class__isnull=False, completed_at__isnull=False
    )
    audits = list(
        answered.filter(audit_pseudo_label=True, audit_of_top=False).values_list(
            "item_id", "annotator_id", "audit_class_id"
        )
    )
    answers = dict(
        (((item_id, annotator_id), class_id))
        for item_id, annotator_id, class_id in Annotation.objects.filter(
            item_id__in=[a[0] for a in audits], is_current=True
        ).values_list("item_id", "annotator_id", "label_class_id")
    )
    results = [
        answers[(item, who)] == audited for item, who, audited in audits if (item, who) in answers
    ]
    n, right = len(results), sum(results)
    low, high = wilson_interval(right, n)
    return {
        "audited": n,
        "right": right,
        "precision": right / n if n else None,
        "low": low if n else None,
        "high": high if n else None,
        "target": project.pseudo_label_precision,
        "open_audits": (open_audits := answered.filter(audit_of_open=True).count()),
        "top_audits": (top := answered.filter(audit_of_top=True).count()),
        "curve_audits": open_audits + top,
        "audits_needed": MIN_CALIBRATION_AUDITS,
    }


def labeling_effort(*, project: Project) -> dict:
    """Where the annotators' time went and what it bought.

    - measured: median seconds per card answered, and per verified image (a page's time over
      its tiles), from the durations the labeling page sends;
    - coverage: the share of images with a label an export gives (human, else a pseudo-label
      of the model in use);
    - time saved against one-by-one labeling, both under the cost model (core/effort.py):
      what was done (cards, pages with their tiles looked at, marks and accepts) against
      choosing a class on its own card for every answer given and every pseudo-label.
    """
    answers = Annotation.objects.filter(item__project=project, is_current=True)
    cards = list(
        answers.filter(source=AnnotationSource.HUMAN).values_list(
            "duration_ms", "suggestion_accepted", "suggestion_confidence",
            "suggestion_model_version__preselect_threshold",
        )
    )  # fmt: skip
    verified = answers.filter(source=AnnotationSource.VERIFIED).count()
    pages = list(
        VerificationPage.objects.filter(project=project, completed_at__isnull=False).values_list(
            "item_ids", "rejected_ids", "duration_ms"
        )
    )
    card_ms = sorted(ms for ms, *_ in cards if ms)
    tile_ms = sorted(ms / len(tiles) for tiles, _, ms in pages if ms and tiles)
    actions: Counter = Counter()
    for _, accepted, confidence, threshold in cards:
        pre_selected = threshold is not None and confidence is not None and confidence >= threshold
        actions["confirm" if pre_selected and accepted else "choose"] += 1
    for tiles, rejected, _ in pages:
        actions.update(page_actions(tiles=len(tiles), marked=len(rejected)))
    total = Item.objects.filter(project=project).count()
    labeled = Item.objects.filter(project=project, annotations__is_current=True).distinct().count()
    pseudo = (
        Prediction.objects.filter(
            model_version_id=project.current_model_version_id,
            pseudo_labeled=True,
            item__annotation_count=0,
        ).count()
        if project.current_model_version_id
        else 0
    )
    spent = COSTS.seconds(actions)
    # One by one: every answer given (cards and accepted tiles) and every pseudo-label, each a
    # class chosen on its own card.
    one_by_one = (len(cards) + verified + pseudo) * COSTS.choose_s
    return {
        "card_seconds_median": round(statistics.median(card_ms) / 1000, 2) if card_ms else None,
        "verified_seconds_median": round(statistics.median(tile_ms) / 1000, 2) if tile_ms else None,
        "cards": len(cards),
        "verified": verified,
        "pages": len(pages),
        "human_labeled": labeled,
        "pseudo_labeled": pseudo,
        "coverage": (labeled + pseudo) / total if total else None,
        "modelled_seconds": spent,
        "one_by_one_seconds": round(one_by_one, 1),
        "saved_seconds": round(one_by_one - spent, 1),
        "cost_model": COSTS.source,
        "audit": pseudo_label_audit(project=project),
    }
