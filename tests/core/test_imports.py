import io
import zipfile
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from core.models import Annotation, AnnotationSource, Item
from core.services.imports import items_import, sources_from_folder, sources_from_zip
from tests.factories import project_with_members
from tests.images import png_header_only, rgb_jpeg, rgb_png

pytestmark = pytest.mark.django_db


def write(root: Path, name: str, data: bytes) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_folder_with_good_and_bad_files_imports_the_good_and_explains_the_bad(tmp_path):
    project, _, _ = project_with_members()
    write(tmp_path, "a.png", rgb_png(1))
    write(tmp_path, "b.jpg", rgb_jpeg(2))
    write(tmp_path, "notes.txt", b"hello")
    write(tmp_path, "broken.png", rgb_png(3)[:-60])
    write(tmp_path, "huge.png", png_header_only(40_000, 40_000))
    write(tmp_path, ".DS_Store", b"junk")

    report = items_import(
        project=project, sources=sources_from_folder(tmp_path, max_file_bytes=10**7)
    )

    assert len(report.imported) == 2
    reasons = dict(report.rejected)
    assert set(reasons) == {"notes.txt", "broken.png", "huge.png"}
    assert "not an image" in reasons["notes.txt"]
    assert "truncated" in reasons["broken.png"]
    assert "decompression bomb" in reasons["huge.png"]
    stored = Item.objects.get(original_name="a.png")
    assert stored.image.name.endswith(f"{stored.content_hash}.png")  # server-chosen name
    assert Path(stored.image.path).exists() and Path(stored.thumbnail.path).exists()


def test_oversized_file_is_rejected_before_reading(tmp_path):
    project, _, _ = project_with_members()
    write(tmp_path, "big.png", rgb_png(1, size=64))
    report = items_import(
        project=project, sources=sources_from_folder(tmp_path, max_file_bytes=100)
    )
    assert report.rejected == [("big.png", "file is larger than the limit of 100 bytes")]


def test_duplicates_are_reported_not_added(tmp_path):
    project, _, _ = project_with_members()
    write(tmp_path, "one.png", rgb_png(7))
    write(tmp_path, "copy/one-again.png", rgb_png(7))
    report = items_import(
        project=project, sources=sources_from_folder(tmp_path, max_file_bytes=10**7)
    )
    assert len(report.imported) == 1
    assert report.duplicates == [("one.png", report.imported[0])]  # sorted: copy/ comes first
    assert Item.objects.filter(project=project).count() == 1


def test_imagefolder_split_and_ground_truth(tmp_path):
    project, _, _ = project_with_members(classes=())
    write(tmp_path, "train/cat/1.png", rgb_png(1))
    write(tmp_path, "train/dog/2.png", rgb_png(2))
    write(tmp_path, "test/cat/3.png", rgb_png(3))
    report = items_import(
        project=project,
        sources=sources_from_folder(tmp_path, max_file_bytes=10**7),
        labels_as="ground-truth",
    )
    assert sorted(report.created_classes) == ["cat", "dog"]
    test_item = Item.objects.get(original_name="test/cat/3.png")
    assert test_item.split == "test" and test_item.ground_truth.name == "cat"
    assert Item.objects.get(original_name="train/dog/2.png").ground_truth.name == "dog"
    assert not Annotation.objects.exists()  # ground truth is never an answer


def test_labels_as_annotations_marks_items_done(tmp_path):
    project, admin, _ = project_with_members(classes=("cat",))
    write(tmp_path, "cat/1.png", rgb_png(1))
    items_import(
        project=project,
        sources=sources_from_folder(tmp_path, max_file_bytes=10**7),
        labels_as="annotations",
        annotator=admin,
    )
    annotation = Annotation.objects.get()
    assert annotation.source == AnnotationSource.IMPORT and annotation.annotator == admin
    assert Item.objects.get().is_done


def make_zip(members: dict[str, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    buffer.seek(0)
    return buffer


def test_zip_path_traversal_is_rejected_and_nothing_is_written_outside(tmp_path, settings):
    project, _, _ = project_with_members()
    archive = make_zip(
        {"../../evil.png": rgb_png(1), "/abs.png": rgb_png(2), "ok/fine.png": rgb_png(3)}
    )
    before = set(tmp_path.parent.rglob("*.png"))
    report = items_import(
        project=project,
        sources=sources_from_zip(archive, max_file_bytes=10**7, max_total_bytes=10**8),
    )
    assert len(report.imported) == 1
    reasons = dict(report.rejected)
    assert "unsafe path" in reasons["../../evil.png"] and "unsafe path" in reasons["/abs.png"]
    new_files = set(tmp_path.parent.rglob("*.png")) - before
    assert all(str(p).startswith(str(settings.MEDIA_ROOT)) for p in new_files)


def test_zip_stops_at_the_decompressed_size_cap():
    project, _, _ = project_with_members()
    members = {f"{i}.png": rgb_png(i, size=32) for i in range(6)}
    size = len(members["0.png"])
    archive = make_zip(members)
    report = items_import(
        project=project,
        sources=sources_from_zip(archive, max_file_bytes=10**7, max_total_bytes=int(size * 2.5)),
    )
    assert len(report.imported) == 2
    assert len(report.rejected) == 4
    assert all("size limit" in reason for _, reason in report.rejected)


def test_import_command_prints_summary(tmp_path, capsys):
    project, _, _ = project_with_members()
    write(tmp_path, "a.png", rgb_png(1))
    write(tmp_path, "bad.txt", b"nope")
    call_command("import_images", project.pk, str(tmp_path))
    out = capsys.readouterr().out
    assert "1 imported, 0 duplicates, 1 rejected." in out
    assert "rejected bad.txt: not an image" in out


def test_import_command_fails_when_nothing_imports(tmp_path):
    project, _, _ = project_with_members()
    write(tmp_path, "bad.txt", b"nope")
    with pytest.raises(CommandError, match="Nothing could be imported"):
        call_command("import_images", project.pk, str(tmp_path))


def test_import_command_reads_zip_with_imagefolder_tree(tmp_path):
    project, _, _ = project_with_members(classes=())
    archive = tmp_path / "data.zip"
    archive.write_bytes(
        make_zip({"train/cat/1.png": rgb_png(1), "test/dog/2.png": rgb_png(2)}).read()
    )
    call_command("import_images", project.pk, str(archive), "--labels-as", "ground-truth")
    assert sorted(Item.objects.values_list("split", "ground_truth__name")) == [
        ("test", "dog"),
        ("train", "cat"),
    ]


def test_an_unexpected_failure_on_one_file_is_its_rejection_not_the_batchs(tmp_path, monkeypatch):
    from core.services import imports

    project, _, _ = project_with_members()
    for index, name in enumerate(("a.png", "b.png", "c.png")):
        write(tmp_path, name, rgb_png(index))
    real = imports.normalise_image

    def failing_on_b(data, **kwargs):
        if data == rgb_png(1):
            raise RuntimeError("disk on fire")
        return real(data, **kwargs)

    monkeypatch.setattr(imports, "normalise_image", failing_on_b)
    report = items_import(
        project=project, sources=sources_from_folder(tmp_path, max_file_bytes=10**7)
    )

    assert sorted(Item.objects.values_list("original_name", flat=True)) == ["a.png", "c.png"]
    (rejected,) = report.rejected
    assert rejected[0] == "b.png" and "server log" in rejected[1] and "fire" not in rejected[1]
    assert project.jobs.filter(kind="embed").exists()
