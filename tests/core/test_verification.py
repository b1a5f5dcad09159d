"""Verification pages (core/services/verification.py) and what serves them (labeling.py)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from core.models import (
    Annotation,
    AnnotationSource,
    Item,
    Lease,
    ModelVersion,
    Project,
    SuggestionRejection,
    VerificationPage,
)
from core.selectors.queue import page_candidates
from core.services.queue import QueueError, item_lease_next
from core.services.verification import (
    MIN_PAGE_TILES,
    page_lease,
    page_plan,
    page_previous,
    page_submit,
)
from tests.factories import (
    ItemFactory,
    MembershipFactory,
    ModelVersionFactory,
    PredictionFactory,
    project_with_members,
)

pytestmark = pytest.mark.django_db


def confident_pool(*, n=20, confidence=0.97, annotators=1, **settings):
    """A project whose current trained version puts `n` items in 'cat' with `confidence`."""
    project, admin, members = project_with_members(annotators=annotators, **settings)
    cat, dog = project.classes.get(name="cat"), project.classes.get(name="dog")
    version = ModelVersionFactory(
        project=project,
        kind=ModelVersion.Kind.MODEL,
        class_ids=[cat.pk, dog.pk],
        # held-out predictions were right as often as their confidence said
        metrics={"reliability": {"confidence": [0.0, 1.0], "precision": [0.0, 1.0]}},
    )
    items = ItemFactory.create_batch(n, project=project)
    for rank, item in enumerate(items):
        PredictionFactory(
            item=item,
            model_version=version,
            predicted_class=cat,
            confidence=confidence - rank * 1e-4,  # most confident first: items[0]
            probabilities=[confidence, 1 - confidence],
            acquisition_score=rank,  # the strategy would ask for the last ones first
        )
    Project.objects.filter(pk=project.pk).update(current_model_version=version)
    project.refresh_from_db()
    return project, members, cat, dog, items


def test_two_annotators_never_share_a_tile_and_cards_skip_the_tiles():
    project, (ann, bob), *_ = confident_pool(n=30, annotators=2, page_size=12)
    first = page_lease(project=project, user=ann)
    second = page_lease(project=project, user=bob)
    assert len(first.item_ids) == len(second.item_ids) == 12
    assert not set(first.item_ids) & set(second.item_ids)
    third = MembershipFactory(project=project).user
    card = item_lease_next(project=project, user=third).lease
    assert card.item_id not in set(first.item_ids) | set(second.item_ids)
    # The holder gets the same page back (a refresh), not a second one.
    assert page_lease(project=project, user=ann).pk == first.pk
    assert VerificationPage.objects.count() == 2


def test_accepting_a_page_labels_the_unmarked_tiles_once_however_often_it_is_sent():
    project, (ann,), cat, dog, items = confident_pool(page_size=10)
    page = page_lease(project=project, user=ann)
    wrong = page.item_ids[3]
    first = page_submit(page=page, user=ann, rejected_ids={wrong}, duration_ms=9000)
    again = page_submit(page=page, user=ann, rejected_ids={wrong}, duration_ms=9000)
    assert (first.accepted, first.rejected, first.changed) == (9, 1, True)
    assert (again.accepted, again.changed) == (0, False)
    labels = Annotation.objects.filter(source=AnnotationSource.VERIFIED, is_current=True)
    assert labels.count() == 9 and {a.label_class_id for a in labels} == {cat.pk}
    assert {a.suggestion_model_version_id for a in labels} == {project.current_model_version_id}
    assert all(a.duration_ms == 900 for a in labels)  # the page's time, spread over its tiles
    project.refresh_from_db()
    assert project.labels_submitted == 9  # counted once, towards the retrain trigger
    assert Item.objects.filter(is_done=True).count() == 9
    assert not Item.objects.get(pk=wrong).is_done
    assert not Lease.objects.filter(item_id=wrong).exists()  # back in the queue


def test_a_rejected_class_is_left_out_of_the_items_next_suggestion_and_pages():
    project, (ann,), cat, dog, items = confident_pool(n=MIN_PAGE_TILES, page_size=8)
    Project.objects.filter(pk=project.pk).update(audit_share=0)
    project.current_model_version.preselect_threshold = 0.5
    project.current_model_version.save()
    page = page_lease(project=project, user=ann)
    wrong = page.item_ids[0]
    page_submit(page=page, user=ann, rejected_ids={wrong})
    assert SuggestionRejection.objects.filter(item_id=wrong, label_class=cat).exists()
    # Its card: 'cat' is neither pre-selected nor offered among the likely classes.
    project.refresh_from_db()
    card = item_lease_next(project=project, user=ann)
    assert card.lease.item_id == wrong  # the only open image
    assert card.suggestion.predicted_class_id == cat.pk  # the version still says cat...
    assert not card.suggestion.preselected  # ...but the card does not select it
    assert cat.pk in card.suggestion.rejected_class_ids
    # And no page offers it as a cat again.
    other = MembershipFactory(project=project).user
    assert page_candidates(project=project, user=other) == []


def test_the_next_training_run_predicts_the_best_class_that_was_not_rejected():
    import numpy as np

    from core.services.training import rejected_classes_drop

    project, (ann,), cat, dog, items = confident_pool(n=3)
    SuggestionRejection.objects.create(item=items[1], label_class=cat, annotator=ann)
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4]])
    ids = np.array([i.pk for i in items])
    left = rejected_classes_drop(
        project=project, pool_ids=ids, probs=probs, class_ids=np.array([cat.pk, dog.pk])
    )
    assert probs[1].tolist() == [0.0, 1.0] and probs[0].tolist() == [0.9, 0.1]
    # The confidence written is the probability the model gave dog (0.1), not 1.0.
    assert left == {1: pytest.approx(0.1)}


def test_backspace_reopens_the_last_page_and_a_changed_answer_is_applied_as_a_difference():
    project, (ann,), cat, dog, items = confident_pool(n=20, page_size=10)
    page = page_lease(project=project, user=ann)
    a, b = page.item_ids[0], page.item_ids[1]
    page_submit(page=page, user=ann, rejected_ids={a})
    assert page_previous(project=project, user=ann) == page
    assert page_previous(project=project, user=ann, before=page) is None
    # On second thought: `a` is a cat after all, `b` is not.
    changed = page_submit(page=page, user=ann, rejected_ids={b})
    assert (changed.accepted, changed.withdrawn) == (1, 1)
    current = Annotation.objects.filter(is_current=True)
    assert set(current.values_list("item_id", flat=True)) == set(page.item_ids) - {b}
    assert Annotation.objects.get(item_id=b, is_current=False).page == page  # kept as history
    assert not Item.objects.get(pk=b).is_done and Item.objects.get(pk=a).is_done
    assert SuggestionRejection.objects.filter(item_id=b).exists()
    assert not SuggestionRejection.objects.filter(item_id=a).exists()
    page.refresh_from_db()
    assert page.rejected_ids == [b]


def test_a_page_answered_after_its_lease_went_to_someone_else_keeps_the_other_tiles():
    project, (ann, bob), *_ = confident_pool(n=10, annotators=2, page_size=10)
    page = page_lease(project=project, user=ann)
    past = timezone.now() - timedelta(seconds=1)
    Lease.objects.filter(page=page).update(expires_at=past)
    VerificationPage.objects.filter(pk=page.pk).update(expires_at=past)
    taken = item_lease_next(project=project, user=bob).lease  # takes over one expired tile
    assert taken.page is None and taken.item_id in page.item_ids
    answer = page_submit(page=page, user=ann, rejected_ids=set())
    assert (answer.accepted, answer.lost) == (9, 1)
    assert not Annotation.objects.filter(item_id=taken.item_id).exists()


def test_only_the_annotator_of_a_page_can_answer_it():
    project, (ann, bob), *_ = confident_pool(n=10, annotators=2, page_size=10)
    page = page_lease(project=project, user=ann)
    with pytest.raises(QueueError):
        page_submit(page=page, user=bob, rejected_ids=set())


def test_no_page_without_enough_tiles_that_are_right_often_enough():
    project, (ann,), *_ = confident_pool(n=MIN_PAGE_TILES - 1)
    assert page_plan(project=project, user=ann) is None
    project, (ann,), *_ = confident_pool(n=20, confidence=0.55)  # right 55 % of the time
    assert page_plan(project=project, user=ann) is None


def test_once_the_confident_band_is_used_up_a_page_goes_down_to_the_last_band_floor(
    monkeypatch,
):
    from core.services import verification

    monkeypatch.setattr(verification, "LAST_BAND_TILE_PRECISION", 0.6)
    project, (ann,), cat, dog, items = confident_pool(n=10, confidence=0.7)
    plan = page_plan(project=project, user=ann)  # nothing at 0.75: a page of the 0.7 band
    assert plan is not None and {i for i, *_ in plan.tiles} == {i.pk for i in items}
    # 10 looks, 3 expected marks, one accept for 7 right labels: under a card's 2.9 s
    assert plan.seconds_per_label == pytest.approx((10 * 0.5 + 3 * 1.3 + 1.55) / 7, abs=0.01)
    # While the confident band lasts, its page comes first, and the 0.7 tiles stay off it.
    version = project.current_model_version
    confident = ItemFactory.create_batch(MIN_PAGE_TILES, project=project)
    for item in confident:
        PredictionFactory(
            item=item, model_version=version, predicted_class=cat, confidence=0.9,
            probabilities=[0.9, 0.1], acquisition_score=0,
        )  # fmt: skip
    plan = page_plan(project=project, user=ann)
    assert {i for i, *_ in plan.tiles} == {i.pk for i in confident}
    # Below the last band's floor: cards.
    project, (ann,), *_ = confident_pool(n=20, confidence=0.55)
    assert page_plan(project=project, user=ann) is None
    monkeypatch.setattr(verification, "LAST_BAND_TILE_PRECISION", None)
    project, (ann,), *_ = confident_pool(n=20, confidence=0.7)
    assert page_plan(project=project, user=ann) is None


def test_a_tiles_chance_is_its_confidence_read_through_the_versions_reliability_table():
    project, (ann,), *_ = confident_pool(n=20, confidence=0.97)
    version = project.current_model_version
    # Held out, predictions at 0.97 were right only 60 % of the time: no page.
    version.metrics = {"reliability": {"confidence": [0.5, 1.0], "precision": [0.2, 0.6]}}
    version.save()
    assert page_plan(project=project, user=ann) is None
    # Too few labels to know how often they are right: no page either.
    version.metrics = {"reliability": None}
    version.save()
    assert page_plan(project=project, user=ann) is None
    version.metrics = {"reliability": {"confidence": [0.5, 0.9], "precision": [0.5, 0.99]}}
    version.save()
    plan = page_plan(project=project, user=ann)
    assert plan is not None and {p for *_, p in plan.tiles} == {0.99}  # clipped at the top


def test_the_page_planned_is_the_cheapest_class_per_right_label():
    project, (ann,), cat, dog, items = confident_pool(n=10, confidence=0.7)
    version = project.current_model_version
    for item in ItemFactory.create_batch(10, project=project):
        PredictionFactory(
            item=item, model_version=version, predicted_class=dog, confidence=0.99,
            probabilities=[0.01, 0.99], acquisition_score=0,
        )  # fmt: skip
    plan = page_plan(project=project, user=ann)
    assert plan.label_class_id == dog.pk and len(plan.tiles) == 10
    assert plan.seconds_per_label < 1.0  # 10 looks, ~0.1 toggles, one accept: ~0.7 s a label


def test_pseudo_labeled_images_are_left_to_the_audit_not_put_on_pages():
    project, (ann,), cat, dog, items = confident_pool(n=20)
    from core.models import Prediction

    Prediction.objects.filter(item__in=items[:12]).update(pseudo_labeled=True)
    plan = page_plan(project=project, user=ann)
    assert plan is not None and {i for i, *_ in plan.tiles} == {i.pk for i in items[12:]}


def test_the_dashboard_prices_a_page_by_the_cost_model_and_counts_what_it_covered():
    from core.selectors.progress import labeling_effort

    project, (ann,), cat, dog, items = confident_pool(n=10, page_size=10)
    page = page_lease(project=project, user=ann)
    page_submit(page=page, user=ann, rejected_ids={page.item_ids[0]}, duration_ms=7000)
    effort = labeling_effort(project=project)
    assert (effort["pages"], effort["verified"], effort["cards"]) == (1, 9, 0)
    assert effort["modelled_seconds"] == pytest.approx(10 * 0.5 + 1 * 1.3 + 1.55)
    assert effort["one_by_one_seconds"] == pytest.approx(9 * 2.9)
    assert effort["saved_seconds"] == pytest.approx(9 * 2.9 - 7.85, abs=0.1)
    assert effort["verified_seconds_median"] == 0.7  # 7 s over 10 tiles
    assert effort["coverage"] == pytest.approx(0.9)
