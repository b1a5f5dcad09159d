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


def test_per_class_thresholds_hit_the_target_precision_of_each_class_on_a_toy_set():
    """Class 0 is easy (its confidences are over-cautious: right more often than they say),
    class 1 is confused (over-confident): one global cut would be too loose for class 1 or
    too strict for class 0. Each class's own cut reaches the target on fresh data."""
    from models_ml.confidence import class_thresholds

    def draw(n, seed):
        rng = np.random.default_rng(seed)
        predicted = rng.integers(0, 2, size=n)
        confidence = rng.uniform(0.5, 1.0, size=n)
        chance = np.where(predicted == 0, np.minimum(confidence + 0.15, 1.0), confidence - 0.25)
        return confidence, predicted, rng.random(n) < chance

    confidence, predicted, correct = draw(4000, seed=3)
    cuts = class_thresholds(confidence, predicted, correct, target=0.95)
    assert cuts[0].threshold is not None and cuts[1].threshold is None  # class 1 never gets there
    assert cuts[0].threshold < 0.85  # the easy class is pseudo-labeled well below 0.95
    fresh_conf, fresh_pred, fresh_right = draw(40_000, seed=4)
    chosen = (fresh_pred == 0) & (fresh_conf >= cuts[0].threshold)
    assert fresh_right[chosen].mean() >= 0.95 and chosen.mean() > 0.1
    # One global cut at the same target: class 1's misses at every confidence keep the
    # mixture below 95 %, so it would pseudo-label nothing at all.
    assert preselect_threshold(confidence, correct, target=0.95).threshold is None


def test_the_reliability_table_is_monotone_and_reads_back_held_out_precision():
    from models_ml.confidence import calibrated, reliability_table

    rng = np.random.default_rng(5)
    confidence = rng.uniform(0.3, 1.0, 5000)
    correct = rng.random(5000) < confidence**2  # over-confident: right less often than it says
    table = reliability_table(confidence, correct, max_points=32)
    assert len(table["confidence"]) <= 32 and table["predictions"] == 5000
    assert all(np.diff(table["precision"]) >= 0)
    read = calibrated(table, [0.5, 0.9])
    assert abs(read[0] - 0.25) < 0.08 and abs(read[1] - 0.81) < 0.08
    assert reliability_table(confidence[:10], correct[:10]) is None  # too few to say
    saturated = reliability_table(np.ones(30), np.arange(30) < 27)  # a head that says 1.0
    assert calibrated(saturated, [1.0, 0.5]).tolist() == [0.9, 0.9]


def test_a_wrong_band_below_many_right_answers_is_not_pre_selected():
    """A thousand confident right answers (a page's accepted tiles) keep the cumulative
    precision above 90 % down to a band of 60 predictions at confidence ~0.3 that are right
    a fifth of the time. Cards (and pseudo-labels, once pages took the top) come from that
    band, so the cut stays above it."""
    rng = np.random.default_rng(5)
    confidence = np.r_[rng.uniform(0.9, 0.99, 1000), rng.uniform(0.25, 0.35, 60)]
    correct = np.r_[np.ones(1000, bool), rng.random(60) < 0.2]
    assert wilson_lower_bound(correct.sum(), len(correct)) > 0.9  # the cumulative rule's pass
    rule = preselect_threshold(confidence, correct, target=0.9)
    assert rule.threshold is not None and rule.threshold >= 0.9
    near = (confidence >= rule.threshold) & (confidence < rule.threshold + 0.02)
    assert correct[near].mean() >= 0.9  # the cards served at the threshold are right


def test_pseudo_labels_left_below_the_paged_band_still_hit_the_target():
    """Evidence: a class's predictions, calibrated. Pages take the most confident open items
    first, so the pool left above a pseudo-label cut is its bottom; those must be right as
    often as the target too, not just the evidence above the cut on average."""
    from models_ml.confidence import class_thresholds

    rng = np.random.default_rng(6)
    confidence = rng.uniform(0.5, 1.0, 3000)
    correct = rng.random(3000) < confidence
    cut = class_thresholds(confidence, np.zeros(3000, int), correct, target=0.9)[0].threshold
    assert cut is not None
    fresh = rng.uniform(0.5, 1.0, 200_000)
    fresh_right = rng.random(200_000) < fresh
    left = (fresh >= cut) & (fresh < cut + 0.03)  # what pages above it did not take
    assert fresh_right[left].mean() >= 0.9 - 0.005


def _open_pool(n, seed, classes=10):
    """An open pool's predictions, confident ones the most common: nine classes right a
    little more often than their confidence says, one (9) much less often."""
    rng = np.random.default_rng(seed)
    predicted = rng.integers(0, classes, size=n)
    confidence = 1 - 0.7 * rng.beta(1, 4, size=n)
    chance = np.where(predicted == 9, confidence**3, confidence**0.2)
    return confidence, predicted, rng.random(n) < chance


def _pseudo_labeled(cuts: dict, open_confidence: np.ndarray, open_predicted: np.ndarray):
    """Which of the toy pool's open images the class cuts pseudo-label."""
    cut_of = np.array([cuts[c].threshold or np.inf for c in range(10)])
    return open_confidence >= cut_of[open_predicted]


def test_certified_cuts_from_a_random_sample_hit_the_target_where_class_cuts_cannot():
    """400 audits, a random sample of the open pool: no class has enough of them for a cut
    of its own at 95 %, the pooled cut certifies one, the confused class is held out, and
    the pseudo-labels the cuts make on the rest of the pool are right at least 95 %."""
    from models_ml.confidence import certified_class_thresholds, class_thresholds

    confidence, predicted, correct = _open_pool(400, seed=13)
    own = class_thresholds(confidence, predicted, correct, target=0.95)
    assert all(cut.threshold is None for cut in own.values())
    fresh_conf, fresh_pred, fresh_right = _open_pool(200_000, seed=12)
    cuts = certified_class_thresholds(
        confidence,
        predicted,
        correct,
        target=0.95,
        open_confidence=fresh_conf,
        open_predicted=fresh_pred,
    )
    assert cuts[9].threshold is None  # its own audits above the pooled cut fall short
    assert all(cuts[cls].threshold is not None for cls in range(9))
    assert all(cuts[cls].support > 0 for cls in range(9))
    chosen = _pseudo_labeled(cuts, fresh_conf, fresh_pred)
    assert fresh_right[chosen].mean() >= 0.95 and chosen.mean() > 0.4


def test_a_class_with_no_audits_above_the_pooled_cut_is_not_certified_by_it():
    """The pooled cut certifies what its audits sample. A class none of whose audits clear
    it (on 1,000 Fashion-MNIST images, "shirt": 0 of 7) has given no evidence, and the served
    model can still put its open images above the cut (23 there, 39 % right): it keeps its
    own cut (none). A class whose few audits above the cut are mostly wrong is held to its
    own cut too, however few they are."""
    from models_ml.confidence import calibrated_cut, certified_class_thresholds

    rng = np.random.default_rng(5)
    confident = np.r_[np.full(180, 0.99), rng.uniform(0.3, 0.7, 90)]
    predicted = np.r_[np.arange(180) % 9, np.arange(90) % 9]  # classes 0-8 above and below
    correct = np.r_[np.ones(180, bool), np.zeros(90, bool)]
    shy = (np.full(7, 0.6), np.full(7, 9), np.zeros(7, bool))  # class 9: all below
    bad = (np.full(3, 0.99), np.full(3, 10), np.array([True, False, False]))  # 2 of 3 wrong
    confidence, predicted, correct = (
        np.r_[a, b, c] for a, b, c in zip((confident, predicted, correct), shy, bad, strict=True)
    )
    assert calibrated_cut(confidence, correct, confidence, target=0.95) == 0.99
    cuts = certified_class_thresholds(
        confidence, predicted, correct, target=0.95, open_confidence=confidence
    )
    assert all(cuts[cls].threshold == 0.99 and cuts[cls].support == 20 for cls in range(9))
    assert cuts[9].threshold is None  # no audit above: no evidence
    assert cuts[10].threshold is None  # 1 of 3 right above it: short


def test_certified_cuts_keep_each_class_cut_where_the_pooled_curve_does_not_hold():
    """Evidence where the pooled predictions never reach the target (one class confused
    everywhere: at the top, 7 of 8 right): a logistic curve still rises to 1 there and
    puts a pooled cut at the very top, where a run of right audits does not contradict it;
    the confused class's audits there fall short of what the curve expects, and the other
    class's own cut is lower. The classes keep the per-class rule's cuts, each judged at the z
    that keeps the two classes' bounds together at one-sided 95 %."""
    from models_ml.confidence import (
        calibrated_cut,
        certified_class_thresholds,
        class_thresholds,
        family_z,
    )

    rng = np.random.default_rng(3)
    predicted = rng.integers(0, 2, size=4000)
    confidence = rng.uniform(0.5, 1.0, size=4000)
    chance = np.where(predicted == 0, np.minimum(confidence + 0.15, 1.0), confidence - 0.25)
    correct = rng.random(4000) < chance
    pooled = calibrated_cut(confidence, correct, confidence, target=0.95)
    assert pooled is None or pooled > 0.99
    cuts = certified_class_thresholds(
        confidence, predicted, correct, target=0.95, open_confidence=confidence
    )
    z = family_z(1.645, 2)
    assert 1.9 < z < 2.0  # one-sided 2.5 % each
    assert cuts == class_thresholds(confidence, predicted, correct, target=0.95, z=z)
    assert cuts[0].threshold is not None and cuts[1].threshold is None


def test_a_class_cut_of_its_own_must_clear_the_bound_for_all_classes_at_once():
    """55 right of 55 clear a one-sided 95 % bound of 0.95 for one class; with ten classes
    each testing its own cut, that bound would let one of them through by chance too often,
    so a class's own cut needs what clears all ten bounds at once (126 right of 126)."""
    from models_ml.confidence import certified_class_thresholds, class_thresholds

    rng = np.random.default_rng(0)
    confidence = np.r_[np.full(55, 0.99), rng.uniform(0.5, 1.0, 900)]
    predicted = np.r_[np.zeros(55, int), rng.integers(1, 10, 900)]
    correct = np.r_[np.ones(55, bool), rng.random(900) < 0.6]
    assert class_thresholds(confidence, predicted, correct, target=0.95)[0].threshold == 0.99
    cuts = certified_class_thresholds(
        confidence, predicted, correct, target=0.95, open_confidence=confidence
    )
    assert cuts[0].threshold is None
    more = np.r_[np.full(130, 0.99), confidence[55:]], np.r_[np.zeros(130, int), predicted[55:]]
    right = np.r_[np.ones(130, bool), correct[55:]]
    cuts = certified_class_thresholds(*more, right, target=0.95, open_confidence=more[0])
    assert cuts[0].threshold == 0.99


def test_cuts_take_no_larger_share_of_the_open_images_than_of_the_audits():
    """Audits judged out of fold put 40 % above the cut; the served model, more confident,
    puts 60 % of the open images above it: the cut rises to the open images' top 40 %."""
    from models_ml.confidence import PreselectThreshold, cuts_within_share, share_floor

    assert share_floor([0.9, 0.8, 0.7, 0.6], 0.5) == 0.8
    assert share_floor([0.9, 0.8, 0.8, 0.6], 0.5) == 0.9  # ties at the boundary stay out
    assert share_floor([0.9, 0.5], 0.0) == float("inf")
    cut = PreselectThreshold(0.8, 0.95, 40, 0.98, 0.4, 100)
    audits = np.r_[np.full(40, 0.85), np.full(60, 0.5)]
    open_confidence = np.r_[np.linspace(0.99, 0.81, 600), np.full(400, 0.3)]
    zeros = np.zeros(1000, int)
    raised = cuts_within_share({0: cut, 1: cut}, audits, zeros[:100], open_confidence, zeros)
    kept = open_confidence >= raised[0].threshold
    assert kept.sum() == 400 and raised[1].threshold == raised[0].threshold > 0.8
    assert raised[0].support == cut.support  # the evidence is what it was
    modest = np.r_[np.linspace(0.99, 0.81, 300), np.full(700, 0.3)]  # 30 %: the cut holds
    assert cuts_within_share({0: cut}, audits, zeros[:100], modest, zeros)[0] == cut


def test_shown_below_is_the_exact_test_and_calls_the_target_below_at_most_alpha():
    from scipy.stats import binom

    from models_ml.confidence import shown_below, wilson_upper_bound

    # 3 right of 4: the Wilson bound says below 95 % (0.942); 95 % gives it 19 % of the time
    assert wilson_upper_bound(3, 4) < 0.95 and not shown_below(3, 4, 0.95)
    assert shown_below(2, 4, 0.95) and shown_below(3, 7, 0.95)
    assert not shown_below(0, 0, 0.95)
    for n in (1, 4, 10, 30, 100, 400):
        called = [k for k in range(n + 1) if shown_below(k, n, 0.95)]
        assert binom.pmf(called, n, 0.95).sum() <= 0.05  # a precision at the target
        assert shown_below(int(0.8 * n), n, 0.95) == (n >= 30)  # 80 % is caught with enough


def test_the_calibrated_cut_hits_the_target_on_the_open_images_pages_left():
    """An overconfident model (right with chance confidence²), 300 audits drawn from the
    whole pool, then pages take every open image above 0.995: the cut read off the audits'
    curve at the open images as they are now pseudo-labels open images right at least 95 %
    of the time, and a fair share of them; the cut is well above 0.95, where the confidence
    alone would put it. (With chance confidence³ the prior's pull towards a flatter curve
    certifies nothing from 300 audits and a cut at 0.99 from 600: conservative.)"""
    from models_ml.confidence import calibrated_cut

    rng = np.random.default_rng(8)
    pool = 1 - 0.3 * rng.beta(1, 6, size=40_000)
    chance = pool**2
    drawn = rng.choice(len(pool), size=300, replace=False)
    right = rng.random(300) < chance[drawn]
    open_now = pool < 0.995
    open_right = rng.random(open_now.sum()) < chance[open_now]
    cut = calibrated_cut(pool[drawn], right, pool[open_now], target=0.95)
    assert cut is not None and cut > 0.975
    taken = pool[open_now] >= cut
    assert open_right[taken].mean() >= 0.95 and taken.mean() > 0.15


def test_no_pooled_cut_before_the_minimum_of_audits():
    """A curve is two parameters: on fewer than MIN_CALIBRATION_AUDITS audits it is not read
    at all, however well the few fit (CIFAR-10 10,000's first cut, on 80 audits, read 0.99
    where the open images were 93 % right: docs/benchmarks/human-effort.md, stop 40), and
    the same audits with one more certify a cut; the kept pseudo-labels are not judged
    without a curve either."""
    from models_ml.confidence import MIN_CALIBRATION_AUDITS, calibrated_cut, kept_within_target

    rng = np.random.default_rng(4)
    audits = 1 - 0.2 * rng.beta(1, 4, size=MIN_CALIBRATION_AUDITS)
    right = rng.random(MIN_CALIBRATION_AUDITS) < audits**0.5
    pool = 1 - 0.2 * rng.beta(1, 4, size=5000)
    few, enough = slice(0, MIN_CALIBRATION_AUDITS - 1), slice(0, MIN_CALIBRATION_AUDITS)
    assert calibrated_cut(audits[few], right[few], pool, target=0.95) is None
    assert calibrated_cut(audits[enough], right[enough], pool, target=0.95) is not None
    fresh, kept = pool[pool > 0.99], pool[pool <= 0.99]
    assert kept_within_target(audits[few], right[few], fresh, kept, target=0.95) is None
    assert kept_within_target(audits[enough], right[enough], fresh, kept, target=0.95) is not None


def test_the_curve_prior_centre_pulls_a_fit_on_few_audits_towards_it():
    """The default centre is a calibrated model, (0, 1) (a flat curve, (0, 0), until stop
    46): the same few audits give a steeper curve than centred on a flat one, which reads
    higher at the top, and the pooled cut with the default centre is the one with it given
    explicitly."""
    from models_ml.confidence import (
        CALIBRATION_PRIOR_MEAN,
        calibrated_cut,
        calibration_posterior,
        curve_chance,
    )

    rng = np.random.default_rng(6)
    confidence = rng.uniform(0.5, 1.0, 30)
    correct = rng.random(30) < confidence
    flat, _ = calibration_posterior(confidence, correct, prior_mean=(0.0, 0.0))
    calibrated, _ = calibration_posterior(confidence, correct, prior_mean=(0.0, 1.0))
    assert CALIBRATION_PRIOR_MEAN == (0.0, 1.0)
    assert calibrated[1] > flat[1] and curve_chance(calibrated, 0.999) > curve_chance(flat, 0.999)
    audits = rng.uniform(0.8, 1.0, 200)
    right = rng.random(200) < audits**0.5
    pool = rng.uniform(0.8, 1.0, 3000)
    assert calibrated_cut(audits, right, pool, target=0.95) == calibrated_cut(
        audits, right, pool, target=0.95, prior_mean=(0.0, 1.0)
    )


@pytest.mark.parametrize("prior_mean", [(0.0, 0.0), (0.0, 1.0), (3.0, 3.0)])
def test_the_curve_fit_converges_where_it_starts_saturated(prior_mean):
    """55 right of 60 at a saturated confidence: the fit reads 55/60 there whatever the
    prior's centre. Newton's full step from a saturated start, (0, 1) at logit 6.9, overshot
    to the other saturation and never came back, and the curve read 1.0 there; each step is
    now halved until the posterior does not fall. The bound stays below what 5 wrong of 60
    allow, and the mode is where the posterior's gradient is zero."""
    from models_ml.confidence import (
        _calibration_data,
        calibration_draws,
        calibration_posterior,
        curve_chance,
    )

    confidence, correct = np.ones(60), np.r_[np.ones(55, bool), np.zeros(5, bool)]
    mode, _ = calibration_posterior(confidence, correct, prior_mean=prior_mean)
    assert curve_chance(mode, 1.0).item() == pytest.approx(55 / 60, abs=0.01)
    X, n, hits = _calibration_data(confidence, correct)
    p = 1 / (1 + np.exp(-(X @ mode)))
    gradient = X.T @ (hits - n * p) - (mode - np.asarray(prior_mean))
    assert np.abs(gradient).max() < 1e-6
    draws = calibration_draws(confidence, correct, prior_mean=prior_mean)
    assert 0.8 < np.quantile(curve_chance(draws, 1.0), 0.05) < 0.88


def test_a_run_of_right_audits_at_a_saturated_confidence_bounds_the_chance_high():
    """60 audits, all right, all at confidence 1.0 (a saturated head): the likelihood says
    the chance is high (below 0.95 it would give 60 right of 60 at most 5 % of the time);
    the posterior draws see it under a flat prior's centre, a prior centred on a calibrated
    model bounds it higher, and fewer right answers bound it lower under either."""
    from models_ml.confidence import calibration_draws, curve_chance

    def bound(correct, prior_mean):
        draws = calibration_draws(np.ones(60), correct, prior_mean=prior_mean)
        return np.quantile(curve_chance(draws, 1.0), 0.05)

    flat, calibrated = (0.0, 0.0), (0.0, 1.0)
    all_right, some_wrong = np.ones(60, bool), np.r_[np.ones(55, bool), np.zeros(5, bool)]
    assert 0.93 < bound(all_right, flat) < 0.99
    assert bound(all_right, flat) < bound(all_right, calibrated) < 0.999
    assert bound(some_wrong, flat) < 0.85 and bound(some_wrong, calibrated) < 0.88


def test_the_curve_likelihood_summed_over_distinct_confidences_is_each_audits_sum():
    """The likelihood is summed once per distinct (clipped) confidence with its counts; it
    must equal the sum over every audit, and the posterior mode must not move."""
    from models_ml.confidence import (
        CALIBRATION_PRIOR_MEAN,
        _logit,
        calibration_log_likelihood,
        calibration_posterior,
    )

    rng = np.random.default_rng(3)
    confidence = np.r_[rng.choice([0.6, 0.8, 0.95], 150), rng.uniform(0.5, 1.0, 50), np.ones(40)]
    confidence[:5] = 0.99999  # clipped with the 1.0s
    correct = rng.random(len(confidence)) < confidence
    curves = rng.normal(size=(7, 2))
    logits = curves[:, :1] + curves[:, 1:] * _logit(confidence)
    each = (correct * logits - np.logaddexp(0, logits)).sum(axis=1)
    assert np.allclose(calibration_log_likelihood(curves, confidence, correct), each)

    mode, _ = calibration_posterior(confidence, correct)
    X = np.column_stack([np.ones(len(confidence)), _logit(confidence)])
    p = 1 / (1 + np.exp(-(X @ mode)))
    gradient = X.T @ (correct - p) - (mode - np.asarray(CALIBRATION_PRIOR_MEAN))  # prior sd 1
    assert np.allclose(gradient, 0, atol=1e-6)


def test_kept_pseudo_labels_stay_only_while_the_whole_set_clears_the_target():
    """A calibrated model (right with chance = confidence), 2,000 audits: 400 fresh
    pseudo-labels at 0.99 and 1,000 kept ones spread over 0.6-0.99. All of them together are
    about 90 % right, so the least confident kept ones go until the set the count leaves
    is right at least 95 % of the time (by the true chance, with the slack of the curve's
    5 % quantile), and one more rank would not have kept it there. Kept ones as confident
    as the fresh ones all stay; no audits to read a curve off: unchanged (None)."""
    from models_ml.confidence import kept_within_target

    rng = np.random.default_rng(5)
    audits = rng.uniform(0.5, 1.0, 2000)
    right = rng.random(2000) < audits
    fresh = np.full(400, 0.99)
    kept = np.sort(rng.uniform(0.6, 0.99, 1000))[::-1]
    assert np.r_[fresh, kept].mean() < 0.95

    keep = kept_within_target(audits, right, fresh, kept, target=0.95)
    assert keep is not None and 100 < keep < 1000
    assert np.r_[fresh, kept[:keep]].mean() >= 0.95
    assert np.r_[fresh, kept[: keep + 150]].mean() < 0.95  # not far more cautious than needed
    shuffled = rng.permutation(kept)  # the order it is given in does not matter
    assert kept_within_target(audits, right, fresh, shuffled, target=0.95) == keep

    sure = np.full(300, 0.995)
    assert kept_within_target(audits, right, fresh, sure, target=0.95) == 300
    assert kept_within_target(audits, right, fresh, np.zeros(0), target=0.95) == 0


def test_the_check_on_kept_pseudo_labels_reads_the_curve_under_the_prior_it_is_given():
    """Few audits at the top (20 right at 0.999, 100 calibrated below 0.9): the curve there
    leans on its prior, so one centred on a calibrated model keeps more of the kept
    pseudo-labels than the app's flat centre does, and the default is the app's (a replay of
    another centre, bench/pseudo_label_replay.py, checks the kept ones under it too)."""
    from models_ml.confidence import CALIBRATION_PRIOR_MEAN, kept_within_target

    rng = np.random.default_rng(2)
    audits = np.r_[rng.uniform(0.5, 0.9, 100), np.full(20, 0.999)]
    right = np.r_[rng.random(100) < audits[:100], np.ones(20, bool)]
    fresh, kept = np.full(50, 0.999), np.sort(rng.uniform(0.9, 0.999, 300))[::-1]
    flat = kept_within_target(audits, right, fresh, kept, target=0.95, prior_mean=(0.0, 0.0))
    calibrated = kept_within_target(audits, right, fresh, kept, target=0.95, prior_mean=(0.0, 1.0))
    assert 0 < flat < calibrated < 300
    app = kept_within_target(audits, right, fresh, kept, target=0.95)
    assert app == kept_within_target(
        audits, right, fresh, kept, target=0.95, prior_mean=CALIBRATION_PRIOR_MEAN
    )


def test_kept_pseudo_labels_on_a_large_pool_are_read_at_a_sample_of_ranks():
    """Past CALIBRATION_GRID kept or fresh pseudo-labels the chances are read at a sample of
    ranks, each standing for its neighbours: the count kept is within a few ranks of the
    exact one."""
    from models_ml import confidence as conf

    rng = np.random.default_rng(6)
    audits = rng.uniform(0.5, 1.0, 1000)
    right = rng.random(1000) < audits
    fresh = rng.uniform(0.97, 1.0, 6000)
    kept = rng.uniform(0.7, 0.99, 9000)
    sampled = conf.kept_within_target(audits, right, fresh, kept, target=0.95)
    grid = conf.CALIBRATION_GRID
    try:
        conf.CALIBRATION_GRID = 100_000
        exact = conf.kept_within_target(audits, right, fresh, kept, target=0.95)
    finally:
        conf.CALIBRATION_GRID = grid
    assert 0 < exact < 9000 and abs(sampled - exact) <= 9000 / grid * 2


def test_audits_drawn_at_the_top_certify_more_pseudo_labels_for_the_same_audits():
    """The calibration curve is the chance of being right given the confidence, so audits
    drawn by confidence do not bias it: for the same 200 audits, half of them drawn among the
    most confident quarter of the open images certify a cut in every draw and more
    pseudo-labels than 200 drawn among all, and their pseudo-labels still clear 95 % (by the
    chance they were drawn with). Under a flat prior's centre: centred on a calibrated model
    the curve needs fewer audits at the top to read high there (the default since stop 46;
    the pseudo-labels still clear 95 %)."""
    from models_ml.confidence import calibrated_cut

    taken = {"uniform": [], "top": []}
    for seed in range(8):
        rng = np.random.default_rng(seed)
        confidence = 1 - 0.7 * rng.beta(1, 4, size=20_000)
        chance = confidence**3  # right less often than the confidence says
        right = rng.random(len(confidence)) < chance
        uniform = rng.choice(len(confidence), 200, replace=False)
        top = np.flatnonzero(confidence >= np.quantile(confidence, 0.75))
        mixed = np.r_[uniform[:100], rng.choice(top, 100, replace=False)]
        for name, drawn in (("uniform", uniform), ("top", mixed)):
            for prior_mean in ((0.0, 1.0), (0.0, 0.0)):  # the flat one counted
                cut = calibrated_cut(
                    confidence[drawn], right[drawn], confidence, target=0.95, prior_mean=prior_mean
                )
                above = confidence >= (np.inf if cut is None else cut)
                assert not above.any() or chance[above].mean() >= 0.95
            taken[name].append(int(above.sum()))
    assert all(taken["top"]) and not all(taken["uniform"])
    assert sum(taken["top"]) > 1.1 * sum(taken["uniform"])


def test_classes_are_checked_against_the_curve_on_every_audit_and_cut_on_the_random_ones(
    monkeypatch,
):
    """With audits drawn at the top as well (`curve_evidence`), the pooled cut and the
    classes' checks against it use them all, and a class's own cut counts the random sample
    only: audits drawn by confidence would overstate its share above a cut. The confused
    class is still held to its own cut, and the pseudo-labels still clear 95 %, the confused
    class's included."""
    from models_ml import confidence as confidence_module
    from models_ml.confidence import certified_class_thresholds, class_thresholds, family_z

    confidence, predicted, correct = _open_pool(300, seed=13)
    pool_conf, pool_pred, pool_right = _open_pool(200_000, seed=12)
    rng = np.random.default_rng(1)
    top = rng.choice(np.flatnonzero(pool_conf >= np.quantile(pool_conf, 0.75)), 300)
    curve = tuple(
        np.r_[a, b[top]]
        for a, b in zip(
            (confidence, predicted, correct), (pool_conf, pool_pred, pool_right), strict=True
        )
    )
    open_pool = {"open_confidence": pool_conf, "open_predicted": pool_pred}
    alone = certified_class_thresholds(confidence, predicted, correct, target=0.95, **open_pool)
    seen = []  # the length of what the classes' own cuts are computed on
    monkeypatch.setattr(
        confidence_module,
        "class_thresholds",
        lambda conf, *args, **kwargs: (
            seen.append(len(conf)) or class_thresholds(conf, *args, **kwargs)
        ),
    )
    cuts = certified_class_thresholds(
        confidence, predicted, correct, target=0.95, curve_evidence=curve, **open_pool
    )
    assert seen == [300]  # the random sample alone
    own = class_thresholds(confidence, predicted, correct, target=0.95, z=family_z(1.645, 10))
    assert cuts[9] == own[9]  # the confused class: its own cut (none)
    assert all(cuts[cls].threshold is not None for cls in range(9))
    assert {c.threshold for c in alone.values()} - {None}
    # on the random sample alone the confused class's own curve finds a cut high enough
    # (the confidences where it is right, stop 46): its pseudo-labels clear the target too
    for certified in (cuts, alone):
        chosen = _pseudo_labeled(certified, pool_conf, pool_pred)
        confused = chosen & (pool_pred == 9)
        assert pool_right[chosen].mean() >= 0.95 and chosen.mean() > 0.4
        assert not confused.any() or pool_right[confused].mean() >= 0.95


def test_a_class_curve_cut_is_where_the_class_open_images_clear_the_target_on_its_own_curve():
    """A class's audits agree with the pooled curve (a calibrated model): 90 of 100 right at
    0.9, 50 of 50 at 0.99. Its open images are 50 at 0.999, 50 at 0.96, 50 at 0.5: the mean
    chance down to 0.96 is about 0.98, so the cut is 0.96 for a target of 0.95 or 0.97; with
    the image at the cut checked as well (0.965 there) 0.97 takes 0.999 only; the cut is
    never below the pooled one. Where its 50 audits at 0.99 are 40 right, its own curve
    falls and no cut clears; held close to the pooled curve (sd 0.05) it barely moves."""
    from models_ml.confidence import class_curve_cut

    conf = np.r_[np.full(100, 0.9), np.full(50, 0.99)]
    right = np.r_[np.arange(100) < 90, np.ones(50, bool)]
    open_conf = np.r_[np.full(50, 0.999), np.full(50, 0.96), np.full(50, 0.5)]

    def cut(correct, *, target=0.95, pooled_cut=0.9, prior_sd=0.5, at_cut=False):
        return class_curve_cut(
            conf,
            correct,
            open_conf,
            pooled_curve=np.array([0.0, 1.0]),
            pooled_cut=pooled_cut,
            target=target,
            prior_sd=prior_sd,
            at_cut=at_cut,
        )

    assert cut(right) == cut(right, target=0.97) == 0.96
    assert cut(right, target=0.97, at_cut=True) == 0.999
    assert cut(right, pooled_cut=0.99) == 0.999
    wrong_at_top = np.r_[np.arange(100) < 90, np.arange(50) < 40]
    assert cut(wrong_at_top) is None
    assert cut(wrong_at_top, prior_sd=0.05) == 0.96


def test_classes_held_to_their_own_curves_let_a_confused_class_through_only_where_it_is_right():
    """Ten random samples of 300 audits from the toy pool (class 9 right with chance
    confidence³), under the prior centred on a calibrated model: checked against the pooled
    curve only, the confused class took the pooled cut in most draws, 85 % right; held to its
    own curve (the default, `class_curve_cut` with the check at the cut) it gets a cut only
    high enough, and a twentieth of the wrong pseudo-labels, while the other classes keep
    nearly all theirs."""
    from models_ml.confidence import certified_class_thresholds

    pool_conf, pool_pred, pool_right = _open_pool(200_000, seed=12)
    wrong_confused, others = {}, {}
    for rule, class_curve_sd in (("pooled check", None), ("own curves", 0.5)):
        wrong_confused[rule] = others[rule] = 0
        for draw in range(10):
            cuts = certified_class_thresholds(
                *_open_pool(300, seed=30_000 + draw),
                target=0.95,
                open_confidence=pool_conf,
                open_predicted=pool_pred,
                prior_mean=(0.0, 1.0),
                class_curve_sd=class_curve_sd,
            )
            chosen = _pseudo_labeled(cuts, pool_conf, pool_pred)
            wrong_confused[rule] += int((chosen & (pool_pred == 9) & ~pool_right).sum())
            others[rule] += int((chosen & (pool_pred != 9)).sum())
    assert wrong_confused["own curves"] < wrong_confused["pooled check"] / 10
    assert others["own curves"] > 0.95 * others["pooled check"]
