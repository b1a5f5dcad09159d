"""Big imports run as jobs; quotas on stored bytes, heavy jobs and upload size; the pixel
budget of one import (SECURITY.md rows 11 and 12, issue #19's "any account can exhaust the
server")."""

import os
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from core.models import Item, Job
from core.services.imports import ImportSource, items_import
from core.services.uploads import STAGING_GRACE_S, import_staging_cleanup
from tests.core.upload_helpers import api, run, upload_zip
from tests.factories import UserFactory, project_with_members
from tests.images import rgb_png

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


def test_a_zip_upload_returns_at_once_with_a_job_that_imports_it_and_removes_the_upload(
    settings,
):
    project, admin, _ = project_with_members()
    response = api(admin).post(
        f"/api/projects/{project.pk}/items/",
        {"files": [upload_zip()], "labels_as": "ground-truth"},
        format="multipart",
    )

    assert response.status_code == 202, response.content
    assert response.json()["kind"] == "import" and response.json()["status"] == "queued"
    assert Item.objects.filter(project=project).count() == 0  # nothing imported yet
    staged = list((settings.ANNOTATOR_ARTIFACTS_DIR / "imports").iterdir())
    assert len(staged) == 1

    job = run(response.json()["id"])

    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.metrics["imported"] == 3 and job.metrics["rejected_count"] == 1
    assert job.metrics["rejected"][0]["file"] == "pets.zip/notes.txt"
    assert job.message == "Imported 3, 0 duplicates skipped, 1 rejected"
    assert job.progress == 1.0
    items = Item.objects.filter(project=project)
    assert {i.ground_truth.name for i in items} == {"cat"}
    assert all(i.imported_by == admin and i.stored_bytes > 0 for i in items)
    assert not staged[0].exists()
    assert Job.objects.filter(project=project, kind=Job.Kind.EMBED).exists()


def test_a_few_images_still_import_in_the_request():
    project, admin, _ = project_with_members()
    files = [SimpleUploadedFile(f"{i}.png", rgb_png(i), "image/png") for i in range(3)]
    response = api(admin).post(
        f"/api/projects/{project.pk}/items/", {"files": files}, format="multipart"
    )
    assert response.status_code == 201
    assert response.json()["imported"] == 3 and response.json()["rejected_count"] == 0
    assert not Job.objects.filter(kind=Job.Kind.IMPORT).exists()


def test_more_files_than_the_inline_limit_become_a_job(settings):
    settings.ANNOTATOR_INLINE_IMPORT_FILES = 2
    project, admin, _ = project_with_members()
    files = [SimpleUploadedFile(f"{i}.png", rgb_png(i), "image/png") for i in range(3)]
    response = api(admin).post(
        f"/api/projects/{project.pk}/items/", {"files": files}, format="multipart"
    )
    assert response.status_code == 202
    assert run(response.json()["id"]).metrics["imported"] == 3


def test_import_jobs_queue_one_behind_the_other_instead_of_merging():
    project, admin, _ = project_with_members()
    client = api(admin)
    url = f"/api/projects/{project.pk}/items/"
    first = client.post(url, {"files": [upload_zip(seed=0)]}, format="multipart").json()
    second = client.post(url, {"files": [upload_zip(seed=10)]}, format="multipart").json()

    assert first["id"] != second["id"]
    assert run(first["id"]).metrics["imported"] == 3
    assert run(second["id"]).metrics["imported"] == 3
    assert Item.objects.filter(project=project).count() == 6


def test_the_import_page_follows_the_job_and_then_shows_its_report(client):
    project, admin, _ = project_with_members()
    client.force_login(admin)
    response = client.post(
        reverse("core:item_import", args=[project.pk]), {"files": [upload_zip()]}, **HTMX
    )
    job = Job.objects.get(project=project, kind=Job.Kind.IMPORT)
    body = response.content.decode()
    poll_url = reverse("core:import_job", args=[project.pk, job.pk])
    assert f'hx-get="{poll_url}"' in body and 'hx-trigger="every 1s"' in body

    run(job.pk)
    body = client.get(poll_url, **HTMX).content.decode()

    assert "hx-trigger" not in body  # finished: polling stops
    assert "<strong>3</strong> imported" in body and "pets.zip/notes.txt" in body


def test_annotators_cannot_see_import_jobs(client):
    project, admin, (annotator,) = project_with_members()
    api(admin).post(f"/api/projects/{project.pk}/items/", {"files": [upload_zip()]})
    job = Job.objects.get(kind=Job.Kind.IMPORT)
    client.force_login(annotator)
    assert client.get(reverse("core:import_job", args=[project.pk, job.pk])).status_code == 403
    client.force_login(UserFactory())
    assert client.get(reverse("core:import_job", args=[project.pk, job.pk])).status_code == 404


def test_an_upload_bigger_than_one_request_may_carry_is_refused_before_reading(settings):
    settings.ANNOTATOR_MAX_UPLOAD_BYTES = 1000
    project, admin, _ = project_with_members()
    response = api(admin).post(
        f"/api/projects/{project.pk}/items/", {"files": [upload_zip()]}, format="multipart"
    )
    assert response.status_code == 413
    assert "one upload may carry at most" in response.json()["detail"]
    assert not (settings.ANNOTATOR_ARTIFACTS_DIR / "imports").exists()


def test_one_imports_pixel_budget_rejects_the_rest_unread():
    project, _, _ = project_with_members()
    read = []

    def source(i):
        return ImportSource(f"{i}.png", lambda: read.append(i) or rgb_png(i, size=32))

    report = items_import(
        project=project, sources=[source(i) for i in range(5)], max_batch_pixels=2 * 32 * 32
    )

    assert len(report.imported) == 2
    assert read == [0, 1]
    assert [name for name, _ in report.rejected] == ["2.png", "3.png", "4.png"]
    assert "decoded as many pixels as one import may" in report.rejected[0][1]


def test_staged_uploads_of_finished_or_killed_jobs_are_cleaned_up(settings):
    project, admin, _ = project_with_members()
    api(admin).post(f"/api/projects/{project.pk}/items/", {"files": [upload_zip()]})
    staging = settings.ANNOTATOR_ARTIFACTS_DIR / "imports"
    waiting = next(staging.iterdir())
    orphan, young = staging / "0123abcd", staging / "fedc3210"
    for folder in (orphan, young):
        folder.mkdir()
        (folder / "00000").write_bytes(b"staged")
    old = time.time() - STAGING_GRACE_S - 10
    for folder in (waiting, orphan):
        for file in folder.iterdir():
            os.utime(file, (old, old))

    assert import_staging_cleanup() == 1

    assert waiting.exists() and young.exists() and not orphan.exists()


def test_api_404_for_a_path_that_matches_no_url_is_json():
    project, admin, _ = project_with_members()
    response = api(admin).get("/api/projects/not-a-number/items/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}


def test_a_corrupt_zip_is_one_rejection_and_the_other_files_still_import():
    project, admin, _ = project_with_members()
    response = api(admin).post(
        f"/api/projects/{project.pk}/items/",
        {
            "files": [
                SimpleUploadedFile("broken.zip", b"PK\x03\x04 not really a zip", "application/zip"),
                upload_zip(),
            ]
        },
        format="multipart",
    )
    job = run(response.json()["id"])
    assert job.status == Job.Status.SUCCEEDED
    assert job.metrics["imported"] == 3
    rejected = {row["file"]: row["reason"] for row in job.metrics["rejected"]}
    assert rejected["broken.zip"].startswith("not a valid zip file")


def test_a_queued_import_says_it_waits_for_a_worker(client):
    project, admin, _ = project_with_members()
    api(admin).post(f"/api/projects/{project.pk}/items/", {"files": [upload_zip()]})
    job = Job.objects.get(kind=Job.Kind.IMPORT)
    Job.objects.create(project=project, kind=Job.Kind.TRAIN, status=Job.Status.RUNNING)
    client.force_login(admin)
    body = client.get(reverse("core:import_job", args=[project.pk, job.pk]), **HTMX)
    assert "Waiting for a free worker (1 job running)." in body.content.decode()
