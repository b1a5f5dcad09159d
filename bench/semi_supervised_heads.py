"""Benchmark: do semi-supervised heads reach the human-effort model goal with fewer labels?

Issue #21's route to a cheaper model is annotation as semi-supervised learning on pretrained
features (Liao et al., CVPR 2021). The human-effort benchmark's model goal (a) is 90 % of the
full-label accuracy; one-by-one random labeling reaches it at ~120 Fashion-MNIST labels, so
≤ ⅓ of its seconds means about 40. This measures, on one pool embedded once, the test
accuracy of each head at a few label budgets (random labels, several draws):

- `app`: the head the app serves (`models_ml.retraining.head_for`: prototypes below 5
  labels a class, then the calibrated linear head);
- `self_training_T`: the app's self-training (`SelfTrainingHead`, the project's
  *self-training threshold* T): refitted with the open images it predicts at least T sure;
- `spreading_S`: scikit-learn's `LabelSpreading` on the k-NN graph of the normalised
  features (k = 10, α = 0.2); its most confident share S of the open images, with the
  labels, train the linear head.

Prints one JSON: the full-label accuracy (the linear head on every pool label), the goal
(90 % of it), and per head and budget the mean and spread of the test accuracy.

    .venv/bin/python bench/semi_supervised_heads.py --data fashion-mnist
    .venv/bin/python bench/semi_supervised_heads.py --data ../shared/data/cifar10-jpg.zip
"""

import argparse
import json
import platform
import sys
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.label_efficiency import fashion_mnist_idx  # noqa: E402

SELF_TRAINING = (0.8, 0.9, 0.95)
SPREADING = (0.3, 0.6, 1.0)


def fashion_arrays(split: str, limit: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`limit` random images (as RGB arrays) and labels of Fashion-MNIST's `split`."""
    prefix = "train" if split == "train" else "t10k"
    images = fashion_mnist_idx(f"{prefix}-images-idx3-ubyte.gz")
    labels = fashion_mnist_idx(f"{prefix}-labels-idx1-ubyte.gz")
    chosen = np.random.default_rng(seed).choice(len(images), limit, replace=False)
    return np.repeat(images[chosen][..., None], 3, axis=-1), labels[chosen].astype(np.int64)


def dataset_arrays(data: str, pool: int, test: int, seed: int):
    if data == "fashion-mnist":
        return (*fashion_arrays("train", pool, seed), *fashion_arrays("test", test, seed + 1))
    from bench.ssl_probe import load_split

    with zipfile.ZipFile(data) as archive:
        train_x, train_y, _ = load_split(archive, "train", pool)
        test_x, test_y, _ = load_split(archive, "test", test)
    return train_x, train_y, test_x, test_y


def spreading_head(X: np.ndarray, y: np.ndarray, X_open: np.ndarray, share: float, seed: int):
    """The linear head fitted on the labels and the `share` of the open images
    `LabelSpreading` is surest of, with its labels."""
    from sklearn.semi_supervised import LabelSpreading

    from models_ml.heads import LinearHead, l2_normalise

    features = l2_normalise(np.concatenate([X, X_open]))
    targets = np.concatenate([y, np.full(len(X_open), -1)])
    spread = LabelSpreading(kernel="knn", n_neighbors=10, alpha=0.2, max_iter=100)
    spread.fit(features, targets)
    dist = spread.label_distributions_[len(X) :]
    keep = np.argsort(-dist.max(axis=1), kind="stable")[: int(share * len(X_open))]
    labels = np.concatenate([y, spread.classes_[dist[keep].argmax(axis=1)]])
    head = LinearHead(class_weight="balanced", random_state=seed)
    return head.fit(np.concatenate([X, X_open[keep]]), labels)


def head_accuracies(
    X_pool: np.ndarray,
    y_pool: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    *,
    budgets: list[int],
    draws: int,
    seed: int = 0,
) -> dict:
    """Per head and label budget, the test accuracies over `draws` random label draws
    (each draw's labels are the first `budget` of one permutation of the pool)."""
    from models_ml.heads import LinearHead
    from models_ml.retraining import head_fit

    def accuracy(head) -> float:
        return float(np.mean(head.predict(X_test) == y_test))

    full = accuracy(LinearHead(class_weight="balanced", random_state=seed).fit(X_pool, y_pool))
    results: dict = {}
    for budget in budgets:
        runs: dict[str, list[float]] = {}
        for draw in range(draws):
            order = np.random.default_rng(seed + draw).permutation(len(y_pool))
            labeled, open_ = order[:budget], order[budget:]
            X, y, X_open = X_pool[labeled], y_pool[labeled], X_pool[open_]
            fitted = head_fit(strategy="random", X=X, y=y, seed=seed, evidence=False)
            runs.setdefault("app", []).append(accuracy(fitted.head))
            for threshold in SELF_TRAINING:
                fitted = head_fit(
                    strategy="random",
                    X=X,
                    y=y,
                    seed=seed,
                    self_training=threshold,
                    X_unlabeled=X_open,
                    evidence=False,
                )
                runs.setdefault(f"self_training_{threshold}", []).append(accuracy(fitted.head))
            for share in SPREADING:
                head = spreading_head(X, y, X_open, share, seed)
                runs.setdefault(f"spreading_{share}", []).append(accuracy(head))
        results[str(budget)] = {
            name: {"mean": round(float(np.mean(v)), 4), "std": round(float(np.std(v)), 4)}
            for name, v in runs.items()
        }
    return {
        "full_label_accuracy": round(full, 4),
        "goal": round(0.9 * full, 4),
        "by_budget": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", default="fashion-mnist", help="fashion-mnist or a CIFAR-style zip"
    )
    parser.add_argument("--encoder", default="tf_efficientnet_lite0.in1k")
    parser.add_argument("--pool-size", type=int, default=1000)
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--budgets", type=int, nargs="+", default=[20, 40, 60, 80, 120])
    parser.add_argument("--draws", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    from models_ml.embed import embed_images
    from models_ml.encoders import load_encoder

    warnings.filterwarnings("ignore", category=UserWarning)  # LabelSpreading's convergence
    started = time.perf_counter()
    pool_x, pool_y, test_x, test_y = dataset_arrays(
        args.data, args.pool_size, args.test_size, args.seed
    )
    encoder = load_encoder(args.encoder, device=torch.device("cpu"))

    def embed(images: np.ndarray) -> np.ndarray:
        result = embed_images(encoder, list(images), range(len(images)), batch_size=128)
        return result.vectors.astype(np.float32)

    X_pool, X_test = embed(pool_x), embed(test_x)
    embed_s = time.perf_counter() - started
    report = head_accuracies(
        X_pool, pool_y, X_test, test_y, budgets=args.budgets, draws=args.draws, seed=args.seed
    )
    print(
        json.dumps(
            {
                "dataset": args.data if args.data == "fashion-mnist" else Path(args.data).stem,
                "encoder": args.encoder,
                **report,
                "settings": vars(args),
                "machine": f"{platform.machine()}, Python {platform.python_version()}",
                "embed_seconds": round(embed_s, 1),
                "seconds": round(time.perf_counter() - started, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
