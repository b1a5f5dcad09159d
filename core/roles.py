"""Who may do what in a project: one table, every check derives from it.

A member's role (`Membership.role`) gives a set of actions. Views and API endpoints ask
`core.access.project_for(..., action=...)`, pages show a control only when the role has its
action (`role_actions`), and the websocket sends export links only to roles that may export.
tests/core/test_roles.py checks every role against every action through the real endpoints.
"""

from enum import StrEnum

from core.models import Role


class Action(StrEnum):
    LABEL = "label"  # answer cards and verification pages
    REVIEW = "review"  # the review queue, relabeling others' answers, the image browser
    DASHBOARD = "dashboard"  # the dashboard: progress, annotators' accuracy, jobs
    EXPORT = "export"  # export the labels, download export files
    IMPORT = "import"  # import images
    TRAIN = "train"  # start training and encoder pretraining
    CONFIGURE = "configure"  # settings, guideline, classes
    MEMBERS = "members"  # add members as annotators or reviewers, invite them
    OWNERS = "owners"  # make or unmake admins and owners


ROLE_ACTIONS: dict[str, frozenset[Action]] = {
    Role.OWNER: frozenset(Action),
    Role.ADMIN: frozenset(Action) - {Action.OWNERS},
    Role.REVIEWER: frozenset({Action.LABEL, Action.REVIEW, Action.DASHBOARD}),
    Role.ANNOTATOR: frozenset({Action.LABEL}),
}


def role_can(role: str | None, action: Action) -> bool:
    return role is not None and action in ROLE_ACTIONS.get(role, frozenset())


def role_actions(role: str | None) -> dict[str, bool]:
    """{action: allowed} for templates: `{% if can.export %}`."""
    allowed = ROLE_ACTIONS.get(role or "", frozenset())
    return {action.value: action in allowed for action in Action}


def role_needed_to_grant(role: str) -> Action:
    """Granting (or taking away) admin or owner needs OWNERS; the other roles MEMBERS."""
    return Action.OWNERS if role in (Role.OWNER, Role.ADMIN) else Action.MEMBERS


def grantable_roles(role: str | None) -> list[str]:
    """The roles a member with `role` may give (and take away), most powerful first."""
    return [r for r in Role.values if role_can(role, role_needed_to_grant(r))]
