"""Invitation links: a member who may add people (core/roles.py, MEMBERS; OWNERS for admins
and owners) makes a link for a role; whoever opens it joins with that role, signing up first
if they have no account. There is no other way to sign up."""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core.models import Invitation, Membership, Project, Role
from core.roles import Action, role_can, role_needed_to_grant
from core.selectors.common import membership_role

MAX_DAYS = 30
MAX_USES = 500


class InvitationError(Exception):
    """Not allowed, or the link is unknown, expired, used up or revoked."""


@dataclass(frozen=True)
class NewInvitation:
    invitation: Invitation
    token: str  # shown once: only its hash is stored


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invitation_create(
    *, project: Project, role: str, by: AbstractBaseUser, days: int = 7, max_uses: int = 1
) -> NewInvitation:
    by_role = membership_role(project=project, user=by)
    if role not in Role.values:
        raise InvitationError(f"Unknown role {role!r}.")
    if not role_can(by_role, role_needed_to_grant(role)):
        raise InvitationError(f"Your role ({by_role}) may not invite people as {role}.")
    if not 1 <= days <= MAX_DAYS or not 1 <= max_uses <= MAX_USES:
        raise InvitationError(f"A link lasts 1–{MAX_DAYS} days and admits 1–{MAX_USES} people.")
    token = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        project=project,
        role=role,
        token_hash=token_hash(token),
        created_by=by,
        expires_at=timezone.now() + timedelta(days=days),
        max_uses=max_uses,
    )
    return NewInvitation(invitation, token)


def invitation_for_token(token: str) -> Invitation:
    """The open invitation behind a link; InvitationError saying why it cannot be used."""
    invitation = (
        Invitation.objects.select_related("project").filter(token_hash=token_hash(token)).first()
    )
    if invitation is None:
        raise InvitationError("This invitation link is not valid.")
    if invitation.revoked_at is not None:
        raise InvitationError("This invitation was withdrawn.")
    if invitation.expires_at <= timezone.now():
        raise InvitationError("This invitation has expired: ask for a new link.")
    if invitation.uses >= invitation.max_uses:
        raise InvitationError("This invitation has been used: ask for a new link.")
    return invitation


@transaction.atomic
def invitation_accept(*, token: str, user: AbstractBaseUser) -> Membership:
    """Make `user` a member with the invited role (a member already keeps a higher role)."""
    invitation = invitation_for_token(token)
    existing = Membership.objects.filter(project=invitation.project, user=user).first()
    if existing is not None:
        order = list(Role.values)  # most powerful first
        if order.index(existing.role) <= order.index(invitation.role):
            return existing  # never lowers a role, and uses nothing
    used = Invitation.objects.filter(pk=invitation.pk, uses__lt=F("max_uses")).update(
        uses=F("uses") + 1
    )
    if not used:  # the last use went to someone else a moment ago
        raise InvitationError("This invitation has been used: ask for a new link.")
    membership, _ = Membership.objects.update_or_create(
        project=invitation.project, user=user, defaults={"role": invitation.role}
    )
    return membership


def invitation_revoke(*, invitation: Invitation, by: AbstractBaseUser) -> None:
    if not role_can(membership_role(project=invitation.project, user=by), Action.MEMBERS):
        raise InvitationError("Your role may not withdraw invitations.")
    Invitation.objects.filter(pk=invitation.pk).update(revoked_at=timezone.now())


def open_invitations(*, project: Project) -> list[Invitation]:
    return list(
        Invitation.objects.filter(
            project=project,
            revoked_at__isnull=True,
            expires_at__gt=timezone.now(),
            uses__lt=F("max_uses"),
        ).order_by("-id")
    )
