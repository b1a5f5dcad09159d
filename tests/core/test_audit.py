"""Audits: random open images served as plain cards, and what they measure: the
pseudo-labels' precision where they land on pseudo-labeled images (core/services/queue.py,
core/selectors/progress.py, the exports' metadata). What they certify is in test_training.py."""

import json

import pytest

from core.models import Item, Lease, ModelVersion, Prediction, Project
from core.selectors.progress import labeling_effort, pseudo_label_audit
from core.services.exports import export_write
from core.services.queue import annotation_submit, item_lease_next
from core.services.training import pseudo_labels_kept
from core.services.versions import version_switch
from models_ml.confidence import MIN_CALIBRATION_AUDITS
from tests.factories import (
    ItemFactory,
    MembershipFactory,
    ModelVersionFactory,
    PredictionFactory,
    project_with_members,
)

pytestmark = pytest.mark.django_db


def pseudo_labeled_pool(*, n=40, audit_share=1.0):
    """Half the items pseudo-labeled 'cat' by the current version (the odd ones); the
    strategy ranks the others first."""
    project, admin, (ann,) = project_with_members(audit_share=audit_share, seed=7)
    cat, dog = project.classes.get(name="cat"), project.classes.get(name="dog")
    version = ModelVersionFactory(
        project=project,
        kind=ModelVersion.Kind.MODEL,
        class_ids=[cat.pk, dog.pk],
        preselect_threshold=0.5,
        metrics={"pseudo_label_thresholds": {str(cat.pk): {"threshold": 0.9}}},
    )
    items = ItemFactory.create_batch(n, project=project)
    for index, item in enumerate(items):
        pseudo = index % 2 == 1
        PredictionFactory(
            item=item,
            model_version=version,
            predicted_class=cat,
            confidence=0.95 if pseudo else 0.6,
            probabilities=[0.95, 0.05] if pseudo else [0.6, 0.4],
            acquisition_score=0 if pseudo else 1,
            pseudo_labeled=pseudo,
        )
    Project.objects.filter(pk=project.pk).update(current_model_version=version)
    project.refresh_from_db()
    return project, admin, ann, cat, dog, items


def test_an_audit_card_shows_a_random_open_image_without_its_suggestion():
    project, _, ann, cat, dog, items = pseudo_labeled_pool(audit_share=1.0)
    result = item_lease_next(project=project, user=ann)
    pseudo = result.lease.item.pk in {i.pk for i in items[1::2]}
    assert result.lease.audit_class == cat and result.lease.audit_of_open
    assert result.lease.audit_confidence == (0.95 if pseudo else 0.6)  # the model's, recorded
    assert result.lease.audit_pseudo_label == pseudo  # and whether it was a pseudo-label
    assert result.suggestion is None  # the answer must not lean on what it checks
    again = item_lease_next(project=project, user=ann)
    assert again.lease.pk == result.lease.pk and again.suggestion is None  # a refresh too


def test_audits_are_drawn_at_the_projects_share_and_uniformly_among_the_open_images():
    project, *_, items = pseudo_labeled_pool(n=300, audit_share=0.25)
    done = items[:20]  # labeled already: never audited
    Item.objects.filter(pk__in=[i.pk for i in done]).update(is_done=True)
    audited = []
    for _ in range(120):  # 120 annotators, one card each
        user = MembershipFactory(project=project).user
        lease = item_lease_next(project=project, user=user).lease
        if lease.audit_class_id:
            audited.append(lease.item_id)
    # The items' random keys are unseeded, so these are statistical: the bounds are set so
    # that a uniform draw fails them about once in 5,000 runs (0.25-0.75 for the halves
    # failed about once in 140: it did, in stop 35's `make test`).
    assert 12 <= len(audited) <= 50  # binomial(120, 0.25): 30 ± 4.7
    assert not set(audited) & {i.pk for i in done}
    pseudo = len(set(audited) & {i.pk for i in items[1::2]})
    assert 0.15 * len(audited) <= pseudo <= 0.85 * len(audited)  # both halves of the pool
    assert len(set(audited)) >= 0.8 * len(audited)  # spread over the pool, not the top few
    ordinary = Lease.objects.filter(audit_class__isnull=True)
    assert not set(ordinary.values_list("item_id", flat=True)) & {i.pk for i in items[1::2]}


def test_audits_at_the_top_are_drawn_among_the_most_confident_quarter_of_the_open_images():
    """With `audit_top_share` 1, every audit is drawn among the open images the current
    version is most confident of (the top quarter), uniformly there, and recorded as such:
    not an audit of the open images (a random sample of them); with 0.5, about half; once
    the quarter is all leased, among all the open images."""
    project, *_, items = pseudo_labeled_pool(n=200, audit_share=1.0)
    version = project.current_model_version
    for index, item in enumerate(items):  # confidences 0.500 .. 0.998, one per item
        Prediction.objects.filter(model_version=version, item=item).update(
            confidence=0.5 + index / 400
        )
    Item.objects.filter(pk=items[-1].pk).update(is_done=True)  # the most confident: done
    Project.objects.filter(pk=project.pk).update(audit_top_share=1.0)
    project.refresh_from_db()
    # the top quarter of the 199 open ones: the 49 most confident (0.8725 and up)
    drawn = []
    for _ in range(20):
        lease = item_lease_next(project=project, user=MembershipFactory(project=project).user)
        assert lease.lease.audit_of_top and not lease.lease.audit_of_open
        drawn.append(lease.lease.audit_confidence)
    assert min(drawn) >= 0.8725 and max(drawn) < 0.9975
    assert len(set(drawn)) == 20  # leased ones are not drawn again
    Project.objects.filter(pk=project.pk).update(audit_top_share=0.5)
    project.refresh_from_db()
    tops = []
    for _ in range(40):
        lease = item_lease_next(project=project, user=MembershipFactory(project=project).user)
        assert lease.lease.audit_of_top != lease.lease.audit_of_open
        tops.append(lease.lease.audit_of_top)
    assert 8 <= sum(tops) <= 29  # binomial(40, 0.5): 20 ± 3.2; 29 were left
    Project.objects.filter(pk=project.pk).update(audit_top_share=1.0)
    project.refresh_from_db()
    for _ in range(30):  # 29 - sum(tops) left at the top, then among all
        lease = item_lease_next(project=project, user=MembershipFactory(project=project).user)
    assert lease.lease.audit_of_open and lease.lease.audit_confidence < 0.8725


def test_audits_at_the_top_never_count_in_the_pseudo_labels_precision(client):
    """They are not a random sample of the pseudo-labels: the dashboard and the kept
    pseudo-labels' guard count the audits of the open images only, and report the others
    apart (evidence for the calibration curve)."""
    from django.urls import reverse

    project, admin, ann, cat, dog, items = pseudo_labeled_pool(audit_share=1.0)
    Project.objects.filter(pk=project.pk).update(audit_top_share=1.0)
    project.refresh_from_db()
    for _ in range(5):  # the top quarter here: the pseudo-labeled half (0.95); all wrong
        user = MembershipFactory(project=project).user
        lease = item_lease_next(project=project, user=user).lease
        assert lease.audit_of_top and lease.audit_pseudo_label
        annotation_submit(item=lease.item, user=user, label_class=dog)
    audit = pseudo_label_audit(project=project)
    assert (audit["audited"], audit["open_audits"], audit["top_audits"]) == (0, 0, 5)
    assert audit["curve_audits"] == 5
    assert pseudo_labels_kept(project=project)  # five wrong, but not a random sample
    client.force_login(admin)
    page = client.get(reverse("core:project_dashboard", args=[project.pk])).content.decode()
    assert "no pseudo-label checked yet" in page
    assert "the 5 answered so far (5 of them drawn among the most confident quarter, 100 %" in page


def test_the_same_seed_and_answers_audit_the_same_image():
    project, _, ann, *_ = pseudo_labeled_pool(n=200, audit_share=1.0)
    first = item_lease_next(project=project, user=ann).lease
    first.delete()
    again = item_lease_next(project=project, user=ann).lease
    assert again.item_id == first.item_id
    seen = set()
    for count in range(1, 11):  # as labels come in, the draws move on
        Project.objects.filter(pk=project.pk).update(labels_submitted=count)
        project.refresh_from_db()
        Lease.objects.filter(annotator=ann).delete()
        seen.add(item_lease_next(project=project, user=ann).lease.item_id)
    assert len(seen) >= 5


def test_no_audit_share_no_audits():
    project, _, ann, *_ = pseudo_labeled_pool(audit_share=0.0)
    assert item_lease_next(project=project, user=ann).lease.audit_class is None


def test_answered_audits_measure_the_pseudo_labels_precision_with_an_interval():
    """Only the audits that landed on pseudo-labeled images measure the pseudo-labels: a
    random sample of them, since the audits are a random sample of the open images."""
    project, _, ann, cat, dog, items = pseudo_labeled_pool(audit_share=1.0)
    pseudo_ids = {i.pk for i in items[1::2]}
    on_pseudo = []
    for n in range(12):
        user = MembershipFactory(project=project).user
        lease = item_lease_next(project=project, user=user).lease
        wrong = n % 4 == 3  # every fourth answer says the model was wrong
        annotation_submit(item=lease.item, user=user, label_class=dog if wrong else cat)
        if lease.item_id in pseudo_ids:
            on_pseudo.append(not wrong)
    skipped = item_lease_next(project=project, user=ann).lease  # an audit not answered
    assert skipped.audit_class is not None
    audit = pseudo_label_audit(project=project)
    assert 0 < len(on_pseudo) < 12  # the draw landed on both halves
    assert (audit["audited"], audit["right"]) == (len(on_pseudo), sum(on_pseudo))
    assert audit["precision"] == sum(on_pseudo) / len(on_pseudo)
    assert 0.0 <= audit["low"] < audit["precision"] <= audit["high"] <= 1.0
    assert audit["open_audits"] == 12
    assert audit["audits_needed"] == MIN_CALIBRATION_AUDITS
    effort = labeling_effort(project=project)
    assert effort["audit"] == audit and effort["human_labeled"] == 12


def test_audits_of_pseudo_labels_still_count_once_their_versions_predictions_are_gone():
    """Only the last two versions' predictions are kept (version_switch); an audit that landed
    on an older version's pseudo-label still measures the pseudo-labels. (Looked up in the
    predictions, the sample was the last two versions' audits: one wrong in four dropped
    every kept pseudo-label.)"""
    project, _, ann, cat, dog, items = pseudo_labeled_pool(audit_share=1.0)
    first = project.current_model_version
    pseudo_ids = {i.pk for i in items[1::2]}
    on_pseudo = []
    while len(on_pseudo) < 3:  # three audits on pseudo-labels, the first answered "dog"
        user = MembershipFactory(project=project).user
        lease = item_lease_next(project=project, user=user).lease
        wrong = lease.item_id in pseudo_ids and not on_pseudo
        annotation_submit(item=lease.item, user=user, label_class=dog if wrong else cat)
        if lease.item_id in pseudo_ids:
            on_pseudo.append(not wrong)
    for _ in range(2):  # two newer versions: the first one's predictions are dropped
        newer = ModelVersionFactory(project=project, kind=ModelVersion.Kind.MODEL)
        version_switch(project=project, version=newer)
    assert not Prediction.objects.filter(model_version=first).exists()
    audit = pseudo_label_audit(project=project)
    assert (audit["audited"], audit["right"]) == (3, 2)


def test_an_export_with_audited_pseudo_labels_uses_the_thresholds_and_records_the_audit(tmp_path):
    project, _, ann, cat, dog, items = pseudo_labeled_pool(n=10, audit_share=1.0)
    pseudo_ids = {i.pk for i in items[1::2]}
    while True:  # audits until one lands on a pseudo-labeled image
        lease = item_lease_next(project=project, user=ann).lease
        annotation_submit(item=lease.item, user=ann, label_class=cat)
        if lease.item_id in pseudo_ids:
            break
    summary = export_write(project=project, fmt="coco", path=tmp_path / "a.json", audited=True)
    data = json.loads((tmp_path / "a.json").read_text())
    sources = [a["source"] for a in data["annotations"]]
    answered = Lease.objects.filter(annotator=ann, completed_at__isnull=False).count()
    assert sources.count("human") == answered
    assert sources.count("pseudo") == 4  # 5 pseudo-labeled, 1 answered
    rule = data["info"]["pseudo_labels"]
    assert rule["thresholds"] == {"cat": 0.9} and rule["target_precision"] == 0.95
    assert rule["audit"]["audited"] == 1 and rule["audit"]["right"] == 1
    assert rule["audit"]["open_audits"] == answered
    assert summary.pseudo_labels == rule and summary.pseudo == 4
    plain = export_write(project=project, fmt="csv", path=tmp_path / "b.csv")
    assert plain.pseudo == 0 and plain.pseudo_labels is None


def test_pseudo_labels_are_kept_until_the_audits_that_land_on_them_fail_them():
    """The next version keeps the serving version's pseudo-labels on open images while the
    audits of pseudo-labeled images do not put their precision below the target."""
    project, _, ann, cat, dog, items = pseudo_labeled_pool(audit_share=1.0)
    pseudo_ids = [i.pk for i in items[1::2]]
    assert pseudo_labels_kept(project=project) == {pk: cat.pk for pk in pseudo_ids}

    answered = []
    while len(answered) < 7:  # seven audits on pseudo-labeled images: 3 say "cat", 4 "dog"
        user = MembershipFactory(project=project).user
        lease = item_lease_next(project=project, user=user).lease
        on_pseudo = lease.item_id in pseudo_ids
        wrong = on_pseudo and len(answered) >= 3
        annotation_submit(item=lease.item, user=user, label_class=dog if wrong else cat)
        answered += [lease.item_id] if on_pseudo else []
        if len(answered) == 3 and not wrong:  # 3 of 3 right: kept, but for those answered
            kept = pseudo_labels_kept(project=project)
            assert kept == {pk: cat.pk for pk in set(pseudo_ids) - set(answered)}
    audit = pseudo_label_audit(project=project)
    assert (audit["audited"], audit["right"]) == (7, 3)
    assert pseudo_labels_kept(project=project) == {}  # 3 of 7: below 95 % for sure
