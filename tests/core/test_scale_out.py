"""Several machines: two `manage.py worker` processes, each with its own local folders (as on
two hosts), one PostgreSQL, one Redis and one S3 bucket (moto). Jobs are claimed once, job
events reach a page's group through Redis, and a worker that has never seen a project
trains on the embeddings the other one published.

Runs in the PostgreSQL pass of `make test` (`-m dbcompat`); skipped, saying why, elsewhere
or when Redis or the S3 server cannot be reached."""

import asyncio
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from django.db import connection
from django_tasks_db.models import DBTaskResult

from core.events import project_group
from core.models import Job, ModelVersion
from tests.core.loop_helpers import label_items, loop_project
from tests.core.test_worker import _start_worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.dbcompat]
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/7")


@pytest.fixture
def redis_url():
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        client.ping()
        client.flushdb()
    except Exception as error:
        pytest.skip(f"Redis at {REDIS_URL} is not reachable ({type(error).__name__}: {error})")
    return REDIS_URL


class GroupListener:
    """What a browser's websocket consumer would receive: a channel in the projects' groups
    on the Redis channel layer, read on its own event loop."""

    def __init__(self, url: str, groups: list[str]):
        from channels_redis.core import RedisChannelLayer

        self.layer = RedisChannelLayer(hosts=[url])
        self.groups, self.messages = groups, []
        self._ready, self._stop = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._listen()), daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "could not subscribe to the Redis channel layer"

    async def _listen(self):
        channel = await self.layer.new_channel()
        for group in self.groups:
            await self.layer.group_add(group, channel)
        self._ready.set()
        while not self._stop.is_set():
            try:
                self.messages.append(await asyncio.wait_for(self.layer.receive(channel), 0.5))
            except TimeoutError:
                pass

    def stop(self):
        self._stop.set()
        self._thread.join(10)


def machine_env(tmp_path: Path, name: str, redis: str, bucket_env: dict) -> dict:
    db = connection.settings_dict
    folder = tmp_path / name
    return {
        **os.environ,
        **bucket_env,
        "DJANGO_SETTINGS_MODULE": "annotator.settings.test",
        "TEST_DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": redis,
        "ANNOTATOR_TEST_TASK_BACKEND": "database",
        # This machine's own disk: a cache of the bucket, and nothing else of the app's.
        "MEDIA_ROOT": str(folder / "media"),
        "ANNOTATOR_ARTIFACTS_DIR": str(folder / "artifacts"),
        "ANNOTATOR_EMBEDDINGS_DIR": str(folder / "embeddings"),
        "ANNOTATOR_ENCODERS_DIR": str(folder / "encoders"),
        "ANNOTATOR_WORKER_HEARTBEAT_FILE": str(folder / "heartbeat"),
        "ANNOTATOR_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }


def start_worker(env: dict) -> subprocess.Popen:
    """`manage.py worker` on "another machine", once it is up (its first heartbeat)."""
    worker = _start_worker(env)
    wait_for(lambda: Path(env["ANNOTATOR_WORKER_HEARTBEAT_FILE"]).exists(), 60, [worker])
    return worker


def wait_for(condition, timeout: float, workers: list[subprocess.Popen]):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        for worker in workers:
            if worker.poll() is not None:
                pytest.fail(f"a worker exited:\n{worker.stdout.read()}")
        time.sleep(0.2)
    for worker in workers:
        worker.kill()
    pytest.fail("timed out:\n" + "\n---\n".join(w.stdout.read() for w in workers))


def stop(worker: subprocess.Popen) -> None:
    worker.terminate()
    worker.wait(30)


def finished(kind: str, count: int):
    def check():
        done = Job.objects.filter(kind=kind).exclude(status__in=["queued", "running"])
        return list(done) if done.count() >= count else None

    return check


def test_two_workers_share_the_queue_the_events_and_the_embeddings(
    s3_storage, redis_url, settings, tmp_path
):
    if connection.vendor != "postgresql":
        pytest.skip("runs in make test's PostgreSQL pass: both workers share one database")
    _, bucket_env = s3_storage
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [redis_url]},
        }  # fmt: skip
    }
    env_a = machine_env(tmp_path, "machine-a", redis_url, bucket_env)
    env_b = machine_env(tmp_path, "machine-b", redis_url, bucket_env)
    workers = []
    listener = None
    try:
        # Machine A alone embeds four projects; their pages (subscribed before it starts)
        # hear about it through Redis.
        projects = [loop_project(images_per_class=4, retrain_every=4) for _ in range(4)]
        listener = GroupListener(redis_url, [project_group(p[0].pk) for p in projects])
        a = start_worker(env_a)
        workers.append(a)
        embeds = wait_for(finished("embed", 4), 120, workers)
        assert all(job.status == Job.Status.SUCCEEDED for job in embeds), [j.error for j in embeds]
        assert {job.worker.split(":")[1] for job in embeds} == {str(a.pid)}
        succeeded = {job.pk for job in embeds}
        wait_for(
            lambda: (
                {
                    m["id"]
                    for m in listener.messages
                    if m.get("event") == "job" and m.get("status") == "succeeded"
                }
                >= succeeded
            ),
            20,
            workers,
        )

        # Machine B has never seen them: A stops, B trains two projects from the bucket.
        b = start_worker(env_b)
        workers.append(b)
        stop(a)
        workers.remove(a)
        for project, _, annotator, truth in projects[:2]:
            label_items(project, annotator, truth, 4)  # the 4th label requests a training run
        trains = wait_for(finished("train", 2), 120, workers)
        assert all(job.status == Job.Status.SUCCEEDED for job in trains), [j.error for j in trains]
        assert {job.worker.split(":")[1] for job in trains} == {str(b.pid)}
        for project, *_ in projects[:2]:
            assert ModelVersion.objects.get(project=project).predictions.count() == 8
            assert (Path(env_b["ANNOTATOR_EMBEDDINGS_DIR"]) / f"project-{project.pk}").is_dir()

        # Both machines on one queue: every job is claimed once.
        workers.append(start_worker(env_a))
        for project, _, annotator, truth in projects:
            label_items(project, annotator, truth, 4)
        trains = wait_for(finished("train", 6), 120, workers)
        assert all(job.status == Job.Status.SUCCEEDED for job in trains), [j.error for j in trains]
        tasks = DBTaskResult.objects.filter(task_path__endswith="job_task")
        assert all(len(task.worker_ids) == 1 for task in tasks)
        assert sorted(ModelVersion.objects.values_list("project_id", "number")) == sorted(
            [(p[0].pk, n) for p in projects[:2] for n in (1, 2)]
            + [(p[0].pk, 1) for p in projects[2:]]
        )
    finally:
        if listener:
            listener.stop()
        for worker in workers:
            stop(worker)
