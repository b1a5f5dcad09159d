"""Benchmark: one retraining round of the worker on cached embeddings.

Fits the linear head on `--labels` labeled embeddings and rescores a pool of `--pool` × `--dim`
embeddings (read from the on-disk EmbeddingStore, as the worker does) with every registered
strategy (`totals_s.fit_plus_rescore_<strategy>`; BALD fits the MLP head and samples it with
MC dropout, as training does) and a baseline, all in the same run. Prints one
JSON object; seconds are the median of `--repeats` runs.

Goal (issue 3): fit + rescore under 5 s on the 2-core CPU.

    .venv/bin/python bench/retrain.py [--pool 100000] [--dim 384] [--labels 1000] [--k 100]
"""

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models_ml.device import configure_cpu_threads  # noqa: E402
from models_ml.embed import EmbeddingStore  # noqa: E402
from models_ml.heads import LinearHead, MLPHead, out_of_fold  # noqa: E402
from models_ml.strategies import STRATEGIES, entropy, pool_scores  # noqa: E402


def synthetic_embeddings(pool: int, dim: int, classes: int, seed: int):
    """A class-structured pool like SSL features: class centres plus wide noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim)).astype(np.float32)
    y = rng.integers(classes, size=pool)
    x = centres[y] + 6.0 * rng.normal(size=(pool, dim)).astype(np.float32)
    return x.astype(np.float16), y


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def one_round(root, args, ids, labeled, unlabeled_mask, y, record):
    """Time each step of one retraining round; returns what the summary needs."""
    store = EmbeddingStore(root, "bench@synthetic", args.dim)  # cold index, as a new job
    s, labeled_x = timed(lambda: store.get(ids[labeled]).astype(np.float32))
    record("read_labeled_embeddings", s)
    s, pool_x = timed(lambda: np.asarray(store.vectors(), dtype=np.float32))
    record("read_pool_embeddings", s)
    pool_x = pool_x[unlabeled_mask]
    labeled_y = y[labeled]

    s, head = timed(lambda: LinearHead().fit(labeled_x, labeled_y))
    record("fit_linear_head_calibrated", s)
    # Baseline of the same run: calibration folds started from zero (before #24), not
    # from the full model's weights; the same optimum, so the same temperature and estimate.
    s, cold = timed(lambda: LinearHead(warm_start_folds=False).fit(labeled_x, labeled_y))
    record("fit_linear_head_calibrated_cold_folds", s)
    s, _ = timed(lambda: LinearHead(calibrate=False).fit(labeled_x, labeled_y))
    record("fit_linear_head_uncalibrated", s)
    s, estimate = timed(
        lambda: (
            out_of_fold(LinearHead(calibrate=False), labeled_x, labeled_y, calibrate=False).estimate
        )
    )
    record("cross_validated_accuracy", s)
    s, probs = timed(lambda: head.predict_proba(pool_x))
    record("predict_pool", s)
    s, _ = timed(lambda: entropy(probs))
    record("score_entropy", s)
    mc = None
    for strategy, spec in STRATEGIES.items():  # every registered strategy
        if spec.needs_mc_samples:  # BALD: the MLP head with MC dropout, as training fits it
            s, mlp = timed(lambda: MLPHead(epochs=100, random_state=args.seed).fit(
                labeled_x, labeled_y))  # fmt: skip
            record("fit_mlp_head", s)
            s, mc = timed(lambda mlp=mlp: mlp.sample_proba(pool_x))
            record("sample_pool_mc_dropout", s)
        s, _ = timed(
            lambda strategy=strategy, mc=mc: pool_scores(
                strategy,
                args.k,
                probs=probs,
                mc_probs=mc,
                embeddings=pool_x,
                labeled_embeddings=labeled_x,
                seed=args.seed,
            )
        )
        record(f"select_{strategy}", s)
    # baseline: plain scikit-learn defaults, no normalisation and no calibration
    from sklearn.linear_model import LogisticRegression

    s, baseline = timed(lambda: LogisticRegression(max_iter=300).fit(labeled_x, labeled_y))
    record("baseline_fit_sklearn_default", s)
    s, _ = timed(lambda: baseline.predict_proba(pool_x))
    record("baseline_predict_pool", s)

    return head, pool_x, estimate, cold


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--labels", type=int, default=1000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--k", type=int, default=100, help="batch size of the batch selectors")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    threads = configure_cpu_threads()

    x, y = synthetic_embeddings(args.pool, args.dim, args.classes, args.seed)
    ids = np.arange(1, args.pool + 1)
    rng = np.random.default_rng(args.seed)
    labeled = rng.choice(args.pool, args.labels, replace=False)
    unlabeled_mask = np.ones(args.pool, dtype=bool)
    unlabeled_mask[labeled] = False

    steps: dict[str, list[float]] = {}

    def record(name: str, seconds: float) -> None:
        steps.setdefault(name, []).append(seconds)

    with tempfile.TemporaryDirectory() as root:
        store = EmbeddingStore(root, "bench@synthetic", args.dim)
        write_s, _ = timed(lambda: store.append(ids, x))
        for _ in range(args.repeats):
            head, pool_x, estimate, cold = one_round(
                root, args, ids, labeled, unlabeled_mask, y, record
            )

    median = {name: round(statistics.median(values), 4) for name, values in steps.items()}
    rescore = median["predict_pool"]
    fit = median["fit_linear_head_calibrated"]
    totals = {
        f"fit_plus_rescore_{strategy}": round(
            (
                median["fit_mlp_head"] + median["sample_pool_mc_dropout"]
                if spec.needs_mc_samples
                else fit + rescore
            )
            + median[f"select_{strategy}"],
            4,
        )
        for strategy, spec in STRATEGIES.items()
    }
    totals.update(
        {
            "baseline_fit_plus_predict": round(
                median["baseline_fit_sklearn_default"] + median["baseline_predict_pool"], 4
            ),
        }
    )
    accuracy = float((head.predict(pool_x) == y[unlabeled_mask]).mean())
    print(
        json.dumps(
            {
                "benchmark": "retrain",
                "pool": args.pool,
                "dim": args.dim,
                "labels": args.labels,
                "classes": args.classes,
                "k": args.k,
                "repeats": args.repeats,
                "cpu_threads": threads,
                "machine": platform.machine(),
                "store_write_s": round(write_s, 4),
                "seconds": median,
                "totals_s": totals,
                "goal_s": 5.0,
                "goal_met": all(
                    totals[f"fit_plus_rescore_{strategy}"] < 5.0 for strategy in STRATEGIES
                ),
                "pool_accuracy": round(accuracy, 4),
                "cv_estimate": None if estimate.accuracy is None else round(estimate.accuracy, 4),
                "temperature": round(head.temperature_, 3),
                "temperature_cold_folds": round(cold.temperature_, 3),
                "cv_estimate_cold_folds": None
                if cold.cv_estimate_ is None
                else round(cold.cv_estimate_.accuracy, 4),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
