"""Invitation links: made for a role by a member who may give it, shown once, stored as a
hash; whoever opens one joins with that role (signing up if needed) until it expires, is
used up or withdrawn."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.test import Client
from django.utils import timezone

from core.models import Invitation, Membership, Role
from core.services.invitations import InvitationError, invitation_create, token_hash
from tests.factories import ProjectFactory, member_client

pytestmark = pytest.mark.django_db


def make_link(client, project, **fields) -> str:
    response = client.post(
        f"/projects/{project.pk}/invitations/",
        {"role": "annotator", "days": 7, "max_uses": 1, **fields},
    )
    (message,) = [str(m) for m in get_messages(response.wsgi_request)]
    match = re.search(r"http://testserver(/invite/[\w-]+/)", message)
    assert match, message
    return match.group(1)


def test_a_stranger_signs_up_through_the_link_and_joins_with_its_role():
    project = ProjectFactory()
    _, admin = member_client(project, Role.ADMIN)
    link = make_link(admin, project, role="reviewer")
    token = link.split("/")[2]
    assert Invitation.objects.get().token_hash == token_hash(token)  # no plaintext stored

    visitor = Client()
    page = visitor.get(link)
    assert page.status_code == 200 and "Create account and join" in page.content.decode()
    password = "a-long-pass-phrase-9"
    fields = {"username": "newbie", "email": "n@example.org"}
    response = visitor.post(link, {**fields, "password1": password, "password2": password})
    assert response.status_code == 302
    newbie = get_user_model().objects.get(username="newbie")
    assert Membership.objects.get(user=newbie, project=project).role == Role.REVIEWER
    assert newbie.email == "n@example.org"
    assert newbie.email == "n@example.org"
    assert visitor.get(f"/projects/{project.pk}/review/").status_code == 200  # logged in
    assert Client().get(link).status_code == 410  # used up


def test_expired_withdrawn_and_unknown_links_say_so():
    project = ProjectFactory()
    owner, owner_client = member_client(project, Role.OWNER)
    expired = invitation_create(project=project, role="annotator", by=owner)
    Invitation.objects.filter(pk=expired.invitation.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    withdrawn = invitation_create(project=project, role="annotator", by=owner)
    owner_client.post(f"/projects/{project.pk}/invitations/{withdrawn.invitation.pk}/revoke/")
    for token, reason in ((expired.token, "expired"), (withdrawn.token, "withdrawn"),
                          ("no-such-token", "not valid")):  # fmt: skip
        response = Client().get(f"/invite/{token}/")
        assert response.status_code == 410 and reason in response.content.decode()


def test_only_owners_invite_admins_and_annotators_invite_nobody():
    project = ProjectFactory()
    admin, admin_client = member_client(project, Role.ADMIN)
    with pytest.raises(InvitationError, match="may not invite people as admin"):
        invitation_create(project=project, role="admin", by=admin)
    _, annotator_client = member_client(project, Role.ANNOTATOR)
    fields = {"role": "annotator", "days": 7, "max_uses": 1}
    response = annotator_client.post(f"/projects/{project.pk}/invitations/", fields)
    assert response.status_code == 403 and not Invitation.objects.exists()
    owner, _ = member_client(project, Role.OWNER)
    assert invitation_create(project=project, role="admin", by=owner).invitation.role == "admin"


def test_a_member_opening_a_link_never_loses_a_higher_role():
    project = ProjectFactory()
    owner, _ = member_client(project, Role.OWNER)
    admin, admin_client = member_client(project, Role.ADMIN)
    new = invitation_create(project=project, role="annotator", by=owner)
    admin_client.post(f"/invite/{new.token}/")
    assert Membership.objects.get(user=admin, project=project).role == Role.ADMIN
    assert Invitation.objects.get().uses == 0  # and used nothing
