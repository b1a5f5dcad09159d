"""Object storage for real: the app on an S3 API server (moto, started by the `s3_storage`
fixture on 127.0.0.1). Import, embed, train, export and "more like this" run against the
bucket, and nothing is written under MEDIA_ROOT or the local artifacts folder; a second
machine (another embeddings cache) trains on the vectors the first one published."""

import io
import shutil
import zipfile

import pytest
import requests
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from core.models import Item, Job, ModelVersion
from core.selectors.browse import similar_item_ids
from core.selectors.common import embedding_store
from core.services.exports import export_request
from core.services.loop import training_request
from tests.core.loop_helpers import colour_image, run_jobs
from tests.core.upload_helpers import api, zip_of
from tests.factories import project_with_members

pytestmark = pytest.mark.django_db


def files_under(path) -> list[str]:
    return [str(p) for p in path.rglob("*") if p.is_file()] if path.exists() else []


def test_import_embed_train_export_and_similar_run_on_the_bucket(s3_storage):
    server, env = s3_storage
    bucket = env["AWS_STORAGE_BUCKET_NAME"]
    project, admin, _ = project_with_members(classes=("red", "blue"), encoder_name="pixels")
    images = {
        f"{name}/{i}.png": colour_image(c, 100 * c + i)
        for c, name in enumerate(["red", "blue"])
        for i in range(8)
    }

    # Import: a zip is staged in the bucket and imported by a job.
    upload = SimpleUploadedFile("colours.zip", zip_of(images), content_type="application/zip")
    response = api(admin).post(
        f"/api/projects/{project.pk}/items/", {"files": [upload], "labels_as": "annotations"}
    )
    assert response.status_code == 202, response.content
    assert any(key.startswith("artifacts/imports/") for key in server.keys(bucket))
    run_jobs(project, Job.Kind.IMPORT)
    assert Item.objects.filter(project=project).count() == 16
    keys = server.keys(bucket)
    assert not any(key.startswith("artifacts/imports/") for key in keys)  # staging cleaned
    item = Item.objects.filter(project=project).first()
    assert f"media/{item.image.name}" in keys and f"media/{item.thumbnail.name}" in keys

    # The image view streams it from the bucket, with the same headers as from disk.
    client = Client()
    client.force_login(admin)
    image = client.get(f"/projects/{project.pk}/items/{item.pk}/image/")
    assert image.status_code == 200
    assert b"".join(image.streaming_content) == item.image.open("rb").read()
    assert image["Content-Security-Policy"] == "default-src 'none'; sandbox"

    # Embed: the vectors are published to the bucket as content-named segments.
    run_jobs(project, Job.Kind.EMBED)
    project.refresh_from_db()
    prefix = f"artifacts/embeddings/project-{project.pk}/"
    embedded = [key for key in server.keys(bucket) if key.startswith(prefix)]
    assert any(key.endswith("/manifest.json") for key in embedded)
    assert any("/segments/" in key for key in embedded)

    # Another machine: an empty local cache. Training pulls the vectors from the bucket.
    shutil.rmtree(settings.ANNOTATOR_EMBEDDINGS_DIR)
    training_request(project=project, reason="test")
    (train,) = run_jobs(project, Job.Kind.TRAIN)
    assert train.status == Job.Status.SUCCEEDED, train.error
    version = ModelVersion.objects.get(project=project)
    assert version.predictions.count() == 16
    assert len(embedding_store(project=project)) == 16

    # "More like this" on yet another empty cache: reds are nearest a red.
    shutil.rmtree(settings.ANNOTATOR_EMBEDDINGS_DIR)
    red = Item.objects.get(project=project, original_name="colours.zip/red/0.png")
    nearest = similar_item_ids(project=project, item_id=red.pk, limit=5)
    names = Item.objects.filter(pk__in=nearest).values_list("original_name", flat=True)
    assert all("/red/" in name for name in names)

    # Export (with the images, read from the bucket): the file is an object; the download
    # link redirects to a signed URL.
    job = export_request(project=project, fmt="imagefolder", requested_by=admin)
    (export,) = run_jobs(project, Job.Kind.EXPORT)
    assert export.status == Job.Status.SUCCEEDED, export.error
    assert f"artifacts/exports/project-{project.pk}/job-{job.pk}.zip" in server.keys(bucket)
    link = client.get(f"/projects/{project.pk}/exports/{job.pk}/")
    assert link.status_code == 302 and link["Location"].startswith(server.endpoint)
    assert "X-Amz-Signature=" in link["Location"] or "Signature=" in link["Location"]
    download = requests.get(link["Location"], timeout=10)
    assert download.status_code == 200
    assert "attachment" in download.headers["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(download.content)) as exported:
        assert sorted(exported.namelist()) == sorted(
            f"{name.split('/')[0]}/{Item.objects.get(original_name=f'colours.zip/{name}').pk}.png"
            for name in images
        )
        assert exported.read(f"red/{red.pk}.png") == red.image.open("rb").read()

    # Nothing on this machine's disks but the embeddings cache.
    assert files_under(settings.MEDIA_ROOT) == []
    assert files_under(settings.ANNOTATOR_ARTIFACTS_DIR) == []


def test_a_cache_that_went_another_way_is_rebuilt_from_the_bucket(s3_storage, tmp_path):
    from core import storage
    from models_ml.store import EmbeddingStore

    mirror = storage.BucketMirror("embeddings/test")
    first = EmbeddingStore(tmp_path / "a", "k", 2, mirror=mirror)
    first.append([1, 2], [[1, 0], [0, 1]])
    # Machine b wrote rows of its own that never reached the bucket, then catches up.
    second = EmbeddingStore(tmp_path / "b", "k", 2)
    second.append([9], [[5, 5]])
    second = EmbeddingStore(tmp_path / "b", "k", 2, mirror=mirror)
    assert second.ids().tolist() == [1, 2]
    # Both machines append; the bucket ends with every row, each once.
    first.append([3], [[1, 1]])
    second.append([4], [[2, 2]])
    third = EmbeddingStore(tmp_path / "c", "k", 2, mirror=mirror)
    assert sorted(third.ids().tolist()) == [1, 2, 3, 4]
    assert third.get([4]).tolist() == [[2, 2]]


def test_an_encoder_pretrained_on_one_machine_embeds_on_another(s3_storage):
    from core.services.loop import pretrain_request
    from tests.core.loop_helpers import loop_project

    server, env = s3_storage
    project, admin, _, _ = loop_project(images_per_class=4)
    pretrain_request(project=project, requested_by=admin, max_steps=2, batch_size=8, budget_s=60)
    (job,) = run_jobs(project, Job.Kind.PRETRAIN)
    assert job.status == Job.Status.SUCCEEDED, job.error
    shared = f"artifacts/encoders/project-{project.pk}/job-{job.pk}/encoder.pt"
    assert shared in server.keys(env["AWS_STORAGE_BUCKET_NAME"])

    # The other machine has neither the checkpoint nor any vectors.
    shutil.rmtree(settings.ANNOTATOR_ENCODERS_DIR)
    shutil.rmtree(settings.ANNOTATOR_EMBEDDINGS_DIR, ignore_errors=True)
    from core.services.embeddings import encoder_cache

    encoder_cache.clear()
    (embed,) = run_jobs(project, Job.Kind.EMBED)
    assert embed.status == Job.Status.SUCCEEDED, embed.error
    assert embed.metrics["embedded"] == 8
    assert embed.metrics["encoder"] == f"ssl:job-{job.pk}"
