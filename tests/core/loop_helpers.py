"""Helpers for the closed-loop tests: a project with real, learnable images."""

import numpy as np
from PIL import Image

from core.models import Item, Job, LabelClass, Project
from core.services.imports import ImportSource, items_import
from core.services.jobs import job_execute, job_runners
from core.services.queue import annotation_submit, item_lease_next
from tests.factories import project_with_members
from tests.images import encode


def colour_image(class_index: int, seed: int, size: int = 16) -> bytes:
    """Class 0 is reddish, class 1 bluish, class 2 greenish, with noise: easy for pixels."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 90, (size, size, 3), dtype=np.uint8)
    pixels[..., class_index % 3] += 150
    return encode(Image.fromarray(pixels))


def loop_project(*, images_per_class: int = 12, classes=("red", "blue"), **settings):
    """A project (pixels encoder) with imported images; returns (project, admin, annotator,
    truth) where truth maps item id → the LabelClass it really is."""
    settings.setdefault("encoder_name", "pixels")
    project, admin, members = project_with_members(classes=classes, annotators=1, **settings)
    sources = [
        ImportSource(f"{c}-{i}.png", lambda c=c, i=i: colour_image(c, 1000 * c + i))
        for i in range(images_per_class)
        for c in range(len(classes))
    ]
    report = items_import(project=project, sources=sources)
    assert not report.rejected
    by_name = {lc.name: lc for lc in LabelClass.objects.filter(project=project)}
    truth = {}
    for item in project.items.all():
        class_index, number = map(int, item.original_name.removesuffix(".png").split("-"))
        truth[item.pk] = by_name[classes[class_index]]
        # A queue order that alternates the classes, so any first few labels cover them all.
        Item.objects.filter(pk=item.pk).update(random_key=number * len(classes) + class_index)
    return project, admin, members[0], truth


def run_jobs(project: Project, kind: str | None = None) -> list[Job]:
    """Run every queued job of the project (of `kind`), in order, like a worker would."""
    ran = []
    while True:
        queued = Job.objects.filter(project=project, status=Job.Status.QUEUED)
        if kind:
            queued = queued.filter(kind=kind)
        job = queued.order_by("id").first()
        if job is None:
            return ran
        job_execute(job_id=job.pk, runners=job_runners())
        job.refresh_from_db()
        ran.append(job)


def label_items(project: Project, user, truth: dict, count: int) -> list[int]:
    """Lease and answer `count` items correctly through the queue services."""
    labeled = []
    for _ in range(count):
        result = item_lease_next(project=project, user=user)
        assert result is not None
        item = result.lease.item
        annotation_submit(item=item, user=user, label_class=truth[item.pk])
        labeled.append(item.pk)
    return labeled


def trained_loop_project(labels: int):
    """A `loop_project` (retraining every `labels`) embedded, given `labels` correct labels
    and serving the model trained on them; returns (project, annotator, truth)."""
    project, _, annotator, truth = loop_project(retrain_every=labels)
    run_jobs(project, Job.Kind.EMBED)
    label_items(project, annotator, truth, labels)
    run_jobs(project, Job.Kind.TRAIN)
    project.refresh_from_db()
    return project, annotator, truth


def serving_model_and_four_new_labels():
    """A project serving a model trained on 4 labels, with 4 more labels since: enough for
    the next training run."""
    project, annotator, truth = trained_loop_project(4)
    serving = project.current_model_version
    label_items(project, annotator, truth, 4)
    return project, serving
