"""Export downloads over HTTP (page and API): the file is written by the export service into a
temporary file, then streamed from disk, so the server's memory stays flat for any size."""

import tempfile

from django.http import FileResponse, Http404, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404

from core import storage
from core.models import Job, Project
from core.services.exports import (
    EXPORT_FORMATS,
    export_filename,
    export_job_name,
    export_write,
)


def export_download(
    *,
    project: Project,
    fmt: str,
    min_confidence: float | None,
    val_fraction: float | None,
    audited: bool = False,
) -> FileResponse:
    """An attachment response with the export; raises ExportError for bad options."""
    folder = tempfile.TemporaryDirectory(prefix="annotator-export-")
    name = export_filename(project=project, fmt=fmt)
    try:
        summary = export_write(
            project=project,
            fmt=fmt,
            path=f"{folder.name}/{name}",
            min_confidence=min_confidence,
            audited=audited,
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
        handle, as_attachment=True, filename=filename, content_type=EXPORT_FORMATS[fmt].content_type
    )
    response["X-Content-Type-Options"] = "nosniff"
    return response


def export_job_file(*, project: Project, job_id: int) -> HttpResponseBase:
    """The file a finished export job of `project` wrote, as a download (page and API);
    404 when there is no such job or its file is gone. From a bucket, a redirect to a link
    signed for a few minutes that downloads as an attachment (the web server streams
    nothing); from a local folder, the file itself."""
    job = get_object_or_404(
        Job, pk=job_id, project=project, kind=Job.Kind.EXPORT, status=Job.Status.SUCCEEDED
    )
    name = export_job_name(job)
    fmt = job.params["format"]
    filename = export_filename(project=project, fmt=fmt, job_id=job.pk)
    artifacts = storage.artifacts()
    if not artifacts.exists(name):
        raise Http404("The export file is gone; export again.")
    if storage.remote(artifacts):
        return HttpResponseRedirect(
            artifacts.url(
                name,
                parameters={
                    "ResponseContentDisposition": f'attachment; filename="{filename}"',
                    "ResponseContentType": EXPORT_FORMATS[fmt].content_type,
                },
            )
        )
    return attachment(artifacts.open(name, "rb"), filename=filename, fmt=fmt)
