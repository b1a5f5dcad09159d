"""What the labeling page serves next: a single card or a verification page.

- **cards**: one image at a time, the image the strategy ranks first;
- **pages**: a verification page while the model has one worth serving, else a card;
- **auto** (the default): cards while the model is still learning fast, then a page when its
  expected annotator seconds per right label (the cost model in core/effort.py, on the
  tiles' calibrated confidences) are fewer than those of the next card, once the cards
  since the last page have taken twice the seconds that page did (`page_due`): two thirds
  of the annotator's time go to the cards the model learns most from, a third to the pages
  they confirm fastest, so that the pages' easy labels do not starve the model of hard
  ones. (One card between two pages, the rule before, gave the model one label it learns
  from per ~36 it confirms: on 5,000 Fashion-MNIST images it stayed at 77-79 % test
  accuracy from 150 to 1,250 labels, where 180 random labels reach 82 %. Measured in
  bench/human_effort.py at half, once and twice a page's seconds: twice was best on
  Fashion-MNIST and within 2 % on the dataset goal on CIFAR-10; stop 35 in
  docs/benchmarks/human-effort.md.)

"Still learning fast" is measured, not guessed: each training run records the share of the
pool (labeled images included: a fixed stop set) whose predicted class changed since the
version before, per label added (`changed_per_label`, core/services/training.py). Above
`SETTLED_CHANGE_PER_LABEL` the model is still moving and the auto mode serves cards: a
page's tiles are the model's confident answers, which teach it little, and a better model
later puts more of the pool on pages.
On CIFAR-10 (EfficientNet-Lite0 features, 1,000 images, a version every 20 labels) the
rate falls to 0.3 % per label at about 200 labels, near where the model reaches 90 % of its
full-label accuracy. In bench/human_effort.py, against one-by-one labeling, waiting for it
took the model goal from ×1.32 to ×1.19 (CIFAR-10), from ×1.73 to ×0.73 (5,000 CIFAR-10
images) and from ×1.22 to ×1.00 (Fashion-MNIST), and a pool labeled 95 % right from ×0.77
to ×0.68 (CIFAR-10) and from ×0.66 to ×0.59 (5,000 images) but from ×0.47 to ×0.53
(Fashion-MNIST, whose early pages were already precise): docs/benchmarks/human-effort.md.

While the model is still learning (auto mode), its cards are audits: open images drawn at
random, shown without a suggestion (core/services/queue.py). Their answers are the random
sample the pseudo-label cuts are certified on, and they must come early, while the open pool
still holds the images pseudo-labels could take (pages take them fast once the model has
settled). In the card phase an audit costs what the strategy's card would have (no card is
pre-selected that early), and with a pretrained encoder the strategy's picks teach the model
little more than random ones (margin: +1.3 % area under the learning curve on CIFAR-10).
Once the model has settled, cards are the strategy's, with the project's `audit_share` of
audits among them.

Whatever the mode, what the annotator holds comes first: an open card, then an open page.
"""

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Max
from django.utils import timezone

from core.effort import COSTS, page_actions
from core.models import LabelingMode, Lease, Project, VerificationPage
from core.selectors.queue import item_with_suggestion, queue_candidate_ids
from core.services.queue import LeaseResult, item_lease_next
from core.services.verification import page_held, page_lease, page_plan


@dataclass(frozen=True)
class Task:
    """One of the two: `card` (a lease and its suggestion) or `page`."""

    card: LeaseResult | None = None
    page: VerificationPage | None = None


def _holds_card(project: Project, user: AbstractBaseUser) -> bool:
    return Lease.objects.filter(
        item__project=project,
        annotator=user,
        completed_at__isnull=True,
        expires_at__gt=timezone.now(),
        page__isnull=True,
    ).exists()


def last_was_page(project: Project, user: AbstractBaseUser) -> bool:
    """Whether the user's latest answer was a page (compared with their latest card)."""
    page = VerificationPage.objects.filter(
        project=project, annotator=user, completed_at__isnull=False
    ).aggregate(at=Max("completed_at"))["at"]
    if page is None:
        return False
    card = Lease.objects.filter(
        item__project=project, annotator=user, completed_at__isnull=False, page__isnull=True
    ).aggregate(at=Max("completed_at"))["at"]
    return card is None or page > card


CARD_SECONDS_PER_PAGE_SECOND = 2.0
"""The settled auto mode's split of the annotator's time: seconds of cards owed per second of
the last page (2: two thirds on cards; see the module doc)."""


def page_due(project: Project, user: AbstractBaseUser) -> bool:
    """Whether the user's cards since their last page have taken CARD_SECONDS_PER_PAGE_SECOND
    times the seconds that page did (under the cost model, a card priced as choosing a
    class): the settled auto mode splits the annotator's time between what the model learns
    from and what the annotator confirms fastest (see the module doc). True before the
    first page."""
    page = (
        VerificationPage.objects.filter(project=project, annotator=user, completed_at__isnull=False)
        .order_by("-completed_at", "-id")
        .only("item_ids", "rejected_ids", "completed_at")
        .first()
    )
    if page is None:
        return True
    cards = Lease.objects.filter(
        item__project=project,
        annotator=user,
        completed_at__gt=page.completed_at,
        page__isnull=True,
    ).count()
    page_seconds = COSTS.seconds(
        page_actions(tiles=len(page.item_ids), marked=len(page.rejected_ids))
    )
    return cards * COSTS.choose_s >= CARD_SECONDS_PER_PAGE_SECOND * page_seconds


SETTLED_CHANGE_PER_LABEL = 0.003


def model_settled(*, project: Project) -> bool:
    """Whether the serving model has stopped moving (see the module doc): a version from
    before the measurement counts as settled, a first version (nothing to compare) not."""
    version = project.current_model_version
    if version is None or "changed_per_label" not in (version.metrics or {}):
        return version is not None
    rate = version.metrics["changed_per_label"]
    return rate is not None and rate <= SETTLED_CHANGE_PER_LABEL


def next_card_seconds(*, project: Project, user: AbstractBaseUser) -> float:
    """Expected seconds for the card the queue would serve next (its suggestion confirmed with
    the probability of its confidence when pre-selected; a class chosen otherwise)."""
    upcoming = queue_candidate_ids(project=project, user=user, limit=1)
    if not upcoming:
        return float("inf")
    _, suggestion = item_with_suggestion(item_id=upcoming[0], project=project)
    preselected = suggestion is not None and suggestion.preselected
    return COSTS.card_seconds(preselected_confidence=suggestion.confidence if preselected else None)


def next_task(*, project: Project, user: AbstractBaseUser, mode: str | None = None) -> Task | None:
    """Lease what `user` labels next under `mode` (default: the project's); None when nothing
    is left for them."""
    mode = mode or project.labeling_mode
    if not _holds_card(project, user):
        held = page_held(project=project, user=user)
        if held is not None:
            return Task(page=held)
        if mode == LabelingMode.PAGES or (
            mode == LabelingMode.AUTO and model_settled(project=project) and page_due(project, user)
        ):
            plan = page_plan(project=project, user=user)
            if plan is not None and (
                mode == LabelingMode.PAGES
                or plan.seconds_per_label < next_card_seconds(project=project, user=user)
            ):
                page = page_lease(project=project, user=user, plan=plan)
                if page is not None:
                    return Task(page=page)
    # While the model is still learning, every card is an audit (a random open image, among
    # all of them: the model learns from these too; see the module doc); the strategy's picks
    # take over once it has settled.
    learning = mode == LabelingMode.AUTO and not model_settled(project=project)
    card = item_lease_next(
        project=project,
        user=user,
        audit_share=1.0 if learning else None,
        audit_top_share=0.0 if learning else None,
    )
    return Task(card=card) if card is not None else None
