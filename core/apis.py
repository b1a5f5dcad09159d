"""REST API (DRF). Each view: parse → authorize → call a service → serialize.

Every lookup starts from `core.access` (the user's memberships), so a project the user is
not a member of answers 404, exactly like one that does not exist.
"""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.db.models import Exists, OuterRef
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import generics, serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from core.access import item_for, project_creation_check, project_for
from core.converters import MAX_ID
from core.downloads import export_download, export_job_file
from core.forms import ExportForm
from core.models import (
    Annotation,
    Item,
    Job,
    LabelClass,
    Membership,
    Project,
    Role,
    VerificationPage,
)
from core.querysets import ITEM_STATUSES
from core.roles import Action, role_can
from core.selectors.common import membership_role
from core.selectors.queue import page_tiles, shown_prediction
from core.serializers import (
    AnnotationSerializer,
    ClassMergeSerializer,
    ImportReportSerializer,
    ItemSerializer,
    JobSerializer,
    LabelClassSerializer,
    LeaseSerializer,
    PageAnswerSerializer,
    PageSerializer,
    PageSubmitSerializer,
    ProjectSerializer,
    SubmitSerializer,
)
from core.services.classes import (
    ClassChangeError,
    label_class_create,
    label_class_update,
    label_classes_merge,
)
from core.services.exports import (
    EXPORT_FORMATS,
    ExportError,
    export_in_background,
    export_request,
)
from core.services.loop import pretrain_request, training_request
from core.services.projects import SETTINGS_FIELDS, project_create, project_settings_update
from core.services.queue import (
    LeaseResult,
    QueueError,
    annotation_submit,
    item_lease_next,
    item_skip,
)
from core.services.quotas import QuotaExceeded
from core.services.uploads import UploadTooLarge, upload_size_check, uploads_import
from core.services.verification import page_lease, page_submit

QUOTA_OR_SIZE_ERROR = OpenApiResponse(
    response={"type": "object", "additionalProperties": True},
    description="413: the upload is too big for one request; 429: a quota is used up.",
)


def exception_handler(exc, context):
    """DRF's handler, plus the service errors that have an HTTP meaning of their own:
    a used-up quota is 429 Too Many Requests, an oversized upload 413."""
    if isinstance(exc, QuotaExceeded):
        return Response({"detail": str(exc)}, status=status.HTTP_429_TOO_MANY_REQUESTS)
    if isinstance(exc, UploadTooLarge):
        return Response({"detail": str(exc)}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, DjangoValidationError):  # a model's own checks (full_clean) in a service
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        return Response(detail, status=status.HTTP_400_BAD_REQUEST)
    return drf_exception_handler(exc, context)


def _roles(user) -> dict[int, str]:
    return dict(Membership.objects.filter(user=user).values_list("project_id", "role"))


class ProjectListApi(generics.ListCreateAPIView):
    serializer_class = ProjectSerializer

    def get_queryset(self):
        return Project.objects.for_user(self.request.user).prefetch_related("classes__examples")

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "roles": _roles(self.request.user)}

    def perform_create(self, serializer):
        project_creation_check(self.request)
        data = dict(serializer.validated_data)
        class_names = data.pop("class_names", [])
        serializer.instance = project_create(
            created_by=self.request.user, class_names=class_names, **data
        )
        serializer.context["roles"] = {serializer.instance.pk: Role.OWNER}


class ProjectDetailApi(generics.RetrieveUpdateAPIView):
    serializer_class = ProjectSerializer
    http_method_names = ["get", "patch", "head", "options"]

    def get_object(self):
        return project_for(
            self.request,
            self.kwargs["project_id"],
            action=None if self.request.method in ("GET", "HEAD", "OPTIONS") else Action.CONFIGURE,
        )

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "roles": _roles(self.request.user)}

    def perform_update(self, serializer):
        changes = {k: v for k, v in serializer.validated_data.items() if k in SETTINGS_FIELDS}
        project_settings_update(project=serializer.instance, **changes)


class LabelClassListApi(generics.ListCreateAPIView):
    serializer_class = LabelClassSerializer
    pagination_class = None

    def get_queryset(self):
        return project_for(self.request, self.kwargs["project_id"]).classes.prefetch_related(
            "examples"
        )

    def perform_create(self, serializer):
        project = project_for(self.request, self.kwargs["project_id"], action=Action.CONFIGURE)
        try:
            serializer.instance = label_class_create(
                project=project,
                name=serializer.validated_data["name"],
                hotkey=serializer.validated_data.get("hotkey"),
            )
        except ValueError as exc:
            raise ValidationError({"name": [str(exc)]}) from exc
        except IntegrityError as exc:
            raise ValidationError({"name": ["That name or hotkey is already used."]}) from exc


class LabelClassDetailApi(generics.RetrieveUpdateAPIView):
    """A class; admins rename it, change its hotkey, describe it and pick example images
    (answers keep pointing at it)."""

    serializer_class = LabelClassSerializer
    http_method_names = ["get", "patch", "head", "options"]

    def get_object(self):
        project = project_for(self.request, self.kwargs["project_id"])
        return get_object_or_404(LabelClass, pk=self.kwargs["class_id"], project=project)

    def perform_update(self, serializer):
        project_for(self.request, self.kwargs["project_id"], action=Action.CONFIGURE)
        try:
            serializer.instance = label_class_update(
                label_class=serializer.instance,
                name=serializer.validated_data.get("name"),
                hotkey=serializer.validated_data.get("hotkey"),
                description=serializer.validated_data.get("description"),
                example_ids=serializer.validated_data.get("examples"),
            )
        except ClassChangeError as exc:
            raise ValidationError({"name": [str(exc)]}) from exc


class LabelClassMergeApi(APIView):
    """Merge this class into another (admins): every answer, suggestion, prediction and ground
    truth moves to the other class, this one is deleted, a training run is requested."""

    @extend_schema(
        request=ClassMergeSerializer,
        responses={
            200: inline_serializer(
                "ClassMergeResult",
                {
                    "class": LabelClassSerializer(help_text="The class that absorbed this one."),
                    "changed": serializers.DictField(
                        child=serializers.IntegerField(),
                        help_text="Rows moved: annotations, suggestions, predictions, "
                        "ground_truth.",
                    ),
                },
            )
        },
    )
    def post(self, request: Request, project_id: int, class_id: int) -> Response:
        project = project_for(request, project_id, action=Action.CONFIGURE)
        source = get_object_or_404(LabelClass, pk=class_id, project=project)
        data = ClassMergeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        target = LabelClass.objects.filter(pk=data.validated_data["into"], project=project).first()
        if target is None:
            raise ValidationError({"into": ["Not a class of this project."]})
        try:
            changed = label_classes_merge(source=source, target=target)
        except ClassChangeError as exc:
            raise ValidationError({"into": [str(exc)]}) from exc
        return Response({"class": LabelClassSerializer(target).data, "changed": changed})


class ItemListApi(generics.ListCreateAPIView):
    """List items (filter by status and class); POST multipart files to import them."""

    serializer_class = ItemSerializer

    def get_parsers(self):
        if getattr(self, "request", None) is not None and self.request.method == "POST":
            return [MultiPartParser()]
        return super().get_parsers()

    @extend_schema(
        parameters=[
            OpenApiParameter("status", enum=list(ITEM_STATUSES)),
            OpenApiParameter(
                "label", int, description="Items with a current answer of this class."
            ),
            OpenApiParameter("split", str),
        ]
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        project = project_for(self.request, self.kwargs["project_id"])
        items = Item.objects.filter(project=project).order_by("id")
        params = self.request.query_params
        item_status = params.get("status")
        if item_status and item_status not in ITEM_STATUSES:
            raise ValidationError({"status": [f"One of {', '.join(ITEM_STATUSES)}."]})
        if item_status:
            items = items.with_status(item_status)
        if params.get("label"):
            label = params["label"]
            if not (label.isascii() and label.isdigit() and len(label) <= len(str(MAX_ID))):
                raise ValidationError({"label": ["A class id (a number)."]})
            items = items.filter(
                Exists(
                    Annotation.objects.filter(
                        item=OuterRef("pk"), is_current=True, label_class_id=params["label"]
                    )
                )
            )
        if params.get("split") is not None and "split" in params:
            items = items.filter(split=params["split"])
        return items

    @extend_schema(
        request={
            "multipart/form-data": {
                "type": "object",
                "properties": {
                    "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                    "labels_as": {"type": "string", "enum": ["ground-truth", "annotations"]},
                },
            }
        },
        responses={
            201: ImportReportSerializer,
            200: ImportReportSerializer,
            202: JobSerializer,
            413: QUOTA_OR_SIZE_ERROR,
            429: QUOTA_OR_SIZE_ERROR,
        },
        description="Up to ANNOTATOR_INLINE_IMPORT_FILES plain images are imported in the "
        "request (201 with the report, 200 when none was new). Zips and bigger batches are "
        "imported by a background job: 202 with the job, whose metrics hold the report.",
    )
    def post(self, request, *args, **kwargs):
        project = project_for(request, kwargs["project_id"], action=Action.IMPORT)
        upload_size_check(request.META.get("CONTENT_LENGTH"))
        labels_as = request.data.get("labels_as") or None
        if labels_as not in (None, "ground-truth", "annotations"):
            raise ValidationError({"labels_as": ["ground-truth or annotations"]})
        files = request.FILES.getlist("files")
        if not files:
            raise ValidationError({"files": ["Send one or more files in the 'files' field."]})
        outcome = uploads_import(
            project=project, files=files, labels_as=labels_as, user=request.user
        )
        if isinstance(outcome, Job):
            return Response(JobSerializer(outcome).data, status=status.HTTP_202_ACCEPTED)
        code = status.HTTP_201_CREATED if outcome.imported else status.HTTP_200_OK
        return Response(outcome.as_dict(), status=code)


class ItemDetailApi(generics.RetrieveAPIView):
    serializer_class = ItemSerializer

    def get_object(self):
        return item_for(self.request, self.kwargs["project_id"], self.kwargs["item_id"])


class AnnotationListApi(generics.ListAPIView):
    """Current and past answers. Reviewers, admins and owners see everyone's; annotators
    their own."""

    serializer_class = AnnotationSerializer

    def get_queryset(self):
        project = project_for(self.request, self.kwargs["project_id"])
        annotations = Annotation.objects.filter(item__project=project).select_related("annotator")
        role = membership_role(project=project, user=self.request.user)
        if not role_can(role, Action.REVIEW):  # annotators see their own answers
            annotations = annotations.filter(annotator=self.request.user)
        if self.request.query_params.get("current") == "true":
            annotations = annotations.filter(is_current=True)
        return annotations.order_by("id")


def _lease_payload(result: LeaseResult) -> dict:
    return LeaseSerializer(
        {
            "pk": result.lease.pk,
            "expires_at": result.lease.expires_at,
            "item": result.lease.item,
            "suggestion": result.suggestion,
            "refreshed": not result.created,
        }
    ).data


class LeaseNextApi(APIView):
    @extend_schema(request=None, responses={200: LeaseSerializer, 204: None})
    def post(self, request: Request, project_id: int) -> Response:
        """Lease the next item to label (or return the one you hold). 204 when none is left."""
        project = project_for(request, project_id)
        result = item_lease_next(project=project, user=request.user)
        if result is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(_lease_payload(result))


class SubmitApi(APIView):
    @extend_schema(
        request=SubmitSerializer,
        responses={
            201: AnnotationSerializer,
            200: AnnotationSerializer,
            409: OpenApiResponse(
                response={"type": "object", "additionalProperties": True},
                description="No lease on the item: someone else holds or answered it.",
            ),
        },
    )
    def post(self, request: Request, project_id: int, item_id: int) -> Response:
        """Answer an item you hold (or change your answer). The same answer twice stores one."""
        item = item_for(request, project_id, item_id)
        project = item.project
        data = SubmitSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        label_class = LabelClass.objects.filter(
            pk=data.validated_data["label_class"], project=project
        ).first()
        if label_class is None:
            raise ValidationError({"label_class": ["Not a class of this project."]})
        prediction = shown_prediction(
            item=item, prediction_id=data.validated_data.get("prediction")
        )
        try:
            annotation, created = annotation_submit(
                item=item,
                user=request.user,
                label_class=label_class,
                duration_ms=data.validated_data.get("duration_ms"),
                shown_prediction=prediction,
            )
        except QueueError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(
            AnnotationSerializer(annotation).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


def _page_payload(page: VerificationPage) -> dict:
    tiles = page_tiles(page=page)
    return PageSerializer(
        {
            "pk": page.pk,
            "label_class_id": page.label_class_id,
            "model_version_id": page.model_version_id,
            "expires_at": page.expires_at,
            "completed_at": page.completed_at,
            "tiles": tiles,
        }
    ).data


class PageLeaseApi(APIView):
    @extend_schema(request=None, responses={200: PageSerializer, 204: None})
    def post(self, request: Request, project_id: int) -> Response:
        """Lease a verification page (or return the one you hold): images the model puts in one
        class. 204 when the model has no page worth serving (then lease single items)."""
        page = page_lease(project=project_for(request, project_id), user=request.user)
        if page is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(_page_payload(page))


class PageSubmitApi(APIView):
    @extend_schema(request=PageSubmitSerializer, responses={200: PageAnswerSerializer})
    def post(self, request: Request, project_id: int, page_id: int) -> Response:
        """Answer your page: `rejected` lists the tiles that are not its class, the others are
        labeled with it. The same answer twice changes nothing; a different one to a page you
        answered before is applied as the difference."""
        project = project_for(request, project_id)
        page = get_object_or_404(
            VerificationPage, pk=page_id, project=project, annotator=request.user
        )
        data = PageSubmitSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        answer = page_submit(  # the page is the user's (above): no QueueError to expect
            page=page,
            user=request.user,
            rejected_ids=set(data.validated_data["rejected"]),
            duration_ms=data.validated_data.get("duration_ms"),
        )
        return Response(PageAnswerSerializer(answer).data)


class SkipApi(APIView):
    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request, project_id: int, item_id: int) -> Response:
        """Give the item back; it will not be offered to you again."""
        item_skip(item=item_for(request, project_id, item_id), user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class JobListApi(generics.ListAPIView):
    """Background jobs of the project, newest first."""

    serializer_class = JobSerializer

    def get_queryset(self):
        project = project_for(self.request, self.kwargs["project_id"])
        return Job.objects.filter(project=project).select_related("model_version").order_by("-id")


class TrainApi(APIView):
    """Request a training run now (admins). Joins the waiting run if one is queued."""

    @extend_schema(request=None, responses={202: JobSerializer})
    def post(self, request: Request, project_id: int) -> Response:
        project = project_for(request, project_id, action=Action.TRAIN)
        job = training_request(
            project=project, reason="requested via the API", requested_by=request.user
        )
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class ExportApi(APIView):
    """Download the labels (admins) as csv, jsonl, coco, imagefolder (zip) or parquet.

    As on the project page: formats with the images, and any format past 20,000 labeled
    items, are written by an export job; the answer is then 202 with the job, whose
    `download_url` gives the file once it has succeeded. The format is part of the path
    (`?format=` is DRF's renderer switch)."""

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "export_format", str, OpenApiParameter.PATH, enum=list(EXPORT_FORMATS)
            ),
            OpenApiParameter("include_pseudo_labels", float, description="min confidence"),
            OpenApiParameter("split", float, description="validation fraction"),
        ],
        responses={
            # COCO is one JSON object; the other formats are files to save as they come.
            **{
                (200, spec.content_type.split(";")[0]): (
                    OpenApiTypes.OBJECT if spec.extension == "json" else OpenApiTypes.BINARY
                )
                for spec in EXPORT_FORMATS.values()
            },
            202: JobSerializer,
            409: OpenApiResponse(
                response={"type": "object", "additionalProperties": True},
                description="An export of this project is already waiting to run.",
            ),
            429: QUOTA_OR_SIZE_ERROR,
        },
    )
    def get(self, request: Request, project_id: int, export_format: str):
        project = project_for(request, project_id, action=Action.EXPORT)
        form = ExportForm({**request.query_params.dict(), "format": export_format})
        if not form.is_valid():
            raise ValidationError(form.errors)
        options = {"project": project, **form.options()}
        if not export_in_background(project=project, fmt=options["fmt"]):
            return export_download(**options)
        try:
            job = export_request(**options, requested_by=request.user)
        except ExportError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class ExportFileApi(APIView):
    """The file of a finished export job (admins)."""

    @extend_schema(
        responses={
            (200, spec.content_type.split(";")[0]): OpenApiTypes.BINARY
            for spec in EXPORT_FORMATS.values()
        }
    )
    def get(self, request: Request, project_id: int, job_id: int):
        return export_job_file(
            project=project_for(request, project_id, action=Action.EXPORT), job_id=job_id
        )


class PretrainApi(APIView):
    """Request in-domain SSL pretraining on the project's images (admins)."""

    @extend_schema(request=None, responses={202: JobSerializer, 429: QUOTA_OR_SIZE_ERROR})
    def post(self, request: Request, project_id: int) -> Response:
        project = project_for(request, project_id, action=Action.TRAIN)
        job = pretrain_request(project=project, requested_by=request.user)
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)
