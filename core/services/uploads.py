"""Turn uploaded files (images and zips) into import sources, for the page and the API.

Small uploads are imported inside the request. Anything with a zip, or more files or bytes
than `ANNOTATOR_INLINE_IMPORT_*`, is staged under `imports/` in the `artifacts` storage
(core/storage.py: a local folder, or the bucket every worker reads) and imported by a
background job (`import_stage` → `import_run`), so the request returns at once with the job
and its progress.
"""

import time
import uuid
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from core import storage
from core.models import Job, Project
from core.services.imports import (
    ImportReport,
    ImportSource,
    LabelsAs,
    SourceRejected,
    items_import,
    sources_from_zip,
)
from core.services.jobs import ProgressReporter, job_request
from core.services.quotas import heavy_jobs_check, storage_check, storage_left

ImportFile = tuple[str, Path | UploadedFile]  # the name the user gave it, and its content


def sources_from_files(files: Iterable[ImportFile], rejected: list) -> Iterator[ImportSource]:
    """Each file is an image or a zip of them; zips that cannot be opened go to `rejected`."""
    max_file = settings.ANNOTATOR_MAX_FILE_BYTES
    for name, content in files:
        if name.lower().endswith(".zip"):
            try:
                for source in sources_from_zip(
                    content,
                    max_file_bytes=max_file,
                    max_total_bytes=settings.ANNOTATOR_MAX_ZIP_BYTES,
                ):
                    yield ImportSource(f"{name}/{source.name}", source.read, label_path=source.name)
            except SourceRejected as exc:
                rejected.append((name, str(exc)))
            continue

        def read(content: Path | UploadedFile = content) -> bytes:
            size = content.stat().st_size if isinstance(content, Path) else content.size
            if size and size > max_file:
                raise SourceRejected(f"file is larger than the limit of {max_file:,} bytes")
            if isinstance(content, Path):
                return content.read_bytes()
            content.seek(0)
            return content.read()

        yield ImportSource(name, read)


def sources_from_uploads(files: Iterable[UploadedFile], rejected: list) -> Iterator[ImportSource]:
    return sources_from_files(((upload.name or "upload", upload) for upload in files), rejected)


class UploadTooLarge(Exception):
    """The request carries more bytes than one upload may (`ANNOTATOR_MAX_UPLOAD_BYTES`)."""


def upload_size_check(content_length: str | int | None) -> None:
    """Before the body is read: UploadTooLarge when the declared size passes the limit."""
    limit = settings.ANNOTATOR_MAX_UPLOAD_BYTES
    try:
        size = int(content_length or 0)
    except ValueError:
        size = 0
    if size > limit:
        raise UploadTooLarge(
            f"The upload is {size / 1e6:,.0f} MB; one upload may carry at most "
            f"{limit / 1e6:,.0f} MB. Split it into several."
        )


def uploads_import(
    *, project: Project, files: list[UploadedFile], labels_as: LabelsAs, user
) -> ImportReport | Job:
    """Import uploaded files: a report when they were imported in this request, or the
    queued import job for zips and big batches. QuotaExceeded when the user's storage quota
    is used up or they have too many heavy jobs."""
    left = storage_check(user)
    if not import_runs_inline(files):
        return import_stage(project=project, files=files, labels_as=labels_as, user=user)
    rejected: list[tuple[str, str]] = []
    report = items_import(
        project=project,
        sources=sources_from_uploads(files, rejected),
        labels_as=labels_as,
        annotator=user,
        max_batch_pixels=settings.ANNOTATOR_MAX_BATCH_PIXELS,
        storage_left=left,
    )
    report.rejected.extend(rejected)
    return report


def import_runs_inline(files: list[UploadedFile]) -> bool:
    """A few plain images import inside the request; zips and big batches run as a job."""
    return (
        len(files) <= settings.ANNOTATOR_INLINE_IMPORT_FILES
        and sum(upload.size or 0 for upload in files) <= settings.ANNOTATOR_INLINE_IMPORT_BYTES
        and not any((upload.name or "").lower().endswith(".zip") for upload in files)
    )


STAGING = "imports"  # the prefix of staged uploads in the artifacts storage


def import_stage(*, project: Project, files: list[UploadedFile], labels_as: LabelsAs, user) -> Job:
    """Copy the uploads to the staging area and queue an import job for them."""
    heavy_jobs_check(user)
    folder_name = uuid.uuid4().hex
    staged, total = [], 0
    for number, upload in enumerate(files):
        stored = f"{number:05d}"
        storage.artifacts().save(f"{STAGING}/{folder_name}/{stored}", upload)
        total += upload.size or 0
        staged.append({"name": (upload.name or "upload")[-300:], "file": stored})
    return job_request(
        project=project,
        kind=Job.Kind.IMPORT,
        reason=f"{len(staged)} file(s), {total / 1e6:,.1f} MB uploaded",
        requested_by=user,
        params={"folder": folder_name, "files": staged, "labels_as": labels_as},
    )


def import_run(job: Job) -> dict:
    """The import job: import the staged files, report progress per file, then delete them.
    The report (counts, and the first rejections and duplicates) is the job's metrics."""
    folder = f"{STAGING}/{job.params['folder']}"
    names = [f"{folder}/{f['file']}" for f in job.params["files"]]
    try:
        with storage.local_copies(names) as paths:
            files = [(f["name"], path) for f, path in zip(job.params["files"], paths, strict=True)]
            rejected: list[tuple[str, str]] = []
            report = items_import(
                project=job.project,
                sources=sources_from_files(files, rejected),
                labels_as=job.params.get("labels_as"),
                annotator=job.requested_by,
                progress=ProgressReporter(
                    job,
                    _count_files(files),
                    lambda done, total: f"Checked {done:,} of {total:,} files",
                ),
                max_batch_pixels=settings.ANNOTATOR_MAX_BATCH_PIXELS,
                storage_left=storage_left(job.requested_by),
            )
        report.rejected.extend(rejected)
        job.message = report.summary()
        return report.as_dict(limit=IMPORT_REPORT_ROWS)
    finally:
        storage.delete_prefix(folder)


IMPORT_REPORT_ROWS = 1000  # rejected and duplicate files listed in a job's report


def _count_files(files: list[tuple[str, Path]]) -> int:
    """How many files the import will check (zip members counted from the directory)."""
    total = 0
    for name, path in files:
        if name.lower().endswith(".zip"):
            try:
                with zipfile.ZipFile(path) as archive:
                    total += sum(1 for info in archive.infolist() if not info.is_dir())
            except (zipfile.BadZipFile, OSError):
                total += 1
        else:
            total += 1
    return total


STAGING_GRACE_S = 3600  # a folder younger than this may be one whose job is being queued


def import_staging_cleanup(*, now: float | None = None) -> int:
    """Delete staged uploads no queued or running import job will read (their job finished,
    or its worker was killed before the job's own clean-up). Returns how many folders."""
    artifacts = storage.artifacts()
    try:
        folders, _ = artifacts.listdir(STAGING)
    except FileNotFoundError:
        return 0
    now = time.time() if now is None else now
    active = {
        params.get("folder")
        for params in Job.objects.filter(
            kind=Job.Kind.IMPORT, status__in=(Job.Status.QUEUED, Job.Status.RUNNING)
        ).values_list("params", flat=True)
    }
    removed = 0
    for folder in folders:
        if folder in active:
            continue
        prefix = f"{STAGING}/{folder}"
        _, files = artifacts.listdir(prefix)
        # A folder's age is its newest file's (a bucket has no folders to date).
        times = [artifacts.get_modified_time(f"{prefix}/{name}").timestamp() for name in files]
        if not times or now - max(times) > STAGING_GRACE_S:
            storage.delete_prefix(prefix)
            removed += 1
    return removed
