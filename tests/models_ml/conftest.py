import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _no_downloads(monkeypatch):
    """ML tests never reach for the hub: weights come from files the tests write."""
    monkeypatch.setenv("ANNOTATOR_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("ANNOTATOR_WEIGHTS_DIR", raising=False)
    monkeypatch.delenv("ANNOTATOR_DEVICE", raising=False)
    torch.set_num_threads(2)


def blobs(n_per_class: int = 40, classes: int = 3, dim: int = 16, spread: float = 0.3, seed=0):
    """Well separated gaussian clusters: (X, y)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(classes, dim)) * 3
    X = np.concatenate([c + spread * rng.normal(size=(n_per_class, dim)) for c in centers])
    y = np.repeat(np.arange(classes), n_per_class)
    return X.astype(np.float32), y


def shape_images(n: int = 64, size: int = 16, seed: int = 0) -> np.ndarray:
    """Small uint8 images of coloured squares on noise: enough structure for SSL to learn."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 60, size=(n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        colour = rng.integers(100, 256, size=3)
        s = rng.integers(size // 4, size // 2)
        x, y = rng.integers(0, size - s, size=2)
        images[i, y : y + s, x : x + s] = colour
    return images
