"""python manage.py import_images PROJECT_ID PATH [--labels-as ground-truth|annotations]"""

import json
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from core.models import Membership, Project, Role
from core.services.imports import SourceRejected, items_import, sources_from_path


class Command(BaseCommand):
    help = (
        "Import images from a folder, a zip or an ImageFolder tree (<class>/<file>, optionally "
        "under train/ and test/). Prints a summary; exits non-zero only if nothing was imported."
    )

    def add_arguments(self, parser):
        parser.add_argument("project_id", type=int)
        parser.add_argument("path", type=Path)
        parser.add_argument(
            "--labels-as",
            choices=["ground-truth", "annotations"],
            help="Use the class folder names as ground truth (evaluation only) or as annotations.",
        )
        parser.add_argument(
            "--annotator",
            help="Username the imported annotations are attributed to (default: a project admin).",
        )
        parser.add_argument("--json", action="store_true", help="Print the summary as JSON.")

    def handle(self, *args, project_id, path, labels_as, annotator, **options):
        project = Project.objects.filter(pk=project_id).first()
        if project is None:
            raise CommandError(f"No project with id {project_id}.")
        if not path.exists():
            raise CommandError(f"{path} does not exist.")
        user = self._annotator(project, annotator) if labels_as == "annotations" else None
        try:
            sources = sources_from_path(path)
        except SourceRejected as exc:
            raise CommandError(f"{path}: {exc}") from exc
        report = items_import(project=project, sources=sources, labels_as=labels_as, annotator=user)
        self._print(report, as_json=options["json"])
        if not report.imported and not report.duplicates:
            raise CommandError("Nothing could be imported.")

    def _annotator(self, project, username):
        users = get_user_model().objects
        if username:
            user = users.filter(username=username).first()
            if user is None:
                raise CommandError(f"No user named {username!r}.")
            return user
        admin = Membership.objects.filter(
            project=project, role__in=(Role.OWNER, Role.ADMIN)
        ).select_related("user")
        first = admin.order_by("id").first()
        if first is None:
            raise CommandError("The project has no admin; pass --annotator USERNAME.")
        return first.user

    def _print(self, report, *, as_json: bool) -> None:
        if as_json:
            self.stdout.write(json_dumps(report.as_dict()))
            return
        self.stdout.write(
            f"{len(report.imported)} imported, {len(report.duplicates)} duplicates, "
            f"{len(report.rejected)} rejected."
        )
        if report.created_classes:
            self.stdout.write(f"New classes: {', '.join(report.created_classes)}")
        for name, reason in report.rejected:
            self.stdout.write(f"  rejected {name}: {reason}")
        for name, item_id in report.duplicates[:50]:
            self.stdout.write(f"  duplicate {name} (item {item_id})")
        if len(report.duplicates) > 50:
            self.stdout.write(f"  … and {len(report.duplicates) - 50} more duplicates")


def json_dumps(data) -> str:
    return json.dumps(data, indent=2)
