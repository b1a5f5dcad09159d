"""QuerySet methods for the simple, reusable filters (Django's own `published()` style)."""

from django.db import models


class ProjectQuerySet(models.QuerySet):
    def for_user(self, user) -> "ProjectQuerySet":
        """Projects the user is a member of. Every project lookup goes through this."""
        if not user.is_authenticated:
            return self.none()
        return self.filter(memberships__user=user)

    def administered_by(self, user) -> "ProjectQuerySet":
        from core.models import Role

        if not user.is_authenticated:
            return self.none()
        return self.filter(memberships__user=user, memberships__role=Role.ADMIN)


class ItemQuerySet(models.QuerySet):
    def for_user(self, user) -> "ItemQuerySet":
        """Items of the projects the user is a member of (as ProjectQuerySet.for_user)."""
        if not user.is_authenticated:
            return self.none()
        return self.filter(project__memberships__user=user)

    def open(self) -> "ItemQuerySet":
        """Items that still need answers."""
        return self.filter(is_done=False)

    def done(self) -> "ItemQuerySet":
        return self.filter(is_done=True)

    def labeled(self) -> "ItemQuerySet":
        """Items with at least one current answer."""
        return self.filter(models.Exists(self._current_answers()))

    def unlabeled(self) -> "ItemQuerySet":
        return self.exclude(models.Exists(self._current_answers()))

    @staticmethod
    def _current_answers():
        from core.models import Annotation

        return Annotation.objects.filter(item=models.OuterRef("pk"), is_current=True)
