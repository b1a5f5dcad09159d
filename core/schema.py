"""The OpenAPI schema's error responses, documented on every operation the way they happen.

Every endpoint can answer 400 (a parameter or body that fails validation, or a control
character anywhere in the request), 401/403 (not signed in, bad or expired token, not an
admin of the project) and, where the path names an object, 404 (not found, or not a
member: the same answer). Endpoints add their own (409, 413, 429) with `extend_schema`.
Schemathesis (tests/api/test_schemathesis.py) holds the API to this: no status code the
schema does not list.
"""

from django.http import JsonResponse
from django.views.defaults import page_not_found
from drf_spectacular.openapi import AutoSchema

ERROR_BODY = {
    "type": "object",
    "description": 'DRF\'s error body: {"detail": "…"} or {"field": ["message", …]}.',
    "additionalProperties": True,
}


def api_not_found(request, exception=None):
    """`handler404`: under /api/ a JSON 404 like DRF's own (an id that is not a number never
    reaches a view), elsewhere Django's page."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return page_not_found(request, exception)


ERROR_DESCRIPTIONS = {
    "400": "Invalid parameters or body; the body names each field and what is wrong.",
    "401": "The token is missing, wrong or expired.",
    "403": "Not signed in, or not allowed (e.g. only project admins may do this).",
    "404": "No such object, or one of a project you are not a member of.",
    "409": "Conflicts with the current state (e.g. the item's lease was lost).",
    "413": "The upload is bigger than one request may carry.",
    "429": "Too many requests or a quota is used up; the body says which.",
}


def error_response(code: int | str) -> dict:
    code = str(code)
    return {
        "description": ERROR_DESCRIPTIONS[code],
        "content": {"application/json": {"schema": ERROR_BODY}},
    }


class AnnotatorSchema(AutoSchema):
    """drf-spectacular's AutoSchema plus the error responses every operation can give."""

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        codes = ["400", "401", "403"]
        if "{" in self.path or (self.method == "GET" and self._is_list_view()):
            codes.append("404")  # an object, or a page number past the last page
        for code in codes:
            responses.setdefault(code, error_response(code))
        return responses
