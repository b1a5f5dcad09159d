"""Tests of core/services/versions.py, on tiny data; jobs run through `job_execute`."""

import pytest
from django.db.backends.utils import CursorWrapper

from core.models import Job, ModelVersion, Prediction, SuggestionSource
from core.services import versions
from tests.core.loop_helpers import (
    run_jobs,
    serving_model_and_four_new_labels,
)
from tests.factories import ItemFactory, LabelClassFactory, ProjectFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_encoder_cache")]


def test_a_run_that_fails_while_writing_predictions_leaves_no_half_written_version(
    monkeypatch,
):
    """Predictions are written in batches (each its own transaction, so that annotators
    can write between them on SQLite); a failure after the first batch removes the new
    version and what was written of it, and the serving version stays."""
    project, serving = serving_model_and_four_new_labels()
    monkeypatch.setattr(versions, "PREDICTION_BATCH", 3)
    real_executemany = CursorWrapper.executemany
    batches = []

    def second_batch_fails(self, sql, param_list):
        batches.append(len(param_list))
        if len(batches) == 2:
            raise OSError("simulated disk full")
        return real_executemany(self, sql, param_list)

    monkeypatch.setattr(CursorWrapper, "executemany", second_batch_fails)
    (job,) = run_jobs(project, Job.Kind.TRAIN)

    project.refresh_from_db()
    assert job.status == Job.Status.FAILED and "disk full" in job.message
    assert batches == [3, 3]
    assert project.current_model_version == serving
    assert list(ModelVersion.objects.filter(project=project)) == [serving]
    assert Prediction.objects.exclude(model_version=serving).count() == 0


@pytest.mark.dbcompat
def test_predictions_are_written_with_every_field_in_batches(monkeypatch):
    """predictions_write bypasses the ORM (one executemany per batch): what it writes reads
    back through the ORM as bulk_create would have written it, on SQLite and PostgreSQL."""
    project = ProjectFactory()
    a, b = LabelClassFactory(project=project), LabelClassFactory(project=project)
    items = [ItemFactory(project=project) for _ in range(5)]
    version = versions.model_version_create(project=project, class_ids=[a.pk, b.pk])
    monkeypatch.setattr(versions, "PREDICTION_BATCH", 2)
    rows = [
        (item.pk, [0.25, 0.75], b.pk, 0.75, float(i), SuggestionSource.MODEL, i == 0)
        for i, item in enumerate(items[:4])
    ] + [(items[4].pk, [0.9, 0.1], None, 0.0, -1.5, SuggestionSource.ZERO_SHOT, False)]

    versions.predictions_write(version, rows)

    written = {p.item_id: p for p in Prediction.objects.filter(model_version=version)}
    assert set(written) == {item.pk for item in items}
    first, last = written[items[0].pk], written[items[4].pk]
    assert first.probabilities == [0.25, 0.75] and first.predicted_class == b
    assert (first.confidence, first.acquisition_score, first.source) == (0.75, 0.0, "model")
    assert last.predicted_class is None and last.acquisition_score == -1.5
    assert last.source == SuggestionSource.ZERO_SHOT and last.probabilities == [0.9, 0.1]
    assert all(p.item_open for p in written.values())
    assert [written[item.pk].pseudo_labeled for item in items] == [True] + [False] * 4
