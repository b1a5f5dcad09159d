import numpy as np
import pytest
import torch
from PIL import Image

from models_ml.embed import EmbeddingStore, embed_images
from models_ml.encoders import RANDOM_WEIGHTS, load_encoder


def test_embed_images_keeps_input_order_and_reports_unreadable_files(tmp_path):
    encoder = load_encoder("pixels:4", device="cpu")
    arrays = [np.full((8, 8, 3), v, dtype=np.uint8) for v in (10, 200, 90)]
    path = tmp_path / "good.png"
    Image.fromarray(arrays[1]).save(path)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    result = embed_images(encoder, [arrays[0], path, broken, arrays[2]], [5, 6, 7, 8], batch_size=3)
    assert result.vectors.dtype == np.float16
    assert result.ids.tolist() == [5, 6, 8]
    np.testing.assert_allclose(result.vectors[:, 0], [10 / 255, 200 / 255, 90 / 255], atol=1e-3)
    assert list(result.failed) == [7] and "UnidentifiedImageError" in result.failed[7]


def test_embed_images_with_a_timm_model_matches_a_direct_forward():
    encoder = load_encoder(
        "vit_small_patch16_224.dino",
        RANDOM_WEIGHTS,
        "cpu",
        model_kwargs={"depth": 1, "embed_dim": 32, "num_heads": 2, "img_size": 32},
    )
    images = [
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (40, 40, 3), dtype=np.uint8))
        for i in range(5)
    ]
    progress = []
    result = embed_images(
        encoder, images, range(5), batch_size=2, progress=lambda d, t: progress.append((d, t))
    )
    direct = encoder.embed(torch.stack([encoder.preprocess(im) for im in images]))
    np.testing.assert_allclose(result.vectors, direct.numpy(), atol=1e-2, rtol=1e-2)
    assert progress[-1] == (5, 5)


def test_ids_and_images_must_match_in_number():
    with pytest.raises(ValueError, match="2 images but 1 ids"):
        embed_images(
            load_encoder("pixels:4", device="cpu"), [np.zeros((4, 4, 3), np.uint8)] * 2, [1]
        )


def test_store_appends_new_ids_and_reads_them_back_by_id(tmp_path):
    store = EmbeddingStore(tmp_path, "enc@abc", 4)
    vectors = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert store.append([10, 11, 12], vectors) == 3
    assert store.append([12, 13], np.ones((2, 4))) == 1  # 12 is stored already
    assert len(store) == 4
    np.testing.assert_array_equal(store.get([12, 10]), vectors[[2, 0]])
    np.testing.assert_array_equal(store.get([13]), np.ones((1, 4)))
    assert store.missing([10, 14, 13, 15]) == [14, 15]
    assert store.contains([11, 99]).tolist() == [True, False]
    assert store.vectors().dtype == np.float16 and isinstance(store.vectors(), np.memmap)


def test_store_survives_reopening_and_ignores_a_half_written_append(tmp_path):
    store = EmbeddingStore(tmp_path, "enc", 2)
    store.append([1, 2], np.array([[1, 2], [3, 4]]))
    with open(store.path / "vectors.f16", "ab") as f:  # a writer died after writing vectors
        f.write(np.ones((5, 2), dtype=np.float16).tobytes())
    reopened = EmbeddingStore(tmp_path, "enc", 2)
    assert len(reopened) == 2 and reopened.ids().tolist() == [1, 2]
    reopened.append([3], np.array([[5, 6]]))
    np.testing.assert_array_equal(reopened.get([3, 1]), [[5, 6], [1, 2]])
    assert (store.path / "vectors.f16").stat().st_size == 3 * 2 * 2


def test_store_rejects_wrong_widths_and_unknown_ids(tmp_path):
    store = EmbeddingStore(tmp_path, "enc", 3)
    with pytest.raises(ValueError, match="shape"):
        store.append([1], np.ones((1, 4)))
    with pytest.raises(ValueError, match="not 5-d"):
        EmbeddingStore(tmp_path, "enc", 5)
    with pytest.raises(KeyError, match="item 7"):
        store.get([7])
    with pytest.raises(ValueError, match="finite"):
        store.append([1], np.full((1, 3), np.nan))


def test_store_keys_each_encoder_separately(tmp_path):
    EmbeddingStore(tmp_path, "a/b:c", 2).append([1], np.ones((1, 2)))
    assert len(EmbeddingStore(tmp_path, "other", 2)) == 0
    assert (tmp_path / "a_b_c" / "meta.json").exists()


def test_a_row_view_reads_float32_rows_of_the_store_only_when_indexed(tmp_path):
    from models_ml.store import RowView

    store = EmbeddingStore(tmp_path, "enc@1", dim=3)
    store.append(list(range(10, 16)), np.arange(18, dtype=np.float32).reshape(6, 3))
    whole = RowView(store.vectors())
    assert whole.shape == (6, 3) and len(whole) == 6
    view = whole.take(np.array([1, 3, 5]))  # nothing read yet: a narrower view
    assert view.shape == (3, 3)
    np.testing.assert_array_equal(view[[0, 2]], [[3, 4, 5], [15, 16, 17]])
    np.testing.assert_array_equal(view.take(np.array([False, True, True]))[:], [[9, 10, 11],
                                  [15, 16, 17]])  # fmt: skip
    assert view[:].dtype == np.float32 and np.asarray(view).shape == (3, 3)
    np.testing.assert_array_equal(whole[np.array([True] * 5 + [False])][:, 0], [0, 3, 6, 9, 12])


def _jpeg(path, size, seed, mode="RGB"):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : size[1], 0 : size[0]]
    smooth = ((x * 255 // max(1, size[0] - 1) + y * 255 // max(1, size[1] - 1)) // 2).astype(
        np.uint8
    )
    pixels = np.stack([smooth, 255 - smooth, rng.integers(0, 40, smooth.shape, dtype=np.uint8)], -1)
    image = Image.fromarray(pixels)
    if mode != "RGB":
        image = image.convert(mode)
    image.save(path, "JPEG", quality=92)
    return path


def test_tensor_decoding_gives_the_pil_path_s_vectors_and_keeps_the_batch_going(tmp_path):
    """The GPU path (bytes read by the workers, decoded and resized on the encoder's device) run
    on the CPU: same vectors as PIL decoding, for JPEGs of several sizes, a grayscale and a CMYK
    JPEG, a PNG and an array in one batch; a truncated JPEG is reported and costs nothing else."""
    encoder = load_encoder(
        "vit_small_patch16_224.dino",
        RANDOM_WEIGHTS,
        "cpu",
        model_kwargs={"depth": 1, "embed_dim": 32, "num_heads": 2, "img_size": 32},
    )
    assert encoder.resize is not None
    sources = [
        _jpeg(tmp_path / "a.jpg", (32, 32), 0),
        _jpeg(tmp_path / "b.jpg", (97, 61), 1),
        _jpeg(tmp_path / "c.jpg", (32, 32), 2),
        _jpeg(tmp_path / "gray.jpg", (40, 50), 3, mode="L"),
        _jpeg(tmp_path / "cmyk.jpg", (45, 33), 4, mode="CMYK"),
        np.full((20, 30, 3), 120, dtype=np.uint8),
    ]
    png = tmp_path / "d.png"
    Image.fromarray(np.full((16, 16, 3), 200, dtype=np.uint8)).save(png)
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes((tmp_path / "b.jpg").read_bytes()[:40])
    sources += [png, truncated]
    ids = list(range(10, 10 + len(sources)))

    pil = embed_images(encoder, sources, ids, batch_size=8, decode="pil")
    tensor = embed_images(encoder, sources, ids, batch_size=8, decode="tensor")
    assert tensor.ids.tolist() == pil.ids.tolist() == ids[:-1]
    assert list(tensor.failed) == list(pil.failed) == [ids[-1]]
    np.testing.assert_allclose(tensor.vectors, pil.vectors, atol=0.05, rtol=0.05)
    cosine = (tensor.vectors * pil.vectors).sum(1) / (
        np.linalg.norm(tensor.vectors, axis=1) * np.linalg.norm(pil.vectors, axis=1)
    )
    assert cosine.min() > 0.999


def test_decoding_choice_follows_the_device_the_encoder_and_the_environment(monkeypatch):
    from models_ml.embed import decoding_for

    timm_encoder = load_encoder(
        "resnet18", RANDOM_WEIGHTS, "cpu", model_kwargs={"layers": [1, 1, 1, 1]}
    )
    assert decoding_for(timm_encoder) == "pil"  # CPU: the loader workers decode
    assert decoding_for(timm_encoder, "tensor") == "tensor"
    timm_encoder.device = torch.device("cuda")  # only the choice is asked; nothing runs there
    assert decoding_for(timm_encoder) == "tensor"
    monkeypatch.setenv("ANNOTATOR_DECODE", "pil")
    assert decoding_for(timm_encoder) == "pil"
    monkeypatch.setenv("ANNOTATOR_DECODE", "nvjpeg")
    with pytest.raises(ValueError, match="auto, pil or tensor"):
        decoding_for(timm_encoder)
    monkeypatch.delenv("ANNOTATOR_DECODE")
    assert decoding_for(load_encoder("pixels:4", device="cpu"), "tensor") == "pil"  # no resize
