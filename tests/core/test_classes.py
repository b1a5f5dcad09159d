"""Renaming, reordering, hotkeys and merging classes keep every answer correct."""

import pytest
from django.urls import reverse

from core.models import Annotation, Item, Job, LabelClass, ModelVersion, Prediction
from core.services.classes import (
    ClassChangeError,
    label_class_move,
    label_class_update,
    label_classes_merge,
)
from core.services.queue import annotation_submit, item_lease_next
from core.services.training import training_labels
from tests.factories import ItemFactory, UserFactory, project_with_members

pytestmark = pytest.mark.django_db


@pytest.fixture
def project_with_answers():
    project, admin, (annotator,) = project_with_members(classes=("cat", "kitten", "dog"))
    cat, kitten, dog = project.classes.order_by("order")
    items = [ItemFactory(project=project, random_key=i) for i in range(4)]
    items[3].ground_truth = kitten
    items[3].save()
    answers = [kitten, cat, dog, kitten]
    for item, label_class in zip(items, answers, strict=True):
        assert item_lease_next(project=project, user=annotator).lease.item_id == item.pk
        annotation_submit(item=item, user=annotator, label_class=label_class)
    annotation_submit(item=items[1], user=annotator, label_class=kitten)  # changed: history
    return project, admin, annotator, items, (cat, kitten, dog)


def test_merge_moves_every_answer_suggestion_prediction_and_ground_truth(project_with_answers):
    project, _, annotator, items, (cat, kitten, dog) = project_with_answers
    version = ModelVersion.objects.create(project=project, number=1, class_ids=[cat.pk])
    Prediction.objects.create(
        item=items[0], model_version=version, probabilities=[1], predicted_class=kitten,
        confidence=0.9, acquisition_score=0,
    )  # fmt: skip
    Annotation.objects.filter(item=items[2]).update(
        suggested_class=kitten, suggestion_accepted=False
    )  # a wrong suggestion (kitten for a dog) stays wrong after the merge
    Annotation.objects.filter(item=items[0]).update(suggested_class=cat, suggestion_accepted=False)
    answers_before = Annotation.objects.count()

    changed = label_classes_merge(source=kitten, target=cat)

    assert not LabelClass.objects.filter(pk=kitten.pk).exists()
    assert changed["annotations"] == 3  # items 0 and 3, and item 1's current answer
    assert Annotation.objects.count() == answers_before  # nothing lost, history included
    item_ids, labels = training_labels(project=project)
    by_item = dict(zip(item_ids.tolist(), labels.tolist(), strict=True))
    assert by_item == {items[0].pk: cat.pk, items[1].pk: cat.pk, items[2].pk: dog.pk,
                       items[3].pk: cat.pk}  # fmt: skip
    history = Annotation.objects.get(item=items[1], is_current=False)
    assert history.label_class_id == cat.pk  # the old answer was "cat" and stays "cat"
    assert Item.objects.get(pk=items[3].pk).ground_truth_id == cat.pk
    assert Prediction.objects.get(item=items[0]).predicted_class_id == cat.pk
    assert Annotation.objects.get(item=items[0]).suggestion_accepted is True  # now the same class
    dog_answer = Annotation.objects.get(item=items[2])
    assert (dog_answer.suggested_class_id, dog_answer.suggestion_accepted) == (cat.pk, False)
    assert Job.objects.filter(project=project, kind=Job.Kind.TRAIN).exists()


def test_merge_refuses_itself_and_other_projects(project_with_answers):
    _, _, _, _, (cat, _, _) = project_with_answers
    other_project, *_ = project_with_members(classes=("x",))
    with pytest.raises(ClassChangeError, match="same project"):
        label_classes_merge(source=cat, target=other_project.classes.get())
    with pytest.raises(ClassChangeError, match="another class"):
        label_classes_merge(source=cat, target=cat)


def test_rename_hotkey_and_order(project_with_answers):
    project, _, _, items, (cat, kitten, dog) = project_with_answers
    label_class_update(label_class=kitten, name=" young cat ", hotkey="K")
    kitten.refresh_from_db()
    assert (kitten.name, kitten.hotkey) == ("young cat", "k")
    assert Annotation.objects.filter(label_class=kitten).count() == 3  # answers follow
    with pytest.raises(ClassChangeError, match="is named 'cat'"):
        label_class_update(label_class=dog, name="cat")
    with pytest.raises(ClassChangeError, match="is named"):
        label_class_update(label_class=dog, name="  CAT ")  # same name, other case and spaces
    with pytest.raises(ClassChangeError, match="reserved"):
        label_class_update(label_class=dog, hotkey="s")

    label_class_move(label_class=dog, step=-1)
    assert list(project.classes.order_by("order").values_list("name", flat=True)) == [
        "cat", "dog", "young cat",
    ]  # fmt: skip
    label_class_move(label_class=cat, step=-1)  # already first: nothing moves
    assert list(project.classes.order_by("order").values_list("order", flat=True)) == [0, 1, 2]


def test_admin_edits_classes_on_the_project_page(project_with_answers, client):
    project, admin, annotator, _, (cat, kitten, dog) = project_with_answers
    url = reverse("core:label_class_edit", args=[project.pk, kitten.pk])
    client.force_login(annotator)
    assert client.post(url, {"action": "merge", "into": cat.pk}).status_code == 403
    client.force_login(UserFactory())
    assert client.post(url, {"action": "merge", "into": cat.pk}).status_code == 404

    client.force_login(admin)
    page = client.get(reverse("core:project_detail", args=[project.pk]))
    assert b"Merge into" in page.content
    client.post(url, {"action": "save", "name": "kitty", "hotkey": "9"})
    assert LabelClass.objects.get(pk=kitten.pk).name == "kitty"
    client.post(url, {"action": "up"})
    assert LabelClass.objects.get(pk=kitten.pk).order == 0
    response = client.post(url, {"action": "merge", "into": dog.pk}, follow=True)
    assert b"Merged" in response.content
    assert not LabelClass.objects.filter(pk=kitten.pk).exists()


def test_api_renames_and_merges(project_with_answers, client):
    project, admin, annotator, _, (cat, kitten, dog) = project_with_answers
    client.force_login(annotator)
    url = f"/api/projects/{project.pk}/classes/{kitten.pk}/"
    assert client.patch(url, {"name": "x"}, content_type="application/json").status_code == 403
    client.force_login(admin)
    response = client.patch(url, {"name": "kit"}, content_type="application/json")
    assert response.status_code == 200 and response.json()["name"] == "kit"
    response = client.post(url + "merge/", {"into": cat.pk}, content_type="application/json")
    assert response.status_code == 200 and response.json()["changed"]["annotations"] == 3
    bad = client.post(
        f"/api/projects/{project.pk}/classes/{dog.pk}/merge/", {"into": 99999},
        content_type="application/json",
    )  # fmt: skip
    assert bad.status_code == 400


@pytest.mark.parametrize(
    "names", [["x", "x"], ["x", " x"], ["Big cat", "big  cat"], ["a", "b", "A"]]
)
def test_repeated_class_names_are_a_400_naming_the_field_and_create_nothing(names):
    from rest_framework.test import APIClient

    from core.models import Project
    from tests.factories import UserFactory

    client = APIClient()
    client.force_authenticate(UserFactory())
    response = client.post("/api/projects/", {"name": "P", "class_names": names}, format="json")
    assert response.status_code == 400
    assert "repeats" in response.json()["class_names"][0]
    assert not Project.objects.exists()


def test_the_new_project_form_refuses_repeated_class_names(client):
    from core.models import Project
    from tests.factories import UserFactory

    client.force_login(UserFactory())
    response = client.post(
        reverse("core:project_new"), {"name": "P", "class_names": "cat, dog\nCat"}
    )
    assert response.status_code == 200 and "repeats" in response.content.decode()
    assert not Project.objects.exists()


def test_class_names_are_stored_with_their_whitespace_normalised():
    from core.services.classes import class_names_check

    assert class_names_check(["  big   cat ", "dog"]) == ["big cat", "dog"]
    with pytest.raises(ValueError, match="control"):
        class_names_check(["a\x00b"])
