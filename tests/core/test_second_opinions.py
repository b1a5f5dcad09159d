"""A second opinion only where it pays (core/services/queue.py `needs_another_answer`), and
answers weighed by their annotators' measured accuracy (core/selectors/common.py)."""

import pytest

from core.models import Annotation, ExtraAnswers, Item, ModelVersion, Project
from core.selectors.common import annotator_accuracy, consensus_class
from core.services import queue
from core.services.queue import annotation_submit, item_lease_next
from core.services.training import training_labels
from tests.factories import (
    ItemFactory,
    ModelVersionFactory,
    PredictionFactory,
    project_with_members,
)

pytestmark = pytest.mark.django_db


def two_per_item(*, measured=None, predicted="cat", confidence=0.99, **settings):
    """k = 2, one image, a model in use that predicts `predicted` (threshold 0.9), and the
    annotators' measured accuracies (`measured`: index → accuracy)."""
    project, _, people = project_with_members(annotators=3, annotators_per_item=2, **settings)
    classes = {c.name: c for c in project.classes.all()}
    item = ItemFactory(project=project)
    version = ModelVersionFactory(
        project=project,
        kind=ModelVersion.Kind.MODEL,
        preselect_threshold=0.9,
        metrics={
            "annotator_accuracy": {str(people[i].pk): acc for i, acc in (measured or {}).items()}
        },
    )
    PredictionFactory(
        item=item, model_version=version, predicted_class=classes[predicted], confidence=confidence
    )
    Project.objects.filter(pk=project.pk).update(current_model_version=version)
    project.refresh_from_db()
    return project, people, classes, item


@pytest.fixture(autouse=True)
def _no_calibration_draws(monkeypatch):
    monkeypatch.setattr(queue, "CALIBRATION_SHARE", 0.0)


def answer(project, user, label_class):
    lease = item_lease_next(project=project, user=user).lease
    annotation_submit(item=lease.item, user=user, label_class=label_class)
    return lease.item


def test_a_reliable_answer_that_agrees_with_a_confident_model_needs_no_second():
    project, (ann, bob, _), classes, item = two_per_item(measured={0: 0.97})
    answer(project, ann, classes["cat"])
    assert Item.objects.get(pk=item.pk).is_done
    assert item_lease_next(project=project, user=bob) is None  # nothing for a second opinion


def test_disagreeing_with_a_confident_model_asks_for_a_second_answer():
    project, (ann, bob, _), classes, item = two_per_item(measured={0: 0.97})
    answer(project, ann, classes["dog"])
    assert not Item.objects.get(pk=item.pk).is_done
    assert answer(project, bob, classes["dog"]) == item
    assert Item.objects.get(pk=item.pk).is_done  # k answers: done whatever they say


def test_an_unreliable_or_unmeasured_annotator_gets_a_second_opinion():
    project, (ann, bob, _), classes, item = two_per_item(measured={0: 0.7})
    answer(project, ann, classes["cat"])  # agrees with the model, but ann is right 70 %
    assert not Item.objects.get(pk=item.pk).is_done
    project, (ann, bob, _), classes, item = two_per_item(measured={})
    answer(project, ann, classes["cat"])  # nobody has measured ann yet
    assert not Item.objects.get(pk=item.pk).is_done


def test_an_unsure_model_does_not_ask_for_a_second_opinion():
    project, (ann, *_), classes, item = two_per_item(measured={0: 0.97}, confidence=0.6)
    answer(project, ann, classes["dog"])  # the model says cat at 0.6: below its threshold
    assert Item.objects.get(pk=item.pk).is_done


def test_everywhere_asks_for_k_answers_on_every_image():
    project, (ann, *_), classes, item = two_per_item(
        measured={0: 0.97}, extra_answers=ExtraAnswers.EVERYWHERE
    )
    answer(project, ann, classes["cat"])
    assert not Item.objects.get(pk=item.pk).is_done


def test_calibration_images_get_k_answers_whatever_the_answer(monkeypatch):
    monkeypatch.setattr(queue, "CALIBRATION_SHARE", 1.0)
    project, (ann, *_), classes, item = two_per_item(measured={0: 0.97})
    answer(project, ann, classes["cat"])
    assert not Item.objects.get(pk=item.pk).is_done


def test_one_reliable_annotator_outweighs_two_unreliable_ones_in_training_and_export():
    project, _, (a, b, c) = project_with_members(annotators=3, annotators_per_item=3)
    cat, dog = project.classes.get(name="cat"), project.classes.get(name="dog")
    # Sixty images all three answered, all cats: a is always right, b and c each wrong on a
    # different third of them; on the last image both say dog against a's cat.
    items = ItemFactory.create_batch(61, project=project)
    for n, item in enumerate(items):
        for user, wrong in ((a, False), (b, n % 3 == 0 or n == 60), (c, n % 3 == 1 or n == 60)):
            Annotation.objects.create(item=item, annotator=user, label_class=dog if wrong else cat)
    measured = annotator_accuracy(project=project)
    assert measured[a.pk] > 0.9 and measured[b.pk] < 0.7 and measured[c.pk] < 0.7
    assert consensus_class([(b.pk, dog.pk), (c.pk, dog.pk), (a.pk, cat.pk)], accuracy=measured,
                           n_classes=2) == cat.pk  # fmt: skip
    # With nobody measured, the same answers are a plain majority.
    assert consensus_class([(b.pk, dog.pk), (c.pk, dog.pk), (a.pk, cat.pk)], accuracy={},
                           n_classes=2) == dog.pk  # fmt: skip
    ids, labels = training_labels(project=project)
    assert dict(zip(ids.tolist(), labels.tolist(), strict=True))[items[60].pk] == cat.pk
