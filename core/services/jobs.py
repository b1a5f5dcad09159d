"""Background jobs: request (coalescing), claim, progress with heartbeat, finish, recovery.

The database keeps the promises. Per (project, kind) at most one job is queued and at
most one runs (partial unique constraints on Job):
- `job_request` joins the queued job when there is one, so requests made while a run is
  going coalesce into a single follow-up run;
- `job_claim` moves queued → running with a conditional UPDATE; the "one running" constraint
  makes it fail while another one runs, and the running one hands over when it ends;
- a job whose worker died stops heartbeating; `jobs_recover` marks it failed and re-enqueues
  waiting jobs. Nothing a job writes is visible until it commits its result, so a failed
  job leaves the previous model version serving.

The task (`job_task`) carries only the job id and is enqueued after commit; running one
twice is harmless because only one claim succeeds. What each kind runs, and what the loop
does after it, is declared in core/job_kinds.py.
"""

import logging
import os
import re
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Exists, F, OuterRef
from django.tasks import task
from django.urls import reverse
from django.utils import timezone
from django.utils.module_loading import import_string

from core.events import project_event_send
from core.job_kinds import JOB_KINDS, UNCOALESCED_JOB_KINDS
from core.models import Job, ModelVersion, Project

logger = logging.getLogger(__name__)

ACTIVE = (Job.Status.QUEUED, Job.Status.RUNNING)


class JobSkipped(Exception):
    """Raised by a job that finds nothing to do; its message is shown as the job's outcome."""


def job_request(
    *,
    project: Project,
    kind: str,
    reason: str = "",
    requested_by: AbstractBaseUser | None = None,
    params: dict[str, Any] | None = None,
) -> Job:
    """Queue a job of `kind`, or join the one already waiting (kinds in
    UNCOALESCED_JOB_KINDS always queue a new one). Returns the queued job."""
    coalesce = kind not in UNCOALESCED_JOB_KINDS
    for _ in range(3):
        queued = Job.objects.filter(project=project, kind=kind, status=Job.Status.QUEUED)
        waiting = queued.first() if coalesce else None
        if waiting is not None:
            Job.objects.filter(pk=waiting.pk).update(requests=F("requests") + 1)
            return waiting
        try:
            with transaction.atomic():
                job = Job.objects.create(
                    project=project,
                    kind=kind,
                    reason=reason[:200],
                    requested_by=requested_by,
                    params=params or {},
                )
        except IntegrityError:  # another request created it a moment ago: join that one
            continue
        _enqueue_on_commit(job.pk)
        _job_event(job)
        return job
    raise RuntimeError(f"could not queue a {kind} job for project {project.pk}")


def _enqueue_on_commit(job_id: int) -> None:
    transaction.on_commit(lambda: job_task.enqueue(job_id))


@task()
def job_task(job_id: int) -> str | None:
    """The one background task: run job `job_id` (the task carries nothing else)."""
    return job_execute(job_id=job_id)


def job_runners() -> dict[str, Callable[[Job], dict | None]]:
    """Each kind's job body, imported from JOB_KINDS (in the worker: they import torch)."""
    return {kind: import_string(spec.runner) for kind, spec in JOB_KINDS.items()}


def job_claim(*, job_id: int) -> Job | None:
    """queued → running for this worker; None when the job is not ours to run (already
    claimed, finished, or another job of its kind runs for the project)."""
    now = timezone.now()
    try:
        with transaction.atomic():
            claimed = Job.objects.filter(pk=job_id, status=Job.Status.QUEUED).update(
                status=Job.Status.RUNNING,
                started_at=now,
                heartbeat_at=now,
                worker=worker_name(),
            )
    except IntegrityError:
        return None  # one of its kind is running; it hands over when it ends
    if not claimed:
        return None
    job = Job.objects.select_related("project").get(pk=job_id)
    _job_event(job)
    return job


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"[:100]


def job_progress(*, job: Job, fraction: float, message: str = "") -> None:
    """Record progress (0..1) and a heartbeat, and tell the browsers."""
    job.progress = max(0.0, min(1.0, float(fraction)))
    if message:
        job.message = message[:500]
    job.heartbeat_at = timezone.now()
    Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(
        progress=job.progress, message=job.message, heartbeat_at=job.heartbeat_at
    )
    _job_event(job)


PROGRESS_EVERY_S = 1.0  # each progress report is a database write and a websocket event


class ProgressReporter:
    """Progress through `total` things for a job, reported at most once per PROGRESS_EVERY_S
    (and always at the end). `describe(done, total)` writes the message; the fraction runs
    from `start` to 1."""

    def __init__(self, job: Job, total: int, describe: Callable[[int, int], str], start=0.0):
        self.job, self.total, self.describe, self.start = job, total, describe, start
        self.last = 0.0

    def __call__(self, done: int) -> None:
        if time.monotonic() - self.last < PROGRESS_EVERY_S and done < self.total:
            return
        self.last = time.monotonic()
        job_progress(
            job=self.job,
            fraction=self.start + (1 - self.start) * done / max(self.total, 1),
            message=self.describe(done, self.total),
        )


def _job_finish(
    job: Job, status: str, *, message: str = "", error: str = "", metrics: dict | None = None
) -> None:
    job.status, job.finished_at = status, timezone.now()
    job.message = (message or job.message)[:500]
    job.error = error
    if metrics:
        job.metrics = {**job.metrics, **metrics}
    if status == Job.Status.SUCCEEDED:
        job.progress = 1.0
    with transaction.atomic():
        Job.objects.filter(pk=job.pk).update(
            status=job.status,
            finished_at=job.finished_at,
            message=job.message,
            error=job.error,
            metrics=job.metrics,
            progress=job.progress,
            model_version=job.model_version,
        )
        _job_event(job)
    _hand_over(job.project_id, job.kind)


def _hand_over(project_id: int, kind: str) -> None:
    """After a job of `kind` ends, start the one that waited for it (if any)."""
    waiting = (
        Job.objects.filter(project_id=project_id, kind=kind, status=Job.Status.QUEUED)
        .order_by("created_at", "id")  # first come, first served (imports queue several)
        .values_list("pk", flat=True)
        .first()
    )
    if waiting is not None:
        _enqueue_on_commit(waiting)


@contextmanager
def _heartbeat(job: Job) -> Iterator[None]:
    """Touch the job's heartbeat from a side thread while its body runs (model loading and
    long numpy calls report no progress of their own).

    A beat the database refuses (SQLite's "database is locked" while another process writes
    for longer than its busy timeout, a dropped connection) is logged and the next one
    tries again on a fresh connection: a thread that died on it would leave a healthy job
    silent, and `jobs_recover` would fail it after four intervals."""
    stop = threading.Event()
    interval = settings.ANNOTATOR_JOB_HEARTBEAT_S

    def beat() -> None:
        from django.db import connection

        try:
            while not stop.wait(interval):
                try:
                    Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(
                        heartbeat_at=timezone.now()
                    )
                except DatabaseError as error:
                    logger.warning("job %s: heartbeat not written (%s); retrying", job.pk, error)
                    connection.close()
        finally:
            connection.close()

    thread = threading.Thread(target=beat, name=f"job-{job.pk}-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def job_execute(
    *, job_id: int, runners: dict[str, Callable[[Job], dict | None]] | None = None
) -> str | None:
    """Claim job `job_id`, run its body, then what the loop does after it; returns the final
    status. `runners` replaces the bodies of JOB_KINDS (tests).

    The body returns metrics (or None). JobSkipped ends the job as skipped with its
    message; any other exception fails it with the traceback kept in `error`. The kind's
    `then` hook (core/services/loop.py) runs after the body, as part of the job.
    """
    job = job_claim(job_id=job_id)
    if job is None:
        return None
    try:
        with _heartbeat(job):
            spec = JOB_KINDS[job.kind]
            body = (runners or {}).get(job.kind) or import_string(spec.runner)
            metrics = body(job)
            if spec.then:
                import_string(spec.then)(job, metrics or {})
    except JobSkipped as skipped:
        _job_finish(job, Job.Status.SKIPPED, message=str(skipped))
        return Job.Status.SKIPPED
    except Exception as error:
        logger.exception("job %s failed", job)
        # Members see the short reason, without server paths; the traceback stays in the
        # server log and in `error` (shown to staff only, and in Django's admin).
        message = redact_paths(f"{type(error).__name__}: {error}")
        _job_finish(job, Job.Status.FAILED, message=message, error=traceback.format_exc())
        return Job.Status.FAILED
    _job_finish(job, Job.Status.SUCCEEDED, message=job.message or "Done", metrics=metrics)
    return Job.Status.SUCCEEDED


def jobs_recover(*, now=None) -> dict[str, int]:
    """Mark running jobs whose heartbeat stopped as failed and re-enqueue waiting jobs.

    Run by every worker at start and then periodically: a killed worker's job is failed
    within a few heartbeats and whatever waited for it runs.
    """
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=4 * settings.ANNOTATOR_JOB_HEARTBEAT_S)
    stale = list(Job.objects.filter(status=Job.Status.RUNNING, heartbeat_at__lt=stale_before))
    orphans_removed = 0
    for job in stale:
        updated = Job.objects.filter(
            pk=job.pk, status=Job.Status.RUNNING, heartbeat_at__lt=stale_before
        ).update(
            status=Job.Status.FAILED,
            finished_at=now,
            message="The worker stopped answering (killed or crashed); the previous model "
            "version keeps serving.",
            error=f"no heartbeat since {job.heartbeat_at.isoformat()}",
        )
        if updated:
            job.refresh_from_db()
            _job_event(job)
            orphans_removed += _orphan_versions_delete(job)
    # Waiting jobs nobody is running ahead of: their task was lost (worker killed between
    # claim and hand-over, or a task backend that was emptied). Young ones are left alone.
    running_ahead = Job.objects.filter(
        project=OuterRef("project"), kind=OuterRef("kind"), status=Job.Status.RUNNING
    )
    waiting = list(
        Job.objects.filter(status=Job.Status.QUEUED, created_at__lt=stale_before)
        .exclude(Exists(running_ahead))
        .values_list("pk", flat=True)
    )
    for job_id in waiting:
        _enqueue_on_commit(job_id)
    return {"failed": len(stale), "requeued": len(waiting), "orphan_versions": orphans_removed}


def _orphan_versions_delete(job: Job) -> int:
    """The model versions a killed job had begun writing (never switched to): deleted with
    their predictions, so no half-written version lingers (the serving one is never touched)."""
    serving = (
        Project.objects.filter(pk=job.project_id)
        .values_list("current_model_version_id", flat=True)
        .first()
    )
    orphans = ModelVersion.objects.filter(project_id=job.project_id, recipe__job=job.pk)
    return orphans.exclude(pk=serving).delete()[1].get("core.ModelVersion", 0)


_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])(?:/[^\s'\"/:,;()\[\]]+){2,}")


def redact_paths(text: str) -> str:
    """`text` with every absolute path cut to its last part (`…/encoder.pt`): what members
    and API clients see of server errors and metrics, never where files live."""
    return _ABSOLUTE_PATH.sub(lambda m: "…/" + m.group(0).rsplit("/", 1)[-1], text)


def public_metrics(metrics: dict) -> dict:
    """A job's metrics as members and the API see them: paths redacted, recursively."""

    def clean(value):
        if isinstance(value, str):
            return redact_paths(value)
        if isinstance(value, dict):
            return {key: clean(v) for key, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return clean(metrics or {})


def _job_event(job: Job) -> None:
    project_event_send(project_id=job.project_id, event="job", payload=job_payload(job))


def job_payload(job: Job) -> dict[str, Any]:
    return {
        "id": job.pk,
        "kind": job.kind,
        "kind_label": Job.Kind(job.kind).label,
        "status": job.status,
        "progress": round(job.progress, 4),
        "message": job.message,
        "model_version": job.model_version.number if job.model_version_id else None,
        "download_url": export_download_url(job),
    }


def export_download_url(job: Job) -> str | None:
    """Where a finished export job's file is downloaded (admins only), else None."""
    if job.kind != Job.Kind.EXPORT or job.status != Job.Status.SUCCEEDED:
        return None
    return reverse("core:export_file", args=[job.project_id, job.pk])
