"""Reads every part of the app needs: roles, the majority answer, whether a model can be
trained, and where a project's embeddings and encoders live.

Every function takes the project, already scoped to the user by the caller."""

from collections import Counter
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from core.models import (
    Annotation,
    Membership,
    Project,
    Role,
)
from models_ml.store import EmbeddingStore


def majority_class(class_ids_newest_first: list[int]) -> int:
    """An item's label from its current answers: the most common class; a tie goes to the most
    recent answer (Counter keeps first-seen order). Training and export both use this rule."""
    return Counter(class_ids_newest_first).most_common(1)[0][0]


def membership_role(*, project: Project, user: AbstractBaseUser) -> str | None:
    return (
        Membership.objects.filter(project=project, user=user).values_list("role", flat=True).first()
    )


def user_is_project_admin(*, project: Project, user: AbstractBaseUser) -> bool:
    return membership_role(project=project, user=user) == Role.ADMIN


def training_is_possible(*, project: Project) -> bool:
    """A head can be fitted: the labels so far cover at least two classes."""
    return (
        Annotation.objects.filter(item__project=project, is_current=True)
        .values("label_class")
        .distinct()
        .count()
        >= 2
    )


def embedding_store(*, project: Project, key: str | None = None, dim: int | None = None):
    """The store of `key` (default: the one the project's embeddings are in), or None.
    numpy only: pages may read it (the worker writes it)."""
    key = key or project.embedding_key
    dim = dim or project.embedding_dim
    if not key or not dim:
        return None
    return EmbeddingStore(embeddings_root(project=project), key, dim)


def embeddings_root(*, project: Project) -> Path:
    return Path(settings.ANNOTATOR_EMBEDDINGS_DIR) / f"project-{project.pk}"


def encoders_root(*, project: Project) -> Path:
    """Where the project's in-domain encoders are pretrained, one folder per job."""
    return Path(settings.ANNOTATOR_ENCODERS_DIR) / f"project-{project.pk}"
