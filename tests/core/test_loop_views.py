"""The loop's pages and endpoints: jobs, notices, train and pretrain buttons, permissions."""

import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

from core.models import Job, Project
from tests.factories import UserFactory, project_with_members

pytestmark = pytest.mark.django_db


def test_project_page_lists_jobs_and_explains_missing_weights(client):
    project, admin, _ = project_with_members()
    Job.objects.create(project=project, kind=Job.Kind.EMBED, status="failed", message="boom")
    Project.objects.filter(pk=project.pk).update(
        encoder_notice={
            "model": "vit_small_patch14_dinov2.lvd142m",
            "tried": ["/weights/vit_small_patch14_dinov2.lvd142m: not found"],
            "hint": "Copy model.safetensors to $ANNOTATOR_WEIGHTS_DIR/...",
            "fallback": "pixels",
        }
    )
    client.force_login(admin)
    body = client.get(reverse("core:project_detail", args=[project.pk])).content.decode()
    assert 'id="jobs"' in body and "Embed images" in body and "boom" in body
    assert "vit_small_patch14_dinov2.lvd142m" in body and "/weights/vit_small" in body
    assert "Pretrain an in-domain encoder" in body
    assert f'data-ws-path="/ws/projects/{project.pk}/"' in body


def test_encoder_panel_says_what_is_in_use_and_renders_alone_for_live_refresh(client):
    project, admin, _ = project_with_members(encoder_name="auto")
    Project.objects.filter(pk=project.pk).update(
        encoder_used="tf_efficientnet_lite0.in1k",
        encoder_notice={
            "model": "vit_small_patch14_dinov2.lvd142m",
            "tried": ["Hugging Face hub: huggingface.co:443 cannot be reached"],
            "hint": "…",
            "fallback": "tf_efficientnet_lite0.in1k",
            "auto": True,
        },
    )
    client.force_login(admin)
    url = reverse("core:project_detail", args=[project.pk])

    panel = client.get(url, {"partial": "encoder"}).content.decode()

    assert panel.lstrip().startswith('<section class="card" id="encoder-panel"')
    assert "<h1>" not in panel  # the fragment only
    assert "embedded with <code>tf_efficientnet_lite0.in1k</code>" in panel
    assert "setting <code>auto</code>" in panel and "cannot be reached" in panel
    assert "Encoder weights missing" not in panel  # auto fell back as designed: no alarm
    page = client.get(url).content.decode()
    assert "In use now: tf_efficientnet_lite0.in1k." in page  # beside the setting


def test_admin_requests_training_and_pretraining_from_the_page(client):
    project, admin, _ = project_with_members()
    client.force_login(admin)
    client.post(reverse("core:project_train", args=[project.pk]))
    client.post(reverse("core:project_train", args=[project.pk]))
    client.post(reverse("core:project_pretrain", args=[project.pk]))
    train = Job.objects.get(project=project, kind=Job.Kind.TRAIN)
    assert train.requests == 2 and train.requested_by == admin
    assert Job.objects.filter(project=project, kind=Job.Kind.PRETRAIN).count() == 1


def test_annotators_cannot_start_jobs_and_outsiders_get_404(client):
    project, _, (annotator,) = project_with_members()
    client.force_login(annotator)
    assert client.post(reverse("core:project_train", args=[project.pk])).status_code == 403
    assert client.post(f"/api/projects/{project.pk}/train/").status_code == 403
    assert client.get(f"/api/projects/{project.pk}/jobs/").status_code == 200
    client.force_login(UserFactory())
    for url in (
        reverse("core:project_train", args=[project.pk]),
        reverse("core:project_pretrain", args=[project.pk]),
        f"/api/projects/{project.pk}/train/",
        f"/api/projects/{project.pk}/pretrain/",
    ):
        assert client.post(url).status_code == 404, url
    assert client.get(f"/api/projects/{project.pk}/jobs/").status_code == 404
    assert not Job.objects.filter(project=project).exists()


def test_api_train_returns_the_queued_job(client):
    project, admin, _ = project_with_members()
    client.force_login(admin)
    response = client.post(f"/api/projects/{project.pk}/train/")
    assert response.status_code == 202
    assert response.json()["kind"] == "train" and response.json()["status"] == "queued"
    listed = client.get(f"/api/projects/{project.pk}/jobs/").json()["results"]
    assert [j["id"] for j in listed] == [response.json()["id"]]


def test_label_page_listens_for_model_versions(client):
    project, _, (annotator,) = project_with_members()
    client.force_login(annotator)
    body = client.get(reverse("core:label_session", args=[project.pk])).content.decode()
    assert 'id="model-status"' in body and "js/live.js" in body


def test_web_code_never_imports_torch():
    """Views, APIs and the services they call enqueue jobs; only the worker imports torch."""
    code = (
        "import django, sys; django.setup(); "
        "import core.views, core.apis, core.consumers, core.tasks, annotator.urls; "
        "assert 'torch' not in sys.modules, 'torch was imported by the web code'"
    )
    root = Path(__file__).resolve().parents[2]
    env = {"DJANGO_SETTINGS_MODULE": "annotator.settings.test", "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", code], cwd=root, env=env, check=True, timeout=60)


def test_members_see_a_short_failure_without_server_paths_or_traceback(client):
    from rest_framework.test import APIClient

    from core.services.jobs import job_execute

    project, admin, (annotator,) = project_with_members()
    job = Job.objects.create(project=project, kind=Job.Kind.TRAIN)

    def crash(job):
        raise FileNotFoundError(2, "No such file", "/srv/annotator/var/embeddings/secret.f16")

    job_execute(job_id=job.pk, runners={Job.Kind.TRAIN: crash})
    job.refresh_from_db()
    assert "/srv/annotator" in job.error  # kept for the server's staff
    assert job.message.endswith("'…/secret.f16'") and "/srv" not in job.message
    Job.objects.filter(pk=job.pk).update(metrics={"encoder_path": "/srv/a/b/encoder.pt"})
    api = APIClient()
    api.force_authenticate(annotator)
    (listed,) = api.get(f"/api/projects/{project.pk}/jobs/").json()["results"]
    assert "error" not in listed and "/srv" not in str(listed)
    assert listed["metrics"] == {"encoder_path": "…/encoder.pt"}
    client.force_login(annotator)
    page = client.get(reverse("core:project_detail", args=[project.pk])).content.decode()
    assert "Traceback" not in page and "/srv/annotator" not in page
