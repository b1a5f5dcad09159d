"""Create the admin account and a demo project; safe to run again (reuses what exists).

Used by `make run`. The demo is scikit-learn's 1,797 handwritten digits (always
available offline), or the folder/zip named by DEMO_DATA.
"""

import io
import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from PIL import Image

from core.models import Project
from core.services.classes import label_class_create
from core.services.imports import ImportSource, items_import, sources_from_path
from core.services.projects import project_create


class Command(BaseCommand):
    help = "Create the admin (ANNOTATOR_ADMIN_USER / _PASSWORD) and a demo project."

    def handle(self, *args, **options):
        admin, password = self._admin()
        demo_data = os.environ.get("DEMO_DATA", "")
        name = f"Demo: {Path(demo_data).stem}" if demo_data else "Demo: handwritten digits"
        project = Project.objects.filter(name=name).first()
        if project is None:
            project = project_create(
                name=name,
                created_by=admin,
                description="Created by make run. Ground truth is stored for evaluation only.",
            )
            if demo_data:
                sources = sources_from_path(Path(demo_data))
            else:
                for digit in range(10):
                    label_class_create(project=project, name=str(digit), hotkey=str(digit))
                sources = digit_sources()
            report = items_import(project=project, sources=sources, labels_as="ground-truth")
            self.stdout.write(
                f"Demo project '{name}': {len(report.imported)} images imported, "
                f"{len(report.rejected)} rejected."
            )
        else:
            self.stdout.write(f"Demo project '{name}' already exists (id {project.pk}).")
        self.stdout.write(f"Admin login: {admin.username} / {password}")

    def _admin(self):
        users = get_user_model().objects
        username = os.environ.get("ANNOTATOR_ADMIN_USER", "admin")
        secret_file = Path(settings.VAR_DIR) / "admin-password.txt"
        password = os.environ.get("ANNOTATOR_ADMIN_PASSWORD")
        user = users.filter(username=username).first()
        if user is None:
            if not password:
                password = secrets.token_urlsafe(9)
                secret_file.parent.mkdir(parents=True, exist_ok=True)
                secret_file.write_text(password)
                secret_file.chmod(0o600)
            user = users.create_superuser(username=username, email="", password=password)
        elif password:
            user.set_password(password)
            user.save(update_fields=["password"])
        elif secret_file.exists():
            password = secret_file.read_text().strip()
        else:
            password = "(unchanged; set ANNOTATOR_ADMIN_PASSWORD to reset it)"
        return user, password


def digit_sources() -> list[ImportSource]:
    """scikit-learn's 8×8 digits as PNG files named digits/<class>/<n>.png."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    sources = []
    for index, (pixels, target) in enumerate(zip(digits.images, digits.target, strict=True)):
        image = Image.fromarray((pixels * 255 / 16).astype("uint8"), mode="L")
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        data = buffer.getvalue()
        sources.append(ImportSource(f"digits/{target}/{index:04d}.png", lambda d=data: d))
    return sources
