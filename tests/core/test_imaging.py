import io
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from core.imaging import ImageRejected, normalise_image
from tests.images import encode, png_header_only, rgb_jpeg, rgb_png

CAP = 10_000_000


def decoded(result) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(result.content)))


def test_png_is_kept_lossless_and_rgb():
    result = normalise_image(rgb_png(1), max_pixels=CAP)
    original = np.asarray(Image.open(io.BytesIO(rgb_png(1))))
    assert result.extension == "png"
    assert (result.width, result.height) == (16, 16)
    np.testing.assert_array_equal(decoded(result), original)


def test_jpeg_stays_jpeg_with_thumbnail():
    result = normalise_image(rgb_jpeg(2, size=600), max_pixels=CAP, thumbnail_size=128)
    assert result.extension == "jpg" and result.source_format == "JPEG"
    assert max(Image.open(io.BytesIO(result.thumbnail)).size) == 128


def test_sixteen_bit_grayscale_is_scaled_not_clipped_to_white():
    ramp = (np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16)
    data = encode(Image.fromarray(ramp))
    pixels = decoded(normalise_image(data, max_pixels=CAP))
    assert pixels.shape == (64, 64, 3)
    # A clipped conversion would make nearly everything 255; a scaled one keeps the ramp.
    assert pixels[..., 0].min() == 0 and pixels[..., 0].max() == 255
    assert 100 < pixels[..., 0].mean() < 155


def test_cmyk_becomes_rgb():
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # pure red in CMYK
    pixels = decoded(normalise_image(encode(cmyk, "JPEG"), max_pixels=CAP))
    red, green, blue = pixels[..., 0].mean(), pixels[..., 1].mean(), pixels[..., 2].mean()
    assert red > 200 and green < 60 and blue < 60


def test_transparent_pixels_become_white_not_black():
    rgba = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    pixels = decoded(normalise_image(encode(rgba), max_pixels=CAP))
    assert pixels.min() == 255


def test_palette_image_with_transparency_is_converted():
    palette = Image.new("P", (8, 8), 1)
    palette.putpalette([0, 0, 0, 0, 128, 0] + [0] * 762)
    result = normalise_image(encode(palette, transparency=0), max_pixels=CAP)
    assert decoded(result)[0, 0].tolist() == [0, 128, 0]


def test_exif_orientation_is_applied():
    wide = Image.new("RGB", (40, 20), (10, 20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    result = normalise_image(encode(wide, "JPEG", exif=exif), max_pixels=CAP)
    assert (result.width, result.height) == (20, 40)


def test_same_pixels_with_other_metadata_have_the_same_hash():
    image = Image.new("RGB", (8, 8), (1, 2, 3))
    a = normalise_image(encode(image), max_pixels=CAP)
    b = normalise_image(encode(image, pnginfo=None, optimize=True), max_pixels=CAP)
    assert a.content_hash == b.content_hash


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"%PDF-1.4 definitely not an image", "not an image"),
        (rgb_png(3)[:-60], "truncated"),
        (encode(Image.new("RGB", (16, 16)), "ICO"), "format ICO is not allowed"),
        (png_header_only(40_000, 40_000), "decompression bomb"),
        (png_header_only(5_000, 5_000), "too large"),
    ],
    ids=["empty", "not-image", "truncated", "disallowed-format", "bomb", "pixel-cap"],
)
def test_bad_files_are_rejected_with_a_reason(data, reason):
    with pytest.raises(ImageRejected, match=reason):
        normalise_image(data, max_pixels=CAP)


def test_any_decoder_failure_is_a_rejection_with_a_reason(monkeypatch):
    """Pillow's C decoders raise what they run into on hostile input: a TIFF with mutated strip
    offsets raised TypeError inside load(), and the upload answered 500."""

    def broken_load(self):
        raise TypeError("'NoneType' object cannot be interpreted as an integer")

    tiff = encode(Image.new("RGB", (8, 8)), "TIFF")
    monkeypatch.setattr(Image.Image, "load", broken_load)
    with pytest.raises(ImageRejected, match="cannot decode image .TypeError"):
        normalise_image(tiff, max_pixels=CAP)


def _seed_files() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8))
    return {
        "JPEG": encode(rgb, "JPEG"),
        "PNG": encode(rgb, "PNG"),
        "PNG-16bit": encode(Image.fromarray(np.arange(120, dtype=np.uint16).reshape(12, 10))),
        "WEBP": encode(rgb, "WEBP"),
        "BMP": encode(rgb, "BMP"),
        "TIFF": encode(rgb, "TIFF"),
        "TIFF-LZW": encode(rgb, "TIFF", compression="tiff_lzw"),
        "GIF": encode(rgb.convert("P"), "GIF"),
    }


SEED_FILES = _seed_files()


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns on what it then rejects
@settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", 300)),  # a longer run: FUZZ_EXAMPLES=20000
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    kind=st.sampled_from(sorted(SEED_FILES)),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6),
    cut=st.one_of(st.none(), st.integers(1, 10_000)),
)
def test_a_mutated_file_of_any_allowed_format_is_normalised_or_rejected(kind, edits, cut):
    """Mutation fuzz over every allowed format (bounded: 300 cases, ~2 s, in make test): only
    our ImageRejected may escape, and what passes is a valid 8-bit RGB image of ours."""

    data = bytearray(SEED_FILES[kind])
    for position, value in edits:
        data[position % len(data)] = value
    if cut is not None:
        data = data[: cut % len(data) or 1]
    try:
        result = normalise_image(bytes(data), max_pixels=CAP)
    except ImageRejected as rejected:
        assert str(rejected)
        return
    reopened = Image.open(io.BytesIO(result.content))
    assert reopened.mode == "RGB" and reopened.size == (result.width, result.height)


def test_the_strip_by_strip_hash_is_the_hash_of_the_whole_pixel_buffer():
    """Items stored before the hash read strips keep matching their duplicates."""
    import hashlib

    from core.imaging import HASH_STRIP_ROWS, _pixels_sha256

    rng = np.random.default_rng(0)
    height = 2 * HASH_STRIP_ROWS + 17  # strips that do not divide the height
    image = Image.fromarray(rng.integers(0, 256, (height, 33, 3), dtype=np.uint8))
    whole = hashlib.sha256(f"33x{height}:".encode() + image.tobytes()).hexdigest()
    assert _pixels_sha256(image) == whole
