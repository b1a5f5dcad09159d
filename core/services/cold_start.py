"""The queue's order before any model is trained: random, or TypiClust on the embeddings.

With `Project.cold_start = typiclust`, once the images are embedded and while no trained
model exists, the first `retrain_every` images asked are the most typical image of each of
that many k-means clusters (Hacohen et al. 2022): the first labels cover the data instead
of whatever random order brings, which matters most when the budget is small. They are
written as a ModelVersion of kind cold_start holding only those items' scores (no class
suggestions); everything after them keeps the stored random order. The first training run
replaces it. CLIP zero-shot suggestions, when present, use the same order (zero_shot.py).
"""

import numpy as np
from django.db import transaction

from core.models import ColdStart, ModelVersion, Prediction, Project
from core.services.versions import model_version_create, pool_vectors, version_switch
from models_ml.strategies import select_batch


def cold_start_order(*, project: Project) -> list[int]:
    """Item ids to ask first, best first; empty for a random cold start."""
    if project.cold_start != ColdStart.TYPICLUST:
        return []
    pool_ids, vectors, is_done = pool_vectors(project=project)
    open_rows = np.flatnonzero(~is_done)
    if not len(open_rows):
        return []
    chosen = select_batch(
        "typiclust",
        min(project.retrain_every, len(open_rows)),
        embeddings=vectors.take(open_rows),
        labeled_embeddings=vectors.take(np.flatnonzero(is_done)) if is_done.any() else None,
        seed=project.seed,
    )
    return pool_ids[open_rows[chosen]].tolist()


def first_batch_scores(order: list[int]) -> dict[int, float]:
    """Acquisition scores in (1, 2] for `order`, highest first: above every other score."""
    return {item_id: 1.0 + (len(order) - rank) / len(order) for rank, item_id in enumerate(order)}


def cold_start_write(*, project: Project) -> ModelVersion | None:
    """Write and switch to a cold-start version when the project wants one and has no model."""
    if project.cold_start != ColdStart.TYPICLUST or not project.embedding_key:
        return None
    if ModelVersion.objects.filter(project=project, kind=ModelVersion.Kind.MODEL).exists():
        return None
    scores = first_batch_scores(cold_start_order(project=project))
    if not scores:
        return None
    with transaction.atomic():
        version = model_version_create(
            project=project,
            kind=ModelVersion.Kind.COLD_START,
            encoder_key=project.embedding_key,
            recipe={"cold_start": project.cold_start, "batch": len(scores), "seed": project.seed},
        )
        Prediction.objects.bulk_create(
            Prediction(
                item_id=item_id,
                model_version=version,
                probabilities=[],
                predicted_class=None,
                confidence=0.0,
                acquisition_score=score,
            )
            for item_id, score in scores.items()
        )
    current = project.current_model_version
    if current is None or current.kind == ModelVersion.Kind.COLD_START:
        version_switch(project=project, version=version)
    return version
