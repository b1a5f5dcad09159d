import numpy as np

from models_ml.probes import ProbeScores, encoder_choose, probe_scores

from .conftest import blobs


def _two_encoders(seed: int = 0):
    """The same 60 labels seen by a good encoder (separable clusters) and a bad one (noise)."""
    good, y = blobs(n_per_class=20, classes=3, spread=0.8, seed=seed)
    bad = np.random.default_rng(seed).normal(size=good.shape).astype(np.float32)
    return {"good": good, "bad": bad}, y


def test_probes_score_separable_features_high_and_noise_near_chance():
    features, y = _two_encoders()
    good, bad = probe_scores(features["good"], y), probe_scores(features["bad"], y)
    assert good.knn > 0.9 and good.linear > 0.9 and good.labels == 60
    assert bad.knn < 0.6 and bad.linear < 0.6  # chance is 1/3
    assert good.score == (good.knn + good.linear) / 2


def test_auto_picks_the_clearly_better_encoder_whichever_it_starts_with():
    features, y = _two_encoders(seed=3)
    scores = {name: probe_scores(X, y) for name, X in features.items()}
    assert encoder_choose(scores, current="bad") == "good"
    assert encoder_choose(scores, current="good") == "good"


def test_a_challenger_within_the_margin_does_not_cause_a_switch():
    scores = {"a": ProbeScores(0.80, 0.80, 100), "b": ProbeScores(0.82, 0.82, 100)}
    assert encoder_choose(scores, current="a", margin=0.03) == "a"
    assert encoder_choose(scores, current="a", margin=0.01) == "b"


def test_too_few_labels_give_no_scores_and_no_switch():
    X, y = blobs(n_per_class=1, classes=3)
    scores = {"a": probe_scores(X, y), "b": probe_scores(X * 2, y)}
    assert scores["a"].score is None
    assert encoder_choose(scores, current="a") == "a"


def test_probes_are_deterministic_for_a_seed_and_use_it():
    X, y = blobs(n_per_class=15, classes=4, spread=2.5, seed=7)
    assert probe_scores(X, y, random_state=1) == probe_scores(X, y, random_state=1)
    draws = {probe_scores(X, y, random_state=s).knn for s in range(6)}
    assert len(draws) > 1  # the folds follow the seed


def _scores(mean_hits: np.ndarray) -> ProbeScores:
    return ProbeScores(float(mean_hits.mean()), float(mean_hits.mean()), len(mean_hits), mean_hits)


def test_a_lead_within_the_noise_of_few_labels_does_not_cause_a_switch():
    """Same labels, paired: 2 of 20 more right is a 10-point lead but within two standard
    errors; 20 of 200 more right is the same lead, well outside them."""
    rng = np.random.default_rng(0)
    for n, switch in ((20, False), (200, True)):
        mine = (rng.random(n) < 0.5).astype(float)
        theirs = mine.copy()
        theirs[np.flatnonzero(mine == 0)[: n // 10]] = 1.0
        chosen = encoder_choose({"mine": _scores(mine), "theirs": _scores(theirs)}, "mine")
        assert chosen == ("theirs" if switch else "mine"), n
