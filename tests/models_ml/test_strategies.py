import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from models_ml import strategies
from models_ml.strategies import SCORE_FUNCTIONS, STRATEGIES, bald, pool_scores, select_batch


@st.composite
def probability_matrices(draw, min_rows=1, max_rows=12, max_classes=6):
    n = draw(st.integers(min_rows, max_rows))
    k = draw(st.integers(2, max_classes))
    raw = draw(arrays(np.float64, (n, k), elements=st.floats(0.0, 1.0)))
    raw = raw + 1e-3
    return raw / raw.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("name", sorted(SCORE_FUNCTIONS))
@given(probs=probability_matrices())
@settings(max_examples=60, deadline=None)
def test_score_functions_give_one_finite_score_per_row_in_range(name, probs):
    scores = SCORE_FUNCTIONS[name](probs)
    k = probs.shape[1]
    upper = {"least_confidence": 1 - 1 / k, "margin": 1.0, "entropy": np.log(k)}[name]
    assert scores.shape == (probs.shape[0],)
    assert np.isfinite(scores).all()
    assert (scores >= -1e-9).all() and (scores <= upper + 1e-9).all()


@pytest.mark.parametrize("name", sorted(SCORE_FUNCTIONS))
@given(k=st.integers(2, 8), top=st.floats(0.9, 0.999))
@settings(max_examples=40, deadline=None)
def test_a_confident_row_scores_below_an_uncertain_one(name, k, top):
    confident = np.full(k, (1 - top) / (k - 1))
    confident[0] = top
    uniform = np.full(k, 1 / k)
    scores = SCORE_FUNCTIONS[name](np.stack([confident, uniform]))
    assert scores[0] < scores[1]


@pytest.mark.parametrize("name", sorted(SCORE_FUNCTIONS))
@given(probs=probability_matrices(min_rows=2), seed=st.integers(0, 2**16))
@settings(max_examples=60, deadline=None)
def test_scores_do_not_depend_on_row_or_class_order(name, probs, seed):
    rng = np.random.default_rng(seed)
    rows, cols = rng.permutation(len(probs)), rng.permutation(probs.shape[1])
    scores = SCORE_FUNCTIONS[name](probs)
    permuted = SCORE_FUNCTIONS[name](probs[rows][:, cols])
    np.testing.assert_allclose(permuted, scores[rows], atol=1e-12)


@given(probs=probability_matrices(), samples=st.integers(1, 5))
@settings(max_examples=40, deadline=None)
def test_bald_is_zero_when_all_samples_agree(probs, samples):
    mc = np.repeat(probs[None], samples, axis=0)
    np.testing.assert_allclose(bald(mc), 0.0, atol=1e-9)


def test_bald_ranks_disagreeing_samples_above_agreeing_uncertainty():
    agree = np.array([[0.5, 0.5], [0.5, 0.5]])  # unsure, but every sample says so
    disagree = np.array([[0.99, 0.01], [0.01, 0.99]])  # each sure, of different classes
    mc = np.stack([agree, disagree], axis=1)  # (T=2, n=2, k=2)
    scores = bald(mc)
    assert scores[1] > scores[0] and np.isfinite(scores).all() and (scores >= 0).all()


def _pool(n=60, k=4, d=8, seed=0):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(k), size=n)
    embeddings = rng.normal(size=(n, d))
    labeled = rng.normal(size=(5, d))
    mc = rng.dirichlet(np.ones(k), size=(3, n))
    return {"probs": probs, "embeddings": embeddings, "labeled_embeddings": labeled, "mc_probs": mc}


@pytest.mark.parametrize("name", sorted(STRATEGIES))
@pytest.mark.parametrize("k", [1, 7, 60, 100])
def test_every_strategy_selects_k_distinct_valid_indices(name, k):
    chosen = select_batch(name, k, seed=1, **_pool())
    assert len(chosen) == min(k, 60)
    assert len(set(chosen.tolist())) == len(chosen)
    assert chosen.min() >= 0 and chosen.max() < 60


SEEDED = ("random", "badge", "typiclust")  # the strategies that draw at random


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_selection_is_deterministic_for_a_seed(name):
    first = select_batch(name, 10, seed=3, **_pool())
    again = select_batch(name, 10, seed=3, **_pool())
    np.testing.assert_array_equal(first, again)
    others = {tuple(select_batch(name, 10, seed=s, **_pool()).tolist()) for s in range(4, 9)}
    if name in SEEDED:  # the seed is used: other seeds draw other batches
        assert others - {tuple(first.tolist())}
    else:  # nothing random: every seed gives the same batch
        assert others == {tuple(first.tolist())}


def test_score_strategies_pick_the_highest_scores():
    pool = _pool()
    chosen = select_batch("entropy", 5, probs=pool["probs"])
    expected = np.argsort(-strategies.entropy(pool["probs"]))[:5]
    assert set(chosen.tolist()) == set(expected.tolist())


def test_ties_are_broken_by_the_lower_index():
    probs = np.full((6, 3), 1 / 3)
    np.testing.assert_array_equal(select_batch("margin", 3, probs=probs), [0, 1, 2])


def test_coreset_picks_the_point_far_from_everything_labeled():
    embeddings = np.array([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0], [0.98, 0.05]])
    labeled = np.array([[1.0, 0.0]])
    chosen = select_batch("coreset", 1, embeddings=embeddings, labeled_embeddings=labeled)
    assert chosen.tolist() == [2]


def test_hybrid_batch_is_uncertain_and_spread_out():
    rng = np.random.default_rng(0)
    n = 200
    probs = np.tile([0.98, 0.01, 0.01], (n, 1))
    probs[:20] = 1 / 3  # the uncertain ones
    embeddings = rng.normal(size=(n, 8))
    embeddings[:10] = embeddings[0] + 1e-3 * rng.normal(size=(10, 8))  # ten near-duplicates
    chosen = select_batch("hybrid", 2, probs=probs, embeddings=embeddings)
    assert set(chosen.tolist()) <= set(range(20))
    assert not set(chosen.tolist()) <= set(range(10))  # not two near-duplicates


def test_typiclust_starts_from_distinct_clusters():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(4, 6)) * 10
    embeddings = np.concatenate([c + rng.normal(size=(30, 6)) for c in centers])
    chosen = select_batch("typiclust", 4, embeddings=embeddings)
    assert sorted((chosen // 30).tolist()) == [0, 1, 2, 3]


def test_badge_needs_probabilities_and_embeddings():
    with pytest.raises(ValueError, match="needs embeddings"):
        select_batch("badge", 3, probs=_pool()["probs"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"probs": np.array([[0.5, 0.6]])}, "sum to 1"),
        ({"probs": np.array([[np.nan, 1.0]])}, "finite"),
        ({"probs": np.ones(3)}, r"\(n, k\)"),
        ({"probs": np.full((3, 2), 0.5), "embeddings": np.ones((4, 2))}, "pool size"),
    ],
)
def test_bad_input_is_rejected_in_one_place(kwargs, message):
    with pytest.raises(ValueError, match=message):
        select_batch("hybrid" if "embeddings" in kwargs else "entropy", 2, **kwargs)


def test_unknown_strategy_lists_the_known_ones():
    with pytest.raises(ValueError, match="known: .*entropy"):
        select_batch("magic", 2, probs=np.full((2, 2), 0.5))


def test_negative_k_is_rejected():
    with pytest.raises(ValueError, match="non-negative"):
        select_batch("entropy", -1, probs=np.full((2, 2), 0.5))


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_pool_scores_put_the_selected_batch_first(name):
    pool = _pool()
    scores = pool_scores(name, 5, seed=2, **pool)
    assert scores.shape == (60,) and np.isfinite(scores).all()
    if name in ("coreset", "badge", "typiclust", "hybrid"):
        batch = select_batch(name, 5, seed=2, **pool)
        np.testing.assert_array_equal(np.argsort(-scores, kind="stable")[:5], batch)


# --- candidates: what a strategy with per-item work looks at in a big pool ----------------


def test_small_pools_have_no_candidates_and_big_ones_the_strategys_kind():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=100)
    assert strategies.candidate_rows("coreset", 100, probs=probs, limit=100) is None
    assert strategies.candidate_rows("margin", 100, probs=probs, limit=10) is None  # a score
    random_rows = strategies.candidate_rows("coreset", 100, probs=probs, seed=1, limit=10)
    assert len(random_rows) == 10 == len(set(random_rows.tolist()))
    assert not np.array_equal(
        random_rows, strategies.candidate_rows("coreset", 100, probs=probs, seed=2, limit=10)
    )
    uncertain = strategies.candidate_rows("bald", 100, probs=probs, limit=10)
    np.testing.assert_array_equal(
        uncertain, np.sort(np.argsort(-strategies.entropy(probs), kind="stable")[:10])
    )


@pytest.mark.parametrize("name", ["coreset", "badge", "typiclust", "hybrid"])
def test_batch_selectors_in_a_big_pool_pick_among_their_candidates(monkeypatch, name):
    monkeypatch.setattr(strategies, "MAX_CANDIDATES", 20)
    pool = _pool(n=60)
    rows = strategies.candidate_rows(name, 60, probs=pool["probs"], seed=3)
    chosen = select_batch(name, 5, seed=3, **pool)
    assert len(rows) == 20 and set(chosen.tolist()) <= set(rows.tolist())
    scores = pool_scores(name, 5, seed=3, **pool)
    np.testing.assert_array_equal(np.argsort(-scores, kind="stable")[:5], chosen)


def test_bald_in_a_big_pool_samples_its_candidates_only_and_ranks_them_first():
    pool = _pool(n=60)
    rows = strategies.candidate_rows("bald", 60, probs=pool["probs"], limit=15)
    mc = pool["mc_probs"][:, rows]
    scores = pool_scores("bald", 5, probs=pool["probs"], mc_probs=mc, candidates=rows)
    others = np.setdiff1d(np.arange(60), rows)
    assert scores[rows].min() > scores[others].max()
    np.testing.assert_allclose(scores[rows], 1.0 + bald(mc))
    with pytest.raises(ValueError, match="15 candidates"):
        pool_scores("bald", 5, probs=pool["probs"], mc_probs=pool["mc_probs"], candidates=rows)


def test_embeddings_are_read_only_on_the_candidate_rows():
    """A pool may be a memory map of any size: the selector reads its candidates' rows."""
    read = []

    class Rows:
        ndim, shape = 2, (60, 8)

        def __init__(self, data):
            self.data = data

        def __len__(self):
            return 60

        def __getitem__(self, index):
            read.append(np.asarray(index))
            return self.data[index]

    pool = _pool(n=60)
    rows = np.array([3, 10, 11, 40, 59])
    chosen = select_batch(
        "coreset", 2, embeddings=Rows(pool["embeddings"]), candidates=rows, seed=0
    )
    assert set(chosen.tolist()) <= set(rows.tolist())
    assert len(read) == 1 and np.array_equal(read[0], rows)


def test_many_labeled_references_are_sampled_not_all_compared(monkeypatch):
    monkeypatch.setattr(strategies, "MAX_LABELED_REFERENCES", 4)
    pool = _pool(n=30)
    labeled = np.random.default_rng(1).normal(size=(50, 8))
    checked = strategies._validate(
        3, None, None, pool["embeddings"][:30], labeled, STRATEGIES["coreset"], seed=0
    )
    assert checked.pool.labeled_embeddings.shape == (4, 8)


def test_principal_components_find_the_directions_of_most_variance():
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(100, 3)))[0].T  # 3 orthonormal directions in 100-d
    x = (rng.normal(size=(3000, 3)) * [10.0, 5.0, 3.0]) @ basis
    x = (x + 0.01 * rng.normal(size=x.shape)).astype(np.float32)
    project = strategies._principal_components(x, 3, seed=0)
    coordinates = project(x)
    assert coordinates.shape == (3000, 3)
    # The projection keeps (almost) all of the variance of data that lives in 3 dimensions.
    kept = coordinates.var(axis=0).sum() / (x - x.mean(0)).var(axis=0).sum()
    assert kept > 0.999
    small = strategies._principal_components(x[:, :2], 3, seed=0)
    np.testing.assert_array_equal(small(x[:5, :2]), x[:5, :2])
