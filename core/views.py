"""HTML pages (htmx). Views parse, authorize, call one service, render. No ML here."""

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails

from core import charts
from core.access import (
    item_for,
    may_create_projects,
    project_creation_check,
    project_for,
)
from core.converters import MAX_ID
from core.downloads import export_download, export_job_file
from core.forms import (
    BrowseForm,
    ExportForm,
    ImportForm,
    InvitationForm,
    LabelClassForm,
    MemberForm,
    ProjectCreateForm,
    ProjectSettingsForm,
    SignupForm,
    form_errors_text,
    item_numbers,
)
from core.models import (
    Invitation,
    Item,
    Job,
    LabelClass,
    LabelingMode,
    Lease,
    Membership,
    Prediction,
    Project,
    VerificationPage,
)
from core.roles import Action, grantable_roles, role_actions, role_can
from core.selectors import progress, review
from core.selectors.browse import item_browse
from core.selectors.common import membership_role
from core.selectors.guide import project_guide
from core.selectors.progress import (
    annotator_progress,
    model_versions,
    project_progress,
    recent_jobs,
)
from core.selectors.queue import (
    answered_lease_before,
    current_annotation,
    page_tiles,
    queue_candidate_ids,
    shown_prediction,
    suggestion_for_item,
    suggestion_ranking,
)
from core.selectors.review import REVIEW_KINDS
from core.services.classes import (
    ClassChangeError,
    label_class_create,
    label_class_move,
    label_class_update,
    label_classes_merge,
)
from core.services.exports import (
    ExportError,
    export_in_background,
    export_request,
)
from core.services.invitations import (
    InvitationError,
    invitation_accept,
    invitation_create,
    invitation_for_token,
    invitation_revoke,
    open_invitations,
)
from core.services.jobs import public_metrics
from core.services.labeling import last_was_page, next_task
from core.services.loop import embed_request, pretrain_request, training_request
from core.services.projects import (
    MembershipError,
    membership_remove,
    membership_set,
    project_create,
    project_settings_update,
)
from core.services.queue import (
    QueueError,
    annotation_review,
    annotation_submit,
    item_skip,
)
from core.services.quotas import QuotaExceeded
from core.services.uploads import UploadTooLarge, upload_size_check, uploads_import
from core.services.verification import page_previous, page_submit
from models_ml.store import StoreDamaged


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def _item_for(request: HttpRequest, project_id: int, item_id) -> Item:
    """`item_for` with the item's id as a form sent it."""
    return item_for(request, project_id, _posted_id(item_id))


def _posted_id(value) -> int:
    """An id sent in a form field or the query string; 404 when it is missing or not a
    number, as for a number that names nothing (never a server error)."""
    if (number := _id_or_none(value)) is None:
        raise Http404("No such object.")
    return number


def _id_or_none(value) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if 0 <= number <= MAX_ID else None


@require_GET
@login_required
def project_list(request: HtmxHttpRequest) -> HttpResponse:
    projects = Project.objects.for_user(request.user).annotate(
        total=Count("items", distinct=True),
        done=Count("items", filter=Q(items__is_done=True), distinct=True),
    )
    return render(
        request,
        "core/project_list.html",
        {"projects": projects, "may_create": may_create_projects(request.user)},
    )


@require_http_methods(["GET", "POST"])
@login_required
def project_new(request: HtmxHttpRequest) -> HttpResponse:
    project_creation_check(request)
    form = ProjectCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        project = project_create(
            name=form.cleaned_data["name"],
            description=form.cleaned_data["description"],
            created_by=request.user,
            class_names=form.cleaned_data["class_names"],
        )
        return redirect("core:project_detail", project_id=project.pk)
    return render(request, "core/project_new.html", {"form": form})


@require_GET
@login_required
def project_detail(request: HtmxHttpRequest, project_id: int) -> HttpResponse:
    project = project_for(request, project_id)
    role = membership_role(project=project, user=request.user)
    can = role_actions(role)  # what this member's role may do: the page shows only that
    grantable = grantable_roles(role)  # the roles they may give, take away or invite as
    if request.GET.get("partial") == "encoder":  # live.js refreshes it on "encoder" events
        context = {"project": project, "can": can}
        return render(request, "core/project_detail.html#encoder", context)
    context = {
        "project": project,
        "role": role,
        "can": can,
        "progress": project_progress(project=project),
        "classes": project.classes.prefetch_related("examples"),
        "members": project.memberships.select_related("user").order_by("user__username"),
        "settings_form": ProjectSettingsForm(instance=project) if can["configure"] else None,
        "member_form": MemberForm(roles=grantable) if can["members"] else None,
        "grantable": grantable,
        "invitation_form": InvitationForm(roles=grantable) if can["members"] else None,
        "invitations": open_invitations(project=project) if can["members"] else [],
        "class_form": LabelClassForm() if can["configure"] else None,
        "current_version": project.current_model_version,
        "jobs": recent_jobs(project=project),
        "model_versions": model_versions(project=project),
        "export_form": ExportForm(initial={"format": "csv"}) if can["export"] else None,
    }
    return render(request, "core/project_detail.html", context)


@require_GET
@login_required
def project_jobs(request: HttpRequest, project_id: int) -> HttpResponse:
    """The jobs table alone: live.js re-fetches it whenever its websocket (re)connects."""
    project = project_for(request, project_id)
    context = {
        "jobs": recent_jobs(project=project),
        "project_id": project.pk,
        "can_export": role_can(membership_role(project=project, user=request.user), Action.EXPORT),
        "is_staff": request.user.is_staff,
    }
    return render(request, "core/jobs_table.html", context)


@require_GET
@login_required
def project_dashboard(request: HtmxHttpRequest, project_id: int) -> HttpResponse:
    """The admin's live view: progress, charts, annotators, jobs, versions. htmx re-fetches
    the body on websocket events and every few seconds (?partial=1 renders only the body)."""
    project = project_for(request, project_id, action=Action.DASHBOARD)
    data = progress.project_dashboard(project=project)
    context = {
        "project": project,
        "can": role_actions(membership_role(project=project, user=request.user)),
        "data": data,
        "class_chart": charts.bar_chart(data["class_counts"]),
        "curve_chart": charts.line_chart(
            [
                ("estimated accuracy (cross-validated)", data["learning_curve"]),
                ("prefill kept (share of suggestions accepted)", data["prefill"]),
            ],
            x_label="labels",
            y_label="accuracy",
        ),
    }
    if request.htmx or request.GET.get("partial"):
        return render(request, "core/dashboard.html#dashboard-body", context)
    return render(request, "core/dashboard.html", context)


@require_GET
@login_required
def review_queue(request: HtmxHttpRequest, project_id: int) -> HttpResponse:
    """Items to check (reviewers and up): annotators disagree, the model confidently
    disagrees, or not reviewed yet. Keys: Enter accepts, a class key changes, arrows move."""
    project = project_for(request, project_id, action=Action.REVIEW)
    kind = request.GET.get("kind", "disagreement")
    if kind not in REVIEW_KINDS:
        raise Http404("Unknown review list.")
    try:
        min_confidence = min(1.0, max(0.0, float(request.GET.get("min_confidence", 0.8))))
        after = max(0, int(request.GET.get("after", 0)))
    except ValueError:
        min_confidence, after = 0.8, 0
    entries = review.review_queue(
        project=project, kind=kind, min_confidence=min_confidence, after=after
    )
    context = {
        "project": project,
        "kind": kind,
        "min_confidence": min_confidence,
        "entries": entries,
        "classes": list(project.classes.all()),
        "next_after": entries[-1]["item"].pk if len(entries) == 24 else None,
    }
    return render(request, "core/review.html", context)


@require_POST
@login_required
def review_relabel(request: HtmxHttpRequest, project_id: int, item_id: int) -> HttpResponse:
    project = project_for(request, project_id, action=Action.REVIEW)
    item = get_object_or_404(Item, pk=item_id, project=project)
    label_class = get_object_or_404(
        LabelClass, pk=_posted_id(request.POST.get("label_class")), project=project
    )  # accepting posts the class the answers agree on; changing, another one
    annotation_review(item=item, reviewer=request.user, label_class=label_class)
    item.refresh_from_db(fields=["review_state"])
    if request.htmx:
        return render(
            request,
            "core/review.html#settled",
            {"item": item, "label_class": label_class, "state": item.get_review_state_display()},
        )
    messages.success(request, f"{item.original_name} is now {label_class.name}.")
    kind = request.POST.get("kind")
    query = f"?kind={kind}" if kind in REVIEW_KINDS else ""
    return redirect(reverse("core:review_queue", args=[project.pk]) + query)


@require_GET
@login_required
def export_file(request: HttpRequest, project_id: int, job_id: int) -> FileResponse:
    """The file of a finished export job (admins), as an attachment."""
    return export_job_file(
        project=project_for(request, project_id, action=Action.EXPORT), job_id=job_id
    )


@require_GET
@login_required
def item_browser(request: HtmxHttpRequest, project_id: int) -> HttpResponse:
    """Thumbnails with filters and keyset paging; "more like this" from the embeddings."""
    project = project_for(request, project_id, action=Action.REVIEW)
    form = BrowseForm(request.GET or None, project=project)
    filters = form.cleaned_data if form.is_valid() else {}
    try:
        entries, next_after = item_browse(
            project=project,
            status=filters.get("status") or "all",
            label_class_id=filters.get("label_class"),
            annotator_id=filters.get("annotator"),
            predicted_class_id=filters.get("predicted_class"),
            min_confidence=filters.get("min_confidence"),
            max_confidence=filters.get("max_confidence"),
            after=filters.get("after") or 0,
            similar_to=filters.get("similar_to"),
        )
    except StoreDamaged:
        # "More like this" reads the embeddings file: degrade, and have the worker rebuild it.
        embed_request(project=project, reason="the embeddings file is damaged")
        messages.warning(
            request,
            "The embeddings of this project are damaged and are being rebuilt; "
            "“more like this” works again when the embedding job has finished.",
        )
        entries, next_after = [], None
    query = request.GET.copy()
    query.pop("after", None)
    query.pop("similar_to", None)
    context = {
        "project": project,
        "form": form,
        "entries": entries,
        "next_after": next_after,
        "query": query.urlencode(),
        "similar_to": filters.get("similar_to"),
        "errors": form.errors if request.GET and not form.is_valid() else None,
    }
    return render(request, "core/browse.html", context)


@require_GET
@login_required
def project_export(request: HtmxHttpRequest, project_id: int) -> HttpResponse:
    """Download the labels (admins): ?format=csv|jsonl|coco|imagefolder|parquet
    [&include_pseudo_labels=MIN_CONFIDENCE | &audited_pseudo_labels=on][&split=VAL_FRACTION]."""
    project = project_for(request, project_id, action=Action.EXPORT)
    form = ExportForm(request.GET)
    if not form.is_valid():
        messages.error(request, f"Export not possible. {form_errors_text(form)}")
        return redirect("core:project_detail", project_id=project.pk)
    fmt = form.cleaned_data["format"]
    if export_in_background(project=project, fmt=fmt):
        try:
            job = export_request(project=project, **form.options(), requested_by=request.user)
        except (ExportError, QuotaExceeded) as exc:
            messages.error(request, str(exc))
        else:
            messages.success(
                request,
                f"Export queued (job #{job.pk}); its download link appears in the jobs table "
                "when it is written.",
            )
        return redirect("core:project_detail", project_id=project.pk)
    return export_download(project=project, **form.options())


@require_POST
@login_required
def project_train(request: HtmxHttpRequest, project_id: int) -> HttpResponse:
    project = project_for(request, project_id, action=Action.TRAIN)
    job = training_request(
        project=project, reason="requested on the project page", requested_by=request.user
    )
    messages.success(request, f"Training run queued (job #{job.pk}).")
    return redirect("core:project_detail", project_id=project.pk)


@require_POST
@login_required
def project_pretrain(request: HtmxHttpRequest, project_id: int) -> HttpResponse:
    project = project_for(request, project_id, action=Action.TRAIN)
    try:
        job = pretrain_request(project=project, requested_by=request.user)
    except QuotaExceeded as exc:
        messages.error(request, str(exc))
        return redirect("core:project_detail", project_id=project.pk)
    messages.success(
        request,
        f"In-domain pretraining queued (job #{job.pk}). The project switches to the new "
        "encoder when it finishes.",
    )
    return redirect("core:project_detail", project_id=project.pk)


@require_POST
@login_required
def project_settings(request: HtmxHttpRequest, project_id: int) -> HttpResponse:
    project = project_for(request, project_id, action=Action.CONFIGURE)
    form = ProjectSettingsForm(request.POST, instance=Project.objects.get(pk=project.pk))
    if form.is_valid():
        project_settings_update(
            project=project, **{f: form.cleaned_data[f] for f in form.Meta.fields}
        )
        messages.success(request, "Settings saved.")
    else:
        messages.error(request, f"Settings not saved. {form_errors_text(form)}")
    return redirect("core:project_detail", project_id=project.pk)


@require_POST
@login_required
def project_member_set(request: HtmxHttpRequest, project_id: int) -> HttpResponse:
    project = project_for(request, project_id, action=Action.MEMBERS)
    form = MemberForm(request.POST)
    if form.is_valid():
        try:
            membership_set(
                project=project,
                user=form.cleaned_data["username"],
                role=form.cleaned_data["role"],
                by=request.user,
            )
            messages.success(
                request, f"{form.cleaned_data['username']} is now {form.cleaned_data['role']}."
            )
        except MembershipError as exc:
            messages.error(request, str(exc))
    else:
        messages.error(request, form_errors_text(form))
    return redirect("core:project_detail", project_id=project.pk)


@require_POST
@login_required
def project_member_remove(request: HtmxHttpRequest, project_id: int, user_id: int):
    project = project_for(request, project_id, action=Action.MEMBERS)
    membership = get_object_or_404(
        Membership.objects.select_related("user"), project=project, user_id=user_id
    )
    try:
        membership_remove(project=project, user=membership.user, by=request.user)
        messages.success(request, f"{membership.user.username} is no longer a member.")
    except MembershipError as exc:
        messages.error(request, str(exc))
    return redirect("core:project_detail", project_id=project.pk)


@require_POST
@login_required
def project_invite(request: HtmxHttpRequest, project_id: int) -> HttpResponse:
    """A new invitation link (shown once, in the message) for a role the member may give."""
    project = project_for(request, project_id, action=Action.MEMBERS)
    form = InvitationForm(request.POST)
    if not form.is_valid():
        messages.error(request, form_errors_text(form))
        return redirect("core:project_detail", project_id=project.pk)
    try:
        new = invitation_create(project=project, by=request.user, **form.cleaned_data)
    except InvitationError as exc:
        messages.error(request, str(exc))
        return redirect("core:project_detail", project_id=project.pk)
    link = request.build_absolute_uri(reverse("core:invitation_open", args=[new.token]))
    messages.success(
        request,
        f"Invitation link for {new.invitation.get_role_display().lower()}s (shown only now; "
        f"valid {form.cleaned_data['days']} days, {new.invitation.max_uses} "
        f"{'person' if new.invitation.max_uses == 1 else 'people'}): {link}",
    )
    return redirect("core:project_detail", project_id=project.pk)


@require_POST
@login_required
def invitation_revoke_view(request: HtmxHttpRequest, project_id: int, invitation_id: int):
    project = project_for(request, project_id, action=Action.MEMBERS)
    invitation = get_object_or_404(Invitation, pk=invitation_id, project=project)
    invitation_revoke(invitation=invitation, by=request.user)
    messages.success(request, "Invitation withdrawn: its link no longer works.")
    return redirect("core:project_detail", project_id=project.pk)


@require_http_methods(["GET", "POST"])
def invitation_open(request: HtmxHttpRequest, token: str) -> HttpResponse:
    """An invitation link: join the project (signing up first when not logged in)."""
    try:
        invitation = invitation_for_token(token)
    except InvitationError as exc:
        return render(request, "core/invitation.html", {"error": str(exc)}, status=410)
    form = None
    if request.user.is_authenticated:
        if request.method == "POST":
            return _invitation_join(request, token, request.user)
    else:
        form = SignupForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            with transaction.atomic():
                user = form.save()
                response = _invitation_join(request, token, user)
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return response
    context = {"invitation": invitation, "form": form, "token": token}
    return render(request, "core/invitation.html", context)


def _invitation_join(request, token: str, user) -> HttpResponse:
    try:
        membership = invitation_accept(token=token, user=user)
    except InvitationError as exc:
        return render(request, "core/invitation.html", {"error": str(exc)}, status=410)
    messages.success(request, f"You are a member of {membership.project.name} ({membership.role}).")
    return redirect("core:project_detail", project_id=membership.project_id)


@require_POST
@login_required
def label_class_add(request: HtmxHttpRequest, project_id: int) -> HttpResponse:
    project = project_for(request, project_id, action=Action.CONFIGURE)
    form = LabelClassForm(request.POST)
    if form.is_valid():
        try:
            label_class_create(
                project=project,
                name=form.cleaned_data["name"],
                hotkey=form.cleaned_data["hotkey"] or None,
            )
        except (ValueError, ValidationError) as exc:
            messages.error(request, str(exc))
        except IntegrityError:
            messages.error(request, "Class not added: that name or hotkey is already used.")
    else:
        messages.error(request, form_errors_text(form))
    return redirect("core:project_detail", project_id=project.pk)


@require_POST
@login_required
def label_class_edit(request: HtmxHttpRequest, project_id: int, class_id: int) -> HttpResponse:
    """Rename / set the hotkey (action=save), move (up, down), or merge into another class."""
    project = project_for(request, project_id, action=Action.CONFIGURE)
    label_class = get_object_or_404(LabelClass, pk=class_id, project=project)
    action = request.POST.get("action", "save")
    try:
        if action in ("up", "down"):
            label_class_move(label_class=label_class, step=-1 if action == "up" else 1)
        elif action == "merge":
            target = get_object_or_404(
                LabelClass, pk=_posted_id(request.POST.get("into")), project=project
            )
            changed = label_classes_merge(source=label_class, target=target)
            messages.success(
                request,
                f"Merged {label_class.name!r} into {target.name!r}: "
                f"{changed['annotations']} answers relabeled; a training run is queued.",
            )
        else:
            examples = request.POST.get("examples")
            label_class_update(
                label_class=label_class,
                name=request.POST.get("name"),
                hotkey=request.POST.get("hotkey", ""),
                description=request.POST.get("description"),
                example_ids=item_numbers(examples) if examples is not None else None,
            )
    except ClassChangeError as exc:
        messages.error(request, str(exc))
    except ValidationError as exc:
        messages.error(request, f"Examples: {' '.join(exc.messages)}")
    return redirect("core:project_detail", project_id=project.pk)


@require_http_methods(["GET", "POST"])
@login_required
def item_import(request: HtmxHttpRequest, project_id: int) -> HttpResponse:
    """Upload images or zips. A few images import in the request and the report comes back;
    zips and big batches become an import job whose progress the page follows."""
    project = project_for(request, project_id, action=Action.IMPORT)
    context = {"project": project, "form": ImportForm(), "report": None, "job": None}
    status_code = 200
    if request.method == "POST":
        try:
            upload_size_check(request.META.get("CONTENT_LENGTH"))
            form = context["form"] = ImportForm(request.POST, request.FILES)
            if form.is_valid():
                outcome = uploads_import(
                    project=project,
                    files=form.cleaned_data["files"],
                    labels_as=form.cleaned_data["labels_as"] or None,
                    user=request.user,
                )
                if isinstance(outcome, Job):
                    context["job"] = outcome
                else:
                    context["report"] = outcome.as_dict()
        except UploadTooLarge as exc:
            context["refused"], status_code = str(exc), 413
        except QuotaExceeded as exc:
            context["refused"], status_code = str(exc), 429
    if request.htmx and request.method == "POST":
        # htmx does not swap 4xx answers: a refusal comes back as a page fragment that says it.
        return render(request, "core/import.html#outcome", context)
    return render(request, "core/import.html", context, status=status_code)


@require_GET
@login_required
def import_job(request: HtmxHttpRequest, project_id: int, job_id: int) -> HttpResponse:
    """An import job's progress and, once it has finished, its report (the import page
    polls this while the job runs)."""
    project = project_for(request, project_id, action=Action.IMPORT)
    job = get_object_or_404(Job, pk=job_id, project=project, kind=Job.Kind.IMPORT)
    context = {"project": project, "job": job, "report": None, "running": 0}
    if job.status == Job.Status.QUEUED:  # what it waits for (a count: other projects' jobs)
        context["running"] = Job.objects.filter(status=Job.Status.RUNNING).count()
    if job.status == Job.Status.SUCCEEDED:
        context["report"] = public_metrics(job.metrics)
    if request.htmx:
        return render(request, "core/import.html#outcome", context)
    context["form"] = ImportForm()
    return render(request, "core/import.html", context)


# --- labeling -----------------------------------------------------------------------


def _card_context(
    request,
    project: Project,
    lease: Lease | None,
    suggestion: Prediction | None,
    *,
    editing: bool = False,
) -> dict:
    classes = list(project.classes.all())
    context: dict = {
        "project": project,
        "classes": classes,
        "progress": project_progress(project=project),
        "mine": annotator_progress(project=project, user=request.user),
        "lease": lease,
        "editing": editing,
    }
    if lease is None:
        return context
    item = lease.item
    answer = current_annotation(item=item, user=request.user) if editing else None
    # A suggestion is selected (Enter accepts it) only where it is right often enough; below
    # its version's threshold the likely classes are shown ranked and nothing is selected.
    preselected = suggestion is not None and suggestion.preselected
    selected = answer.label_class_id if answer else (
        suggestion.predicted_class_id if preselected else None
    )  # fmt: skip
    upcoming = [
        i for i in queue_candidate_ids(project=project, user=request.user, limit=2) if i != item.pk
    ]
    context.update(
        item=item,
        suggestion=suggestion,
        preselected=preselected,
        ranking=suggestion_ranking(suggestion=suggestion, classes=classes)
        if suggestion is not None and not preselected
        else [],
        answer=answer,
        selected_class_id=selected,
        preload_item_id=upcoming[0] if upcoming else None,
        # Squares for pixels only where the card (about 520 px) shows each image pixel on
        # two screen pixels or more; viewer.js updates it as the annotator zooms.
        pixelated=max(item.width, item.height) <= 260,
    )
    return context


def _render_card(request: HtmxHttpRequest, context: dict) -> HttpResponse:
    if request.htmx:
        return render(request, "core/label_session.html#card", context)
    context["guide"] = project_guide(project=context["project"])  # beside every card
    return render(request, "core/label_session.html", context)


def _labeling_mode(request: HtmxHttpRequest, project: Project) -> str:
    """The mode the annotator picked on the labeling page (kept in their session), else the
    project's."""
    key = f"labeling-mode-{project.pk}"
    chosen = request.GET.get("mode")
    if chosen in LabelingMode.values:
        request.session[key] = chosen
    mode = request.session.get(key)
    return mode if mode in LabelingMode.values else project.labeling_mode


def _next_card(request: HtmxHttpRequest, project: Project) -> HttpResponse:
    """After an answer or a skip: the next card or verification page over htmx, a redirect
    to the labeling page otherwise."""
    if request.method == "POST" and not request.htmx:
        return redirect("core:label_session", project_id=project.pk)
    mode = _labeling_mode(request, project)
    task = next_task(project=project, user=request.user, mode=mode)
    if task is not None and task.page is not None:
        return _render_page(request, _page_context(request, project, task.page, mode=mode))
    result = task.card if task is not None else None
    lease, suggestion = (result.lease, result.suggestion) if result else (None, None)
    context = _card_context(request, project, lease, suggestion)
    context.update(mode=mode, modes=LabelingMode.choices)
    return _render_card(request, context)


@require_GET
@login_required
def label_session(request: HtmxHttpRequest, project_id: int) -> HttpResponse:
    return _next_card(request, project_for(request, project_id))


# Each tile of a verification page has its own key (so a page holds at most 36 tiles).
TILE_KEYS = "1234567890qwertyuiopasdfghjklzxcvbnm"


def _page_context(
    request, project: Project, page: VerificationPage, *, mode: str, reopened: bool = False
) -> dict:
    tiles = [
        {**tile, "key": key} for tile, key in zip(page_tiles(page=page), TILE_KEYS, strict=False)
    ]
    return {
        "project": project,
        "page": page,
        "tiles": tiles,
        "reopened": reopened,
        "mode": mode,
        "modes": LabelingMode.choices,
        "progress": project_progress(project=project),
        "mine": annotator_progress(project=project, user=request.user),
    }


def _posted_duration_ms(request: HttpRequest) -> int | None:
    """The answer's time as the page measured it; a malformed one loses the timing only."""
    try:
        return int(request.POST.get("duration_ms") or 0) or None
    except ValueError:
        return None


def _back_to_queue(request: HtmxHttpRequest, project: Project, message: str) -> HttpResponse:
    """Backspace with nothing to go back to: say so, and show the queue."""
    messages.info(request, message)
    url = reverse("core:label_session", args=[project.pk])
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def _render_page(request: HtmxHttpRequest, context: dict) -> HttpResponse:
    if request.htmx:
        return render(request, "core/label_session.html#page", context)
    context["guide"] = project_guide(project=context["project"])
    return render(request, "core/label_session.html", context)


@require_POST
@login_required
def label_page_submit(request: HtmxHttpRequest, project_id: int, page_id: int) -> HttpResponse:
    """Accept a verification page: the tiles posted as `rejected` are not its class."""
    project = project_for(request, project_id)
    page = get_object_or_404(VerificationPage, pk=page_id, project=project, annotator=request.user)
    rejected = {_posted_id(value) for value in request.POST.getlist("rejected")}
    duration_ms = _posted_duration_ms(request)
    try:
        answer = page_submit(
            page=page, user=request.user, rejected_ids=rejected, duration_ms=duration_ms
        )
    except QueueError as exc:
        messages.warning(request, str(exc))
    else:
        if answer.lost:
            messages.warning(
                request,
                f"{answer.lost} image(s) of that page had gone to somebody else (the page's "
                "lease had expired); your answers for the others were stored.",
            )
    return _next_card(request, project)


@require_GET
@login_required
def label_page_previous(request: HtmxHttpRequest, project_id: int) -> HttpResponse:
    """The annotator's previous verification page, to look at or change (Backspace)."""
    project = project_for(request, project_id)
    before = None
    if request.GET.get("before"):
        before = VerificationPage.objects.filter(
            pk=_posted_id(request.GET["before"]), annotator=request.user, project=project
        ).first()
    page = page_previous(project=project, user=request.user, before=before)
    if page is None:
        return _back_to_queue(request, project, "No earlier page to go back to.")
    mode = _labeling_mode(request, project)
    return _render_page(request, _page_context(request, project, page, mode=mode, reopened=True))


@require_POST
@login_required
def label_submit(request: HtmxHttpRequest, project_id: int) -> HttpResponse:
    item = _item_for(request, project_id, request.POST.get("item"))
    project = item.project
    label_class = get_object_or_404(
        LabelClass, pk=_posted_id(request.POST.get("label_class")), project=project
    )
    # A malformed suggestion id loses the suggestion's provenance, not the answer.
    prediction = shown_prediction(
        item=item, prediction_id=_id_or_none(request.POST.get("prediction"))
    )
    duration_ms = _posted_duration_ms(request)
    try:
        annotation_submit(
            item=item,
            user=request.user,
            label_class=label_class,
            duration_ms=duration_ms,
            shown_prediction=prediction,
        )
    except QueueError as exc:
        messages.warning(request, str(exc))
    return _next_card(request, project)


@require_POST
@login_required
def label_skip(request: HtmxHttpRequest, project_id: int) -> HttpResponse:
    item = _item_for(request, project_id, request.POST.get("item"))
    item_skip(item=item, user=request.user)
    return _next_card(request, item.project)


@require_GET
@login_required
def label_previous(request: HtmxHttpRequest, project_id: int) -> HttpResponse:
    """The annotator's previous answer, to change it (Backspace): their last card, or their
    last verification page when that came after it."""
    project = project_for(request, project_id)
    if not request.GET.get("before") and last_was_page(project, request.user):
        return label_page_previous(request, project_id)
    before = None
    if request.GET.get("before"):
        before = Lease.objects.filter(
            pk=_posted_id(request.GET["before"]), annotator=request.user, item__project=project
        ).first()
    lease = answered_lease_before(project=project, user=request.user, before=before)
    if lease is None:
        return _back_to_queue(request, project, "No earlier answer to go back to.")
    suggestion = suggestion_for_item(item=lease.item, project=project)
    return _render_card(request, _card_context(request, project, lease, suggestion, editing=True))


# --- images ---------------------------------------------------------------------------


def _image_response(
    request: HttpRequest, project_id: int, item_id: int, field: str
) -> FileResponse:
    project = project_for(request, project_id)
    item = get_object_or_404(Item, pk=item_id, project=project)
    file = getattr(item, field)
    try:
        handle = file.open("rb")
    except FileNotFoundError as exc:
        raise Http404("Image file is missing from storage.") from exc
    content_type = "image/png" if file.name.endswith(".png") else "image/jpeg"
    response = FileResponse(handle, content_type=content_type)
    # We re-encoded the file ourselves, and still never let a browser treat it as a page.
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, max-age=86400"
    return response


@require_GET
@login_required
def item_image(request: HttpRequest, project_id: int, item_id: int) -> FileResponse:
    return _image_response(request, project_id, item_id, "image")


@require_GET
@login_required
def item_thumbnail(request: HttpRequest, project_id: int, item_id: int) -> FileResponse:
    return _image_response(request, project_id, item_id, "thumbnail")
