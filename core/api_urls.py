from django.urls import path

from core import apis
from core.auth import ThrottledObtainAuthToken

urlpatterns = [
    path("token/", ThrottledObtainAuthToken.as_view(), name="api_token"),
    path("projects/", apis.ProjectListApi.as_view(), name="api_projects"),
    path("projects/<int:project_id>/", apis.ProjectDetailApi.as_view(), name="api_project"),
    path(
        "projects/<int:project_id>/classes/", apis.LabelClassListApi.as_view(), name="api_classes"
    ),
    path(
        "projects/<int:project_id>/classes/<int:class_id>/",
        apis.LabelClassDetailApi.as_view(),
        name="api_class",
    ),
    path(
        "projects/<int:project_id>/classes/<int:class_id>/merge/",
        apis.LabelClassMergeApi.as_view(),
        name="api_class_merge",
    ),
    path("projects/<int:project_id>/items/", apis.ItemListApi.as_view(), name="api_items"),
    path(
        "projects/<int:project_id>/items/<int:item_id>/",
        apis.ItemDetailApi.as_view(),
        name="api_item",
    ),
    path(
        "projects/<int:project_id>/items/<int:item_id>/submit/",
        apis.SubmitApi.as_view(),
        name="api_submit",
    ),
    path(
        "projects/<int:project_id>/items/<int:item_id>/skip/",
        apis.SkipApi.as_view(),
        name="api_skip",
    ),
    path(
        "projects/<int:project_id>/annotations/",
        apis.AnnotationListApi.as_view(),
        name="api_annotations",
    ),
    path("projects/<int:project_id>/jobs/", apis.JobListApi.as_view(), name="api_jobs"),
    path("projects/<int:project_id>/train/", apis.TrainApi.as_view(), name="api_train"),
    path("projects/<int:project_id>/pretrain/", apis.PretrainApi.as_view(), name="api_pretrain"),
    path(
        "projects/<int:project_id>/export/<str:export_format>/",
        apis.ExportApi.as_view(),
        name="api_export",
    ),
    path(
        "projects/<int:project_id>/lease-next/", apis.LeaseNextApi.as_view(), name="api_lease_next"
    ),
]
