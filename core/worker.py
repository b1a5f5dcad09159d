"""The task worker: django-tasks-db's polling worker in threads, plus job recovery.

`manage.py worker` runs it as its own process (production, one or more per machine, GPU
machines included). In the embedded default the ASGI app starts the same threads inside
the web server (annotator/asgi.py), so job events reach the in-memory channel layer that
the browsers' websockets are connected to.
"""

import logging
import threading

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils.crypto import get_random_string
from django_tasks_db.management.commands.db_worker import Worker

from core.services.jobs import jobs_recover

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
            self._workers.append(worker)
            self._spawn(worker.run, f"{prefix}-{number}")
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

    @staticmethod
    def _warm_up() -> None:
        """Import the job bodies (torch, timm, scikit-learn: seconds) before the first job
        needs them, so the first training run is as quick as the others."""
        from core.tasks import job_runners

        job_runners()

    def _recover_loop(self) -> None:
        period = 2 * settings.ANNOTATOR_JOB_HEARTBEAT_S
        while True:
            try:
                close_old_connections()
                outcome = jobs_recover()
                if any(outcome.values()):
                    logger.warning("job recovery: %s", outcome)
            except Exception:  # the next round tries again; a worker must not die of it
                logger.exception("job recovery failed")
            if self._stop.wait(period):
                return

    def stop(self, timeout: float | None = None) -> None:
        """Ask every thread to finish its current task and exit."""
        for worker in self._workers:
            worker.running = False
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)


_inprocess: TaskWorker | None = None


def inprocess_worker_start() -> TaskWorker | None:
    """Start the worker threads inside this (web) process once, when settings ask for it."""
    global _inprocess
    if not settings.ANNOTATOR_INPROCESS_WORKER or _inprocess is not None:
        return _inprocess
    _inprocess = TaskWorker(
        threads=settings.ANNOTATOR_WORKER_THREADS,
        interval=settings.ANNOTATOR_WORKER_POLL_S,
        name="web",
    ).start()
    return _inprocess
