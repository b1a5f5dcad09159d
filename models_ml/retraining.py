"""One retraining round on cached embeddings: fit the head, keep its held-out evidence, score
the pool. The worker's training run (core/services/training.py), `simulate` and
bench/retrain.py all go through here, so the benchmark times the code that serves.

The round's cost is what a project of a million images pays every `retrain_every` labels,
so each step is bounded:

- the head is fitted once; its calibration folds start from that fit and give the
  out-of-fold predictions (accuracy estimate, pre-selection threshold, reliability table);
- the pool is scored a chunk at a time straight from the store's float16 memory map
  (`models_ml.store.RowView`), never copied whole;
- strategies with per-item work beyond a score look at `MAX_CANDIDATES` items at most
  (`models_ml.strategies.candidate_rows`), and BALD's Monte-Carlo dropout samples only those.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator, clone

from models_ml.heads import (
    LinearHead,
    MLPHead,
    OutOfFold,
    PrototypeHead,
    SelfTrainingHead,
    out_of_fold,
)
from models_ml.strategies import candidate_rows, pool_scores, strategy_named

# Below this many labels per labeled class a nearest-class-mean head is both faster and
# better than logistic regression (Snell et al. 2017); the linear head takes over after.
PROTOTYPE_BELOW_PER_CLASS = 5


def head_for(*, labels: np.ndarray, seed: int = 0) -> tuple[str, BaseEstimator]:
    """The head that serves suggestions, by how many labels there are (any strategy)."""
    counts = np.unique(labels, return_counts=True)[1]
    if counts.mean() < PROTOTYPE_BELOW_PER_CLASS:
        return "prototype", PrototypeHead()
    return "linear", LinearHead(class_weight="balanced", random_state=seed)


def sampler_for(*, strategy: str, seed: int = 0) -> MLPHead | None:
    """The Monte-Carlo dropout network a strategy samples (BALD), else None. It scores, it
    does not serve: suggestions and their thresholds stay with the calibrated head, whose
    folds are cheap (an MLP would need five refits for its held-out evidence)."""
    if not strategy_named(strategy).needs_mc_samples:
        return None
    return MLPHead(random_state=seed)


@dataclass(frozen=True)
class FittedHead:
    """What a round fitted: the serving head and its name (the recipe), the held-out
    predictions on the labels (None when not asked for), the MC sampler (BALD) and how many
    pseudo-labels self-training added."""

    name: str
    head: BaseEstimator
    out_of_fold: OutOfFold | None
    sampler: MLPHead | None
    pseudo_labeled: int = 0


def head_fit(
    *,
    strategy: str,
    X: np.ndarray,
    y: np.ndarray,
    seed: int,
    self_training: float | None = None,
    X_unlabeled: np.ndarray | None = None,
    evidence: bool = True,
) -> FittedHead:
    """Fit the round's head on labeled vectors `X`, `y`.

    With `self_training` (a confidence), the head is refitted with the unlabeled items it
    predicts at least that sure as pseudo-labels. `evidence=False` skips what only the
    training run needs (calibration folds, out-of-fold predictions, the sampler): a model
    refitted for its predictions alone (`simulate` scoring the test split), whose argmax
    calibration cannot change.
    """
    name, head = head_for(labels=y, seed=seed)
    if not evidence and "calibrate" in head.get_params():
        head.set_params(calibrate=False)
    base: BaseEstimator
    if self_training is None:
        fitted = base = head.fit(X, y)
    else:
        fitted = SelfTrainingHead(head, threshold=self_training).fit(X, y, X_unlabeled=X_unlabeled)
        base, name = fitted.first_, f"{name}+self-training"
    if not evidence:
        return FittedHead(name, fitted, None, None, int(getattr(fitted, "pseudo_labeled_", 0)))
    # The linear head's calibration folds are the out-of-fold predictions (one fit, warm
    # folds); the prototype head's folds are means, so cheap to make here. With
    # self-training, the evidence is the head's before its pseudo-labels: they were never
    # checked against an answer.
    oof = getattr(base, "out_of_fold_", None) or out_of_fold(clone(head), X, y, random_state=seed)
    sampler = sampler_for(strategy=strategy, seed=seed)
    if sampler is not None:
        sampler.fit(X, y)
    return FittedHead(name, fitted, oof, sampler, int(getattr(fitted, "pseudo_labeled_", 0)))


def acquisition_scores(
    *,
    strategy: str,
    k: int,
    fitted: FittedHead,
    probs: np.ndarray,
    vectors,
    labeled: np.ndarray | None,
    seed: int,
) -> np.ndarray:
    """One score per open item (higher = ask first) under `strategy`: `probs` and `vectors`
    (an array or a `RowView`, read only where the strategy looks) are the open items'."""
    spec = strategy_named(strategy)
    rows = candidate_rows(strategy, len(probs), probs=probs, seed=seed)
    mc = None
    if spec.needs_mc_samples:
        assert fitted.sampler is not None, "head_fit makes the sampler of such a strategy"
        mc = fitted.sampler.sample_proba(vectors if rows is None else vectors[rows])
    wants_embeddings = "embeddings" in spec.needs
    return pool_scores(
        strategy,
        k,
        probs=probs,
        mc_probs=mc,
        embeddings=vectors if wants_embeddings else None,
        labeled_embeddings=labeled if wants_embeddings else None,
        seed=seed,
        candidates=rows,
    )
