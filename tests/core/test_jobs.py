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
