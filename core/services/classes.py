"""Label classes: names, order and hotkeys."""

from django.db import IntegrityError, transaction
from django.db.models import Max

from core.models import Annotation, Item, LabelClass, Prediction, Project
from core.services.loop import after_classes_changed
from core.text import has_control_characters

# 1–9, 0, then letters; 's' is reserved for Skip in the labeling page.
HOTKEY_ORDER = "1234567890" + "abcdefghijklmnopqrtuvwxyz"
# Keys the labeling page keeps for itself: S skips; the image viewer (static/js/viewer.js)
# zooms with + = - _, shows 1:1 with * and fits with /; ? shows the guidelines.
RESERVED_HOTKEYS = {
    "s": "Skip",
    **dict.fromkeys("+=-_*/", "zooming the image"),
    "?": "showing the guidelines",
}


def class_name_normalise(name: str) -> str:
    """A class name as stored: surrounding whitespace removed, inner runs of it made one space
    ("  big  cat " and "big cat" are one class)."""
    return " ".join(str(name).split())


def class_names_check(names: list[str]) -> list[str]:
    """Normalised names, in order; ValueError naming the first that repeats one before it
    (ignoring case: "Cat" and "cat" would be two buttons nobody can tell apart)."""
    seen: dict[str, str] = {}
    result = []
    for raw in names:
        name = class_name_normalise(raw)
        if not name:
            raise ValueError("A class needs a name.")
        if has_control_characters(name):
            raise ValueError(f"Class name {name!r} contains control characters.")
        if name.casefold() in seen:
            raise ValueError(f"Class name {name!r} repeats {seen[name.casefold()]!r}.")
        seen[name.casefold()] = name
        result.append(name)
    return result


def _name_taken(project: Project, name: str, exclude: int | None = None) -> bool:
    others = project.classes.exclude(pk=exclude) if exclude else project.classes.all()
    return others.filter(name__iexact=name).exists()


def next_free_hotkey(project: Project) -> str:
    used = set(project.classes.values_list("hotkey", flat=True))
    return next((key for key in HOTKEY_ORDER if key not in used), "")


@transaction.atomic
def label_class_create(*, project: Project, name: str, hotkey: str | None = None) -> LabelClass:
    """Add a class at the end of the project's order, with the next free hotkey by default."""
    (name,) = class_names_check([name])
    if _name_taken(project, name):
        raise ValueError(f"The project already has a class named {name!r}.")
    if hotkey is not None:
        hotkey = hotkey.strip().lower()
        if hotkey in RESERVED_HOTKEYS:
            raise ValueError(f"'{hotkey}' is reserved for {RESERVED_HOTKEYS[hotkey]}.")
    last = project.classes.aggregate(m=Max("order"))["m"]
    label_class = LabelClass.objects.create(
        project=project,
        name=name,
        order=0 if last is None else last + 1,
        hotkey=next_free_hotkey(project) if hotkey is None else hotkey,
    )
    after_classes_changed(project=project, reason=f"class {name!r} added")
    return label_class


def label_class_get_or_create(*, project: Project, name: str) -> tuple[LabelClass, bool]:
    name = class_name_normalise(name)
    existing = project.classes.filter(name__iexact=name).first()
    if existing:
        return existing, False
    try:
        return label_class_create(project=project, name=name), True
    except IntegrityError:  # created concurrently
        return project.classes.get(name__iexact=name), False


class ClassChangeError(ValueError):
    """A class change that cannot be made; the message says why."""


CLASS_EXAMPLES_MAX = 6  # example images per class, shown with the guideline


@transaction.atomic
def label_class_update(
    *,
    label_class: LabelClass,
    name: str | None = None,
    hotkey: str | None = None,
    description: str | None = None,
    example_ids: list[int] | None = None,
) -> LabelClass:
    """Rename a class, set its hotkey ('' for none), its description (Markdown) and its
    example images (ids of the project's items). Answers keep pointing at it."""
    if name is not None:
        try:
            (name,) = class_names_check([name])
        except ValueError as exc:
            raise ClassChangeError(str(exc)) from exc
        if _name_taken(label_class.project, name, exclude=label_class.pk):
            raise ClassChangeError(f"Another class of this project is named {name!r}.")
        label_class.name = name
    if hotkey is not None:
        hotkey = hotkey.strip().lower()
        if hotkey in RESERVED_HOTKEYS:
            raise ClassChangeError(f"'{hotkey}' is reserved for {RESERVED_HOTKEYS[hotkey]}.")
        if len(hotkey) > 1:
            raise ClassChangeError("A hotkey is one key.")
        label_class.hotkey = hotkey
    if description is not None:
        if len(description) > 2_000:
            raise ClassChangeError("A class description is at most 2,000 characters.")
        label_class.description = description.strip()
    if example_ids is not None:
        example_ids = list(dict.fromkeys(example_ids))
        if len(example_ids) > CLASS_EXAMPLES_MAX:
            raise ClassChangeError(f"At most {CLASS_EXAMPLES_MAX} example images per class.")
        found = set(
            Item.objects.filter(project_id=label_class.project_id, pk__in=example_ids).values_list(
                "pk", flat=True
            )
        )
        if unknown := [i for i in example_ids if i not in found]:
            raise ClassChangeError(f"No image #{unknown[0]} in this project.")
        label_class.examples.set(example_ids)
    try:
        with transaction.atomic():
            label_class.save(update_fields=["name", "hotkey", "description"])
    except IntegrityError as exc:
        raise ClassChangeError("Another class of this project has that name or hotkey.") from exc
    if name is not None:
        after_classes_changed(project=label_class.project, reason="class renamed")
    return label_class


@transaction.atomic
def label_class_move(*, label_class: LabelClass, step: int) -> None:
    """Move a class one place up (step -1) or down (+1) in the project's order."""
    ordered = list(
        LabelClass.objects.select_for_update()
        .filter(project_id=label_class.project_id)
        .order_by("order", "pk")
    )
    index = next(i for i, c in enumerate(ordered) if c.pk == label_class.pk)
    other = index + (1 if step > 0 else -1)
    if not 0 <= other < len(ordered):
        return
    ordered[index], ordered[other] = ordered[other], ordered[index]
    for position, item in enumerate(ordered):  # renumber: orders stay 0..n-1 and unique
        if item.order != position:
            LabelClass.objects.filter(pk=item.pk).update(order=position)


@transaction.atomic
def label_classes_merge(*, source: LabelClass, target: LabelClass) -> dict[str, int]:
    """Fold `source` into `target`: every answer (history included), suggestion, prediction and
    ground truth that named `source` names `target`; then `source` is deleted and a training
    run is requested so the model learns the merged class. Returns the rows changed."""
    if source.project_id != target.project_id:
        raise ClassChangeError("Both classes must belong to the same project.")
    if source.pk == target.pk:
        raise ClassChangeError("Choose another class to merge into.")
    project = source.project
    answers = Annotation.objects.filter(item__project=project)
    changed = {
        "annotations": answers.filter(label_class=source).update(label_class=target),
        "suggestions": answers.filter(suggested_class=source).update(suggested_class=target),
        "predictions": Prediction.objects.filter(
            model_version__project=project, predicted_class=source
        ).update(predicted_class=target),
        "ground_truth": Item.objects.filter(project=project, ground_truth=source).update(
            ground_truth=target
        ),
    }
    # "Was the suggestion accepted?" turns to yes where the two classes became one.
    answers.filter(label_class=target, suggested_class=target).update(suggestion_accepted=True)
    source.delete()
    after_classes_changed(
        project=project, reason=f"classes merged into {target.name!r}", retrain=True
    )
    return changed
