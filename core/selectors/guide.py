"""The labeling guide of a project: its guideline and, per class, a description and example
images. Admins write them in Markdown; every member reads them beside the card (the ? key)."""

from core.models import LabelClass, Project
from core.text import markdown_html


def project_guide(*, project: Project) -> dict:
    classes = LabelClass.objects.filter(project=project).prefetch_related("examples")
    entries = [
        {
            "label_class": label_class,
            "description": markdown_html(label_class.description),
            "examples": [item.pk for item in label_class.examples.all()],
        }
        for label_class in classes
    ]
    return {
        "guideline": markdown_html(project.guideline),
        "classes": entries,
        "empty": not project.guideline.strip()
        and not any(e["description"] or e["examples"] for e in entries),
    }
