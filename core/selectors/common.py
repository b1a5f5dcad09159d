"""Reads every part of the app needs: roles, an item's label from several answers (and how
reliable each annotator is), whether a model can be trained, and where a project's embeddings
and encoders live.

Every function takes the project, already scoped to the user by the caller."""

import math
from collections import Counter
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from core import storage
from core.models import (
    Annotation,
    Membership,
    Project,
)
from models_ml.aggregation import dawid_skene
from models_ml.store import EmbeddingStore, safe_key

DEFAULT_ANNOTATOR_ACCURACY = 2 / 3  # the Dawid-Skene prior's mean, for an unmeasured annotator


def annotator_accuracy(*, project: Project) -> dict[int, float]:
    """Each annotator's measured chance of being right (one-coin Dawid-Skene over the
    project's current answers on images answered more than once; models_ml/aggregation.py).
    Annotators without such overlaps are left out (unmeasured)."""
    rows = list(
        Annotation.objects.filter(item__project=project, is_current=True).values_list(
            "item_id", "annotator_id", "label_class_id"
        )
    )
    counts = Counter(item_id for item_id, _, _ in rows)
    rows = [r for r in rows if counts[r[0]] > 1]
    if not rows:
        return {}
    items = {i: n for n, i in enumerate(sorted({r[0] for r in rows}))}
    people = {a: n for n, a in enumerate(sorted({r[1] for r in rows}))}
    classes = {c: n for n, c in enumerate(sorted({r[2] for r in rows}))}
    result = dawid_skene(
        [items[i] for i, _, _ in rows],
        [people[a] for _, a, _ in rows],
        [classes[c] for _, _, c in rows],
        n_items=len(items),
        n_annotators=len(people),
        n_classes=max(project.classes.count(), len(classes), 2),
    )
    return {a: round(float(result.accuracy[n]), 4) for a, n in people.items()}


def consensus_class(
    answers_newest_first: list[tuple[int, int]],
    *,
    accuracy: dict[int, float],
    n_classes: int,
) -> int:
    """An item's label from its current answers (annotator id, class id), newest first: the
    class with the highest Dawid-Skene posterior given each annotator's measured accuracy
    (an unmeasured one counts as DEFAULT_ANNOTATOR_ACCURACY), so one reliable annotator
    outweighs two unreliable ones; with equal accuracies this is the majority. A tie goes to
    the most recent answer. Training and export both use this rule."""
    k = max(n_classes, 2)
    score: dict[int, float] = {}
    for annotator_id, class_id in answers_newest_first:
        p = min(max(accuracy.get(annotator_id, DEFAULT_ANNOTATOR_ACCURACY), 1e-3), 1 - 1e-3)
        score[class_id] = score.get(class_id, 0.0) + math.log(p * (k - 1) / (1 - p))
    best = max(score.values())
    return next(c for _, c in answers_newest_first if score[c] >= best - 1e-9)


def membership_role(*, project: Project, user: AbstractBaseUser) -> str | None:
    return (
        Membership.objects.filter(project=project, user=user).values_list("role", flat=True).first()
    )


def training_is_possible(*, project: Project) -> bool:
    """A head can be fitted: the labels so far cover at least two classes."""
    return (
        Annotation.objects.filter(item__project=project, is_current=True)
        .values("label_class")
        .distinct()
        .count()
        >= 2
    )


def embedding_store(*, project: Project, key: str | None = None, dim: int | None = None):
    """The store of `key` (default: the one the project's embeddings are in), or None.
    numpy only: pages may read it (the worker writes it)."""
    key = key or project.embedding_key
    dim = dim or project.embedding_dim
    if not key or not dim:
        return None
    return EmbeddingStore(
        embeddings_root(project=project), key, dim, mirror=embedding_mirror(project, key)
    )


def embedding_mirror(project: Project, key: str):
    """Where the store's segments are shared with other machines: the bucket, when the
    artifacts storage is one (None for a local folder: the store itself is the truth)."""
    if not storage.remote():
        return None
    return storage.BucketMirror(f"embeddings/project-{project.pk}/{safe_key(key)}")


def embeddings_root(*, project: Project) -> Path:
    return Path(settings.ANNOTATOR_EMBEDDINGS_DIR) / f"project-{project.pk}"


def encoders_root(*, project: Project) -> Path:
    """Where the project's in-domain encoders are pretrained, one folder per job (on this
    machine; with a bucket, each encoder file is also shared under `encoder_name`)."""
    return Path(settings.ANNOTATOR_ENCODERS_DIR) / f"project-{project.pk}"


def encoder_file_name(*, project: Project, job_id: int, file: str) -> str:
    """The name of a pretrained encoder's file in the artifacts storage."""
    return f"encoders/project-{project.pk}/job-{job_id}/{file}"
