"""Suggestions before a classifier exists.

* CLIP zero-shot through open_clip: every class name is put into an ensemble of prompt
  templates, the text embeddings are averaged per class (Radford et al. 2021, §3.1.4), and an
  image's class probabilities are softmax(logit_scale · cosine).
* Without CLIP weights: `neighbour_suggestions`, a similarity-weighted k-NN vote over the SSL
  embeddings of the items labeled so far, so the annotator still gets a prefill after a few labels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from models_ml.device import autocast, best_device
from models_ml.encoders import (
    RANDOM_WEIGHTS,
    WEIGHTS_DIR_ENV,
    Encoder,
    WeightsUnavailable,
    downloads_allowed,
    file_digest,
    hub_cached_file,
    hub_unreachable_reason,
    safe_key,
    weights_file,
)

# A compact subset of CLIP's 80 ImageNet templates; the ensemble matters more than its size.
PROMPT_SETS: dict[str, tuple[str, ...]] = {
    "ensemble-v1": (
        "a photo of a {}.",
        "a blurry photo of a {}.",
        "a black and white photo of a {}.",
        "a low resolution photo of a {}.",
        "a cropped photo of a {}.",
        "a close-up photo of a {}.",
        "a bright photo of a {}.",
        "a dark photo of a {}.",
        "a photo of the large {}.",
        "a photo of the small {}.",
        "a good photo of a {}.",
        "a bad photo of a {}.",
        "a jpeg corrupted photo of a {}.",
        "a pixelated photo of a {}.",
        "itap of a {}.",
        "art of the {}.",
        "a drawing of a {}.",
        "a rendering of a {}.",
    ),
    "single": ("a photo of a {}.",),
}
DEFAULT_PROMPT_SET = "ensemble-v1"
_CLIP_HUB_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


class _ImageTower(nn.Module):
    def __init__(self, clip: nn.Module):
        super().__init__()
        self.clip: Any = clip  # open_clip's model: encode_image is not in nn.Module's type

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.clip.encode_image(x, normalize=True)


@dataclass
class ClipModel:
    name: str
    pretrained: str
    key: str
    model: Any  # open_clip's CLIP (encode_text, logit_scale)
    tokenizer: Any
    image_encoder: Encoder
    device: torch.device

    @torch.inference_mode()
    def class_embeddings(
        self, class_names: list[str], prompt_set: str = DEFAULT_PROMPT_SET
    ) -> np.ndarray:
        """One normalised text embedding per class: the mean over the prompt templates."""
        templates = PROMPT_SETS[prompt_set]
        rows = []
        for name in class_names:
            readable = name.replace("_", " ")
            tokens = self.tokenizer([t.format(readable) for t in templates]).to(self.device)
            with autocast(self.device):
                text = self.model.encode_text(tokens, normalize=True).float()
            mean = text.mean(dim=0)
            rows.append(mean / mean.norm().clamp_min(1e-12))
        return torch.stack(rows).cpu().numpy()

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.detach().exp().clamp(max=100.0))


def load_clip(
    model_name: str = "ViT-B-32",
    pretrained: str | os.PathLike[str] = "laion2b_s34b_b79k",
    device: str | torch.device | None = None,
    *,
    allow_download: bool | None = None,
) -> ClipModel:
    """An open_clip model with its preprocessing and tokenizer.

    `pretrained` is an open_clip tag (downloaded once into the Hugging Face cache), a local
    weights file or folder, or `RANDOM_WEIGHTS`. Before downloading a tag, the local weights
    folder is searched for `<model>-<tag>` (file or folder). Missing weights raise
    `WeightsUnavailable` with the places tried.
    """
    import open_clip

    torch_device = best_device(device)
    pretrained = str(pretrained)
    tried: list[str] = []
    source, key = pretrained, f"clip-{model_name}@{pretrained}"
    weights_arg: str | None = pretrained
    if pretrained == RANDOM_WEIGHTS:
        weights_arg = None
    else:
        local = _local_clip_weights(model_name, pretrained, tried)
        if local is not None:
            weights_arg, source = str(local), str(local)
            key = f"clip-{model_name}@{file_digest(local)[:12]}"
        elif Path(pretrained).exists() or os.sep in pretrained:
            raise _unavailable(model_name, pretrained, tried)
        else:
            hub = f"open_clip tag {pretrained!r} from the Hugging Face hub"
            repo_id = (open_clip.get_pretrained_cfg(model_name, pretrained) or {}).get("hf_hub")
            cached = hub_cached_file(repo_id, _CLIP_HUB_FILES) if repo_id else None
            if cached is not None:
                weights_arg, source = str(cached), str(cached)
            elif not downloads_allowed(allow_download):
                tried.append(f"{hub}: not tried, downloads are off")
                raise _unavailable(model_name, pretrained, tried)
            elif unreachable := hub_unreachable_reason():
                tried.append(f"{hub}: not in the cache, and {unreachable}")
                raise _unavailable(model_name, pretrained, tried)
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            model_name,
            pretrained=weights_arg,
            device=torch_device,
            require_pretrained=weights_arg is not None,
        )
    except WeightsUnavailable:
        raise
    except Exception as error:  # hub and network errors come in many types
        if weights_arg is None or Path(str(weights_arg)).exists():
            raise
        tried.append(f"open_clip tag {pretrained!r}: {type(error).__name__}: {str(error)[:200]}")
        raise _unavailable(model_name, pretrained, tried) from error
    model.eval()
    tokenizer = open_clip.get_tokenizer(model_name)
    size = model.visual.image_size
    size = (size, size) if isinstance(size, int) else tuple(size)
    image_encoder = Encoder(
        name=f"clip:{model_name}",
        key=safe_key(key),
        model=_ImageTower(model),
        preprocess=preprocess,
        embed_dim=int(model.text_projection.shape[1])
        if isinstance(getattr(model, "text_projection", None), torch.Tensor)
        else int(model.encode_text(tokenizer(["x"]).to(torch_device)).shape[1]),
        input_size=(3, *size),
        device=torch_device,
        weights_source=source,
    )
    return ClipModel(
        model_name, pretrained, safe_key(key), model, tokenizer, image_encoder, torch_device
    )


def _local_clip_weights(model_name: str, pretrained: str, tried: list[str]) -> Path | None:
    candidates = []
    if Path(pretrained).exists() or os.sep in pretrained:
        candidates.append(Path(pretrained))
    else:
        base = os.environ.get(WEIGHTS_DIR_ENV)
        if base:
            stem = f"{model_name}-{pretrained}"
            candidates += [Path(base) / stem] + [
                Path(base) / f"{stem}{suffix}" for suffix in (".safetensors", ".bin", ".pt")
            ]
        else:
            tried.append(f"local weights folder: not set (set {WEIGHTS_DIR_ENV})")
    for candidate in candidates:
        file = weights_file(candidate)
        if file is not None:
            return file
        tried.append(f"{candidate}: not found")
    return None


def _unavailable(model_name: str, tag: str, tried: list[str]) -> WeightsUnavailable:
    return WeightsUnavailable(f"{model_name} ({tag})", tried, _clip_hint(model_name, tag))


def _clip_hint(model_name: str, tag: str) -> str:
    return (
        "To provide them: on a machine with internet access run\n"
        f"  python -c \"import open_clip; open_clip.create_model_and_transforms('{model_name}', "
        f"pretrained='{tag}')\"\n"
        "and copy open_clip_model.safetensors from the Hugging Face cache to "
        f"${WEIGHTS_DIR_ENV}/{model_name}-{tag}.safetensors here. Until then suggestions come "
        "from the nearest labeled neighbours once a few items are labeled."
    )


def zero_shot_probabilities(
    image_embeddings: np.ndarray, class_embeddings: np.ndarray, logit_scale: float = 100.0
) -> np.ndarray:
    """softmax(logit_scale · cosine(image, class)) → `(n_images, n_classes)`."""
    images = _normalise(image_embeddings)
    classes = _normalise(class_embeddings)
    logits = logit_scale * (images @ classes.T)
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def neighbour_suggestions(
    embeddings: np.ndarray,
    labeled_embeddings: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    k: int = 10,
    temperature: float = 0.07,
) -> np.ndarray:
    """Class probabilities from a similarity-weighted vote of the `k` nearest labeled items
    (weights exp(cosine / temperature), as in DINO's k-NN evaluation). `labels` are column
    indices in `[0, n_classes)`. Needs at least one labeled item."""
    if len(labeled_embeddings) == 0:
        raise ValueError("neighbour suggestions need at least one labeled item")
    labels = np.asarray(labels, dtype=np.int64)
    if labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError("labels must be class indices in [0, n_classes)")
    queries, keys = _normalise(embeddings), _normalise(labeled_embeddings)
    k = min(k, len(keys))
    probs = np.zeros((len(queries), n_classes))
    for start in range(0, len(queries), 8192):
        sims = queries[start : start + 8192] @ keys.T
        nearest = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        weights = np.exp(np.take_along_axis(sims, nearest, axis=1) / temperature)
        block = probs[start : start + 8192]
        np.add.at(block, (np.arange(len(block))[:, None], labels[nearest]), weights)
    return probs / probs.sum(axis=1, keepdims=True)


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
