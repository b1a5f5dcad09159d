"""Exporting a project's labeled dataset: CSV, JSONL, COCO-style JSON, ImageFolder zip, Parquet.

`export_rows` walks the project's items in primary-key order, a chunk at a time, and yields one
row per labeled item: the human label (the consensus of the current answers, each weighed by
its annotator's measured accuracy, ties to the most recent: the rule training uses), or a
pseudo-label of the current model for an unlabeled item (with `audited`, under its per-class
thresholds; with `min_confidence`, at least that sure), marked as such with its model version
and confidence. Every writer consumes the rows as they come and writes to a file as it
goes, so memory stays flat however large the project (the Parquet writer holds one row group).

With `val_fraction`, each row gets a split, train or val, decided by the image's content hash:
stable across exports and independent of the order or of other items.
"""

import csv
import io
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import BinaryIO, NamedTuple

from django.utils.text import slugify

from core import storage
from core.models import (
    Annotation,
    Item,
    Job,
    ModelVersion,
    Prediction,
    Project,
    SuggestionSource,
)
from core.selectors.common import annotator_accuracy, consensus_class
from core.selectors.progress import pseudo_label_audit
from core.services.jobs import job_progress, job_request
from core.services.quotas import heavy_jobs_check
from core.stored_zip import StoredZipWriter

CHUNK = 2000
# A Parquet row group is held in memory until written: at most this many image bytes or rows.
PARQUET_GROUP_BYTES = 32 << 20
PARQUET_GROUP_ROWS = 2048
CSV_COLUMNS = (
    "item_id",
    "file_name",
    "image",
    "label",
    "source",
    "annotators",
    "labeled_at",
    "model_version",
    "confidence",
    "split",
    "width",
    "height",
)


class ExportError(Exception):
    """An export that cannot be made as asked; the message says why."""


class ExportRow(NamedTuple):
    """One exported image (a named tuple: 100,000 of them are made per export, and a
    frozen dataclass costs several times more to build)."""

    item_id: int
    file_name: str  # the name it was imported under
    image: str  # the stored file (server-chosen name)
    width: int
    height: int
    label: str
    label_class_id: int
    source: str  # "human" or "pseudo"
    annotators: list[str]
    labeled_at: str | None  # ISO time of the latest current answer
    model_version: int | None  # pseudo-labels: the version that predicted it
    confidence: float | None
    split: str  # "train" / "val" with a val fraction, else ""


@dataclass
class ExportSummary:
    format: str
    path: str
    rows: int = 0
    human: int = 0
    pseudo: int = 0
    bytes: int = 0
    seconds: float = 0.0
    pseudo_labels: dict | None = None  # with audited pseudo-labels: the rule and its audit

    def as_dict(self) -> dict:
        return asdict(self)


def split_of(content_hash: str, val_fraction: float | None) -> str:
    if not val_fraction:
        return ""
    return "val" if int(content_hash[:8], 16) / 0x1_0000_0000 < val_fraction else "train"


def audited_pseudo_label_rule(*, project: Project) -> dict:
    """What an export with audited pseudo-labels records: the model version, its per-class
    thresholds (for the project's target precision) and the audit of the pseudo-labels so far."""
    version = project.current_model_version
    names = dict(project.classes.values_list("pk", "name"))
    cuts = ((version.metrics or {}).get("pseudo_label_thresholds") or {}) if version else {}
    return {
        "rule": "per-class confidence thresholds for the target precision, on held-out labels",
        "model_version": version.number if version else None,
        "target_precision": project.pseudo_label_precision,
        "thresholds": {
            names.get(int(cls), cls): cut.get("threshold") for cls, cut in sorted(cuts.items())
        },
        "audit": pseudo_label_audit(project=project),
    }


def export_rows(
    *,
    project: Project,
    min_confidence: float | None = None,
    val_fraction: float | None = None,
    chunk: int = CHUNK,
    audited: bool = False,
) -> Iterator[ExportRow]:
    """One row per labeled item (and per pseudo-label), in item order. Pseudo-labels are the
    current model's predictions for unlabeled items: with `audited`, those at or above their
    class's threshold (Prediction.pseudo_labeled); with `min_confidence`, those that sure."""
    if val_fraction is not None and not 0 < val_fraction < 1:
        raise ExportError("The validation fraction must be between 0 and 1 (e.g. 0.2).")
    if min_confidence is not None and not 0 <= min_confidence <= 1:
        raise ExportError("The pseudo-label confidence must be between 0 and 1.")
    names = dict(project.classes.values_list("pk", "name"))
    accuracy: dict[int, float] | None = None  # annotators' measured accuracy, when needed
    version = project.current_model_version
    if version is not None and version.kind != ModelVersion.Kind.MODEL:
        version = None  # zero-shot and cold-start orders are not a trained model
    last = 0
    while True:
        items = list(
            Item.objects.filter(project=project, pk__gt=last)
            .order_by("pk")
            .values_list("pk", "original_name", "image", "width", "height", "content_hash")[:chunk]
        )
        if not items:
            return
        # The chunk is a range of item ids: the answers and predictions of its items are
        # asked for by range (an IN list of 2,000 ids cost Django more than the query).
        first, last = items[0][0], items[-1][0]
        answers: dict[int, list[tuple[int, str, datetime, int]]] = {}
        for item_id, class_id, username, created_at, annotator_id in (
            Annotation.objects.filter(
                item__project=project, item_id__gte=first, item_id__lte=last, is_current=True
            )
            .order_by("-id")
            .values_list(
                "item_id", "label_class_id", "annotator__username", "created_at", "annotator_id"
            )
        ):
            answers.setdefault(item_id, []).append((class_id, username, created_at, annotator_id))
        pseudo: dict[int, tuple[int, float]] = {}
        if version is not None and (audited or min_confidence is not None):
            predictions = Prediction.objects.filter(
                model_version=version, item_id__gte=first, item_id__lte=last
            )
            if audited:
                predictions = predictions.filter(pseudo_labeled=True)
            else:
                predictions = predictions.filter(
                    confidence__gte=min_confidence,
                    source=SuggestionSource.MODEL,
                    predicted_class__isnull=False,
                )
            pseudo = {
                item_id: (class_id, confidence)
                for item_id, class_id, confidence in predictions.values_list(
                    "item_id", "predicted_class_id", "confidence"
                )
            }
        for item_id, original, image, width, height, content_hash in items:
            if item_id in answers:
                given = answers[item_id]  # newest first
                class_id = given[0][0]
                if len(given) > 1:
                    if accuracy is None:  # measured once per export, on the first overlap
                        accuracy = annotator_accuracy(project=project)
                    class_id = consensus_class(
                        [(a, c) for c, _, _, a in given], accuracy=accuracy, n_classes=len(names)
                    )
                source, annotators = "human", sorted({u for _, u, _, _ in given})
                labeled_at, model_version, confidence = given[0][2].isoformat(), None, None
            elif item_id in pseudo:
                class_id, sure = pseudo[item_id]
                source, annotators = "pseudo", []
                labeled_at, model_version, confidence = None, version.number, round(sure, 4)
            else:
                continue
            yield ExportRow(
                item_id,
                original,
                image,
                width,
                height,
                names[class_id],
                class_id,
                source,
                annotators,
                labeled_at,
                model_version,
                confidence,
                split_of(content_hash, val_fraction),
            )


def _flat(row: ExportRow) -> dict:
    data = row._asdict()
    del data["label_class_id"]
    return data


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value):
    """A CSV cell no spreadsheet evaluates (OWASP CSV injection): text that starts with
    = + - @ tab or carriage return gets a leading ' (shown, not run). Numbers stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def write_csv(rows, out) -> None:
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
    writer = csv.writer(text)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        data = _flat(row)
        data["annotators"] = ";".join(data["annotators"])
        writer.writerow(["" if data[c] is None else spreadsheet_safe(data[c]) for c in CSV_COLUMNS])
    text.detach()


def write_jsonl(rows, out) -> None:
    for row in rows:
        out.write(json.dumps(_flat(row), ensure_ascii=False).encode() + b"\n")


def write_coco(
    rows_factory: Callable[[], Iterator[ExportRow]],
    out,
    project: Project,
    *,
    pseudo_labels: dict | None = None,
) -> None:
    """COCO-style classification JSON: images, categories and one annotation per image.
    Written in two passes over the rows, so neither list is ever held in memory."""
    categories = [
        {"id": pk, "name": name}
        for pk, name in project.classes.order_by("order", "pk").values_list("pk", "name")
    ]
    head = {
        "info": {
            "description": f"{project.name}: image classification labels",
            "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **({"pseudo_labels": pseudo_labels} if pseudo_labels else {}),
        },
        "categories": categories,
    }
    out.write(json.dumps(head, ensure_ascii=False)[:-1].encode() + b', "images": [')
    for index, row in enumerate(rows_factory()):
        image = {
            "id": row.item_id,
            "file_name": row.file_name,
            "width": row.width,
            "height": row.height,
        }
        out.write((b", " if index else b"") + json.dumps(image, ensure_ascii=False).encode())
    out.write(b'], "annotations": [')
    for index, row in enumerate(rows_factory()):
        annotation = {
            "id": row.item_id,
            "image_id": row.item_id,
            "category_id": row.label_class_id,
            "source": row.source,
            "annotators": row.annotators,
            "model_version": row.model_version,
            "confidence": row.confidence,
            "split": row.split,
        }
        out.write((b", " if index else b"") + json.dumps(annotation, ensure_ascii=False).encode())
    out.write(b"]}")


_UNSAFE = re.compile(r"[^\w\-. ]+")


def safe_folder(name: str) -> str:
    """A class name as a folder name: no separators, no leading dots, never empty."""
    cleaned = _UNSAFE.sub("_", name).strip(" .")
    return cleaned or "_"


def write_imagefolder(rows, out) -> None:
    """A zip of `[train|val/]<class>/<item id>.<ext>` with the stored images, stored as they
    are (already compressed: JPEG, PNG), through `StoredZipWriter`."""
    open_stored = storage.opener()
    folders: dict[str, str] = {}  # class name -> its folder name
    with StoredZipWriter(out) as archive:
        for row in rows:
            suffix = os.path.splitext(row.image)[1].lower() or ".png"
            folder = folders.get(row.label) or folders.setdefault(row.label, safe_folder(row.label))
            split = f"{row.split}/" if row.split else ""
            with open_stored(row.image) as source:
                archive.add(f"{split}{folder}/{row.item_id}{suffix}", source.read())


def write_parquet(rows, out, project: Project) -> None:
    """Parquet with `image` {bytes, path} and `label` (class index), plus the row's metadata.
    The schema carries the Hugging Face `datasets` features, so `load_dataset("parquet", ...)`
    gives an Image column and a ClassLabel with the class names."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    classes = list(project.classes.order_by("order", "pk").values_list("pk", "name"))
    index = {pk: i for i, (pk, _) in enumerate(classes)}
    features = {
        "image": {"_type": "Image"},
        "label": {"_type": "ClassLabel", "names": [name for _, name in classes]},
        "label_name": {"dtype": "string", "_type": "Value"},
        "item_id": {"dtype": "int64", "_type": "Value"},
        "file_name": {"dtype": "string", "_type": "Value"},
        "source": {"dtype": "string", "_type": "Value"},
        "annotators": {"feature": {"dtype": "string", "_type": "Value"}, "_type": "List"},
        "labeled_at": {"dtype": "string", "_type": "Value"},
        "model_version": {"dtype": "int64", "_type": "Value"},
        "confidence": {"dtype": "float64", "_type": "Value"},
        "split": {"dtype": "string", "_type": "Value"},
    }
    schema = pa.schema(
        [
            ("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
            ("label", pa.int64()),
            ("label_name", pa.string()),
            ("item_id", pa.int64()),
            ("file_name", pa.string()),
            ("source", pa.string()),
            ("annotators", pa.list_(pa.string())),
            ("labeled_at", pa.string()),
            ("model_version", pa.int64()),
            ("confidence", pa.float64()),
            ("split", pa.string()),
        ],
        metadata={"huggingface": json.dumps({"info": {"features": features}})},
    )
    with pq.ParquetWriter(out, schema) as writer:
        batch: list[ExportRow] = []
        images: list[dict] = []
        held = 0  # image bytes in `images`

        def flush() -> None:
            columns = {
                "image": images,
                "label": [index[row.label_class_id] for row in batch],
                "label_name": [row.label for row in batch],
                "item_id": [row.item_id for row in batch],
                "file_name": [row.file_name for row in batch],
                "source": [row.source for row in batch],
                "annotators": [row.annotators for row in batch],
                "labeled_at": [row.labeled_at for row in batch],
                "model_version": [row.model_version for row in batch],
                "confidence": [row.confidence for row in batch],
                "split": [row.split for row in batch],
            }
            writer.write_table(pa.Table.from_pydict(columns, schema=schema))
            batch.clear()
            images.clear()

        open_stored = storage.opener()
        for row in rows:
            with open_stored(row.image) as f:
                data = f.read()
            batch.append(row)
            images.append({"bytes": data, "path": row.image.rpartition("/")[2]})
            held += len(data)
            if held >= PARQUET_GROUP_BYTES or len(batch) >= PARQUET_GROUP_ROWS:
                flush()
                held = 0
        if batch:
            flush()


class _Counting:
    """Counts the rows (and their kind) flowing from `export_rows` into a writer, and reports
    progress every `every` rows."""

    def __init__(
        self, summary: ExportSummary, progress: Callable[[int], None] | None, every: int = CHUNK
    ):
        self.summary, self.progress, self.every = summary, progress, every

    def __call__(self, rows: Iterator[ExportRow]) -> Iterator[ExportRow]:
        for row in rows:
            self.summary.rows += 1
            if row.source == "human":
                self.summary.human += 1
            else:
                self.summary.pseudo += 1
            if self.progress and self.summary.rows % self.every == 0:
                self.progress(self.summary.rows)
            yield row


RowsFactory = Callable[[], Iterator[ExportRow]]


@dataclass(frozen=True)
class ExportFormat:
    """One export format: the single place it is declared. The page's and the API's choices,
    the file's extension and content type, whether the worker writes it and the benches all
    read `EXPORT_FORMATS`."""

    name: str
    label: str
    extension: str
    content_type: str
    # write(rows, count, out, project): `rows()` gives a fresh pass over the rows, `count`
    # wraps the pass whose rows are reported as progress.
    write: Callable[[RowsFactory, "_Counting", BinaryIO, Project], None]
    carries_images: bool = False  # big: always written by the worker, with a download link


def _write_coco(rows: RowsFactory, count, out, project: Project) -> None:
    passes = iter((count(rows()), rows()))  # two passes over the rows; the first is counted
    write_coco(lambda: next(passes), out, project, pseudo_labels=count.summary.pseudo_labels)


EXPORT_FORMATS: dict[str, ExportFormat] = {
    spec.name: spec
    for spec in [
        ExportFormat(
            "csv",
            "CSV",
            "csv",
            "text/csv; charset=utf-8",
            lambda rows, count, out, project: write_csv(count(rows()), out),
        ),
        ExportFormat(
            "jsonl",
            "JSON Lines",
            "jsonl",
            "application/x-ndjson",
            lambda rows, count, out, project: write_jsonl(count(rows()), out),
        ),
        ExportFormat("coco", "COCO-style JSON", "json", "application/json", _write_coco),
        ExportFormat(
            "imagefolder",
            "ImageFolder zip (with images)",
            "zip",
            "application/zip",
            lambda rows, count, out, project: write_imagefolder(count(rows()), out),
            carries_images=True,
        ),
        ExportFormat(
            "parquet",
            "Parquet (with images; Hugging Face datasets)",
            "parquet",
            "application/vnd.apache.parquet",
            lambda rows, count, out, project: write_parquet(count(rows()), out, project),
            carries_images=True,
        ),
    ]
}
FORMATS = tuple(EXPORT_FORMATS)


def export_write(
    *,
    project: Project,
    fmt: str,
    path: Path,
    min_confidence: float | None = None,
    val_fraction: float | None = None,
    progress: Callable[[int], None] | None = None,
    audited: bool = False,
) -> ExportSummary:
    """Write the export of `project` in `fmt` to `path` (replaced only when complete);
    `progress(rows_written)` is called as it goes."""
    if fmt not in FORMATS:
        raise ExportError(f"Unknown format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    started = time.perf_counter()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    summary = ExportSummary(format=fmt, path=str(path))
    if audited:
        summary.pseudo_labels = audited_pseudo_label_rule(project=project)
    count = _Counting(summary, progress)

    def rows() -> Iterator[ExportRow]:
        return export_rows(
            project=project,
            min_confidence=min_confidence,
            audited=audited,
            val_fraction=val_fraction,
        )

    try:
        with open(partial, "wb") as out:
            EXPORT_FORMATS[fmt].write(rows, count, out, project)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    summary.bytes = path.stat().st_size
    summary.seconds = round(time.perf_counter() - started, 3)
    return summary


# Formats that carry the images are written by the worker; the others too past this many rows.
INLINE_MAX_ROWS = 20_000


def export_in_background(*, project: Project, fmt: str) -> bool:
    """Whether an export should run as a job (with progress and a download link)."""
    if EXPORT_FORMATS[fmt].carries_images:
        return True
    labeled = Item.objects.filter(project=project).labeled()
    return labeled[INLINE_MAX_ROWS : INLINE_MAX_ROWS + 1].exists()


def export_request(
    *,
    project: Project,
    fmt: str,
    min_confidence: float | None = None,
    audited: bool = False,
    val_fraction: float | None = None,
    requested_by=None,
) -> Job:
    """Queue an export job. One may wait at a time (requests of a kind coalesce, and two
    exports with different options must not become one)."""
    if fmt not in FORMATS:
        raise ExportError(f"Unknown format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    heavy_jobs_check(requested_by)
    waiting = Job.objects.filter(project=project, kind=Job.Kind.EXPORT, status=Job.Status.QUEUED)
    if waiting.exists():
        raise ExportError(
            f"Export job #{waiting.first().pk} is waiting to run; ask again once it has started."
        )
    params = {
        "format": fmt,
        "min_confidence": min_confidence,
        "audited": audited,
        "val_fraction": val_fraction,
    }
    return job_request(
        project=project,
        kind=Job.Kind.EXPORT,
        reason=f"{fmt} export",
        requested_by=requested_by,
        params=params,
    )


def export_filename(*, project: Project, fmt: str, job_id: int | None = None) -> str:
    """The one name an export downloads as, from the page, the API or a job:
    `<project-slug>-<project id>-labels[-job<id>].<extension>`."""
    job = f"-job{job_id}" if job_id is not None else ""
    slug = slugify(project.name) or "project"
    return f"{slug}-{project.pk}-labels{job}.{EXPORT_FORMATS[fmt].extension}"


def export_job_name(job: Job) -> str:
    """The export job's file in the `artifacts` storage (core/storage.py): a name, never a
    server path, so any web server can hand it out and a bucket can hold it."""
    extension = EXPORT_FORMATS[job.params["format"]].extension
    return f"exports/project-{job.project_id}/job-{job.pk}.{extension}"


def export_run(job: Job) -> dict:
    """Job body: write the export file, reporting progress against the labeled items."""
    project = Project.objects.get(pk=job.project_id)
    params = job.params
    expected = max(1, Item.objects.filter(project=project).labeled().count())

    def progress(rows: int) -> None:
        job_progress(job=job, fraction=min(0.99, rows / expected), message=f"{rows} rows written")

    def write(path: Path) -> ExportSummary:
        return export_write(
            project=project,
            fmt=params["format"],
            path=path,
            min_confidence=params.get("min_confidence"),
            audited=bool(params.get("audited")),
            val_fraction=params.get("val_fraction"),
            progress=progress,
        )

    name = export_job_name(job)
    if not storage.remote():  # a local folder: write the file in place
        summary = write(Path(storage.artifacts().path(name)))
    else:  # a bucket: write it here, then upload it
        with tempfile.TemporaryDirectory(prefix="annotator-export-") as folder:
            summary = write(Path(folder) / PurePosixPath(name).name)
            storage.save(name, summary.path)
    job.message = f"{summary.rows} rows exported as {summary.format} ({summary.bytes:,} bytes)"
    metrics = summary.as_dict()
    metrics["file"] = Path(metrics.pop("path")).name  # downloaded by job id, never by path
    return metrics
