"""Sign-in limits and expiring API tokens.

Failed sign-ins (the login page and `POST /api/token/`) are counted per address and account
and per address alone, in Django's cache (Redis when REDIS_URL is set, so every web process
shares the counts); past the limit, both answer 429 until the window ends, right password or
not. API tokens expire `ANNOTATOR_API_TOKEN_DAYS` after they were issued; asking for a token
again after that issues a new one.
"""

import hashlib
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.views import LoginView
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.request import Request
from rest_framework.response import Response

from core.authentication import token_expired


def _address(request: HttpRequest) -> str:
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def _keys(request: HttpRequest, username: str) -> list[tuple[str, int]]:
    address = _address(request)
    account = hashlib.sha256(f"{address}|{username.strip().lower()}".encode()).hexdigest()
    return [
        (f"sign-in-failures:{account}", settings.ANNOTATOR_LOGIN_FAILURES_PER_ACCOUNT),
        (f"sign-in-failures:{address}", settings.ANNOTATOR_LOGIN_FAILURES_PER_ADDRESS),
    ]


def sign_in_blocked(request: HttpRequest, username: str) -> bool:
    """Whether this address (for this account, or in all) has failed too often lately."""
    return any((cache.get(key) or 0) >= limit for key, limit in _keys(request, username))


def sign_in_failed(request: HttpRequest, username: str) -> None:
    for key, _ in _keys(request, username):
        if not cache.add(key, 1, settings.ANNOTATOR_LOGIN_WINDOW_S):
            try:
                cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.add(key, 1, settings.ANNOTATOR_LOGIN_WINDOW_S)


def sign_in_succeeded(request: HttpRequest, username: str) -> None:
    cache.delete(_keys(request, username)[0][0])


TOO_MANY = "Too many failed sign-ins from here; try again in {minutes} minutes."


def _too_many() -> str:
    return TOO_MANY.format(minutes=max(1, round(settings.ANNOTATOR_LOGIN_WINDOW_S / 60)))


class ThrottledLoginView(LoginView):
    """Django's login page, answering 429 once sign-ins from this address fail too often."""

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        username = request.POST.get("username", "")
        if sign_in_blocked(request, username):
            form = self.get_form()
            form.errors.clear()
            form.add_error(None, _too_many())
            return self.render_to_response(self.get_context_data(form=form), status=429)
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        sign_in_failed(self.request, self.request.POST.get("username", ""))
        return super().form_invalid(form)

    def form_valid(self, form):
        sign_in_succeeded(self.request, form.get_user().get_username())
        return super().form_valid(form)


class ThrottledObtainAuthToken(ObtainAuthToken):
    """`POST /api/token/`: the user's token (a new one when the old has expired); 429 once
    sign-ins from this address fail too often."""

    @extend_schema(
        request=AuthTokenSerializer,
        responses={
            200: inline_serializer(
                "IssuedToken",
                {
                    "token": serializers.CharField(),
                    "expires_at": serializers.DateTimeField(allow_null=True),
                },
            ),
            429: OpenApiResponse(
                response={"type": "object", "additionalProperties": True},
                description="Too many failed sign-ins from this address or for this account.",
            ),
        },
    )
    def post(self, request: Request, *args, **kwargs) -> Response:
        if not isinstance(request.data, dict):  # a JSON list or number was a 500 once
            raise exceptions.ValidationError({"non_field_errors": ["Send username and password."]})
        username = str(request.data.get("username", ""))
        if sign_in_blocked(request, username):
            return Response({"detail": _too_many()}, status=status.HTTP_429_TOO_MANY_REQUESTS)
        serializer = self.get_serializer(data=request.data)
        if not serializer.is_valid():
            sign_in_failed(request, username)
            raise exceptions.ValidationError(serializer.errors)
        user = serializer.validated_data["user"]
        sign_in_succeeded(request, username)
        token, _ = Token.objects.get_or_create(user=user)
        if token_expired(token):
            token.delete()
            token = Token.objects.create(user=user)
        days = settings.ANNOTATOR_API_TOKEN_DAYS
        expires = (token.created + timedelta(days=days)).isoformat() if days else None
        return Response({"token": token.key, "expires_at": expires})
