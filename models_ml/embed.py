"""Batched embedding of images.

`embed_images` runs an `Encoder` over image paths, arrays or PIL images with data-loader workers
decoding in parallel, and returns the ids and a float16 matrix in input order. The vectors go to
an `EmbeddingStore` (models_ml/store.py, numpy only, so the web process can read it too).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from models_ml.device import data_loader_workers
from models_ml.encoders import Encoder
from models_ml.store import EmbeddingStore  # noqa: F401  (re-exported: the store's old home)

ImageSource = str | os.PathLike[str] | np.ndarray | Image.Image
ProgressCallback = Callable[[int, int], None]


@dataclass
class EmbeddingResult:
    """Vectors for the images that could be read, and the reason for each that could not."""

    ids: np.ndarray
    vectors: np.ndarray
    failed: dict[int, str] = field(default_factory=dict)


class _Images(Dataset):
    def __init__(self, sources: Sequence[ImageSource], preprocess: Callable):
        self.sources = sources
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, bool, str]:
        try:
            image = open_image(self.sources[index])
            return self.preprocess(image), True, ""
        except Exception as error:  # a broken file must not stop the other 99,999
            return torch.empty(0), False, f"{type(error).__name__}: {error}"


def open_image(source: ImageSource) -> Image.Image:
    """A PIL RGB image from a path, an HxW(x3) uint8 array or a PIL image."""
    if isinstance(source, Image.Image):
        return source.convert("RGB")
    if isinstance(source, np.ndarray):
        return Image.fromarray(source).convert("RGB")
    with Image.open(source) as image:
        return image.convert("RGB")


def _collate(batch: list[tuple[torch.Tensor, bool, str]]):
    ok = [b[1] for b in batch]
    tensors = [b[0] for b in batch if b[1]]
    stacked = torch.stack(tensors) if tensors else torch.empty(0)
    return stacked, ok, [b[2] for b in batch]


def embed_images(
    encoder: Encoder,
    sources: Sequence[ImageSource],
    ids: Sequence[int],
    *,
    batch_size: int = 64,
    num_workers: int | None = None,
    progress: ProgressCallback | None = None,
) -> EmbeddingResult:
    """Embed `sources` (in order) with `encoder`: ids and a float16 `(n, d)` matrix.

    Images that cannot be read are left out of the matrix and listed in `failed` with the reason.
    """
    if len(sources) != len(ids):
        raise ValueError(f"{len(sources)} images but {len(ids)} ids")
    ids_array = np.asarray(ids, dtype=np.int64)
    workers = data_loader_workers(encoder.device) if num_workers is None else num_workers
    loader = DataLoader(
        _Images(sources, encoder.preprocess),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=_collate,
        pin_memory=encoder.device.type == "cuda",
        persistent_workers=False,
    )
    vectors = np.empty((len(ids_array), encoder.embed_dim), dtype=np.float16)
    keep = np.zeros(len(ids_array), dtype=bool)
    failed: dict[int, str] = {}
    start = 0
    for batch, ok, errors in loader:
        rows = np.arange(start, start + len(ok))[np.asarray(ok, dtype=bool)]
        if len(rows):
            vectors[rows] = encoder.embed(batch).cpu().numpy().astype(np.float16)
            keep[rows] = True
        for offset, error in enumerate(errors):
            if error:
                failed[int(ids_array[start + offset])] = error
        start += len(ok)
        if progress is not None:
            progress(start, len(ids_array))
    return EmbeddingResult(ids_array[keep], vectors[keep], failed)
