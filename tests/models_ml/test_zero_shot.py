import json

import numpy as np
import open_clip
import pytest
from safetensors.torch import save_file

from models_ml.embed import embed_images
from models_ml.encoders import RANDOM_WEIGHTS, WeightsUnavailable
from models_ml.zero_shot import (
    PROMPT_SETS,
    load_clip,
    neighbour_suggestions,
    zero_shot_probabilities,
)

TINY_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def tiny_clip_name(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "tiny-clip-test.json"
    path.write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(path)
    return "tiny-clip-test"


def _images(n=4):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (40, 50, 3), dtype=np.uint8) for _ in range(n)]


def test_zero_shot_gives_a_distribution_over_the_classes(tiny_clip_name):
    clip = load_clip(tiny_clip_name, RANDOM_WEIGHTS, "cpu")
    classes = clip.class_embeddings(["cat", "dog", "fire_truck"])
    assert classes.shape == (3, 16)
    np.testing.assert_allclose(np.linalg.norm(classes, axis=1), 1.0, atol=1e-5)
    images = embed_images(clip.image_encoder, _images(), range(4))
    probs = zero_shot_probabilities(images.vectors, classes, clip.logit_scale)
    assert probs.shape == (4, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)


def test_prompt_ensemble_differs_from_a_single_prompt(tiny_clip_name):
    clip = load_clip(tiny_clip_name, RANDOM_WEIGHTS, "cpu")
    assert len(PROMPT_SETS["ensemble-v1"]) > 10
    ensemble = clip.class_embeddings(["cat"])
    single = clip.class_embeddings(["cat"], prompt_set="single")
    assert not np.allclose(ensemble, single)


def test_clip_weights_file_loads_back_to_the_same_suggestions(tiny_clip_name, tmp_path):
    clip = load_clip(tiny_clip_name, RANDOM_WEIGHTS, "cpu")
    save_file(clip.model.state_dict(), tmp_path / "clip.safetensors")
    loaded = load_clip(tiny_clip_name, tmp_path / "clip.safetensors", "cpu")
    names = ["cat", "dog"]
    a = embed_images(clip.image_encoder, _images(), range(4)).vectors
    b = embed_images(loaded.image_encoder, _images(), range(4)).vectors
    np.testing.assert_allclose(a, b, atol=1e-3)
    np.testing.assert_allclose(
        clip.class_embeddings(names), loaded.class_embeddings(names), atol=1e-6
    )
    assert loaded.key != clip.key


def test_missing_clip_weights_say_where_we_looked_and_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("ANNOTATOR_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(WeightsUnavailable) as caught:
        load_clip("ViT-B-32", "laion2b_s34b_b79k", "cpu")
    message = str(caught.value)
    assert "ViT-B-32" in message and "laion2b_s34b_b79k" in message
    assert str(tmp_path / "ViT-B-32-laion2b_s34b_b79k") in message
    assert "not tried" in message and "nearest labeled neighbours" in message


def test_neighbour_suggestions_follow_the_nearest_labels():
    labeled = np.array([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1]])
    labels = np.array([0, 1, 0])
    queries = np.array([[1.0, 0.05], [0.05, 1.0]])
    probs = neighbour_suggestions(queries, labeled, labels, n_classes=3, k=2)
    assert probs.shape == (2, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert probs[0].argmax() == 0 and probs[1].argmax() == 1
    np.testing.assert_allclose(probs[:, 2], 0.0)  # a class nobody labeled yet


def test_neighbour_suggestions_need_a_label():
    with pytest.raises(ValueError, match="at least one"):
        neighbour_suggestions(np.ones((2, 2)), np.empty((0, 2)), np.empty(0), 2)
