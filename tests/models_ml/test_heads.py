import numpy as np
import pytest
from sklearn.base import clone

from models_ml.heads import (
    HEADS,
    LinearHead,
    MLPHead,
    PrototypeHead,
    SelfTrainingHead,
    fit_temperature,
    out_of_fold,
    proba_for_classes,
    softmax,
)

from .conftest import blobs

FAST = {"linear": {}, "mlp": {"epochs": 60, "hidden": 32}, "prototype": {}}


@pytest.mark.parametrize("name", sorted(HEADS))
def test_heads_beat_chance_on_separable_data_and_probabilities_sum_to_one(name):
    X, y = blobs(seed=1)
    X_test, y_test = blobs(n_per_class=30, seed=1)  # same centers, fresh noise
    head = HEADS[name](**FAST[name])
    assert head.fit(X, y) is head
    proba = head.predict_proba(X_test)
    assert proba.shape == (len(X_test), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert (head.predict(X_test) == y_test).mean() > 0.9  # chance is 1/3
    np.testing.assert_array_equal(head.classes_, [0, 1, 2])


@pytest.mark.parametrize("name", sorted(HEADS))
def test_heads_take_string_labels_and_a_single_class(name):
    X, y = blobs(n_per_class=5, classes=2)
    labels = np.where(y == 0, "cat", "dog")
    head = HEADS[name](**FAST[name]).fit(X, labels)
    assert set(head.predict(X)) <= {"cat", "dog"}
    single = HEADS[name](**FAST[name]).fit(X[:3], ["cat"] * 3)
    np.testing.assert_allclose(single.predict_proba(X[:4]), 1.0)


def test_heads_follow_the_sklearn_parameter_protocol():
    head = LinearHead(C=3.0, class_weight="balanced")
    assert clone(head).get_params()["C"] == 3.0
    assert not hasattr(head, "classes_")  # learned state appears in fit only


def test_temperature_scaling_recovers_a_known_temperature():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4000, 5)) * 4
    y = np.array([rng.choice(5, p=p) for p in softmax(logits / 2.0)])
    assert fit_temperature(logits, y) == pytest.approx(2.0, rel=0.15)


def test_linear_head_is_calibrated_on_overlapping_classes():
    X, y = blobs(n_per_class=200, classes=2, spread=3.0, seed=2)
    head = LinearHead().fit(X, y)
    X_test, y_test = blobs(n_per_class=500, classes=2, spread=3.0, seed=2)
    proba = head.predict_proba(X_test)
    confidence = proba.max(axis=1)
    accuracy = (proba.argmax(axis=1) == y_test).mean()
    assert head.temperature_ != 1.0
    assert abs(confidence.mean() - accuracy) < 0.1  # expected calibration, coarsely


def test_mlp_mc_dropout_samples_vary_and_are_distributions():
    X, y = blobs(seed=3)
    head = MLPHead(epochs=30, hidden=32, dropout=0.5, mc_samples=6).fit(X, y)
    samples = head.sample_proba(X[:10])
    assert samples.shape == (6, 10, 3)
    np.testing.assert_allclose(samples.sum(axis=2), 1.0, atol=1e-5)
    assert samples.std(axis=0).max() > 0


def test_prototype_head_works_from_one_label_per_class():
    X, y = blobs(seed=4)
    first = [np.flatnonzero(y == c)[0] for c in range(3)]
    head = PrototypeHead().fit(X[first], y[first])
    assert (head.predict(X) == y).mean() > 0.9


def test_cross_validated_accuracy_from_labels_alone():
    X, y = blobs(seed=5)
    estimate = out_of_fold(LinearHead(calibrate=False), X, y, calibrate=False).estimate
    assert estimate.accuracy > 0.9 and estimate.folds == 5 and estimate.labels == len(y)
    noise = np.random.default_rng(0).normal(size=X.shape)
    noisy = out_of_fold(LinearHead(calibrate=False), noise, y, calibrate=False)
    assert noisy.estimate.accuracy < 0.6


def test_cross_validated_accuracy_is_none_with_too_few_labels():
    X, y = blobs(n_per_class=1)
    assert out_of_fold(LinearHead(), X, y, calibrate=False).estimate.accuracy is None


def test_self_training_adds_confident_pseudo_labels():
    X, y = blobs(n_per_class=50, seed=6)
    labeled = np.concatenate([np.flatnonzero(y == c)[:2] for c in range(3)])
    unlabeled = np.setdiff1d(np.arange(len(y)), labeled)
    head = SelfTrainingHead(PrototypeHead(), threshold=0.9, max_pseudo=100)
    head.fit(X[labeled], y[labeled], X[unlabeled])
    assert 0 < head.pseudo_labeled_ <= 100
    assert (head.predict(X) == y).mean() > 0.9


def test_probabilities_are_spread_over_every_project_class():
    X, y = blobs(classes=2)
    head = LinearHead().fit(X, np.where(y == 0, 7, 3))
    full = proba_for_classes(head, X[:5], np.array([9, 3, 7]))
    assert full.shape == (5, 3)
    np.testing.assert_allclose(full[:, 0], 0.0)
    np.testing.assert_allclose(full.sum(axis=1), 1.0)
    assert (full[:, 2] > full[:, 1]).all()  # the first 5 rows are class "7"


def test_cross_validated_accuracy_fits_one_model_per_fold(monkeypatch):
    """Calibration cannot change the argmax, so the estimate skips its inner folds."""
    X, y = blobs(n_per_class=30, classes=3, seed=4, spread=1.0)
    fits = []
    real_model = LinearHead._model
    monkeypatch.setattr(LinearHead, "_model", lambda self: fits.append(1) or real_model(self))
    estimate = out_of_fold(LinearHead(calibrate=True), X, y, folds=5, calibrate=False).estimate
    assert len(fits) == estimate.folds == 5 and 0.34 < estimate.accuracy <= 1.0


def test_linear_head_with_fewer_labels_than_dimensions_fits_in_their_span():
    """The row-space shortcut gives the model a plain fit on all dimensions gives."""
    from sklearn.linear_model import LogisticRegression

    from models_ml.heads import l2_normalise

    X, y = blobs(n_per_class=15, classes=4, dim=400, spread=3.0, seed=9)
    X_test, _ = blobs(n_per_class=20, classes=4, dim=400, spread=3.0, seed=9)
    head = LinearHead(calibrate=False, max_iter=2000).fit(X, y)
    plain = LogisticRegression(C=head.C, max_iter=2000, tol=1e-8).fit(l2_normalise(X), y)

    assert head.basis_.shape == (60, 400)
    np.testing.assert_allclose(head.basis_ @ head.basis_.T, np.eye(60), atol=1e-4)
    np.testing.assert_allclose(
        head.predict_proba(X_test), plain.predict_proba(l2_normalise(X_test)), atol=5e-3
    )
    assert (head.predict(X_test) == plain.predict(l2_normalise(X_test))).all()
    more_labels, _ = blobs(n_per_class=200, classes=4, dim=16)
    assert LinearHead().fit(more_labels, np.repeat(np.arange(4), 200)).basis_ is None


def test_calibration_folds_give_the_accuracy_estimate_too():
    X, y = blobs(n_per_class=30, classes=3, seed=4, spread=1.0)
    head = LinearHead(calibrate=True).fit(X, y)
    estimate = head.cv_estimate_
    assert estimate.folds == 5 and estimate.labels == 90 and 0.34 < estimate.accuracy <= 1.0
    assert LinearHead(calibrate=False).fit(X, y).cv_estimate_ is None
    one_each = LinearHead(calibrate=True).fit(X[[0, 30, 60]], y[[0, 30, 60]])
    assert one_each.cv_estimate_ is None  # no class with two labels: nothing to hold out


def test_warm_started_calibration_folds_reach_the_cold_started_optimum():
    """The folds start from the full model's weights; the problem is convex, so the
    out-of-fold answers are the same."""
    from models_ml.heads import LinearHead

    rng = np.random.default_rng(3)
    centres = rng.normal(size=(4, 32))
    y = rng.integers(4, size=300)
    x = centres[y] + 2.5 * rng.normal(size=(300, 32))
    warm = LinearHead().fit(x, y)
    cold = LinearHead(warm_start_folds=False).fit(x, y)
    assert warm.temperature_ == pytest.approx(cold.temperature_, rel=1e-3)
    assert warm.cv_estimate_.accuracy == pytest.approx(cold.cv_estimate_.accuracy, abs=0.01)
    # The solver stops within its tolerance of the optimum from either start: close, not equal.
    difference = np.abs(warm.out_of_fold_.proba - cold.out_of_fold_.proba)
    assert difference.max() < 0.02 and difference.mean() < 0.002


def test_newton_cg_reaches_the_optimum_lbfgs_reaches():
    """The default solver changed for speed (bench/retrain.py), not the model: both solvers
    give the same predictions, temperature and estimate on the same labels."""
    X, y = blobs(n_per_class=60, classes=4, dim=48, spread=2.5, seed=11)
    X_test, _ = blobs(n_per_class=50, classes=4, dim=48, spread=2.5, seed=11)
    newton = LinearHead(class_weight="balanced").fit(X, y)
    lbfgs = LinearHead(class_weight="balanced", solver="lbfgs", max_iter=2000).fit(X, y)
    assert newton.solver == "newton-cg"
    np.testing.assert_allclose(newton.predict_proba(X_test), lbfgs.predict_proba(X_test), atol=2e-3)
    assert newton.temperature_ == pytest.approx(lbfgs.temperature_, rel=1e-2)
    assert newton.cv_estimate_.accuracy == pytest.approx(lbfgs.cv_estimate_.accuracy, abs=0.01)


@pytest.mark.parametrize("dim", [16, 400])  # without and with the row-space basis
def test_scoring_a_float16_pool_in_chunks_matches_scoring_it_whole(monkeypatch, dim):
    """A pool is scored a chunk at a time from the store's float16 rows, with the basis folded
    into the weights: the same probabilities as normalising and projecting it whole."""
    from models_ml import heads
    from models_ml.heads import l2_normalise

    X, y = blobs(n_per_class=20, classes=3, dim=dim, spread=1.0, seed=12)
    head = LinearHead().fit(X, y)
    pool, _ = blobs(n_per_class=70, classes=3, dim=dim, spread=1.0, seed=13)
    pool16 = pool.astype(np.float16)
    monkeypatch.setattr(heads, "CHUNK_ROWS", 64)  # 210 rows: four chunks
    starts = [start for start, _ in heads.chunked_rows(pool16)]
    assert starts == [0, 64, 128, 192]
    chunked = head.predict_proba(pool16)
    logits = head.model_.decision_function(head._project(l2_normalise(pool16)))
    whole = softmax(np.stack([-logits / 2, logits / 2], 1) if logits.ndim == 1 else logits)
    np.testing.assert_allclose(chunked, softmax(np.log(whole) / head.temperature_), atol=1e-4)


def test_mc_dropout_samples_are_the_network_with_dropout():
    """Without dropout every sample is the deterministic prediction; with it the samples
    scatter around it, each a distribution, and the same seed draws the same samples."""
    X, y = blobs(seed=14)
    still = MLPHead(epochs=20, hidden=32, dropout=0.0, mc_samples=4).fit(X, y)
    np.testing.assert_allclose(
        still.sample_proba(X[:20]), np.repeat(still.predict_proba(X[:20])[None], 4, 0), atol=1e-5
    )
    noisy = MLPHead(epochs=20, hidden=32, dropout=0.5, mc_samples=50).fit(X, y)
    samples = noisy.sample_proba(X[:20])
    assert samples.std(axis=0).mean() > 1e-3
    np.testing.assert_array_equal(samples, noisy.sample_proba(X[:20]))
    agree = (samples.mean(axis=0).argmax(1) == noisy.predict_proba(X[:20]).argmax(1)).mean()
    assert agree > 0.9
