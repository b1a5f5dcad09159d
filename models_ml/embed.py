"""Batched embedding of images.

`embed_images` runs an `Encoder` over image paths, arrays or PIL images with data-loader workers
decoding in parallel, and returns the ids and a float16 matrix in input order. The vectors go to
an `EmbeddingStore` (models_ml/store.py, numpy only, so the web process can read it too).

Two ways to decode (`decode=`):

- `"pil"`: the loader workers open, decode, resize and crop each image on the CPU. On a CPU this
  is the whole job; beside a GPU the workers set the pace (docs/benchmarks/embed_h100.json:
  ResNet-18 at 14 % of the model-alone rate with 8 workers).
- `"tensor"`: the workers only read a JPEG file's bytes; the batch is decoded on the encoder's
  device (nvJPEG on CUDA, through torchvision's batched `decode_jpeg`) and resized and cropped
  there by `Encoder.resize`, the same torchvision steps as `preprocess`. Anything else (PNG,
  arrays, PIL images, a JPEG the device decoder refuses) goes the `"pil"` way in the same batch.

`"auto"` (the default) is `"tensor"` on CUDA for encoders with a tensor resize, else `"pil"`;
`ANNOTATOR_DECODE=pil|tensor` overrides it.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from models_ml.device import data_loader_workers
from models_ml.encoders import Encoder
from models_ml.store import EmbeddingStore  # noqa: F401  (re-exported: the store's old home)

ImageSource = str | os.PathLike[str] | np.ndarray | Image.Image
ProgressCallback = Callable[[int, int], None]
Decode = Literal["auto", "pil", "tensor"]
JPEG_MAGIC = b"\xff\xd8\xff"


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


class _Encoded(Dataset):
    """Per image: ("jpeg", its bytes as a uint8 tensor) for a JPEG file, else what `_Images`
    gives ("pixels", tensor) or ("error", reason)."""

    def __init__(self, sources: Sequence[ImageSource], preprocess: Callable):
        self.sources = sources
        self.images = _Images(sources, preprocess)

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index: int) -> tuple[str, torch.Tensor | str]:
        source = self.sources[index]
        if isinstance(source, (str, os.PathLike)):
            try:
                with open(source, "rb") as f:
                    data = f.read()
            except OSError as error:
                return "error", f"{type(error).__name__}: {error}"
            if data.startswith(JPEG_MAGIC):
                return "jpeg", torch.frombuffer(bytearray(data), dtype=torch.uint8)
        tensor, ok, reason = self.images[index]
        return ("pixels", tensor) if ok else ("error", reason)


def _keep_list(batch: list) -> list:
    return batch


def decoding_for(encoder: Encoder, decode: Decode = "auto") -> Literal["pil", "tensor"]:
    """Where `embed_images` decodes for `encoder` (see the module docstring)."""
    choice = os.environ.get("ANNOTATOR_DECODE") or decode
    if choice not in ("auto", "pil", "tensor"):
        raise ValueError(f"decode must be auto, pil or tensor, not {choice!r}")
    if encoder.resize is None or choice == "pil":
        return "pil"
    if choice == "auto" and encoder.device.type != "cuda":
        return "pil"
    return "tensor"


def _decode_jpegs(data: list[torch.Tensor], device: torch.device) -> list[torch.Tensor | str]:
    """Each JPEG as an RGB uint8 (3, H, W) tensor on `device`, or the reason it could not be
    decoded. One batched call; torchvision returns nothing when any image fails, so then each is
    tried alone, and on the CPU through PIL (CMYK and other JPEGs nvJPEG refuses)."""
    from torchvision.io import ImageReadMode, decode_jpeg

    if not data:
        return []
    with warnings.catch_warnings():  # torchvision 0.29 points to TorchCodec; the API stays
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return list(decode_jpeg(data, mode=ImageReadMode.RGB, device=device))
        except torch.OutOfMemoryError:
            raise  # the embedding job halves its batch and tries again
        except RuntimeError:
            pass
        results: list[torch.Tensor | str] = []
        for raw in data:
            try:
                results.append(decode_jpeg(raw, mode=ImageReadMode.RGB, device=device))
                continue
            except torch.OutOfMemoryError:
                raise
            except RuntimeError:
                pass
            try:
                image = open_image(io.BytesIO(raw.numpy().tobytes()))
            except Exception as failure:
                results.append(f"{type(failure).__name__}: {failure}")
                continue
            pixels = torch.from_numpy(np.asarray(image)).permute(2, 0, 1).contiguous()
            results.append(pixels.to(device))
    return results


def _tensor_batch(
    encoder: Encoder, batch: list[tuple[str, torch.Tensor | str]]
) -> tuple[torch.Tensor, list[bool], list[str]]:
    """A uint8 model-input batch on the encoder's device from `_Encoded` items: JPEGs decoded
    and resized there (images of one size in one call), the rest preprocessed by the workers."""
    assert encoder.resize is not None
    device = encoder.device
    errors = [value if isinstance(value, str) else "" for _, value in batch]
    jpegs = [i for i, (kind, _) in enumerate(batch) if kind == "jpeg"]
    raw = [value for kind, value in batch if kind == "jpeg" and isinstance(value, torch.Tensor)]
    decoded: dict[int, torch.Tensor] = {}
    for index, value in zip(jpegs, _decode_jpegs(raw, device), strict=True):
        if isinstance(value, str):
            errors[index] = value
        else:
            decoded[index] = value
    ok = [not error for error in errors]
    position = {index: row for row, index in enumerate(i for i in range(len(batch)) if ok[i])}
    out = torch.empty((len(position), *encoder.input_size), dtype=torch.uint8, device=device)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for index, image in decoded.items():
        by_shape.setdefault(tuple(image.shape), []).append(index)
    for indices in by_shape.values():
        stacked = torch.stack([decoded[i] for i in indices])
        out[[position[i] for i in indices]] = encoder.resize(stacked)
    for index, (kind, value) in enumerate(batch):
        if kind == "pixels" and isinstance(value, torch.Tensor):
            out[position[index]] = value.to(device)
    return out, ok, errors


def open_image(source: ImageSource | io.BytesIO) -> Image.Image:
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
    decode: Decode = "auto",
) -> EmbeddingResult:
    """Embed `sources` (in order) with `encoder`: ids and a float16 `(n, d)` matrix.

    Images that cannot be read are left out of the matrix and listed in `failed` with the reason.
    `decode` says where JPEGs are decoded (module docstring).
    """
    if len(sources) != len(ids):
        raise ValueError(f"{len(sources)} images but {len(ids)} ids")
    ids_array = np.asarray(ids, dtype=np.int64)
    workers = data_loader_workers(encoder.device) if num_workers is None else num_workers
    on_device = decoding_for(encoder, decode) == "tensor"
    dataset = _Encoded if on_device else _Images
    loader = DataLoader(
        dataset(sources, encoder.preprocess),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=_keep_list if on_device else _collate,
        pin_memory=encoder.device.type == "cuda" and not on_device,
        persistent_workers=False,
    )
    vectors = np.empty((len(ids_array), encoder.embed_dim), dtype=np.float16)
    keep = np.zeros(len(ids_array), dtype=bool)
    failed: dict[int, str] = {}
    start = 0
    for loaded in loader:
        batch, ok, errors = _tensor_batch(encoder, loaded) if on_device else loaded
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
