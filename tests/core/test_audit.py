"""Pseudo-label audits: random pseudo-labeled images served as plain cards, and what they
measure (core/services/queue.py, core/selectors/progress.py, the exports' metadata)."""

import json

import pytest

from core.models import Lease, ModelVersion, Project
from core.selectors.progress import labeling_effort, pseudo_label_audit
from core.services.exports import export_write
from core.services.queue import annotation_submit, item_lease_next
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


def test_an_audit_card_shows_a_random_pseudo_labeled_image_without_its_suggestion():
    project, _, ann, cat, dog, items = pseudo_labeled_pool(audit_share=1.0)
    result = item_lease_next(project=project, user=ann)
    assert result.lease.audit_class == cat and result.lease.audit_confidence == 0.95
    assert result.lease.item.pk in {i.pk for i in items[1::2]}  # a pseudo-labeled one
    assert result.suggestion is None  # the answer must not lean on what it checks
    again = item_lease_next(project=project, user=ann)
    assert again.lease.pk == result.lease.pk and again.suggestion is None  # a refresh too


def test_audits_are_drawn_at_the_projects_share_and_uniformly_among_pseudo_labels():
    project, *_, items = pseudo_labeled_pool(n=200, audit_share=0.25)
    audited = []
    for _ in range(120):  # 120 annotators, one card each
        user = MembershipFactory(project=project).user
        lease = item_lease_next(project=project, user=user).lease
        if lease.audit_class_id:
            audited.append(lease.item_id)
    assert 15 <= len(audited) <= 45  # binomial(120, 0.25): 30 ± 4.7
    assert set(audited) <= {i.pk for i in items[1::2]}
    assert len(set(audited)) >= 0.8 * len(audited)  # spread over the pool, not the top few
    ordinary = Lease.objects.filter(audit_class__isnull=True)
    assert not set(ordinary.values_list("item_id", flat=True)) & {i.pk for i in items[1::2]}


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
    project, _, ann, cat, dog, items = pseudo_labeled_pool(audit_share=1.0)
    answers = [cat, cat, cat, dog]  # three pseudo-labels confirmed, one wrong
    for answer in answers:
        user = MembershipFactory(project=project).user
        lease = item_lease_next(project=project, user=user).lease
        annotation_submit(item=lease.item, user=user, label_class=answer)
    skipped = item_lease_next(project=project, user=ann).lease  # an audit not answered
    assert skipped.audit_class is not None
    audit = pseudo_label_audit(project=project)
    assert (audit["audited"], audit["right"], audit["precision"]) == (4, 3, 0.75)
    assert 0.2 < audit["low"] < 0.75 < audit["high"] < 1.0
    effort = labeling_effort(project=project)
    assert effort["audit"] == audit and effort["human_labeled"] == 4


def test_an_export_with_audited_pseudo_labels_uses_the_thresholds_and_records_the_audit(tmp_path):
    project, _, ann, cat, dog, items = pseudo_labeled_pool(n=10, audit_share=1.0)
    lease = item_lease_next(project=project, user=ann).lease
    annotation_submit(item=lease.item, user=ann, label_class=cat)
    summary = export_write(project=project, fmt="coco", path=tmp_path / "a.json", audited=True)
    data = json.loads((tmp_path / "a.json").read_text())
    sources = [a["source"] for a in data["annotations"]]
    assert sources.count("human") == 1 and sources.count("pseudo") == 4  # 5 pseudo, 1 answered
    rule = data["info"]["pseudo_labels"]
    assert rule["thresholds"] == {"cat": 0.9} and rule["target_precision"] == 0.95
    assert rule["audit"]["audited"] == 1 and rule["audit"]["right"] == 1
    assert summary.pseudo_labels == rule and summary.pseudo == 4
    plain = export_write(project=project, fmt="csv", path=tmp_path / "b.csv")
    assert plain.pseudo == 0 and plain.pseudo_labels is None
