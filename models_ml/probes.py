"""How well an encoder's features fit a project's labels: k-NN and linear-probe accuracy.

Marks et al. 2024 (arXiv 2407.12210) show that k-NN and linear-probe accuracy on the target
data track how well a pretrained encoder transfers, so `auto` compares encoders by both,
cross-validated on the labels so far (the same folds for every encoder), and switches only
when the best wins by a clear margin (`encoder_choose`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from models_ml.heads import LinearHead, _stratified_folds, l2_normalise
from models_ml.zero_shot import neighbour_suggestions

MIN_LABELS_PER_CLASS = 2
"""Below this many labels in some class there is no fold to test it in: no probe score."""


@dataclass(frozen=True)
class ProbeScores:
    """Cross-validated accuracies of one encoder's features on the same labels."""

    knn: float | None
    linear: float | None
    labels: int

    @property
    def score(self) -> float | None:
        """What encoders are ranked by: the mean of the two probes."""
        values = [v for v in (self.knn, self.linear) if v is not None]
        return float(np.mean(values)) if values else None

    def as_dict(self) -> dict:
        return {**asdict(self), "score": self.score}


def probe_scores(
    X: np.ndarray, y: np.ndarray, *, folds: int = 5, k: int = 10, random_state: int = 0
) -> ProbeScores:
    """k-NN (cosine, similarity-weighted, DINO-style) and logistic-regression accuracy of
    features `X` for labels `y`, by stratified k-fold; None where there are too few labels."""
    X, y = l2_normalise(X), np.asarray(y)
    classes, counts = np.unique(y, return_counts=True)
    folds = int(min(folds, counts.min())) if len(counts) else 0
    if len(classes) < 2 or folds < MIN_LABELS_PER_CLASS:
        return ProbeScores(None, None, len(y))
    knn_hits, linear_hits, tested = 0, 0, 0
    for train, test in _stratified_folds(y, folds, random_state):
        if len(np.unique(y[train])) < len(classes):
            continue
        index = np.searchsorted(classes, y[train])
        votes = neighbour_suggestions(X[test], X[train], index, len(classes), k=k)
        knn_hits += int((classes[votes.argmax(axis=1)] == y[test]).sum())
        linear = LinearHead(calibrate=False, random_state=random_state).fit(X[train], y[train])
        linear_hits += int((linear.predict(X[test]) == y[test]).sum())
        tested += len(test)
    if not tested:
        return ProbeScores(None, None, len(y))
    return ProbeScores(knn_hits / tested, linear_hits / tested, len(y))


def encoder_choose(scores: dict[str, ProbeScores], current: str, margin: float = 0.03) -> str:
    """The encoder to use: the best-scoring one when it beats `current` by at least `margin`
    (absolute accuracy), else `current`. Switching costs a re-embedding of the whole pool, so
    noise between two close encoders must not flip the choice back and forth."""
    ranked = sorted(
        ((s.score, name) for name, s in scores.items() if s.score is not None), reverse=True
    )
    if not ranked:
        return current
    best_score, best = ranked[0]
    current_score = scores[current].score if current in scores else None
    if current_score is None or best_score >= current_score + margin:
        return best
    return current
