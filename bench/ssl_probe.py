"""Benchmark: in-domain SSL pretraining on CIFAR-10 for a fixed time budget, then k-NN and
linear-probe accuracy on the CIFAR-10 test set with 100 and 1,000 labels, against the `pixels`
baseline in the same run.

SimCLR (models_ml.ssl) pretrains on the 50,000 train images (labels unused) for `--budget-s`
seconds. Both encoders then embed train and test through `load_encoder` + `embed_images`, the
path the worker uses. For each label budget, `--seeds` class-balanced draws of labeled train
images are made; the k-NN (k=20, cosine, similarity-weighted) and the linear head are fitted on
those and scored on all 10,000 test images. k-NN on all 50,000 train labels is the usual SSL
yardstick and is reported too.

    .venv/bin/python bench/ssl_probe.py [--budget-s 600] [--device cpu|cuda] [--out DIR]
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
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models_ml.device import best_device, configure_cpu_threads  # noqa: E402
from models_ml.embed import embed_images  # noqa: E402
from models_ml.encoders import load_encoder  # noqa: E402
from models_ml.heads import LinearHead  # noqa: E402
from models_ml.ssl import SSLConfig, pretrain  # noqa: E402
from models_ml.zero_shot import neighbour_suggestions  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cifar10-jpg.zip"


def load_split(archive: zipfile.ZipFile, split: str, limit: int | None):
    names = sorted(
        n for n in archive.namelist() if n.startswith(f"{split}/") and n.endswith(".jpg")
    )
    classes = sorted({n.split("/")[1] for n in names})
    if limit:
        rng = np.random.default_rng(0)
        names = [names[i] for i in np.sort(rng.choice(len(names), limit, replace=False))]
    images = np.stack(
        [np.asarray(Image.open(io.BytesIO(archive.read(n))).convert("RGB")) for n in names]
    )
    labels = np.array([classes.index(n.split("/")[1]) for n in names])
    return images, labels, classes


def balanced_draw(labels: np.ndarray, total: int, classes: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    per_class = total // classes
    return np.concatenate(
        [rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in range(classes)]
    )


def evaluate(train_x, train_y, test_x, test_y, budgets, seeds, classes) -> dict:
    out: dict = {}
    for budget in budgets:
        knn, linear = [], []
        for seed in range(seeds):
            rows = balanced_draw(train_y, budget, classes, seed)
            probs = neighbour_suggestions(test_x, train_x[rows], train_y[rows], classes, k=20)
            knn.append(float((probs.argmax(axis=1) == test_y).mean()))
            head = LinearHead(calibrate=False).fit(train_x[rows], train_y[rows])
            linear.append(float((head.predict(test_x) == test_y).mean()))
        out[f"{budget}_labels"] = {
            "knn_mean": round(float(np.mean(knn)), 4),
            "knn_std": round(float(np.std(knn)), 4),
            "linear_mean": round(float(np.mean(linear)), 4),
            "linear_std": round(float(np.std(linear)), 4),
        }
    probs = neighbour_suggestions(test_x, train_x, train_y, classes, k=20)
    out["knn_all_train_labels"] = round(float((probs.argmax(axis=1) == test_y).mean()), 4)
    return out


def embed_arrays(encoder_name: str, images: np.ndarray, device: torch.device) -> np.ndarray:
    encoder = load_encoder(encoder_name, device=device)
    result = embed_images(encoder, list(images), range(len(images)), batch_size=512)
    return result.vectors.astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--budget-s", type=float, default=600.0)
    parser.add_argument("--device", default=None)
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--stem-stride", type=int, default=None, help="default 1 on GPU, 2 on CPU")
    parser.add_argument("--batch-size", type=int, default=None, help="default 512 GPU, 256 CPU")
    parser.add_argument("--labels", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--train-limit", type=int, default=None, help="fewer images, for a smoke run"
    )
    parser.add_argument("--test-limit", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None, help="checkpoint folder (default: temp)")
    parser.add_argument(
        "--session-limit-s",
        type=float,
        default=None,
        help="stop pretraining after this many seconds of this process (checkpointed; run again "
        "with the same --out to resume): for machines that cap one command's run time",
    )
    args = parser.parse_args()

    device = best_device(args.device)
    threads = configure_cpu_threads()
    gpu = device.type == "cuda"
    started = time.perf_counter()
    with zipfile.ZipFile(args.data) as archive:
        train_images, train_y, classes = load_split(archive, "train", args.train_limit)
        test_images, test_y, _ = load_split(archive, "test", args.test_limit)
    load_s = time.perf_counter() - started

    config = SSLConfig(
        arch=args.arch,
        image_size=32,
        stem_stride=args.stem_stride or (1 if gpu else 2),
        batch_size=args.batch_size or (512 if gpu else 256),
        time_budget_s=args.budget_s,
        checkpoint_every=1000,
        log_every=50,
    )
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = args.out or Path(tmp) / "ssl"
        log = []
        session_start = time.monotonic()

        def progress(report) -> bool:
            log.append(report)
            limit = args.session_limit_s
            return limit is None or time.monotonic() - session_start < limit

        result = pretrain(
            train_images, out_dir, config, device=device, progress=progress, resume=bool(args.out)
        )
        if result.stopped_by == "callback":
            print(
                json.dumps(
                    {
                        "status": "paused",
                        "steps": result.steps,
                        "trained_s": round(result.elapsed_s, 1),
                        "out": str(out_dir),
                    }
                )
            )
            return
        report: dict = {}
        for name, encoder_name in (("pixels", "pixels"), ("simclr", str(result.encoder_path))):
            t = time.perf_counter()
            train_x = embed_arrays(encoder_name, train_images, device)
            test_x = embed_arrays(encoder_name, test_images, device)
            embed_s = time.perf_counter() - t
            t = time.perf_counter()
            scores = evaluate(
                train_x, train_y, test_x, test_y, args.labels, args.seeds, len(classes)
            )
            report[name] = {
                **scores,
                "embed_dim": int(train_x.shape[1]),
                "embed_s": round(embed_s, 1),
                "eval_s": round(time.perf_counter() - t, 1),
            }

    images_seen = result.steps * config.batch_size
    rates = [p.images_per_s for p in log[1:]] or [0.0]
    print(
        json.dumps(
            {
                "benchmark": "ssl_probe",
                "device": device.type,
                "device_name": torch.cuda.get_device_name(device)
                if gpu
                else platform.processor() or platform.machine(),
                "cpu_threads": threads,
                "torch": torch.__version__,
                "train_images": len(train_images),
                "test_images": len(test_images),
                "load_s": round(load_s, 1),
                "ssl": {
                    "method": "simclr",
                    "arch": config.arch,
                    "stem_stride": config.stem_stride,
                    "batch_size": config.batch_size,
                    "temperature": config.temperature,
                    "lr": config.base_lr(),
                    "budget_s": args.budget_s,
                    "trained_s": round(result.elapsed_s, 1),
                    "steps": result.steps,
                    "epochs": round(images_seen / len(train_images), 2),
                    "pairs_per_s": round(float(np.median(rates)), 1),
                    "loss_first": round(result.losses[0][1], 3) if result.losses else None,
                    "loss_last": round(result.losses[-1][1], 3) if result.losses else None,
                },
                "accuracy": report,
                "label_draws_per_budget": args.seeds,
                "knn_k": 20,
                "total_s": round(time.perf_counter() - started, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
