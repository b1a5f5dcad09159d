"""When a suggestion is worth a key: the confidence above which it may be pre-selected.

A pre-selected class is accepted with one key, so it has to be right nearly always, or the
annotator's Enter turns into a wrong label. `preselect_threshold` takes the confidences and
hit/miss of held-out predictions (out-of-fold on the labels, or a zero-shot model's on the
labeled items) and returns the lowest confidence at which the suggestions at or above it are
right at least `target` of the time, judged conservatively: the lower end of the Wilson score
interval must clear the target, with at least `min_support` predictions above the threshold.
Below it the suggestion is shown ranked, never selected.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

DEFAULT_TARGET = 0.9
DEFAULT_MIN_SUPPORT = 10
DEFAULT_Z = 1.645  # one-sided 95 %: the largest cut that clears is chosen, so its own
# estimate is optimistic (z = 1 missed the target on fresh data in 15-23 % of draws, 1.645 in 2-6 %)


@dataclass(frozen=True)
class PreselectThreshold:
    """`threshold` None: never pre-select. `precision` is measured on the `support` held-out
    predictions at or above the threshold, `share` is their share of all `predictions`."""

    threshold: float | None
    target: float
    support: int
    precision: float | None
    share: float
    predictions: int

    def as_dict(self) -> dict:
        return asdict(self)


def wilson_lower_bound(hits: np.ndarray, n: np.ndarray, z: float = DEFAULT_Z) -> np.ndarray:
    """Lower end of the Wilson score interval for `hits` successes in `n` trials."""
    n = np.maximum(np.asarray(n, dtype=float), 1.0)
    p = np.asarray(hits, dtype=float) / n
    centre = p + z * z / (2 * n)
    spread = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n)


def preselect_threshold(
    confidence: np.ndarray,
    correct: np.ndarray,
    *,
    target: float = DEFAULT_TARGET,
    min_support: int = DEFAULT_MIN_SUPPORT,
    z: float = DEFAULT_Z,
) -> PreselectThreshold:
    """The lowest confidence whose suggestions at or above it are right ≥ `target` (see the
    module doc). Ties in confidence go in or out together."""
    confidence = np.asarray(confidence, dtype=float)
    correct = np.asarray(correct, dtype=bool)
    if confidence.shape != correct.shape or confidence.ndim != 1:
        raise ValueError("confidence and correct must be 1-d arrays of the same length")
    if not 0.0 < target <= 1.0:
        raise ValueError("target must be in (0, 1]")
    n = len(confidence)
    never = PreselectThreshold(None, target, 0, None, 0.0, n)
    if n == 0:
        return never
    order = np.argsort(-confidence, kind="stable")
    sorted_conf, hits = confidence[order], np.cumsum(correct[order])
    counts = np.arange(1, n + 1)
    # Only cut where the next prediction is less confident: equal confidences stay together.
    cut = np.append(sorted_conf[1:] < sorted_conf[:-1], True)
    ok = cut & (counts >= min_support) & (wilson_lower_bound(hits, counts, z) >= target)
    if not ok.any():
        return never
    last = int(np.flatnonzero(ok)[-1])
    return PreselectThreshold(
        threshold=float(sorted_conf[last]),
        target=target,
        support=last + 1,
        precision=float(hits[last] / (last + 1)),
        share=(last + 1) / n,
        predictions=n,
    )
