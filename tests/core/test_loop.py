"""The closed loop on tiny data: import → embed → label → train → rescore → suggestion.

Jobs run through `job_execute` (what the worker calls) in the test process; the real worker
process is exercised in test_worker.py.
"""

import threading

import pytest
from django.db import connection, transaction

from core.models import Job
from core.services import loop
from core.services.jobs import job_claim
from core.services.loop import labels_submitted_count, training_request
from tests.core.loop_helpers import label_items, loop_project, run_jobs
from tests.factories import ProjectFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_encoder_cache")]


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
