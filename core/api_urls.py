from django.urls import path

from core import apis
from core.auth import ThrottledObtainAuthToken

urlpatterns = [
    path("token/", ThrottledObtainAuthToken.as_view(), name="api_token"),
    path("projects/", apis.ProjectListApi.as_view(), name="api_projects"),
    path("projects/<id:project_id>/", apis.ProjectDetailApi.as_view(), name="api_project"),
    path("projects/<id:project_id>/classes/", apis.LabelClassListApi.as_view(), name="api_classes"),
    path(
        "projects/<id:project_id>/classes/<id:class_id>/",
        apis.LabelClassDetailApi.as_view(),
        name="api_class",
    ),
    path(
        "projects/<id:project_id>/classes/<id:class_id>/merge/",
        apis.LabelClassMergeApi.as_view(),
        name="api_class_merge",
    ),
    path("projects/<id:project_id>/items/", apis.ItemListApi.as_view(), name="api_items"),
    path(
        "projects/<id:project_id>/items/<id:item_id>/",
        apis.ItemDetailApi.as_view(),
        name="api_item",
    ),
    path(
        "projects/<id:project_id>/items/<id:item_id>/submit/",
        apis.SubmitApi.as_view(),
        name="api_submit",
    ),
    path(
        "projects/<id:project_id>/items/<id:item_id>/skip/",
        apis.SkipApi.as_view(),
        name="api_skip",
    ),
    path(
        "projects/<id:project_id>/annotations/",
        apis.AnnotationListApi.as_view(),
        name="api_annotations",
    ),
    path("projects/<id:project_id>/jobs/", apis.JobListApi.as_view(), name="api_jobs"),
    path(
        "projects/<id:project_id>/jobs/<id:job_id>/file/",
        apis.ExportFileApi.as_view(),
        name="api_export_file",
    ),
    path("projects/<id:project_id>/train/", apis.TrainApi.as_view(), name="api_train"),
    path("projects/<id:project_id>/pretrain/", apis.PretrainApi.as_view(), name="api_pretrain"),
    path(
        "projects/<id:project_id>/export/<str:export_format>/",
        apis.ExportApi.as_view(),
        name="api_export",
    ),
    path(
        "projects/<id:project_id>/lease-next/", apis.LeaseNextApi.as_view(), name="api_lease_next"
    ),
    path("projects/<id:project_id>/pages/lease/", apis.PageLeaseApi.as_view(), name="api_page"),
    path(
        "projects/<id:project_id>/pages/<id:page_id>/submit/",
        apis.PageSubmitApi.as_view(),
        name="api_page_submit",
    ),
]
