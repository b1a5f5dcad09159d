import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from core.models import Annotation, Item, Lease, Prediction, Skip
from core.services.projects import project_settings_update
from core.services.queue import (
    LeaseLost,
    annotation_review,
    annotation_submit,
    item_lease_next,
    item_skip,
)
from core.services.versions import version_switch
from tests.factories import (
    ItemFactory,
    ModelVersionFactory,
    PredictionFactory,
    project_with_members,
)

pytestmark = pytest.mark.django_db


def lease(project, user):
    result = item_lease_next(project=project, user=user)
    return result.lease if result else None


def test_without_scores_items_come_in_stored_random_order():
    project, _, (annotator,) = project_with_members()
    items = [ItemFactory(project=project, random_key=key) for key in (0.9, 0.1, 0.5)]
    assert lease(project, annotator).item == items[1]


def test_highest_acquisition_score_of_the_current_version_comes_first():
    project, _, (annotator,) = project_with_members()
    old, current = ModelVersionFactory(project=project), ModelVersionFactory(project=project)
    low, high, other = (ItemFactory(project=project) for _ in range(3))
    PredictionFactory(item=low, model_version=current, acquisition_score=0.2)
    PredictionFactory(item=high, model_version=current, acquisition_score=0.8)
    PredictionFactory(item=other, model_version=old, acquisition_score=99)  # ignored: old version
    project.current_model_version = current
    project.save()
    assert lease(project, annotator).item == high


def test_refresh_returns_the_same_lease():
    project, _, (annotator,) = project_with_members()
    ItemFactory.create_batch(3, project=project)
    first = item_lease_next(project=project, user=annotator)
    again = item_lease_next(project=project, user=annotator)
    assert again.lease.pk == first.lease.pk and again.created is False
    assert Lease.objects.count() == 1


def test_two_annotators_get_different_items():
    project, _, (a, b) = project_with_members(annotators=2)
    ItemFactory.create_batch(2, project=project)
    assert lease(project, a).item != lease(project, b).item


@pytest.mark.dbcompat
def test_expired_lease_goes_back_to_the_queue():
    project, _, (a, b) = project_with_members(annotators=2)
    item = ItemFactory(project=project)
    held = lease(project, a)
    assert lease(project, b) is None
    Lease.objects.filter(pk=held.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    taken = lease(project, b)
    assert taken.item == item and taken.annotator == b
    with pytest.raises(LeaseLost):
        annotation_submit(item=item, user=a, label_class=project.classes.first())


def test_late_answer_on_an_expired_lease_nobody_took_is_kept():
    project, _, (a,) = project_with_members()
    item = ItemFactory(project=project)
    held = lease(project, a)
    Lease.objects.filter(pk=held.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    annotation, created = annotation_submit(item=item, user=a, label_class=project.classes.first())
    assert created and Item.objects.get(pk=item.pk).is_done


def test_double_submit_stores_one_annotation():
    project, _, (annotator,) = project_with_members()
    item = ItemFactory(project=project)
    lease(project, annotator)
    cat = project.classes.get(name="cat")
    first, created_first = annotation_submit(item=item, user=annotator, label_class=cat)
    second, created_second = annotation_submit(item=item, user=annotator, label_class=cat)
    assert (created_first, created_second) == (True, False) and first.pk == second.pk
    assert Annotation.objects.count() == 1
    assert Item.objects.get(pk=item.pk).annotation_count == 1


def test_changing_an_answer_keeps_history_and_counts_once():
    project, _, (annotator,) = project_with_members()
    item = ItemFactory(project=project)
    lease(project, annotator)
    cat, dog = project.classes.get(name="cat"), project.classes.get(name="dog")
    first, _ = annotation_submit(item=item, user=annotator, label_class=cat)
    changed, created = annotation_submit(item=item, user=annotator, label_class=dog)
    assert created and changed.supersedes == first
    assert list(Annotation.objects.filter(is_current=True)) == [changed]
    assert Annotation.objects.count() == 2
    assert Item.objects.get(pk=item.pk).annotation_count == 1


@pytest.mark.dbcompat
def test_one_current_annotation_is_enforced_by_the_database():
    project, _, (annotator,) = project_with_members()
    item = ItemFactory(project=project)
    cat = project.classes.get(name="cat")
    Annotation.objects.create(item=item, annotator=annotator, label_class=cat)
    with pytest.raises(IntegrityError), transaction.atomic():
        Annotation.objects.create(item=item, annotator=annotator, label_class=cat)


@pytest.mark.dbcompat
def test_lease_slot_is_unique_in_the_database():
    project, _, (a, b) = project_with_members(annotators=2)
    item = ItemFactory(project=project)
    now = timezone.now()
    Lease.objects.create(item=item, annotator=a, slot=0, leased_at=now, expires_at=now)
    with pytest.raises(IntegrityError), transaction.atomic():
        Lease.objects.create(item=item, annotator=b, slot=0, leased_at=now, expires_at=now)


def test_annotators_per_item_serves_an_item_to_that_many_different_annotators():
    project, _, (a, b, c) = project_with_members(annotators=3, annotators_per_item=2)
    item = ItemFactory(project=project)
    cat = project.classes.get(name="cat")
    assert lease(project, a).item == item
    assert lease(project, b).item == item
    assert lease(project, c) is None
    annotation_submit(item=item, user=a, label_class=cat)
    assert not Item.objects.get(pk=item.pk).is_done
    annotation_submit(item=item, user=b, label_class=cat)
    assert Item.objects.get(pk=item.pk).is_done
    assert lease(project, c) is None
    assert lease(project, a) is None  # already answered it


def test_lowering_annotators_per_item_marks_items_done():
    project, _, (a,) = project_with_members(annotators_per_item=2)
    item = ItemFactory(project=project)
    lease(project, a)
    annotation_submit(item=item, user=a, label_class=project.classes.first())
    project_settings_update(project=project, annotators_per_item=1)
    assert Item.objects.get(pk=item.pk).is_done


def test_skip_returns_the_item_to_others_but_not_to_me():
    project, _, (a, b) = project_with_members(annotators=2)
    item = ItemFactory(project=project)
    lease(project, a)
    item_skip(item=item, user=a)
    assert Skip.objects.filter(item=item, annotator=a).exists()
    assert lease(project, a) is None
    assert lease(project, b).item == item


@pytest.mark.dbcompat
@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_annotators_never_hold_the_same_item():
    project, _, annotators = project_with_members(annotators=20)
    ItemFactory.create_batch(200, project=project)
    cat = project.classes.get(name="cat")
    served: list[tuple[int, int]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(len(annotators))

    def annotate(user):
        try:
            start.wait()
            while True:
                result = item_lease_next(project=project, user=user)
                if result is None:
                    return
                served.append((result.lease.item_id, user.pk))
                annotation_submit(item=result.lease.item, user=user, label_class=cat)
        except BaseException as exc:  # surfaced in the main thread below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=annotate, args=(u,)) for u in annotators]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    per_item = Counter(item_id for item_id, _ in served)
    assert len(per_item) == 200 and max(per_item.values()) == 1  # nobody shared an item
    assert Annotation.objects.count() == 200
    assert Item.objects.filter(project=project, is_done=True).count() == 200
    assert len({user for _, user in served}) > 1  # the work really was spread


def test_scored_items_come_first_then_the_unscored_in_random_order():
    project, _, (annotator,) = project_with_members()
    version = ModelVersionFactory(project=project)
    late, early, scored = (ItemFactory(project=project, random_key=k) for k in (0.9, 0.1, 0.5))
    PredictionFactory(item=scored, model_version=version, acquisition_score=0.3)
    project.current_model_version = version
    project.save()
    cat = project.classes.get(name="cat")
    order = []
    while (result := item_lease_next(project=project, user=annotator)) is not None:
        order.append(result.lease.item)
        annotation_submit(item=result.lease.item, user=annotator, label_class=cat)
    assert order == [scored, early, late]


def test_an_item_with_an_expired_slot_and_an_answered_slot_is_served_once_more():
    project, _, (a, b, c) = project_with_members(annotators=3, annotators_per_item=2)
    item = ItemFactory(project=project)
    cat = project.classes.get(name="cat")
    assert lease(project, a).item == item
    annotation_submit(item=item, user=a, label_class=cat)
    held = lease(project, b)
    Lease.objects.filter(pk=held.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    taken = lease(project, c)  # b's slot expired: c takes it over, nobody gets a third
    assert taken.item == item and taken.pk == held.pk and taken.annotator == c
    assert lease(project, a) is None
    assert Lease.objects.filter(item=item).count() == 2


def test_who_loses_the_race_for_the_best_item_gets_a_random_one_of_the_next(monkeypatch):
    """Annotators asking at the same moment: one gets the best item, the others spread over
    the next candidates instead of queuing for the second best, third best..."""
    from core.services import queue

    project, _, (annotator,) = project_with_members()
    items = [ItemFactory(project=project, random_key=k / 100) for k in range(30)]
    real_claim = queue.lease_claim

    def best_is_taken(**kwargs):  # as if another annotator won the best item just now
        return None if kwargs["item_id"] == items[0].pk else real_claim(**kwargs)

    monkeypatch.setattr(queue, "lease_claim", best_is_taken)
    got = []
    for _ in range(10):
        result = item_lease_next(project=project, user=annotator)
        got.append(items.index(result.lease.item))
        Lease.objects.filter(pk=result.lease.pk).delete()
    assert all(1 <= position < queue.CANDIDATES_PER_ATTEMPT for position in got)
    assert len(set(got)) > 1  # not all queuing for the second best


def _scored_project(scores, **settings):
    project, _, annotators = project_with_members(annotators=3, **settings)
    version = ModelVersionFactory(project=project)
    items = [ItemFactory(project=project) for _ in scores]
    for item, score in zip(items, scores, strict=True):
        PredictionFactory(item=item, model_version=version, acquisition_score=score)
    project.current_model_version = version
    project.save()
    return project, version, items, annotators


def _open_in_index(version) -> set[int]:
    return set(
        Prediction.objects.filter(model_version=version, item_open=True).values_list(
            "item_id", flat=True
        )
    )


@pytest.mark.dbcompat
def test_a_done_item_leaves_the_scored_queue_index():
    """The queue's index skips items answered since the model version was made, so a lease
    does not step over every answer given since the last training run."""
    project, version, (best, second, third), (a, b, _) = _scored_project((0.9, 0.5, 0.1))
    cat = project.classes.get(name="cat")
    assert lease(project, a).item == best
    annotation_submit(item=best, user=a, label_class=cat)
    assert _open_in_index(version) == {second.pk, third.pk}
    assert lease(project, b).item == second


def test_with_two_answers_per_item_the_second_answer_closes_it():
    project, version, (item,), (a, b, c) = _scored_project((0.9,), annotators_per_item=2)
    cat = project.classes.get(name="cat")
    for user in (a, b):
        assert lease(project, user).item == item
        annotation_submit(item=item, user=user, label_class=cat)
        assert _open_in_index(version) == (set() if user == b else {item.pk})
    assert lease(project, c) is None


def test_raising_annotators_per_item_puts_done_items_back_in_the_index():
    project, version, (item, other), (a, b, _) = _scored_project((0.9, 0.1))
    cat = project.classes.get(name="cat")
    lease(project, a)
    annotation_submit(item=item, user=a, label_class=cat)
    project_settings_update(project=project, annotators_per_item=2)
    assert _open_in_index(version) == {item.pk, other.pk}
    assert lease(project, b).item == item  # the best score again, for its second answer
    project_settings_update(project=project, annotators_per_item=1)
    assert _open_in_index(version) == {other.pk}


def test_a_stale_open_mark_never_serves_a_done_item():
    """item_open may lag behind (an answer recorded against the previous version while a
    new one was switched in): the queue still checks the item itself."""
    project, version, (item, other), (a, _, _) = _scored_project((0.9, 0.1))
    Item.objects.filter(pk=item.pk).update(is_done=True, annotation_count=1)
    assert _open_in_index(version) == {item.pk, other.pk}
    assert lease(project, a).item == other


def test_switching_to_a_version_closes_items_answered_while_it_was_made():
    project, old, (done, still_open), (a, _, _) = _scored_project((0.9, 0.1))
    new = ModelVersionFactory(project=project)
    for item in (done, still_open):
        PredictionFactory(item=item, model_version=new, acquisition_score=0.5)
    lease(project, a)
    annotation_submit(item=done, user=a, label_class=project.classes.get(name="cat"))
    assert _open_in_index(new) == {done.pk, still_open.pk}  # answered against the old one
    version_switch(project=project, version=new)
    assert _open_in_index(new) == {still_open.pk}


@pytest.mark.dbcompat
def test_an_answer_on_an_item_i_settled_in_review_while_holding_it_changes_my_answer():
    """The one way to have a current answer and an open lease on the same item: the first
    attempt (lease first) hits the one-current-answer constraint and the answer is stored
    as a change instead; nothing of the first attempt is kept."""
    project, admin, (a,) = project_with_members()
    item = ItemFactory(project=project)
    cat, dog = project.classes.get(name="cat"), project.classes.get(name="dog")
    assert lease(project, admin).item == item
    review = annotation_review(item=item, reviewer=admin, label_class=dog)
    assert annotation_submit(item=item, user=admin, label_class=dog) == (review, False)
    changed, created = annotation_submit(item=item, user=admin, label_class=cat)
    assert created and changed.supersedes == review and changed.is_current
    assert Annotation.objects.filter(item=item).count() == 2
    assert Lease.objects.get(item=item).completed_at is None  # as before: the review took no slot
    assert Item.objects.get(pk=item.pk).annotation_count == 0


@pytest.mark.dbcompat
def test_a_lease_comes_with_the_current_versions_suggestion_for_its_item():
    project, _, (annotator,) = project_with_members()
    cat = project.classes.get(name="cat")
    version = ModelVersionFactory(project=project, metrics={"curve": list(range(1000))})
    scored, order_only, unscored = (
        ItemFactory(project=project, random_key=key) for key in (0.1, 0.2, 0.3)
    )
    suggestion = PredictionFactory(
        item=scored, model_version=version, predicted_class=cat, acquisition_score=0.9
    )
    # A cold-start order scores an item but suggests no class.
    PredictionFactory(item=order_only, model_version=version, acquisition_score=0.8)
    project.current_model_version = version
    project.save()

    first = item_lease_next(project=project, user=annotator)
    assert first.lease.item == scored and first.suggestion == suggestion
    assert first.suggestion.predicted_class == cat and first.suggestion.model_version == version
    assert first.lease.item.project is project  # read from memory, not queried again
    refreshed = item_lease_next(project=project, user=annotator)
    assert refreshed.created is False and refreshed.suggestion == suggestion

    annotation_submit(item=first.lease.item, user=annotator, label_class=cat)
    second = item_lease_next(project=project, user=annotator)
    assert second.lease.item == order_only and second.suggestion is None
    annotation_submit(item=second.lease.item, user=annotator, label_class=cat)
    third = item_lease_next(project=project, user=annotator)
    assert third.lease.item == unscored and third.suggestion is None
