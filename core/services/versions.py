"""Model versions and their predictions: written aside, then switched to in one step.

Every writer of a version (training runs, zero-shot suggestions, the cold-start order) writes
its predictions under a new, not yet current ModelVersion and then points the project at it
with `version_switch`, so the queue never reads a half-written version and a run that fails
before the switch changes nothing an annotator sees.
"""

import numpy as np
from django.db import connection, transaction
from django.db.models import Max

from core.events import project_event_send
from core.models import Item, ModelVersion, Prediction, Project
from core.selectors.common import embedding_store
from models_ml.store import RowView

PREDICTION_BATCH = 2000
KEEP_PREDICTION_VERSIONS = 2  # the current version and the one before (for comparisons)


def pool_vectors(*, project: Project) -> tuple[np.ndarray, RowView, np.ndarray]:
    """Every embedded item of the project: ids, their vectors (a `RowView` of the store's
    memory map: indexing reads float32 rows, nothing is copied whole) and whether each is
    done."""
    store = embedding_store(project=project)
    done = dict(Item.objects.filter(project=project).values_list("pk", "is_done"))
    stored = store.ids()
    kept = np.fromiter((i in done for i in stored.tolist()), bool, len(stored))
    ids = stored[kept]
    vectors = RowView(store.vectors(), None if kept.all() else np.flatnonzero(kept))
    is_done = np.fromiter((done[i] for i in ids.tolist()), bool, len(ids))
    return ids, vectors, is_done


PredictionRow = tuple[int, list[float], int | None, float, float, str, bool]
"""item id, probabilities, predicted class id, confidence, acquisition score, source,
pseudo-labeled"""


def predictions_write(version: ModelVersion, rows: list[PredictionRow]) -> None:
    """Write a new (not yet current) version's predictions; on failure delete the version.

    One transaction per PREDICTION_BATCH rows: on SQLite a transaction holds the database's
    one write lock, and a single one over the pool kept every annotator's answer waiting
    (1.1 s at 10,000 items, bench/loop_latency.py). The version is not current until
    version_switch, so the queue never sees it half written. Rows go in through one
    executemany per batch, not bulk_create: no model instances, a quarter of the time.
    """
    meta = Prediction._meta
    fields = [
        meta.get_field(name)
        for name in (
            "item",
            "model_version",
            "probabilities",
            "predicted_class",
            "confidence",
            "acquisition_score",
            "source",
            "pseudo_labeled",
            "item_open",
        )
    ]
    quote = connection.ops.quote_name
    sql = "INSERT INTO {} ({}) VALUES ({})".format(
        quote(meta.db_table),
        ", ".join(quote(field.column) for field in fields),
        ", ".join(["%s"] * len(fields)),
    )
    probabilities = meta.get_field("probabilities")  # JSON: the backend's own encoding
    try:
        for start in range(0, len(rows), PREDICTION_BATCH):
            params = [
                (
                    item,
                    version.pk,
                    probabilities.get_db_prep_save(probs, connection),
                    cls,
                    confidence,
                    score,
                    str(source),  # a TextChoices member is a str subclass: pass the plain value
                    bool(pseudo),
                    True,
                )
                for item, probs, cls, confidence, score, source, pseudo in rows[
                    start : start + PREDICTION_BATCH
                ]
            ]
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.executemany(sql, params)
    except BaseException:
        version.delete()  # and the rows written so far; the serving version stays
        raise


def model_version_create(*, project: Project, **fields) -> ModelVersion:
    """A new ModelVersion numbered after the project's last one (not yet current)."""
    with transaction.atomic():
        number = (
            ModelVersion.objects.filter(project=project).aggregate(n=Max("number"))["n"] or 0
        ) + 1
        return ModelVersion.objects.create(project=project, number=number, **fields)


def version_switch(*, project: Project, version: ModelVersion) -> None:
    """Point the queue at `version` and tell every open page; drop old versions' predictions."""
    with transaction.atomic():
        Project.objects.filter(pk=project.pk).update(current_model_version=version)
        project.current_model_version = version
        # Items answered since the version was written leave its queue index (from now on
        # each answer does this itself: core/services/queue.py).
        Prediction.objects.filter(model_version=version, item_open=True, item__is_done=True).update(
            item_open=False
        )
        project_event_send(
            project_id=project.pk,
            event="model",
            payload={
                "version": version.number,
                "kind": version.kind,
                "labels": version.labels_count,
                "estimated_accuracy": version.estimated_accuracy,
            },
        )
    keep = list(
        ModelVersion.objects.filter(project=project)
        .order_by("-number")
        .values_list("pk", flat=True)[:KEEP_PREDICTION_VERSIONS]
    )
    zero_shot = ModelVersion.objects.filter(project=project, kind=ModelVersion.Kind.ZERO_SHOT)
    keep += list(zero_shot.order_by("-number").values_list("pk", flat=True)[:1])
    Prediction.objects.filter(model_version__project=project).exclude(
        model_version_id__in=keep
    ).delete()
