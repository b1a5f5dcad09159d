"""ASGI entry point: HTTP through Django, websockets through Channels (auth + origin checked)."""

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing

import django
from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.base import BaseHandler
from django.http import FileResponse
from django.urls import set_script_prefix

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "annotator.settings.dev")
django.setup(set_prefix=False)


class SyncViewsASGIHandler(ASGIHandler):
    """Django's ASGI handler, made cheaper for an app whose views are all synchronous.

    What a request costs under the stock handler, measured on the 2-core machine
    (bench/next_item.py and the notes of issue #2):
    - a new thread per request (asgiref's per-request ThreadSensitiveContext), and
      starting a thread costs about 5 ms on that (virtualised) machine;
    - the middleware chain built in async mode, so a request crosses between the event
      loop and a thread for every middleware hook and for the view (about 3.5 ms);
    - three more crossings around the view: the request_started signal, the view, and
      response.close() (the request_finished signal), each a hand-off to the thread and
      a wake-up of the event loop.

    Here each request borrows an idle thread from a pool (asgiref's
    `ThreadSensitiveContext(executor=...)`, made for this) and everything synchronous
    about it happens in one call on that thread, as under WSGI: request_started, the
    middleware chain and view, and (unless the response streams) request_finished, which
    releases the thread's database connection. Only reading the body and writing the
    response stay on the event loop. A streaming response with a synchronous iterator (a
    FileResponse: image and export downloads) is read a chunk at a time on the request
    thread, instead of whole into memory as the stock handler does. Websockets go
    through Channels and are not affected.
    """

    idle_threads_kept = 64

    def __init__(self):
        BaseHandler.__init__(self)
        self.load_middleware(is_async=False)
        self._idle: list[ThreadPoolExecutor] = []  # touched only from the event loop

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        executor = self._idle.pop() if self._idle else ThreadPoolExecutor(max_workers=1)
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        finally:
            if len(self._idle) < self.idle_threads_kept:
                self._idle.append(executor)
            else:
                executor.shutdown(wait=False)

    async def handle(self, scope, receive, send):
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        with closing(body_file):
            set_script_prefix(get_script_prefix(scope))
            response = None
            try:
                try:
                    # As the stock handler: a client that goes away ends the request.
                    async with asyncio.TaskGroup() as tg:
                        tg.create_task(self.listen_for_disconnect(receive))
                        response = await in_request_thread(self.respond)(scope, body_file)
                        await self.send_response(response, send)
                        raise _Done
                except* (_Done, RequestAborted):
                    pass
            except BaseExceptionGroup as group:  # an error: raise it as itself, as Django does
                if len(group.exceptions) == 1:
                    raise group.exceptions[0] from None
                raise
            finally:
                if response is not None and response.streaming:
                    await in_request_thread(response.close)()

    def respond(self, scope, body_file):
        """Everything synchronous about one request, on its thread."""
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, response = self.create_request(scope, body_file)
        if request is not None:
            response = self.get_response(request)
            response._handler_class = self.__class__
            if isinstance(response, FileResponse):
                response.block_size = self.chunk_size
        if not response.streaming:
            response.close()  # request_finished: the content is in memory already
        return response

    async def send_response(self, response, send):
        if response.streaming and not response.is_async:
            # Django would read a sync iterator whole first; hand it one chunk at a time.
            response.streaming_content = chunks_from_request_thread(response.streaming_content)
        await super().send_response(response, send)


class _Done(Exception):
    """Raised inside the task group once the response is sent, to stop the listener."""


def in_request_thread(func):
    """`func` to await, run on this request's thread (the ThreadSensitiveContext's)."""
    return sync_to_async(func, thread_sensitive=True)


async def chunks_from_request_thread(chunks):
    """A sync iterator of response chunks as an async one, each read on the request thread."""
    next_chunk, chunks = in_request_thread(next), iter(chunks)
    while (chunk := await next_chunk(chunks, None)) is not None:
        yield chunk


# ANNOTATOR_STOCK_DJANGO=1: Django's own handler (the test suite runs both).
django_asgi_app = ASGIHandler() if settings.ANNOTATOR_STOCK_DJANGO else SyncViewsASGIHandler()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from core.routing import websocket_urlpatterns  # noqa: E402
from core.worker import inprocess_worker_start  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)

# The embedded default runs the task worker inside this process (see core/worker.py).
inprocess_worker_start()
