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
from core.selectors.common import user_is_project_admin


def project_for(request: HttpRequest, project_id: int, *, admin: bool = False) -> Project:
    """The project if the user is a member (404 otherwise); PermissionDenied if admin is needed."""
    project = get_object_or_404(Project.objects.for_user(request.user), pk=project_id)
    if admin and not user_is_project_admin(project=project, user=request.user):
        raise PermissionDenied("Only project admins can do this.")
    return project


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
