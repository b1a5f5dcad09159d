import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models_ml.confidence import preselect_threshold, wilson_lower_bound


def _calibrated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Suggestions whose confidence is their true chance of being right."""
    rng = np.random.default_rng(seed)
    confidence = rng.beta(2, 1.2, size=n).clip(0.1, 0.999)
    return confidence, rng.random(n) < confidence


@pytest.mark.parametrize("target", [0.8, 0.85, 0.9])
def test_threshold_set_on_held_out_answers_hits_the_target_on_new_ones(target):
    confidence, correct = _calibrated(1000, seed=1)
    rule = preselect_threshold(confidence, correct, target=target)
    assert rule.threshold is not None and 0 < rule.share < 1
    assert rule.precision >= target
    fresh_conf, fresh_right = _calibrated(20_000, seed=2)
    chosen = fresh_conf >= rule.threshold
    assert fresh_right[chosen].mean() >= target
    assert chosen.mean() > 0.05  # and it still pre-selects something


def test_suggestions_that_are_never_right_enough_are_never_preselected():
    rng = np.random.default_rng(0)
    confidence = rng.random(300)
    rule = preselect_threshold(confidence, rng.random(300) < 0.5, target=0.9)
    assert rule.threshold is None and rule.share == 0 and rule.support == 0


def test_too_few_held_out_answers_set_no_threshold():
    confidence, correct = np.linspace(0.9, 1.0, 9), np.ones(9, bool)
    assert preselect_threshold(confidence, correct, target=0.75).threshold is None
    ten = preselect_threshold(np.r_[confidence, 0.95], np.ones(10, bool), target=0.75)
    assert ten.threshold == 0.9 and ten.support == 10


def test_a_perfect_record_must_be_long_enough_for_the_target():
    """A point estimate would accept 9/10 (even 1/1) at a 90 % target; the Wilson bound asks
    for about 25 right answers in a row before 90 % is believable."""
    confidence = np.linspace(0.99, 0.9, 10)
    correct = np.array([True] * 9 + [False])
    assert preselect_threshold(confidence, correct, target=0.9).threshold is None
    assert wilson_lower_bound(np.array([20]), np.array([20]))[0] < 0.9
    assert wilson_lower_bound(np.array([30]), np.array([30]))[0] > 0.9


def test_equal_confidences_go_in_or_out_together():
    confidence = np.array([0.99] * 30 + [0.8] * 20)
    correct = np.array([True] * 30 + [True] * 5 + [False] * 15)
    rule = preselect_threshold(confidence, correct, target=0.9)
    assert rule.threshold == 0.99 and rule.support == 30


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 1, allow_nan=False), st.booleans()), min_size=0, max_size=80),
    st.floats(0.5, 1.0),
)
def test_measured_precision_above_the_threshold_always_clears_the_target(pairs, target):
    confidence = np.array([c for c, _ in pairs], dtype=float)
    correct = np.array([r for _, r in pairs], dtype=bool)
    rule = preselect_threshold(confidence, correct, target=target)
    if rule.threshold is None:
        assert rule.support == 0
        return
    chosen = confidence >= rule.threshold
    assert chosen.sum() == rule.support >= 10
    assert correct[chosen].mean() >= target
    assert rule.precision == pytest.approx(correct[chosen].mean())
