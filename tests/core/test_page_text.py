"""What pages say: durations people read, form errors named by their labels, one export
file name from the page, the API and jobs."""

from datetime import timedelta

import pytest
from django.contrib.messages import get_messages

from core.models import Job
from core.templatetags.annotator import duration
from tests.factories import project_with_members

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "–"),
        (0.04, "< 0.1 s"),
        (0.06, "0.1 s"),
        (4.2, "4.2 s"),
        (48, "48 s"),
        (timedelta(seconds=192), "3 min 12 s"),
        (600, "10 min"),
        (7500, "2 h 5 min"),
        (7200, "2 h"),
    ],
)
def test_durations_read_as_people_say_them(seconds, text):
    assert duration(seconds) == text


def test_a_48_second_job_reads_48_s_on_the_dashboard(client):
    project, admin, _ = project_with_members()
    job = Job.objects.create(project=project, kind=Job.Kind.TRAIN, status="succeeded")
    Job.objects.filter(pk=job.pk).update(
        started_at=job.created_at, finished_at=job.created_at + timedelta(seconds=48)
    )
    client.force_login(admin)
    body = client.get(f"/projects/{project.pk}/dashboard/").content.decode()
    assert "<td>48 s</td>" in body and "0 minutes" not in body


def test_form_errors_name_the_field_by_its_label(client):
    project, admin, _ = project_with_members()
    client.force_login(admin)
    response = client.get(f"/projects/{project.pk}/export/", {"format": "csv", "split": "x"})
    (message,) = [str(m) for m in get_messages(response.wsgi_request)]
    assert message == "Export not possible. Validation fraction: Enter a number."


def test_downloads_from_the_page_the_api_and_a_job_share_one_name(client):
    from core.services.exports import export_request
    from core.services.jobs import job_execute, job_runners

    project, admin, _ = project_with_members(name="Birds of 2026")
    client.force_login(admin)
    page = client.get(f"/projects/{project.pk}/export/", {"format": "csv"})
    api = client.get(f"/api/projects/{project.pk}/export/csv/")
    job = export_request(project=project, fmt="csv", requested_by=admin)
    job_execute(job_id=job.pk, runners=job_runners())
    from_job = client.get(f"/projects/{project.pk}/exports/{job.pk}/")
    expected = f'attachment; filename="birds-of-2026-{project.pk}-labels'
    assert page["Content-Disposition"] == f'{expected}.csv"'
    assert api["Content-Disposition"] == f'{expected}.csv"'
    assert from_job["Content-Disposition"] == f'{expected}-job{job.pk}.csv"'
