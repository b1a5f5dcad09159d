"""Image encoders: one factory, `load_encoder`, for timm models, our own SSL checkpoints and the
`pixels` baseline.

Weights are looked for, in order: the `weights` argument (a file or a folder), the local weights
folder (`ANNOTATOR_WEIGHTS_DIR`, one file or folder per model name), then the Hugging Face hub
(downloaded once into its cache; skipped when offline). When none has them,
`WeightsUnavailable` says which model, every place tried and how to provide the weights.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


@dataclass(frozen=True)
class KnownEncoder:
    family: str
    embed_dim: int
    input_size: int
    note: str


KNOWN_ENCODERS: dict[str, KnownEncoder] = {
    "vit_small_patch14_dinov2.lvd142m": KnownEncoder(
        "DINOv2", 384, 518, "default; strong k-NN features, 22M params"
    ),
    "vit_base_patch14_dinov2.lvd142m": KnownEncoder("DINOv2", 768, 518, "86M params"),
    "vit_small_patch14_reg4_dinov2.lvd142m": KnownEncoder(
        "DINOv2", 384, 518, "with registers: cleaner attention maps"
    ),
    "vit_small_patch16_224.dino": KnownEncoder("DINO", 384, 224, "ViT-S/16, ImageNet-1k SSL"),
    "vit_base_patch16_224.dino": KnownEncoder("DINO", 768, 224, "ViT-B/16, ImageNet-1k SSL"),
    "resmlp_12_224.fb_dino": KnownEncoder(
        "DINO", 384, 224, "ResMLP-12 (timm has no DINO ResNet-50)"
    ),
    "vit_base_patch16_224.mae": KnownEncoder(
        "MAE", 768, 224, "needs a trained head more than k-NN does (MAE features are less linear)"
    ),
    "vit_small_patch16_dinov3.lvd1689m": KnownEncoder("DINOv3", 384, 224, "ViT-S/16"),
    "resnet50.fb_ssl_yfcc100m_ft_in1k": KnownEncoder(
        "semi-supervised", 2048, 224, "ResNet-50, SSL on YFCC100M then ImageNet fine-tune"
    ),
    "pixels": KnownEncoder("baseline", 3 * 32 * 32, 32, "resized raw pixels, no learning"),
}


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
    for candidate in candidates:
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
    if weights is not None:
        raise WeightsUnavailable(name, tried, _HINT.format(name=name, env=WEIGHTS_DIR_ENV))

    if allow_download is None:
        allow_download = not any(
            os.environ.get(env) in ("1", "true", "yes") for env in OFFLINE_ENVS
        )
    hub = f"Hugging Face hub (timm/{name}, cache {_hf_cache()})"
    if not allow_download:
        tried.append(f"{hub}: not tried, downloads are off ({' or '.join(OFFLINE_ENVS)} set)")
        raise WeightsUnavailable(name, tried, _HINT.format(name=name, env=WEIGHTS_DIR_ENV))
    try:
        model = timm.create_model(name, pretrained=True, num_classes=0, **model_kwargs)
    except Exception as error:  # network, hub and cache errors come in many types
        tried.append(f"{hub}: {type(error).__name__}: {str(error).splitlines()[0][:200]}")
        raise WeightsUnavailable(
            name, tried, _HINT.format(name=name, env=WEIGHTS_DIR_ENV)
        ) from error
    return model, "hub", name


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
    )


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
) -> nn.Module:
    """A randomly initialised timm backbone (no classifier) suited to `image_size`.

    For ResNets on small images (≤ 64 px) the ImageNet stem (7×7 stride-2 conv + max-pool, a 4×
    downsampling) is swapped for a 3×3 stride-1 conv as in the CIFAR ResNets of SimCLR and
    He et al.; otherwise a 32 px image is a 1×1 feature map by the last stage. `stem_stride=2`
    makes that stem 4× cheaper (for CPU budgets) at some cost in accuracy.
    """
    import timm

    model = timm.create_model(arch, pretrained=False, num_classes=0, **(model_kwargs or {}))
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
