"""The review queue: disagreements, confident model disagreement, one-click relabel."""

import pytest
from django.urls import reverse

from core.models import Annotation, AnnotationSource, ModelVersion, Prediction
from core.selectors.review import review_queue
from core.services.queue import annotation_review, annotation_submit, item_lease_next
from core.services.training import training_labels
from tests.factories import ItemFactory, UserFactory, project_with_members

pytestmark = pytest.mark.django_db


@pytest.fixture
def reviewed():
    """4 items, 2 annotators each: item 1 disagreed on; a model that is confidently against
    both answers on item 2 (0.95) and mildly against item 3 (0.6)."""
    project, admin, (ann1, ann2) = project_with_members(
        classes=("cat", "dog"), annotators=2, annotators_per_item=2
    )
    cat, dog = project.classes.order_by("order")
    items = [ItemFactory(project=project, random_key=i) for i in range(4)]
    for user, answers in ((ann1, [cat, cat, cat, cat]), (ann2, [cat, dog, cat, cat])):
        for label_class in answers:
            item = item_lease_next(project=project, user=user).lease.item
            annotation_submit(item=item, user=user, label_class=label_class)
    version = ModelVersion.objects.create(project=project, number=1, class_ids=[cat.pk, dog.pk])
    for item, (predicted, confidence) in zip(
        items, [(cat, 0.9), (dog, 0.99), (dog, 0.95), (dog, 0.6)], strict=True
    ):
        Prediction.objects.create(
            item=item, model_version=version, probabilities=[1 - confidence, confidence],
            predicted_class=predicted, confidence=confidence, acquisition_score=0,
        )  # fmt: skip
    type(project).objects.filter(pk=project.pk).update(current_model_version=version)
    project.refresh_from_db()
    return project, admin, (ann1, ann2), items, (cat, dog)


def test_disagreements_and_confident_model_disagreement(reviewed):
    project, _, _, items, _ = reviewed
    disagree = review_queue(project=project, kind="disagreement")
    assert [e["item"].pk for e in disagree] == [items[1].pk]
    assert len(disagree[0]["answers"]) == 2

    model = review_queue(project=project, kind="model", min_confidence=0.8)
    # item 1: the model says dog and ann2 said dog, so somebody agrees: not listed
    assert [e["item"].pk for e in model] == [items[2].pk]
    assert model[0]["prediction"].confidence == 0.95
    lenient = review_queue(project=project, kind="model", min_confidence=0.5)
    assert [e["item"].pk for e in lenient] == [items[2].pk, items[3].pk]
    assert review_queue(project=project, kind="model", after=items[2].pk) == []


def test_relabel_keeps_the_history_and_settles_the_label(reviewed):
    project, admin, (ann1, ann2), items, (cat, dog) = reviewed

    annotation_review(item=items[1], reviewer=admin, label_class=dog)

    current = Annotation.objects.get(item=items[1], is_current=True)
    assert (current.annotator, current.label_class, current.source) == (
        admin, dog, AnnotationSource.REVIEW,
    )  # fmt: skip
    history = Annotation.objects.filter(item=items[1], is_current=False)
    assert sorted(a.annotator_id for a in history) == sorted([ann1.pk, ann2.pk])
    ids, labels = training_labels(project=project)
    assert dict(zip(ids.tolist(), labels.tolist(), strict=True))[items[1].pk] == dog.pk
    assert review_queue(project=project, kind="disagreement") == []
    project.refresh_from_db()
    assert project.labels_submitted == 9  # 8 answers + a changed label


def test_review_pages_for_reviewers_and_up_only(reviewed, client):
    project, admin, (ann1, _), items, (cat, dog) = reviewed
    url = reverse("core:review_queue", args=[project.pk])
    relabel = reverse("core:review_relabel", args=[project.pk, items[2].pk])
    client.force_login(ann1)
    assert client.get(url).status_code == 403
    assert client.post(relabel, {"label_class": dog.pk}).status_code == 403
    client.force_login(UserFactory())
    assert client.get(url).status_code == 404

    client.force_login(admin)
    page = client.get(url, {"kind": "model"})
    assert page.status_code == 200 and f'id="review-{items[2].pk}"'.encode() in page.content
    assert client.get(url, {"kind": "nonsense"}).status_code == 404
    response = client.post(relabel, {"label_class": dog.pk}, headers={"HX-Request": "true"})
    assert (
        b"<strong>dog</strong>" in response.content and b'data-state="changed"' in response.content
    )
    assert Annotation.objects.get(item=items[2], is_current=True).label_class == dog
    items[2].refresh_from_db()
    assert items[2].review_state == "changed"
    # Settled: it leaves the lists.
    assert f'id="review-{items[2].pk}"'.encode() not in client.get(url, {"kind": "model"}).content


def test_accepting_keeps_the_agreed_label_and_the_unreviewed_list_shrinks(reviewed):
    project, admin, _, items, (cat, dog) = reviewed

    def unreviewed() -> dict:
        return {e["item"].pk: e for e in review_queue(project=project, kind="unreviewed")}

    assert list(unreviewed()) == [i.pk for i in items]
    assert unreviewed()[items[0].pk]["agreed"] == cat  # both said cat
    assert unreviewed()[items[1].pk]["agreed"] is None  # they disagree: nothing to accept

    annotation_review(item=items[0], reviewer=admin, label_class=cat)
    items[0].refresh_from_db()
    assert items[0].review_state == "accepted"
    assert items[0].pk not in unreviewed()


def test_dashboard_scores_annotators_against_reviews_and_ground_truth(reviewed, client):
    from core.selectors.progress import project_dashboard

    project, admin, (ann1, ann2), items, (cat, dog) = reviewed
    # Item 1: ann1 said cat, ann2 dog; the reviewer rules dog. Item 3 has imported truth dog.
    annotation_review(item=items[1], reviewer=admin, label_class=dog)
    type(items[3]).objects.filter(pk=items[3].pk).update(ground_truth=dog)
    scores = {
        a["username"]: (a["truth_accuracy"], a["truth_answers"])
        for a in project_dashboard(project=project)["annotators"]
    }
    assert scores[ann1.username] == (0.0, 2)  # cat on both
    assert scores[ann2.username] == (0.5, 2)  # dog on item 1, cat on item 3
    client.force_login(admin)
    body = client.get(reverse("core:project_dashboard", args=[project.pk])).content.decode()
    assert "Right (vs truth)" in body and '50 % <span class="muted">(2 checked)</span>' in body
