"""Who may see what: the project and item lookups every page and API endpoint starts from.

Both start from the user's memberships (`Project.objects.for_user`, `Item.objects.for_user`),
so a project the user is not a member of answers 404, exactly like one that does not exist.
DRF turns these exceptions into its own 404 / 403 responses, with the same message.
"""

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.shortcuts import get_object_or_404

from core.models import Item, Project
from core.roles import Action, role_can
from core.selectors.common import membership_role


def project_for(request: HttpRequest, project_id: int, *, action: Action | None = None) -> Project:
    """The project if the user is a member (404 otherwise); PermissionDenied when their role
    may not do `action` (core/roles.py)."""
    project = get_object_or_404(Project.objects.for_user(request.user), pk=project_id)
    if action is not None:
        action_check(project=project, user=request.user, action=action)
    return project


def action_check(*, project: Project, user, action: Action) -> None:
    role = membership_role(project=project, user=user)
    if not role_can(role, action):
        raise PermissionDenied(f"Your role in this project ({role}) may not {ACTION_TEXT[action]}.")


ACTION_TEXT = {
    Action.LABEL: "label",
    Action.REVIEW: "review or browse answers",
    Action.DASHBOARD: "see the dashboard",
    Action.EXPORT: "export labels",
    Action.IMPORT: "import images",
    Action.TRAIN: "start training or pretraining",
    Action.CONFIGURE: "change the project's settings or classes",
    Action.MEMBERS: "add members or invite people",
    Action.OWNERS: "make or unmake admins and owners",
}


def may_create_projects(user) -> bool:
    """`ANNOTATOR_PROJECT_CREATORS`: "anyone" signed in, or "staff" only (production's
    default: a project brings imports and GPU jobs, which not every account should start)."""
    if settings.ANNOTATOR_PROJECT_CREATORS == "anyone":
        return user.is_authenticated
    return bool(user.is_authenticated and (user.is_staff or user.is_superuser))


def project_creation_check(request: HttpRequest) -> None:
    if not may_create_projects(request.user):
        raise PermissionDenied("Only staff can create projects on this server.")


def item_for(request: HttpRequest, project_id: int, item_id: int) -> Item:
    """The item, with its project, in one query: 404 as `project_for` gives when the user is
    not a member of the project, or when the item is not one of its items."""
    return get_object_or_404(
        Item.objects.for_user(request.user).select_related("project"),
        pk=item_id,
        project_id=project_id,
    )
