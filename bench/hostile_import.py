"""Benchmark: the server memory a hostile import costs (SECURITY.md: at most 512 MB).

Each case runs `items_import` on a zip in a fresh process (Django, a scratch SQLite database and
media folder) and reports how far the process's peak resident memory rose above what it used
just before the import (Linux: /proc/self/status VmHWM, reset through /proc/self/clear_refs).

Cases:
- `three_49mpx_pngs`: a small zip of three 7000 x 7000 single-colour PNGs (the #19 finding:
  +845 MB before), with today's normaliser and with the one before this change (`before`,
  re-created here: full-size copies for EXIF transpose, convert, the hash and the thumbnail);
- `noisy_49mpx_jpeg`: one 7000 x 7000 JPEG of noise (as big an encoded image as fits the file
  limit: the most the re-encoded copy can weigh);
- `bomb_headers`: 100 PNG headers declaring 20000 x 10000 (refused from the header);
- `baseline`: three 64 x 64 PNGs, the same path with nothing big in it.

Prints one JSON object.

    .venv/bin/python bench/hostile_import.py
"""

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CASES = (
    "baseline",
    "three_49mpx_pngs",
    "three_49mpx_pngs_before",
    "noisy_49mpx_jpeg",
    "bomb_headers",
)


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _png(size: tuple[int, int], colour) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def _archive(case: str) -> bytes:
    if case == "baseline":
        return _zip({f"{i}.png": _png((64, 64), (i * 40, 0, 0)) for i in range(3)})
    if case.startswith("three_49mpx_pngs"):
        return _zip({f"{i}.png": _png((7000, 7000), (i * 40, 90, 200)) for i in range(3)})
    if case == "noisy_49mpx_jpeg":  # incompressible: the biggest encoded output there is
        import numpy as np
        from PIL import Image

        noise = np.random.default_rng(0).integers(0, 256, (7000, 7000, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(noise).save(buffer, "JPEG", quality=75)
        return _zip({"noise.jpg": buffer.getvalue()})
    if case == "bomb_headers":
        from tests.images import png_header_only

        return _zip({f"{i}.png": png_header_only(20_000, 10_000) for i in range(100)})
    raise ValueError(case)


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _normalise_before(data: bytes, *, max_pixels: int, thumbnail_size: int):
    """The normaliser as it was before this change: four full-size copies."""
    import hashlib

    from PIL import Image, ImageOps

    from core import imaging

    image = imaging._open_checked(data, max_pixels=max_pixels)
    source_format = image.format or ""
    rgb = ImageOps.exif_transpose(image).convert("RGB")
    width, height = rgb.size
    pixels = rgb.tobytes()
    digest = hashlib.sha256(f"{width}x{height}:".encode() + pixels).hexdigest()
    content = imaging._encode(rgb, "PNG", optimize=False)
    thumb = rgb.copy()
    thumb.thumbnail((thumbnail_size, thumbnail_size), Image.Resampling.LANCZOS)
    return imaging.NormalisedImage(
        content=content,
        extension="png",
        thumbnail=imaging._encode(thumb, "JPEG", quality=85),
        width=width,
        height=height,
        content_hash=digest,
        source_format=source_format,
    )


def child(case: str) -> dict:
    scratch = Path(tempfile.mkdtemp(prefix="hostile-import-"))
    os.environ["DJANGO_SETTINGS_MODULE"] = "annotator.settings.test"
    os.environ["TEST_DATABASE_URL"] = f"sqlite:///{scratch / 'db.sqlite3'}"
    os.environ["MEDIA_ROOT"] = str(scratch / "media")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model

    from core import imaging
    from core.models import Project
    from core.services.imports import items_import, sources_from_zip

    if case.endswith("_before"):
        imaging._normalise = _normalise_before
    user = get_user_model().objects.create(username="hostile")
    project = Project.objects.create(name="hostile", created_by=user)
    archive = scratch / "upload.zip"
    archive.write_bytes(_archive(case))
    import gc

    gc.collect()
    rss_before_kb = _status_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS
    started = time.perf_counter()
    report = items_import(
        project=project,
        sources=sources_from_zip(
            archive,
            max_file_bytes=settings.ANNOTATOR_MAX_FILE_BYTES,
            max_total_bytes=settings.ANNOTATOR_MAX_ZIP_BYTES,
        ),
        annotator=user,
        max_batch_pixels=settings.ANNOTATOR_MAX_BATCH_PIXELS,
    )
    seconds = time.perf_counter() - started
    peak_kb = _status_kb("VmHWM")
    return {
        "zip_bytes": archive.stat().st_size,
        "imported": len(report.imported),
        "rejected": len(report.rejected),
        "seconds": round(seconds, 2),
        "rss_before_mb": round(rss_before_kb / 1024, 1),
        "peak_growth_mb": round((peak_kb - rss_before_kb) / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=CASES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "annotator.settings.test")
    import django

    django.setup()
    from django.conf import settings

    results = {}
    for case in CASES:
        out = subprocess.run(
            [sys.executable, __file__, "--child", case],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        ).stdout
        results[case] = json.loads(out.strip().splitlines()[-1])
    print(
        json.dumps(
            {
                "benchmark": "hostile_import",
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "limits": {
                    "max_image_pixels": settings.ANNOTATOR_MAX_IMAGE_PIXELS,
                    "max_batch_pixels": settings.ANNOTATOR_MAX_BATCH_PIXELS,
                    "max_zip_bytes": settings.ANNOTATOR_MAX_ZIP_BYTES,
                },
                "target_peak_growth_mb": 512,
                "cases": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
