"""What the simulated annotator's cards and pages count as, and the pool's dataset accuracy.

The prices are in core/effort.py (the product's labeling policy uses them too)."""

from core.effort import ACTION_KINDS, COSTS, CostModel, actions_count

__all__ = [
    "ACTION_KINDS",
    "COSTS",
    "CostModel",
    "actions_count",
    "card_action",
    "dataset_accuracy",
    "pseudo_label_hits",
    "pseudo_label_hits_by_class",
]


def card_action(*, preselected: bool, preselected_right: bool) -> str:
    """What answering one card takes: Enter on a right pre-selection, else choosing a class."""
    return "confirm" if preselected and preselected_right else "choose"


def dataset_accuracy(
    *, truth: dict[int, int], human: dict[int, int], pseudo: dict[int, int]
) -> tuple[float, float]:
    """(accuracy, coverage) of the whole pool's labels as an export would give them: the
    human label where there is one, else the model's pseudo-label (`pseudo`), else none.
    Accuracy counts unlabeled items as wrong."""
    right = covered = 0
    for item_id, true_class in truth.items():
        label = human.get(item_id, pseudo.get(item_id))
        if label is None:
            continue
        covered += 1
        right += label == true_class
    total = max(len(truth), 1)
    return round(right / total, 4), round(covered / total, 4)


def pseudo_label_hits_by_class(
    *, truth: dict[int, int], human: dict[int, int], pseudo: dict[int, int]
) -> dict[int, tuple[int, int]]:
    """{pseudo-label class: (right, used)} for the pseudo-labels an export would use: those
    of items no person labeled. A pooled cut promises its precision over all classes
    together; class by class is where it fails (one class 39 % right on Fashion-MNIST,
    stop 33 in docs/benchmarks/human-effort.md)."""
    hits: dict[int, tuple[int, int]] = {}
    for item, label in pseudo.items():
        if item in human or item not in truth:
            continue
        right, used = hits.get(label, (0, 0))
        hits[label] = (right + (label == truth[item]), used + 1)
    return hits


def pseudo_label_hits(
    *, truth: dict[int, int], human: dict[int, int], pseudo: dict[int, int]
) -> tuple[int, int]:
    """(right, used) for the pseudo-labels an export would use: those of items no person
    labeled. Their precision is what the per-class thresholds promise."""
    by_class = pseudo_label_hits_by_class(truth=truth, human=human, pseudo=pseudo).values()
    return sum(right for right, _ in by_class), sum(used for _, used in by_class)
