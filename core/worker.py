"""The task worker: threads that run django-tasks-db's queued tasks, plus job recovery.

`manage.py worker` runs it as its own process (production, one or more per machine, GPU
machines included). In the embedded default the ASGI app starts the same threads inside
the web server (annotator/asgi.py), so job events reach the in-memory channel layer that
the browsers' websockets are connected to.

An idle thread waits for a task enqueued in its own process (django.tasks'
`task_enqueued` signal wakes it at once) or for its poll interval, whichever comes first;
the poll finds tasks enqueued by other processes. Claiming and running a task are
django-tasks-db's own (`get_locked`, `claim`, `Worker.run_task`); only the waiting is ours,
because its worker loop can only sleep a fixed interval between polls.
"""

import logging
import threading
from pathlib import Path

from django.conf import settings
from django.db import OperationalError, close_old_connections, connection
from django.tasks.signals import task_enqueued
from django.utils.crypto import get_random_string
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult
from django_tasks_db.utils import exclusive_transaction, is_locked_database_exception

from core.services.jobs import jobs_recover
from core.services.uploads import import_staging_cleanup

logger = logging.getLogger(__name__)


class TaskWorker:
    """`threads` task-running threads and one recovery thread; `stop()` ends them."""

    def __init__(self, *, threads: int = 2, interval: float = 0.25, name: str = "worker"):
        self.threads = threads
        self.interval = interval
        self.name = name
        self._stop = threading.Event()
        self._workers: list[Worker] = []
        self._threads: list[threading.Thread] = []
        self._wakes: list[threading.Event] = []

    def start(self) -> "TaskWorker":
        prefix = f"{self.name}-{get_random_string(6)}"
        self._spawn(self._warm_up, f"{prefix}-warm-up")
        for number in range(self.threads):
            worker = Worker(
                queue_names=["default"],
                interval=self.interval,
                batch=False,
                backend_name="default",
                startup_delay=False,
                max_tasks=None,
                worker_id=f"{prefix}-{number}",
                excluded_queue_names=[],
            )
            wake = threading.Event()
            self._workers.append(worker)
            self._wakes.append(wake)
            self._spawn(lambda w=worker, e=wake: self._serve(w, e), f"{prefix}-{number}")
        task_enqueued.connect(self._task_enqueued, dispatch_uid=id(self))
        self._spawn(self._recover_loop, f"{prefix}-recover")
        logger.info("task worker %s started with %d thread(s)", prefix, self.threads)
        return self

    def _spawn(self, target, name: str) -> None:
        def run() -> None:
            try:
                target()
            finally:
                connection.close()

        thread = threading.Thread(target=run, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _task_enqueued(self, **kwargs) -> None:
        for wake in self._wakes:
            wake.set()

    def _serve(self, worker: Worker, wake: threading.Event) -> None:
        """Run ready tasks until none is left, then wait for a wake-up or the interval."""
        while worker.running:
            wake.clear()  # before looking: a task enqueued from now on sets it again
            try:
                while worker.running and self._run_one(worker):
                    pass
            except Exception:  # a database hiccup: look again after the interval
                logger.exception("task worker %s failed to fetch a task", worker.worker_id)
            wake.wait(self.interval)

    @staticmethod
    def _run_one(worker: Worker) -> bool:
        """Claim the next ready task and run it; False when there was none."""
        close_old_connections()
        tasks = DBTaskResult.objects.ready().filter(
            backend_name=worker.backend_name, queue_name__in=worker.queue_names
        )
        try:
            with exclusive_transaction(tasks.db):
                task_result = tasks.get_locked()
                if task_result is not None:
                    task_result.claim(worker.worker_id)
        except OperationalError as exc:
            if is_locked_database_exception(exc):
                return False  # another process holds the database: the next poll retries
            raise
        if task_result is None:
            return False
        worker.run_task(task_result)
        return True

    @staticmethod
    def _warm_up() -> None:
        """Import the job bodies (torch, timm, scikit-learn: seconds) before the first job
        needs them, so the first training run is as quick as the others."""
        from core.services.jobs import job_runners
        from models_ml.device import configure_cpu_threads

        job_runners()
        # torch would use every core of the host, more than a container may have.
        configure_cpu_threads()

    def _recover_loop(self) -> None:
        period = 2 * settings.ANNOTATOR_JOB_HEARTBEAT_S
        while True:
            try:
                close_old_connections()
                outcome = jobs_recover()
                outcome["staged_imports_removed"] = import_staging_cleanup()
                if any(outcome.values()):
                    logger.warning("job recovery: %s", outcome)
                heartbeat_touch()
            except Exception:  # the next round tries again; a worker must not die of it
                logger.exception("job recovery failed")
            if self._stop.wait(period):
                return

    def stop(self, timeout: float | None = None) -> None:
        """Ask every thread to finish its current task and exit."""
        task_enqueued.disconnect(dispatch_uid=id(self))
        for worker in self._workers:
            worker.running = False
        for wake in self._wakes:
            wake.set()
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)


def heartbeat_touch() -> None:
    """Touch `ANNOTATOR_WORKER_HEARTBEAT_FILE` (when set): this worker reached the database
    just now. A container healthcheck reads its age (docker-compose.yml)."""
    path = settings.ANNOTATOR_WORKER_HEARTBEAT_FILE
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).touch()


_inprocess: TaskWorker | None = None


def inprocess_worker_start() -> TaskWorker | None:
    """Start the worker threads inside this (web) process once, when settings ask for it."""
    global _inprocess
    if not settings.ANNOTATOR_INPROCESS_WORKER or _inprocess is not None:
        return _inprocess
    _inprocess = TaskWorker(
        threads=settings.ANNOTATOR_WORKER_THREADS,
        interval=settings.ANNOTATOR_INPROCESS_WORKER_POLL_S,
        name="web",
    ).start()
    return _inprocess
