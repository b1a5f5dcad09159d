"""Tests of core/services/pretraining.py, on tiny data; jobs run through `job_execute`."""

import pytest
from django.core.exceptions import ValidationError

from core.models import Job, Project
from core.services.embeddings import embedding_store
from core.services.projects import project_settings_update
from tests.core.loop_helpers import loop_project, run_jobs

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_encoder_cache")]


def test_pretraining_switches_the_project_to_its_own_encoder_and_reembeds():
    project, admin, *_ = loop_project(images_per_class=4)
    run_jobs(project, Job.Kind.EMBED)
    pixels_key = Project.objects.get(pk=project.pk).embedding_key
    from core.services.loop import pretrain_request

    pretrain_request(project=project, requested_by=admin, max_steps=2, batch_size=8, budget_s=60)

    (job,) = run_jobs(project, Job.Kind.PRETRAIN)

    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.metrics["steps"] == 2 and job.metrics["image_size"] == 32
    project.refresh_from_db()
    assert project.encoder_name == job.metrics["encoder"] == f"ssl:job-{job.pk}"
    (embed,) = run_jobs(project, Job.Kind.EMBED)
    project.refresh_from_db()
    assert embed.status == Job.Status.SUCCEEDED and project.embedding_key != pixels_key
    assert project.encoder_used == f"ssl:job-{job.pk}"  # its name, never the file's path
    assert len(embedding_store(project=project)) == 8
    # The project's settings can be saved with it, and it is this project's alone.
    project_settings_update(project=project, strategy="entropy")
    other, *_ = loop_project(images_per_class=1)
    with pytest.raises(ValidationError, match="No finished pretraining job"):
        project_settings_update(project=other, encoder_name=f"ssl:job-{job.pk}")
