"""CLIP zero-shot suggestions: the prefill before any model is trained.

A zero-shot run embeds the project's images with CLIP's image tower (its own embedding
store, keyed by the CLIP model), scores them against the class names put into the prompt
ensemble and writes a ModelVersion of kind zero_shot. It becomes the version the queue
reads only while no trained model exists; afterwards each training run compares the two on
the labeled items and keeps whichever suggests better (core/services/training.py).

Without CLIP weights the run is skipped and `Project.zero_shot_notice` says why; the first
training run then supplies suggestions from the labels (a prototype head on the SSL
embeddings: the nearest-class-mean fallback).
"""

import threading

import numpy as np
from django.conf import settings

from core.models import Item, Job, ModelVersion, Project, SuggestionSource
from core.services.cold_start import cold_start_order, first_batch_scores
from core.services.embeddings import embed_with_oom_retry, embedding_store, item_image_sources
from core.services.jobs import JobSkipped, job_progress
from core.services.versions import model_version_create, predictions_write, version_switch
from models_ml.encoders import WeightsUnavailable
from models_ml.strategies import probability_scores
from models_ml.zero_shot import DEFAULT_PROMPT_SET, ClipModel, load_clip, zero_shot_probabilities

_clip_lock = threading.Lock()
_clip_loaded: dict[tuple[str, str], ClipModel] = {}


def clip_model_load(model_name: str, pretrained: str) -> ClipModel:
    """The CLIP model, loaded once per worker process."""
    with _clip_lock:
        key = (model_name, pretrained)
        if key not in _clip_loaded:
            _clip_loaded.clear()  # one CLIP at a time: they are large
            _clip_loaded[key] = load_clip(model_name, pretrained)
        return _clip_loaded[key]


def zero_shot_run(job: Job) -> dict:
    """Job body: CLIP zero-shot class probabilities for every image of the project."""
    project = Project.objects.get(pk=job.project_id)
    model_name = settings.ANNOTATOR_CLIP_MODEL
    pretrained = settings.ANNOTATOR_CLIP_PRETRAINED
    classes = list(project.classes.values_list("pk", "name"))
    if not model_name:
        raise JobSkipped("Zero-shot is off (ANNOTATOR_CLIP_MODEL is empty).")
    if len(classes) < 2:
        raise JobSkipped("Zero-shot needs at least two classes.")
    job_progress(job=job, fraction=0.0, message=f"Loading CLIP {model_name} ({pretrained})")
    try:
        clip = clip_model_load(model_name, pretrained)
    except WeightsUnavailable as error:
        notice = {"model": error.model, "tried": error.tried, "hint": error.hint}
        Project.objects.filter(pk=project.pk).update(zero_shot_notice=notice)
        raise JobSkipped(
            f"No CLIP weights for {error.model}: suggestions will come from the model trained "
            "on your labels instead (see the project page for how to provide CLIP weights)."
        ) from error
    Project.objects.filter(pk=project.pk).update(zero_shot_notice={})

    encoder = clip.image_encoder
    store = embedding_store(project=project, key=clip.key, dim=encoder.embed_dim)
    items = list(Item.objects.filter(project=project).order_by("pk").values_list("pk", "image"))
    missing = set(store.missing([pk for pk, _ in items]))
    todo = [(pk, name) for pk, name in items if pk in missing]
    batch_size = 64
    for start in range(0, len(todo), 2048):
        chunk = todo[start : start + 2048]
        result, batch_size = embed_with_oom_retry(
            encoder, item_image_sources(chunk), [pk for pk, _ in chunk], batch_size
        )
        store.append(result.ids, result.vectors)
        job_progress(
            job=job,
            fraction=0.8 * (start + len(chunk)) / len(todo),
            message=f"CLIP-embedded {start + len(chunk)} of {len(todo)} images",
        )
    known = {pk for pk, _ in items}
    ids = np.array([i for i in store.ids().tolist() if i in known], dtype=np.int64)
    if not len(ids):
        raise JobSkipped("No images to suggest classes for yet.")
    class_ids = np.array([pk for pk, _ in classes], dtype=np.int64)
    class_vectors = clip.class_embeddings([name for _, name in classes], DEFAULT_PROMPT_SET)
    probs = zero_shot_probabilities(
        store.get(ids).astype(np.float32), class_vectors, clip.logit_scale
    )
    scores = probability_scores(project.strategy, probs)
    first = first_batch_scores(cold_start_order(project=project))
    if first:  # the cold-start batch first, then CLIP's least certain
        scores = 0.999 * scores / max(float(scores.max()), 1e-12)
        for row, item_id in enumerate(ids.tolist()):
            scores[row] = first.get(item_id, scores[row])
    version = _zero_shot_version_write(
        project=project,
        ids=ids,
        class_ids=class_ids,
        probs=probs,
        scores=scores,
        recipe={
            "clip_model": model_name,
            "pretrained": pretrained,
            "weights": encoder.weights_source,
            "prompt_set": DEFAULT_PROMPT_SET,
            "classes": [name for _, name in classes],
            "job": job.pk,
        },
        encoder_key=clip.key,
    )
    current = project.current_model_version
    if current is None or current.kind != ModelVersion.Kind.MODEL:
        version_switch(project=project, version=version)
    job.model_version = version
    job.message = f"Zero-shot suggestions v{version.number} for {len(ids)} images"
    return {"images": int(len(ids)), "clip_model": model_name, "pretrained": pretrained}


def _zero_shot_version_write(
    *, project, ids, class_ids, probs, scores, recipe, encoder_key
) -> ModelVersion:
    version = model_version_create(
        project=project,
        kind=ModelVersion.Kind.ZERO_SHOT,
        encoder_key=encoder_key,
        recipe=recipe,
        class_ids=class_ids.tolist(),
    )
    best = probs.argmax(axis=1)
    rows = [
        (
            item_id,
            np.round(probs[i], 4).tolist(),
            int(class_ids[best[i]]),
            float(probs[i, best[i]]),
            float(scores[i]),
            SuggestionSource.ZERO_SHOT,
            False,  # zero-shot confidences are not calibrated: never a pseudo-label
        )
        for i, item_id in enumerate(ids.tolist())
    ]
    predictions_write(version, rows)
    return version
