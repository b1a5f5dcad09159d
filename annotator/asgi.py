"""ASGI entry point: HTTP through Django, websockets through Channels (auth + origin checked)."""

import os
from concurrent.futures import ThreadPoolExecutor

import django
from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.base import BaseHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "annotator.settings.dev")
django.setup(set_prefix=False)


class SyncViewsASGIHandler(ASGIHandler):
    """Django's ASGI handler, made cheaper for an app whose views are all synchronous.

    What a request costs under the stock handler, measured on the 2-core machine
    (bench/next_item.py and the note of issue #2):
    - a new thread per request (asgiref's per-request ThreadSensitiveContext), and
      starting a thread costs about 5 ms on that (virtualised) machine;
    - the middleware chain built in async mode, so a request crosses between the event
      loop and a thread for every middleware hook and for the view (about 3.5 ms).

    Here each request borrows an idle thread from a pool (asgiref's
    `ThreadSensitiveContext(executor=...)`, made for this) and runs its middleware and
    view in one synchronous call on it, as under WSGI. Everything a request does in sync
    code (signals, middleware, view, closing the database connection) still happens on
    one thread, which is what Django's database connections need. Websockets go through
    Channels and are not affected.
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

    async def get_response_async(self, request):
        return await sync_to_async(self.get_response, thread_sensitive=True)(request)


django_asgi_app = SyncViewsASGIHandler()

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
