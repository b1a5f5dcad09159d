"""Projects, their settings and their members."""

from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import BooleanField, ExpressionWrapper, Q

from core.models import Item, Membership, Prediction, Project, Role
from core.roles import role_can, role_needed_to_grant
from core.selectors.common import membership_role
from core.services.classes import class_names_check, label_class_create
from core.services.loop import after_encoder_setting

SETTINGS_FIELDS = (
    "name",
    "description",
    "guideline",
    "strategy",
    "retrain_every",
    "encoder_name",
    "annotators_per_item",
    "extra_answers",
    "lease_seconds",
    "self_training_threshold",
    "cold_start",
    "preselect_precision",
    "labeling_mode",
    "page_size",
    "pseudo_label_precision",
    "audit_share",
    "audit_top_share",
)


@transaction.atomic
def project_create(
    *, name: str, created_by: AbstractBaseUser, class_names: Iterable[str] = (), **settings
) -> Project:
    """Create a project with its classes; the creator becomes its admin."""
    unknown = set(settings) - set(SETTINGS_FIELDS)
    if unknown:
        raise TypeError(f"Unknown project settings: {sorted(unknown)}")
    project = Project(name=name, created_by=created_by, **settings)
    names = class_names_check([n for n in class_names if n.strip()])  # ValueError: repeats
    project.full_clean()
    project.save()
    Membership.objects.create(user=created_by, project=project, role=Role.OWNER)
    for class_name in names:
        label_class_create(project=project, name=class_name)
    return project


@transaction.atomic
def project_settings_update(*, project: Project, **changes) -> Project:
    """Change settings; when annotators_per_item changes, recompute which items are done."""
    unknown = set(changes) - set(SETTINGS_FIELDS)
    if unknown:
        raise TypeError(f"Unknown project settings: {sorted(unknown)}")
    old_k, old_encoder = project.annotators_per_item, project.encoder_name
    for key, value in changes.items():
        setattr(project, key, value)
    project.full_clean()
    project.save()
    if project.encoder_name != old_encoder:
        after_encoder_setting(project=project)
    if project.annotators_per_item != old_k:
        k = project.annotators_per_item
        Item.objects.filter(project=project).filter(
            Q(is_done=True, annotation_count__lt=k) | Q(is_done=False, annotation_count__gte=k)
        ).update(is_done=ExpressionWrapper(Q(annotation_count__gte=k), output_field=BooleanField()))
        # The scored queue's index follows (Prediction.item_open): reopened items back in.
        predictions = Prediction.objects.filter(item__project=project)
        predictions.filter(item__is_done=False, item_open=False).update(item_open=True)
        predictions.filter(item__is_done=True, item_open=True).update(item_open=False)
    return project


class MembershipError(Exception):
    """A role change the person asking may not make, or one that leaves no owner."""


def _locked_role(*, project: Project, user: AbstractBaseUser) -> str | None:
    """The member's role, its row locked until the transaction ends (None: not a member)."""
    return (
        Membership.objects.select_for_update()
        .filter(project=project, user=user)
        .values_list("role", flat=True)
        .first()
    )


def _role_change_check(
    *, project: Project, current: str | None, new: str | None, by: AbstractBaseUser | None
) -> None:
    """MembershipError unless `by` may move a member from `current` to `new` (None: not a
    member): admins and owners are made, unmade and removed only by owners (core/roles.py),
    and a project always keeps an owner. `by=None`: the app itself, any change."""
    if by is not None:
        by_role = membership_role(project=project, user=by)
        for role in {current, new} - {None}:
            if not role_can(by_role, role_needed_to_grant(role)):
                raise MembershipError("Only an owner can make, unmake or remove admins and owners.")
    if current == Role.OWNER and new != Role.OWNER:
        if Membership.objects.filter(project=project, role=Role.OWNER).count() == 1:
            raise MembershipError("The project needs an owner: make someone else owner first.")


@transaction.atomic
def membership_set(
    *, project: Project, user: AbstractBaseUser, role: str, by: AbstractBaseUser | None = None
) -> Membership:
    """Add `user` to the project or change their role (`by`: the member making the change,
    checked by `_role_change_check`)."""
    if role not in Role.values:
        raise ValueError(f"Unknown role {role!r}")
    current = _locked_role(project=project, user=user)
    _role_change_check(project=project, current=current, new=role, by=by)
    membership, _ = Membership.objects.update_or_create(
        project=project, user=user, defaults={"role": role}
    )
    return membership


@transaction.atomic
def membership_remove(*, project: Project, user: AbstractBaseUser, by: AbstractBaseUser) -> None:
    """Take `user` out of the project (their answers stay, as history and labels), under the
    same rules as a role change."""
    current = _locked_role(project=project, user=user)
    if current is None:
        return
    _role_change_check(project=project, current=current, new=None, by=by)
    Membership.objects.filter(project=project, user=user).delete()
