"""Label classes: names, order and hotkeys."""

from django.db import IntegrityError, transaction
from django.db.models import Max

from core.models import LabelClass, Project
from core.services.jobs import zero_shot_request_if_useful

# 1–9, 0, then letters; 's' is reserved for Skip in the labeling page.
HOTKEY_ORDER = "1234567890" + "abcdefghijklmnopqrtuvwxyz"
RESERVED_HOTKEYS = frozenset("s")


def next_free_hotkey(project: Project) -> str:
    used = set(project.classes.values_list("hotkey", flat=True))
    return next((key for key in HOTKEY_ORDER if key not in used), "")


@transaction.atomic
def label_class_create(*, project: Project, name: str, hotkey: str | None = None) -> LabelClass:
    """Add a class at the end of the project's order, with the next free hotkey by default."""
    name = name.strip()
    if not name:
        raise ValueError("A class needs a name.")
    if hotkey is not None:
        hotkey = hotkey.strip().lower()
        if hotkey in RESERVED_HOTKEYS:
            raise ValueError(f"'{hotkey}' is reserved for Skip.")
    last = project.classes.aggregate(m=Max("order"))["m"]
    label_class = LabelClass.objects.create(
        project=project,
        name=name,
        order=0 if last is None else last + 1,
        hotkey=next_free_hotkey(project) if hotkey is None else hotkey,
    )
    zero_shot_request_if_useful(project=project, reason=f"class {name!r} added")
    return label_class


def label_class_get_or_create(*, project: Project, name: str) -> tuple[LabelClass, bool]:
    existing = project.classes.filter(name=name).first()
    if existing:
        return existing, False
    try:
        return label_class_create(project=project, name=name), True
    except IntegrityError:  # created concurrently
        return project.classes.get(name=name), False
