"""Benchmark: how much of the open pool pseudo-label cuts certify from random audits, and how
often the certified pseudo-labels fall short of the target.

The training run certifies its pseudo-label cuts on the out-of-fold predictions of the audit
cards' answers, a random sample of the open images (`certified_class_thresholds`,
core/services/training.py `pseudo_label_thresholds`). This measures that rule where the
human-effort bench cannot see it, on features alone, with the truth known for every image:

- a pool of `--pool-size` train images, embedded once with the installed encoder;
- for each number of labels (drawn at random: the labels the app's model is trained on) and
  each number of audits (more random images, labels too, whose out-of-fold predictions are the
  evidence), and each seed: the app's head fitted on both, the cuts certified on the audits
  and kept within the audits' share (`cuts_within_share`), applied to the rest of the pool
  (the open images);
- per cell: the share of the open images pseudo-labeled, their true precision, and the share
  a cut placed knowing the truth could have taken at the target ("oracle");
- the same for the app's rule until stop 38 ("counted": the audits above the pooled cut
  counted, `counted_cuts`), and for a rejected alternative ("platt": a two-parameter Platt
  fit of the audits' correctness on their confidence, a bootstrap lower bound on the pooled
  precision of the open images above each cut, and nothing else: no support, no check that
  the audits above the cut agree with the curve, no classes held out; its pseudo-labels
  missed 95 % in 11-16 of 36 cells at stop 32). The app's rule since stop 38 reads a Platt
  curve too, with those checks (`calibrated_cut`).

Prints one JSON: the cells and, per rule, the cells that certified a cut, the cells whose
pseudo-labels were right less often than the target ("misses") and the mean coverage.

    .venv/bin/python bench/pseudo_label_certification.py --data ../shared/data/cifar10-jpg.zip
    .venv/bin/python bench/pseudo_label_certification.py --data fashion-mnist
"""

import argparse
import io
import json
import platform
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def pool_files(data: str, size: int, seed: int, workdir: Path):
    """(readers, class index) of `size` random train images of `data` (a zip or folder with
    train/<class>/<image>, or `fashion-mnist`: the Debian package's files)."""
    if data == "fashion-mnist":
        from bench.label_efficiency import fashion_mnist_tree

        path = fashion_mnist_tree(workdir / "fashion-mnist", train_limit=size, test_limit=10)
    else:
        path = Path(data)
    if zipfile.is_zipfile(path):
        archive = zipfile.ZipFile(path)
        names = [n for n in archive.namelist() if n.startswith("train/") and "." in n]
        read = archive.read
    else:
        names = [str(p.relative_to(path)) for p in sorted((path / "train").glob("*/*"))]

        def read(name: str) -> bytes:
            return (path / name).read_bytes()

    rng = np.random.default_rng(seed)
    names = [names[i] for i in sorted(rng.choice(len(names), min(size, len(names)), False))]
    classes = sorted({n.split("/")[1] for n in names})
    return [lambda n=n: read(n) for n in names], np.array(
        [classes.index(n.split("/")[1]) for n in names]
    )


def embed(readers, encoder_name: str) -> np.ndarray:
    import torch
    from PIL import Image

    from models_ml.encoders import load_encoder

    encoder = load_encoder(encoder_name)
    out = []
    for start in range(0, len(readers), 64):
        batch = torch.stack(
            [
                encoder.preprocess(Image.open(io.BytesIO(read())).convert("RGB"))
                for read in readers[start : start + 64]
            ]
        ).to(encoder.device)
        with torch.no_grad():
            out.append(encoder.embed(batch).float().cpu().numpy())
    return np.concatenate(out)


def platt_cut(confidence, correct, open_confidence, target, *, draws=200, seed=0):
    """The rejected alternative: the lowest confidence where the 5th percentile, over
    bootstrap draws of the audits, of the Platt-predicted precision of the open images above
    it clears `target`; None where none does."""
    from sklearn.linear_model import LogisticRegression

    def logit(c):
        c = np.clip(c, 1e-4, 1 - 1e-4)
        return np.log(c / (1 - c))

    rng = np.random.default_rng(seed)
    ordered = np.sort(open_confidence)[::-1]
    estimates = []
    for _ in range(draws):
        pick = rng.integers(0, len(confidence), len(confidence))
        if correct[pick].all() or not correct[pick].any():
            continue
        fit = LogisticRegression(C=1e4).fit(logit(confidence[pick])[:, None], correct[pick])
        precision = fit.predict_proba(logit(ordered)[:, None])[:, 1]
        estimates.append(np.cumsum(precision) / np.arange(1, len(precision) + 1))
    if not estimates:
        return None
    low = np.quantile(np.array(estimates), 0.05, axis=0)
    ok = np.flatnonzero(low >= target)
    return float(ordered[ok.max()]) if len(ok) else None


def counted_cuts(confidence, predicted, correct, *, target: float, z: float = 1.645) -> dict:
    """The app's rule until stop 38, for comparison: the pooled cut certified by counting the
    audits above it (`preselect_threshold`: the Wilson lower bound of their right share, and
    the isotonic fit at the cut), a class held to its own cut where none of its audits are
    above the pooled cut or their Wilson upper bound is below `target`."""
    from models_ml.confidence import (
        PreselectThreshold,
        class_thresholds,
        family_z,
        preselect_threshold,
        wilson_upper_bound,
    )

    own = class_thresholds(
        confidence, predicted, correct, target=target, z=family_z(z, len(np.unique(predicted)))
    )
    pooled = preselect_threshold(confidence, correct, target=target, z=z).threshold
    if pooled is None:
        return own
    cuts = {}
    for cls, own_cut in own.items():
        mine = predicted == cls
        above = mine & (confidence >= pooled)
        n, hits = int(above.sum()), int(correct[above].sum())
        if (
            n == 0
            or wilson_upper_bound(hits, n, z) < target
            or (own_cut.threshold is not None and own_cut.threshold <= pooled)
        ):
            cuts[cls] = own_cut
        else:
            cuts[cls] = PreselectThreshold(pooled, target, n, hits / n, n / mine.sum(), mine.sum())
    return cuts


def cell(X, y, *, labels: int, audits: int, seed: int, target: float) -> dict:
    from models_ml.confidence import certified_class_thresholds, cut_limits, cuts_within_share
    from models_ml.retraining import head_fit

    order = np.random.default_rng(seed).permutation(len(y))
    train, audited, rest = (
        order[: labels + audits],
        order[labels : labels + audits],
        order[labels + audits :],
    )
    fitted = head_fit(strategy="random", X=X[train], y=y[train], seed=seed)
    oof = fitted.out_of_fold.proba[labels:]
    confidence, predicted = oof.max(axis=1), oof.argmax(axis=1)
    correct = predicted == y[audited]
    probs = fitted.head.predict_proba(X[rest])
    open_confidence, open_predicted = probs.max(axis=1), probs.argmax(axis=1)
    open_right = open_predicted == y[rest]

    def outcome(chosen: np.ndarray) -> dict:
        return {
            "coverage": round(float(chosen.mean()), 4),
            "precision": round(float(open_right[chosen].mean()), 4) if chosen.any() else None,
        }

    cuts = cuts_within_share(
        certified_class_thresholds(
            confidence, predicted, correct, target=target, open_confidence=open_confidence
        ),
        confidence,
        predicted,
        open_confidence,
        open_predicted,
    )
    counted = cuts_within_share(
        counted_cuts(confidence, predicted, correct, target=target),
        confidence,
        predicted,
        open_confidence,
        open_predicted,
    )

    platt = platt_cut(confidence, correct, open_confidence, target, seed=seed)
    ranked = open_right[np.argsort(-open_confidence)]
    running = np.cumsum(ranked) / np.arange(1, len(ranked) + 1)
    reachable = np.flatnonzero(running >= target)
    return {
        "labels": labels,
        "audits": audits,
        "seed": seed,
        "audits_right": round(float(correct.mean()), 4),
        "cuts": sorted(
            {round(float(c.threshold), 4) for c in cuts.values() if c.threshold is not None}
        ),
        "certified": outcome(open_confidence >= cut_limits(cuts, open_predicted)),
        "counted": outcome(open_confidence >= cut_limits(counted, open_predicted)),
        "platt": outcome(
            open_confidence >= platt if platt is not None else np.zeros(len(rest), bool)
        ),
        "oracle_coverage": round(float((reachable.max() + 1) / len(rest)), 4)
        if len(reachable)
        else 0.0,
    }


def summary(cells: list[dict], rule: str, target: float) -> dict:
    made = [c[rule] for c in cells if c[rule]["precision"] is not None]
    return {
        "cells": len(cells),
        "certified": len(made),
        "misses": sum(m["precision"] < target for m in made),
        "mean_coverage": round(float(np.mean([c[rule]["coverage"] for c in cells])), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="zip or folder, or fashion-mnist")
    parser.add_argument("--encoder", default="tf_efficientnet_lite0.in1k")
    parser.add_argument("--pool-size", type=int, default=3000)
    parser.add_argument("--labels", type=int, nargs="+", default=[300, 1000, 2000])
    parser.add_argument("--audits", type=int, nargs="+", default=[50, 100, 200, 400])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument(
        "--features",
        type=Path,
        help="an .npz of the pool's features: read if it exists, else written",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    if args.features and args.features.exists():
        stored = np.load(args.features)
        X, y = stored["X"], stored["y"]
    else:
        with tempfile.TemporaryDirectory() as workdir:
            readers, y = pool_files(args.data, args.pool_size, 0, Path(workdir))
            X = embed(readers, args.encoder)
        if args.features:
            np.savez(args.features, X=X, y=y)
    embedded = time.perf_counter() - started
    cells = [
        cell(X, y, labels=labels, audits=audits, seed=seed, target=args.target)
        for labels in args.labels
        for audits in args.audits
        if labels + audits < len(y)
        for seed in range(args.seeds)
    ]
    print(
        json.dumps(
            {
                "data": args.data,
                "encoder": args.encoder,
                "pool_size": len(y),
                "target": args.target,
                "summary": {
                    rule: summary(cells, rule, args.target)
                    for rule in ("certified", "counted", "platt")
                },
                "cells": cells,
                "seconds": {
                    "embed": round(embedded, 1),
                    "total": round(time.perf_counter() - started, 1),
                },
                "machine": platform.platform(),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
