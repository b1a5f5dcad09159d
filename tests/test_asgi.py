"""annotator.asgi: the HTTP handler runs each request's middleware and view as one sync call
on a pooled thread. These drive the real ASGI application the server runs."""

import asyncio
import json

import pytest
from asgiref.testing import ApplicationCommunicator
from django.db import connection
from django.http import HttpResponse, StreamingHttpResponse
from django.test import Client
from django.urls import path
from rest_framework.authtoken.models import Token

from annotator.asgi import application, django_asgi_app
from tests.factories import ItemFactory, project_with_members
from tests.images import rgb_png

pytestmark = pytest.mark.django_db(transaction=True)  # requests run on other threads


def scope_for(path, *, method="GET", headers=()):
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


def request(path, *, method="GET", headers=(), body=b""):
    scope = scope_for(path, method=method, headers=headers)

    async def run():
        app = ApplicationCommunicator(application, scope)
        await app.send_input({"type": "http.request", "body": body, "more_body": False})
        start = await app.receive_output(timeout=10)
        chunks = []
        while True:
            message = await app.receive_output(timeout=10)
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        await app.wait(timeout=10)
        return start["status"], dict(start["headers"]), b"".join(chunks)

    return asyncio.run(run())


def auth(user):
    token, _ = Token.objects.get_or_create(user=user)
    return [(b"authorization", f"Token {token.key}".encode())]


def session_of(user):
    client = Client()
    client.force_login(user)
    return [(b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())]


def test_pages_api_and_errors_answer_as_under_the_stock_handler():
    project, admin, _ = project_with_members()
    status, headers, body = request("/accounts/login/")
    assert status == 200 and b"csrfmiddlewaretoken" in body
    assert headers[b"X-Frame-Options"] == b"DENY"  # the middleware chain ran
    status, _, body = request(f"/api/projects/{project.pk}/", headers=auth(admin))
    assert status == 200 and json.loads(body)["id"] == project.pk
    assert request("/api/projects/999999/", headers=auth(admin))[0] == 404
    assert request("/no/such/page/")[0] == 404


def test_csrf_is_enforced_for_session_posts():
    status, _, _ = request("/accounts/login/", method="POST", body=b"username=x&password=y")
    assert status == 403


def test_a_file_response_streams_through(settings):
    project, admin, _ = project_with_members()
    item = ItemFactory(project=project, image="projects/x/items/one.png")
    path = settings.MEDIA_ROOT / item.image.name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(rgb_png(size=64))
    status, headers, body = request(
        f"/projects/{project.pk}/items/{item.pk}/image/", headers=session_of(admin)
    )
    assert status == 200 and headers[b"Content-Type"] == b"image/png"
    assert body == path.read_bytes()


@pytest.mark.custom_infra
def test_request_threads_are_reused():
    django_asgi_app._idle.clear()
    for _ in range(5):
        assert request("/accounts/login/")[0] == 200
    assert len(django_asgi_app._idle) == 1  # one thread served all five, one after another


# Views for the tests below, served with ROOT_URLCONF pointing at this module.
produced: list[int] = []


def numbers_streamed(request):
    def chunks():
        for n in range(50):
            produced.append(n)
            yield f"{n:04d}".encode() * 1000

    return StreamingHttpResponse(chunks())


def connection_id(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return HttpResponse(str(id(connection.connection)))


urlpatterns = [path("stream/", numbers_streamed), path("connection/", connection_id)]


@pytest.mark.custom_infra
def test_a_streaming_response_is_read_as_it_is_sent_not_whole_first(settings):
    settings.ROOT_URLCONF = __name__
    produced.clear()

    async def run():
        app = ApplicationCommunicator(application, scope_for("/stream/"))
        await app.send_input({"type": "http.request", "body": b"", "more_body": False})
        assert (await app.receive_output(timeout=10))["status"] == 200
        first = await app.receive_output(timeout=10)
        produced_when_first_sent = len(produced)
        body = [first["body"]]
        while (message := await app.receive_output(timeout=10)).get("more_body"):
            body.append(message["body"])
        await app.wait(timeout=10)
        return produced_when_first_sent, b"".join(body)

    produced_when_first_sent, body = asyncio.run(run())
    assert produced_when_first_sent <= 2  # the stock handler read all 50 chunks first
    assert body == b"".join(f"{n:04d}".encode() * 1000 for n in range(50))


@pytest.mark.custom_infra
def test_a_request_thread_keeps_its_database_connection(settings):
    settings.ROOT_URLCONF = __name__
    django_asgi_app._idle.clear()
    ids = {request("/connection/")[2] for _ in range(3)}
    assert len(ids) == 1  # one pooled thread, one persistent connection, not one per request
