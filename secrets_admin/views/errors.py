"""Error pages that say what went wrong: any :class:`~secrets_admin.errors.PortalError` with its
own status (:func:`error_response`), bad input (400) and a failed CSRF check (403).

All answer htmx requests with only the message fragment, so it lands where the request's
result would have gone instead of nesting a whole page in a table cell.
"""

from __future__ import annotations

from http import HTTPStatus

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from ..errors import PortalError


def _bad_input_message(exception: Exception | None) -> str:
    if isinstance(exception, RequestDataTooBig):
        return (
            "The form was larger than the portal accepts "
            f"({settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} bytes at most). Nothing was changed."
        )
    if isinstance(exception, TooManyFieldsSent):
        return (
            "The form had more fields than the portal accepts "
            f"({settings.DATA_UPLOAD_MAX_NUMBER_FIELDS:,} at most). Nothing was changed."
        )
    if isinstance(exception, TooManyFilesSent):
        return "The form had more files than the portal accepts. Nothing was changed."
    return "The request was malformed. Go back, reload the page and try again."


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """``handler400``: a 400 page naming the limit that was broken (never the posted data)."""
    template = "400.html"
    if getattr(request, "htmx", False):
        template += "#error-message"
    context = {"message": _bad_input_message(exception)}
    return render(request, template, context, status=HTTPStatus.BAD_REQUEST)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """``CSRF_FAILURE_VIEW``: the form was stale or came from another site; nothing happened.

    ``reason`` (Django's text, e.g. "CSRF token missing.") is logged by Django's own
    ``django.security.csrf`` logger; the page tells the person what to do.
    """
    template = "403_csrf.html"
    if getattr(request, "htmx", False):
        template += "#error-message"
    return render(request, template, {}, status=HTTPStatus.FORBIDDEN)


def error_response(
    request: HttpRequest,
    exc: PortalError,
    *,
    template: str = "secrets_admin/aws_error.html",
    **context: object,
) -> HttpResponse:
    """The one way a view answers a :class:`~secrets_admin.errors.PortalError`: ``template``
    (a full page, or its ``error-message`` fragment for htmx) with ``error`` = ``exc`` and
    ``context``, at the error's own status (``exc.status``). The message never holds a value."""
    if getattr(request, "htmx", False) and template == "secrets_admin/aws_error.html":
        template += "#error-message"
    response = render(request, template, {"error": exc, **context}, status=exc.status)
    retry_after = getattr(exc, "retry_after", None)  # a rate limit says when to come back
    if isinstance(retry_after, int):
        response["Retry-After"] = str(retry_after)
    return response
