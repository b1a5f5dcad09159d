"""Websocket consumer: live job progress and model-version changes for one project.

Only authenticated members of the project are accepted (others are closed with 4403 and
learn nothing about the project); the origin is checked by AllowedHostsOriginValidator in
annotator/asgi.py. The browser never sends anything that changes state here: writes go
through the HTTP views, events come from core/events.py after commit.
"""

import asyncio

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.template.loader import render_to_string

from core.events import project_group, server_loop_register
from core.models import Job, Project
from core.roles import Action, role_can
from core.selectors.common import membership_role

CLOSE_FORBIDDEN = 4403


class ProjectConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        server_loop_register(asyncio.get_running_loop())
        user = self.scope.get("user")
        self.project_id = int(self.scope["url_route"]["kwargs"]["project_id"])
        if user is None or not user.is_authenticated or not await self._is_member(user):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.can_export = await self._can_export(user)
        self.group = project_group(self.project_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    @database_sync_to_async
    def _is_member(self, user) -> bool:
        return Project.objects.for_user(user).filter(pk=self.project_id).exists()

    @database_sync_to_async
    def _can_export(self, user) -> bool:
        project = Project.objects.get(pk=self.project_id)
        return role_can(membership_role(project=project, user=user), Action.EXPORT)

    @database_sync_to_async
    def _job_row(self, job_id: int) -> str | None:
        """The job's row as the pages render it (core/jobs_table.html), for this user's role."""
        job = Job.objects.filter(pk=job_id, project_id=self.project_id).first()
        if job is None:
            return None
        context = {
            "job": job,
            "can_export": self.can_export,
            "is_staff": self.scope["user"].is_staff,
        }
        return render_to_string("core/jobs_table.html#job-row", context)

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs) -> None:
        pass  # nothing to receive: the page writes through HTTP

    async def project_event(self, message: dict) -> None:
        event = {k: v for k, v in message.items() if k != "type"}
        if event.get("event") == "job":
            event["html"] = await self._job_row(event["id"])
            if not self.can_export:
                event.pop("download_url", None)
        await self.send_json(event)
