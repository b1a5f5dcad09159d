import pytest
from django.db import IntegrityError, transaction

from core.models import LabelClass, Project
from core.services.classes import label_class_create
from tests.factories import ItemFactory, ProjectFactory, project_with_members

pytestmark = [pytest.mark.django_db, pytest.mark.dbcompat]


def test_same_image_twice_in_one_project_is_refused_but_allowed_in_another():
    first = ItemFactory(content_hash="a" * 64)
    with pytest.raises(IntegrityError), transaction.atomic():
        ItemFactory(project=first.project, content_hash="a" * 64)
    assert ItemFactory(project=ProjectFactory(), content_hash="a" * 64).pk


def test_class_names_and_hotkeys_are_unique_per_project():
    project, _, _ = project_with_members(classes=("cat",))
    with pytest.raises(IntegrityError), transaction.atomic():
        LabelClass.objects.create(project=project, name="cat")
    with pytest.raises(IntegrityError), transaction.atomic():
        LabelClass.objects.create(project=project, name="dog", hotkey="1")
    # several classes without a hotkey are fine
    LabelClass.objects.create(project=project, name="x")
    LabelClass.objects.create(project=project, name="y")


def test_new_classes_get_the_next_free_hotkey_and_never_s():
    project, _, _ = project_with_members(classes=())
    keys = [label_class_create(project=project, name=f"c{i}").hotkey for i in range(19)]
    assert keys[:10] == list("1234567890") and keys[10:] == list("abcdefghi")
    assert "s" not in [label_class_create(project=project, name=f"d{i}").hotkey for i in range(15)]
    with pytest.raises(ValueError, match="reserved for Skip"):
        label_class_create(project=project, name="skip", hotkey="s")
    for key in "+-*/":  # the image viewer's keys
        with pytest.raises(ValueError, match="reserved for zooming the image"):
            label_class_create(project=project, name=f"zoom{key}", hotkey=key)


def test_project_settings_ranges_are_checked_by_the_database():
    project = ProjectFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Project.objects.filter(pk=project.pk).update(annotators_per_item=0)
    with pytest.raises(IntegrityError), transaction.atomic():
        Project.objects.filter(pk=project.pk).update(lease_seconds=1)


@pytest.mark.django_db(transaction=True)
def test_migration_0007_turns_stored_ssl_paths_into_names():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.migrate([("core", "0006_import_jobs_and_quotas")])
    old = executor.loader.project_state([("core", "0006_import_jobs_and_quotas")]).apps
    path = "/srv/annotator/var/encoders/project-7/job-42/encoder.pt"
    user = old.get_model("auth", "User").objects.create(username="m")
    project = old.get_model("core", "Project").objects.create(
        name="p", created_by_id=user.pk, encoder_name=path, encoder_used=path
    )
    try:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate([("core", "0007_encoder_names_not_paths")])
        state = executor.loader.project_state([("core", "0007_encoder_names_not_paths")])
        migrated = state.apps.get_model("core", "Project").objects.get(pk=project.pk)
        assert migrated.encoder_name == migrated.encoder_used == "ssl:job-42"
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
