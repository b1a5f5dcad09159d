"""The loop's rules: what each event sets off, in the order the data flows.

    images imported        → embed them                                   after_import
    images embedded        → cold-start order, CLIP suggestions, training  after_embedding
    a label submitted      → a training run every `retrain_every` labels   labels_submitted_count
    a model trained        → compare encoders when the labels doubled      after_training
    encoders compared      → re-embed when another encoder won            after_encoder_choice
    an encoder pretrained  → re-embed with it                             after_pretraining
    classes changed        → CLIP suggestions again; a retrain on merges  after_classes_changed
    the encoder setting    → re-embed                                     after_encoder_setting

Job bodies do their one job and return their metrics; the `after_*` hooks named in
core/job_kinds.py (`then`) run when a job of that kind succeeds. The web side calls the
others. Nothing here does the work itself: it only decides which job to queue.
"""

from django.conf import settings
from django.db.models import F

from core.models import AUTO_ENCODER, Job, Project
from core.selectors.common import training_is_possible
from core.services.jobs import job_request
from core.services.quotas import heavy_jobs_check


def training_request(*, project: Project, reason: str, requested_by=None) -> Job:
    return job_request(
        project=project, kind=Job.Kind.TRAIN, reason=reason, requested_by=requested_by
    )


def embed_request(*, project: Project, reason: str, requested_by=None) -> Job:
    return job_request(
        project=project, kind=Job.Kind.EMBED, reason=reason, requested_by=requested_by
    )


def zero_shot_request_if_useful(*, project: Project, reason: str) -> Job | None:
    """CLIP suggestions are worth (re)computing: CLIP is configured, there are images
    embedded and at least two classes to choose between."""
    if not settings.ANNOTATOR_CLIP_MODEL or not project.embedding_key:
        return None
    if project.classes.count() < 2:
        return None
    return job_request(project=project, kind=Job.Kind.ZERO_SHOT, reason=reason)


ENCODER_COMPARISON_FIRST_AT = 20  # labels, and at least 5 per class; then at each doubling
ENCODER_COMPARISON_PER_CLASS = 5


def encoder_choice_request_if_due(*, project: Project, labels_count: int) -> Job | None:
    """With the `auto` encoder: compare the encoders on the labels once there are 20 and 5
    per class on average, then each time the labels have doubled (each comparison embeds the
    new labeled items with every candidate)."""
    if project.encoder_name != AUTO_ENCODER:
        return None
    last = int((project.encoder_comparison or {}).get("labels", 0))
    first = max(ENCODER_COMPARISON_FIRST_AT, ENCODER_COMPARISON_PER_CLASS * project.classes.count())
    if labels_count < max(first, 2 * last):
        return None
    return job_request(
        project=project, kind=Job.Kind.CHOOSE_ENCODER, reason=f"{labels_count} labels"
    )


def pretrain_request(*, project: Project, requested_by=None, **params) -> Job:
    """Queue SSL pretraining; QuotaExceeded when the user has too many heavy jobs."""
    heavy_jobs_check(requested_by)
    return job_request(
        project=project,
        kind=Job.Kind.PRETRAIN,
        reason="in-domain SSL pretraining",
        requested_by=requested_by,
        params=params,
    )


def labels_submitted_count(*, project_id: int, n: int = 1) -> None:
    """Count `n` new labels (one answer, or a verification page's accepted tiles) towards the
    retrain trigger, and request a run when it is due.

    Each count is one conditional UPDATE, either "not due yet: count it" or "due: count it
    and move the mark", so of many concurrent submits exactly one sees the run as due, and
    the common case (not due) costs one statement. Should another submit move the mark
    between the two, neither matches and the count is tried again.
    """
    project = Project.objects.filter(pk=project_id)
    counted = F("labels_submitted") + n
    due_before = F("labels_at_last_training_request") + F("retrain_every") - n
    for _ in range(10):
        if project.filter(labels_submitted__lt=due_before).update(labels_submitted=counted):
            return
        if project.filter(labels_submitted__gte=due_before).update(
            labels_submitted=counted, labels_at_last_training_request=counted
        ):
            due = Project.objects.get(pk=project_id)
            training_request(project=due, reason=f"{due.retrain_every} new labels")
            return
    # Neither matched ten times: the project is gone.


# --- what a finished job sets off (JOB_KINDS[kind].then) -------------------------------------


def after_import(*, project: Project, imported: int) -> Job | None:
    """New images are embedded (imports in the request call this too, not only the job)."""
    if not imported:
        return None
    return embed_request(project=project, reason=f"{imported} images imported")


def after_embedding(job: Job, metrics: dict) -> None:
    """New vectors mean a new cold-start order, new zero-shot suggestions and a rescore."""
    from core.services.cold_start import cold_start_write  # worker side: numpy, strategies

    if not metrics.get("embedded"):
        return
    project = Project.objects.get(pk=job.project_id)
    cold_start_write(project=project)
    zero_shot_request_if_useful(project=project, reason="new images embedded")
    if training_is_possible(project=project):
        training_request(project=project, reason="new images embedded")


def after_training(job: Job, metrics: dict) -> None:
    project = Project.objects.get(pk=job.project_id)
    encoder_choice_request_if_due(project=project, labels_count=int(metrics.get("labels", 0)))


def after_encoder_choice(job: Job, metrics: dict) -> None:
    if metrics.get("switched"):
        project = Project.objects.get(pk=job.project_id)
        embed_request(project=project, reason=f"auto: {metrics['chosen']} fits the labels better")


def after_pretraining(job: Job, metrics: dict) -> None:
    project = Project.objects.get(pk=job.project_id)
    embed_request(project=project, reason="new in-domain SSL encoder")


# --- what a change on the web side sets off --------------------------------------------------


def after_classes_changed(*, project: Project, reason: str, retrain: bool = False) -> None:
    """New, renamed or merged classes: CLIP's suggestions again; a merge also retrains."""
    if retrain and training_is_possible(project=project):
        training_request(project=project, reason=reason)
    zero_shot_request_if_useful(project=project, reason=reason)


def after_encoder_setting(*, project: Project) -> Job:
    return embed_request(project=project, reason=f"encoder set to {project.encoder_name}")
