"""Where tensors run: CUDA, then Apple MPS, then CPU, with the matching mixed-precision mode."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch


def best_device(preferred: str | torch.device | None = None) -> torch.device:
    """The device to run on: `preferred` when given, else CUDA, then MPS, then CPU.

    The environment variable `ANNOTATOR_DEVICE` (e.g. "cpu", "cuda:1") overrides the automatic
    choice, so a worker can be pinned to one GPU or kept off it without code changes.
    """
    choice = preferred if preferred is not None else os.environ.get("ANNOTATOR_DEVICE") or None
    if choice is not None:
        return torch.device(choice)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 where the GPU supports it, fp16 on other GPUs, None (full precision) on CPU."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return None


@contextlib.contextmanager
def autocast(device: torch.device, enabled: bool = True) -> Iterator[None]:
    """Mixed precision on GPUs; a no-op on CPU, where bf16 matmuls are usually slower."""
    dtype = autocast_dtype(device) if enabled else None
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def available_cpus() -> int:
    """CPUs this process may use (affinity mask / container limits), not the host's count."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        count = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    if quota is not None:
        count = min(count, quota)
    return max(1, count)


def _cgroup_cpu_quota() -> int | None:
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, int(int(quota) / int(period)))


def configure_cpu_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads to the CPUs we may use (or `threads`), returning the count.

    torch defaults to the host's physical cores, which oversubscribes a container limited to
    fewer and makes every matmul slower. `OMP_NUM_THREADS`, when set, is respected.
    """
    if threads is None:
        env = os.environ.get("OMP_NUM_THREADS")
        threads = int(env) if env and env.isdigit() else available_cpus()
    threads = max(1, threads)
    torch.set_num_threads(threads)
    return threads


def data_loader_workers(device: torch.device) -> int:
    """Image-decoding worker processes for a DataLoader: none on 1-2 CPUs, more beside a GPU."""
    cpus = available_cpus()
    if cpus <= 2:
        return 0
    return min(8, cpus - 1) if device.type != "cpu" else min(4, cpus // 2)
