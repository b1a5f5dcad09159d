"""python manage.py export_labels PROJECT_ID --format FORMAT --out PATH [options]"""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from core.models import Project
from core.services.exports import FORMATS, ExportError, export_write


class Command(BaseCommand):
    help = (
        "Export a project's labels (human labels; optionally confident pseudo-labels of the "
        "current model) as CSV, JSONL, COCO-style JSON, an ImageFolder zip or Parquet."
    )

    def add_arguments(self, parser):
        parser.add_argument("project_id", type=int)
        parser.add_argument("--format", choices=FORMATS, required=True)
        parser.add_argument("--out", type=Path, required=True, help="file to write")
        parser.add_argument(
            "--include-pseudo-labels",
            type=float,
            metavar="MIN_CONFIDENCE",
            help="also export the current model's predictions for unlabeled images at or "
            "above this confidence, marked as pseudo-labels",
        )
        parser.add_argument(
            "--audited-pseudo-labels",
            action="store_true",
            help="also export the current model's pseudo-labels under its per-class thresholds "
            "(the project's pseudo-label precision), with the audit in the summary and the COCO "
            "metadata",
        )
        parser.add_argument(
            "--split",
            type=float,
            metavar="VAL_FRACTION",
            help="assign each image to train or val (by its content hash, stable)",
        )
        parser.add_argument("--json", action="store_true", help="print the summary as JSON")

    def handle(self, *args, project_id, **options):
        project = Project.objects.filter(pk=project_id).first()
        if project is None:
            raise CommandError(f"No project with id {project_id}.")
        try:
            if options["audited_pseudo_labels"] and options["include_pseudo_labels"] is not None:
                raise ExportError("Choose one pseudo-label rule, not both.")
            summary = export_write(
                project=project,
                fmt=options["format"],
                path=options["out"],
                min_confidence=options["include_pseudo_labels"],
                audited=options["audited_pseudo_labels"],
                val_fraction=options["split"],
            )
        except ExportError as error:
            raise CommandError(str(error)) from error
        if options["json"]:
            self.stdout.write(json.dumps(summary.as_dict()))
        else:
            self.stdout.write(
                f"{summary.rows} rows ({summary.human} labeled, {summary.pseudo} pseudo-labels) "
                f"written to {summary.path} as {summary.format}: {summary.bytes:,} bytes in "
                f"{summary.seconds:.2f} s."
            )
