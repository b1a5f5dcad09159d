"""Human effort: what an annotator does, and what it costs in seconds (one place).

The labeling policy (core/services/labeling.py) chooses between a single card and a
verification page by these prices, and `simulate` and `bench/human_effort.py` turn a session
into annotator seconds with them, so the product and its benchmark agree.

The cost model applies the keystroke-level model (KLM: Card, Moran & Newell, "The
keystroke-level model for user performance time with interactive systems", Communications
of the ACM 23(7), 1980) to the labeling page, which is keyboard-first:

- K, a key press (or a mouse button press and release): 0.20 s (KLM's average skilled typist);
- M, a mental act (look at an image and decide, or recall which key a class is on):
  1.35 s (KLM's mental preparation);
- P, pointing at a target on screen with the mouse: 1.10 s (KLM).

Placing M by KLM's heuristics:

- **confirm** (a card): a class is pre-selected and it is right. One look and Enter: M + K.
- **choose** (a card): nothing is pre-selected (or a wrong class is). One look, recalling the
  class's key, and the key: 2M + K.
- **skip** (a card): one look and the skip key: M + K.
- **tile look** (a verification page): every tile is looked at and judged "is it the page's
  class?", whether or not it is then marked. 0.5 s per tile, an assumption: a yes/no
  judgement of one image against one named class is far quicker than choosing among all
  classes (M), and Krishna et al. ("Embracing Error to Enable Rapid Crowdsourcing", CHI 2016)
  measured yes/no verification of a stream of images about 10× faster than deliberate
  judgements, at about 0.1 s per image with some errors. We price it at five times that.
  `bench/human_effort.py` reports the seconds again at 1.0 s per tile, from the same counts.
- **toggle** (a page): mark a wrong tile, by clicking it (P + K) or by its key.
- **accept page**: the last check and Enter: M + K.

`COSTS` is the one place to change these; every figure that uses them names the model.
"""

from collections import Counter
from dataclasses import dataclass, replace

KEY_S = 0.20  # KLM K: one key press, average skilled typist
MENTAL_S = 1.35  # KLM M: mental preparation (look and decide; recall a key)
POINT_S = 1.10  # KLM P: point with the mouse
TILE_LOOK_S = 0.50  # a yes/no look at one tile of a verification page (see above)

ACTION_KINDS = ("confirm", "choose", "skip", "toggle", "accept_page")
"""What an annotator does with a key or a click. Looking at a tile is not an action, but it
costs seconds (`tile_look`)."""


@dataclass(frozen=True)
class CostModel:
    """Seconds per action kind and per tile looked at (see the module docstring)."""

    confirm_s: float = MENTAL_S + KEY_S
    choose_s: float = 2 * MENTAL_S + KEY_S
    skip_s: float = MENTAL_S + KEY_S
    tile_look_s: float = TILE_LOOK_S
    toggle_s: float = POINT_S + KEY_S
    accept_page_s: float = MENTAL_S + KEY_S
    source: str = (
        "keystroke-level model (Card, Moran & Newell 1980): K 0.20 s, M 1.35 s, P 1.10 s; "
        "0.5 s per verification tile looked at"
    )

    def seconds(self, counts: Counter) -> float:
        """Seconds for `counts` of actions (ACTION_KINDS) and tiles looked at (`tile_look`)."""
        return round(
            counts["confirm"] * self.confirm_s
            + counts["choose"] * self.choose_s
            + counts["skip"] * self.skip_s
            + counts["toggle"] * self.toggle_s
            + counts["accept_page"] * self.accept_page_s
            + counts["tile_look"] * self.tile_look_s,
            3,
        )

    def with_tile_look(self, seconds: float) -> "CostModel":
        return replace(self, tile_look_s=seconds, source=f"{self.source} (tile look {seconds} s)")

    # --- what the labeling policy compares ------------------------------------------------------

    def card_seconds(self, *, preselected_confidence: float | None) -> float:
        """Expected seconds for one card: a pre-selected suggestion (calibrated confidence c)
        is confirmed with probability c and otherwise a class is chosen; without one, a class
        is chosen."""
        if preselected_confidence is None:
            return self.choose_s
        c = min(max(preselected_confidence, 0.0), 1.0)
        return c * self.confirm_s + (1 - c) * self.choose_s

    def page_seconds(self, confidences: list[float]) -> float:
        """Expected seconds for a verification page whose tiles the model puts in its class with
        these (calibrated) confidences: every tile looked at, the expected wrong ones marked,
        one accept."""
        wrong = sum(1 - min(max(c, 0.0), 1.0) for c in confidences)
        return len(confidences) * self.tile_look_s + wrong * self.toggle_s + self.accept_page_s

    def page_seconds_per_label(self, confidences: list[float]) -> float:
        """Expected seconds per right label a page gives (its accepted, right tiles)."""
        right = sum(min(max(c, 0.0), 1.0) for c in confidences)
        return self.page_seconds(confidences) / right if right > 0 else float("inf")


COSTS = CostModel()


def page_actions(*, tiles: int, marked: int) -> Counter:
    """What answering a page takes: every tile looked at, each marked one toggled, one
    accept (the policy's owed cards, the dashboard and `simulate` count a page so)."""
    return Counter(tile_look=tiles, toggle=marked, accept_page=1)


def actions_count(counts: Counter) -> int:
    """Key presses and clicks in `counts` (tile looks are not actions)."""
    return sum(counts[kind] for kind in ACTION_KINDS)
