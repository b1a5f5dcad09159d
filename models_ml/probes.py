"""How well an encoder's features fit a project's labels: k-NN and linear-probe accuracy.

Marks et al. 2024 (arXiv 2407.12210) show that k-NN and linear-probe accuracy on the target
data track how well a pretrained encoder transfers, so `auto` compares encoders by both,
cross-validated on the labels so far (the same folds for every encoder), and switches only
when the best wins by a clear margin (`encoder_choose`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from models_ml.heads import LinearHead, l2_normalise, stratified_folds
from models_ml.zero_shot import neighbour_suggestions

SWITCH_MARGIN = 0.03
"""Absolute accuracy (mean of k-NN and linear) a challenger must lead the encoder in use by."""

MIN_LABELS_PER_CLASS = 2
"""Below this many labels in some class there is no fold to test it in: no probe score."""


@dataclass(frozen=True)
class ProbeScores:
    """Cross-validated accuracies of one encoder's features on the same labels."""

    knn: float | None
    linear: float | None
    labels: int
    # Per label (in input order): mean of the two probes' hits, 0, 0.5 or 1; for paired tests.
    hits: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False, compare=False)

    @property
    def score(self) -> float | None:
        """What encoders are ranked by: the mean of the two probes."""
        values = [v for v in (self.knn, self.linear) if v is not None]
        return float(np.mean(values)) if values else None

    def as_dict(self) -> dict:
        return {"knn": self.knn, "linear": self.linear, "labels": self.labels, "score": self.score}


def probe_scores(
    X: np.ndarray, y: np.ndarray, *, folds: int = 5, k: int = 10, random_state: int = 0
) -> ProbeScores:
    """k-NN (cosine, similarity-weighted, DINO-style) and logistic-regression accuracy of
    features `X` for labels `y`, by stratified k-fold; None where there are too few labels."""
    X, y = l2_normalise(X), np.asarray(y)
    classes, counts = np.unique(y, return_counts=True)
    folds = min(folds, int(counts.min())) if len(counts) else 0
    if len(classes) < 2 or folds < MIN_LABELS_PER_CLASS:
        return ProbeScores(None, None, len(y))
    knn_hits = np.full(len(y), np.nan)
    linear_hits = np.full(len(y), np.nan)
    for train, test in stratified_folds(y, folds, random_state):
        if len(np.unique(y[train])) < len(classes):
            continue
        index = np.searchsorted(classes, y[train])
        votes = neighbour_suggestions(X[test], X[train], index, len(classes), k=k)
        knn_hits[test] = classes[votes.argmax(axis=1)] == y[test]
        linear = LinearHead(calibrate=False, random_state=random_state).fit(X[train], y[train])
        linear_hits[test] = linear.predict(X[test]) == y[test]
    tested = ~np.isnan(knn_hits)
    if not tested.any():
        return ProbeScores(None, None, len(y))
    return ProbeScores(
        float(knn_hits[tested].mean()),
        float(linear_hits[tested].mean()),
        len(y),
        (knn_hits + linear_hits) / 2,
    )


def encoder_choose(
    scores: dict[str, ProbeScores], current: str, margin: float = SWITCH_MARGIN, z: float = 2.0
) -> str:
    """The encoder to use: the best-scoring one when it beats `current` clearly, else `current`.

    Clearly: by at least `margin` (absolute accuracy), and, where both were probed on the same
    labels, by `z` standard errors of the per-label paired difference. Switching costs a
    re-embedding of the whole pool, and on a few dozen labels two good encoders differ by noise
    (CIFAR-10, 20 labels: Lite0 and Lite2 swapped places twice in one run without it).
    """
    ranked = sorted(
        ((s.score, name) for name, s in scores.items() if s.score is not None), reverse=True
    )
    if not ranked:
        return current
    best_score, best = ranked[0]
    mine = scores.get(current)
    if mine is None or mine.score is None:
        return best
    if best == current or best_score < mine.score + margin:
        return current
    theirs = scores[best]
    paired = (
        ~np.isnan(theirs.hits) & ~np.isnan(mine.hits)
        if len(theirs.hits) == len(mine.hits)
        else np.zeros(0, bool)
    )
    if paired.sum() >= 2:
        difference = theirs.hits[paired] - mine.hits[paired]
        error = difference.std(ddof=1) / np.sqrt(paired.sum())
        if difference.mean() < z * error:
            return current
    return best
