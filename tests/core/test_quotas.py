"""Tests of core/services/quotas.py: what one account may make the server do."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from core.models import Item, Job
from tests.core.upload_helpers import api, run, upload_zip
from tests.factories import project_with_members
from tests.images import rgb_png

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


def test_storage_quota_refuses_uploads_once_used_and_stops_an_import_that_reaches_it(settings):
    project, admin, _ = project_with_members()
    client = api(admin)
    url = f"/api/projects/{project.pk}/items/"
    one = SimpleUploadedFile("0.png", rgb_png(0), "image/png")
    assert client.post(url, {"files": [one]}, format="multipart").status_code == 201
    used = Item.objects.get().stored_bytes
    settings.ANNOTATOR_USER_STORAGE_BYTES = used + used // 2  # room for about half an image

    files = [SimpleUploadedFile(f"{i}.png", rgb_png(i), "image/png") for i in range(1, 4)]
    response = client.post(url, {"files": files}, format="multipart")

    assert response.status_code == 200  # nothing new stored
    assert response.json()["imported"] == 0
    reasons = {row["reason"] for row in response.json()["rejected"]}
    assert reasons == {"not imported: your storage quota is used up"}

    settings.ANNOTATOR_USER_STORAGE_BYTES = used  # now exactly used up: refused at the door
    response = client.post(url, {"files": [files[0]]}, format="multipart")
    assert response.status_code == 429
    assert "Storage quota" in response.json()["detail"]


def test_staff_are_not_held_to_quotas(settings):
    settings.ANNOTATOR_USER_STORAGE_BYTES = 1
    project, admin, _ = project_with_members()
    admin.is_staff = True
    admin.save()
    response = api(admin).post(
        f"/api/projects/{project.pk}/items/",
        {"files": [SimpleUploadedFile("0.png", rgb_png(0), "image/png")]},
        format="multipart",
    )
    assert response.status_code == 201


def test_heavy_jobs_per_user_are_limited_across_imports_exports_and_pretraining(settings, client):
    settings.ANNOTATOR_USER_ACTIVE_JOBS = 2
    project, admin, _ = project_with_members()
    api_client = api(admin)
    url = f"/api/projects/{project.pk}/items/"
    for seed in (0, 10):
        assert api_client.post(url, {"files": [upload_zip(seed=seed)]}).status_code == 202

    refused = api_client.post(url, {"files": [upload_zip(seed=20)]})
    assert refused.status_code == 429
    assert "at most 2 at once" in refused.json()["detail"]
    assert api_client.post(f"/api/projects/{project.pk}/pretrain/").status_code == 429
    client.force_login(admin)
    page = client.post(reverse("core:project_pretrain", args=[project.pk]), follow=True)
    assert "at most 2 at once" in page.content.decode()
    assert (
        len(list((settings.ANNOTATOR_ARTIFACTS_DIR / "imports").iterdir())) == 2
    )  # the refused one: none

    run(Job.objects.filter(kind=Job.Kind.IMPORT).order_by("id").first().pk)
    assert api_client.post(url, {"files": [upload_zip(seed=20)]}).status_code == 202
