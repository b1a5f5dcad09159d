"""The rows of docs/security.md that no other test shows exactly as the row states them.

Each test names its row. docs/security.md maps all 32 rows to the tests that show them,
and tests/test_security_doc.py keeps that table honest.
"""

import io
import socket

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image
from rest_framework.test import APIClient

from core.imaging import normalise_image
from core.models import Item
from tests.factories import ItemFactory, project_with_members
from tests.images import encode, png_header_only, rgb_jpeg, rgb_png

pytestmark = pytest.mark.django_db


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def upload(project, user, *files, **fields):
    return api(user).post(
        f"/api/projects/{project.pk}/items/", {"files": list(files), **fields}, format="multipart"
    )


def test_row_01_a_24_kb_header_declaring_20000x10000_is_refused_before_any_decoding(
    monkeypatch,
):
    data = png_header_only(20_000, 10_000)
    assert len(data) < 24_000
    decoded = []
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(self) or None)
    project, admin, _ = project_with_members()

    response = upload(project, admin, SimpleUploadedFile("bomb.png", data, "image/png"))

    assert response.status_code == 200 and response.json()["imported"] == 0
    reason = response.json()["rejected"][0]["reason"]
    assert "decompression bomb" in reason or "too large" in reason
    assert decoded == []


def test_row_02_between_pillows_warning_and_its_error_our_own_cap_refuses(settings):
    """10000 x 10000 = 100 Mpx: past Pillow's 89 Mpx warning, short of its 179 Mpx error."""
    assert Image.MAX_IMAGE_PIXELS < 100_000_000 < 2 * Image.MAX_IMAGE_PIXELS
    project, admin, _ = project_with_members()
    data = png_header_only(10_000, 10_000)
    response = upload(project, admin, SimpleUploadedFile("big.png", data, "image/png"))
    reason = response.json()["rejected"][0]["reason"]
    # Refused, not merely warned about: Pillow's warning is turned into this rejection.
    assert reason.startswith("decompression bomb: Image size (100000000 pixels)")
    assert not Item.objects.exists()


def test_row_03_half_a_jpeg_is_refused_and_never_stored():
    project, admin, _ = project_with_members()
    whole = rgb_jpeg(1, size=256)
    response = upload(
        project, admin, SimpleUploadedFile("half.jpg", whole[: len(whole) // 2], "image/jpeg")
    )
    assert response.json()["rejected"][0]["reason"].startswith("corrupt or truncated image")
    assert not Item.objects.exists()


def test_row_04_an_svg_with_a_script_is_not_an_allowed_format():
    svg = (
        b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>'
    )
    project, admin, _ = project_with_members()
    response = upload(project, admin, SimpleUploadedFile("x.svg", svg, "image/svg+xml"))
    assert response.json()["rejected"] == [
        {"file": "x.svg", "reason": "not an image file Pillow can identify"}
    ]


def test_row_05_a_jpeg_named_html_with_script_in_exif_is_stored_and_served_as_a_jpeg(client):
    image = Image.new("RGB", (32, 32), (200, 10, 10))
    exif = Image.Exif()
    exif[0x010E] = "<script>alert(document.cookie)</script>"  # ImageDescription
    data = encode(image, "JPEG", exif=exif.tobytes())
    project, admin, _ = project_with_members()

    upload(project, admin, SimpleUploadedFile("x.html", data, "image/jpeg"))

    item = Item.objects.get()
    assert item.image.name.endswith(f"{item.content_hash}.jpg")  # our name, our extension
    stored = item.image.read()
    assert b"<script>" not in stored  # re-encoded: the EXIF is gone
    client.force_login(admin)
    served = client.get(reverse("core:item_image", args=[project.pk, item.pk]))
    assert served["Content-Type"] == "image/jpeg"
    assert served["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in served["Content-Security-Policy"]


def test_row_06_html_appended_to_a_png_is_gone_after_re_encoding():
    polyglot = rgb_png(2) + b"<html><script>alert(1)</script></html>"
    image = normalise_image(polyglot, max_pixels=10**6)
    assert b"<script>" not in image.content and b"<html>" not in image.thumbnail
    assert image.content.endswith(b"IEND\xaeB`\x82")


def test_row_07_a_tiff_named_jpg_is_converted_by_what_it_is_not_what_it_is_called():
    tiff = encode(Image.new("RGB", (20, 10), (0, 128, 255)), "TIFF")
    project, admin, _ = project_with_members()
    upload(project, admin, SimpleUploadedFile("photo.jpg", tiff, "image/jpeg"))
    item = Item.objects.get()
    assert item.image.name.endswith(".png")  # lossless source, lossless copy
    assert Image.open(item.image).format == "PNG"


def test_row_09_an_animated_gif_becomes_its_first_frame():
    frames = [Image.new("P", (16, 16), colour) for colour in (1, 2, 3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=50)
    first = normalise_image(buffer.getvalue(), max_pixels=10**6)
    only = normalise_image(encode(frames[0], "GIF"), max_pixels=10**6)
    assert first.content_hash == only.content_hash
    assert Image.open(io.BytesIO(first.content)).mode == "RGB"


def test_row_12_too_many_files_or_too_big_a_form_field_is_a_400_not_a_500(settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 3
    project, admin, _ = project_with_members()
    files = [SimpleUploadedFile(f"{i}.png", rgb_png(i), "image/png") for i in range(4)]
    assert upload(project, admin, *files).status_code == 400

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000_000
    big_field = upload(project, admin, files[0], labels_as="x" * 3_000_000)
    assert big_field.status_code == 400
    assert not Item.objects.exists()


def test_row_15_unknown_filter_parameters_are_ignored_and_give_no_oracle():
    project, admin, _ = project_with_members()
    ItemFactory.create_batch(3, project=project)
    client = api(admin)
    url = f"/api/projects/{project.pk}/items/"
    everything = client.get(url).json()
    for probe in ("created_by__password__regex=^a", "created_by__password__regex=^zzz", "o=-x"):
        assert client.get(f"{url}?{probe}").json() == everything


@pytest.mark.parametrize(
    "path",
    [
        "/static../annotator/settings/base.py",
        "/static/../annotator/settings/base.py",
        "/static/..%2fannotator/settings/base.py",
        "/media../var/secret-key.txt",
        "/media/..%2f..%2fvar/secret-key.txt",
    ],
)
def test_row_31_dot_dot_after_static_or_media_is_a_404(client, path):
    response = client.get(path)
    assert response.status_code in (302, 404)  # 302: to the sign-in page, which lists nothing
    assert b"SECRET_KEY" not in response.content


def test_row_32_a_url_where_a_file_belongs_is_refused_without_connecting(monkeypatch):
    """The app fetches no user-given URL; a URL sent as the files field is a 400 and nothing
    connects anywhere (169.254.169.254 is the cloud metadata address)."""

    def no_connections(*args, **kwargs):
        raise AssertionError(f"the server tried to connect: {args}")

    monkeypatch.setattr(socket, "create_connection", no_connections)
    monkeypatch.setattr(socket.socket, "connect", no_connections)
    project, admin, _ = project_with_members()
    for url in ("http://169.254.169.254/latest/meta-data/", "http://[::1]:6379/"):
        response = api(admin).post(
            f"/api/projects/{project.pk}/items/", {"files": url, "url": url}, format="multipart"
        )
        assert response.status_code == 400
        assert response.json() == {"files": ["Send one or more files in the 'files' field."]}


class _Payload:
    """Unpickling this runs code (it would append to RAN); weights_only refuses it."""

    def __reduce__(self):
        return (RAN.append, ("code ran",))


RAN: list[str] = []


def test_row_28_a_checkpoint_that_would_run_code_is_refused_unopened(tmp_path):
    import pickle

    import torch

    from models_ml.encoders import read_checkpoint

    path = tmp_path / "encoder.pt"
    torch.save({"format": "x", "evil": _Payload()}, path)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        read_checkpoint(path)
    assert RAN == []


def test_row_25_a_checkpoint_write_killed_halfway_leaves_the_previous_one_loadable(
    tmp_path, monkeypatch
):
    import torch

    from models_ml import ssl
    from models_ml.encoders import read_checkpoint

    path = tmp_path / "encoder.pt"
    ssl._atomic_save({"format": "v1", "weights": torch.ones(3)}, path)
    real_save = torch.save

    def dies_halfway(obj, target):
        real_save(obj, target)
        with open(target, "r+b") as partial:
            partial.truncate(20)  # what a kill mid-write leaves
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(ssl.torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        ssl._atomic_save({"format": "v2", "weights": torch.zeros(3)}, path)

    assert read_checkpoint(path)["format"] == "v1"  # the .tmp never replaced it


def test_row_14_an_annotator_cannot_make_themselves_admin_or_staff(client):
    from core.models import Membership, Role

    project, _, (annotator,) = project_with_members()
    client.force_login(annotator)
    url = reverse("core:project_member_set", args=[project.pk])
    assert client.post(url, {"username": annotator.username, "role": "admin"}).status_code == 403
    response = api(annotator).patch(
        f"/api/projects/{project.pk}/", {"role": "admin", "name": "mine"}, format="json"
    )
    assert response.status_code == 403
    assert Membership.objects.get(project=project, user=annotator).role == Role.ANNOTATOR
    # No endpoint edits accounts: is_staff can only be set in Django's admin, by staff.
    assert client.get("/admin/auth/user/").status_code == 302
    annotator.refresh_from_db()
    assert not annotator.is_staff and not annotator.is_superuser
