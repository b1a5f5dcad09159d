"""Background tasks. Thin: each takes a job id and runs one service (core/services/*).

Enqueued with `transaction.on_commit` by core/services/jobs.py; executed by the database
task backend's worker (`manage.py worker`, or threads of the web process in the embedded
default, see core/worker.py).

The web process imports this module to enqueue; the job bodies (which import torch
through models_ml) are imported only when a task runs, in the worker.
"""

from collections.abc import Callable

from django.tasks import task

from core.models import Job
from core.services.jobs import job_execute


def job_runners() -> dict[str, Callable[[Job], dict | None]]:
    from core.services.embeddings import items_embed_run
    from core.services.encoder_choice import encoder_choice_run
    from core.services.exports import export_run
    from core.services.pretraining import pretrain_run
    from core.services.training import training_run
    from core.services.uploads import import_run
    from core.services.zero_shot import zero_shot_run

    return {
        Job.Kind.EMBED: items_embed_run,
        Job.Kind.ZERO_SHOT: zero_shot_run,
        Job.Kind.TRAIN: training_run,
        Job.Kind.PRETRAIN: pretrain_run,
        Job.Kind.EXPORT: export_run,
        Job.Kind.CHOOSE_ENCODER: encoder_choice_run,
        Job.Kind.IMPORT: import_run,
    }


@task()
def job_task(job_id: int) -> str | None:
    return job_execute(job_id=job_id, runners=job_runners())
