"""QuerySet methods for the simple, reusable filters (Django's own `published()` style)."""

from django.db import models

# What `?status=` means, the same in the image browser and in the API (one place).
ITEM_STATUSES = {
    "unlabeled": "Unlabeled",  # no current answer yet (skipped ones included)
    "labeled": "Labeled",  # at least one current answer
    "skipped": "Skipped",  # someone skipped it
    "open": "Open",  # still needs answers (fewer than annotators_per_item)
    "done": "Done",  # has all the answers it needs
}


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

    def with_status(self, status: str) -> "ItemQuerySet":
        """The items of one of ITEM_STATUSES (ValueError for any other)."""
        if status == "unlabeled":
            return self.unlabeled()
        if status == "labeled":
            return self.labeled()
        if status == "skipped":
            skip = self.model._meta.get_field("skips").related_model
            return self.filter(models.Exists(skip.objects.filter(item=models.OuterRef("pk"))))
        if status == "open":
            return self.filter(is_done=False)
        if status == "done":
            return self.filter(is_done=True)
        raise ValueError(f"unknown item status {status!r}; one of {', '.join(ITEM_STATUSES)}")

    def labeled(self) -> "ItemQuerySet":
        """Items with at least one current answer."""
        return self.filter(models.Exists(self._current_answers()))

    def unlabeled(self) -> "ItemQuerySet":
        return self.exclude(models.Exists(self._current_answers()))

    def _current_answers(self):
        # The Annotation model through its relation to Item (models.py imports this module).
        annotation = self.model._meta.get_field("annotations").related_model
        return annotation.objects.filter(item=models.OuterRef("pk"), is_current=True)
