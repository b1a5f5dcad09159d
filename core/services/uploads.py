"""Turn uploaded files (images and zips) into import sources, for the page and the API."""

from collections.abc import Iterable, Iterator

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from core.services.imports import ImportSource, SourceRejected, sources_from_zip


def sources_from_uploads(files: Iterable[UploadedFile], rejected: list) -> Iterator[ImportSource]:
    """Each upload is an image or a zip of them; zips that cannot be opened go to `rejected`."""
    max_file = settings.ANNOTATOR_MAX_FILE_BYTES
    for upload in files:
        name = upload.name or "upload"
        if name.lower().endswith(".zip"):
            try:
                for source in sources_from_zip(
                    upload,
                    max_file_bytes=max_file,
                    max_total_bytes=settings.ANNOTATOR_MAX_ZIP_BYTES,
                ):
                    yield ImportSource(f"{name}/{source.name}", source.read, label_path=source.name)
            except SourceRejected as exc:
                rejected.append((name, str(exc)))
            continue

        def read(upload: UploadedFile = upload) -> bytes:
            if upload.size and upload.size > max_file:
                raise SourceRejected(f"file is larger than the limit of {max_file:,} bytes")
            upload.seek(0)
            return upload.read()

        yield ImportSource(name, read)
