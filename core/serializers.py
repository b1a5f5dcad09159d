import copy

from django.urls import reverse
from rest_framework import serializers

from core.converters import MAX_ID
from core.models import Annotation, Item, Job, LabelClass, Prediction, Project
from core.services.classes import CLASS_EXAMPLES_MAX, class_names_check
from core.services.jobs import public_metrics
from core.services.projects import SETTINGS_FIELDS
from core.services.queue import MAX_ANSWER_MS


class FieldsOnceModelSerializer(serializers.ModelSerializer):
    """A ModelSerializer that works out its fields from the model once per class.

    DRF's ModelSerializer introspects the model for every instance it makes, and the
    labeling endpoints make a few per request: about 0.3 ms each on the 2-core machine,
    where a lease + submit pair costs ~20 ms of Python in all. The fields depend only on
    the class (Meta and the declared fields), so the first instance's are kept and
    every instance gets a deep copy, which is how DRF hands out declared fields too.
    """

    _fields_of_class: dict[type, dict] = {}

    def get_fields(self):
        cls = type(self)
        if cls not in self._fields_of_class:
            self._fields_of_class[cls] = super().get_fields()
        return copy.deepcopy(self._fields_of_class[cls])


class ItemIdsField(serializers.ListField):
    """Item ids in, item ids out (from a many-to-many relation to items)."""

    def to_representation(self, data):
        return sorted(item.pk for item in data.all())


class LabelClassSerializer(serializers.ModelSerializer):
    examples = ItemIdsField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID),
        max_length=CLASS_EXAMPLES_MAX,
        required=False,
        help_text="Ids of the project's images that show the class (shown with the guideline).",
    )

    class Meta:
        model = LabelClass
        fields = ["id", "name", "order", "hotkey", "description", "examples"]
        read_only_fields = ["id", "order"]
        extra_kwargs = {"hotkey": {"required": False}, "description": {"required": False}}


class ClassMergeSerializer(serializers.Serializer):
    into = serializers.IntegerField(
        min_value=0, max_value=MAX_ID, help_text="id of the class that absorbs this one"
    )


class ProjectSerializer(serializers.ModelSerializer):
    classes = LabelClassSerializer(many=True, read_only=True)
    class_names = serializers.ListField(
        child=serializers.CharField(max_length=100), write_only=True, required=False
    )
    role = serializers.SerializerMethodField()

    class Meta:
        model = Project
        fields = [
            "id",
            *SETTINGS_FIELDS,
            "created_at",
            "current_model_version",
            "embedding_key",
            "encoder_used",
            "encoder_notice",
            "encoder_comparison",
            "zero_shot_notice",
            "classes",
            "class_names",
            "role",
        ]
        read_only_fields = [
            "id",
            "created_at",
            "current_model_version",
            "embedding_key",
            "encoder_used",
            "encoder_notice",
            "encoder_comparison",
            "zero_shot_notice",
            "classes",
            "role",
        ]

    def validate_class_names(self, names: list[str]) -> list[str]:
        try:
            return class_names_check([n for n in names if n.strip()])
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from exc

    def get_role(self, project: Project) -> str | None:
        roles = self.context.get("roles", {})
        return roles.get(project.pk)


class ItemSerializer(FieldsOnceModelSerializer):
    image_url = serializers.SerializerMethodField()
    thumbnail_url = serializers.SerializerMethodField()

    class Meta:
        model = Item
        fields = [
            "id",
            "original_name",
            "width",
            "height",
            "split",
            "annotation_count",
            "is_done",
            "created_at",
            "image_url",
            "thumbnail_url",
        ]

    def get_image_url(self, item: Item) -> str:
        return reverse("core:item_image", args=[item.project_id, item.pk])

    def get_thumbnail_url(self, item: Item) -> str:
        return reverse("core:item_thumbnail", args=[item.project_id, item.pk])


class AnnotationSerializer(FieldsOnceModelSerializer):
    annotator = serializers.CharField(source="annotator.username", read_only=True)
    suggestion_accepted = serializers.BooleanField(read_only=True, allow_null=True)

    class Meta:
        model = Annotation
        fields = [
            "id",
            "item",
            "annotator",
            "label_class",
            "source",
            "suggested_class",
            "suggestion_source",
            "suggestion_confidence",
            "suggestion_model_version",
            "suggestion_accepted",
            "duration_ms",
            "created_at",
            "is_current",
            "supersedes",
        ]
        read_only_fields = fields


class SuggestionSerializer(FieldsOnceModelSerializer):
    model_version_number = serializers.IntegerField(source="model_version.number", read_only=True)
    model_version_labels = serializers.IntegerField(
        source="model_version.labels_count",
        read_only=True,
        help_text="Labels the version was trained on (0 for zero-shot).",
    )
    preselected = serializers.BooleanField(
        read_only=True,
        help_text="Confident enough to be selected for the annotator (Enter accepts it); "
        "otherwise show the ranked classes and select none.",
    )

    class Meta:
        model = Prediction
        fields = [
            "id",
            "predicted_class",
            "confidence",
            "source",
            "model_version",
            "model_version_number",
            "model_version_labels",
            "preselected",
        ]


class LeaseSerializer(serializers.Serializer):
    lease_id = serializers.IntegerField(source="pk")
    expires_at = serializers.DateTimeField()
    item = ItemSerializer()
    suggestion = SuggestionSerializer(allow_null=True)
    refreshed = serializers.BooleanField(help_text="True when an existing lease was returned.")


class PageTileSerializer(serializers.Serializer):
    item = ItemSerializer()
    confidence = serializers.FloatField(
        allow_null=True, help_text="The model's, when the page was made."
    )
    rejected = serializers.BooleanField(help_text="Marked as not the page's class.")


class PageSerializer(serializers.Serializer):
    """A verification page: accept it with the ids of the tiles that are not its class."""

    page_id = serializers.IntegerField(source="pk")
    label_class = serializers.IntegerField(source="label_class_id")
    model_version = serializers.IntegerField(source="model_version_id", allow_null=True)
    expires_at = serializers.DateTimeField()
    completed_at = serializers.DateTimeField(allow_null=True)
    tiles = PageTileSerializer(many=True)


class PageSubmitSerializer(serializers.Serializer):
    rejected = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=MAX_ID),
        required=False,
        default=list,
        max_length=64,
        help_text="Item ids of the tiles that are not the page's class; the rest are.",
    )
    duration_ms = serializers.IntegerField(
        required=False, min_value=0, max_value=MAX_ANSWER_MS, allow_null=True
    )


class PageAnswerSerializer(serializers.Serializer):
    accepted = serializers.IntegerField(help_text="Labels this answer added.")
    withdrawn = serializers.IntegerField(help_text="Labels it took back (a changed answer).")
    rejected = serializers.IntegerField(help_text="Tiles marked, back in the queue.")
    lost = serializers.IntegerField(help_text="Tiles that had gone to somebody else.")
    changed = serializers.BooleanField(help_text="False: the same answer as the one stored.")


class SubmitSerializer(serializers.Serializer):
    label_class = serializers.IntegerField(min_value=0, max_value=MAX_ID)
    duration_ms = serializers.IntegerField(
        required=False, min_value=0, max_value=MAX_ANSWER_MS, allow_null=True
    )
    prediction = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=0,
        max_value=MAX_ID,
        help_text="Id of the suggestion that was shown.",
    )


class ImportReportSerializer(serializers.Serializer):
    imported = serializers.IntegerField()
    duplicates = serializers.ListField(child=serializers.DictField())
    duplicates_count = serializers.IntegerField()
    rejected = serializers.ListField(child=serializers.DictField())
    rejected_count = serializers.IntegerField()
    created_classes = serializers.ListField(child=serializers.CharField())


class JobSerializer(serializers.ModelSerializer):
    model_version = serializers.IntegerField(
        source="model_version.number", read_only=True, allow_null=True, default=None
    )
    duration_s = serializers.FloatField(read_only=True, allow_null=True)
    metrics = serializers.SerializerMethodField()
    download_url = serializers.SerializerMethodField(
        help_text="A finished export's file (admins); null for other jobs."
    )

    class Meta:
        model = Job
        fields = [
            "id",
            "kind",
            "status",
            "reason",
            "requests",
            "progress",
            "message",
            "metrics",
            "model_version",
            "created_at",
            "started_at",
            "heartbeat_at",
            "finished_at",
            "duration_s",
            "download_url",
        ]
        read_only_fields = fields

    def get_download_url(self, job: Job) -> str | None:
        if job.kind != Job.Kind.EXPORT or job.status != Job.Status.SUCCEEDED:
            return None
        return reverse("api_export_file", args=[job.project_id, job.pk])

    def get_metrics(self, job: Job) -> dict:
        """Without server paths (the traceback, `error`, is not in the API at all)."""
        return public_metrics(job.metrics)
