from django.urls import path

from core import views

app_name = "core"

urlpatterns = [
    path("", views.project_list, name="project_list"),
    path("projects/new/", views.project_new, name="project_new"),
    path("projects/<id:project_id>/", views.project_detail, name="project_detail"),
    path("projects/<id:project_id>/settings/", views.project_settings, name="project_settings"),
    path("projects/<id:project_id>/train/", views.project_train, name="project_train"),
    path("projects/<id:project_id>/jobs/", views.project_jobs, name="project_jobs"),
    path("projects/<id:project_id>/export/", views.project_export, name="project_export"),
    path(
        "projects/<id:project_id>/exports/<id:job_id>/",
        views.export_file,
        name="export_file",
    ),
    path("projects/<id:project_id>/dashboard/", views.project_dashboard, name="project_dashboard"),
    path("projects/<id:project_id>/review/", views.review_queue, name="review_queue"),
    path("projects/<id:project_id>/browse/", views.item_browser, name="item_browser"),
    path(
        "projects/<id:project_id>/review/<id:item_id>/",
        views.review_relabel,
        name="review_relabel",
    ),
    path("projects/<id:project_id>/pretrain/", views.project_pretrain, name="project_pretrain"),
    path("projects/<id:project_id>/members/", views.project_member_set, name="project_member_set"),
    path(
        "projects/<id:project_id>/members/<id:user_id>/remove/",
        views.project_member_remove,
        name="project_member_remove",
    ),
    path(
        "projects/<id:project_id>/invitations/",
        views.project_invite,
        name="project_invite",
    ),
    path(
        "projects/<id:project_id>/invitations/<id:invitation_id>/revoke/",
        views.invitation_revoke_view,
        name="invitation_revoke",
    ),
    path("invite/<str:token>/", views.invitation_open, name="invitation_open"),
    path("projects/<id:project_id>/classes/", views.label_class_add, name="label_class_add"),
    path(
        "projects/<id:project_id>/classes/<id:class_id>/",
        views.label_class_edit,
        name="label_class_edit",
    ),
    path("projects/<id:project_id>/import/", views.item_import, name="item_import"),
    path(
        "projects/<id:project_id>/import/jobs/<id:job_id>/",
        views.import_job,
        name="import_job",
    ),
    path("projects/<id:project_id>/label/", views.label_session, name="label_session"),
    path("projects/<id:project_id>/label/submit/", views.label_submit, name="label_submit"),
    path("projects/<id:project_id>/label/skip/", views.label_skip, name="label_skip"),
    path("projects/<id:project_id>/label/previous/", views.label_previous, name="label_previous"),
    path(
        "projects/<id:project_id>/label/pages/<id:page_id>/",
        views.label_page_submit,
        name="label_page_submit",
    ),
    path(
        "projects/<id:project_id>/label/pages/previous/",
        views.label_page_previous,
        name="label_page_previous",
    ),
    path(
        "projects/<id:project_id>/items/<id:item_id>/image/",
        views.item_image,
        name="item_image",
    ),
    path(
        "projects/<id:project_id>/items/<id:item_id>/thumbnail/",
        views.item_thumbnail,
        name="item_thumbnail",
    ),
]
