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


def pseudo_label_hits(
    *, truth: dict[int, int], human: dict[int, int], pseudo: dict[int, int]
) -> tuple[int, int]:
    """(right, used) for the pseudo-labels an export would use: those of items no person
    labeled. Their precision is what the per-class thresholds promise."""
    used = [item for item in pseudo if item not in human and item in truth]
    return sum(pseudo[item] == truth[item] for item in used), len(used)
