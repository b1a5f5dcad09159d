"""Tests of core/services/projects.py, on tiny data; jobs run through `job_execute`."""

import pytest
from rest_framework.test import APIClient

from tests.core.loop_helpers import loop_project

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_encoder_cache")]


def test_an_encoder_setting_is_a_name_never_a_server_path():
    project, admin, *_ = loop_project(images_per_class=1)
    client = APIClient()
    client.force_authenticate(admin)
    url = f"/api/projects/{project.pk}/"
    for path in ("/etc/passwd", "../../var/secret-key.txt", "hf-hub:../x", "C:\\weights.pt"):
        response = client.patch(url, {"encoder_name": path}, format="json")
        assert response.status_code == 400 and "encoder_name" in response.json(), path
    for name in ("pixels:64", "tf_efficientnet_lite0.in1k", "hf-hub:timm/vit_small_patch16_224"):
        response = client.patch(url, {"encoder_name": name}, format="json")
        assert response.status_code == 200, (name, response.content)
    response = client.patch(url, {"encoder_name": "ssl:job-999999"}, format="json")
    assert response.status_code == 400
    assert "No finished pretraining job" in response.json()["encoder_name"][0]
