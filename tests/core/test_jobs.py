"""Tests of core/services/jobs.py, on tiny data; jobs run through `job_execute`."""

import pytest

from core.models import Job, ModelVersion, Project
from core.services.jobs import job_claim, job_execute, job_runners, jobs_recover
from core.services.loop import training_request
from tests.core.loop_helpers import loop_project

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_encoder_cache")]


def test_a_job_whose_worker_died_is_failed_by_recovery(settings):
    settings.ANNOTATOR_JOB_HEARTBEAT_S = 0.01
    project, *_ = loop_project(images_per_class=2)
    job = training_request(project=project, reason="test")
    assert job_claim(job_id=job.pk) is not None
    waiting = training_request(project=project, reason="arrived meanwhile")
    Job.objects.filter(pk__in=[job.pk, waiting.pk]).update(
        heartbeat_at="2000-01-01T00:00:00Z", created_at="2000-01-01T00:00:00Z"
    )
    # The killed run had begun writing its version; an earlier one serves.
    serving = ModelVersion.objects.create(project=project, number=1, recipe={"job": 999})
    Project.objects.filter(pk=project.pk).update(current_model_version=serving)
    orphan = ModelVersion.objects.create(project=project, number=2, recipe={"job": job.pk})

    outcome = jobs_recover()

    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and "stopped answering" in job.message
    # the train job that waited behind it; the young embed job from the import is left alone
    assert outcome == {"failed": 1, "requeued": 1, "orphan_versions": 1}
    assert not ModelVersion.objects.filter(pk=orphan.pk).exists()
    assert Project.objects.get(pk=project.pk).current_model_version == serving


def test_running_a_task_twice_runs_the_job_once():
    project, *_ = loop_project(images_per_class=2)
    job = Job.objects.get(project=project, kind=Job.Kind.EMBED)
    assert job_execute(job_id=job.pk, runners=job_runners()) == Job.Status.SUCCEEDED
    assert job_execute(job_id=job.pk, runners=job_runners()) is None


def test_a_heartbeat_the_database_refuses_is_retried_not_the_end_of_the_heartbeat(
    settings, monkeypatch, caplog
):
    """SQLite answers "database is locked" while another process writes longer than its
    busy timeout. The heartbeat thread used to die on the first refusal and leave a healthy
    job silent until recovery failed it; now it logs the refusal and the next beats land."""
    import threading
    import time

    from django.db import OperationalError

    from core.services import jobs as jobs_module

    settings.ANNOTATOR_JOB_HEARTBEAT_S = 0.01
    beats, lock = [], threading.Lock()

    class Refusing:
        def update(self, **fields):
            with lock:
                beats.append(fields["heartbeat_at"])
                if len(beats) <= 2:
                    raise OperationalError("database is locked")
            return 1

    class Manager:
        def filter(self, **lookups):
            assert lookups == {"pk": 7, "status": Job.Status.RUNNING}
            return Refusing()

    monkeypatch.setattr(jobs_module.Job, "objects", Manager())
    died = []
    monkeypatch.setattr(threading, "excepthook", lambda args: died.append(args))
    with caplog.at_level("WARNING", logger="core.services.jobs"):
        with jobs_module._heartbeat(Job(pk=7)):
            deadline = time.monotonic() + 5
            while len(beats) < 5 and time.monotonic() < deadline:
                time.sleep(0.01)
    assert len(beats) >= 5 and not died
    assert sum("heartbeat not written" in r.getMessage() for r in caplog.records) == 2
