"""Exports read back with the standard readers and compared with the database."""

import csv
import io
import json
import zipfile

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from PIL import Image

from core.models import Annotation, Item, LabelClass, ModelVersion, Prediction, SuggestionSource
from core.services.exports import export_rows, safe_folder, split_of
from core.services.imports import ImportSource, items_import
from core.services.queue import annotation_submit, item_lease_next
from tests.factories import UserFactory, project_with_members
from tests.images import rgb_png

pytestmark = pytest.mark.django_db


@pytest.fixture
def labeled_project():
    """8 images: 4 labeled (one by two annotators who disagree, one changed answer), 4 not;
    a current model predicting the unlabeled ones with confidences 0.5, 0.7, 0.9, 0.99."""
    project, admin, (ann1, ann2) = project_with_members(
        classes=("cat", "dog/wolf"), annotators=2, annotators_per_item=2
    )
    items_import(
        project=project,
        sources=[ImportSource(f"img{i}.png", lambda i=i: rgb_png(seed=i)) for i in range(8)],
    )
    cat, dog = LabelClass.objects.filter(project=project).order_by("order")
    items = list(Item.objects.filter(project=project).order_by("pk"))

    def answer(user, item, label_class):
        lease = item_lease_next(project=project, user=user).lease
        assert lease.item_id == item.pk, "queue order is the random key; tests pin it below"
        annotation_submit(item=item, user=user, label_class=label_class)

    for rank, item in enumerate(items):
        Item.objects.filter(pk=item.pk).update(random_key=rank / 10)
    answer(ann1, items[0], cat)
    answer(ann2, items[0], dog)  # a tie: the most recent answer (dog) wins
    answer(ann1, items[1], dog)
    answer(ann2, items[1], dog)
    answer(ann1, items[2], dog)
    annotation_submit(item=items[2], user=ann1, label_class=cat)  # changed: cat is current
    answer(ann2, items[2], cat)  # ann2's turn on items[2] (ann1 already answered it)
    answer(ann2, items[3], cat)
    version = ModelVersion.objects.create(
        project=project, number=1, class_ids=[cat.pk, dog.pk], labels_count=4
    )
    for item, confidence in zip(items[4:], (0.5, 0.7, 0.9, 0.99), strict=True):
        Prediction.objects.create(
            item=item,
            model_version=version,
            probabilities=[confidence, 1 - confidence],
            predicted_class=cat,
            confidence=confidence,
            acquisition_score=0,
            source=SuggestionSource.MODEL,
        )
    project.current_model_version = version
    project.save()
    return project, items, cat, dog, (ann1, ann2)


def export(project, fmt, tmp_path, *options):
    out = tmp_path / f"export.{fmt}"
    stdout = io.StringIO()
    call_command(
        "export_labels", str(project.pk), "--format", fmt, "--out", str(out), "--json",
        *options, stdout=stdout,
    )  # fmt: skip
    return out, json.loads(stdout.getvalue())


def test_rows_follow_the_labels_in_the_database(labeled_project):
    project, items, cat, dog, (ann1, ann2) = labeled_project
    rows = {r.item_id: r for r in export_rows(project=project)}

    assert sorted(rows) == [i.pk for i in items[:4]]  # unlabeled items are not exported
    assert rows[items[0].pk].label == "dog/wolf"  # tie → most recent
    assert rows[items[0].pk].annotators == sorted([ann1.username, ann2.username])
    assert rows[items[1].pk].label == "dog/wolf"
    assert rows[items[2].pk].label == "cat"  # the changed answer counts, not its history
    assert Annotation.objects.filter(item=items[2], is_current=False).count() == 1
    assert rows[items[3].pk].label == "cat" and rows[items[3].pk].source == "human"
    latest = Annotation.objects.filter(item=items[0], is_current=True).latest("id").created_at
    assert rows[items[0].pk].labeled_at == latest.isoformat()


def test_pseudo_labels_above_the_confidence_only(labeled_project):
    project, items, *_ = labeled_project
    rows = list(export_rows(project=project, min_confidence=0.9))
    pseudo = [r for r in rows if r.source == "pseudo"]

    assert [r.item_id for r in pseudo] == [items[6].pk, items[7].pk]
    assert [r.confidence for r in pseudo] == [0.9, 0.99]
    assert {r.model_version for r in pseudo} == {1} and all(not r.annotators for r in pseudo)
    assert len(rows) == 6


def test_csv_and_jsonl_read_back(labeled_project, tmp_path):
    project, items, *_ = labeled_project
    expected = {r.item_id: r for r in export_rows(project=project, min_confidence=0.7)}

    out, summary = export(project, "csv", tmp_path, "--include-pseudo-labels", "0.7")
    with open(out, newline="") as f:
        table = list(csv.DictReader(f))
    assert summary == {**summary, "rows": 7, "human": 4, "pseudo": 3, "format": "csv"}
    assert [int(r["item_id"]) for r in table] == sorted(expected)
    for r in table:
        row = expected[int(r["item_id"])]
        assert r["label"] == row.label and r["file_name"] == row.file_name
        assert r["annotators"] == ";".join(row.annotators) and r["source"] == row.source
        assert r["confidence"] == ("" if row.confidence is None else str(row.confidence))

    out, _ = export(project, "jsonl", tmp_path, "--include-pseudo-labels", "0.7")
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["item_id"] for line in lines] == sorted(expected)
    assert lines[0]["annotators"] == expected[lines[0]["item_id"]].annotators
    assert {line["source"] for line in lines} == {"human", "pseudo"}


def test_coco_json_reads_back(labeled_project, tmp_path):
    project, items, cat, dog, _ = labeled_project
    out, summary = export(project, "coco", tmp_path)
    data = json.loads(out.read_text())

    assert summary["rows"] == 4
    assert data["categories"] == [{"id": cat.pk, "name": "cat"}, {"id": dog.pk, "name": "dog/wolf"}]
    assert [i["id"] for i in data["images"]] == [i.pk for i in items[:4]]
    assert data["images"][0] == {
        "id": items[0].pk,
        "file_name": "img0.png",
        "width": items[0].width,
        "height": items[0].height,
    }
    by_image = {a["image_id"]: a["category_id"] for a in data["annotations"]}
    assert by_image == {
        items[0].pk: dog.pk,
        items[1].pk: dog.pk,
        items[2].pk: cat.pk,
        items[3].pk: cat.pk,
    }


def test_imagefolder_zip_holds_the_images_in_class_folders(labeled_project, tmp_path):
    project, items, *_ = labeled_project
    out, _ = export(project, "imagefolder", tmp_path, "--split", "0.5")
    with zipfile.ZipFile(out) as zf:
        names = sorted(zf.namelist())
        image = Image.open(io.BytesIO(zf.read(names[0])))
        image.load()
    expected = sorted(
        f"{split_of(i.content_hash, 0.5)}/{folder}/{i.pk}.png"
        for i, folder in zip(items[:4], ("dog_wolf", "dog_wolf", "cat", "cat"), strict=True)
    )
    assert names == expected  # "dog/wolf" cannot make a folder named "wolf" inside "dog"
    assert image.size == (16, 16)
    assert {n.split("/")[0] for n in names} <= {"train", "val"}


def test_parquet_reads_back_with_pyarrow_and_datasets(labeled_project, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    project, items, *_ = labeled_project
    out, _ = export(project, "parquet", tmp_path, "--include-pseudo-labels", "0.95")
    table = pq.read_table(out).to_pylist()

    assert [r["item_id"] for r in table] == [i.pk for i in items[:4]] + [items[7].pk]
    assert [r["label_name"] for r in table] == ["dog/wolf", "dog/wolf", "cat", "cat", "cat"]
    assert [r["label"] for r in table] == [1, 1, 0, 0, 0]
    stored = items[0].image.open("rb").read()
    assert table[0]["image"]["bytes"] == stored and table[4]["source"] == "pseudo"

    datasets = pytest.importorskip("datasets", reason="`datasets` not installed")
    loaded = datasets.load_dataset("parquet", data_files=str(out), split="train")
    assert loaded.features["label"].names == ["cat", "dog/wolf"]
    assert loaded[0]["image"].size == (16, 16) and loaded[0]["label"] == 1


def test_split_is_stable_and_close_to_the_fraction():
    hashes = [f"{i * 2654435761 % 2**32:08x}" + "0" * 56 for i in range(2000)]
    val = sum(split_of(h, 0.2) == "val" for h in hashes)
    assert 0.17 < val / 2000 < 0.23
    assert [split_of(h, 0.2) for h in hashes] == [split_of(h, 0.2) for h in hashes]
    assert split_of(hashes[0], None) == ""


def test_bad_options_and_unknown_projects_are_refused(labeled_project, tmp_path):
    project, *_ = labeled_project
    with pytest.raises(CommandError, match="between 0 and 1"):
        export(project, "csv", tmp_path, "--split", "1.5")
    with pytest.raises(CommandError, match="No project with id"):
        call_command("export_labels", "999999", "--format", "csv", "--out", str(tmp_path / "x"))
    assert not list(tmp_path.glob("*.partial"))


def test_class_names_become_safe_folder_names():
    assert safe_folder("../etc") == "_etc"
    assert safe_folder("dog/wolf") == "dog_wolf"
    assert safe_folder("...") == "_"
    assert safe_folder("Eiffel Tower") == "Eiffel Tower"


def test_admins_download_from_the_page_and_the_api(labeled_project, client):
    project, *_ = labeled_project
    client.force_login(project.memberships.get(role="admin").user)

    page = client.get(
        reverse("core:project_export", args=[project.pk]),
        {"format": "jsonl", "include_pseudo_labels": "0.9"},
    )
    assert page.status_code == 200 and page["Content-Type"] == "application/x-ndjson"
    assert page["Content-Disposition"].startswith("attachment")
    assert page["X-Content-Type-Options"] == "nosniff"
    assert len(b"".join(page.streaming_content).splitlines()) == 6

    api = client.get(f"/api/projects/{project.pk}/export/csv/", {"split": "0.2"})
    assert api.status_code == 200 and api["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(api.streaming_content).decode())))
    assert len(rows) == 4 and {r["split"] for r in rows} <= {"train", "val"}

    assert client.get(f"/api/projects/{project.pk}/export/xml/").status_code == 400
    detail = client.get(reverse("core:project_detail", args=[project.pk]))
    assert b'id="export"' in detail.content


def test_annotators_cannot_export_and_strangers_get_404(labeled_project, client):
    project, *_, (annotator, _) = labeled_project
    url = reverse("core:project_export", args=[project.pk])
    client.force_login(annotator)
    assert client.get(url, {"format": "csv"}).status_code == 403
    assert client.get(f"/api/projects/{project.pk}/export/csv/").status_code == 403
    client.force_login(UserFactory())
    assert client.get(url, {"format": "csv"}).status_code == 404
    assert client.get(f"/api/projects/{project.pk}/export/csv/").status_code == 404


def test_image_formats_export_in_the_background_with_a_download_link(labeled_project, client):
    from core.models import Job
    from core.services.jobs import job_execute, job_runners

    project, *_ = labeled_project
    client.force_login(project.memberships.get(role="admin").user)
    url = reverse("core:project_export", args=[project.pk])

    response = client.get(url, {"format": "imagefolder"}, follow=True)

    job = Job.objects.get(project=project, kind=Job.Kind.EXPORT)
    assert f"Export queued (job #{job.pk})".encode() in response.content
    again = client.get(url, {"format": "csv", "split": "0.2"}, follow=False)
    assert again.status_code == 200  # csv is small: streamed at once, not queued
    refused = client.get(url, {"format": "parquet"}, follow=True)
    assert b"is waiting to run" in refused.content  # two exports must not coalesce

    assert job_execute(job_id=job.pk, runners=job_runners()) == Job.Status.SUCCEEDED
    job.refresh_from_db()
    assert job.metrics["rows"] == 4 and job.progress == 1.0
    download = reverse("core:export_file", args=[project.pk, job.pk])
    assert (
        download.encode() in client.get(reverse("core:project_detail", args=[project.pk])).content
    )
    file = client.get(download)
    assert file.status_code == 200 and file["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(b"".join(file.streaming_content))) as zf:
        assert len(zf.namelist()) == 4

    annotator = project.memberships.filter(role="annotator").first().user
    client.force_login(annotator)
    assert client.get(download).status_code == 403


@pytest.mark.parametrize("prefix", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_cells_a_spreadsheet_would_evaluate_are_neutralised(labeled_project, tmp_path, prefix):
    project, items, cat, _, _ = labeled_project
    LabelClass.objects.filter(pk=cat.pk).update(name=f'{prefix}HYPERLINK("http://x")')
    Item.objects.filter(pk=items[2].pk).update(original_name=f"{prefix}cmd|' /C calc'!A0")
    out, _ = export(project, "csv", tmp_path)

    rows = list(csv.DictReader(out.open(newline="")))
    row = next(r for r in rows if r["item_id"] == str(items[2].pk))
    assert row["label"] == f'\'{prefix}HYPERLINK("http://x")'
    assert row["file_name"] == f"'{prefix}cmd|' /C calc'!A0"
    for cell in (c for r in rows for c in r.values()):
        assert not cell.startswith(("=", "+", "@", "\t", "\r")), cell
    # Numbers are not text: a negative number would be kept, and ids/sizes stay plain.
    assert row["width"] == "16" and row["item_id"].isdigit()


def test_the_api_sends_image_formats_to_a_job_as_the_page_does_and_serves_its_file(
    labeled_project,
):
    from rest_framework.test import APIClient

    from core.models import Job
    from core.services.jobs import job_execute, job_runners

    project, *_ = labeled_project
    client = APIClient()
    client.force_authenticate(project.memberships.get(role="admin").user)
    url = f"/api/projects/{project.pk}/export/imagefolder/"

    queued = client.get(url)

    assert queued.status_code == 202 and queued.json()["kind"] == "export"
    assert queued.json()["download_url"] is None
    assert client.get(f"/api/projects/{project.pk}/export/parquet/").status_code == 409
    assert client.get(f"/api/projects/{project.pk}/export/csv/").status_code == 200  # small
    job_execute(job_id=queued.json()["id"], runners=job_runners())
    (listed,) = [j for j in client.get(f"/api/projects/{project.pk}/jobs/").json()["results"]
                 if j["kind"] == "export"]  # fmt: skip
    assert listed["download_url"] == f"/api/projects/{project.pk}/jobs/{listed['id']}/file/"
    file = client.get(listed["download_url"])
    assert file.status_code == 200 and file["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(b"".join(file.streaming_content))) as zf:
        assert len(zf.namelist()) == 4
    annotator = project.memberships.filter(role="annotator").first().user
    client.force_authenticate(annotator)
    assert client.get(listed["download_url"]).status_code == 403
    assert Job.objects.filter(kind=Job.Kind.EXPORT).count() == 1


def test_exports_read_stored_images_by_name_and_refuse_any_other_path(labeled_project):
    from django.core.exceptions import SuspiciousFileOperation

    from core import storage

    project, *_ = labeled_project
    item = Item.objects.filter(project=project).first()
    open_stored = storage.opener()
    with open_stored(item.image.name) as f:
        assert f.read() == item.image.open("rb").read()
    for name in ("../settings.py", "/etc/passwd", "a/../../x.png", "a\\..\\x.png"):
        with pytest.raises(SuspiciousFileOperation):
            open_stored(name)
