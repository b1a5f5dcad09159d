"""In-domain SSL pretraining: a SimCLR encoder trained on the project's own images.

The path that works where no pretrained weights can be downloaded. The run checkpoints
as it goes (a retried job resumes from its folder), stops at its time budget, then makes
the new encoder the project's and re-embeds every image with it.
"""

import statistics
import time

from django.conf import settings

from core import storage
from core.models import Item, Job, Project, ssl_encoder_name
from core.selectors.common import encoder_file_name, encoders_root
from core.services.embeddings import encoder_cache, item_image_sources
from core.services.jobs import JobSkipped, job_progress
from models_ml.device import best_device
from models_ml.ssl import ENCODER_FILE, SSLConfig, SSLProgress, images_to_array, pretrain

PROGRESS_EVERY_S = 2.0


def pretrain_config(*, image_side: int, images: int, params: dict, on_gpu: bool) -> SSLConfig:
    """A CIFAR-style ResNet-18 for small images, a 64-px one with a strided stem for larger:
    sized for a 10-minute budget on one GPU, or a usable start on a CPU."""
    size = 32 if image_side <= 48 else 64
    return SSLConfig(
        arch=params.get("arch", "resnet18"),
        image_size=size,
        stem_stride=1 if size == 32 and on_gpu else 2,
        batch_size=min(int(params.get("batch_size", 512 if on_gpu else 256)), images),
        time_budget_s=float(params.get("budget_s", settings.ANNOTATOR_PRETRAIN_BUDGET_S)),
        max_steps=params.get("max_steps"),
        checkpoint_every=int(params.get("checkpoint_every", 500)),
    )


def pretrain_run(job: Job) -> dict:
    """Job body: pretrain, switch the project to the new encoder, re-embed."""
    project = Project.objects.get(pk=job.project_id)
    items = list(
        Item.objects.filter(project=project).order_by("pk").values_list("pk", "image", "width")
    )
    if len(items) < 2:
        raise JobSkipped("Pretraining needs at least two images.")
    side = int(statistics.median(width for _, _, width in items))
    config = pretrain_config(
        image_side=side,
        images=len(items),
        params=job.params,
        on_gpu=best_device().type == "cuda",
    )
    job_progress(job=job, fraction=0.0, message=f"Decoding {len(items)} images")
    images = images_to_array(
        item_image_sources([(pk, name) for pk, name, _ in items]), config.image_size
    )
    out_dir = encoders_root(project=project) / f"job-{job.pk}"
    last_report = 0.0

    def report(progress: SSLProgress) -> None:
        nonlocal last_report
        if time.monotonic() - last_report >= PROGRESS_EVERY_S:
            last_report = time.monotonic()
            job_progress(
                job=job,
                fraction=progress.fraction_done,
                message=f"step {progress.step}, loss {progress.loss:.3f}, "
                f"{progress.images_per_s:.0f} images/s",
            )

    result = pretrain(images, out_dir, config, progress=report)
    if storage.remote():  # so that workers on other machines can embed with it
        storage.save(
            encoder_file_name(project=project, job_id=job.pk, file=ENCODER_FILE),
            out_dir / ENCODER_FILE,
        )
    Project.objects.filter(pk=project.pk).update(encoder_name=ssl_encoder_name(job.pk))
    encoder_cache.clear()
    job.message = f"Encoder pretrained for {result.steps} steps ({result.stopped_by}); re-embedding"
    return {
        "encoder": ssl_encoder_name(job.pk),
        "steps": result.steps,
        "seconds": round(result.elapsed_s, 1),
        "stopped_by": result.stopped_by,
        "first_loss": result.losses[0][1] if result.losses else None,
        "last_loss": result.losses[-1][1] if result.losses else None,
        "image_size": config.image_size,
        "images": len(images),
    }
