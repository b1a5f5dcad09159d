"""In-domain self-supervised pretraining: SimCLR (Chen et al. 2020) on the project's own images.

This is the path that works with no downloaded weights. The images are held as one uint8 tensor
(resized once), and the two augmented views of every batch are made **on the training device**
(random resized crop + flip through one `affine_grid`, colour jitter, grayscale), so a GPU is not
starved by PIL decoding. Mixed precision on GPU; checkpoints every `checkpoint_every` steps and
at the end; `resume=True` continues from the last one; a time budget ends the run cleanly.

`pretrain` writes `encoder.pt`, which `models_ml.encoders.load_encoder` loads like any other
encoder, and `state.pt`, the full training state for resuming. Both load with `weights_only=True`.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models_ml.device import autocast, autocast_dtype, best_device
from models_ml.encoders import SSL_CHECKPOINT_FORMAT, build_backbone, read_checkpoint

ENCODER_FILE = "encoder.pt"  # what `pretrain` writes: the encoder, loadable by load_encoder


@dataclass
class SSLConfig:
    """SimCLR hyper-parameters. Defaults follow the CIFAR-10 recipes of SimCLR and lightly's
    benchmarks (ResNet-18 with a CIFAR stem, batch 512, SGD, temperature 0.5)."""

    arch: str = "resnet18"
    image_size: int = 32
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    stem_stride: int = 1
    batch_size: int = 512
    lr: float | None = None  # None: 0.06 × batch / 256
    momentum: float = 0.9
    weight_decay: float = 5e-4
    temperature: float = 0.5
    projection_dim: int = 128
    warmup_fraction: float = 0.02
    max_steps: int | None = None
    time_budget_s: float | None = None
    checkpoint_every: int = 500
    log_every: int = 20
    min_crop_scale: float = 0.08
    seed: int = 0

    def base_lr(self) -> float:
        return self.lr if self.lr is not None else 0.06 * self.batch_size / 256


@dataclass(frozen=True)
class SSLProgress:
    step: int
    loss: float
    lr: float
    elapsed_s: float
    images_per_s: float
    fraction_done: float


@dataclass
class SSLResult:
    encoder_path: Path
    state_path: Path
    steps: int
    elapsed_s: float
    stopped_by: str  # "steps", "time_budget" or "callback"
    losses: list[tuple[int, float]]


ProgressCallback = Callable[[SSLProgress], bool | None]


# --- data -----------------------------------------------------------------------------------


def images_to_array(sources: Sequence[Any], size: int) -> np.ndarray:
    """Decode images (paths, arrays or PIL) into one `(n, size, size, 3)` uint8 array:
    centre-cropped to a square, then resized. Unreadable images are skipped."""
    from PIL import Image

    from models_ml.embed import open_image

    out = np.empty((len(sources), size, size, 3), dtype=np.uint8)
    kept = 0
    for source in sources:
        try:
            image = open_image(source)
        except Exception:
            continue
        w, h = image.size
        side = min(w, h)
        box = ((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)
        image = image.resize((size, size), Image.Resampling.BICUBIC, box=box)
        out[kept] = np.asarray(image)
        kept += 1
    return out[:kept]


def channel_stats(images: np.ndarray, sample: int = 10_000, seed: int = 0) -> tuple[list, list]:
    """Per-channel mean and std in [0, 1] over (a sample of) the images."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(images), min(sample, len(images)), replace=False)
    pixels = images[rows].reshape(-1, 3).astype(np.float64) / 255.0
    return pixels.mean(axis=0).tolist(), np.maximum(pixels.std(axis=0), 1e-3).tolist()


class GPUAugment:
    """SimCLR's view augmentations on a uint8 batch `(b, 3, h, w)` already on the device."""

    def __init__(
        self,
        size: int,
        mean: Sequence[float],
        std: Sequence[float],
        min_scale: float = 0.08,
        jitter: float = 0.4,
        hue: float = 0.1,
        jitter_p: float = 0.8,
        gray_p: float = 0.2,
    ):
        self.size = size
        self.min_scale = min_scale
        self.jitter = jitter
        self.hue = hue
        self.jitter_p = jitter_p
        self.gray_p = gray_p
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        b, device = images.shape[0], images.device

        def uniform(low: float, high: float, n: int = b) -> torch.Tensor:
            return torch.rand(n, generator=generator, device=device) * (high - low) + low

        x = images.float() / 255.0
        # random resized crop + horizontal flip as one affine sampling grid
        area = uniform(self.min_scale, 1.0)
        log_ratio = uniform(math.log(3 / 4), math.log(4 / 3))
        ratio = torch.exp(log_ratio)
        w = torch.sqrt(area * ratio).clamp(max=1.0)
        h = torch.sqrt(area / ratio).clamp(max=1.0)
        cx = uniform(-1.0, 1.0) * (1 - w)
        cy = uniform(-1.0, 1.0) * (1 - h)
        flip = torch.where(uniform(0, 1) < 0.5, -1.0, 1.0)
        theta = torch.zeros(b, 2, 3, device=device)
        theta[:, 0, 0] = w * flip
        theta[:, 0, 2] = cx
        theta[:, 1, 1] = h
        theta[:, 1, 2] = cy
        grid = F.affine_grid(theta, [b, 3, self.size, self.size], align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        # colour jitter (brightness, contrast, saturation, hue) with probability jitter_p
        apply = (uniform(0, 1) < self.jitter_p).view(b, 1, 1, 1)
        j = self.jitter
        jittered = x * uniform(1 - j, 1 + j).view(b, 1, 1, 1)
        gray = _luma(jittered)
        mean_gray = gray.mean(dim=(1, 2, 3), keepdim=True)
        jittered = (jittered - mean_gray) * uniform(1 - j, 1 + j).view(b, 1, 1, 1) + mean_gray
        gray = _luma(jittered)
        jittered = (jittered - gray) * uniform(1 - j, 1 + j).view(b, 1, 1, 1) + gray
        jittered = _rotate_hue(jittered.clamp(0, 1), uniform(-self.hue, self.hue) * 2 * math.pi)
        x = torch.where(apply, jittered.clamp(0, 1), x)
        to_gray = (uniform(0, 1) < self.gray_p).view(b, 1, 1, 1)
        x = torch.where(to_gray, _luma(x).expand_as(x), x)
        return (x - self.mean.to(device)) / self.std.to(device)


def _luma(x: torch.Tensor) -> torch.Tensor:
    return 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]


_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)


def _rotate_hue(x: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Hue shift as a rotation of the chroma plane in YIQ space (per-sample angle, radians)."""
    b = x.shape[0]
    cos, sin = torch.cos(angle), torch.sin(angle)
    rotation = torch.zeros(b, 3, 3, device=x.device)
    rotation[:, 0, 0] = 1
    rotation[:, 1, 1], rotation[:, 1, 2] = cos, -sin
    rotation[:, 2, 1], rotation[:, 2, 2] = sin, cos
    transform = _YIQ_TO_RGB.to(x.device) @ rotation @ _RGB_TO_YIQ.to(x.device)
    return torch.einsum("bij,bjhw->bihw", transform, x)


# --- model and loss -------------------------------------------------------------------------


class SimCLRModel(nn.Module):
    def __init__(self, backbone: nn.Module, feature_dim: int, projection_dim: int):
        super().__init__()
        self.backbone = backbone
        self.projector = nn.Sequential(
            nn.Linear(feature_dim, feature_dim),
            nn.BatchNorm1d(feature_dim),
            nn.ReLU(inplace=True),
            nn.Linear(feature_dim, projection_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(self.backbone(x))


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's normalised-temperature cross entropy over the 2b views of a batch."""
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    b = z1.shape[0]
    logits = z @ z.T / temperature
    logits.fill_diagonal_(float("-inf"))
    targets = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
    return F.cross_entropy(logits, targets)


# --- training -------------------------------------------------------------------------------


def pretrain(
    images: np.ndarray,
    out_dir: str | os.PathLike[str],
    config: SSLConfig | None = None,
    *,
    device: str | torch.device | None = None,
    progress: ProgressCallback | None = None,
    resume: bool = True,
) -> SSLResult:
    """SimCLR-pretrain `config.arch` on `images` (`(n, s, s, 3)` uint8, see `images_to_array`).

    Stops after `max_steps` or `time_budget_s` (whichever comes first; the learning-rate schedule
    follows whichever is further along), or when `progress` returns False. Returns where the
    encoder checkpoint is.
    """
    config = config or SSLConfig()
    if config.max_steps is None and config.time_budget_s is None:
        raise ValueError("give max_steps or time_budget_s, or the run never ends")
    if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be (n, h, w, 3) uint8, got {images.shape} {images.dtype}")
    if len(images) < 2:
        raise ValueError("SimCLR needs at least two images")
    torch_device = best_device(device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state_path, encoder_path = out / "state.pt", out / ENCODER_FILE

    torch.manual_seed(config.seed)
    mean, std = channel_stats(images, seed=config.seed)
    backbone = build_backbone(
        config.arch, config.image_size, config.model_kwargs, config.stem_stride
    )
    feature_dim = int(backbone.num_features)
    model = SimCLRModel(backbone, feature_dim, config.projection_dim).to(torch_device)
    if torch_device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    optimiser = torch.optim.SGD(
        model.parameters(),
        lr=config.base_lr(),
        momentum=config.momentum,
        weight_decay=config.weight_decay,
    )
    scaler = torch.amp.GradScaler(enabled=autocast_dtype(torch_device) == torch.float16)
    step, elapsed_before, losses = 0, 0.0, []
    if resume and state_path.exists():
        state = read_checkpoint(state_path)
        if (
            state["config"]["arch"] != config.arch
            or state["config"]["image_size"] != config.image_size
        ):
            raise ValueError(f"{state_path} is a run of another model; use a new out_dir")
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        step, elapsed_before = int(state["step"]), float(state["elapsed_s"])
        losses = [tuple(x) for x in state["losses"]]
        mean, std = state["mean"], state["std"]

    data = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    on_device = torch_device.type != "cpu" and data.numel() < 4 * 1024**3
    data = data.to(torch_device) if on_device else data
    augment = GPUAugment(config.image_size, mean, std, min_scale=config.min_crop_scale)
    generator = torch.Generator(device=torch_device).manual_seed(config.seed + step)
    index_generator = torch.Generator().manual_seed(config.seed + step)
    batch_size = min(config.batch_size, len(images))

    def fraction_done(elapsed: float) -> float:
        parts = []
        if config.max_steps:
            parts.append(step / config.max_steps)
        if config.time_budget_s:
            parts.append(elapsed / config.time_budget_s)
        return min(1.0, max(parts))

    def save(elapsed: float) -> None:
        raw = model
        _atomic_save(
            {
                "step": step,
                "elapsed_s": elapsed,
                "config": asdict(config),
                "model": raw.state_dict(),
                "optimiser": optimiser.state_dict(),
                "losses": [list(x) for x in losses],
                "mean": list(mean),
                "std": list(std),
            },
            state_path,
        )
        _atomic_save(
            {
                "format": SSL_CHECKPOINT_FORMAT,
                "method": "simclr",
                "arch": config.arch,
                "image_size": config.image_size,
                "model_kwargs": dict(config.model_kwargs),
                "stem_stride": config.stem_stride,
                "mean": list(mean),
                "std": list(std),
                "steps": step,
                "images_seen": step * batch_size,
                "state_dict": raw.backbone.state_dict(),
            },
            encoder_path,
        )

    model.train()
    started = time.monotonic()
    window_start, window_steps, stopped_by = started, 0, "steps"
    while True:
        elapsed = elapsed_before + time.monotonic() - started
        done = fraction_done(elapsed)
        if done >= 1.0:
            stopped_by = "steps" if config.max_steps and step >= config.max_steps else "time_budget"
            break
        lr = config.base_lr() * _schedule(done, config.warmup_fraction)
        for group in optimiser.param_groups:
            group["lr"] = lr
        rows = torch.randint(len(data), (batch_size,), generator=index_generator)
        batch = data[rows.to(data.device)].to(torch_device, non_blocking=True)
        with torch.no_grad():
            view1, view2 = augment(batch, generator), augment(batch, generator)
        if torch_device.type == "cuda":
            view1 = view1.contiguous(memory_format=torch.channels_last)
            view2 = view2.contiguous(memory_format=torch.channels_last)
        with autocast(torch_device):
            z = model(torch.cat([view1, view2]))
        loss = nt_xent(z[:batch_size], z[batch_size:], config.temperature)
        optimiser.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimiser)
        scaler.update()
        step += 1
        window_steps += 1
        if step % config.log_every == 0 or step == 1:
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FloatingPointError(f"SimCLR loss became {value} at step {step}")
            losses.append((step, value))
            now = time.monotonic()
            rate = window_steps * batch_size / max(now - window_start, 1e-9)
            window_start, window_steps = now, 0
            elapsed = elapsed_before + now - started
            report = SSLProgress(step, value, lr, elapsed, rate, fraction_done(elapsed))
            if progress is not None and progress(report) is False:
                stopped_by = "callback"
                break
        if config.checkpoint_every and step % config.checkpoint_every == 0:
            save(elapsed_before + time.monotonic() - started)
    elapsed = elapsed_before + time.monotonic() - started
    save(elapsed)
    return SSLResult(encoder_path, state_path, step, elapsed, stopped_by, losses)


def _schedule(fraction: float, warmup: float) -> float:
    """Linear warm-up, then cosine decay to 0, over the fraction of the run done."""
    if fraction < warmup:
        return max(fraction / warmup, 0.01)
    progress = (fraction - warmup) / max(1e-9, 1 - warmup)
    return 0.5 * (1 + math.cos(math.pi * progress))


def _atomic_save(obj: dict[str, Any], path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
