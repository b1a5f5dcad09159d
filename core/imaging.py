"""Decode, validate and normalise one uploaded image. Pillow only; no Django models.

Every file is fully decoded (not only `verify()`), because truncated or malicious files
often pass header checks. The output is always 8-bit RGB, re-encoded by us, so what we
store and serve is an image we wrote, never the user's bytes.
"""

import hashlib
import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF"})
LOSSY_FORMATS = frozenset({"JPEG"})
JPEG_QUALITY = 95


class ImageRejected(ValueError):
    """The file cannot be imported; the message is the reason shown to the user."""


@dataclass(frozen=True)
class NormalisedImage:
    content: bytes  # re-encoded file
    extension: str  # "png" or "jpg"
    thumbnail: bytes  # JPEG
    width: int
    height: int
    content_hash: str  # SHA-256 of the RGB pixels and size
    source_format: str


def normalise_image(data: bytes, *, max_pixels: int, thumbnail_size: int = 256) -> NormalisedImage:
    """Validate `data` as an image and return it as 8-bit RGB, EXIF-rotated and re-encoded.

    Raises ImageRejected with a reason a person can act on.
    """
    if not data:
        raise ImageRejected("empty file")
    try:
        return _normalise(data, max_pixels=max_pixels, thumbnail_size=thumbnail_size)
    except ImageRejected:
        raise
    except Exception as exc:  # noqa: BLE001
        # Pillow's decoders raise whatever their C code runs into on hostile input (a TIFF
        # with mutated strip offsets raised TypeError inside load()): every such failure is
        # this file's rejection, never the batch's server error.
        raise ImageRejected(f"cannot decode image ({type(exc).__name__}: {exc})"[:300]) from exc


def _normalise(data: bytes, *, max_pixels: int, thumbnail_size: int) -> NormalisedImage:
    # Memory: one decoded copy of the image at a time (a 49 Mpx RGB image is 147 MB), so
    # no full-size copies: the original is dropped once converted, the hash reads strips,
    # and the thumbnail is made in place once the full-size file is written.
    image = _open_checked(data, max_pixels=max_pixels)
    source_format = image.format or ""
    rgb = _to_rgb8(image)
    del image
    width, height = rgb.size
    digest = _pixels_sha256(rgb)

    if source_format in LOSSY_FORMATS:
        content, extension = _encode(rgb, "JPEG", quality=JPEG_QUALITY), "jpg"
    else:
        content, extension = _encode(rgb, "PNG", optimize=False), "png"

    rgb.thumbnail((thumbnail_size, thumbnail_size), Image.Resampling.LANCZOS)
    return NormalisedImage(
        content=content,
        extension=extension,
        thumbnail=_encode(rgb, "JPEG", quality=85),
        width=width,
        height=height,
        content_hash=digest,
        source_format=source_format,
    )


def _open_checked(data: bytes, *, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that; we refuse both.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.format not in ALLOWED_FORMATS:
                raise ImageRejected(
                    f"format {image.format or 'unknown'} is not allowed "
                    f"(allowed: {', '.join(sorted(ALLOWED_FORMATS))})"
                )
            width, height = image.size
            if width < 1 or height < 1:
                raise ImageRejected(f"invalid size {width}x{height}")
            if width * height > max_pixels:
                raise ImageRejected(
                    f"too large: {width}x{height} = {width * height:,} pixels "
                    f"exceeds the limit of {max_pixels:,}"
                )
            image.seek(0)  # first frame of animated GIF/WebP or multi-page TIFF
            image.load()  # full decode: catches truncated and corrupt data
            return image
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(f"decompression bomb: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise ImageRejected("not an image file Pillow can identify") from exc
    except OSError as exc:
        raise ImageRejected(f"corrupt or truncated image: {exc}") from exc
    except (ValueError, SyntaxError, EOFError, MemoryError) as exc:
        raise ImageRejected(f"cannot decode image: {exc}") from exc


HASH_STRIP_ROWS = 256


def _pixels_sha256(rgb: Image.Image) -> str:
    """SHA-256 of "WxH:" and the RGB bytes row by row, read a strip at a time (the same
    digest as hashing `tobytes()`, without a second full-size copy)."""
    width, height = rgb.size
    digest = hashlib.sha256(f"{width}x{height}:".encode())
    for top in range(0, height, HASH_STRIP_ROWS):
        digest.update(rgb.crop((0, top, width, min(height, top + HASH_STRIP_ROWS))).tobytes())
    return digest.hexdigest()


def _to_rgb8(image: Image.Image) -> Image.Image:
    """Any mode → 8-bit RGB that looks like the original (no washed-out 16-bit, no black alpha)."""
    icc = image.info.get("icc_profile")
    ImageOps.exif_transpose(image, in_place=True)  # a rotated copy only when it is rotated
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return Image.fromarray(_scale_to_uint8(np.asarray(image)), mode="L").convert("RGB")
    if mode == "P" or mode == "PA":
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "RGBa", "La"):
        return _flatten_alpha(image.convert("RGBA"))
    if mode == "CMYK" and icc:
        converted = _icc_to_srgb(image, icc)
        if converted is not None:
            return converted
    return image.convert("RGB")


def _scale_to_uint8(array: np.ndarray) -> np.ndarray:
    # Casting 16-bit to 8-bit by clipping turns almost every pixel white; scale instead.
    array = array.astype(np.float64)
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        array = np.nan_to_num(array, nan=0.0, posinf=0.0, neginf=0.0)
    low, high = float(array.min()), float(array.max())
    if low >= 0 and high <= 255:
        scaled = array
    elif low >= 0 and high <= 65535:
        scaled = array / 257.0
    else:  # arbitrary range (32-bit int or float data): stretch to 0..255
        scaled = (array - low) * (255.0 / (high - low)) if high > low else array * 0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _flatten_alpha(rgba: Image.Image) -> Image.Image:
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _icc_to_srgb(image: Image.Image, icc: bytes) -> Image.Image | None:
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return ImageCms.profileToProfile(
            image, source, ImageCms.createProfile("sRGB"), outputMode="RGB"
        )
    except (ImageCms.PyCMSError, OSError, ValueError):
        return None


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()
