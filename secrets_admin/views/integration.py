"""The integration screen: how an application reads one unified secret."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .. import errors, reads
from ..permissions import Action, require
from .errors import error_response


@require_GET
@never_cache
@require(Action.VIEW)
def secret_integration(request: HttpRequest, name: str) -> HttpResponse:
    """The IAM policy for an application role and the environment variables of each key."""
    try:
        page = reads.secret_integration(name)
    except errors.PortalError as exc:
        return error_response(request, exc, name=name)
    return render(
        request, "secrets_admin/secret_integration.html", {"page": page, "secret": page.secret}
    )
