"""Websocket routes (served through annotator/asgi.py: session auth + origin check)."""

from django.urls import path

from core.consumers import ProjectConsumer

websocket_urlpatterns = [
    path("ws/projects/<id:project_id>/", ProjectConsumer.as_asgi()),
]
