import numpy as np
import pytest
import torch

from models_ml.embed import embed_images
from models_ml.encoders import load_encoder, read_checkpoint
from models_ml.ssl import GPUAugment, SSLConfig, images_to_array, nt_xent, pretrain

from .conftest import shape_images


def _config(**overrides):
    base = dict(
        arch="resnet18",
        image_size=16,
        stem_stride=2,
        batch_size=32,
        lr=0.3,
        max_steps=30,
        log_every=1,
        checkpoint_every=10,
        seed=0,
    )
    return SSLConfig(**{**base, **overrides})


def test_a_short_simclr_run_lowers_its_loss_and_writes_a_loadable_encoder(tmp_path):
    images = shape_images(64, 16)
    seen = []
    result = pretrain(images, tmp_path, _config(), device="cpu", progress=seen.append)
    losses = [loss for _, loss in result.losses]
    assert result.steps == 30 and result.stopped_by == "steps"
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    assert seen[-1].step == 30 and seen[-1].images_per_s > 0
    encoder = load_encoder(str(result.encoder_path), device="cpu")
    assert encoder.embed_dim == 512 and encoder.input_size == (3, 16, 16)
    assert encoder.key.startswith("ssl-resnet18-")
    vectors = embed_images(encoder, list(images[:4]), range(4)).vectors
    assert vectors.shape == (4, 512) and np.isfinite(vectors).all()
    checkpoint = read_checkpoint(result.encoder_path)  # weights_only=True
    assert checkpoint["method"] == "simclr" and checkpoint["steps"] == 30


def test_checkpoint_weights_are_the_trained_ones(tmp_path):
    images = shape_images(32, 16)
    result = pretrain(images, tmp_path, _config(max_steps=3), device="cpu")
    encoder = load_encoder(str(result.encoder_path), device="cpu")
    state = read_checkpoint(result.state_path)["model"]
    loaded = encoder.model.state_dict()
    torch.testing.assert_close(loaded["conv1.weight"], state["backbone.conv1.weight"])


def test_a_run_resumes_from_its_last_checkpoint(tmp_path):
    images = shape_images(32, 16)
    pretrain(images, tmp_path, _config(max_steps=10), device="cpu")
    resumed = pretrain(images, tmp_path, _config(max_steps=15), device="cpu")
    assert resumed.steps == 15
    assert resumed.losses[0][0] == 1 and resumed.losses[-1][0] == 15  # history kept


def test_resuming_with_another_model_is_refused(tmp_path):
    images = shape_images(32, 16)
    pretrain(images, tmp_path, _config(max_steps=2), device="cpu")
    with pytest.raises(ValueError, match="another model"):
        pretrain(images, tmp_path, _config(max_steps=4, arch="resnet10t"), device="cpu")


def test_time_budget_and_callback_end_the_run_with_a_checkpoint(tmp_path):
    images = shape_images(32, 16)
    timed = pretrain(
        images, tmp_path / "a", _config(max_steps=None, time_budget_s=1.0), device="cpu"
    )
    assert timed.stopped_by == "time_budget" and timed.encoder_path.exists()
    stopped = pretrain(
        images, tmp_path / "b", _config(max_steps=100), device="cpu", progress=lambda p: p.step < 3
    )
    assert stopped.stopped_by == "callback" and stopped.steps == 3


def test_a_run_needs_an_end_and_uint8_images(tmp_path):
    with pytest.raises(ValueError, match="never ends"):
        pretrain(shape_images(8, 16), tmp_path, _config(max_steps=None), device="cpu")
    with pytest.raises(ValueError, match="uint8"):
        pretrain(np.zeros((8, 16, 16, 3), np.float32), tmp_path, _config(), device="cpu")


def test_augmented_views_differ_and_keep_shape():
    images = torch.from_numpy(shape_images(8, 16)).permute(0, 3, 1, 2)
    augment = GPUAugment(16, [0.5] * 3, [0.25] * 3)
    generator = torch.Generator().manual_seed(0)
    a, b = augment(images, generator), augment(images, generator)
    assert a.shape == (8, 3, 16, 16) and torch.isfinite(a).all()
    assert not torch.allclose(a, b)


def test_nt_xent_is_low_for_matching_views_and_high_for_random_ones():
    z = torch.randn(16, 8)
    assert nt_xent(z, z, 0.1) < nt_xent(z, torch.randn(16, 8), 0.1)


def test_images_to_array_crops_to_square_and_skips_unreadable(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"nope")
    out = images_to_array([np.zeros((20, 40, 3), np.uint8), bad], 8)
    assert out.shape == (1, 8, 8, 3) and out.dtype == np.uint8
