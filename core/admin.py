from django.contrib import admin

from core.models import Annotation, Item, LabelClass, Lease, Membership, ModelVersion, Project


class LabelClassInline(admin.TabularInline):
    model = LabelClass
    extra = 0


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "strategy", "annotators_per_item", "created_at"]
    inlines = [LabelClassInline, MembershipInline]
    raw_id_fields = ["current_model_version", "created_by"]


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "original_name", "split", "annotation_count", "is_done"]
    list_filter = ["project", "is_done", "split"]
    raw_id_fields = ["project", "ground_truth"]


@admin.register(Annotation)
class AnnotationAdmin(admin.ModelAdmin):
    list_display = ["id", "item", "annotator", "label_class", "source", "is_current", "created_at"]
    list_filter = ["source", "is_current"]
    raw_id_fields = [
        "item",
        "annotator",
        "label_class",
        "suggested_class",
        "suggestion_model_version",
        "supersedes",
    ]


@admin.register(Lease)
class LeaseAdmin(admin.ModelAdmin):
    list_display = ["id", "item", "annotator", "slot", "expires_at", "completed_at"]
    raw_id_fields = ["item", "annotator"]


admin.site.register(ModelVersion)
