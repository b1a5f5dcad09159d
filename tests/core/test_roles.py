"""Roles as a matrix: every role against every action, through the pages and the API that
do it. The expected table is written out here, so a change to core/roles.py that was not
meant shows up as a failing cell."""

import pytest
from django.test import Client

from core.models import Membership, Role
from core.roles import ROLE_ACTIONS, Action
from tests.core.upload_helpers import api
from tests.factories import (
    ItemFactory,
    MembershipFactory,
    ProjectFactory,
    UserFactory,
    member_client,
)

pytestmark = pytest.mark.django_db

EXPECTED = {  # role: the actions it may do
    Role.OWNER: set(Action),
    Role.ADMIN: set(Action) - {Action.OWNERS},
    Role.REVIEWER: {Action.LABEL, Action.REVIEW, Action.DASHBOARD},
    Role.ANNOTATOR: {Action.LABEL},
}


def test_the_table_is_the_one_written_here():
    assert {role: set(actions) for role, actions in ROLE_ACTIONS.items()} == EXPECTED
    assert set(ROLE_ACTIONS) == set(Role.values)


def attempt(action: Action, project, user, client) -> bool:
    """Do `action` through its page (and API, where it has one); True when it was allowed."""
    p = project.pk
    if action == Action.LABEL:
        return client.get(f"/projects/{p}/label/").status_code == 200
    if action == Action.REVIEW:
        codes = {client.get(f"/projects/{p}/review/").status_code,
                 client.get(f"/projects/{p}/browse/").status_code}  # fmt: skip
        assert len(codes) == 1
        return codes == {200}
    if action == Action.DASHBOARD:
        return client.get(f"/projects/{p}/dashboard/").status_code == 200
    if action == Action.EXPORT:
        page = client.get(f"/projects/{p}/export/", {"format": "csv"}).status_code
        endpoint = api(user).get(f"/api/projects/{p}/export/csv/").status_code
        assert (page == 200) == (endpoint == 200)
        return page == 200
    if action == Action.IMPORT:
        return client.get(f"/projects/{p}/import/").status_code == 200
    if action == Action.TRAIN:
        return api(user).post(f"/api/projects/{p}/train/").status_code != 403
    if action == Action.CONFIGURE:
        endpoint = api(user).patch(f"/api/projects/{p}/", {"retrain_every": 7}, format="json")
        page = client.post(f"/projects/{p}/classes/", {"name": f"class-{user.pk}"})
        assert (endpoint.status_code == 200) == (page.status_code == 302)
        return endpoint.status_code == 200
    if action == Action.MEMBERS:
        newcomer = UserFactory()
        client.post(f"/projects/{p}/members/", {"username": newcomer.username, "role": "reviewer"})
        return Membership.objects.filter(user=newcomer, project=project).exists()
    if action == Action.OWNERS:
        newcomer = UserFactory()
        client.post(f"/projects/{p}/members/", {"username": newcomer.username, "role": "admin"})
        return Membership.objects.filter(user=newcomer, project=project, role="admin").exists()
    raise AssertionError(action)


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("action", list(Action))
def test_role_by_action(role, action):
    project = ProjectFactory()
    ItemFactory(project=project)
    MembershipFactory(project=project, role=Role.OWNER)  # someone owns it
    user, client = member_client(project, role)
    assert attempt(action, project, user, client) == (action in EXPECTED[role])


def test_outsiders_get_404_whatever_they_ask():
    project = ProjectFactory()
    client = Client()
    client.force_login(UserFactory())
    for path in ("", "label/", "review/", "dashboard/", "import/"):
        assert client.get(f"/projects/{project.pk}/{path}").status_code == 404


def test_an_admin_cannot_unmake_an_owner_and_the_last_owner_stays():
    project = ProjectFactory()
    owner, owner_client = member_client(project, Role.OWNER)
    _, admin_client = member_client(project, Role.ADMIN)
    members = f"/projects/{project.pk}/members/"
    admin_client.post(members, {"username": owner.username, "role": "annotator"})
    assert Membership.objects.get(user=owner, project=project).role == Role.OWNER
    owner_client.post(members, {"username": owner.username, "role": "admin"})
    assert Membership.objects.get(user=owner, project=project).role == Role.OWNER  # the last one


def test_removing_members_follows_the_same_table():
    project = ProjectFactory()
    owner, owner_client = member_client(project, Role.OWNER)
    admin, admin_client = member_client(project, Role.ADMIN)
    annotator, annotator_client = member_client(project, Role.ANNOTATOR)
    other_admin, _ = member_client(project, Role.ADMIN)

    def remove(client, user):
        return client.post(f"/projects/{project.pk}/members/{user.pk}/remove/")

    assert remove(annotator_client, admin).status_code == 403
    remove(admin_client, other_admin)  # an admin may not remove an admin
    assert Membership.objects.filter(user=other_admin, project=project).exists()
    remove(admin_client, annotator)
    assert not Membership.objects.filter(user=annotator, project=project).exists()
    assert annotator_client.get(f"/projects/{project.pk}/").status_code == 404  # gone
    remove(owner_client, owner)  # the last owner stays
    assert Membership.objects.filter(user=owner, project=project, role=Role.OWNER).exists()
    remove(owner_client, other_admin)
    assert not Membership.objects.filter(user=other_admin, project=project).exists()
    page = owner_client.get(f"/projects/{project.pk}/").content.decode()
    assert f"/members/{admin.pk}/remove/" in page and f"/members/{owner.pk}/remove/" not in page
