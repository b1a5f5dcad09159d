"""A real worker process (`manage.py worker`) runs the jobs the app enqueues, and a worker
that is killed mid-job has its job marked failed by recovery."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection

from core.models import Job, Project
from core.services.jobs import jobs_recover
from core.services.loop import pretrain_request
from tests.core.loop_helpers import label_items, loop_project

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
HEARTBEAT_S = 0.5


@pytest.fixture
def worker_env(settings):
    if connection.vendor != "sqlite":
        pytest.skip("the worker-process test runs on the SQLite pass (it shares the DB file)")
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    settings.ANNOTATOR_JOB_HEARTBEAT_S = HEARTBEAT_S
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "annotator.settings.test",
        "TEST_DATABASE_URL": f"sqlite:///{connection.settings_dict['NAME']}",
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "ANNOTATOR_EMBEDDINGS_DIR": str(settings.ANNOTATOR_EMBEDDINGS_DIR),
        "ANNOTATOR_ENCODERS_DIR": str(settings.ANNOTATOR_ENCODERS_DIR),
        "ANNOTATOR_TEST_TASK_BACKEND": "database",
        "ANNOTATOR_JOB_HEARTBEAT_S": str(HEARTBEAT_S),
        "ANNOTATOR_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }


def _start_worker(env) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "worker", "--threads", "1", "--interval", "0.1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for(condition, timeout: float, worker: subprocess.Popen):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if worker.poll() is not None:
            pytest.fail(f"worker exited early:\n{worker.stdout.read()}")
        time.sleep(0.2)
    worker.kill()
    pytest.fail(f"timed out; worker output:\n{worker.stdout.read()}")


def test_worker_process_embeds_then_trains(worker_env):
    project, _, annotator, truth = loop_project(images_per_class=6, retrain_every=4)
    worker = _start_worker(worker_env)
    try:
        embed = _wait_for(
            lambda: Job.objects.filter(project=project, kind="embed", status="succeeded").first(),
            120,
            worker,
        )
        assert embed.metrics["embedded"] == 12 and embed.worker
        label_items(project, annotator, truth, 4)  # the 4th label requests a training run
        train = _wait_for(
            lambda: (
                Job.objects.filter(project=project, kind="train")
                .exclude(status__in=["queued", "running"])
                .first()
            ),
            60,
            worker,
        )
        assert train.status == Job.Status.SUCCEEDED, train.error
        project.refresh_from_db()
        assert project.current_model_version.number == 1
        assert project.current_model_version.labels_count == 4
    finally:
        worker.terminate()
        worker.wait(30)


def test_killed_worker_job_is_failed_within_a_few_heartbeats(worker_env):
    project, admin, *_ = loop_project(images_per_class=4)
    Job.objects.filter(project=project).delete()
    Project.objects.filter(pk=project.pk).update(embedding_key="")
    job = pretrain_request(project=project, requested_by=admin, budget_s=120, batch_size=8)
    worker = _start_worker(worker_env)
    try:
        _wait_for(
            lambda: Job.objects.filter(pk=job.pk, status="running", progress__gt=0).exists(),
            120,
            worker,
        )
    finally:
        worker.kill()  # SIGKILL: no clean-up, like a crashed machine
        worker.wait(30)
    time.sleep(5 * django_settings.ANNOTATOR_JOB_HEARTBEAT_S)

    outcome = jobs_recover()

    job.refresh_from_db()
    assert outcome["failed"] == 1
    assert job.status == Job.Status.FAILED and "stopped answering" in job.message


def test_a_job_queued_in_this_process_wakes_an_idle_worker_at_once(worker_env):
    """The in-process worker polls the database only every few seconds (each look is a
    write transaction); a job queued by this process must not wait for that poll."""
    from core.services.loop import training_request
    from core.worker import TaskWorker

    project, admin, *_ = loop_project(images_per_class=2)
    Job.objects.filter(project=project).delete()
    worker = TaskWorker(threads=1, interval=600, name="test").start()
    try:
        time.sleep(1)  # the thread has looked once, found nothing, and sleeps for 600 s
        job = training_request(project=project, reason="test", requested_by=admin)
        deadline = time.monotonic() + 30
        while Job.objects.filter(pk=job.pk, status="queued").exists():
            assert time.monotonic() < deadline, "the worker did not wake up"
            time.sleep(0.1)
    finally:
        worker.stop(timeout=30)
    assert not any(thread.is_alive() for thread in worker._threads)
