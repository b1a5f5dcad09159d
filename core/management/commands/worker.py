"""Run the background worker: embedding, zero-shot, training and pretraining jobs."""

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand

from core.worker import TaskWorker


class Command(BaseCommand):
    help = "Run background jobs (the django-tasks database queue) until SIGINT/SIGTERM."

    def add_arguments(self, parser):
        parser.add_argument(
            "--threads", type=int, default=settings.ANNOTATOR_WORKER_THREADS, help="jobs at once"
        )
        parser.add_argument(
            "--interval",
            type=float,
            default=settings.ANNOTATOR_WORKER_POLL_S,
            help="seconds an idle thread waits before looking for tasks again",
        )

    def handle(self, *args, threads: int, interval: float, **options):
        stopped = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stopped.set())
        worker = TaskWorker(threads=threads, interval=interval).start()
        self.stdout.write(f"Worker running with {threads} thread(s); Ctrl+C stops it.")
        stopped.wait()
        self.stdout.write("Stopping: finishing the current jobs…")
        worker.stop()
