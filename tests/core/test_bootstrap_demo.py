import pytest
from django.core.management import call_command

from core.models import AUTO_ENCODER, Job, Project
from core.services.embeddings import project_encoder_candidates
from tests.images import rgb_png

pytestmark = pytest.mark.django_db


def test_demo_project_uses_auto_and_starts_with_the_installed_encoder(tmp_path, monkeypatch):
    for name in ("cat", "dog"):
        (tmp_path / "demo" / name).mkdir(parents=True)
        for i in range(2):
            (tmp_path / "demo" / name / f"{i}.png").write_bytes(rgb_png(i + 10 * len(name)))
    monkeypatch.setenv("DEMO_DATA", str(tmp_path / "demo"))
    monkeypatch.setenv("ANNOTATOR_ADMIN_PASSWORD", "pw")

    call_command("bootstrap_demo", stdout=open("/dev/null", "w"))

    project = Project.objects.get(name="Demo: demo")
    assert project.encoder_name == AUTO_ENCODER
    # Offline, DINOv2 cannot load; the PyPI-installed encoder comes before raw pixels.
    candidates = project_encoder_candidates(project=project)
    assert candidates.index("tf_efficientnet_lite0.in1k") < candidates.index("pixels")
    assert Job.objects.filter(project=project, kind=Job.Kind.EMBED).exists()
