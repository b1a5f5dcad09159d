"""Export downloads over HTTP (page and API): the file is written by the export service into a
temporary file, then streamed from disk, so the server's memory stays flat for any size."""

import tempfile

from django.http import FileResponse
from django.utils.text import slugify

from core.models import Project
from core.services.exports import EXTENSIONS, export_write

CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson",
    "coco": "application/json",
    "imagefolder": "application/zip",
    "parquet": "application/vnd.apache.parquet",
}


def export_download(
    *, project: Project, fmt: str, min_confidence: float | None, val_fraction: float | None
) -> FileResponse:
    """An attachment response with the export; raises ExportError for bad options."""
    folder = tempfile.TemporaryDirectory(prefix="annotator-export-")
    name = f"{slugify(project.name) or 'project'}-{project.pk}-labels.{EXTENSIONS[fmt]}"
    try:
        summary = export_write(
            project=project,
            fmt=fmt,
            path=f"{folder.name}/{name}",
            min_confidence=min_confidence,
            val_fraction=val_fraction,
        )
        handle = open(summary.path, "rb")  # noqa: SIM115 - FileResponse closes it
    finally:
        # On POSIX the open handle keeps the data readable; the name is gone at once, so an
        # interrupted download leaves nothing behind.
        folder.cleanup()
    response = attachment(handle, filename=name, fmt=fmt)
    response["X-Export-Rows"] = str(summary.rows)
    return response


def attachment(handle, *, filename: str, fmt: str) -> FileResponse:
    """An export file as a download: never rendered by the browser."""
    response = FileResponse(
        handle, as_attachment=True, filename=filename, content_type=CONTENT_TYPES[fmt]
    )
    response["X-Content-Type-Options"] = "nosniff"
    return response
