"""What the labeling page serves next (core/services/labeling.py): cards, pages, or both."""

import pytest

from core.models import LabelingMode
from core.services.labeling import next_task
from core.services.queue import annotation_submit
from core.services.verification import page_submit
from tests.core.test_verification import confident_pool
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def test_auto_gives_the_cards_the_model_learns_from_twice_the_seconds_of_its_pages():
    """A page of 10 tiles costs 10 looks and an accept (6.55 s); a card, choosing a class,
    2.9 s: five cards (14.5 s ≥ 2 × 6.55 s) come before the next page, not four (11.6 s)."""
    project, (ann,), cat, dog, items = confident_pool(n=40, page_size=10)
    first = next_task(project=project, user=ann)
    assert first.page is not None  # 0.5 s a tile beats choosing a class (2.9 s)
    page_submit(page=first.page, user=ann, rejected_ids=set())
    served = []
    for _ in range(5):
        task = next_task(project=project, user=ann)
        assert task.card is not None
        served.append(task.card.lease.item)
        annotation_submit(item=task.card.lease.item, user=ann, label_class=cat)
    assert served[0] == items[-1]  # the strategy's first choice
    assert next_task(project=project, user=ann).page is not None


def test_a_page_with_marked_tiles_is_owed_more_card_seconds():
    """Marking costs (P + K = 1.3 s a tile): a page of 10 with 4 marked took 11.75 s, so
    nine cards (26.1 s ≥ 23.5 s) come before the next page, where an unmarked one needed
    five."""
    project, (ann,), cat, dog, items = confident_pool(n=40, page_size=10)
    page = next_task(project=project, user=ann).page
    page_submit(page=page, user=ann, rejected_ids=set(page.item_ids[:4]))
    for _ in range(9):
        task = next_task(project=project, user=ann)
        assert task.card is not None
        annotation_submit(item=task.card.lease.item, user=ann, label_class=cat)
    assert next_task(project=project, user=ann).page is not None


def test_cards_mode_never_serves_a_page_and_pages_mode_serves_them_back_to_back():
    project, (ann,), *_ = confident_pool(n=40, page_size=10)
    assert next_task(project=project, user=ann, mode=LabelingMode.CARDS).card is not None
    other = MembershipFactory(project=project).user
    first = next_task(project=project, user=other, mode=LabelingMode.PAGES).page
    page_submit(page=first, user=other, rejected_ids=set())
    assert next_task(project=project, user=other, mode=LabelingMode.PAGES).page is not None


def test_a_held_card_comes_before_a_page():
    project, (ann,), *_ = confident_pool(n=40, page_size=10)
    card = next_task(project=project, user=ann, mode=LabelingMode.CARDS).card
    again = next_task(project=project, user=ann, mode=LabelingMode.PAGES)
    assert again.card is not None and again.card.lease.pk == card.lease.pk


@pytest.mark.parametrize(
    ("changed_per_label", "page"), [(None, False), (0.01, False), (0.003, True)]
)
def test_auto_serves_cards_while_the_model_still_moves(changed_per_label, page):
    """A first version (nothing to compare) or one whose predictions still move by more than
    0.3 % of the pool per label gets cards; a settled one pages. Pages mode pages anyway."""
    project, (ann,), *_ = confident_pool(n=40, page_size=10)
    version = project.current_model_version
    version.metrics = {**version.metrics, "changed_per_label": changed_per_label}
    version.save()
    assert (next_task(project=project, user=ann).page is not None) is page
    other = MembershipFactory(project=project).user
    assert next_task(project=project, user=other, mode=LabelingMode.PAGES).page is not None


@pytest.mark.parametrize(("changed_per_label", "audits"), [(0.01, 8), (0.003, 0)])
def test_auto_cards_are_audits_while_the_model_learns_and_the_strategys_once_it_settled(
    changed_per_label, audits
):
    """Audits (random open images) must come while the open pool still holds what
    pseudo-labels could take: every auto card is one while the model still moves; once it
    settled, the project's share (next to none here) applies. Cards mode keeps the strategy's
    order. The learning phase's audits are drawn among all the open images (the model learns
    from them too), never at the top."""
    from core.models import Project

    project, (ann,), cat, dog, items = confident_pool(n=40, page_size=10)
    # on, but never drawn; and while the model learns, audits are drawn among all the open
    # images, whatever share the project would draw at the top once it settled
    Project.objects.filter(pk=project.pk).update(audit_share=1e-9, audit_top_share=1.0)
    project.refresh_from_db()
    version = project.current_model_version
    version.metrics = {**version.metrics, "changed_per_label": changed_per_label}
    version.save()
    served = []
    for _ in range(8):
        user = MembershipFactory(project=project).user
        card = next_task(project=project, user=user, mode=LabelingMode.AUTO).card
        if card is None:  # a settled model pages; the card comes after
            page = next_task(project=project, user=user).page
            page_submit(page=page, user=user, rejected_ids=set())
            card = next_task(project=project, user=user).card
        served.append(card.lease.audit_of_open)
        annotation_submit(item=card.lease.item, user=user, label_class=cat)
    assert sum(served) == audits
    other = MembershipFactory(project=project).user
    plain = next_task(project=project, user=other, mode=LabelingMode.CARDS).card
    assert not plain.lease.audit_of_open
