"""Import images from uploads, folders, zips and ImageFolder trees.

One bad file never aborts a batch: every file ends up in exactly one of the report's
lists (imported, duplicate, rejected with a reason). Zip members are read into memory
one at a time under a per-file and a total cap; nothing is extracted to disk, so a
member named `../../etc/x` cannot write anywhere.
"""

import logging
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Literal

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction

from core.imaging import ImageRejected, normalise_image
from core.models import Item, LabelClass, Project
from core.services.classes import label_class_get_or_create
from core.services.loop import after_import
from core.services.queue import annotation_import

logger = logging.getLogger(__name__)

LabelsAs = Literal["ground-truth", "annotations"] | None
SPLIT_NAMES = {"train": "train", "test": "test", "val": "val", "valid": "val", "validation": "val"}


@dataclass(frozen=True)
class ImportSource:
    """One file to import: its path relative to the import root and how to read it."""

    name: str
    read: Callable[[], bytes]
    # Path that class/split folders are read from, when it differs from the reported name
    # (a zip uploaded as "cats.zip" reports "cats.zip/cat/1.jpg" but labels from "cat/1.jpg").
    label_path: str | None = None


@dataclass
class ImportReport:
    imported: list[int] = field(default_factory=list)
    duplicates: list[tuple[str, int]] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    created_classes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.imported) + len(self.duplicates) + len(self.rejected)

    def as_dict(self, *, limit: int | None = None) -> dict:
        """The report for the API and a job's metrics; `limit` caps the listed files (the
        counts stay whole)."""
        return {
            "imported": len(self.imported),
            "duplicates": [{"file": n, "existing_item": i} for n, i in self.duplicates[:limit]],
            "duplicates_count": len(self.duplicates),
            "rejected": [{"file": n, "reason": r} for n, r in self.rejected[:limit]],
            "rejected_count": len(self.rejected),
            "created_classes": self.created_classes,
        }

    def summary(self) -> str:
        return (
            f"Imported {len(self.imported):,}, {len(self.duplicates):,} duplicates skipped, "
            f"{len(self.rejected):,} rejected"
        )


class SourceRejected(Exception):
    """A file that cannot even be read (too big, unsafe path, encrypted...)."""


def _is_junk(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return any(p == "__MACOSX" or (p.startswith(".") and p not in (".", "..")) for p in parts)


def sources_from_folder(root: Path, *, max_file_bytes: int) -> Iterator[ImportSource]:
    """Every regular file under `root`, sorted, as sources (symlinks are not followed)."""
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        relative = path.relative_to(root).as_posix()
        if _is_junk(relative):
            continue

        def read(path: Path = path) -> bytes:
            if path.stat().st_size > max_file_bytes:
                raise SourceRejected(f"file is larger than the limit of {max_file_bytes:,} bytes")
            return path.read_bytes()

        yield ImportSource(relative, read)


def sources_from_zip(
    archive: str | Path | BinaryIO, *, max_file_bytes: int, max_total_bytes: int
) -> Iterator[ImportSource]:
    """Members of a zip as sources; stops with a rejection once `max_total_bytes` is read."""
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise SourceRejected(f"not a valid zip file: {exc}") from exc
    with zf:
        yield from zip_member_sources(
            zf, max_file_bytes=max_file_bytes, max_total_bytes=max_total_bytes
        )


def zip_member_sources(
    zf: zipfile.ZipFile, *, max_file_bytes: int, max_total_bytes: int
) -> Iterator[ImportSource]:
    """The members of an open zip as sources, under the same caps (readable while it is)."""
    budget = {"left": max_total_bytes}
    for info in zf.infolist():
        if info.is_dir() or _is_junk(info.filename):
            continue
        yield ImportSource(info.filename, _zip_reader(zf, info, max_file_bytes, budget))


def _zip_reader(zf: zipfile.ZipFile, info: zipfile.ZipInfo, max_file_bytes: int, budget: dict):
    def read() -> bytes:
        name = PurePosixPath(info.filename)
        if (
            name.is_absolute()
            or ".." in name.parts
            or "\\" in info.filename
            or ":" in name.parts[0]
        ):
            raise SourceRejected("unsafe path in zip (absolute or contains '..')")
        if info.flag_bits & 0x1:
            raise SourceRejected("encrypted zip member")
        if budget["left"] <= 0:
            raise SourceRejected("not read: the zip's decompressed size limit was reached")
        if info.file_size > max_file_bytes:
            raise SourceRejected(f"file is larger than the limit of {max_file_bytes:,} bytes")
        # The header's size can lie: read at most the limit + 1 and check what we got.
        limit = min(max_file_bytes, budget["left"]) + 1
        with zf.open(info) as member:
            data = member.read(limit)
        budget["left"] -= len(data)
        if len(data) >= limit:
            if budget["left"] <= 0:
                raise SourceRejected(
                    "stopped: the zip's decompressed size limit was reached; "
                    "the remaining files were not imported"
                )
            raise SourceRejected(f"file is larger than the limit of {max_file_bytes:,} bytes")
        return data

    return read


def sources_from_path(path: Path) -> Iterator[ImportSource]:
    """A folder, an ImageFolder tree, a zip, or a single image file."""
    limits = {"max_file_bytes": settings.ANNOTATOR_MAX_FILE_BYTES}
    if path.is_dir():
        return sources_from_folder(path, **limits)
    if zipfile.is_zipfile(path):
        return sources_from_zip(path, max_total_bytes=settings.ANNOTATOR_MAX_ZIP_BYTES, **limits)
    if path.is_file():
        return iter([ImportSource(path.name, path.read_bytes)])
    raise FileNotFoundError(f"{path} is neither a folder, a zip nor a file")


def split_and_class_from_name(name: str) -> tuple[str, str | None]:
    """`train/cat/1.jpg` → ("train", "cat"); `cat/1.jpg` → ("", "cat"); `1.jpg` → ("", None)."""
    folders = PurePosixPath(name).parts[:-1]
    split = ""
    for index, folder in enumerate(folders):
        if folder.lower() in SPLIT_NAMES:
            split = SPLIT_NAMES[folder.lower()]
            folders = folders[index + 1 :]
            break
    return split, (folders[-1] if folders else None)


def items_import(
    *,
    project: Project,
    sources: Iterable[ImportSource],
    labels_as: LabelsAs = None,
    annotator=None,
    progress: Callable[[int], None] | None = None,
    max_batch_pixels: int | None = None,
    storage_left: int | None = None,
) -> ImportReport:
    """Validate, normalise, deduplicate and store each source as an Item of `project`.

    With `labels_as`, the ImageFolder class folder becomes the item's ground truth
    (evaluation only) or an imported annotation by `annotator` (who is also recorded as the
    importer, for the storage quota). Once `max_batch_pixels` have been decoded, or the
    stored files would pass `storage_left` bytes, the remaining files are rejected unread.
    """
    if labels_as == "annotations" and annotator is None:
        raise ValueError("labels_as='annotations' needs the annotator to attribute them to")
    report = ImportReport()
    classes: dict[str, LabelClass] = {c.name: c for c in project.classes.all()}
    budget = _Budget(pixels=max_batch_pixels, stored_bytes=storage_left)
    for count, source in enumerate(sources, start=1):
        try:
            budget.check()
            _import_one(project, source, labels_as, annotator, classes, report, budget)
        except (SourceRejected, ImageRejected) as exc:
            report.rejected.append((source.name, str(exc)))
        except Exception:  # noqa: BLE001 - one file's failure never costs the rest of the batch
            logger.exception("importing %r into project %s failed", source.name, project.pk)
            report.rejected.append((source.name, "could not be imported (the server log says why)"))
        if progress:
            progress(count)
    after_import(project=project, imported=len(report.imported))
    return report


class _Budget:
    """What is left of one import's pixel budget and the importer's storage quota."""

    def __init__(self, *, pixels: int | None, stored_bytes: int | None):
        self.pixels, self.stored_bytes = pixels, stored_bytes
        self.exhausted = ""

    def check(self) -> None:
        if self.exhausted:
            raise SourceRejected(f"not imported: {self.exhausted}")

    def spend_pixels(self, pixels: int) -> None:
        if self.pixels is None:
            return
        self.pixels -= pixels
        if self.pixels <= 0:
            self.exhausted = (
                "this import decoded as many pixels as one import may "
                f"({settings.ANNOTATOR_MAX_BATCH_PIXELS:,}); import the rest separately"
            )

    def store(self, size: int) -> None:
        if self.stored_bytes is None:
            return
        if size > self.stored_bytes:
            self.exhausted = "your storage quota is used up"
            self.check()
        self.stored_bytes -= size


def _import_one(project, source, labels_as, annotator, classes, report, budget) -> None:
    image = normalise_image(
        source.read(),
        max_pixels=settings.ANNOTATOR_MAX_IMAGE_PIXELS,
        thumbnail_size=settings.ANNOTATOR_THUMBNAIL_SIZE,
    )
    budget.spend_pixels(image.width * image.height)
    existing = Item.objects.filter(project=project, content_hash=image.content_hash).first()
    if existing:
        report.duplicates.append((source.name, existing.pk))
        return
    stored_bytes = len(image.content) + len(image.thumbnail)
    budget.store(stored_bytes)
    split, class_name = split_and_class_from_name(source.label_path or source.name)
    label_class = None
    if labels_as and class_name:
        if class_name not in classes:
            classes[class_name], created = label_class_get_or_create(
                project=project, name=class_name
            )
            if created:
                report.created_classes.append(class_name)
        label_class = classes[class_name]

    item = Item(
        project=project,
        content_hash=image.content_hash,
        width=image.width,
        height=image.height,
        original_name=source.name[-500:],
        imported_by=annotator,
        stored_bytes=stored_bytes,
        split=split,
        ground_truth=label_class if labels_as == "ground-truth" else None,
    )
    item.image.save(
        f"{image.content_hash}.{image.extension}", ContentFile(image.content), save=False
    )
    item.thumbnail.save(f"{image.content_hash}-thumb.jpg", ContentFile(image.thumbnail), save=False)
    try:
        with transaction.atomic():
            item.save()
            if labels_as == "annotations" and label_class is not None:
                annotation_import(item=item, annotator=annotator, label_class=label_class)
    except IntegrityError:
        # Another import stored the same image between our check and our insert.
        item.image.delete(save=False)
        item.thumbnail.delete(save=False)
        other = Item.objects.get(project=project, content_hash=image.content_hash)
        report.duplicates.append((source.name, other.pk))
        return
    report.imported.append(item.pk)
