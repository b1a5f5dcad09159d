"""Websocket routes. The live-update consumers arrive with the closed-loop work (issue 4)."""

websocket_urlpatterns: list = []
