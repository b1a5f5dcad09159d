"""Human effort: what an annotator does on each card, and what it costs in seconds.

The cost model applies the keystroke-level model (KLM: Card, Moran & Newell, "The
keystroke-level model for user performance time with interactive systems", Communications
of the ACM 23(7), 1980) to the labeling page, which is keyboard-first:

- K, a key press: 0.20 s (KLM's average skilled typist, 55 wpm);
- M, a mental act (look at the image and decide, or recall which key a class is on):
  1.35 s (KLM's mental preparation).

Placing M by KLM's heuristics:

- **confirm**: a class is pre-selected and it is right. One look and Enter: M + K = 1.55 s.
- **choose**: nothing is pre-selected (or a wrong class is). One look, recalling the class's
  key, and the key: 2M + K = 2.90 s.
- **skip**: one look and the skip key: M + K.

The constants are a model, not a measurement: `COSTS` is the one place to change them, and
every figure that uses them names the model. Bulk verification pages (#21) are not in the
product yet, so they have no cost here.
"""

from collections import Counter
from dataclasses import dataclass

KEY_S = 0.20  # KLM K: one key press, average skilled typist
MENTAL_S = 1.35  # KLM M: mental preparation (look and decide; recall a key)


@dataclass(frozen=True)
class CostModel:
    """Seconds per action kind (see the module docstring for where each comes from)."""

    confirm_s: float = MENTAL_S + KEY_S
    choose_s: float = 2 * MENTAL_S + KEY_S
    skip_s: float = MENTAL_S + KEY_S
    source: str = "keystroke-level model (Card, Moran & Newell 1980): K 0.20 s, M 1.35 s"

    def seconds(self, actions: Counter) -> float:
        return round(
            actions["confirm"] * self.confirm_s
            + actions["choose"] * self.choose_s
            + actions["skip"] * self.skip_s,
            3,
        )


COSTS = CostModel()
ACTION_KINDS = ("confirm", "choose", "skip")


def card_action(*, preselected: bool, preselected_right: bool) -> str:
    """What answering one card takes: Enter on a right pre-selection, else choosing a class."""
    return "confirm" if preselected and preselected_right else "choose"


def dataset_accuracy(
    *, truth: dict[int, int], human: dict[int, int], pseudo: dict[int, int]
) -> tuple[float, float]:
    """(accuracy, coverage) of the whole pool's labels as an export would give them: the
    human label where there is one, else the model's pseudo-label where it is confident
    enough (`pseudo`), else none. Accuracy counts unlabeled items as wrong."""
    right = covered = 0
    for item_id, true_class in truth.items():
        label = human.get(item_id, pseudo.get(item_id))
        if label is None:
            continue
        covered += 1
        right += label == true_class
    total = max(len(truth), 1)
    return round(right / total, 4), round(covered / total, 4)
