"""Benchmark: one retraining round of the worker on cached embeddings, for every strategy.

A pool of `--pool` × `--dim` synthetic, class-structured embeddings sits in an on-disk
EmbeddingStore (float16, memory-mapped, as the worker reads it); `--labels` of them are
labeled. For each registered strategy one round runs through the code the training run
calls (models_ml/retraining.py): fit the head with its calibration folds (the accuracy
estimate and the held-out predictions come from them), BALD's MC-dropout sampler, score the
pool, and the strategy's acquisition scores. `totals_s.fit_plus_rescore_<strategy>` is that
round's wall time, the median of `--repeats`; `memory` the round's peak growth of resident
memory (it counts the store's memory-mapped pages, file cache the kernel can drop) and of
what numpy allocated (tracemalloc).

Baseline in the same run (pools up to `--baseline-max-pool`, default 100,000): the round
before #24, from the same library: the L-BFGS solver with calibration folds from zero, and
every strategy on the whole pool (no candidate cap: `candidates=` every row).

Goal (#24): every strategy ≤ 1 s at 100,000 × 384 and ≤ 5 s at 1,000,000 × 384 (2 CPU cores),
with the pool accuracy and the cross-validated estimate of the baseline's fit.

    .venv/bin/python bench/retrain.py [--pool 100000] [--dim 384] [--labels 1000] [--k 100]
"""

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.export import PeakSampler, rss_mb  # noqa: E402
from models_ml.device import configure_cpu_threads  # noqa: E402
from models_ml.heads import LinearHead, proba_for_classes  # noqa: E402
from models_ml.retraining import (  # noqa: E402
    FittedHead,
    acquisition_scores,
    head_fit,
    sampler_for,
)
from models_ml.store import EmbeddingStore, RowView  # noqa: E402
from models_ml.strategies import STRATEGIES, pool_scores, strategy_named  # noqa: E402


def synthetic_embeddings(pool: int, dim: int, classes: int, seed: int):
    """A class-structured pool like SSL features: class centres plus wide noise, written a
    block at a time (a million rows never sit in memory as float32)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim)).astype(np.float32)
    y = rng.integers(classes, size=pool)
    x = np.empty((pool, dim), dtype=np.float16)
    for start in range(0, pool, 100_000):
        rows = y[start : start + 100_000]
        noise = rng.normal(size=(len(rows), dim)).astype(np.float32)
        x[start : start + len(rows)] = centres[rows] + 6.0 * noise
    return x, y


def one_round(strategy, *, store, labeled, open_rows, y, args, baseline=False):
    """The training run's ML steps for `strategy`; returns (fitted head, open rows' probs)."""
    class_ids = np.arange(args.classes)
    vectors = RowView(store.vectors())
    X = vectors[labeled]
    if baseline:  # before #24: L-BFGS, folds from zero
        head = LinearHead(
            class_weight="balanced", random_state=args.seed, solver="lbfgs", warm_start_folds=False
        ).fit(X, y[labeled])
        sampler = sampler_for(strategy=strategy, seed=args.seed)
        if sampler is not None:
            sampler.fit(X, y[labeled])
        fitted = FittedHead("linear", head, head.out_of_fold_, sampler)
    else:
        fitted = head_fit(strategy=strategy, X=X, y=y[labeled], seed=args.seed)
    probs = proba_for_classes(fitted.head, vectors, class_ids)
    open_probs, open_vectors = probs[open_rows], vectors.take(open_rows)
    if baseline:  # every strategy on the whole pool
        spec = strategy_named(strategy)
        mc = fitted.sampler.sample_proba(open_vectors) if fitted.sampler is not None else None
        pool_scores(
            strategy,
            args.k,
            probs=open_probs,
            mc_probs=mc,
            embeddings=open_vectors if "embeddings" in spec.needs else None,
            labeled_embeddings=X if "embeddings" in spec.needs else None,
            seed=args.seed,
            candidates=np.arange(len(open_rows)),
        )
    else:
        acquisition_scores(
            strategy=strategy,
            k=args.k,
            fitted=fitted,
            probs=open_probs,
            vectors=open_vectors,
            labeled=X,
            seed=args.seed,
        )
    return fitted, open_probs


def timed_rounds(strategy, repeats, **kwargs) -> dict:
    """Median seconds of `repeats` rounds, then one more round for memory (tracemalloc slows
    Python-level code, so that round is not timed)."""
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        fitted, probs = one_round(strategy, **kwargs)
        seconds.append(time.perf_counter() - started)
    tracemalloc.start()
    start_rss = rss_mb()
    with PeakSampler() as sampler:
        one_round(strategy, **kwargs)
    allocated = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return {
        "seconds": round(statistics.median(seconds), 4),
        "peak_rss_growth_mb": round(sampler.peak - start_rss, 1),
        "peak_allocated_mb": round(allocated, 1),
        "fitted": fitted,
        "probs": probs,
    }


def quality(result, y_open) -> dict:
    fitted: FittedHead = result["fitted"]
    estimate = fitted.out_of_fold.estimate if fitted.out_of_fold is not None else None
    return {
        "pool_accuracy": round(float((result["probs"].argmax(axis=1) == y_open).mean()), 4),
        "cv_estimate": None if estimate is None else round(estimate.accuracy, 4),
        "temperature": round(float(getattr(fitted.head, "temperature_", 1.0)), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--labels", type=int, default=1000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--k", type=int, default=100, help="batch size of the batch selectors")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline-max-pool", type=int, default=100_000)
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    args = parser.parse_args()
    threads = configure_cpu_threads()
    strategies = args.strategies.split(",")

    x, y = synthetic_embeddings(args.pool, args.dim, args.classes, args.seed)
    rng = np.random.default_rng(args.seed)
    labeled = np.sort(rng.choice(args.pool, args.labels, replace=False))
    open_rows = np.setdiff1d(np.arange(args.pool), labeled)

    rounds, baseline = {}, {}
    with tempfile.TemporaryDirectory() as root:
        store = EmbeddingStore(root, "bench@synthetic", args.dim)
        started = time.perf_counter()
        store.append(np.arange(1, args.pool + 1), x)
        write_s = time.perf_counter() - started
        del x
        common = {"store": store, "labeled": labeled, "open_rows": open_rows, "y": y, "args": args}
        for strategy in strategies:
            rounds[strategy] = timed_rounds(strategy, args.repeats, **common)
            print(f"{strategy}: {rounds[strategy]['seconds']} s", file=sys.stderr)
        if args.pool <= args.baseline_max_pool:
            for strategy in strategies:
                baseline[strategy] = timed_rounds(strategy, 1, baseline=True, **common)
                print(f"baseline {strategy}: {baseline[strategy]['seconds']} s", file=sys.stderr)

    goal = 1.0 if args.pool <= 100_000 else 5.0
    y_open = y[open_rows]
    report = {
        "benchmark": "retrain",
        "pool": args.pool,
        "dim": args.dim,
        "labels": args.labels,
        "classes": args.classes,
        "k": args.k,
        "repeats": args.repeats,
        "cpu_threads": threads,
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
        "store_write_s": round(write_s, 3),
        "totals_s": {f"fit_plus_rescore_{s}": r["seconds"] for s, r in rounds.items()},
        "memory": {
            s: {k: r[k] for k in ("peak_rss_growth_mb", "peak_allocated_mb")}
            for s, r in rounds.items()
        },
        "quality": quality(rounds[strategies[0]], y_open),
        "goal_s": goal,
        "goal_met": all(r["seconds"] <= goal for r in rounds.values()),
    }
    if baseline:
        report["baseline"] = {
            "what": "before #24: L-BFGS with calibration folds from zero; strategies on the "
            "whole pool (no candidates)",
            "totals_s": {f"fit_plus_rescore_{s}": r["seconds"] for s, r in baseline.items()},
            "memory": {
                s: {k: r[k] for k in ("peak_rss_growth_mb", "peak_allocated_mb")}
                for s, r in baseline.items()
            },
            "quality": quality(baseline[strategies[0]], y_open),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
