"""Tests of core/services/zero_shot.py, on tiny data; jobs run through `job_execute`."""

import pytest

from core.models import Job, ModelVersion, Prediction, SuggestionSource
from core.selectors.queue import suggestion_for_item
from core.services.queue import item_lease_next
from tests.core.loop_helpers import loop_project, run_jobs

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_encoder_cache")]


def test_zero_shot_suggestions_before_any_model(settings, tiny_clip_weights):
    settings.ANNOTATOR_CLIP_MODEL, settings.ANNOTATOR_CLIP_PRETRAINED = tiny_clip_weights
    project, _, annotator, truth = loop_project(images_per_class=4)
    run_jobs(project, Job.Kind.EMBED)  # requests zero-shot once vectors exist

    (job,) = run_jobs(project, Job.Kind.ZERO_SHOT)

    assert job.status == Job.Status.SUCCEEDED, job.error
    project.refresh_from_db()
    version = project.current_model_version
    assert version.kind == ModelVersion.Kind.ZERO_SHOT
    assert version.recipe["prompt_set"] == "ensemble-v1" and version.recipe["classes"] == [
        "red",
        "blue",
    ]
    predictions = Prediction.objects.filter(model_version=version)
    assert predictions.count() == 8
    for p in predictions:
        assert abs(sum(p.probabilities) - 1) < 1e-3 and p.source == SuggestionSource.ZERO_SHOT
    lease = item_lease_next(project=project, user=annotator).lease
    assert suggestion_for_item(item=lease.item, project=project).model_version == version


def test_zero_shot_without_weights_is_skipped_with_a_notice(settings, monkeypatch):
    monkeypatch.setenv("ANNOTATOR_OFFLINE", "1")
    settings.ANNOTATOR_CLIP_MODEL, settings.ANNOTATOR_CLIP_PRETRAINED = "ViT-B-32", "openai"
    project, *_ = loop_project(images_per_class=2)
    run_jobs(project, Job.Kind.EMBED)

    (job,) = run_jobs(project, Job.Kind.ZERO_SHOT)

    project.refresh_from_db()
    assert job.status == Job.Status.SKIPPED and "No CLIP weights" in job.message
    assert "ViT-B-32" in project.zero_shot_notice["model"]
    assert project.current_model_version is None


def test_zero_shot_suggestions_keep_the_cold_start_order(settings, tiny_clip_weights):
    settings.ANNOTATOR_CLIP_MODEL, settings.ANNOTATOR_CLIP_PRETRAINED = tiny_clip_weights
    project, *_ = loop_project(images_per_class=6, cold_start="typiclust", retrain_every=2)
    run_jobs(project, Job.Kind.EMBED)
    project.refresh_from_db()
    cold = set(
        Prediction.objects.filter(model_version=project.current_model_version).values_list(
            "item_id", flat=True
        )
    )

    (job,) = run_jobs(project, Job.Kind.ZERO_SHOT)

    project.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert project.current_model_version.kind == ModelVersion.Kind.ZERO_SHOT
    ranked = list(
        Prediction.objects.filter(model_version=project.current_model_version)
        .order_by("-acquisition_score")
        .values_list("item_id", "acquisition_score")
    )
    assert {item for item, _ in ranked[:2]} == cold and ranked[1][1] > 1 > ranked[2][1]
