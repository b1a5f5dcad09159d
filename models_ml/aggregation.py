"""Several answers per image: which label to believe, and how reliable each annotator is.

Dawid & Skene ("Maximum likelihood estimation of observer error-rates using the EM
algorithm", Applied Statistics 28(1), 1979), in its one-coin form: every annotator has one
accuracy (right with chance p, otherwise any wrong class alike). EM alternates between the
posterior of each image's true class given everyone's answers, and the accuracies and class
prior given those posteriors. (The full form, a K×K confusion matrix per annotator, overfits
at the dozens of answers per class an annotator gives here: on a toy crowd of one careful and
two careless annotators it rated the careful one 82 % right instead of 95 %.) A model's
class probabilities for an image can be folded in as one more, tempered, opinion (`beliefs`).
Unlike a majority vote, one careful annotator outweighs two careless ones, and an annotator's
measured reliability is a by-product.

Pure numpy; no Django. core/services/training.py and the exports call it through
core/selectors/common.py.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Aggregate:
    posterior: np.ndarray  # (items, classes): the chance of each class being the true one
    confusion: np.ndarray  # (annotators, classes, classes): P(answer l | truth j), one-coin
    accuracy: np.ndarray  # (annotators,): the chance an annotator's answer is right
    answers: np.ndarray  # (annotators,): answers each gave
    iterations: int

    @property
    def labels(self) -> np.ndarray:
        return self.posterior.argmax(axis=1)


def dawid_skene(
    items: np.ndarray,
    annotators: np.ndarray,
    answers: np.ndarray,
    *,
    n_items: int,
    n_annotators: int,
    n_classes: int,
    beliefs: np.ndarray | None = None,
    belief_weight: float = 0.5,
    smoothing: float = 1.0,
    max_iterations: int = 50,
    tolerance: float = 1e-6,
) -> Aggregate:
    """EM over answer triples (item index, annotator index, class index).

    `beliefs` (items × classes), when given, multiplies each image's likelihood by
    beliefs ** belief_weight (a model's opinion, tempered: it breaks ties and flags doubtful
    answers, it does not overrule people). `smoothing` sets the Dirichlet pseudo-counts of
    each confusion row (annotators are assumed better than chance until their answers say
    otherwise). Starts from the (belief-weighted) vote."""
    items = np.asarray(items, dtype=np.int64)
    annotators = np.asarray(annotators, dtype=np.int64)
    answers = np.asarray(answers, dtype=np.int64)
    if not (len(items) == len(annotators) == len(answers)):
        raise ValueError("items, annotators and answers must have the same length")
    log_beliefs = (
        belief_weight * np.log(np.clip(np.asarray(beliefs, dtype=float), 1e-6, 1.0))
        if beliefs is not None
        else np.zeros((n_items, n_classes))
    )
    # Start: the vote (with the model's opinion as a light tie-breaker).
    votes = np.zeros((n_items, n_classes))
    np.add.at(votes, (items, answers), 1.0)
    posterior = _normalise(votes + 1e-3 * np.exp(log_beliefs))
    iterations = 0
    accuracy = np.full(n_annotators, 2 / 3)
    for iterations in range(1, max_iterations + 1):  # noqa: B007 - reported
        # M-step: class prior and each annotator's accuracy (a Beta(2s, s) prior: a new
        # annotator is taken to be right 2 times in 3 until their answers say otherwise).
        class_prior = _normalise(posterior.sum(axis=0) + 1.0)
        right = np.bincount(annotators, weights=posterior[items, answers], minlength=n_annotators)
        given = np.bincount(annotators, minlength=n_annotators)
        accuracy = (right + 2 * smoothing) / (given + 3 * smoothing)
        # E-step: the posterior of every image's class. An answer l from annotator a adds
        # log p_a to class l and log((1 - p_a) / (K - 1)) to every other class.
        wrong = np.log((1 - accuracy) / max(n_classes - 1, 1))
        log_post = np.tile(np.log(class_prior), (n_items, 1)) + log_beliefs
        np.add.at(log_post, items, wrong[annotators][:, None])
        np.add.at(log_post, (items, answers), np.log(accuracy[annotators]) - wrong[annotators])
        new = _normalise(np.exp(log_post - log_post.max(axis=1, keepdims=True)))
        change = float(np.abs(new - posterior).max()) if n_items else 0.0
        posterior = new
        if change < tolerance:
            break
    off = (1 - accuracy) / max(n_classes - 1, 1)
    confusion = np.repeat(off[:, None, None], n_classes, axis=1).repeat(n_classes, axis=2)
    confusion[:, np.arange(n_classes), np.arange(n_classes)] = accuracy[:, None]
    counts = np.bincount(annotators, minlength=n_annotators)
    return Aggregate(posterior, confusion, accuracy, counts, iterations)


def _normalise(matrix: np.ndarray) -> np.ndarray:
    total = matrix.sum(axis=-1, keepdims=True)
    return np.divide(
        matrix, total, out=np.full_like(matrix, 1.0 / matrix.shape[-1]), where=total > 0
    )
