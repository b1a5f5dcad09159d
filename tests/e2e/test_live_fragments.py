"""Live pages never go stale: a job that finishes before the page's websocket subscribes
shows as finished, with its download link, without a reload (the page fetches its live
fragments again whenever the socket (re)connects)."""

from core.models import Job
from tests.e2e.test_live_loop import asgi_server, pytestmark, signed_in_browser  # noqa: F401
from tests.factories import project_with_members


def test_a_job_that_finished_before_the_page_subscribed_shows_its_link(asgi_server):  # noqa: F811
    project, admin, _ = project_with_members()
    # A queued export the in-process worker knows nothing of (no task): only this test moves it.
    job = Job.objects.create(project=project, kind=Job.Kind.EXPORT, params={"format": "csv"})

    def finish_then_connect(ws):
        Job.objects.filter(pk=job.pk).update(status=Job.Status.SUCCEEDED, progress=1.0)
        ws.connect_to_server()

    with signed_in_browser(asgi_server, admin, width=1280) as page:
        # The page is rendered with the job queued; its socket connects only after the job
        # has finished, so the "succeeded" event went to nobody.
        page.route_web_socket("**/ws/projects/**", finish_then_connect)
        page.goto(f"{asgi_server}/projects/{project.pk}/")
        row = page.locator(f"#job-{job.pk}")
        page.wait_for_selector(f"#job-{job.pk}[data-status='succeeded']", timeout=15_000)
        assert "succeeded" in row.inner_text()
        link = row.locator("a", has_text="Download")
        assert link.get_attribute("href") == f"/projects/{project.pk}/exports/{job.pk}/"
