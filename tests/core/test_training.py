"""Tests of core/services/training.py, on tiny data; jobs run through `job_execute`."""

import numpy as np
import pytest
from django.db.models import Max

from core.models import Annotation, Job, ModelVersion, Prediction, Project, SuggestionSource
from core.selectors.queue import suggestion_for_item
from core.services import training
from core.services.loop import training_request
from core.services.queue import annotation_submit, item_lease_next
from models_ml.confidence import MIN_CALIBRATION_AUDITS
from tests.core.loop_helpers import (
    label_items,
    loop_project,
    run_jobs,
    serving_model_and_four_new_labels,
    trained_loop_project,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_encoder_cache")]


def test_training_run_switches_the_queue_to_a_new_version_with_suggestions():
    project, _, annotator, truth = loop_project(retrain_every=12)
    run_jobs(project, Job.Kind.EMBED)
    label_items(project, annotator, truth, 12)
    assert Job.objects.filter(project=project, kind=Job.Kind.TRAIN, status="queued").count() == 1

    (job,) = run_jobs(project, Job.Kind.TRAIN)

    project.refresh_from_db()
    version = project.current_model_version
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.model_version == version and version.number == 1 and version.labels_count == 12
    assert job.metrics["head"] == version.recipe["head"] == "linear"  # 6 labels per class
    assert version.estimated_accuracy is not None
    assert set(job.metrics["seconds"]) >= {"fit", "predict", "score", "write_predictions"}
    predictions = Prediction.objects.filter(model_version=version)
    assert predictions.count() == project.items.count()
    # The model learned the colours: its suggestions on the unlabeled items are right.
    unlabeled = predictions.filter(item__is_done=False)
    right = sum(p.predicted_class_id == truth[p.item_id].pk for p in unlabeled)
    assert right / unlabeled.count() >= 0.9
    # The queue serves the most uncertain open item first, with this version's suggestion.
    best = unlabeled.order_by("-acquisition_score", "item_id").first()
    lease = item_lease_next(project=project, user=annotator).lease
    assert lease.item_id == best.item_id
    suggestion = suggestion_for_item(item=lease.item, project=project)
    assert suggestion.model_version == version and suggestion.source == SuggestionSource.MODEL


def test_crashed_run_fails_keeps_the_previous_version_and_every_label(monkeypatch):
    project, serving = serving_model_and_four_new_labels()
    labels_before = Annotation.objects.filter(item__project=project).count()

    def explode(**kwargs):
        raise MemoryError("simulated crash while writing predictions")

    monkeypatch.setattr(training, "_version_write", explode)
    (job,) = run_jobs(project, Job.Kind.TRAIN)

    project.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "simulated crash" in job.message and "MemoryError" in job.error
    assert project.current_model_version == serving
    assert Annotation.objects.filter(item__project=project).count() == labels_before == 8
    assert Prediction.objects.filter(model_version=serving).exists()


def test_labels_that_arrive_during_a_run_are_counted_by_the_next(monkeypatch):
    project, _, annotator, truth = loop_project(retrain_every=100)
    run_jobs(project, Job.Kind.EMBED)
    label_items(project, annotator, truth, 6)
    real_fit = training.project_head_fit

    def fit_while_someone_labels(*args, **kwargs):
        label_items(project, annotator, truth, 1)  # a colleague answers mid-run
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(training, "project_head_fit", fit_while_someone_labels)
    training_request(project=project, reason="test")
    run_jobs(project, Job.Kind.TRAIN)
    monkeypatch.setattr(training, "project_head_fit", real_fit)
    training_request(project=project, reason="test")
    run_jobs(project, Job.Kind.TRAIN)

    counts = list(
        ModelVersion.objects.filter(project=project)
        .order_by("number")
        .values_list("labels_count", flat=True)
    )
    assert counts == [6, 7]
    assert Annotation.objects.filter(item__project=project).count() == 7


def test_a_run_with_one_class_labeled_is_skipped_not_failed():
    project, _, annotator, truth = loop_project(images_per_class=3)
    run_jobs(project, Job.Kind.EMBED)
    red = project.classes.get(name="red")
    item = next(pk for pk, cls in truth.items() if cls == red)
    lease = None
    while lease is None or lease.item_id != item:
        lease = item_lease_next(project=project, user=annotator).lease
        if lease.item_id != item:
            annotation_submit(item=lease.item, user=annotator, label_class=red)
    training_request(project=project, reason="test")
    (job,) = run_jobs(project, Job.Kind.TRAIN)
    assert job.status == Job.Status.SKIPPED and "two classes" in job.message
    project.refresh_from_db()
    assert project.current_model_version is None


def test_suggestion_source_is_zero_shot_while_it_beats_the_model():
    project, _, annotator, truth = loop_project(retrain_every=4)
    run_jobs(project, Job.Kind.EMBED)
    # A zero-shot version that happens to be always right, and in use before any model.
    zero_shot = ModelVersion.objects.create(
        project=project, number=1, kind=ModelVersion.Kind.ZERO_SHOT
    )
    Prediction.objects.bulk_create(
        Prediction(
            item_id=item_id,
            model_version=zero_shot,
            probabilities=[1.0],
            predicted_class=cls,
            confidence=0.99,
            acquisition_score=0.0,
            source=SuggestionSource.ZERO_SHOT,
        )
        for item_id, cls in truth.items()
    )
    Project.objects.filter(pk=project.pk).update(current_model_version=zero_shot)
    project.refresh_from_db()
    lease = item_lease_next(project=project, user=annotator).lease
    shown = suggestion_for_item(item=lease.item, project=project)
    answer, _ = annotation_submit(
        item=lease.item, user=annotator, label_class=truth[lease.item_id], shown_prediction=shown
    )
    assert answer.suggestion_accepted is True and answer.suggestion_source == "zero_shot"
    label_items(project, annotator, truth, 1)
    # a wrong answer, so the model's cross-validated accuracy is below zero-shot's 100 %
    lease = item_lease_next(project=project, user=annotator).lease
    wrong = next(c for c in project.classes.all() if c != truth[lease.item_id])
    annotation_submit(item=lease.item, user=annotator, label_class=wrong)
    label_items(project, annotator, truth, 1)

    (job,) = run_jobs(project, Job.Kind.TRAIN)

    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.metrics["suggestion_source"] == "zero_shot"
    project.refresh_from_db()
    version = project.current_model_version
    assert version.kind == ModelVersion.Kind.MODEL and version.number == 2
    sources = set(Prediction.objects.filter(model_version=version).values_list("source", flat=True))
    assert sources == {SuggestionSource.ZERO_SHOT}


def test_version_numbers_grow_and_old_predictions_are_pruned():
    project, _, annotator, truth = loop_project(retrain_every=2)
    run_jobs(project, Job.Kind.EMBED)
    for _ in range(3):
        label_items(project, annotator, truth, 2)
        run_jobs(project, Job.Kind.TRAIN)
    versions = ModelVersion.objects.filter(project=project)
    assert versions.aggregate(n=Max("number"))["n"] == 3
    with_predictions = set(
        Prediction.objects.filter(model_version__project=project).values_list(
            "model_version__number", flat=True
        )
    )
    assert with_predictions == {2, 3}


def test_held_out_evidence_counts_page_tiles_as_served_not_verified_labels_as_oof():
    """Accepted tiles are the model's confident right answers: as out-of-fold labels they
    would say confident predictions are always right. Pages count instead, rejections
    included, at the confidence they were served at. Answered audits of the open images are
    marked: the pseudo-label cuts are certified on them alone, the calibration curve on them
    and the audits drawn among the most confident open images."""
    import numpy as np
    from django.utils import timezone

    from core.models import AnnotationSource, Lease, VerificationPage
    from core.services.training import held_out_evidence
    from models_ml.heads import OutOfFold
    from tests.factories import ItemFactory, project_with_members

    project, admin, (ann,) = project_with_members()
    cat = project.classes.get(name="cat")
    card, audited, verified, rejected, top = (ItemFactory(project=project) for _ in range(5))
    Annotation.objects.create(item=card, annotator=ann, label_class=cat)
    now = timezone.now()
    Lease.objects.create(
        item=audited, annotator=ann, slot=0, leased_at=now, expires_at=now, completed_at=now,
        audit_class=cat, audit_confidence=0.8, audit_of_open=True,
    )  # fmt: skip
    Annotation.objects.create(item=audited, annotator=ann, label_class=cat)
    Lease.objects.create(
        item=top, annotator=ann, slot=0, leased_at=now, expires_at=now, completed_at=now,
        audit_class=cat, audit_confidence=0.99, audit_of_top=True,
    )  # fmt: skip
    Annotation.objects.create(item=top, annotator=ann, label_class=cat)
    Annotation.objects.create(
        item=verified, annotator=ann, label_class=cat, source=AnnotationSource.VERIFIED
    )
    VerificationPage.objects.create(
        project=project, annotator=ann, label_class=cat, item_ids=[verified.pk, rejected.pk],
        confidences=[0.97, 0.95], rejected_ids=[rejected.pk], expires_at=now, completed_at=now,
    )  # fmt: skip
    labeled = np.array([card.pk, audited.pk, top.pk, verified.pk])
    y = np.array([cat.pk] * 4)
    oof = OutOfFold(
        proba=np.array([[0.6], [0.9], [0.98], [0.99]]), covered=np.ones(4, bool), estimate=None
    )
    evidence = held_out_evidence(project=project, oof=oof, labeled_ids=labeled, y=y)
    assert evidence.confidence.tolist() == [0.6, 0.9, 0.98, 0.97, 0.95]  # verified 0.99: out
    assert evidence.correct.tolist() == [True, True, True, True, False]
    assert evidence.predicted.tolist() == [cat.pk] * 5
    assert evidence.from_page.tolist() == [False, False, False, True, True]
    # the pseudo-label cuts' evidence: the audits only (a random sample of the open images;
    # the strategy's labels are the hard ones, the tiles the ones pages chose)
    audits = evidence.audits_only()
    assert audits.confidence.tolist() == [0.9] and audits.correct.tolist() == [True]
    # and the calibration curve's: those and the audits drawn among the most confident
    curve = evidence.curve_audits()
    assert curve.confidence.tolist() == [0.9, 0.98] and curve.from_top_audit.tolist() == [
        False,
        True,
    ]


def test_a_run_after_a_rejected_tile_suggests_another_class_without_trusting_it():
    """A class rejected on a page is out of the item's next prediction, and the confidence
    written for the runner-up is what the model gave it, not a renormalised certainty."""
    from core.models import SuggestionRejection

    project, annotator, truth = trained_loop_project(12)
    first = project.current_model_version
    item_id = next(i for i in truth if not Annotation.objects.filter(item_id=i).exists())
    before = Prediction.objects.get(model_version=first, item_id=item_id)
    SuggestionRejection.objects.create(
        item_id=item_id, label_class_id=before.predicted_class_id, annotator=annotator
    )
    training_request(project=project, reason="test")
    (job,) = run_jobs(project, Job.Kind.TRAIN)
    assert job.status == Job.Status.SUCCEEDED, job.error
    project.refresh_from_db()
    after = Prediction.objects.get(model_version=project.current_model_version, item_id=item_id)
    assert after.predicted_class_id != before.predicted_class_id
    assert after.confidence < 0.5 and not after.pseudo_labeled
    assert sum(after.probabilities) == pytest.approx(1.0, abs=1e-3)  # a distribution still


def test_predictions_changed_is_the_share_of_the_items_given_that_moved_per_label():
    from tests.factories import ItemFactory, ModelVersionFactory, PredictionFactory

    project, _, annotator, truth = loop_project(retrain_every=100)
    cat, dog = project.classes.all()[:2]
    serving = ModelVersionFactory(project=project, kind=ModelVersion.Kind.MODEL, labels_count=10)
    items = ItemFactory.create_batch(4, project=project)
    for item in items:
        PredictionFactory(item=item, model_version=serving, predicted_class=cat)
    Project.objects.filter(pk=project.pk).update(current_model_version=serving)
    project.refresh_from_db()
    ids = np.array([item.pk for item in items])
    now = np.array([cat.pk, cat.pk, dog.pk, dog.pk])
    # Half the pool changed class over 2 new labels: 25 % per label.
    assert training.predictions_changed(
        project=project, item_ids=ids, predicted=now, labels_count=12
    ) == pytest.approx(0.25)
    assert (
        training.predictions_changed(project=project, item_ids=ids, predicted=now, labels_count=10)
        is None
    )  # no label added: no rate


def test_the_rate_of_change_is_measured_over_the_whole_pool_not_the_open_items():
    """Bloodgood's stop set is fixed: labeled items stay in it. Over the open items only, the
    rate rose again late in a session (the open items are the unsure ones) and stopped the
    pages; here the first version's predictions of the labeled items are made wrong, and
    only a rate over the whole pool sees the next version put them right."""
    project, _, annotator, truth = loop_project(retrain_every=100)
    run_jobs(project, Job.Kind.EMBED)
    labeled = label_items(project, annotator, truth, 6)
    training_request(project=project, reason="test")
    run_jobs(project, Job.Kind.TRAIN)
    project.refresh_from_db()
    first = project.current_model_version
    right = dict(
        Prediction.objects.filter(model_version=first).values_list("item_id", "predicted_class")
    )
    assert all(right[item] == truth[item].pk for item in truth)  # colours are easy
    for item in labeled:  # the first version was wrong on the six labeled items
        other = next(c for c in project.classes.all() if c.pk != truth[item].pk)
        Prediction.objects.filter(model_version=first, item_id=item).update(predicted_class=other)
    label_items(project, annotator, truth, 4)
    training_request(project=project, reason="test")
    run_jobs(project, Job.Kind.TRAIN)
    project.refresh_from_db()
    second = project.current_model_version
    assert second.number == first.number + 1
    # 6 of the 24 items changed class over 4 labels; over the 14 open items, none did.
    assert second.metrics["changed_per_label"] == pytest.approx(6 / 24 / 4, abs=1e-6)


def test_the_first_run_has_nothing_to_compare_and_the_next_records_its_rate():
    project, _, annotator, truth = loop_project(retrain_every=100)
    run_jobs(project, Job.Kind.EMBED)
    label_items(project, annotator, truth, 6)
    training_request(project=project, reason="test")
    run_jobs(project, Job.Kind.TRAIN)
    label_items(project, annotator, truth, 4)
    training_request(project=project, reason="test")
    run_jobs(project, Job.Kind.TRAIN)
    first, second = ModelVersion.objects.filter(project=project).order_by("number")
    assert first.metrics["changed_per_label"] is None
    assert 0 <= second.metrics["changed_per_label"] <= 1 / 4


def test_pseudo_labels_come_only_once_audits_of_the_open_images_certify_a_cut():
    """The strategy's labels are the images the model is least sure of: however many, they
    certify no cut. Audit cards (random open images) do: once enough of them are answered
    (MIN_CALIBRATION_AUDITS) the next run pseudo-labels open images, under one pooled cut,
    and those pseudo-labels are right."""
    project, _, annotator, truth = loop_project(images_per_class=150, retrain_every=500)
    run_jobs(project, Job.Kind.EMBED)
    label_items(project, annotator, truth, 10)
    training_request(project=project, reason="test")
    run_jobs(project, Job.Kind.TRAIN)
    label_items(project, annotator, truth, 60)  # strategy cards, no audits
    training_request(project=project, reason="test")
    run_jobs(project, Job.Kind.TRAIN)
    project.refresh_from_db()
    plain = project.current_model_version
    assert plain.metrics["pseudo_labeled"] == 0
    assert plain.metrics["pseudo_label_thresholds"] == {}  # no audits, no evidence

    Project.objects.filter(pk=project.pk).update(audit_share=1.0)
    project.refresh_from_db()
    audited = label_items(project, annotator, truth, MIN_CALIBRATION_AUDITS + 10)  # all audits
    assert Annotation.objects.filter(item_id__in=audited).count() == MIN_CALIBRATION_AUDITS + 10
    training_request(project=project, reason="test")
    run_jobs(project, Job.Kind.TRAIN)
    project.refresh_from_db()
    version = project.current_model_version
    cuts = version.metrics["pseudo_label_thresholds"]
    assert {cut["threshold"] for cut in cuts.values()} - {None}
    pseudo = Prediction.objects.filter(model_version=version, pseudo_labeled=True)
    assert pseudo.count() == version.metrics["pseudo_labeled"] > 0
    assert all(p.predicted_class_id == truth[p.item_id].pk for p in pseudo)
    assert not pseudo.filter(item__is_done=True).exists()


def test_a_run_that_certifies_no_cut_keeps_the_pseudo_labels_the_model_still_agrees_with(
    monkeypatch,
):
    """Pseudo-labels are not re-certified image by image at every version: the next run keeps
    those whose class it still predicts (here it certifies no cut of its own), and drops one
    whose class it no longer predicts and those an answer closed."""
    project, _, annotator, truth = loop_project(images_per_class=150, retrain_every=500)
    run_jobs(project, Job.Kind.EMBED)
    label_items(project, annotator, truth, 10)
    training_request(project=project, reason="test")
    run_jobs(project, Job.Kind.TRAIN)
    Project.objects.filter(pk=project.pk).update(audit_share=1.0)
    project.refresh_from_db()
    label_items(project, annotator, truth, MIN_CALIBRATION_AUDITS + 10)  # they certify a cut
    training_request(project=project, reason="test")
    run_jobs(project, Job.Kind.TRAIN)
    project.refresh_from_db()
    first = project.current_model_version
    pseudo = set(
        Prediction.objects.filter(model_version=first, pseudo_labeled=True).values_list(
            "item_id", flat=True
        )
    )
    assert len(pseudo) > 10
    done = set(label_items(project, annotator, truth, 10))  # right answers, some on them
    changed = min(pseudo - done)  # as if the serving version had pseudo-labeled it otherwise
    other = next(c for c in project.classes.all() if c.pk != truth[changed].pk)
    Prediction.objects.filter(model_version=first, item_id=changed).update(predicted_class=other)
    monkeypatch.setattr(training, "pseudo_label_thresholds", lambda **kwargs: {})
    training_request(project=project, reason="test")
    run_jobs(project, Job.Kind.TRAIN)
    project.refresh_from_db()
    second = project.current_model_version
    assert second.number == first.number + 1 and second.metrics["pseudo_label_thresholds"] == {}
    now = set(
        Prediction.objects.filter(model_version=second, pseudo_labeled=True).values_list(
            "item_id", flat=True
        )
    )
    assert now == pseudo - {changed} - done
    assert second.metrics["pseudo_labeled"] == second.metrics["pseudo_labeled_kept"] == len(now)


def test_kept_pseudo_labels_the_calibration_curve_no_longer_certifies_go_least_confident_first():
    """The set in use (fresh and kept pseudo-labels) must clear the project's target on the
    version's curve of the audits: here a calibrated one (chance = confidence), 200 fresh at
    0.99 and kept ones from 0.99 down to 0.6. The least confident kept ones go; a kept one the
    model no longer predicts or whose image is done is not counted, and kept ones that are
    fresh again are never dropped."""
    from models_ml.confidence import PreselectThreshold

    rng = np.random.default_rng(2)
    conf = rng.uniform(0.5, 1.0, 2000)
    audits = training.HeldOut(
        confidence=conf,
        predicted=np.zeros(2000, np.int64),
        correct=rng.random(2000) < conf,
        from_page=np.zeros(2000, bool),
        from_audit=np.ones(2000, bool),
        item_ids=np.arange(2000),
    )
    n_fresh, n_kept = 200, 300
    pool_ids = np.arange(10_000, 10_000 + n_fresh + n_kept + 2)
    confidence = np.r_[np.full(n_fresh, 0.99), np.linspace(0.99, 0.6, n_kept), 0.5, 0.5]
    predicted = np.r_[np.full(n_fresh + n_kept, 7), 8, 7]
    is_done = np.r_[np.zeros(n_fresh + n_kept + 1, bool), True]
    cut = {7: PreselectThreshold(0.99, 0.95, 20, 1.0, 0.1, 200)}
    kept = {int(item): 7 for item in pool_ids}  # all of them, fresh again or not
    project = Project(pseudo_label_precision=0.95)

    after = training.pseudo_labels_kept_certified(
        project=project,
        kept=kept,
        audits=audits,
        pseudo=cut,
        pool_ids=pool_ids,
        predicted=predicted,
        confidence=confidence,
        is_done=is_done,
    )
    stay = [item for item in pool_ids if item in after]
    first_dropped = pool_ids[n_fresh:][~np.isin(pool_ids[n_fresh:], list(after))][0]
    assert set(pool_ids[:n_fresh]) <= set(after)  # fresh again: never dropped
    assert pool_ids[-1] in after and pool_ids[-2] in after  # not in the set: left to the version
    kept_rows = np.flatnonzero(np.isin(pool_ids, stay))[n_fresh:-2]
    assert (
        0 < len(kept_rows) < n_kept and (kept_rows == np.arange(n_fresh, kept_rows[-1] + 1)).all()
    )
    in_use = confidence[: kept_rows[-1] + 1]
    assert in_use.mean() >= 0.95 > confidence[: kept_rows[-1] + 60].mean()  # not far too cautious
    assert first_dropped == pool_ids[kept_rows[-1] + 1]
    no_curve = training.HeldOut(**{f: v[:10] for f, v in vars(audits).items()})
    assert (
        training.pseudo_labels_kept_certified(
            project=project,
            kept=kept,
            audits=no_curve,
            pseudo=cut,
            pool_ids=pool_ids,
            predicted=predicted,
            confidence=confidence,
            is_done=is_done,
        )
        == kept
    )


def test_pseudo_label_cuts_read_the_curve_on_the_audits_drawn_at_the_top_too():
    """Fewer audits of the open images than a curve needs certify no cut; with the audits
    drawn among the most confident open images they are enough, the pooled cut comes, and it
    keeps to the share of the open images the random audits put above it."""
    from models_ml.confidence import MIN_CALIBRATION_AUDITS

    rng = np.random.default_rng(3)
    uniform, top = MIN_CALIBRATION_AUDITS - 20, 120
    conf = np.r_[rng.uniform(0.5, 1.0, uniform), rng.uniform(0.95, 1.0, top)]
    n = len(conf)
    evidence = training.HeldOut(
        confidence=conf,
        predicted=np.zeros(n, np.int64),
        correct=rng.random(n) < conf**0.5,
        from_page=np.zeros(n, bool),
        from_audit=np.r_[np.ones(uniform, bool), np.zeros(top, bool)],
        item_ids=np.arange(n),
        from_top_audit=np.r_[np.zeros(uniform, bool), np.ones(top, bool)],
    )
    open_conf = rng.uniform(0.5, 1.0, 5000)
    open_probs = np.column_stack([open_conf, 1 - open_conf])
    project = Project(pseudo_label_precision=0.95)

    def cuts(held_out):
        return training.pseudo_label_thresholds(
            project=project,
            evidence=held_out,
            open_probs=open_probs,
            open_confidence=open_conf,
            class_ids=np.array([0, 1]),
        )

    alone = training.HeldOut(**{f: v[:uniform] for f, v in vars(evidence).items()})
    assert cuts(alone)[0].threshold is None
    cut = cuts(evidence)[0].threshold
    assert cut is not None and 0.5 < cut < 1.0
    assert np.mean(open_conf >= cut) <= np.mean(conf[:uniform] >= cut) + 1e-9
