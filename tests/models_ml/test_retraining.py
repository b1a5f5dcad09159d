"""One retraining round (models_ml/retraining.py): what the worker's training run and
bench/retrain.py share."""

import numpy as np
import pytest

from models_ml import strategies
from models_ml.heads import LinearHead, MLPHead, PrototypeHead, proba_for_classes
from models_ml.retraining import acquisition_scores, head_fit, head_for, sampler_for
from models_ml.store import RowView

from .conftest import blobs


def test_the_head_is_prototypes_for_a_few_labels_per_class_then_linear():
    assert isinstance(head_for(labels=np.repeat([0, 1, 2], 4))[1], PrototypeHead)
    assert isinstance(head_for(labels=np.repeat([0, 1, 2], 5))[1], LinearHead)


def test_the_linear_heads_calibration_folds_are_the_rounds_evidence(monkeypatch):
    """One fit (and its warm folds) gives the out-of-fold predictions: no second set of
    folds is fitted for the estimate."""
    X, y = blobs(n_per_class=30, seed=1, spread=1.5)
    fits = []
    real_fit = LinearHead.fit
    monkeypatch.setattr(LinearHead, "fit", lambda self, *a: fits.append(1) or real_fit(self, *a))
    fitted = head_fit(strategy="margin", X=X, y=y, seed=0)
    assert len(fits) == 1 and fitted.name == "linear" and fitted.sampler is None
    assert fitted.out_of_fold is fitted.head.out_of_fold_
    assert fitted.out_of_fold.covered.all() and fitted.out_of_fold.estimate.accuracy > 0.8


def test_bald_scores_with_a_sampler_while_the_calibrated_head_serves():
    X, y = blobs(n_per_class=30, seed=2)
    fitted = head_fit(strategy="bald", X=X, y=y, seed=0)
    assert isinstance(fitted.head, LinearHead) and isinstance(fitted.sampler, MLPHead)
    assert sampler_for(strategy="entropy") is None


def test_self_training_keeps_the_evidence_of_the_head_before_its_pseudo_labels():
    X, y = blobs(n_per_class=30, seed=3)
    pool, _ = blobs(n_per_class=50, seed=3)
    fitted = head_fit(strategy="margin", X=X, y=y, seed=0, self_training=0.6, X_unlabeled=pool)
    assert fitted.name == "linear+self-training" and fitted.pseudo_labeled > 0
    assert fitted.out_of_fold is fitted.head.first_.out_of_fold_
    assert len(fitted.out_of_fold.proba) == len(y)  # held out answers, no pseudo-label


def test_a_refit_for_predictions_only_skips_the_folds_and_the_sampler():
    X, y = blobs(n_per_class=30, seed=4)
    fitted = head_fit(strategy="bald", X=X, y=y, seed=0, evidence=False)
    assert fitted.out_of_fold is None and fitted.sampler is None
    assert fitted.head.out_of_fold_ is None  # calibration off: it cannot change the argmax


@pytest.mark.parametrize("strategy", sorted(strategies.STRATEGIES))
def test_every_strategy_scores_a_memory_mapped_pool_past_its_candidate_limit(
    tmp_path, monkeypatch, strategy
):
    """The round the worker runs, on a float16 store bigger than the candidate limit: one
    finite score per open item, and the batch (or BALD's candidates) ranked first."""
    monkeypatch.setattr(strategies, "MAX_CANDIDATES", 40)
    X, y = blobs(n_per_class=100, seed=5, spread=2.0)
    vectors = np.lib.format.open_memmap(tmp_path / "pool.npy", "w+", np.float16, X.shape)
    vectors[:] = X
    pool = RowView(vectors)
    labeled = np.arange(0, 300, 10)
    open_rows = np.setdiff1d(np.arange(300), labeled)
    fitted = head_fit(strategy=strategy, X=pool[labeled], y=y[labeled], seed=0)
    probs = proba_for_classes(fitted.head, pool, np.array([0, 1, 2]))[open_rows]
    scores = acquisition_scores(
        strategy=strategy,
        k=5,
        fitted=fitted,
        probs=probs,
        vectors=pool.take(open_rows),
        labeled=pool[labeled],
        seed=0,
    )
    assert scores.shape == (len(open_rows),) and np.isfinite(scores).all()
    rows = strategies.candidate_rows(strategy, len(open_rows), probs=probs, seed=0)
    if rows is not None:
        top = np.argsort(-scores, kind="stable")[:5]
        assert set(top.tolist()) <= set(rows.tolist())
