"""Encoder choice by measurement: the `auto` encoder setting.

As labels arrive (core/services/jobs.py requests a comparison at 20 labels, then each time
the labels have doubled), this job embeds the *labeled* items with every available encoder
(the registry's compared entries, this project's in-domain SSL checkpoints, pixels), caching
the vectors in each encoder's store, and measures k-NN and linear-probe accuracy on the labels
by cross-validation (models_ml/probes.py). When another encoder beats the one in use by a clear
margin the project switches to it: its pool is embedded (the labeled items are already) and
the usual loop follows (embedding → training). Every comparison is kept on the project and in
the job's metrics; the dashboard shows the latest.
"""

import time

import numpy as np
from django.db import transaction
from django.utils import timezone

from core import storage
from core.events import project_event_send
from core.models import Item, Job, Project, ssl_encoder_name
from core.selectors.common import embedding_store, encoders_root
from core.services.embeddings import embed_with_oom_retry, encoder_cache, item_image_sources
from core.services.jobs import JobSkipped, job_progress
from core.services.training import training_labels
from models_ml.encoders import WeightsUnavailable, compared_encoders
from models_ml.probes import SWITCH_MARGIN, ProbeScores, encoder_choose, probe_scores
from models_ml.ssl import ENCODER_FILE


def project_ssl_encoders(*, project: Project) -> list[str]:
    """In-domain SSL encoders pretrained for this project (`ssl:job-<id>`), newest first."""
    if storage.remote():  # those pretrained on any machine
        try:
            folders, _ = storage.artifacts().listdir(f"encoders/project-{project.pk}")
        except FileNotFoundError:
            folders = []
        job_ids = sorted((int(f.removeprefix("job-")) for f in folders), reverse=True)
        return [ssl_encoder_name(job_id) for job_id in job_ids]
    root = encoders_root(project=project)
    found = root.glob(f"job-*/{ENCODER_FILE}") if root.is_dir() else []
    newest_first = sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)
    return [ssl_encoder_name(int(p.parent.name.removeprefix("job-"))) for p in newest_first]


def encoder_candidates(*, project: Project) -> list[str]:
    """What `auto` compares: the registry's compared encoders, the project's SSL encoder."""
    return list(
        dict.fromkeys(
            compared_encoders()
            + project_ssl_encoders(project=project)[:1]
            + [name for name in [project.encoder_used] if name]
        )
    )


def encoder_choice_run(job: Job) -> dict:
    """Job body: compare the candidates on the labels so far and switch when one wins."""
    project = Project.objects.get(pk=job.project_id)
    item_ids, labels = training_labels(project=project)
    if len(np.unique(labels)) < 2:
        raise JobSkipped("Comparing encoders needs labels of at least two classes.")
    path_of = dict(Item.objects.filter(pk__in=item_ids.tolist()).values_list("pk", "image"))
    label_of = dict(zip(item_ids.tolist(), labels.tolist(), strict=True))
    candidates = encoder_candidates(project=project)
    scores: dict[str, ProbeScores] = {}
    rows = []
    for index, name in enumerate(candidates):
        job_progress(
            job=job,
            fraction=index / len(candidates),
            message=f"Measuring {name} on {len(item_ids)} labels",
        )
        started = time.perf_counter()
        try:
            ids, X = _labeled_vectors(project, name, path_of)
        except (WeightsUnavailable, OSError, RuntimeError, ValueError, KeyError) as error:
            reason = error.tried[-1] if isinstance(error, WeightsUnavailable) else str(error)
            rows.append({"encoder": name, "available": False, "reason": reason[:300]})
            continue
        y = np.array([label_of[i] for i in ids.tolist()], dtype=np.int64)
        scores[name] = probe_scores(X, y, random_state=project.seed)
        rows.append(
            {
                "encoder": name,
                "available": True,
                **scores[name].as_dict(),
                "seconds": round(time.perf_counter() - started, 2),
            }
        )
    current = project.encoder_used or project.encoder_chosen
    chosen = encoder_choose(scores, current)
    for row in rows:
        row["chosen"] = row["encoder"] == chosen
    comparison = {
        "labels": len(item_ids),
        "rows": rows,
        "chosen": chosen,
        "previous": current,
        "switched": chosen != current,
        "margin": SWITCH_MARGIN,
        "at": timezone.now().isoformat(timespec="seconds"),
    }
    with transaction.atomic():
        Project.objects.filter(pk=project.pk).update(
            encoder_chosen=chosen, encoder_comparison=comparison
        )
        project_event_send(project_id=project.pk, event="encoder", payload={"encoder": chosen})
    job.message = (
        f"{chosen} fits the labels best; switching to it" if chosen != current else
        f"{current} stays: no encoder beats it clearly (by {SWITCH_MARGIN:.0%}, beyond noise)"
    )  # fmt: skip
    return comparison


def _labeled_vectors(
    project: Project, name: str, path_of: dict[int, str]
) -> tuple[np.ndarray, np.ndarray]:
    """Vectors of the labeled items under encoder `name`, embedding those it lacks (kept in
    that encoder's store, so a switch only embeds the rest of the pool)."""
    encoder = encoder_cache.get(name, project=project)
    store = embedding_store(project=project, key=encoder.key, dim=encoder.embed_dim)
    todo = store.missing(list(path_of))
    if todo:
        result, _ = embed_with_oom_retry(
            encoder, item_image_sources([(pk, path_of[pk]) for pk in todo]), todo, 64
        )
        store.append(result.ids, result.vectors)
    present = np.array(list(path_of), dtype=np.int64)
    present = present[store.contains(present.tolist())]
    return present, store.get(present.tolist()).astype(np.float32)
