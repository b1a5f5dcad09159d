"""Factories for rows. Items made here have no image files unless a test writes them."""

import factory
from django.contrib.auth import get_user_model

from core.models import Item, LabelClass, Membership, ModelVersion, Prediction, Project, Role


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw")


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    name = factory.Sequence(lambda n: f"Project {n}")
    created_by = factory.SubFactory(UserFactory)
    # No audit cards unless a test asks for them: a test of the queue gets the item the
    # strategy ranks first, not a random open one (the product's default is 0.2).
    audit_share = 0.0
    audit_top_share = 0.0  # tests that draw audits at the top say so


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    project = factory.SubFactory(ProjectFactory)
    role = Role.ANNOTATOR


class LabelClassFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LabelClass

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"class{n}")
    order = factory.Sequence(lambda n: n)
    hotkey = ""


class ItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Item

    project = factory.SubFactory(ProjectFactory)
    image = factory.Sequence(lambda n: f"projects/x/items/{n}.png")
    thumbnail = factory.Sequence(lambda n: f"projects/x/items/{n}-thumb.jpg")
    content_hash = factory.Sequence(lambda n: f"{n:064x}")
    width = 32
    height = 32
    original_name = factory.Sequence(lambda n: f"img{n}.png")


class ModelVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelVersion

    project = factory.SubFactory(ProjectFactory)
    number = factory.Sequence(lambda n: n + 1)


class PredictionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Prediction

    item = factory.SubFactory(ItemFactory)
    model_version = factory.SubFactory(ModelVersionFactory)
    probabilities = factory.LazyAttribute(lambda p: [p.confidence])
    confidence = 0.9
    acquisition_score = 0.5


def project_with_members(*, classes=("cat", "dog"), annotators=1, **settings):
    """A project with an admin, `annotators` annotators and the given classes."""
    admin = UserFactory()
    project = ProjectFactory(created_by=admin, **settings)
    MembershipFactory(user=admin, project=project, role=Role.ADMIN)
    members = [MembershipFactory(project=project).user for _ in range(annotators)]
    for index, name in enumerate(classes):
        LabelClassFactory(project=project, name=name, order=index, hotkey=str(index + 1))
    return project, admin, members


def member_client(project, role):
    """A new user with `role` in `project`, and a test client signed in as them."""
    from django.test import Client

    user = UserFactory()
    MembershipFactory(user=user, project=project, role=role)
    client = Client()
    client.force_login(user)
    return user, client
