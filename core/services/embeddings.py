"""Embedding a project's images with its encoder, into the on-disk store the worker reads.

Runs in the worker only (it imports torch through models_ml). The configured encoder is
used when its weights can be found; otherwise the `pixels` baseline keeps the loop running
and `Project.encoder_notice` tells the admin which model is missing, where we looked and
how to provide it (or to pretrain one on the project's own images).
"""

import io
import logging
import threading
import time
from dataclasses import dataclass

import numpy as np
import torch
from django.core.files.storage import default_storage
from PIL import Image

from core.models import Item, Job, Project
from core.selectors import embedding_store, training_is_possible
from core.services.jobs import (
    JobSkipped,
    job_progress,
    training_request,
    zero_shot_request_if_useful,
)
from models_ml.embed import embed_images
from models_ml.encoders import Encoder, WeightsUnavailable, load_encoder, safe_key

logger = logging.getLogger(__name__)

FALLBACK_ENCODER = "pixels"
EMBED_CHUNK = 2048  # items per embed_images call: bounds memory, gives progress and appends
_FAILURE_RETRY_S = 600


@dataclass(frozen=True)
class ResolvedEncoder:
    encoder: Encoder
    notice: dict  # empty when the configured encoder was loaded


class _EncoderCache:
    """Loaded encoders by name for the life of the worker process (loading a ViT takes
    seconds), and recent weight failures so an offline hub is not retried on every job."""

    def __init__(self, size: int = 2):
        self.size = size
        self._lock = threading.Lock()
        self._encoders: dict[str, Encoder] = {}
        self._failures: dict[str, tuple[float, WeightsUnavailable]] = {}

    def get(self, name: str) -> Encoder:
        with self._lock:
            if name in self._encoders:
                return self._encoders[name]
            failed = self._failures.get(name)
            if failed and time.monotonic() - failed[0] < _FAILURE_RETRY_S:
                raise failed[1]
            try:
                encoder = load_encoder(name)
            except WeightsUnavailable as error:
                self._failures[name] = (time.monotonic(), error)
                raise
            self._failures.pop(name, None)
            while len(self._encoders) >= self.size:
                self._encoders.pop(next(iter(self._encoders)))
            self._encoders[name] = encoder
            return encoder

    def clear(self) -> None:
        with self._lock:
            self._encoders.clear()
            self._failures.clear()


encoder_cache = _EncoderCache()


def project_encoder_resolve(*, project: Project) -> ResolvedEncoder:
    """The project's encoder, or the pixels baseline with a notice saying why."""
    try:
        return ResolvedEncoder(encoder_cache.get(project.encoder_name), {})
    except WeightsUnavailable as error:
        notice = {
            "model": error.model,
            "tried": error.tried,
            "hint": error.hint,
            "fallback": FALLBACK_ENCODER,
        }
    except (OSError, RuntimeError, ValueError, KeyError) as error:  # unknown name, bad file
        notice = {
            "model": project.encoder_name,
            "tried": [],
            "hint": f"{type(error).__name__}: {error}",
            "fallback": FALLBACK_ENCODER,
        }
    return ResolvedEncoder(encoder_cache.get(FALLBACK_ENCODER), notice)


def item_image_sources(items: list[tuple[int, str]]) -> list:
    """File paths for local storage; decoded images for storages without paths (S3)."""
    sources = []
    for _, name in items:
        try:
            sources.append(default_storage.path(name))
        except NotImplementedError:
            with default_storage.open(name, "rb") as f:
                sources.append(Image.open(io.BytesIO(f.read())).convert("RGB"))
    return sources


def items_embed_run(job: Job) -> dict:
    """Job body: embed every item of the project that has no vector for its encoder yet."""
    project = job.project
    job_progress(job=job, fraction=0.0, message=f"Loading encoder {project.encoder_name}")
    resolved = project_encoder_resolve(project=project)
    encoder = resolved.encoder
    key = safe_key(encoder.key)
    store = embedding_store(project=project, key=key, dim=encoder.embed_dim)
    items = list(Item.objects.filter(project=project).order_by("pk").values_list("pk", "image"))
    missing = set(store.missing([pk for pk, _ in items]))
    todo = [(pk, name) for pk, name in items if pk in missing]
    started, failed = time.perf_counter(), {}
    batch_size = 128 if encoder.device.type == "cpu" else 256
    for start in range(0, len(todo), EMBED_CHUNK):
        chunk = todo[start : start + EMBED_CHUNK]
        result, batch_size = embed_with_oom_retry(
            encoder, item_image_sources(chunk), [pk for pk, _ in chunk], batch_size
        )
        store.append(result.ids, result.vectors)
        failed.update(result.failed)
        done = start + len(chunk)
        job_progress(
            job=job, fraction=done / len(todo), message=f"Embedded {done} of {len(todo)} images"
        )
    seconds = time.perf_counter() - started
    Project.objects.filter(pk=project.pk).update(
        embedding_key=key, embedding_dim=encoder.embed_dim, encoder_notice=resolved.notice
    )
    project.embedding_key, project.embedding_dim = key, encoder.embed_dim
    project.encoder_notice = resolved.notice
    job.message = f"{len(todo) - len(failed)} images embedded with {encoder.name}" + (
        f" (fallback: {resolved.notice['model']} has no weights here)" if resolved.notice else ""
    )
    _after_embedding(project=project, newly_embedded=len(todo) - len(failed))
    return {
        "encoder": encoder.name,
        "encoder_key": key,
        "device": str(encoder.device),
        "embedded": len(todo) - len(failed),
        "failed": {str(k): v for k, v in list(failed.items())[:50]},
        "seconds": round(seconds, 3),
        "images_per_s": round((len(todo) - len(failed)) / seconds, 1) if seconds else None,
        "batch_size": batch_size,
    }


def embed_with_oom_retry(encoder: Encoder, sources: list, ids: list[int], batch_size: int):
    """`embed_images`, halving the batch on a GPU out-of-memory error (down to 1, then the
    error propagates and the job fails cleanly). Returns the result and the batch that fit."""
    while True:
        try:
            return embed_images(encoder, sources, ids, batch_size=batch_size), batch_size
        except torch.OutOfMemoryError:
            if batch_size == 1:
                raise
            batch_size //= 2
            logger.warning("GPU out of memory while embedding; retrying with batch %d", batch_size)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()


def _after_embedding(*, project: Project, newly_embedded: int) -> None:
    """New vectors mean a new cold-start order, new zero-shot suggestions and a rescore."""
    from core.services.cold_start import cold_start_write  # it imports training, which imports us

    if newly_embedded:
        cold_start_write(project=project)
        zero_shot_request_if_useful(project=project, reason="new images embedded")
    if newly_embedded and training_is_possible(project=project):
        training_request(project=project, reason="new images embedded")


def embedded_vectors(*, project: Project, item_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(ids that have a vector, their vectors) in the order of `item_ids`."""
    store = embedding_store(project=project)
    if store is None:
        raise JobSkipped("No embeddings yet: the embedding job has not run for this project.")
    present = store.contains(item_ids)
    ids = np.asarray(item_ids, dtype=np.int64)[present]
    return ids, store.get(ids).astype(np.float32)
