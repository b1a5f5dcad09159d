"""QuerySet methods for the simple, reusable filters (Django's own `published()` style)."""

from django.db import models


class ProjectQuerySet(models.QuerySet):
    def for_user(self, user) -> "ProjectQuerySet":
        """Projects the user is a member of. Every project lookup goes through this."""
        if not user.is_authenticated:
            return self.none()
        return self.filter(memberships__user=user)


class ItemQuerySet(models.QuerySet):
    def for_user(self, user) -> "ItemQuerySet":
        """Items of the projects the user is a member of (as ProjectQuerySet.for_user)."""
        if not user.is_authenticated:
            return self.none()
        return self.filter(project__memberships__user=user)

    def labeled(self) -> "ItemQuerySet":
        """Items with at least one current answer."""
        return self.filter(models.Exists(self._current_answers()))

    def unlabeled(self) -> "ItemQuerySet":
        return self.exclude(models.Exists(self._current_answers()))

    def _current_answers(self):
        # The Annotation model through its relation to Item (models.py imports this module).
        annotation = self.model._meta.get_field("annotations").related_model
        return annotation.objects.filter(item=models.OuterRef("pk"), is_current=True)
