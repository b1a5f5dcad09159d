"""Realtime events to the browsers of a project, sent after the database commit.

Every open labeling page and project page of project P listens on the group `project-P`
(core/consumers.py). Events are small dicts: `{"event": "job", ...}`, `{"event": "model", ...}`.

The in-memory channel layer (the embedded default) lives in one process and its queues
belong to the server's event loop, so a worker thread must hand the send to that loop
instead of starting its own (asgiref would run it on a private loop, where waking the
server's consumers is not thread-safe). The consumers record the server loop when they
connect. With Redis any process can send.
"""

import asyncio
import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

_server_loop: asyncio.AbstractEventLoop | None = None


def project_group(project_id: int) -> str:
    return f"project-{project_id}"


def server_loop_register(loop: asyncio.AbstractEventLoop) -> None:
    """Called by consumers (on the server's loop) so worker threads can reach them."""
    global _server_loop
    _server_loop = loop


def project_event_send(*, project_id: int, event: str, payload: dict[str, Any]) -> None:
    """Send `event` to every browser of the project once the current transaction commits."""
    message = {"type": "project.event", "event": event, **payload}
    transaction.on_commit(lambda: _group_send(project_group(project_id), message))


def _group_send(group: str, message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        loop = _server_loop
        if isinstance(layer, InMemoryChannelLayer) and loop is not None and loop.is_running():
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is not loop:
                asyncio.run_coroutine_threadsafe(layer.group_send(group, message), loop)
                return
        async_to_sync(layer.group_send)(group, message)
    except Exception:  # a browser update must never break the job or request that sent it
        logger.exception("could not send %s to %s", message.get("event"), group)
