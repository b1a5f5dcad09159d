"""Request checks that every view relies on, so none has to repeat them."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse

from core.text import has_control_characters


def control_character_field(request: HttpRequest) -> str | None:
    """The first query-string parameter whose name or value holds a control character (NUL,
    escape, ...): no parameter of ours may carry one, and PostgreSQL refuses NUL in text with
    an error that would surface as a 500. Form and JSON bodies go through Django form and DRF
    fields, whose validators already refuse NUL."""
    for name, values in request.GET.lists():
        if has_control_characters(name) or any(has_control_characters(v) for v in values):
            return name
    return None


class RejectControlCharactersMiddleware:
    """400 with the parameter named, before any view or query sees it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        field = control_character_field(request)
        if field is None:
            return self.get_response(request)
        message = f"Parameter {field!r} contains control characters."
        if request.path.startswith("/api/"):
            return JsonResponse({field: [message]}, status=400)
        return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")
