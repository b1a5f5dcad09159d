"""Helpers of the upload and quota tests: an API client, zips of images, running a job."""

import io
import zipfile

from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from core.models import Job
from core.services.jobs import job_execute, job_runners
from tests.images import rgb_png


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def zip_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def upload_zip(name="pets.zip", n=3, seed=0) -> SimpleUploadedFile:
    files = {f"cat/{i}.png": rgb_png(seed + i) for i in range(n)}
    files["notes.txt"] = b"not an image"
    return SimpleUploadedFile(name, zip_of(files), content_type="application/zip")


def run(job_id: int) -> Job:
    job_execute(job_id=job_id, runners=job_runners())
    return Job.objects.get(pk=job_id)
