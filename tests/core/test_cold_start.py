"""Tests of core/services/cold_start.py, on tiny data; jobs run through `job_execute`."""

import pytest

from core.models import Job, ModelVersion, Prediction
from core.selectors.queue import suggestion_for_item
from core.services.queue import item_lease_next
from tests.core.loop_helpers import label_items, loop_project, run_jobs

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_encoder_cache")]


def test_typiclust_cold_start_asks_one_image_per_cluster_until_the_first_model():
    classes = ("red", "blue", "green")
    project, _, annotator, truth = loop_project(
        images_per_class=8, classes=classes, cold_start="typiclust", retrain_every=3
    )
    run_jobs(project, Job.Kind.EMBED)  # writes the cold-start order once vectors exist

    project.refresh_from_db()
    version = project.current_model_version
    assert version.kind == ModelVersion.Kind.COLD_START
    first = list(
        Prediction.objects.filter(model_version=version)
        .order_by("-acquisition_score")
        .values_list("item_id", flat=True)
    )
    assert len(first) == 3 and {truth[i].name for i in first} == set(classes)
    lease = item_lease_next(project=project, user=annotator).lease
    assert lease.item_id == first[0]
    assert suggestion_for_item(item=lease.item, project=project) is None  # no class

    assert label_items(project, annotator, truth, 3) == first
    (job,) = run_jobs(project, Job.Kind.TRAIN)
    project.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED
    assert project.current_model_version.kind == ModelVersion.Kind.MODEL
    run_jobs(project, Job.Kind.EMBED)
    assert (
        not ModelVersion.objects.filter(project=project, kind=ModelVersion.Kind.COLD_START)
        .exclude(pk=version.pk)
        .exists()
    )  # a trained model is never replaced by a cold start


def test_random_cold_start_writes_no_version():
    project, *_ = loop_project(images_per_class=4)
    run_jobs(project, Job.Kind.EMBED)
    project.refresh_from_db()
    assert project.cold_start == "random" and project.current_model_version is None
