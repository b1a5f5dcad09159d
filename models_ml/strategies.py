"""Active-learning query strategies: which unlabeled items to ask about first.

Two layers, kept apart as in baal and small-text:

* **score functions** are pure ``probs (n, k) -> scores (n,)`` with one direction everywhere:
  **higher = ask first**. They are looked up by name in `SCORE_FUNCTIONS`.
* **selection** picks a batch of `k` pool indices. Score-based strategies take the top `k`
  scores; batch selectors (`coreset`, `badge`, `typiclust`, `hybrid`) also use the embeddings to
  keep the batch diverse. All input is validated once, in `_validate`, and ties are broken by the
  lower index so the same input always gives the same batch.

`pool_scores` turns either kind into one score per pool item, which is what the queue stores: the
selected batch first (in selection order), then the rest by uncertainty.

**Candidates.** A strategy that does more per item than a score function (the batch selectors'
distances and clusters, BALD's Monte-Carlo samples) looks at no more than `MAX_CANDIDATES` items
of a bigger pool (`candidate_rows`): a seeded random sample for the diversity selectors, the
most uncertain items for BALD (mutual information is at most the predictive entropy). Large-pool
active learning does the same (baal's `max_sample`; Sener & Savarese run k-center on a random
subset); it keeps one retraining round near a second at 100,000 items and a few at 1,000,000
(bench/retrain.py). The other items rank after the candidates, by uncertainty.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

ScoreFunction = Callable[[np.ndarray], np.ndarray]

_EPS = 1e-12

MAX_CANDIDATES = 20_000
"""The most pool items a strategy with per-item work beyond a score looks at (see above)."""
MAX_LABELED_REFERENCES = 2_000
"""The most labeled embeddings a selector compares the pool with (a seeded random sample):
k-center's distances to 100,000 labeled items would cost more than everything else."""


# --- score functions: probs (n, k) -> (n,), higher = ask first ---------------------------------


def least_confidence(probs: np.ndarray) -> np.ndarray:
    """1 - p(top class): 0 for a certain prediction, up to 1 - 1/k for a uniform one."""
    return 1.0 - probs.max(axis=1)


def margin(probs: np.ndarray) -> np.ndarray:
    """1 - (p1 - p2), the gap between the two most likely classes turned so small gaps rank high."""
    if probs.shape[1] < 2:
        return np.zeros(probs.shape[0])
    top2 = np.partition(probs, -2, axis=1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


def entropy(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy of the predicted distribution in nats (0 to log k)."""
    p = np.clip(probs, _EPS, 1.0)
    return np.maximum(-(probs * np.log(p)).sum(axis=1), 0.0)


def bald(mc_probs: np.ndarray) -> np.ndarray:
    """BALD mutual information from MC-dropout samples ``(T, n, k)``: H[mean p] - mean H[p_t].

    High where the samples disagree with each other (model uncertainty), not merely where each
    sample is unsure (noise); Houlsby et al. 2011, Gal et al. 2017.
    """
    mean = mc_probs.mean(axis=0)
    expected = np.stack([entropy(sample) for sample in mc_probs]).mean(axis=0)
    return np.maximum(entropy(mean) - expected, 0.0)


def random_scores(n: int, seed: int = 0) -> np.ndarray:
    """Uniform random scores: the baseline every strategy has to beat."""
    return np.random.default_rng(seed).random(n)


SCORE_FUNCTIONS: dict[str, ScoreFunction] = {
    "least_confidence": least_confidence,
    "margin": margin,
    "entropy": entropy,
}


# --- selection ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PoolInput:
    """What a strategy may look at, validated: pool probabilities and embeddings, labeled ones."""

    n: int
    probs: np.ndarray | None
    mc_probs: np.ndarray | None
    embeddings: np.ndarray | None
    labeled_embeddings: np.ndarray | None

    # What a selector declared in `needs` (validated present before it runs):
    @property
    def P(self) -> np.ndarray:
        assert self.probs is not None, "the strategy did not declare probs in its needs"
        return self.probs

    @property
    def MC(self) -> np.ndarray:
        assert self.mc_probs is not None, "the strategy did not declare mc_probs in its needs"
        return self.mc_probs

    @property
    def X(self) -> np.ndarray:
        assert self.embeddings is not None, "the strategy did not declare embeddings"
        return self.embeddings


@dataclass(frozen=True)
class Strategy:
    """One query strategy: the single place it is declared (core's model choices, the API
    enum, `simulate --strategy` and the benches all read `STRATEGIES`)."""

    name: str
    needs: frozenset[str]  # of "probs", "mc_probs", "embeddings"
    select: Callable[[PoolInput, int, int], np.ndarray]
    description: str
    label: str = ""  # what people see; the name when empty
    # In a pool bigger than MAX_CANDIDATES, which items it looks at: "random" (a seeded
    # sample: diversity), "uncertain" (highest entropy); None: every item (cheap per item).
    candidates: str | None = None

    @property
    def needs_mc_samples(self) -> bool:
        """It asks the head for Monte-Carlo dropout samples (an MLP head with dropout)."""
        return "mc_probs" in self.needs


@dataclass(frozen=True)
class _Checked:
    """The validated input: the whole pool's probabilities (the order after the candidates),
    and the strategy's view of its candidate rows (`rows`, None: every row)."""

    pool: PoolInput
    rows: np.ndarray | None
    probs: np.ndarray | None
    n: int


def _validate(
    k: int,
    probs: np.ndarray | None,
    mc_probs: np.ndarray | None,
    embeddings: np.ndarray | None,
    labeled_embeddings: np.ndarray | None,
    spec: Strategy,
    seed: int,
    candidates: np.ndarray | None = None,
) -> _Checked:
    """The one place that checks shapes, finiteness and what a strategy needs, and narrows
    the pool to the strategy's candidates. Embeddings (any float dtype, a memory map too) are
    read and normalised only on those rows; `mc_probs` are the candidates' samples."""
    arrays = {"probs": probs, "mc_probs": mc_probs, "embeddings": embeddings}
    missing = sorted(name for name in spec.needs if arrays.get(name) is None)
    if missing:
        raise ValueError(f"strategy {spec.name!r} needs {', '.join(missing)}")
    if not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"k must be a non-negative integer, got {k!r}")
    sizes = set()
    if probs is not None:
        probs = np.asarray(probs, dtype=np.float64)
        if probs.ndim != 2 or probs.shape[1] < 1:
            raise ValueError(f"probs must be (n, k), got shape {probs.shape}")
        if not np.isfinite(probs).all() or (probs < -1e-6).any():
            raise ValueError("probs must be finite and non-negative")
        if probs.shape[0] and not np.allclose(probs.sum(axis=1), 1.0, atol=1e-3):
            raise ValueError("each row of probs must sum to 1")
        sizes.add(probs.shape[0])
    if embeddings is not None:
        if np.ndim(embeddings) != 2:
            raise ValueError(f"embeddings must be (n, d), got shape {np.shape(embeddings)}")
        sizes.add(len(embeddings))
    if len(sizes) > 1:
        raise ValueError(f"inputs disagree on the pool size: {sorted(sizes)}")
    n = sizes.pop() if sizes else (np.shape(mc_probs)[1] if mc_probs is not None else 0)
    rows = candidates
    if rows is None:
        rows = candidate_rows(spec.name, n, probs=probs, seed=seed)
    elif len(rows) and (np.min(rows) < 0 or np.max(rows) >= n or len(np.unique(rows)) < len(rows)):
        raise ValueError("candidates must be distinct rows of the pool")
    m = n if rows is None else len(rows)
    if "mc_probs" not in spec.needs:
        mc_probs = None  # samples of all rows mean nothing to a strategy that ignores them
    if mc_probs is not None:
        mc_probs = np.asarray(mc_probs, dtype=np.float64)
        if mc_probs.ndim != 3:
            raise ValueError(f"mc_probs must be (samples, n, k), got shape {mc_probs.shape}")
        if not np.isfinite(mc_probs).all():
            raise ValueError("mc_probs must be finite")
        if mc_probs.shape[1] != m:
            raise ValueError(
                f"inputs disagree on the pool size: mc_probs has {mc_probs.shape[1]} rows "
                f"for {m} candidates"
            )
    if "embeddings" not in spec.needs:  # never read: a score needs no distances
        embeddings = labeled_embeddings = None
    if embeddings is not None:
        embeddings = _normalised(embeddings if rows is None else embeddings[rows], "embeddings")
    if labeled_embeddings is not None:
        if len(labeled_embeddings) > MAX_LABELED_REFERENCES:
            sample = np.random.default_rng(seed).choice(
                len(labeled_embeddings), MAX_LABELED_REFERENCES, replace=False
            )
            labeled_embeddings = labeled_embeddings[np.sort(sample)]
        labeled_embeddings = _normalised(labeled_embeddings, "labeled_embeddings")
        if embeddings is not None and labeled_embeddings.shape[1] != embeddings.shape[1]:
            raise ValueError("labeled_embeddings and embeddings differ in width")
    view = probs if rows is None or probs is None else probs[rows]
    pool = PoolInput(m, view, mc_probs, embeddings, labeled_embeddings)
    return _Checked(pool, rows, probs, n)


def candidate_rows(
    strategy: str,
    n: int,
    *,
    probs: np.ndarray | None = None,
    seed: int = 0,
    limit: int | None = None,
) -> np.ndarray | None:
    """The rows (sorted) that `strategy` looks at in a pool of `n` (at most `limit`, by
    default MAX_CANDIDATES); None: every row. The caller that samples BALD's MC dropout asks
    first and samples those rows only."""
    spec = strategy_named(strategy)
    limit = MAX_CANDIDATES if limit is None else limit
    if spec.candidates is None or n <= limit:
        return None
    if spec.candidates == "uncertain":
        if probs is None:
            raise ValueError(f"strategy {strategy!r} needs probs to choose its candidates")
        return np.sort(top_k(entropy(np.asarray(probs)), limit))
    return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))


def _normalised(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"{name} must be (n, d), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} must be finite")
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), _EPS)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores, highest first; equal scores keep index order."""
    return np.argsort(-scores, kind="stable")[:k]


def _score_select(score: ScoreFunction) -> Callable[[PoolInput, int, int], np.ndarray]:
    def select(pool: PoolInput, k: int, seed: int) -> np.ndarray:
        return top_k(score(pool.P), k)

    return select


def _select_random(pool: PoolInput, k: int, seed: int) -> np.ndarray:
    return top_k(random_scores(pool.n, seed), k)


def _select_bald(pool: PoolInput, k: int, seed: int) -> np.ndarray:
    return top_k(bald(pool.MC), k)


def k_center_greedy(
    embeddings: np.ndarray,
    k: int,
    centers: np.ndarray | None = None,
) -> np.ndarray:
    """Core-set selection (Sener & Savarese 2018): repeatedly take the point farthest from every
    center so far. `embeddings` and `centers` are L2-normalised rows; distance is 1 - cosine.

    With no centers (cold start) the first pick is the point farthest from the pool's mean.
    """
    n = embeddings.shape[0]
    k = min(k, n)
    if k == 0:
        return np.empty(0, dtype=np.int64)
    if centers is not None and len(centers):
        nearest: np.ndarray = np.full(n, np.inf, dtype=np.float32)
        for start in range(0, len(centers), 4096):  # bounded memory for big labeled sets
            sims = embeddings @ centers[start : start + 4096].T
            nearest = np.minimum(nearest, 1.0 - sims.max(axis=1))
    else:
        mean = embeddings.mean(axis=0)
        nearest = 1.0 - embeddings @ (mean / max(np.linalg.norm(mean), _EPS))
    chosen = np.empty(k, dtype=np.int64)
    for i in range(k):
        pick = int(np.argmax(nearest))
        chosen[i] = pick
        nearest = np.minimum(nearest, 1.0 - embeddings @ embeddings[pick])
        nearest[chosen[: i + 1]] = -np.inf
    return chosen


def _select_coreset(pool: PoolInput, k: int, seed: int) -> np.ndarray:
    return k_center_greedy(pool.X, k, pool.labeled_embeddings)


def _select_badge(pool: PoolInput, k: int, seed: int) -> np.ndarray:
    """BADGE (Ash et al. 2020): k-means++ seeding on gradient embeddings g = (p - onehot(ŷ)) ⊗ x.

    g is never materialised: <g_i, g_j> = <a_i, a_j> · <x_i, x_j> with a = p - onehot(ŷ), so each
    new center costs O(n (k + d)) instead of O(n k d) memory.
    """
    probs, x = pool.P, pool.X
    n = pool.n
    k = min(k, n)
    if k == 0:
        return np.empty(0, dtype=np.int64)
    a = probs.copy()
    a[np.arange(n), probs.argmax(axis=1)] -= 1.0
    a_sq = (a * a).sum(axis=1)
    x_sq = (x * x).sum(axis=1).astype(np.float64)
    g_sq = a_sq * x_sq
    rng = np.random.default_rng(seed)
    first = int(np.argmax(g_sq))
    chosen = [first]
    dist = np.maximum(g_sq + g_sq[first] - 2.0 * (a @ a[first]) * (x @ x[first]), 0.0)
    dist[first] = 0.0
    while len(chosen) < k:
        total = dist.sum()
        if total <= _EPS:  # every gradient is the same: fall back to the most uncertain left
            rest = np.setdiff1d(top_k(g_sq, n), chosen, assume_unique=True)
            chosen.extend(int(i) for i in rest[: k - len(chosen)])
            break
        pick = int(rng.choice(n, p=dist / total))
        chosen.append(pick)
        new = np.maximum(g_sq + g_sq[pick] - 2.0 * (a @ a[pick]) * (x @ x[pick]), 0.0)
        dist = np.minimum(dist, new)
        dist[pick] = 0.0
    return np.asarray(chosen, dtype=np.int64)


def typicality(embeddings: np.ndarray, neighbours: int = 20) -> np.ndarray:
    """Inverse mean cosine distance to the `neighbours` nearest points (TypiClust's density)."""
    n = embeddings.shape[0]
    if n == 1:
        return np.ones(1)
    m = min(neighbours, n - 1)
    dist = 1.0 - embeddings @ embeddings.T
    np.fill_diagonal(dist, np.inf)
    nearest = np.partition(dist, m - 1, axis=1)[:, :m]
    return 1.0 / (np.maximum(nearest, 0.0).mean(axis=1) + 1e-6)


CLUSTER_DIMS = 64
FULL_KMEANS_MAX_CLUSTERS = 50


def _principal_components(
    x: np.ndarray, dims: int, seed: int, sample: int = 2048, oversample: int = 8
) -> Callable[[np.ndarray], np.ndarray]:
    """x ↦ its coordinates on the first `dims` principal components of a `sample` of x, by
    randomized subspace iteration (Halko, Martinsson & Tropp 2011: two power iterations);
    the identity when x has no more than `dims` dimensions."""
    if x.shape[1] <= dims or len(x) <= dims + oversample:
        return lambda rows: rows
    rng = np.random.default_rng(seed)
    rows = x[np.sort(rng.choice(len(x), min(len(x), sample), replace=False))]
    mean = rows.mean(axis=0)
    centred = rows - mean
    basis = centred @ rng.normal(size=(x.shape[1], dims + oversample)).astype(np.float32)
    for _ in range(2):
        basis, _ = np.linalg.qr(centred @ (centred.T @ basis))
    _, _, vt = np.linalg.svd(basis.T @ centred, full_matrices=False)
    components = np.ascontiguousarray(vt[:dims].T, dtype=np.float32)
    return lambda rows: (rows - mean) @ components


def _select_typiclust(
    pool: PoolInput, k: int, seed: int, max_clusters: int = 500, max_cluster_points: int = 2000
) -> np.ndarray:
    """TypiClust (Hacohen et al. 2022), for the cold start: cluster the pool into about
    labeled + k clusters, then take the most typical point of the largest uncovered clusters.

    Clusters are k-means on the first `CLUSTER_DIMS` principal components (fitted on a
    sample), with randomly seeded mini-batches beyond `FULL_KMEANS_MAX_CLUSTERS` clusters:
    500 clusters of 10,000 CIFAR-10 EfficientNet-Lite0 vectors took 8.6 s with full k-means
    on all 1,280 dimensions and 0.3 s so, agreeing with it as well as mini-batch
    k-means on every dimension does (adjusted Rand 0.17 against 0.13). Typicality is
    measured in the full space.
    """
    from sklearn.cluster import KMeans, MiniBatchKMeans

    x = pool.X
    n = pool.n
    k = min(k, n)
    if k == 0:
        return np.empty(0, dtype=np.int64)
    labeled = pool.labeled_embeddings if pool.labeled_embeddings is not None else x[:0]
    n_clusters = int(min(len(labeled) + k, max_clusters, n))
    project = _principal_components(x, CLUSTER_DIMS, seed)
    if n_clusters <= FULL_KMEANS_MAX_CLUSTERS:
        kmeans = KMeans(n_clusters=n_clusters, random_state=seed, n_init=1)
    else:  # k-means++ seeding of hundreds of centres cost more than the clustering
        kmeans = MiniBatchKMeans(n_clusters=n_clusters, random_state=seed, n_init=1, init="random")
    kmeans.fit(project(x))
    assignment = kmeans.labels_
    sizes = np.bincount(assignment, minlength=n_clusters)
    covered = np.zeros(n_clusters, dtype=np.int64)
    if len(labeled):
        np.add.at(covered, kmeans.predict(project(labeled)), 1)
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(assignment == c) for c in range(n_clusters)]
    ranked: dict[int, list[int]] = {}
    chosen: list[int] = []
    while len(chosen) < k:
        open_clusters = [c for c in range(n_clusters) if len(members[c]) > 0]
        # fewest labeled first, then the largest: stable by cluster id
        c = min(open_clusters, key=lambda c: (covered[c], -sizes[c], c))
        if c not in ranked:
            idx = members[c]
            if len(idx) > max_cluster_points:
                idx = np.sort(rng.choice(idx, max_cluster_points, replace=False))
            order = np.argsort(-typicality(x[idx]), kind="stable")  # type: ignore[call-overload]
            ranked[c] = [int(i) for i in idx[order]]
        pick = ranked[c].pop(0)
        chosen.append(pick)
        members[c] = members[c][members[c] != pick]
        if not ranked[c]:
            members[c] = members[c][:0]
        covered[c] += 1
    return np.asarray(chosen, dtype=np.int64)


def _select_hybrid(pool: PoolInput, k: int, seed: int, candidates_per_pick: int = 10) -> np.ndarray:
    """Uncertainty, then diversity: the top `candidates_per_pick * k` items by entropy, then
    k-center greedy among them (against the labeled set) so the batch is not k near-duplicates.
    """
    k = min(k, pool.n)
    candidates = top_k(entropy(pool.P), min(pool.n, max(k, candidates_per_pick * k)))
    picked = k_center_greedy(pool.X[candidates], k, pool.labeled_embeddings)
    return candidates[picked]


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in [
        Strategy("random", frozenset(), _select_random, "uniform at random (baseline)", "Random"),
        Strategy(
            "least_confidence",
            frozenset({"probs"}),
            _score_select(least_confidence),
            "lowest top-class probability",
            "Least confidence",
        ),
        Strategy(
            "margin", frozenset({"probs"}), _score_select(margin), "smallest top-2 gap", "Margin"
        ),
        Strategy(
            "entropy", frozenset({"probs"}), _score_select(entropy), "highest entropy", "Entropy"
        ),
        Strategy(
            "bald",
            frozenset({"probs", "mc_probs"}),
            _select_bald,
            "MC-dropout mutual information",
            "BALD (MC dropout)",
            candidates="uncertain",
        ),
        Strategy(
            "coreset",
            frozenset({"embeddings"}),
            _select_coreset,
            "k-center greedy",
            "Core-set (k-center greedy)",
            candidates="random",
        ),
        Strategy(
            "badge",
            frozenset({"probs", "embeddings"}),
            _select_badge,
            "k-means++ on gradient embeddings",
            "BADGE",
            candidates="random",
        ),
        Strategy(
            "typiclust",
            frozenset({"embeddings"}),
            _select_typiclust,
            "most typical point per cluster (cold start)",
            "TypiClust (cold start)",
            candidates="random",
        ),
        Strategy(
            "hybrid",
            frozenset({"probs", "embeddings"}),
            _select_hybrid,
            "top uncertain candidates, then k-center diversity",
            "Uncertain candidates, then diversity",
            candidates="uncertain",
        ),
    ]
}


def select_batch(
    strategy: str,
    k: int,
    *,
    probs: np.ndarray | None = None,
    mc_probs: np.ndarray | None = None,
    embeddings: np.ndarray | None = None,
    labeled_embeddings: np.ndarray | None = None,
    seed: int = 0,
    candidates: np.ndarray | None = None,
) -> np.ndarray:
    """Pool indices to ask about next, best first: `min(k, n)` distinct indices (of the
    strategy's candidates, in a pool bigger than MAX_CANDIDATES)."""
    spec = strategy_named(strategy)
    checked = _validate(k, probs, mc_probs, embeddings, labeled_embeddings, spec, seed, candidates)
    pool = checked.pool
    if pool.n == 0 or k == 0:
        return np.empty(0, dtype=np.int64)
    chosen = np.asarray(spec.select(pool, min(int(k), pool.n), seed), dtype=np.int64)
    assert len(np.unique(chosen)) == len(chosen), "a selector returned a duplicate"
    return chosen if checked.rows is None else checked.rows[chosen]


def pool_scores(
    strategy: str,
    k: int,
    *,
    probs: np.ndarray | None = None,
    mc_probs: np.ndarray | None = None,
    embeddings: np.ndarray | None = None,
    labeled_embeddings: np.ndarray | None = None,
    seed: int = 0,
    candidates: np.ndarray | None = None,
) -> np.ndarray:
    """One acquisition score per pool item (higher = ask first), for a queue that stores scores.

    Score functions give their scores as they are. Batch selectors give their batch of `k` scores
    in (1, 2], in selection order, and everything else its normalised entropy in [0, 1) (or 0
    without probabilities), so the queue asks the diverse batch first and then the uncertain rest.
    BALD gives its mutual information; in a pool bigger than its candidates, those get it
    plus 1 and the rest their normalised entropy, so every candidate comes first.
    """
    spec = strategy_named(strategy)
    checked = _validate(k, probs, mc_probs, embeddings, labeled_embeddings, spec, seed, candidates)
    pool, rows = checked.pool, checked.rows
    if strategy in SCORE_FUNCTIONS:
        return SCORE_FUNCTIONS[strategy](pool.P)
    if strategy == "random":
        return random_scores(pool.n, seed)
    if strategy == "bald" and rows is None:
        return bald(pool.MC)
    scores = np.zeros(checked.n)
    full = checked.probs
    if full is not None and full.shape[1] > 1:
        scores = 0.999 * entropy(full) / np.log(full.shape[1])
    if strategy == "bald":
        scores[rows] = 1.0 + bald(pool.MC)
        return scores
    chosen = np.asarray(spec.select(pool, min(int(k), pool.n), seed), dtype=np.int64)
    if rows is not None:
        chosen = rows[chosen]
    if len(chosen):
        scores[chosen] = 1.0 + (len(chosen) - np.arange(len(chosen))) / len(chosen)
    return scores


def probability_scores(strategy: str, probs: np.ndarray, seed: int = 0) -> np.ndarray:
    """Acquisition scores from class probabilities alone (CLIP's zero-shot suggestions have
    no trained head to sample and no batch to build): a strategy that is a score function
    gives its own scores, `random` random ones, and the others entropy, the uncertainty
    every one of them starts from."""
    strategy_named(strategy)  # an unknown name is an error, not a silent fallback
    if strategy in SCORE_FUNCTIONS:
        return SCORE_FUNCTIONS[strategy](probs)
    if strategy == "random":
        return random_scores(len(probs), seed)
    return entropy(probs)


def strategy_named(name: str) -> Strategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(
            f"unknown strategy {name!r}; known: {', '.join(sorted(STRATEGIES))}"
        ) from None
