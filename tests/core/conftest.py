"""Fixtures shared by the core tests."""

import json

import open_clip
import pytest
from safetensors.torch import save_file

from models_ml.zero_shot import load_clip

TINY_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture
def tiny_clip_weights(tmp_path):
    """A tiny CLIP architecture registered with open_clip and a weights file for it."""
    config = tmp_path / "tiny-clip-loop.json"
    config.write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(config)
    clip = load_clip("tiny-clip-loop", "random", "cpu")
    weights = tmp_path / "tiny-clip-loop.safetensors"
    save_file({k: v.contiguous() for k, v in clip.model.state_dict().items()}, str(weights))
    return "tiny-clip-loop", str(weights)


@pytest.fixture
def fresh_encoder_cache():
    """Loaded encoders are cached per worker process: each test starts and ends without."""
    from core.services.embeddings import encoder_cache

    encoder_cache.clear()
    yield
    encoder_cache.clear()
